//! Replication over QUIC. The only module that touches quinn and rustls.
//! What goes into a batch and what a received batch becomes are decided in
//! [`crate::replication`] (no I/O); this module moves them over the link.
//!
//! TLS 1.3 with raw public keys (RFC 7250): a node's ed25519 key is its TLS
//! key, and the handshake is refused unless the peer's key holds a known,
//! valid, unrevoked certificate. After the handshake both sides exchange
//! certificate chains (`Hello`) and check that the peer really is this
//! node's parent or child. Then each side subscribes to the other's feed on a
//! stream of its own (see `zongzhi_protocol::sync`).
//!
//! Files: `tls.rs` (the only one naming rustls: configurations and the peer
//! verifier), `quic.rs` (the endpoint, frames, the handshake and the feed
//! loops of a link), `testing.rs` (a misbehaving peer); this one listens,
//! dials the parent and reconnects.

pub mod http;
mod quic;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use zongzhi_protocol::NodeId;
use zongzhi_protocol::sync;

use crate::context::Context;
use crate::ledger::{Ledger, LedgerError};
use crate::replication::ReplicationError;
use crate::replication::link::{Side, Violation};
use crate::store::StoreError;
use quic::{endpoint, run_link};
use tls::{client_config, server_config};

/// Why a link (or the endpoint under it) ended. The text is what the peer
/// sees as the close reason and what `GET /api/sync` shows.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// This node's TLS or QUIC setup failed.
    #[error("{0}")]
    Setup(String),
    /// The peer broke the protocol or is not who it must be.
    #[error("{0}")]
    Peer(String),
    #[error("connecting: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("sending: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("receiving: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("frame: {0}")]
    Frame(#[from] zongzhi_protocol::codec::CodecError),
    #[error("feed: {0}")]
    Feed(#[from] sync::SyncError),
    /// The peer broke the replication protocol.
    #[error("{0}")]
    Protocol(#[from] Violation),
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The node is stopping (its writer or feed is gone).
    #[error("{0}")]
    Stopping(&'static str),
}

type Result<T, E = LinkError> = std::result::Result<T, E>;

fn peer_error<T>(message: impl Into<String>) -> Result<T> {
    Err(LinkError::Peer(message.into()))
}

/// Starts the network side: a listener for children (if `quic_listen`) and a
/// dialer for the parent (if `parent`). Runs until the process stops.
pub async fn start(shared: Context, ledger: Ledger, listen: Option<SocketAddr>, parent: Option<SocketAddr>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let links: Links = Default::default();
    let endpoint = match listen {
        Some(addr) => {
            let ep = endpoint(&shared, addr, Some(server_config(&shared)?))?;
            tracing::info!("QUIC listening on {}", ep.local_addr().unwrap_or(addr));
            ep
        }
        None => endpoint(&shared, SocketAddr::from(([0, 0, 0, 0], 0)), None)?,
    };
    if listen.is_some() {
        let (ep, shared, ledger, links) = (endpoint.clone(), shared.clone(), ledger.clone(), links.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let (shared, ledger, links) = (shared.clone(), ledger.clone(), links.clone());
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => {
                            if let Err(e) = run_link(shared.clone(), ledger, conn, Side::Parent, links).await {
                                tracing::info!("child link ended: {e:#}");
                            }
                        }
                        Err(e) => {
                            let reason = tls_refusal(&e);
                            if let Some(reason) = &reason {
                                shared.sync.refused(reason);
                            }
                            if reason.as_deref() == Some(NO_COMMON_PROTOCOL) {
                                tracing::warn!(
                                    "a center connected offering none of this node's sync protocols ({:?}): one of the two runs a release outside the other's window and must be upgraded",
                                    shared.caps.protocols
                                );
                            } else {
                                tracing::info!("incoming connection failed: {e}");
                            }
                        }
                    }
                });
            }
        }));
    }
    tasks.push(tokio::spawn(close_revoked(shared.clone(), links.clone())));
    if let Some(parent) = parent {
        let client = client_config(&shared)?;
        tasks.push(tokio::spawn(dial_parent(endpoint.clone(), client, parent, shared.clone(), ledger.clone(), links.clone())));
    }
    Ok(tasks)
}

/// A key revoked while its link is up loses the link at once (its next
/// handshake is refused): checked whenever this node stores something,
/// which a revocation is.
async fn close_revoked(shared: Context, links: Links) {
    let mut feed = shared.feed.subscribe();
    while feed.changed().await.is_ok() {
        let trust = shared.trust();
        let revoked: Vec<(NodeId, quinn::Connection)> = match links.lock() {
            Ok(l) => l.iter().filter(|(k, _)| trust.revocation(k).is_some()).map(|(k, c)| (*k, c.clone())).collect(),
            Err(_) => continue,
        };
        for (key, conn) in revoked {
            tracing::warn!(peer = %key.fmt_short(), "closing the link of a revoked key");
            conn.close(3u32.into(), b"this key has been revoked");
        }
    }
}

/// The refusal reason counted when a child offered no protocol in common.
pub const NO_COMMON_PROTOCOL: &str = "TLS: no common sync protocol";

/// Dials the parent until the process stops: one link at a time, with a
/// back-off between tries (see the comments inside).
async fn dial_parent(ep: quinn::Endpoint, client: quinn::ClientConfig, parent: SocketAddr, shared: Context, ledger: Ledger, links: Links) {
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    let mut last_error = String::new();
    loop {
        let mut connected = false;
        let started = tokio::time::Instant::now();
        let result = async {
            let conn = ep.connect_with(client.clone(), parent, "zongzhi")?.await?;
            connected = true;
            run_link(shared.clone(), ledger.clone(), conn, Side::Child, links.clone()).await
        }
        .await;
        // A link that ran for a while was fine: the next try comes
        // soon. One refused at once (wrong parent, not enrolled,
        // revoked) backs off longer than an unreachable parent.
        let worked = connected && started.elapsed() > Duration::from_secs(10);
        // No protocol in common is not a refusal: it ends as soon as the
        // older side is upgraded, and the link should then come back in
        // seconds, not minutes.
        let refused = matches!(&result, Err(e) if refused_by_parent(e) && !no_common_protocol(e));
        if let Err(e) = &result {
            let text = describe(e);
            // Once when the link goes down or the reason changes, as a
            // warning (the parent is unreachable or refuses this node:
            // health shows it degraded meanwhile); the sync status shows
            // the error and its time, and the log repeats it at DEBUG only.
            if worked || !failing || text != last_error {
                tracing::warn!(%parent, "parent link down: {text}");
            } else {
                tracing::debug!(%parent, "parent still unreachable: {text}");
            }
            failing = true;
            last_error = text;
        }
        if worked {
            backoff = Duration::from_millis(200);
        }
        // Jittered exponential backoff, capped at 5 s while the parent is
        // unreachable (a village offline for days is back within seconds
        // of its link returning); a refusal is a setup to fix (enrol,
        // import the certificate, lift a revocation): at least 15 s, up to
        // 5 minutes, so a refused node neither floods the parent nor its log.
        if refused {
            backoff = backoff.max(REFUSED_FIRST_WAIT);
        }
        let cap = if refused { REFUSED_MAX_WAIT } else { Duration::from_secs(5) };
        backoff = backoff.min(cap);
        let wait = backoff + Duration::from_millis(rand_jitter(backoff.as_millis() as u64 / 2));
        if result.is_err() && (!connected || !worked) {
            let incompatible = matches!(&result, Err(e) if no_common_protocol(e)).then(|| incompatible(&shared));
            parent_unreachable(&shared, &last_error, shared.clock.now_ms().saturating_add(wait.as_millis() as u64), incompatible);
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(cap);
    }
}

/// The first wait after the parent refused this node, and the longest.
const REFUSED_FIRST_WAIT: Duration = Duration::from_secs(15);
const REFUSED_MAX_WAIT: Duration = Duration::from_secs(300);

/// The parent refused this node (its TLS handshake: unknown, revoked or
/// expired key; or its `Hello`: not its child), as opposed to not
/// answering.
fn refused_by_parent(e: &LinkError) -> bool {
    match (e, connection_error(e)) {
        (LinkError::Peer(_), _) => true,
        (_, Some(quinn::ConnectionError::ConnectionClosed(c))) => is_tls_alert(c.error_code.into()),
        (_, Some(quinn::ConnectionError::TransportError(t))) => is_tls_alert(t.code.into()),
        _ => false,
    }
}

/// The connection's end under a link error: the connection's own, or the
/// one a stream read or write ran into (the server refuses a client's key
/// after the client's side of the handshake is done, so the refusal
/// arrives on the first read).
fn connection_error(e: &LinkError) -> Option<&quinn::ConnectionError> {
    match e {
        LinkError::Connection(c) => Some(c),
        LinkError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c))) => Some(c),
        LinkError::Write(quinn::WriteError::ConnectionLost(c)) => Some(c),
        _ => None,
    }
}

/// The parent could not be reached: its row in the sync status (from this
/// node's certificate, whose issuer is the parent) shows it offline, with
/// the error and its time, even if it never connected.
fn parent_unreachable(shared: &Context, error: &str, next_attempt_ms: u64, incompatible: Option<String>) {
    let trust = shared.trust();
    let Some(parent) = trust.member(&shared.key.id()).map(|m| m.cert.issuer) else { return };
    let (division, name) = trust.member(&parent).map(|m| (m.cert.division.to_string(), m.cert.name.clone())).unwrap_or_default();
    let now = shared.clock.now_ms();
    shared.sync.update(&parent, |s| {
        if s.division.is_empty() {
            s.division = division;
            s.name = name;
            s.role = "parent".into();
        }
        s.connected = s.links > 0;
        s.errors += 1;
        s.last_error = Some(error.to_string());
        s.last_error_ms = Some(now);
        s.next_attempt_ms = Some(next_attempt_ms);
        s.incompatible = incompatible;
    });
}

/// The TLS alert `no_application_protocol` (120): the two ends offered no
/// sync protocol in common (UPGRADES.md §3.3).
const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;

fn no_common_protocol(e: &LinkError) -> bool {
    match connection_error(e) {
        Some(quinn::ConnectionError::ConnectionClosed(c)) => u64::from(c.error_code) == NO_APPLICATION_PROTOCOL,
        Some(quinn::ConnectionError::TransportError(t)) => u64::from(t.code) == NO_APPLICATION_PROTOCOL,
        _ => false,
    }
}

/// What a link refused for want of a common protocol says: what this node
/// speaks, and what to install.
fn incompatible(shared: &Context) -> String {
    let spoken: Vec<String> = shared.caps.protocols.iter().map(u32::to_string).collect();
    let oldest = shared.caps.protocols.iter().min().and_then(|v| crate::release::for_protocol(*v)).map(|r| r.version.clone()).unwrap_or_default();
    format!(
        "上级节点与本节点没有共同的同步协议，无法同步：本节点为 {} 版（协议 {}）。请将较旧的一方升级到 {oldest} 或更新的版本 (no sync protocol in common with the parent: this node runs release {} and speaks protocols {}; upgrade the older of the two to release {oldest} or later)",
        shared.caps.release,
        spoken.join(", "),
        shared.caps.release,
        spoken.join(", ")
    )
}

/// A link error as the operator reads it: a handshake the parent refused
/// says what to check.
fn describe(e: &LinkError) -> String {
    match (e, connection_error(e)) {
        (e, _) if no_common_protocol(e) => format!("{e:#}: the parent offered none of this node's sync protocols; see the upgrade alarm in /api/health"),
        (LinkError::Connect(_), _) | (_, Some(quinn::ConnectionError::TimedOut)) => format!("{e:#} (is the parent's QUIC address right and reachable?)"),
        (_, Some(quinn::ConnectionError::ConnectionClosed(c))) if is_tls_alert(c.error_code.into()) => format!(
            "the parent refused this node's TLS handshake ({}): is this node enrolled under it and its certificate imported (`zongzhi-node verify`), and not revoked?",
            String::from_utf8_lossy(&c.reason)
        ),
        (_, Some(quinn::ConnectionError::TransportError(t))) if is_tls_alert(t.code.into()) => {
            format!("this node refused the parent's TLS handshake ({}): is root_key the city's key, and is the center at this address enrolled?", t.reason)
        }
        _ => format!("{e:#}"),
    }
}

/// A QUIC error code carrying a TLS alert (0x100 + the alert, RFC 9001).
fn is_tls_alert(code: u64) -> bool {
    code & !0xff == 0x100
}

/// A handshake that failed at the TLS level on a connection a peer opened
/// here, for the refusal counters; `None` when this node's verifier
/// refused it (counted there, with its reason).
fn tls_refusal(e: &quinn::ConnectionError) -> Option<String> {
    match e {
        quinn::ConnectionError::TransportError(t) if u64::from(t.code) == NO_APPLICATION_PROTOCOL => Some(NO_COMMON_PROTOCOL.into()),
        quinn::ConnectionError::TransportError(t) if !t.reason.contains("invalid peer certificate") => Some(format!("TLS: {}", t.reason.split(':').next().unwrap_or("handshake failed").trim())),
        _ => None,
    }
}

/// The live connection per peer: a reconnecting peer replaces its old,
/// possibly half-dead connection, so two links never write one cursor.
type Links = Arc<std::sync::Mutex<std::collections::HashMap<NodeId, quinn::Connection>>>;

fn rand_jitter(max: u64) -> u64 {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    if max == 0 { 0 } else { u64::from_le_bytes(b) % max }
}

/// A misbehaving peer, for tests: it completes the handshake with a real,
/// enrolled key and then sends whatever the test asks, so tests can check
/// that bad input over a live link is refused and changes nothing.
#[doc(hidden)]
pub mod testing;
