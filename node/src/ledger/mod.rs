//! The append path: every change this node makes, and every record it
//! receives, is checked here and written in one synced batch together with
//! the derived state it implies, before anyone is told it happened.
//!
//! One writer thread owns the author chain head, the feed counter, the
//! hybrid clock and the trust store's updates. Requests that arrive while a
//! batch is being written are grouped into the next batch (group commit):
//! one fsync acknowledges many steps, and a step is acknowledged only after
//! its fsync. A commit thread writes each group and answers its callers
//! while the writer thread prepares the next one on top of it (see
//! `InFlight` for how that group reads what the previous one wrote).

use serde::{Deserialize, Serialize};
use zongzhi_protocol::case::Contact;
use zongzhi_protocol::case::SuperviseGrade;
use zongzhi_protocol::workflow::{DeadlineKind, Rejection};
use zongzhi_protocol::{Action, BlobHash, Body, Filing, NodeId, Record, RecordId};

use crate::context::Context;
use crate::store::StoreError;

mod commit;
mod ingest;
mod local;
mod reindex;
mod revoke;
#[cfg(test)]
mod tests;
mod writer;

pub use commit::Ledger;
pub use reindex::{fix_crossing_merges, fold_records, load_case_records, reindex, reindex_reading};
pub use writer::Writer;

use commit::{Commit, Reply};
use local::check_operator;
use reindex::index_search;
use writer::{Draft, Group, Heads, Touched, failed_write, put_record};

/// The operator name on automatic supervision notices.
pub const AUTO_OPERATOR: &str = "自动督办";

/// Most operations written in one batch.
const MAX_GROUP: usize = 512;
/// Most records kept waiting for their parents.
pub const MAX_PENDING: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no case {0}")]
    NoSuchCase(String),
    #[error("{}", .0.message)]
    Rejected(Rejection),
    #[error("{0}")]
    Invalid(String),
    #[error("stored data failed its integrity check: {0}")]
    Integrity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("already done")]
    AlreadyDone,
    /// The step raced another one (e.g. two policy versions signed at once).
    #[error("{0}")]
    Conflict(String),
    /// The synced write of the step's group failed (a full disk, an I/O
    /// error): nothing of it is stored; the caller may try again.
    #[error("write failed: {0}")]
    WriteFailed(String),
    /// Restored from a backup, the node signs nothing until a peer gave
    /// its own chain back ([`crate::recovery`]).
    #[error("this node was restored from a backup and signs nothing until its parent has given its own records back")]
    Restoring,
    /// The step needs a record format the city has not finalized (or this
    /// node's release does not write).
    #[error(transparent)]
    NeedsFormat(zongzhi_protocol::format::NotInFormat),
    /// The case holds a step this release cannot read: it takes no step
    /// here until the node is upgraded.
    #[error("this case has a step in record format {format}, which this release cannot read: install {install} to act on it")]
    NeedsUpgrade { format: u8, install: String },
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Cursor direction of a feed flowing from a child to this node.
pub const DIRECTION_UP: u8 = 0;

/// Where a batch of received records came from, so its cursor is stored in
/// the same write as the records.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub peer: NodeId,
    pub direction: u8,
    pub epoch: [u8; 16],
    pub upto: u64,
    /// The batch continues the peer's feed in order
    /// (`protocol::sync::FeedReceiver::continues_feed`): the peer's own
    /// records in it follow its chain, so a gap there is an alarm. False
    /// for the urgent batch and answers to `Want`.
    pub in_order: bool,
}

/// A change requested by an operator or a peer.
#[derive(Debug)]
pub enum Op {
    /// File a new case. `filing.number`, `filing.contact` and the
    /// complainant's fingerprint are assigned here; `query_code` (the
    /// receipt's) is stored only as its hash under the number.
    File { filing: Box<Filing>, contact: Option<Contact>, query_code: Option<QueryCode>, operator: String },
    /// A filing from another system (`crate::integration`): as `File`, and
    /// the system's reference is kept with the case in the same batch
    /// (`integration::source_entries`), so a repeat finds it, after a crash too.
    FileFrom { system: String, reference: String, filing: Box<Filing>, contact: Option<Contact>, query_code: Option<QueryCode>, operator: String },
    /// A workflow step on an existing case.
    Act { case: RecordId, action: Action, operator: String },
    /// A workflow step with secrets for the citizen's messages (the rating
    /// token of a feedback): kept beside the step, in its batch, for the
    /// notification worker (`crate::notify`), which deletes them when it
    /// queues the message.
    ActWithSecrets { case: RecordId, action: Action, operator: String, secrets: Vec<(&'static str, String)> },
    /// Store an attachment blob and record it on the case.
    Attach { case: RecordId, bytes: Vec<u8>, name: String, mime: String, operator: String },
    /// A workflow step that signs the hash of a document stored beside it
    /// in the same batch (a mediation agreement's text).
    ActWithBlob { case: RecordId, action: Action, operator: String, blob: Vec<u8> },
    /// Sign and store a non-case record of this node (certificate, revocation, policy).
    AppendOwn { body: Body },
    /// An automatic supervision notice: at most once per (case, clock,
    /// grade), and once more if the case is later raised a level (提级督办).
    /// The marker is written in the same batch as the notice, so a restart
    /// or a retried scan never issues it twice.
    AutoSupervise { case: RecordId, kind: DeadlineKind, started_ms: u64, grade: SuperviseGrade, raised: bool, note: String, assist: Option<(RecordId, zongzhi_protocol::case::RouteTarget)> },
    /// Store records received from elsewhere (signatures already checked).
    Ingest { records: Vec<Record>, blobs: Vec<(BlobHash, Vec<u8>)>, cursor: Option<Cursor> },
    /// Take in the records held aside that this release reads (start-up,
    /// after an upgrade).
    Unpark,
}

/// The receipt's query code: its hash goes into the filing; the code
/// itself is kept beside the filing for the receipt message only when the
/// node sends messages (`notify`), and deleted when the message is queued.
#[derive(Debug, Clone)]
pub struct QueryCode {
    pub code: String,
    pub notify: bool,
}

/// What an acknowledged step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub case: RecordId,
    pub event: RecordId,
}

/// What happened to received records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub applied: usize,
    pub duplicates: usize,
    pub pending: usize,
    pub rejected: Vec<(RecordId, String)>,
    /// Case events stored but void: signed after their author's revocation cut-off.
    pub void: usize,
    /// Parents (or cases) that records in `pending` wait for.
    pub missing: Vec<RecordId>,
    /// Records held aside: a format this release cannot read, or a step
    /// that follows one ([`crate::store::ParkedEntry`]).
    pub parked: usize,
    /// The newest format among them (0 when none).
    pub parked_needs: u8,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Step(Ack),
    Appended(RecordId),
    Ingested(IngestReport),
}

/// An integrity alarm, stored with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alarm {
    /// `equivocation`, `chain_gap` or `own_record_unknown`.
    pub kind: String,
    pub author: String,
    pub seq: u64,
    pub detail: String,
    /// Hex of the conflicting records' bytes.
    pub proof: Vec<String>,
    pub detected_ms: u64,
    pub peer: Option<String>,
}
