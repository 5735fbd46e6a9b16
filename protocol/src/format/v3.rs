//! Record format 3 (release 0.1.0, the baseline): the citizen's side.
//!
//! FROZEN. This module is the format as release 0.1.0 signed it, and it is
//! never edited: every format-3 record ever signed must decode here, to
//! the same values, forever (the corpus in `protocol/tests/corpus/format-3`
//! fails if it does not). The types that format 4 changed are copied here
//! as they were; the ones it did not change are shared with the current
//! model and re-exported (a change to one of those is a new format too, and
//! must first copy it here).
//!
//! Signed message: `zongzhi/record/v1\0 ‖ kind ‖ author ‖ payload` (the
//! format byte is not signed; format 4 signs it).

use crate::case::{BlobHash, Filing, Rating, RatingInvite, RecordId, RouteTarget, SuperviseGrade};
pub use crate::cert::{NodeCert, Revocation};
use crate::codec::{Decode, Encode};
use crate::division::DivisionCode;
use crate::policy::{Category, DeadlineTable, SupervisionGrades, Window, YearCalendar};
pub use crate::report::MonthlyReport;

/// A workflow step of format 3: 22 variants, in this order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Action {
    File(Box<Filing>),
    SignFor,
    Route { window: String, requirements: String, due_ms: Option<u64> },
    Dispatch { to: DivisionCode, requirements: String, due_ms: Option<u64> },
    Escalate { reason: String },
    Return { reason: String },
    Reroute { target: RouteTarget, reason: String },
    AddHelpers { helpers: Vec<RouteTarget> },
    Progress { note: String, public: bool },
    RequestExtension { working_days: u32, reason: String },
    DecideExtension { approve: bool, note: String },
    Supervise { grade: SuperviseGrade, note: String },
    Resolve { public_reply: String, internal_note: String },
    Feedback { method: String, note: String, invite: Option<RatingInvite> },
    Rate { rating: Rating, comment: String, result_rating: Option<Rating> },
    Reopen { reason: String },
    Merge { into: RecordId },
    Archive,
    Attach { blob: BlobHash, name: String, mime: String, size: u64 },
    CitizenRate { token: [u8; 16], rating: Rating, result_rating: Rating, comment: String },
    Appeal { reason: String },
    DecideAppeal { upheld: bool, note: String },
}

/// The body of a format-3 `CaseEvent` record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CaseEvent {
    pub case: Option<RecordId>,
    pub parents: Vec<RecordId>,
    pub unit: DivisionCode,
    pub operator: String,
    pub action: Action,
    pub policy: u32,
}

/// The body of a format-3 `Policy` record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Policy {
    pub version: u32,
    pub categories: Vec<Category>,
    pub windows: Vec<Window>,
    pub deadlines: DeadlineTable,
    pub supervision: SupervisionGrades,
    pub repeat_window_days: u32,
    pub report_grace_minutes: u32,
    pub calendar_warning_from: u16,
    pub calendars: Vec<YearCalendar>,
}
