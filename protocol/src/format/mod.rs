//! Record formats: the encoding and meaning of a record body, chosen by the
//! envelope's format byte. Every format ever signed stays readable and
//! folds the same, forever (`shared/UPGRADES.md` §1):
//!
//! - one frozen module per format ([`v3`], [`v4`]); a shipped module is
//!   never edited, and the corpus in `protocol/tests/corpus/` fails if one
//!   is;
//! - a body is decoded by its format's module, then upcast into the
//!   current model; nothing is re-encoded: the id and the signature stay on
//!   the original bytes;
//! - from format 4 on the format byte is inside the signed message;
//! - a validly framed and signed record of a format above [`LATEST`] is not
//!   refused but *unreadable*: the node keeps it aside (parks it) and reads
//!   it once a release that knows the format is installed.
//!
//! What never changes, in any format, so that a node can verify, chain and
//! place a record it cannot read: the envelope (`format | kind | author |
//! payload | signature`), the [`crate::record::Header`] at the start of
//! every payload, and the first fields of a case event ([`CasePrefix`]).

use crate::codec::{Decode, Encode};
use crate::division::DivisionCode;
use crate::id::RecordId;
use crate::identity::NodeId;

pub mod v3;
pub mod v4;

pub use v4::NotInFormat;

/// The oldest format this build reads. Formats 1 and 2 predate the
/// baseline release and were never deployed.
pub const OLDEST: u8 = 3;

/// The newest format this build reads and can write.
pub const LATEST: u8 = 4;

/// Whether this build reads `format`.
pub fn reads(format: u8) -> bool {
    (OLDEST..=LATEST).contains(&format)
}

/// Signed-message prefix of format 3 (`kind ‖ author ‖ payload` follow).
pub const SIGNING_DOMAIN_V1: &[u8] = b"zongzhi/record/v1\0";

/// Signed-message prefix from format 4 on (`format ‖ kind ‖ author ‖
/// payload` follow). Every format above 4, readable here or not, signs
/// this way, which is how an unreadable record's signature is checked.
pub const SIGNING_DOMAIN_V2: &[u8] = b"zongzhi/record/v2\0";

/// The parts of the signed message before the payload.
pub(crate) fn signed_prefix(format: u8, kind: u8, author: &NodeId) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN_V2.len() + 34);
    if format <= 3 {
        msg.extend_from_slice(SIGNING_DOMAIN_V1);
    } else {
        msg.extend_from_slice(SIGNING_DOMAIN_V2);
        msg.push(format);
    }
    msg.push(kind);
    msg.extend_from_slice(author.as_bytes());
    msg
}

/// The first fields of every case event, in every format: enough to know
/// which case a record belongs to, what it follows and who signed it for
/// which unit, without reading the rest.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct CasePrefix {
    /// `None` for a filing (the case is the record itself).
    pub case: Option<RecordId>,
    pub parents: Vec<RecordId>,
    pub unit: DivisionCode,
    pub operator: String,
}

impl CasePrefix {
    /// The case this event belongs to, given its own record id.
    pub fn case_id(&self, own_id: RecordId) -> RecordId {
        self.case.unwrap_or(own_id)
    }
}

/// A record whose body this build cannot read: its format is newer than
/// [`LATEST`]. It is kept with its exact bytes (verified, chained and sent
/// on like any other) and read after an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub format: u8,
    /// The envelope's kind byte (perhaps a kind this build does not know).
    pub kind: u8,
    /// For a case event: its frozen prefix.
    pub case: Option<CasePrefix>,
}

impl Unreadable {
    /// Why it is parked, as an operator reads it.
    pub fn reason(&self) -> String {
        format!("record format {} (this release reads formats {OLDEST}–{LATEST})", self.format)
    }
}
