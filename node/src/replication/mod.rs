//! Replication without I/O.
//!
//! - [`link`]: one link as a state machine, frames in and actions out (the
//!   handshake's checks, resuming, the send window, the urgent batch, acks
//!   after the synced write, `Want`). `net` drives it over QUIC; the
//!   simulator (`zongzhi-sim`) drives the same machine over in-memory
//!   queues of encoded frames.
//! - [`outgoing`]: what a node sends a peer (batches of its feed after the
//!   peer's cursor, the urgent-first batch, answers to `Want`), each record
//!   asked of [`protocol::sync::scope`]; blocking store reads.
//! - [`incoming`]: what a received batch becomes (records decoded and
//!   batch-verified, then one `Op::Ingest` with the cursor; the parents to
//!   ask for).
//!
//! [`protocol::sync::scope`]: zongzhi_protocol::sync::scope

use zongzhi_protocol::record::RecordError;

use crate::context::Context;
use crate::store::{StoreError, meta};

pub mod fleet;
mod incoming;
pub mod link;
mod outgoing;

pub use fleet::{STATUS_EVERY, keep_status, own_report, status_reports};
pub use incoming::{decode_verified, wants};
pub use outgoing::{Outgoing, build, build_batch, build_urgent, waiting_for, wanted};

/// Why a batch could not be built or a received one was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// Our own store failed (the link retries later).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode (the integrity check names it).
    #[error("stored record does not decode: {0}")]
    Stored(RecordError),
    /// The peer sent a record that does not decode.
    #[error("received record does not decode: {0}")]
    Malformed(RecordError),
    /// The peer sent a record whose signature is wrong: the batch is refused.
    #[error("record {0} has a bad signature")]
    BadSignature(String),
    /// This node cannot take part in replication yet.
    #[error("{0}")]
    NotEnrolled(String),
}

/// This node's feed epoch (a restored or replaced feed has a new one).
/// After the link stored a batch: when it has given this restored node
/// everything the peer held (`Link::confirms_recovery`), tells the
/// restore ([`crate::recovery`]) and returns true; the driver then runs an
/// empty ingest, on which the writer ends the restore (or a later one,
/// once the node's own waiting records are applied). Both drivers (QUIC
/// and the simulator's) call this.
pub fn note_recovery(ctx: &Context, link: &mut link::Link) -> bool {
    if !link.confirms_recovery() {
        return false;
    }
    let from_parent = link.direction_in() == zongzhi_protocol::sync::Direction::Down;
    ctx.recovery.caught_up(&link.peer_division().to_string(), from_parent);
    link.recovery_confirmed();
    true
}

pub fn feed_epoch(ctx: &Context) -> [u8; 16] {
    ctx.store.meta_get(meta::FEED_EPOCH).ok().flatten().and_then(|v| v.try_into().ok()).unwrap_or([0; 16])
}

/// This node's certificate chain, root first, as the record bytes a
/// `Hello` carries.
pub fn own_chain(ctx: &Context) -> Result<Vec<Vec<u8>>, ReplicationError> {
    let ids = ctx.trust().chain(&ctx.key.id()).ok_or_else(|| ReplicationError::NotEnrolled("this node has no certificate chain (import one with zongzhi-node import-cert)".into()))?;
    ids.iter().map(|id| ctx.store.record_bytes(id)?.ok_or_else(|| ReplicationError::NotEnrolled(format!("certificate record {id} missing")))).collect()
}

fn stored(e: RecordError) -> ReplicationError {
    ReplicationError::Stored(e)
}
