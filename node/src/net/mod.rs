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

use zongzhi_protocol::sync;
use zongzhi_protocol::NodeId;

use crate::ledger::{Ledger, LedgerError};
use crate::context::Context;
use crate::replication::link::{Side, Violation};
use crate::replication::ReplicationError;
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
                        Err(e) => tracing::info!("incoming connection failed: {e}"),
                    }
                });
            }
        }));
    }
    if let Some(parent) = parent {
        let client = client_config(&shared)?;
        let (ep, shared, ledger, links) = (endpoint.clone(), shared.clone(), ledger.clone(), links.clone());
        tasks.push(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            let mut failing = false;
            loop {
                let mut connected = false;
                let result = async {
                    let conn = ep.connect_with(client.clone(), parent, "zongzhi")?.await?;
                    connected = true;
                    run_link(shared.clone(), ledger.clone(), conn, Side::Child, links.clone()).await
                }
                .await;
                if let Err(e) = result {
                    // Once at INFO when the link goes down; while the parent
                    // stays unreachable, the sync status shows the error and
                    // its time, and the log repeats it at DEBUG only.
                    if connected || !failing {
                        tracing::info!(%parent, "parent link down: {e:#}");
                    } else {
                        tracing::debug!(%parent, "parent still unreachable: {e:#}");
                    }
                    failing = true;
                    if !connected {
                        parent_unreachable(&shared, &e);
                    }
                }
                if connected {
                    backoff = Duration::from_millis(200);
                }
                // Jittered exponential backoff, capped at 5 s: a village that
                // is offline for days retries cheaply and is back within
                // seconds of its link returning.
                let jitter = rand_jitter(backoff.as_millis() as u64 / 2);
                tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }));
    }
    Ok(tasks)
}

/// The parent could not be reached: its row in the sync status (from this
/// node's certificate, whose issuer is the parent) shows it offline, with
/// the error and its time, even if it never connected.
fn parent_unreachable(shared: &Context, error: &LinkError) {
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
        s.last_error = Some(format!("{error:#}"));
        s.last_error_ms = Some(now);
    });
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
