//! The node context, and where a node's time comes from. The writer and the workers take "now"
//! from the node's [`Clock`] rather than from the operating system, so the
//! simulator can run a whole tree on one simulated clock (deadlines pass,
//! supervision falls due) while the binary runs on the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::RwLock;

use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::{Body, DivisionCode, NodeId, NodeKey, Policy, Record};

use crate::ledger::{LedgerError, Result};
use crate::store::Store;

/// The operating system's clock, shifted by `clock_offset_secs`: the one
/// place node code reads the wall clock ([`Clock::System`]).
pub fn now_ms() -> u64 {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (real + CLOCK_OFFSET_MS.load(Ordering::Relaxed)).max(0) as u64
}

/// See `Config::clock_offset_secs`.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts [`now_ms`] for this process (tests and drills; set once at start).
pub fn set_clock_offset_ms(offset: i64) {
    CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
}

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock, shifted by `clock_offset_secs` in drills
    /// ([`now_ms`]).
    #[default]
    System,
    /// A clock that moves only when told (simulations).
    Manual(Arc<AtomicU64>),
    /// A manual clock read with a fixed error (a node whose clock is
    /// wrong, in simulations): the shared reading plus the offset.
    Skewed(Arc<AtomicU64>, i64),
}

impl Clock {
    /// A manual clock reading `start_ms`.
    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
            Clock::Skewed(t, offset) => (t.load(Ordering::Relaxed) as i64 + offset).max(0) as u64,
        }
    }

    /// This clock read with an error of `offset_ms` (a manual clock only;
    /// the system clock is shifted with `clock_offset_secs`).
    pub fn skewed(&self, offset_ms: i64) -> Clock {
        match self {
            Clock::Manual(t) | Clock::Skewed(t, _) => Clock::Skewed(t.clone(), offset_ms),
            Clock::System => Clock::System,
        }
    }

    /// Moves a manual clock forward (the system clock moves on its own).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) | Clock::Skewed(t, _) = self {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

/// Certificates, revocations and policies taken in record by record, in
/// the order they were stored.
struct TrustAndPolicy {
    root: NodeId,
    trust: Trust,
    set: Option<PolicySet>,
}

impl TrustAndPolicy {
    fn new(root: NodeId) -> TrustAndPolicy {
        TrustAndPolicy { root, trust: Trust::new(root), set: None }
    }

    fn add(&mut self, id: zongzhi_protocol::RecordId, bytes: &[u8]) -> Result<()> {
        let record = Record::decode(bytes).map_err(|e| LedgerError::Integrity(format!("trust record {id}: {e}")))?;
        let added = match &record.body {
            Body::NodeCert(_) => self.trust.add_cert(&record),
            Body::Revocation(_) => self.trust.add_revocation(&record),
            Body::Policy(policy) => {
                if record.author == self.root {
                    match self.set.as_mut() {
                        Some(s) => {
                            s.insert((**policy).clone());
                        }
                        None => self.set = Some(PolicySet::new((**policy).clone())),
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = added {
            tracing::warn!(record = %id.fmt_short(), "stored trust record not usable: {e}");
        }
        Ok(())
    }

    fn done(self) -> (Trust, PolicySet) {
        (self.trust, self.set.unwrap_or_else(|| PolicySet::new(Policy::default_policy())))
    }
}

/// The node context: what the writer, the API, the network and the workers
/// share (store, key, trust, policy, feed head, sync status, clock).
#[derive(Clone)]
pub struct Context {
    pub store: Arc<Store>,
    pub key: Arc<NodeKey>,
    pub unit: DivisionCode,
    /// Every policy version the city signed that this node holds.
    pub policy: Arc<RwLock<Arc<PolicySet>>>,
    /// Replaced whole by the writer; readers take a snapshot.
    pub trust: Arc<RwLock<Arc<Trust>>>,
    /// The last feed sequence number written; watchers push new records.
    pub feed: tokio::sync::watch::Sender<u64>,
    /// Replication status per peer.
    pub sync: crate::status::StatusBoard,
    /// Where "now" comes from for the writer and the workers.
    pub clock: crate::context::Clock,
    /// Free space and write faults ([`crate::workers::storage`]).
    pub storage: crate::workers::storage::StorageBoard,
    /// Restored from a backup and not confirmed yet ([`crate::recovery`]).
    pub recovery: Arc<crate::recovery::Recovery>,
    /// Where backups go and where the key is.
    pub paths: Arc<NodePaths>,
    /// This node's metrics registry (one per node, see [`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What this node reads, writes and speaks ([`crate::release`]).
    pub caps: Arc<crate::release::Capabilities>,
    /// Bumped when a child's `Status` brought news of the subtree: the
    /// link to the parent passes it up without waiting for its next
    /// periodic `Status`.
    pub fleet_changed: tokio::sync::watch::Sender<u64>,
    /// Flags that take the node out of service for writes (a migration);
    /// `GET /api/health/ready` reads them ([`crate::probes`]).
    pub readiness: Arc<crate::probes::Readiness>,
}

#[derive(Debug, Clone, Default)]
pub struct NodePaths {
    pub backup_dir: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// The HTTPS certificate and key the node serves (a backup holds the
    /// certificate, and the key when the node key goes too).
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("unit", &self.unit).finish()
    }
}

impl Context {
    /// The current (newest) policy version: what new steps follow.
    pub fn policy(&self) -> Arc<Policy> {
        self.policies().current().clone()
    }

    /// The record format this node signs now: its own newest, or the
    /// city's gate if lower (UPGRADES.md §4).
    pub fn write_format(&self) -> u8 {
        self.caps.write_format(self.policy().gate.write_format)
    }

    /// Every version held (folds take the version each event names).
    pub fn policies(&self) -> Arc<PolicySet> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A snapshot of the trust store.
    pub fn trust(&self) -> Arc<Trust> {
        match self.trust.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set_trust(&self, trust: Trust) {
        let mut guard = match self.trust.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(trust);
    }

    /// Builds the trust store from the stored certificate and revocation
    /// records, and finds the newest policy the city root signed (the
    /// built-in default when there is none): one pass over the trust index.
    pub fn load_trust_and_policy(store: &Store, root: NodeId) -> Result<(Trust, PolicySet)> {
        let mut trusted = TrustAndPolicy::new(root);
        for id in store.trust_records()? {
            let bytes = store.record_bytes(&id)?.ok_or_else(|| LedgerError::Integrity(format!("trust record {id} missing")))?;
            trusted.add(id, &bytes)?;
        }
        Ok(trusted.done())
    }

    /// The same from the feed itself (one pass over every record), not from
    /// the trust index: what a rebuild of the derived data starts from,
    /// since the index is derived too (a rebuild interrupted by a crash
    /// leaves it half written).
    pub fn load_trust_and_policy_from_feed(store: &Store, root: NodeId) -> Result<(Trust, PolicySet)> {
        let mut trusted = TrustAndPolicy::new(root);
        let mut from = 1;
        loop {
            let chunk = store.feed_records(from, 4096)?;
            let Some(&(last, _, _)) = chunk.last() else { break };
            for (_, id, bytes) in chunk {
                // The kind is the envelope's second byte: skip case events
                // without decoding them.
                if bytes.get(1).is_some_and(|k| [zongzhi_protocol::RecordKind::NodeCert as u8, zongzhi_protocol::RecordKind::Revocation as u8, zongzhi_protocol::RecordKind::Policy as u8].contains(k))
                {
                    trusted.add(id, &bytes)?;
                }
            }
            from = last + 1;
        }
        Ok(trusted.done())
    }

    /// Adds policy versions signed by the city (newest applies to new steps).
    pub(crate) fn add_policies(&self, policies: Vec<Policy>) {
        let mut guard = match self.policy.write() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut set = (**guard).clone();
        let mut added = false;
        for p in policies {
            let version = p.version;
            if set.insert(p) {
                tracing::info!(version, "holding the city's policy version");
                added = true;
            }
        }
        if added {
            *guard = Arc::new(set);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_manual_clock_moves_when_told_and_is_shared_by_its_clones() {
        let c = super::Clock::manual(1_000);
        let d = c.clone();
        c.advance(500);
        assert_eq!((c.now_ms(), d.now_ms()), (1_500, 1_500));
        let s = super::Clock::System;
        s.advance(1);
        assert!(s.now_ms() > 1_700_000_000_000);
    }
}
