//! Live replication status per peer, for the API and the CLI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use zongzhi_protocol::NodeId;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStatus {
    pub key: String,
    pub division: String,
    pub name: String,
    /// `parent` or `child`.
    pub role: String,
    pub connected: bool,
    /// Live connections with this peer (more than one only while an old one dies).
    pub links: u32,
    pub last_contact_ms: Option<u64>,
    /// Records this node has sent, and received and stored.
    pub records_sent: u64,
    pub records_received: u64,
    /// Received records this node already held (sent again after a cut).
    pub duplicates_received: u64,
    pub bytes_sent: u64,
    /// Sum of the sizes of the records sent (to compare with `bytes_sent`).
    pub record_bytes_sent: u64,
    pub bytes_received: u64,
    /// Feed positions the peer has not yet acknowledged from us.
    pub behind_to_peer: u64,
    /// Feed positions of the peer we have not yet received.
    pub behind_from_peer: u64,
    /// The position of our feed the peer last acknowledged (known once a
    /// link with it ran since this node started; kept while it is away).
    pub acked_by_peer: Option<u64>,
    /// Records after that position the peer will be sent (its scope):
    /// what waits for it, counted when the status is read.
    pub waiting_to_peer: Option<u64>,
    /// `waiting_to_peer` stopped counting at its cap.
    pub waiting_capped: bool,
    pub errors: u64,
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_ms: Option<u64>,
    /// While the link to the parent is down: when this node dials it next.
    pub next_attempt_ms: Option<u64>,
    pub connects: u64,
    /// The protocol version of the last link (the handshake's choice).
    pub protocol: Option<u32>,
    /// The peer's own report from its last `Status` (protocol 3).
    pub report: Option<zongzhi_protocol::sync::NodeReport>,
    /// Why the last attempt to link found no common protocol, naming the
    /// release to install (an upgrade alarm).
    pub incompatible: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub peers: HashMap<String, PeerStatus>,
    /// Handshakes refused, by reason.
    pub refused: HashMap<String, u64>,
}

/// Context, lock-protected status.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<SyncStatus>>);

impl StatusBoard {
    pub fn update(&self, peer: &NodeId, f: impl FnOnce(&mut PeerStatus)) {
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let entry = s.peers.entry(peer.to_string()).or_insert_with(|| PeerStatus { key: peer.to_string(), ..Default::default() });
        f(entry);
    }

    pub fn refused(&self, reason: &str) {
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        *s.refused.entry(reason.to_string()).or_default() += 1;
    }

    /// The status without peers whose key was revoked and that are not
    /// connected (a center re-keyed: its old key's row would stand beside
    /// the new one under the same division, offline for ever).
    pub fn live(&self, trust: &zongzhi_protocol::trust::Trust) -> SyncStatus {
        let mut s = self.snapshot();
        s.peers.retain(|key, p| p.connected || NodeId::from_hex(key).map_or(true, |k| trust.revocation(&k).is_none()));
        s
    }

    pub fn snapshot(&self) -> SyncStatus {
        match self.0.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
