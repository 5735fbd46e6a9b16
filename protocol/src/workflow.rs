//! The case state machine: a deterministic fold of a case's events.
//!
//! Events are applied in causal order (parents first), ties broken by HLC
//! then record id, so every node that holds the same events computes the same
//! state whatever order they arrived in. Authority decides, not timestamps:
//! only the owner routes, dispatches, escalates or resolves; supervisors are
//! ancestors of the owner. An event that breaks a rule is kept in the
//! timeline, marked rejected with the rule it broke, and changes nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use crate::case::{Action, BlobHash, CaseEvent, Filing, Fulfilment, Mediator, Rating, RatingInvite, RouteTarget, SuperviseGrade, Urgency, WithdrawalConfirmation, rating_token_hash};
use crate::division::{DivisionCode, Level};
use crate::hlc::Hlc;
use crate::identity::NodeId;
use crate::policy::{Policy, PolicyError, PolicySet};
use crate::record::{Body, Record, RecordId};

/// Where a case stands.
// Encoded in the node's stored case summaries (derived state, rebuilt by
// `reindex`): a new variant goes at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, crate::codec::Encode, crate::codec::Decode)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 待签收: filed, escalated or dispatched; the owner has not signed for it.
    AwaitingReceipt,
    /// 已签收: the owner holds it and must route, dispatch, escalate or resolve.
    Accepted,
    /// 办理中: routed to a department window.
    Handling,
    /// 已退回: returned with reasons; the owner must re-route (改派).
    Returned,
    /// 已办结.
    Resolved,
    /// 已反馈.
    FedBack,
    /// 已评价.
    Rated,
    /// 已归档.
    Archived,
    /// 已并单: a duplicate of another case.
    Merged,
    /// 已作废: filed with a key that was revoked before it signed the
    /// filing (see [`FoldContext`]); nothing more can happen to it.
    Void,
    /// 不予受理 (format 4): not this center's matter; the citizen was
    /// referred elsewhere.
    Declined,
    /// 已撤回 (format 4): the citizen withdrew the request.
    Withdrawn,
    /// 已中止 (format 4): the case waits; its handling clocks stand still
    /// until 恢复.
    Suspended,
}

impl Status {
    pub const ALL: &'static [Status] = &[
        Status::AwaitingReceipt,
        Status::Accepted,
        Status::Handling,
        Status::Returned,
        Status::Resolved,
        Status::FedBack,
        Status::Rated,
        Status::Archived,
        Status::Merged,
        Status::Void,
        Status::Declined,
        Status::Withdrawn,
        Status::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingReceipt => "awaiting_receipt",
            Status::Accepted => "accepted",
            Status::Handling => "handling",
            Status::Returned => "returned",
            Status::Resolved => "resolved",
            Status::FedBack => "fed_back",
            Status::Rated => "rated",
            Status::Archived => "archived",
            Status::Merged => "merged",
            Status::Void => "void",
            Status::Declined => "declined",
            Status::Withdrawn => "withdrawn",
            Status::Suspended => "suspended",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Status::AwaitingReceipt => "待签收",
            Status::Accepted => "已签收",
            Status::Handling => "办理中",
            Status::Returned => "已退回",
            Status::Resolved => "已办结",
            Status::FedBack => "已反馈",
            Status::Rated => "已评价",
            Status::Archived => "已归档",
            Status::Merged => "已并单",
            Status::Void => "已作废",
            Status::Declined => "不予受理",
            Status::Withdrawn => "已撤回",
            Status::Suspended => "已中止",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// Still needs work by its owner.
    pub fn is_open(self) -> bool {
        matches!(self, Status::AwaitingReceipt | Status::Accepted | Status::Handling | Status::Returned | Status::Suspended)
    }

    /// Nothing more can happen to the case.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Archived | Status::Merged | Status::Void | Status::Declined | Status::Withdrawn)
    }
}

/// The clocks a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, crate::codec::Encode, crate::codec::Decode)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    Registration,
    Routing,
    SignFor,
    Resolution,
    Feedback,
    Rehandle,
    /// Responders on site (urgent cases): met by the first progress report
    /// or the resolution.
    OnSite,
    /// 督办回复: the supervised unit answers a 督办 notice (format-4
    /// notices; the clock names the notice).
    SupervisionReply,
    /// 协办: a helper replies to a request for assistance (format 4; the
    /// clock names the request, and a helping window of the requesting
    /// center).
    Assistance,
    /// 中止期限: a 中止 case is expected to resume by this time (format 4).
    Suspension,
    /// 回访: the return visit after a mediation agreement (format 4).
    ReturnVisit,
}

impl DeadlineKind {
    pub const ALL: &'static [DeadlineKind] = &[
        DeadlineKind::Registration,
        DeadlineKind::Routing,
        DeadlineKind::SignFor,
        DeadlineKind::Resolution,
        DeadlineKind::Feedback,
        DeadlineKind::Rehandle,
        DeadlineKind::OnSite,
        DeadlineKind::SupervisionReply,
        DeadlineKind::Assistance,
        DeadlineKind::Suspension,
        DeadlineKind::ReturnVisit,
    ];

    pub fn parse(s: &str) -> Option<DeadlineKind> {
        DeadlineKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::Registration => "registration",
            DeadlineKind::Routing => "routing",
            DeadlineKind::SignFor => "sign_for",
            DeadlineKind::Resolution => "resolution",
            DeadlineKind::Feedback => "feedback",
            DeadlineKind::Rehandle => "rehandle",
            DeadlineKind::OnSite => "on_site",
            DeadlineKind::SupervisionReply => "supervision_reply",
            DeadlineKind::Assistance => "assistance",
            DeadlineKind::Suspension => "suspension",
            DeadlineKind::ReturnVisit => "return_visit",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            DeadlineKind::Registration => "登记",
            DeadlineKind::Routing => "分流",
            DeadlineKind::SignFor => "签收",
            DeadlineKind::Resolution => "办结",
            DeadlineKind::Feedback => "反馈",
            DeadlineKind::Rehandle => "重办",
            DeadlineKind::OnSite => "到场",
            DeadlineKind::SupervisionReply => "督办回复",
            DeadlineKind::Assistance => "协办",
            DeadlineKind::Suspension => "中止期限",
            DeadlineKind::ReturnVisit => "回访",
        }
    }
}

/// One running or finished clock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deadline {
    pub kind: DeadlineKind,
    /// The unit the clock runs against.
    pub unit: DivisionCode,
    pub started_ms: u64,
    /// `None` when it cannot be computed (see `waiting_year`, `error`).
    pub due_ms: Option<u64>,
    /// The due time needs the working-day calendar of this year, which the
    /// rules of the step that started the clock do not have yet.
    pub waiting_year: Option<i32>,
    /// When the step was done; `None` while running.
    pub met_ms: Option<u64>,
    /// Stopped without the step being done (case merged).
    pub cancelled: bool,
    pub error: Option<String>,
    /// Working days added by approved extensions.
    pub extended_working_days: u32,
    /// For a 督办回复 clock: the notice to answer; for a 协办 clock: the
    /// request.
    pub notice: Option<RecordId>,
    /// For a 协办 clock of a department window: the window (the clock's
    /// unit is the requesting center).
    pub window: Option<String>,
    /// Set while the case is 中止: the clock stands still, holding what it
    /// had left.
    pub paused: Option<Paused>,
}

/// A clock standing still (中止).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Paused {
    pub at_ms: u64,
    /// What it had left; `None` when its due time was not known yet (its
    /// year's calendar missing): the fold computes it again once it is.
    pub left: Option<Left>,
}

/// The time a paused clock had left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Left {
    /// Working days after the day of the pause (day-scale clocks: they
    /// restart with as many working days after the day of 恢复).
    WorkingDays(u32),
    /// Natural time (hour-scale clocks).
    Ms(u64),
}

impl Deadline {
    pub fn is_running(&self) -> bool {
        self.met_ms.is_none() && !self.cancelled && self.paused.is_none()
    }

    pub fn is_overdue(&self, now_ms: u64) -> bool {
        self.is_running() && self.due_ms.is_some_and(|d| now_ms > d)
    }

    pub fn met_on_time(&self) -> Option<bool> {
        Some(self.met_ms? <= self.due_ms?)
    }

    /// Where the clock stands at `now_ms`; due soon once `due_soon_percent`
    /// of its time has elapsed.
    pub fn clock(&self, now_ms: u64, due_soon_percent: u8) -> Clock {
        if self.cancelled {
            return Clock::Cancelled;
        }
        if self.paused.is_some() {
            return Clock::Paused;
        }
        let Some(due) = self.due_ms else {
            return if self.waiting_year.is_some() { Clock::WaitingForCalendar } else { Clock::Unknown };
        };
        if let Some(met) = self.met_ms {
            return if met <= due { Clock::MetOnTime } else { Clock::MetLate };
        }
        if now_ms > due {
            return Clock::Overdue;
        }
        let span = due.saturating_sub(self.started_ms).max(1) as u128;
        let used = now_ms.saturating_sub(self.started_ms) as u128;
        if used * 100 >= span * due_soon_percent as u128 { Clock::DueSoon } else { Clock::Running }
    }
}

/// The state of one clock at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    Running,
    /// Most of its time used (amber in the console).
    DueSoon,
    /// Past due and still running (red).
    Overdue,
    MetOnTime,
    MetLate,
    Cancelled,
    /// No due time yet: the year's working-day calendar is missing (the
    /// deadline's `waiting_year`). Computed when a policy with it arrives.
    WaitingForCalendar,
    /// No due time (out of the supported time range; see the deadline's error).
    Unknown,
    /// Standing still while the case is 中止.
    Paused,
}

/// A rule an event broke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// Stable rule name, e.g. `only-owner-may-resolve`.
    pub rule: &'static str,
    pub message: String,
}

fn reject<T>(rule: &'static str, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection { rule, message: message.into() })
}

/// One line of the case history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub id: RecordId,
    pub author: NodeId,
    pub hlc: Hlc,
    pub unit: DivisionCode,
    pub operator: String,
    pub action: Action,
    pub outcome: Result<(), Rejection>,
    /// 被覆盖: the step was refused because a concurrent step its author had
    /// not seen (signed elsewhere, offline or in flight) took the case first;
    /// this names that winning step. `None` for steps that stand and for
    /// steps refused on their own merits.
    pub overruled_by: Option<RecordId>,
    /// The department window the step acts for, where it has one: a
    /// window's 协办回复, and the owning center's steps on a case at one of
    /// its windows (办理中). Derived by the fold, never signed.
    pub window: Option<String>,
}

impl TimelineEntry {
    fn of(e: &EventRef<'_>, outcome: Result<(), Rejection>) -> TimelineEntry {
        TimelineEntry { overruled_by: None, window: None, id: e.id, author: e.author, hlc: e.hlc, unit: e.event.unit, operator: e.event.operator.clone(), action: e.event.action.clone(), outcome }
    }
}

/// Who gave a rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatedBy {
    /// The citizen, on a public page, with the one-time token.
    Citizen,
    /// Staff entered what the citizen told them.
    Staff,
}

/// Where a 差评申诉 stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppealState {
    Pending,
    /// 申诉成立: the rating no longer counts in the satisfaction figures.
    Upheld,
    /// 申诉驳回: the rating counts as given.
    Dismissed,
}

/// One rating the case received. Every rating is kept: a 不满意 followed by
/// 重办 and a 满意 is two ratings, each counted in the month it was given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RatingEntry {
    pub event: RecordId,
    pub at_ms: u64,
    /// The unit whose work was rated (the one that resolved the case).
    pub unit: DivisionCode,
    pub by: RatedBy,
    pub rating: Rating,
    /// Satisfaction with the result (the citizen gives it separately).
    pub result_rating: Option<Rating>,
    pub appeal: Option<AppealState>,
    pub appeal_reason: Option<String>,
}

impl RatedBy {
    pub fn zh(self) -> &'static str {
        match self {
            RatedBy::Citizen => "群众评价",
            RatedBy::Staff => "工作人员录入",
        }
    }
}

impl RatingEntry {
    /// Counts in the satisfaction figures (not set aside by an upheld appeal).
    pub fn counts(&self) -> bool {
        self.appeal != Some(AppealState::Upheld)
    }
}

/// A pending extension request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExtensionRequest {
    pub working_days: u32,
    pub reason: String,
    pub unit: DivisionCode,
    pub operator: String,
    pub requested_ms: u64,
}

/// A 督办 notice of format 4 and its reply (督办回复).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    pub id: RecordId,
    pub grade: SuperviseGrade,
    /// The supervising unit.
    pub by: DivisionCode,
    /// The supervised unit, which must reply.
    pub to: DivisionCode,
    pub at_ms: u64,
    /// When the reply is due (`None` while the calendar is missing).
    pub reply_due_ms: Option<u64>,
    pub replied_ms: Option<u64>,
    pub measures: Option<String>,
    /// A later notice to the same unit took its place before a reply.
    pub superseded_by: Option<RecordId>,
}

impl Notice {
    /// Waiting for its reply.
    pub fn is_pending(&self) -> bool {
        self.replied_ms.is_none() && self.superseded_by.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub blob: BlobHash,
    pub name: String,
    pub mime: String,
    pub size: u64,
    pub unit: DivisionCode,
}

/// 不予受理 (format 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined {
    pub id: RecordId,
    /// A referral code of the policy the step named (`policy`).
    pub referral: String,
    pub reason: String,
    pub unit: DivisionCode,
    pub at_ms: u64,
    /// The policy version the step named: its referral list says where
    /// the citizen was sent.
    pub policy: u32,
}

/// 撤回 (format 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    pub id: RecordId,
    pub confirmation: WithdrawalConfirmation,
    pub reason: String,
    pub unit: DivisionCode,
    pub at_ms: u64,
}

/// One 中止 and its 恢复 (format 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub id: RecordId,
    /// A 中止 reason code of the policy the step named (`policy`).
    pub reason: String,
    pub note: String,
    pub unit: DivisionCode,
    pub at_ms: u64,
    pub expected_ms: u64,
    pub policy: u32,
    /// The status the case had, and takes again on 恢复.
    pub before: Status,
    pub resumed_ms: Option<u64>,
    pub resumed_by: Option<RecordId>,
}

/// One helper of a 协办 request (format 4) and its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assistance {
    /// The 协办 step.
    pub request: RecordId,
    /// The requesting center (the owner when it asked).
    pub by: DivisionCode,
    pub helper: RouteTarget,
    pub requirements: String,
    pub at_ms: u64,
    pub working_days: u32,
    /// `None` while the calendar is missing.
    pub due_ms: Option<u64>,
    pub replied_ms: Option<u64>,
    pub reply: Option<String>,
    pub reply_event: Option<RecordId>,
    /// Ended unanswered: the case moved to another center, was resolved
    /// or closed (the step that ended it). A reply is still taken.
    pub ended_by: Option<RecordId>,
    /// 协办督办: the highest grade, and how many.
    pub supervision: Option<SuperviseGrade>,
    pub supervisions: u32,
}

impl Assistance {
    /// Waiting for its reply.
    pub fn is_pending(&self) -> bool {
        self.replied_ms.is_none() && self.ended_by.is_none()
    }

    /// The center that answers for the reply: a helper unit, or for a
    /// window the requesting center.
    pub fn unit(&self) -> DivisionCode {
        match &self.helper {
            RouteTarget::Unit(u) => *u,
            RouteTarget::Window(_) => self.by,
        }
    }

    /// The helping window, if the helper is one.
    pub fn window(&self) -> Option<&str> {
        match &self.helper {
            RouteTarget::Window(w) => Some(w),
            RouteTarget::Unit(_) => None,
        }
    }
}

/// A mediation session (调解, format 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: RecordId,
    pub unit: DivisionCode,
    pub at_ms: u64,
    pub held_ms: u64,
    pub mediators: Vec<Mediator>,
    pub attendees: String,
    pub notes: String,
}

/// A mediation agreement (调解协议书, format 4), its 司法确认 and 回访.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub id: RecordId,
    /// The mediating unit: it refers the agreement to the court and visits.
    pub unit: DivisionCode,
    pub at_ms: u64,
    pub document: BlobHash,
    pub signatures: Vec<BlobHash>,
    pub mediators: Vec<Mediator>,
    pub signed_ms: u64,
    pub confirmation: Option<Confirmation>,
    pub visits: Vec<Visit>,
}

/// 司法确认: the referral to the court and its ruling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub id: RecordId,
    pub at_ms: u64,
    pub court: String,
    pub note: String,
    pub ruling: Option<Ruling>,
}

/// The court's ruling on an agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    pub id: RecordId,
    pub at_ms: u64,
    pub confirmed: bool,
    pub ruling: String,
    pub ruled_ms: u64,
    pub note: String,
}

/// A return visit (回访).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub id: RecordId,
    pub at_ms: u64,
    pub fulfilment: Fulfilment,
    pub method: String,
    pub note: String,
}

/// A case's mediation (format 4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mediation {
    pub sessions: Vec<Session>,
    /// In order; the last is the one in force (a new one only after the
    /// court refused to confirm the earlier).
    pub agreements: Vec<Agreement>,
}

impl Mediation {
    pub fn agreement(&self) -> Option<&Agreement> {
        self.agreements.last()
    }
}

/// The folded state of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseState {
    pub id: RecordId,
    pub filing: Filing,
    pub filed_by: DivisionCode,
    pub filed_ms: u64,
    pub owner: DivisionCode,
    pub status: Status,
    pub window: Option<String>,
    /// The unit that sent the case to its owner (for 退单).
    pub came_from: Option<DivisionCode>,
    pub helpers: Vec<RouteTarget>,
    /// Every unit that has owned the case, in order, without repeats.
    pub units_handled: Vec<DivisionCode>,
    /// Highest level the case reached.
    pub highest_level: Level,
    pub escalations: u32,
    pub returns: u32,
    pub reopens: u32,
    pub extension: Option<ExtensionRequest>,
    pub supervision: Option<SuperviseGrade>,
    pub supervisions: u32,
    /// 督办 notices that ask for a reply (format 4), in order.
    pub notices: Vec<Notice>,
    pub resolved_ms: Option<u64>,
    pub resolved_by: Option<DivisionCode>,
    pub public_reply: Option<String>,
    pub fed_back_ms: Option<u64>,
    pub rating: Option<Rating>,
    pub rated_ms: Option<u64>,
    /// Every rating, in order (the last is the current one while the
    /// case is 已评价).
    pub ratings: Vec<RatingEntry>,
    /// The citizen's rating invitation of the last feedback, while open.
    pub invite: Option<RatingInvite>,
    pub merged_into: Option<RecordId>,
    pub archived_ms: Option<u64>,
    pub attachments: Vec<Attachment>,
    pub deadlines: Vec<Deadline>,
    /// Events with no known successor: the `parents` of the next event.
    pub heads: Vec<RecordId>,
    pub last_hlc: Hlc,
    pub timeline: Vec<TimelineEntry>,
    /// The newest policy version an event named that this node does not
    /// hold yet (an older one stood in for it); the case is folded again
    /// when it arrives.
    pub policy_missing: Option<u32>,
    /// The accepted merge event (HLC, id), once merged.
    pub merge_event: Option<(Hlc, RecordId)>,
    /// 不予受理 (format 4).
    pub declined: Option<Declined>,
    /// 撤回 (format 4).
    pub withdrawn: Option<Withdrawn>,
    /// 中止 and 恢复 (format 4), in order.
    pub suspensions: Vec<Suspension>,
    /// 协办 requests with deadlines (format 4): one entry per helper.
    pub assists: Vec<Assistance>,
    /// 调解 (format 4).
    pub mediation: Mediation,
}

/// What the fold needs of one record.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub id: RecordId,
    pub author: NodeId,
    /// The author's sequence number (the revocation cut-off compares with it).
    pub seq: u64,
    pub hlc: Hlc,
    /// The record format the event was signed in: the fold takes each
    /// event with the rules of its format (a 督办 of format 4 asks for a
    /// reply; one of format 3 did not).
    pub format: u8,
    pub event: &'a CaseEvent,
}

impl<'a> EventRef<'a> {
    pub fn from_record(record: &'a Record) -> Option<EventRef<'a>> {
        match &record.body {
            Body::CaseEvent(event) => Some(EventRef { id: record.id, author: record.author, seq: record.header.seq, hlc: record.header.hlc, format: record.format, event }),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum FoldError {
    #[error("a case needs exactly one filing event without a case id, found {0}")]
    NoSingleFiling(usize),
    #[error("event {0:?} belongs to another case")]
    ForeignEvent(RecordId),
    #[error("event {0:?} names parents that are not present")]
    MissingParents(RecordId),
}

/// What the fold of one case learns from outside it.
///
/// Which keys were revoked, and after which of their records: a revocation
/// learned late voids the same events as one known from the start.
///
/// Which merge (并单) another case took: of two crossing merges (A into B,
/// B into A, signed at the same moment on two nodes) the earlier by
/// (HLC, id) stands and the later is rejected, so no two cases close into
/// each other. The node re-folds the later one's case when the earlier
/// arrives after it.
///
/// Every node that holds the same records computes the same states,
/// whatever order they arrived in.
pub trait FoldContext {
    /// The cut-off: records of `author` with a higher sequence number are void.
    fn cutoff(&self, author: &NodeId) -> Option<u64>;

    fn is_void(&self, e: &EventRef<'_>) -> bool {
        self.cutoff(&e.author).is_some_and(|c| e.seq > c)
    }

    /// The accepted merge of `case` (its event's HLC and id), if known.
    fn merge_of(&self, _case: &RecordId) -> Option<(Hlc, RecordId)> {
        None
    }
}

/// No key revoked (tests, and tools that fold without a trust store).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocations;

impl FoldContext for NoRevocations {
    fn cutoff(&self, _: &NodeId) -> Option<u64> {
        None
    }
}

fn void_rejection(e: &EventRef<'_>) -> Rejection {
    Rejection { rule: "author-revoked", message: format!("the key of {} was revoked before it signed this record (seq {})", e.event.unit, e.seq) }
}

/// Orders events parents-first, ties by (HLC, id). Fails if a parent is missing.
pub fn causal_order<'a>(events: &[EventRef<'a>]) -> Result<Vec<EventRef<'a>>, FoldError> {
    let by_id: HashMap<RecordId, usize> = events.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let mut waiting = vec![0usize; events.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    for (i, e) in events.iter().enumerate() {
        let mut seen = HashSet::new();
        for p in &e.event.parents {
            if !seen.insert(*p) {
                continue;
            }
            let Some(&pi) = by_id.get(p) else {
                return Err(FoldError::MissingParents(e.id));
            };
            waiting[i] += 1;
            children[pi].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<(Hlc, RecordId, usize)>> = events.iter().enumerate().filter(|(i, _)| waiting[*i] == 0).map(|(i, e)| Reverse((e.hlc, e.id, i))).collect();
    let mut out = Vec::with_capacity(events.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        out.push(events[i]);
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse((events[c].hlc, events[c].id, c)));
            }
        }
    }
    Ok(out)
}

/// Folds all events of one case. Duplicate events (same id) count once.
pub fn fold(policies: &PolicySet, revoked: &impl FoldContext, events: &[EventRef<'_>]) -> Result<CaseState, FoldError> {
    let mut unique: BTreeMap<RecordId, EventRef<'_>> = BTreeMap::new();
    for e in events {
        unique.insert(e.id, *e);
    }
    let events: Vec<EventRef<'_>> = unique.into_values().collect();
    let filings: Vec<&EventRef<'_>> = events.iter().filter(|e| e.event.case.is_none()).collect();
    if filings.len() != 1 {
        return Err(FoldError::NoSingleFiling(filings.len()));
    }
    let case_id = filings[0].id;
    if let Some(e) = events.iter().find(|e| e.event.case.is_some_and(|c| c != case_id)) {
        return Err(FoldError::ForeignEvent(e.id));
    }
    let ordered = causal_order(&events)?;
    let mut iter = ordered.into_iter();
    let first = iter.next().ok_or(FoldError::NoSingleFiling(0))?;
    if first.id != case_id {
        // The filing must be the causal root; anything before it is foreign.
        return Err(FoldError::ForeignEvent(first.id));
    }
    let mut state = CaseState::file(policies, revoked, first).map_err(|_| FoldError::NoSingleFiling(0))?;
    for e in iter {
        state.apply(policies, revoked, e);
    }
    Ok(state)
}

impl CaseState {
    /// Starts a case from its filing event. The node that files a case
    /// checks it with [`validate_filing`] first.
    pub fn file(policies: &PolicySet, revoked: &impl FoldContext, e: EventRef<'_>) -> Result<CaseState, Rejection> {
        let Action::File(filing) = &e.event.action else {
            return reject("first-event-is-filing", "a case starts with a filing (受理) event");
        };
        if e.event.case.is_some() || !e.event.parents.is_empty() {
            return reject("filing-has-no-parents", "a filing event names no case and no parents");
        }
        // The filing's content was checked by its author against the policy
        // it held (see `validate_filing`); replaying it must not depend on
        // this node's policy, or nodes could disagree about a case's existence.
        let now = e.hlc.wall_ms;
        let unit = e.event.unit;
        let mut state = CaseState {
            id: e.id,
            filing: (**filing).clone(),
            filed_by: unit,
            filed_ms: now,
            owner: unit,
            status: Status::AwaitingReceipt,
            window: None,
            came_from: None,
            helpers: Vec::new(),
            units_handled: vec![unit],
            highest_level: unit.level(),
            escalations: 0,
            returns: 0,
            reopens: 0,
            extension: None,
            supervision: None,
            supervisions: 0,
            notices: Vec::new(),
            resolved_ms: None,
            resolved_by: None,
            public_reply: None,
            fed_back_ms: None,
            rating: None,
            rated_ms: None,
            ratings: Vec::new(),
            invite: None,
            merged_into: None,
            archived_ms: None,
            attachments: Vec::new(),
            deadlines: Vec::new(),
            heads: vec![e.id],
            last_hlc: e.hlc,
            timeline: Vec::new(),
            policy_missing: None,
            merge_event: None,
            declined: None,
            withdrawn: None,
            suspensions: Vec::new(),
            assists: Vec::new(),
            mediation: Mediation::default(),
        };
        let rules = policies.rules(e.event.policy);
        if !rules.held {
            state.policy_missing = Some(e.event.policy);
        }
        let policy = rules.policy;
        if revoked.is_void(&e) {
            // The case exists (later events name it) but is void from the start.
            state.status = Status::Void;
            state.timeline.push(TimelineEntry::of(&e, Err(void_rejection(&e))));
            return Ok(state);
        }
        let received = filing.received_at_ms.min(now);
        let urgency = filing.urgency;
        state.start_minutes(DeadlineKind::Registration, unit, received, policy.deadlines.registration_minutes);
        state.meet(DeadlineKind::Registration, now);
        state.start_minutes(DeadlineKind::Routing, unit, received, policy.routing_minutes(urgency));
        let days = policy.resolution_working_days(filing.complexity);
        state.start_working_days(policy, DeadlineKind::Resolution, unit, received, days);
        if urgency == Urgency::Urgent {
            state.start_minutes(DeadlineKind::OnSite, unit, received, policy.deadlines.on_site_urgent_minutes);
        }
        state.timeline.push(TimelineEntry::of(&e, Ok(())));
        Ok(state)
    }

    /// Applies one event (its parents already applied): checks the rules and,
    /// if they hold, changes the state. Either way the event joins the
    /// timeline and the heads.
    pub fn apply(&mut self, policies: &PolicySet, revoked: &impl FoldContext, e: EventRef<'_>) {
        let rules = policies.rules(e.event.policy);
        if !rules.held && self.policy_missing.is_none_or(|v| v < e.event.policy) {
            self.policy_missing = Some(e.event.policy);
        }
        let policy = rules.policy;
        let outcome = if revoked.is_void(&e) { Err(void_rejection(&e)) } else { self.check(policy, &e).and_then(|()| self.check_merge(revoked, &e)) };
        let window = self.window_of(&e);
        if outcome.is_ok() {
            self.effect(policy, &e);
        }
        let overruled_by = match &outcome {
            Err(r) if r.rule != "author-revoked" => self.unseen_winner(&e),
            _ => None,
        };
        self.heads.retain(|h| !e.event.parents.contains(h));
        self.heads.push(e.id);
        self.heads.sort();
        if e.hlc > self.last_hlc {
            self.last_hlc = e.hlc;
        }
        let mut entry = TimelineEntry::of(&e, outcome);
        entry.overruled_by = overruled_by;
        entry.window = window;
        self.timeline.push(entry);
    }

    /// The department window a step acts for, as the case stands before it
    /// (see [`TimelineEntry::window`]).
    fn window_of(&self, e: &EventRef<'_>) -> Option<String> {
        match &e.event.action {
            Action::ReplyAssistance { helper: RouteTarget::Window(w), .. } => Some(w.clone()),
            Action::Supervise { .. } | Action::SuperviseAssistance { .. } | Action::ReplyAssistance { .. } => None,
            _ if e.event.unit == self.owner && self.status == Status::Handling => self.window.clone(),
            _ => None,
        }
    }

    /// The standing step, among the case's current heads, that `e`'s author
    /// had not seen when it signed `e` (its parents do not name it): the
    /// concurrent step that took the case first, the newest such in fold
    /// order. (Approximate: a head that descends from the winner stands in
    /// for it when later steps built on the winner.)
    fn unseen_winner(&self, e: &EventRef<'_>) -> Option<RecordId> {
        let unseen: Vec<&RecordId> = self.heads.iter().filter(|h| !e.event.parents.contains(h)).collect();
        if unseen.is_empty() {
            return None;
        }
        self.timeline.iter().rev().find(|t| t.outcome.is_ok() && unseen.contains(&&t.id)).map(|t| t.id)
    }

    /// A merge into a case that took an earlier merge of its own is refused.
    fn check_merge(&self, ctx: &impl FoldContext, e: &EventRef<'_>) -> Result<(), Rejection> {
        let Action::Merge { into } = &e.event.action else { return Ok(()) };
        match ctx.merge_of(into) {
            Some(first) if first < (e.hlc, e.id) => {
                reject("merge-target-merged", format!("the target case was merged into another case first ({}); merge into that case instead", first.1.fmt_short()))
            }
            _ => Ok(()),
        }
    }

    fn is_supervisor(&self, unit: DivisionCode) -> bool {
        // Any ancestor of the owner; and the owning center itself over its
        // own department windows while the case is at one.
        unit.is_ancestor_of(self.owner) || (unit == self.owner && self.status == Status::Handling)
    }

    fn is_helper(&self, unit: DivisionCode) -> bool {
        self.helpers.iter().any(|h| matches!(h, RouteTarget::Unit(u) if *u == unit))
    }

    /// Whether the rules allow `e` now. Pure: changes nothing.
    pub fn check(&self, policy: &Policy, e: &EventRef<'_>) -> Result<(), Rejection> {
        let ev = e.event;
        let unit = ev.unit;
        let owner = unit == self.owner;
        let st = self.status;
        if ev.case != Some(self.id) {
            return reject("event-names-its-case", "the event does not name this case");
        }
        if st.is_final() {
            return reject("case-is-closed", format!("the case is {} and takes no further steps", st.zh()));
        }
        let need_owner = |what: &str| -> Result<(), Rejection> { if owner { Ok(()) } else { reject("only-owner", format!("only the owning unit {} may {what}", self.owner)) } };
        // After resolution the case is back with the center the complainant
        // came to: it alone gives feedback, records the rating, re-opens and
        // archives, so no two centers take these steps at once (and the
        // handling unit does not rate its own work).
        let need_intake =
            |what: &str| -> Result<(), Rejection> { if unit == self.filed_by { Ok(()) } else { reject("only-filing-center", format!("only the filing center {} may {what}", self.filed_by)) } };
        let need_status = |allowed: &[Status], what: &str| -> Result<(), Rejection> {
            if allowed.contains(&st) {
                Ok(())
            } else {
                let names: Vec<&str> = allowed.iter().map(|s| s.zh()).collect();
                reject("status", format!("{what} needs the case to be {}; it is {}", names.join("/"), st.zh()))
            }
        };
        match &ev.action {
            Action::File(_) => reject("filed-once", "a case is filed only once"),
            Action::SignFor => {
                need_owner("sign for the case")?;
                need_status(&[Status::AwaitingReceipt], "signing for (签收)")
            }
            Action::Route { window, .. } => {
                need_owner("route the case")?;
                need_status(&[Status::Accepted, Status::Returned], "routing (分流)")?;
                known_window(policy, window)
            }
            Action::Dispatch { to, .. } => {
                need_owner("dispatch the case")?;
                need_status(&[Status::Accepted, Status::Handling, Status::Returned], "dispatching (下派)")?;
                if !self.owner.is_ancestor_of(*to) {
                    return reject("dispatch-to-descendant", format!("{to} is not below {}", self.owner));
                }
                Ok(())
            }
            Action::Escalate { reason } => {
                need_owner("escalate the case")?;
                need_status(&[Status::Accepted, Status::Handling, Status::Returned], "escalating (上报)")?;
                nonempty("reason", reason)?;
                if self.owner.parent().is_none() {
                    return reject("no-level-above", "the city center has no level above it");
                }
                Ok(())
            }
            Action::Return { reason } => {
                need_owner("return the case")?;
                need_status(&[Status::AwaitingReceipt, Status::Accepted, Status::Handling], "returning (退单)")?;
                nonempty("reason", reason)?;
                if self.window.is_none() && self.came_from.is_none() {
                    return reject("nothing-to-return", "the case was not routed or sent here, so there is no one to return it to");
                }
                Ok(())
            }
            Action::Reroute { target, reason } => {
                need_owner("re-route the case")?;
                need_status(&[Status::Returned, Status::Handling], "re-routing (改派)")?;
                nonempty("reason", reason)?;
                match target {
                    RouteTarget::Window(w) => known_window(policy, w),
                    RouteTarget::Unit(u) if self.owner.is_ancestor_of(*u) => Ok(()),
                    RouteTarget::Unit(u) => reject("dispatch-to-descendant", format!("{u} is not below {}", self.owner)),
                }
            }
            Action::AddHelpers { helpers } => {
                need_owner("add helper units")?;
                need_status(&[Status::Accepted, Status::Handling], "adding helpers (协办)")?;
                if helpers.is_empty() {
                    return reject("helpers-nonempty", "name at least one helper");
                }
                for h in helpers {
                    match h {
                        RouteTarget::Window(w) => known_window(policy, w)?,
                        RouteTarget::Unit(u) if self.owner.is_ancestor_of(*u) => {}
                        RouteTarget::Unit(u) => {
                            return reject("helper-below-owner", format!("helper unit {u} is not below {}", self.owner));
                        }
                    }
                }
                Ok(())
            }
            Action::Progress { note, .. } => {
                if !(owner || self.is_helper(unit) || unit == self.filed_by) {
                    return reject("progress-by-handler", "only the owner, a helper unit or the filing center may add progress notes");
                }
                nonempty("note", note)
            }
            Action::RequestExtension { working_days, reason } => {
                need_owner("request an extension")?;
                need_status(&[Status::Accepted, Status::Handling], "an extension request (延期申请)")?;
                nonempty("reason", reason)?;
                if self.extension.is_some() {
                    return reject("one-extension-at-a-time", "an extension request is already pending");
                }
                if *working_days == 0 || *working_days > policy.deadlines.max_extension_working_days {
                    return reject("extension-length", format!("an extension is 1 to {} working days", policy.deadlines.max_extension_working_days));
                }
                Ok(())
            }
            Action::DecideExtension { .. } => {
                let Some(req) = &self.extension else {
                    return reject("no-extension-pending", "there is no pending extension request");
                };
                // One authority (two levels deciding at once could not both
                // stand): the owning center over its own department window,
                // otherwise the level directly above the owner.
                let decider = if st == Status::Handling { Some(self.owner) } else { self.owner.parent() };
                if decider != Some(unit) {
                    let who = decider.map_or_else(|| "no level".to_string(), |d| d.to_string());
                    return reject("supervising-level-decides", format!("only {who} decides on this extension"));
                }
                if unit == req.unit && ev.operator == req.operator {
                    return reject("no-self-approval", "the requester cannot decide on their own extension");
                }
                Ok(())
            }
            Action::Supervise { note, .. } => {
                if !self.is_supervisor(unit) {
                    return reject("supervisor-is-ancestor", format!("only a level above {} may supervise this case", self.owner));
                }
                nonempty("note", note)
            }
            Action::Resolve { public_reply, .. } => {
                need_owner("resolve the case")?;
                need_status(&[Status::Accepted, Status::Handling], "resolving (办结)")?;
                nonempty("public reply", public_reply)
            }
            Action::Feedback { note, .. } => {
                need_intake("give feedback (反馈)")?;
                need_status(&[Status::Resolved], "feedback (反馈)")?;
                nonempty("note", note)
            }
            Action::Rate { .. } => {
                need_intake("record the rating (评价)")?;
                need_status(&[Status::FedBack], "rating (评价)")?;
                // The citizen was invited to rate: staff do not pre-empt
                // them (no "buying satisfaction") until the token expires.
                if let Some(invite) = &self.invite
                    && e.hlc.wall_ms <= invite.expires_ms
                {
                    return reject("citizen-invited", "the citizen was invited to rate this case; staff may enter a rating only once the invitation has expired");
                }
                Ok(())
            }
            Action::CitizenRate { token, .. } => {
                // Any center may sign it: the token is the citizen's proof.
                need_status(&[Status::FedBack], "the citizen's rating (群众评价)")?;
                let Some(invite) = &self.invite else {
                    return reject("no-rating-invitation", "the feedback did not invite the citizen to rate");
                };
                if rating_token_hash(token) != invite.token_hash {
                    return reject("rating-token", "the rating token is not the one given at the last feedback");
                }
                if e.hlc.wall_ms > invite.expires_ms {
                    return reject("rating-token-expired", "the rating token has expired");
                }
                Ok(())
            }
            Action::Appeal { reason } => {
                let Some(last) = self.ratings.last() else {
                    return reject("appeal-needs-rating", "there is no rating to appeal");
                };
                if unit != last.unit {
                    return reject("appeal-by-rated-unit", format!("only the rated unit {} may appeal its rating", last.unit));
                }
                if last.rating != Rating::Unsatisfied {
                    return reject("appeal-needs-unsatisfied", "only a 不满意 rating is appealed");
                }
                if last.appeal.is_some() {
                    return reject("one-appeal-per-rating", "this rating was already appealed");
                }
                need_status(&[Status::Rated], "an appeal (差评申诉)")?;
                nonempty("reason", reason)
            }
            Action::DecideAppeal { .. } => {
                let Some(last) = self.ratings.last().filter(|r| r.appeal == Some(AppealState::Pending)) else {
                    return reject("no-appeal-pending", "there is no pending appeal");
                };
                // The level above the rated unit decides (the city decides
                // on its own ratings).
                let decider = last.unit.parent().unwrap_or(last.unit);
                if unit != decider {
                    return reject("supervising-level-decides", format!("only {decider} decides on this appeal"));
                }
                Ok(())
            }
            Action::Reopen { reason } => {
                need_intake("re-open the case for re-handling (重办)")?;
                need_status(&[Status::Rated], "re-handling (重办)")?;
                if self.rating != Some(Rating::Unsatisfied) {
                    return reject("reopen-needs-unsatisfied", "only a case rated 不满意 is re-handled");
                }
                if self.ratings.last().is_some_and(|r| r.appeal == Some(AppealState::Pending)) {
                    return reject("appeal-pending", "an appeal of the rating is pending; wait for the decision");
                }
                nonempty("reason", reason)
            }
            Action::Merge { into } => {
                need_owner("merge the case")?;
                need_status(&[Status::AwaitingReceipt, Status::Accepted, Status::Handling, Status::Returned], "merging (并单)")?;
                if *into == self.id {
                    return reject("merge-into-other", "a case cannot be merged into itself");
                }
                Ok(())
            }
            Action::Archive => {
                need_intake("archive the case (归档)")?;
                need_status(&[Status::Rated], "archiving (归档)")?;
                if self.rating == Some(Rating::Unsatisfied) && self.ratings.last().is_none_or(|r| r.appeal != Some(AppealState::Upheld)) {
                    return reject("archive-needs-satisfied", "a case rated 不满意 must be re-handled (or the rating set aside on appeal) before archiving");
                }
                // A mediation agreement (format 4) is archived with its
                // 司法确认 outcome and its 回访.
                if let Some(a) = self.mediation.agreement() {
                    if a.confirmation.as_ref().is_some_and(|c| c.ruling.is_none()) {
                        return reject("archive-needs-confirmation", "the agreement was referred for 司法确认: record the court's ruling before archiving");
                    }
                    if a.visits.is_empty() {
                        return reject("archive-needs-return-visit", "a case with a mediation agreement is archived after its 回访");
                    }
                }
                Ok(())
            }
            Action::Attach { name, .. } => {
                if !(owner || self.is_helper(unit) || unit == self.filed_by) {
                    return reject("attach-by-handler", "only the owner, a helper unit or the filing center may attach evidence");
                }
                nonempty("name", name)
            }
            Action::ReplySupervision { notice, measures } => {
                let Some(n) = self.notices.iter().find(|n| n.id == *notice) else {
                    return reject("no-such-notice", "the 督办 notice is not one of this case's notices that ask for a reply");
                };
                if unit != n.to {
                    return reject("reply-by-supervised-unit", format!("only the supervised unit {} replies to this 督办", n.to));
                }
                if n.replied_ms.is_some() {
                    return reject("notice-replied", "this 督办 was already answered");
                }
                nonempty("measures", measures)
            }
            Action::Decline { referral, reason } => {
                need_owner("decline the case (不予受理)")?;
                need_status(&[Status::AwaitingReceipt, Status::Accepted, Status::Returned], "不予受理")?;
                nonempty("reason", reason)?;
                match policy.decisions.referral(referral) {
                    None => reject("unknown-referral", format!("no referral {referral:?} in policy version {}", policy.version)),
                    Some(r) if r.retired => reject("retired-referral", format!("the referral {} ({}) is retired in policy version {}", r.code, r.name, policy.version)),
                    Some(_) => Ok(()),
                }
            }
            Action::Withdraw { reason, .. } => {
                need_owner("record the withdrawal (撤回)")?;
                need_status(&[Status::AwaitingReceipt, Status::Accepted, Status::Handling, Status::Returned, Status::Suspended], "撤回")?;
                nonempty("reason", reason)
            }
            Action::Suspend { reason, note, expected_ms } => self.check_suspend(policy, e, reason, note, *expected_ms),
            Action::Resume { note } => {
                need_owner("resume the case (恢复)")?;
                need_status(&[Status::Suspended], "恢复")?;
                short_text("note", note, 2000)
            }
            Action::RequestAssistance { helpers, requirements } => {
                need_owner("ask for assistance (协办)")?;
                need_status(&[Status::Accepted, Status::Handling], "协办")?;
                nonempty("requirements", requirements)?;
                self.check_assistance(policy, helpers)
            }
            Action::ReplyAssistance { request, helper, reply } => {
                let Some(a) = self.assists.iter().find(|a| a.request == *request && a.helper == *helper) else {
                    return reject("no-such-assistance", "no 协办 request of this case asked this helper");
                };
                if unit != a.unit() {
                    return reject("reply-by-helper", format!("only the helper {} replies to this 协办 request", a.unit()));
                }
                if a.replied_ms.is_some() {
                    return reject("assistance-replied", "this 协办 request was already answered");
                }
                nonempty("reply", reply)
            }
            Action::SuperviseAssistance { request, helper, note, .. } => {
                let Some(a) = self.assists.iter().find(|a| a.request == *request && a.helper == *helper) else {
                    return reject("no-such-assistance", "no 协办 request of this case asked this helper");
                };
                if unit != a.by {
                    return reject("supervise-by-requester", format!("only the requesting center {} chases its helpers (协办督办)", a.by));
                }
                if !a.is_pending() {
                    return reject("assistance-not-pending", "this 协办 request was answered or has ended");
                }
                nonempty("note", note)
            }
            Action::MediationSession { held_ms, mediators, attendees, notes } => {
                need_owner("record a mediation session (调解)")?;
                need_status(&[Status::Accepted, Status::Handling], "调解")?;
                mediators_ok(mediators)?;
                nonempty("attendees", attendees)?;
                short_text("attendees", attendees, 200)?;
                nonempty("notes", notes)?;
                self.check_date("held", *held_ms, e.hlc.wall_ms)
            }
            Action::MediationAgreement { signatures, mediators, signed_ms, .. } => {
                need_owner("record a mediation agreement (调解协议)")?;
                need_status(&[Status::Accepted, Status::Handling], "调解协议")?;
                mediators_ok(mediators)?;
                if let Some(a) = self.mediation.agreement()
                    && a.confirmation.as_ref().and_then(|c| c.ruling.as_ref()).is_none_or(|r| r.confirmed)
                {
                    return reject("one-agreement", "the case has an agreement; a new one only after the court refused to confirm it");
                }
                if signatures.is_empty() {
                    return reject("signatures-required", "attach the parties' signed confirmation (scans) and name them in the agreement");
                }
                if let Some(missing) = signatures.iter().find(|b| !self.attachments.iter().any(|a| a.blob == **b)) {
                    return reject("signature-not-attached", format!("{missing} is not an attachment of this case: upload the scan first"));
                }
                self.check_date("signed", *signed_ms, e.hlc.wall_ms)
            }
            Action::ReferConfirmation { court, note } => {
                let a = self.mediating(unit)?;
                if a.confirmation.is_some() {
                    return reject("confirmation-referred", "this agreement was already referred for 司法确认");
                }
                nonempty("court", court)?;
                short_text("court", court, 64)?;
                short_text("note", note, 2000)
            }
            Action::RecordConfirmation { ruling, ruled_ms, note, .. } => {
                let a = self.mediating(unit)?;
                let Some(c) = &a.confirmation else {
                    return reject("no-confirmation-referral", "the agreement was not referred for 司法确认");
                };
                if c.ruling.is_some() {
                    return reject("confirmation-ruled", "the court's ruling on this agreement is already recorded");
                }
                nonempty("ruling", ruling)?;
                short_text("ruling", ruling, 64)?;
                short_text("note", note, 2000)?;
                self.check_date("ruled", *ruled_ms, e.hlc.wall_ms)
            }
            Action::ReturnVisit { method, note, .. } => {
                self.mediating(unit)?;
                nonempty("method", method)?;
                short_text("method", method, 64)?;
                nonempty("note", note)
            }
        }
    }

    /// 中止: by the owner while it handles the case, for a reason of the
    /// policy, with an expected end within the policy's bound, and no
    /// extension request pending (its decision would move clocks that
    /// stand still).
    fn check_suspend(&self, policy: &Policy, e: &EventRef<'_>, reason: &str, note: &str, expected_ms: u64) -> Result<(), Rejection> {
        if e.event.unit != self.owner {
            return reject("only-owner", format!("only the owning unit {} may suspend the case (中止)", self.owner));
        }
        if !matches!(self.status, Status::Accepted | Status::Handling) {
            return reject("status", format!("中止 needs the case to be 已签收/办理中; it is {}", self.status.zh()));
        }
        match policy.decisions.suspension_reason(reason) {
            None => return reject("unknown-suspension-reason", format!("no 中止 reason {reason:?} in policy version {}", policy.version)),
            Some(r) if r.retired => return reject("retired-suspension-reason", format!("the 中止 reason {} ({}) is retired", r.code, r.name)),
            Some(_) => {}
        }
        nonempty("note", note)?;
        if self.extension.is_some() {
            return reject("extension-pending", "decide the pending extension request before 中止");
        }
        let now = e.hlc.wall_ms;
        let max = now.saturating_add(u64::from(policy.decisions.max_suspension_days) * 86_400_000);
        if expected_ms <= now {
            return reject("expected-in-future", "the expected end of a 中止 must lie in the future");
        }
        if expected_ms > max {
            return reject("suspension-length", format!("a 中止 lasts at most {} days (policy decisions.max_suspension_days)", policy.decisions.max_suspension_days));
        }
        Ok(())
    }

    /// The helpers of a 协办 request: each a known window of this center or
    /// a center below it, once, not asked already without a reply, with
    /// 1 to the policy's most working days.
    fn check_assistance(&self, policy: &Policy, helpers: &[crate::case::AssistTarget]) -> Result<(), Rejection> {
        if helpers.is_empty() {
            return reject("helpers-nonempty", "name at least one helper");
        }
        let max = policy.decisions.max_assistance_working_days;
        for (i, h) in helpers.iter().enumerate() {
            match &h.helper {
                RouteTarget::Window(w) => known_window(policy, w)?,
                RouteTarget::Unit(u) if self.owner.is_ancestor_of(*u) => {}
                RouteTarget::Unit(u) => return reject("helper-below-owner", format!("helper unit {u} is not below {}", self.owner)),
            }
            if helpers[..i].iter().any(|x| x.helper == h.helper) {
                return reject("helper-twice", "a helper is named twice");
            }
            if self.assists.iter().any(|a| a.helper == h.helper && a.is_pending()) {
                return reject("assistance-pending", "this helper has not answered an earlier 协办 request yet");
            }
            if h.working_days == 0 || h.working_days > max {
                return reject("assistance-length", format!("a helper has 1 to {max} working days to reply"));
            }
        }
        Ok(())
    }

    /// The agreement in force, if `unit` mediated it.
    fn mediating(&self, unit: DivisionCode) -> Result<&Agreement, Rejection> {
        let Some(a) = self.mediation.agreement() else {
            return reject("no-agreement", "the case has no mediation agreement");
        };
        if unit != a.unit {
            return reject("mediating-unit", format!("only the mediating unit {} takes this step", a.unit));
        }
        Ok(a)
    }

    /// A date a step reports (a session held, an agreement signed, a
    /// ruling): not after the step, not before the case was received.
    fn check_date(&self, what: &str, at_ms: u64, now: u64) -> Result<(), Rejection> {
        if at_ms > now {
            return reject("date-in-future", format!("the date {what} lies after the step"));
        }
        let received = self.filing.received_at_ms.min(self.filed_ms);
        if at_ms < crate::policy::day_start(received) {
            return reject("date-before-case", format!("the date {what} lies before the case was received"));
        }
        Ok(())
    }

    fn effect(&mut self, policy: &Policy, e: &EventRef<'_>) {
        let now = e.hlc.wall_ms;
        let unit = e.event.unit;
        let urgency = self.filing.urgency;
        match &e.event.action {
            Action::File(_) => {}
            Action::SignFor => {
                self.status = Status::Accepted;
                self.meet(DeadlineKind::SignFor, now);
            }
            Action::Route { window, due_ms, .. } => {
                self.window = Some(window.clone());
                self.status = Status::Handling;
                self.meet(DeadlineKind::Routing, now);
                if let Some(due) = due_ms {
                    self.set_handling_due(*due);
                }
            }
            Action::Dispatch { to, due_ms, .. } => {
                self.hand_over(policy, *to, now, urgency, e.id);
                if let Some(due) = due_ms {
                    self.set_handling_due(*due);
                }
            }
            Action::Escalate { .. } => {
                if let Some(parent) = self.owner.parent() {
                    self.escalations += 1;
                    self.hand_over(policy, parent, now, urgency, e.id);
                }
            }
            Action::Return { .. } => {
                self.returns += 1;
                if self.window.take().is_some() {
                    self.status = Status::Returned;
                } else if let Some(from) = self.came_from.take() {
                    self.end_assists(e.id);
                    self.meet(DeadlineKind::SignFor, now);
                    self.meet(DeadlineKind::Routing, now);
                    self.owner = from;
                    self.status = Status::Returned;
                    self.start_minutes(DeadlineKind::Routing, from, now, policy.routing_minutes(urgency));
                }
            }
            Action::Reroute { target, .. } => match target {
                RouteTarget::Window(w) => {
                    self.window = Some(w.clone());
                    self.status = Status::Handling;
                    self.meet(DeadlineKind::Routing, now);
                }
                RouteTarget::Unit(u) => self.hand_over(policy, *u, now, urgency, e.id),
            },
            Action::AddHelpers { helpers } => {
                for h in helpers {
                    if !self.helpers.contains(h) {
                        self.helpers.push(h.clone());
                    }
                }
            }
            Action::Progress { .. } => self.meet(DeadlineKind::OnSite, now),
            Action::RequestExtension { working_days, reason } => {
                self.extension = Some(ExtensionRequest { working_days: *working_days, reason: reason.clone(), unit, operator: e.event.operator.clone(), requested_ms: now });
            }
            Action::DecideExtension { approve, .. } => {
                if let Some(req) = self.extension.take()
                    && *approve
                {
                    self.extend(policy, req.working_days);
                }
            }
            Action::Supervise { grade, .. } => {
                self.supervisions += 1;
                if self.supervision.is_none_or(|g| *grade > g) {
                    self.supervision = Some(*grade);
                }
                // From format 4 a 督办 asks the owner for a reply within the
                // grade's deadline; a notice of format 3 asked for none.
                if e.format >= 4 {
                    self.notify_owner(policy, e, *grade);
                }
            }
            Action::ReplySupervision { notice, measures } => {
                if let Some(n) = self.notices.iter_mut().find(|n| n.id == *notice) {
                    n.replied_ms = Some(now);
                    n.measures = Some(measures.clone());
                }
                for d in self.deadlines.iter_mut().filter(|d| d.kind == DeadlineKind::SupervisionReply && d.notice == Some(*notice) && d.is_running()) {
                    d.met_ms = Some(now);
                }
            }
            Action::Resolve { public_reply, .. } => {
                self.status = Status::Resolved;
                self.resolved_ms = Some(now);
                self.resolved_by = Some(unit);
                self.public_reply = Some(public_reply.clone());
                self.extension = None;
                self.meet(DeadlineKind::Routing, now);
                self.meet(DeadlineKind::OnSite, now);
                self.meet(DeadlineKind::Resolution, now);
                self.meet(DeadlineKind::Rehandle, now);
                self.end_notices(e.id);
                self.end_assists(e.id);
                self.start_minutes(DeadlineKind::Feedback, self.filed_by, now, policy.deadlines.feedback_minutes);
            }
            Action::Feedback { invite, .. } => {
                self.status = Status::FedBack;
                self.fed_back_ms = Some(now);
                self.invite = *invite;
                self.meet(DeadlineKind::Feedback, now);
            }
            Action::Rate { rating, result_rating, .. } => self.rate(e, RatedBy::Staff, *rating, *result_rating),
            Action::CitizenRate { rating, result_rating, .. } => self.rate(e, RatedBy::Citizen, *rating, Some(*result_rating)),
            Action::Appeal { reason } => {
                if let Some(last) = self.ratings.last_mut() {
                    last.appeal = Some(AppealState::Pending);
                    last.appeal_reason = Some(reason.clone());
                }
            }
            Action::DecideAppeal { upheld, .. } => {
                if let Some(last) = self.ratings.last_mut() {
                    last.appeal = Some(if *upheld { AppealState::Upheld } else { AppealState::Dismissed });
                }
            }
            Action::Reopen { .. } => {
                self.reopens += 1;
                self.status = if self.window.is_some() { Status::Handling } else { Status::Accepted };
                self.resolved_ms = None;
                self.resolved_by = None;
                self.fed_back_ms = None;
                self.rating = None;
                self.rated_ms = None;
                let days = policy.deadlines.rehandle_working_days;
                self.start_working_days(policy, DeadlineKind::Rehandle, self.owner, now, days);
            }
            Action::Merge { into } => {
                self.status = Status::Merged;
                self.merged_into = Some(*into);
                self.merge_event = Some((e.hlc, e.id));
                self.end_assists(e.id);
                for d in self.deadlines.iter_mut().filter(|d| d.is_running()) {
                    d.cancelled = true;
                }
            }
            Action::Archive => {
                self.status = Status::Archived;
                self.archived_ms = Some(now);
            }
            Action::Attach { blob, name, mime, size } => {
                self.attachments.push(Attachment { blob: *blob, name: name.clone(), mime: mime.clone(), size: *size, unit });
            }
            Action::Decline { referral, reason } => {
                self.status = Status::Declined;
                self.declined = Some(Declined { id: e.id, referral: referral.clone(), reason: reason.clone(), unit, at_ms: now, policy: e.event.policy });
                self.close(e.id);
            }
            Action::Withdraw { confirmation, reason } => {
                self.status = Status::Withdrawn;
                self.withdrawn = Some(Withdrawn { id: e.id, confirmation: *confirmation, reason: reason.clone(), unit, at_ms: now });
                self.close(e.id);
            }
            Action::Suspend { reason, note, expected_ms } => {
                let before = self.status;
                self.status = Status::Suspended;
                self.pause_clocks(policy, now);
                self.start_at(DeadlineKind::Suspension, unit, now, *expected_ms);
                self.suspensions.push(Suspension {
                    id: e.id,
                    reason: reason.clone(),
                    note: note.clone(),
                    unit,
                    at_ms: now,
                    expected_ms: *expected_ms,
                    policy: e.event.policy,
                    before,
                    resumed_ms: None,
                    resumed_by: None,
                });
            }
            Action::Resume { .. } => {
                if let Some(s) = self.suspensions.last_mut().filter(|s| s.resumed_ms.is_none()) {
                    s.resumed_ms = Some(now);
                    s.resumed_by = Some(e.id);
                    self.status = s.before;
                }
                self.meet(DeadlineKind::Suspension, now);
                self.resume_clocks(policy, now);
            }
            Action::RequestAssistance { helpers, requirements } => self.ask_assistance(policy, e, helpers, requirements),
            Action::ReplyAssistance { request, helper, reply } => {
                if let Some(a) = self.assists.iter_mut().find(|a| a.request == *request && a.helper == *helper) {
                    a.replied_ms = Some(now);
                    a.reply = Some(reply.clone());
                    a.reply_event = Some(e.id);
                    let (unit, window) = (a.unit(), a.window().map(String::from));
                    for d in self.deadlines.iter_mut().filter(|d| d.kind == DeadlineKind::Assistance && d.notice == Some(*request) && d.unit == unit && d.window == window && d.is_running()) {
                        d.met_ms = Some(now);
                    }
                }
            }
            Action::SuperviseAssistance { request, helper, grade, .. } => {
                if let Some(a) = self.assists.iter_mut().find(|a| a.request == *request && a.helper == *helper) {
                    a.supervisions += 1;
                    if a.supervision.is_none_or(|g| *grade > g) {
                        a.supervision = Some(*grade);
                    }
                }
            }
            Action::MediationSession { held_ms, mediators, attendees, notes } => {
                self.mediation.sessions.push(Session { id: e.id, unit, at_ms: now, held_ms: *held_ms, mediators: mediators.clone(), attendees: attendees.clone(), notes: notes.clone() })
            }
            Action::MediationAgreement { document, signatures, mediators, signed_ms } => {
                // An agreement the court refused to confirm gives way to the
                // new one: its 回访 clock stops.
                for d in self.deadlines.iter_mut().filter(|d| d.kind == DeadlineKind::ReturnVisit && d.is_running()) {
                    d.cancelled = true;
                }
                self.mediation.agreements.push(Agreement {
                    id: e.id,
                    unit,
                    at_ms: now,
                    document: *document,
                    signatures: signatures.clone(),
                    mediators: mediators.clone(),
                    signed_ms: *signed_ms,
                    confirmation: None,
                    visits: Vec::new(),
                });
                self.start_minutes(DeadlineKind::ReturnVisit, unit, *signed_ms, policy.decisions.return_visit_days.saturating_mul(24 * 60));
            }
            Action::ReferConfirmation { court, note } => {
                if let Some(a) = self.mediation.agreements.last_mut() {
                    a.confirmation = Some(Confirmation { id: e.id, at_ms: now, court: court.clone(), note: note.clone(), ruling: None });
                }
            }
            Action::RecordConfirmation { confirmed, ruling, ruled_ms, note } => {
                if let Some(c) = self.mediation.agreements.last_mut().and_then(|a| a.confirmation.as_mut()) {
                    c.ruling = Some(Ruling { id: e.id, at_ms: now, confirmed: *confirmed, ruling: ruling.clone(), ruled_ms: *ruled_ms, note: note.clone() });
                }
            }
            Action::ReturnVisit { fulfilment, method, note } => {
                if let Some(a) = self.mediation.agreements.last_mut() {
                    a.visits.push(Visit { id: e.id, at_ms: now, fulfilment: *fulfilment, method: method.clone(), note: note.clone() });
                }
                self.meet(DeadlineKind::ReturnVisit, now);
            }
        }
    }

    /// 不予受理 or 撤回: the case is closed; every clock stops uncounted
    /// (running or standing still), and so do the 督办 replies and 协办
    /// requests it waited for.
    fn close(&mut self, by: RecordId) {
        self.end_notices(by);
        self.end_assists(by);
        for d in self.deadlines.iter_mut().filter(|d| d.met_ms.is_none() && !d.cancelled) {
            d.cancelled = true;
        }
    }

    /// 协办 requests still waiting for a reply end (their clocks stop
    /// uncounted): the case moved to another center, was resolved or closed.
    fn end_assists(&mut self, by: RecordId) {
        for a in self.assists.iter_mut().filter(|a| a.is_pending()) {
            a.ended_by = Some(by);
            let (unit, window) = (a.unit(), a.window().map(String::from));
            for d in self.deadlines.iter_mut().filter(|d| d.kind == DeadlineKind::Assistance && d.notice == Some(a.request) && d.unit == unit && d.window == window && d.is_running()) {
                d.cancelled = true;
            }
        }
    }

    /// 协办: each helper gets its clock (its unit's, or for a window the
    /// requesting center's, naming the window) and joins the helpers.
    fn ask_assistance(&mut self, policy: &Policy, e: &EventRef<'_>, helpers: &[crate::case::AssistTarget], requirements: &str) {
        let now = e.hlc.wall_ms;
        let by = e.event.unit;
        for h in helpers {
            if !self.helpers.contains(&h.helper) {
                self.helpers.push(h.helper.clone());
            }
            let (unit, window) = match &h.helper {
                RouteTarget::Unit(u) => (*u, None),
                RouteTarget::Window(w) => (by, Some(w.clone())),
            };
            self.start_working_days(policy, DeadlineKind::Assistance, unit, now, h.working_days);
            let due = match self.deadlines.last_mut() {
                Some(d) => {
                    d.notice = Some(e.id);
                    d.window = window;
                    d.due_ms
                }
                None => None,
            };
            self.assists.push(Assistance {
                request: e.id,
                by,
                helper: h.helper.clone(),
                requirements: requirements.to_string(),
                at_ms: now,
                working_days: h.working_days,
                due_ms: due,
                replied_ms: None,
                reply: None,
                reply_event: None,
                ended_by: None,
                supervision: None,
                supervisions: 0,
            });
        }
    }

    /// 中止: the owner's handling clocks (分流, 办结, 重办) that are not past
    /// due stand still, each holding what it had left: working days after
    /// today for day-scale clocks, natural time for hour-scale ones. A
    /// clock already past due keeps running (a 中止 never hides lateness).
    fn pause_clocks(&mut self, policy: &Policy, now: u64) {
        let owner = self.owner;
        for d in
            self.deadlines.iter_mut().filter(|d| d.is_running() && d.unit == owner && matches!(d.kind, DeadlineKind::Routing | DeadlineKind::Resolution | DeadlineKind::Rehandle) && !d.is_overdue(now))
        {
            let left = match (d.kind, d.due_ms) {
                (_, None) => None,
                (DeadlineKind::Routing, Some(due)) => Some(Left::Ms(due.saturating_sub(now))),
                (_, Some(due)) => match policy.working_days_between(now, due) {
                    Ok(n) => Some(Left::WorkingDays(n)),
                    Err(err) => {
                        if let PolicyError::NoCalendar(y) = err {
                            d.waiting_year = Some(y);
                        }
                        d.error = Some(err.to_string());
                        None
                    }
                },
            };
            d.paused = Some(Paused { at_ms: now, left });
        }
    }

    /// 恢复: the clocks standing still run again with what they had left,
    /// from now (a year without a calendar waits, as any clock does).
    fn resume_clocks(&mut self, policy: &Policy, now: u64) {
        for d in self.deadlines.iter_mut().filter(|d| d.paused.is_some() && d.met_ms.is_none() && !d.cancelled) {
            let Some(p) = d.paused.take() else { continue };
            match p.left {
                Some(Left::Ms(ms)) => {
                    d.due_ms = Some(now.saturating_add(ms));
                    d.waiting_year = None;
                    d.error = None;
                }
                Some(Left::WorkingDays(n)) => match policy.add_working_days(now, n) {
                    Ok(due) => {
                        d.due_ms = Some(due);
                        d.waiting_year = None;
                        d.error = None;
                    }
                    Err(err) => {
                        d.due_ms = None;
                        d.waiting_year = if let PolicyError::NoCalendar(y) = err { Some(y) } else { None };
                        d.error = Some(err.to_string());
                    }
                },
                // Its due time was not known at the pause: still waiting.
                None => d.due_ms = None,
            }
        }
    }

    /// A clock due at a given instant (the end of a 中止).
    fn start_at(&mut self, kind: DeadlineKind, unit: DivisionCode, start: u64, due: u64) {
        self.start_minutes(kind, unit, start, 0);
        if let Some(d) = self.deadlines.last_mut() {
            d.due_ms = Some(due);
        }
    }

    /// The case was resolved: 督办 notices still waiting for a reply end
    /// with it (their clocks stop without counting as replies).
    fn end_notices(&mut self, by: RecordId) {
        for n in self.notices.iter_mut().filter(|n| n.is_pending()) {
            n.superseded_by = Some(by);
            for d in self.deadlines.iter_mut().filter(|d| d.notice == Some(n.id) && d.is_running()) {
                d.cancelled = true;
            }
        }
    }

    /// A 督办 notice to the owner: its reply clock, and the notices to the
    /// same unit still waiting for a reply stand superseded (their clocks
    /// stop; the new notice is the one to answer).
    fn notify_owner(&mut self, policy: &Policy, e: &EventRef<'_>, grade: SuperviseGrade) {
        let now = e.hlc.wall_ms;
        let to = self.owner;
        for n in self.notices.iter_mut().filter(|n| n.to == to && n.is_pending()) {
            n.superseded_by = Some(e.id);
            for d in self.deadlines.iter_mut().filter(|d| d.notice == Some(n.id) && d.is_running()) {
                d.cancelled = true;
            }
        }
        self.start_working_days(policy, DeadlineKind::SupervisionReply, to, now, policy.supervision_reply.working_days(grade));
        let due = match self.deadlines.last_mut() {
            Some(d) => {
                d.notice = Some(e.id);
                d.due_ms
            }
            None => None,
        };
        self.notices.push(Notice { id: e.id, grade, by: e.event.unit, to, at_ms: now, reply_due_ms: due, replied_ms: None, measures: None, superseded_by: None });
    }

    fn rate(&mut self, e: &EventRef<'_>, by: RatedBy, rating: Rating, result_rating: Option<Rating>) {
        let now = e.hlc.wall_ms;
        self.status = Status::Rated;
        self.rating = Some(rating);
        self.rated_ms = Some(now);
        self.invite = None;
        self.ratings.push(RatingEntry { event: e.id, at_ms: now, unit: self.resolved_by.unwrap_or(self.owner), by, rating, result_rating, appeal: None, appeal_reason: None });
    }

    /// Ownership moves to `to` (escalation, dispatch, re-route to a unit).
    fn hand_over(&mut self, policy: &Policy, to: DivisionCode, now: u64, urgency: Urgency, by: RecordId) {
        self.end_assists(by);
        self.meet(DeadlineKind::Routing, now);
        self.meet(DeadlineKind::SignFor, now);
        self.came_from = Some(self.owner);
        self.owner = to;
        self.window = None;
        self.status = Status::AwaitingReceipt;
        if !self.units_handled.contains(&to) {
            self.units_handled.push(to);
        }
        if to.level() < self.highest_level {
            self.highest_level = to.level();
        }
        self.start_minutes(DeadlineKind::SignFor, to, now, policy.sign_for_minutes(urgency));
        self.start_minutes(DeadlineKind::Routing, to, now, policy.routing_minutes(urgency));
    }

    fn start_minutes(&mut self, kind: DeadlineKind, unit: DivisionCode, start: u64, minutes: u32) {
        self.deadlines.push(Deadline {
            kind,
            unit,
            started_ms: start,
            due_ms: Some(Policy::add_minutes(start, minutes)),
            waiting_year: None,
            met_ms: None,
            cancelled: false,
            error: None,
            extended_working_days: 0,
            notice: None,
            window: None,
            paused: None,
        });
    }

    fn start_working_days(&mut self, policy: &Policy, kind: DeadlineKind, unit: DivisionCode, start: u64, days: u32) {
        let (due_ms, waiting_year, error) = match policy.add_working_days(start, days) {
            Ok(d) => (Some(d), None, None),
            Err(PolicyError::NoCalendar(y)) => (None, Some(y), Some(PolicyError::NoCalendar(y).to_string())),
            Err(e) => (None, None, Some(e.to_string())),
        };
        self.deadlines.push(Deadline {
            kind,
            unit,
            started_ms: start,
            due_ms,
            waiting_year,
            met_ms: None,
            cancelled: false,
            error,
            extended_working_days: 0,
            notice: None,
            window: None,
            paused: None,
        });
    }

    /// Marks the running clock of `kind` as met at `now`. A clock also stops
    /// this way when the case moves on (returned, handed over): the unit it
    /// ran against is done with it.
    fn meet(&mut self, kind: DeadlineKind, now: u64) {
        for d in self.deadlines.iter_mut().filter(|d| d.kind == kind && d.is_running()) {
            d.met_ms = Some(now);
        }
    }

    fn set_handling_due(&mut self, due: u64) {
        for d in self.deadlines.iter_mut().filter(|d| matches!(d.kind, DeadlineKind::Resolution | DeadlineKind::Rehandle) && d.is_running()) {
            d.due_ms = Some(due);
            d.waiting_year = None;
            d.error = None;
        }
    }

    fn extend(&mut self, policy: &Policy, days: u32) {
        for d in self.deadlines.iter_mut().filter(|d| matches!(d.kind, DeadlineKind::Resolution | DeadlineKind::Rehandle) && d.is_running()) {
            d.extended_working_days += days;
            let Some(due) = d.due_ms else { continue };
            match policy.add_working_days(due, days) {
                Ok(new_due) => d.due_ms = Some(new_due),
                Err(e) => {
                    d.due_ms = None;
                    if let PolicyError::NoCalendar(y) = e {
                        d.waiting_year = Some(y);
                    }
                    d.error = Some(e.to_string());
                }
            }
        }
    }

    /// Running clocks that are past due at `now`.
    pub fn overdue(&self, now_ms: u64) -> impl Iterator<Item = &Deadline> {
        self.deadlines.iter().filter(move |d| d.is_overdue(now_ms))
    }

    pub fn is_overdue(&self, now_ms: u64) -> bool {
        self.overdue(now_ms).next().is_some()
    }

    /// The earliest due time among running clocks.
    pub fn next_due(&self) -> Option<u64> {
        let running = || self.deadlines.iter().filter(|d| d.is_running());
        // The owner's next due time (what its queue shows); another unit's
        // clock only when the owner has none (a filing center's 反馈 after
        // another unit resolved the case).
        running().filter(|d| self.acting_unit(d) == self.owner).filter_map(|d| d.due_ms).min().or_else(|| running().filter_map(|d| d.due_ms).min())
    }

    /// The unit that must act on a clock. A running 办结 or 重办 clock
    /// belongs to the case's owner, whoever it started with: an escalation
    /// or a dispatch hands the case, and what is left of its time limit,
    /// to another unit. Every other clock names its own unit (签收 and 分流
    /// the receiver, 反馈 the filing center, 督办回复 the notice's
    /// addressee); a met clock names the unit it ran against. The signed
    /// fold keeps the unit a clock started with (format 3 is pinned by the
    /// compatibility corpus); views, queues and indexes ask here.
    pub fn acting_unit(&self, d: &Deadline) -> DivisionCode {
        match d.kind {
            DeadlineKind::Resolution | DeadlineKind::Rehandle if d.is_running() => self.owner,
            _ => d.unit,
        }
    }

    /// Years whose calendar some clock of the case waits for (running or
    /// met: a met clock's timeliness waits too), sorted, without repeats.
    pub fn waiting_years(&self) -> Vec<i32> {
        let mut years: Vec<i32> = self.deadlines.iter().filter(|d| !d.cancelled).filter_map(|d| d.waiting_year).collect();
        years.sort_unstable();
        years.dedup();
        years
    }

    /// Ever escalated above the filing center.
    pub fn escalated(&self) -> bool {
        self.escalations > 0
    }
}

fn nonempty(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return reject("field-required", format!("{field} must not be empty"));
    }
    if value.chars().count() > 10_000 {
        return reject("field-too-long", format!("{field} is longer than 10000 characters"));
    }
    Ok(())
}

/// A text of at most `max` characters (empty allowed).
fn short_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.chars().count() > max {
        return reject("field-too-long", format!("{field} is longer than {max} characters"));
    }
    Ok(())
}

/// The mediators a step names: 1 to 5, each with an account and a name.
fn mediators_ok(mediators: &[Mediator]) -> Result<(), Rejection> {
    if mediators.is_empty() || mediators.len() > 5 {
        return reject("mediators", "name 1 to 5 mediators (调解员)");
    }
    for m in mediators {
        nonempty("mediator account", &m.account)?;
        nonempty("mediator name", &m.name)?;
        short_text("mediator account", &m.account, 64)?;
        short_text("mediator name", &m.name, 64)?;
    }
    Ok(())
}

fn known_window(policy: &Policy, window: &str) -> Result<(), Rejection> {
    match policy.window(window) {
        None => reject("unknown-window", format!("no department window {window:?} in policy version {}", policy.version)),
        Some(w) if w.retired => reject("retired-window", format!("the window {} ({}) is retired in policy version {}", w.code, w.name, policy.version)),
        Some(_) => Ok(()),
    }
}

/// Checks a filing against the policy.
pub fn validate_filing(policy: &Policy, f: &Filing) -> Result<(), Rejection> {
    nonempty("title", &f.title)?;
    nonempty("content", &f.content)?;
    if f.title.chars().count() > 200 {
        return reject("field-too-long", "title is longer than 200 characters");
    }
    match policy.subcategory(&f.category) {
        None => return reject("unknown-category", format!("no leaf category {:?} in the policy", f.category)),
        Some((c, s)) if c.retired || s.retired => {
            return reject("retired-category", format!("the category {} {} is retired and takes no new cases", s.code, s.name));
        }
        Some(_) => {}
    }
    if let (Some(first), Ok(date)) = (policy.calendar_years().first(), crate::policy::china_date(f.received_at_ms))
        && (date.year() as i32) < *first
    {
        let y = date.year();
        return reject("no-calendar-for-year", format!("received_at lies in {y}, before the earliest working-day calendar the policy holds ({first}): the city must load the {y} calendar first"));
    }
    if f.place.lat_e6.is_some_and(|v| !(-90_000_000..=90_000_000).contains(&v)) || f.place.lon_e6.is_some_and(|v| !(-180_000_000..=180_000_000).contains(&v)) {
        return reject("place-coordinates", "latitude or longitude out of range");
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod decision_tests;
