//! A workflow step as a client sends it: the JSON body of
//! `POST /api/cases/{id}/actions`, and its translation into an [`Action`].
//! Pure (no store, no clock), so the same path runs under the fuzz target
//! `action_json` as behind the HTTP route.

use serde::Deserialize;

use crate::case::{AgreementDoc, AssistTarget, BlobHash, Fulfilment, Mediator, Rating, RatingInvite, RouteTarget, SuperviseGrade, WithdrawalConfirmation};
use crate::{Action, DivisionCode, RecordId};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionRequest {
    SignFor {},
    Route {
        window: String,
        #[serde(default)]
        requirements: String,
        due_at: Option<String>,
    },
    Dispatch {
        to: DivisionCode,
        #[serde(default)]
        requirements: String,
        due_at: Option<String>,
    },
    Escalate {
        reason: String,
    },
    Return {
        reason: String,
    },
    Reroute {
        window: Option<String>,
        to: Option<DivisionCode>,
        reason: String,
    },
    AddHelpers {
        #[serde(default)]
        windows: Vec<String>,
        #[serde(default)]
        units: Vec<DivisionCode>,
    },
    Progress {
        note: String,
        #[serde(default)]
        public: bool,
    },
    RequestExtension {
        working_days: u32,
        reason: String,
    },
    ApproveExtension {
        #[serde(default)]
        note: String,
    },
    RefuseExtension {
        #[serde(default)]
        note: String,
    },
    Supervise {
        grade: SuperviseGrade,
        note: String,
    },
    Resolve {
        public_reply: String,
        #[serde(default)]
        internal_note: String,
    },
    Feedback {
        #[serde(default = "default_feedback_method")]
        method: String,
        note: String,
        /// Invite the citizen to rate on the public page with a one-time
        /// token (default: yes where the node knows a public page).
        #[serde(default)]
        invite_rating: Option<bool>,
    },
    Rate {
        rating: Rating,
        #[serde(default)]
        result_rating: Option<Rating>,
        #[serde(default)]
        comment: String,
    },
    Appeal {
        reason: String,
    },
    UpholdAppeal {
        #[serde(default)]
        note: String,
    },
    DismissAppeal {
        #[serde(default)]
        note: String,
    },
    Reopen {
        reason: String,
    },
    Merge {
        into: String,
    },
    Archive {},
    /// 督办回复 (record format 4): the measures taken; `notice` is the 督办
    /// record's id (hex), or absent for the one waiting for this unit's
    /// reply.
    ReplySupervision {
        #[serde(default)]
        notice: Option<RecordId>,
        measures: String,
    },
    /// 不予受理 (format 4): `referral` is a code of the policy's list.
    Decline {
        referral: String,
        reason: String,
    },
    /// 撤回 (format 4).
    Withdraw {
        confirmation: WithdrawalConfirmation,
        reason: String,
    },
    /// 中止 (format 4): `reason` a code of the policy's list; the expected
    /// end as a date (`YYYY-MM-DD`: the end of that day, China time) or an
    /// RFC 3339 time.
    Suspend {
        reason: String,
        note: String,
        expected_on: String,
    },
    /// 恢复 (format 4).
    Resume {
        #[serde(default)]
        note: String,
    },
    /// 协办 with deadlines (format 4): each helper a window or a unit, with
    /// its working days (absent: the policy's default, filled in by the
    /// node).
    RequestAssistance {
        helpers: Vec<HelperRequest>,
        requirements: String,
    },
    /// 协办回复 (format 4): `request` is the 协办 step's record id (absent:
    /// the one waiting for this helper's reply); `window` when a window
    /// replies.
    ReplyAssistance {
        #[serde(default)]
        request: Option<RecordId>,
        #[serde(default)]
        window: Option<String>,
        reply: String,
        /// Without a window: the replying unit (this node's, filled in by
        /// the node).
        #[serde(skip)]
        unit: Option<DivisionCode>,
    },
    /// 协办督办 (format 4, an administrator's).
    SuperviseAssistance {
        request: RecordId,
        helper: HelperRequest,
        grade: SuperviseGrade,
        note: String,
    },
    /// 调解 session (format 4): the mediators by account (the node adds
    /// their names).
    MediationSession {
        held_on: String,
        mediators: Vec<String>,
        attendees: String,
        notes: String,
        #[serde(skip)]
        mediator_names: Vec<Mediator>,
    },
    /// 调解协议书 (format 4): its text (stored as a blob), the scans of the
    /// parties' signatures (attachments of the case, by hash), the
    /// mediators by account.
    MediationAgreement {
        document: AgreementDoc,
        signatures: Vec<BlobHash>,
        mediators: Vec<String>,
        signed_on: String,
        #[serde(skip)]
        mediator_names: Vec<Mediator>,
    },
    /// 申请司法确认 (format 4).
    ReferConfirmation {
        court: String,
        #[serde(default)]
        note: String,
    },
    /// 司法确认结果 (format 4).
    RecordConfirmation {
        confirmed: bool,
        ruling: String,
        ruled_on: String,
        #[serde(default)]
        note: String,
    },
    /// 回访 (format 4).
    ReturnVisit {
        fulfilment: Fulfilment,
        #[serde(default = "default_feedback_method")]
        method: String,
        note: String,
    },
}

/// A helper of a 协办 step as a client names it: a window or a unit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperRequest {
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub unit: Option<DivisionCode>,
    /// Working days to reply (absent: the policy's default).
    #[serde(default)]
    pub working_days: Option<u32>,
}

impl HelperRequest {
    pub fn target(&self) -> Result<RouteTarget, StepError> {
        match (&self.window, self.unit) {
            (Some(w), None) => Ok(RouteTarget::Window(w.clone())),
            (None, Some(u)) => Ok(RouteTarget::Unit(u)),
            _ => Err(StepError("a helper is exactly one of window or unit".into())),
        }
    }
}

/// Most parties on one agreement.
pub const MAX_PARTIES: usize = 10;

fn default_feedback_method() -> String {
    "phone".into()
}

/// Most characters in a free-text field of a step (a note, reason, reply,
/// comment or requirements): a page of text; anything longer is a mistake
/// or an attack on every node the record replicates to.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Most characters in a short field (a feedback method, a window code, a
/// case reference).
pub const MAX_SHORT_CHARS: usize = 64;

/// Most windows or units one step adds as helpers.
pub const MAX_HELPERS: usize = 20;

/// `Err` naming the field when `value` is longer than `max` characters.
pub fn check_length(field: &str, value: &str, max: usize) -> Result<(), StepError> {
    let n = value.chars().count();
    if n > max {
        return Err(StepError(format!("{field} is {n} characters long; at most {max}")));
    }
    Ok(())
}

/// Why a step's body does not make an action (a client error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

/// A date (`YYYY-MM-DD`, China time: the start of that day, or with
/// `end_of_day` its end) or an RFC 3339 time, as milliseconds since the
/// epoch.
pub fn parse_day(field: &str, s: &str, end_of_day: bool) -> Result<u64, StepError> {
    if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        let date: jiff::civil::Date = s.parse().map_err(|e| StepError(format!("{field}: expected a date like 2026-12-31 ({e})")))?;
        let start = crate::policy::start_of_day_ms(date).map_err(|e| StepError(format!("{field}: {e}")))?;
        return Ok(if end_of_day { crate::policy::day_end(start) } else { start });
    }
    parse_time(field, s)
}

/// An RFC 3339 time as milliseconds since the epoch.
pub fn parse_time(field: &str, s: &str) -> Result<u64, StepError> {
    let ts: jiff::Timestamp = s.parse().map_err(|e| StepError(format!("{field}: expected an RFC 3339 time like 2026-11-28T09:30:00+08:00 ({e})")))?;
    u64::try_from(ts.as_millisecond()).map_err(|_| StepError(format!("{field}: before 1970")))
}

impl ActionRequest {
    /// Parses a step's JSON body; every text field within its limit.
    pub fn from_json(body: &[u8]) -> Result<ActionRequest, StepError> {
        let request: ActionRequest = serde_json::from_slice(body).map_err(|e| StepError(e.to_string()))?;
        for (field, value, max) in request.texts() {
            check_length(field, value, max)?;
        }
        if let ActionRequest::AddHelpers { windows, units } = &request
            && windows.len() + units.len() > MAX_HELPERS
        {
            return Err(StepError(format!("at most {MAX_HELPERS} helpers in one step")));
        }
        match &request {
            ActionRequest::RequestAssistance { helpers, .. } if helpers.len() > MAX_HELPERS => {
                return Err(StepError(format!("at most {MAX_HELPERS} helpers in one step")));
            }
            ActionRequest::MediationSession { mediators, .. } | ActionRequest::MediationAgreement { mediators, .. } if mediators.len() > 5 => {
                return Err(StepError("at most 5 mediators in one step".into()));
            }
            ActionRequest::MediationAgreement { document, signatures, .. } if document.parties.len() > MAX_PARTIES || signatures.len() > MAX_HELPERS => {
                return Err(StepError(format!("an agreement has at most {MAX_PARTIES} parties and {MAX_HELPERS} signature scans")));
            }
            _ => {}
        }
        Ok(request)
    }

    /// Every text field of the step, with its limit.
    fn texts(&self) -> Vec<(&'static str, &str, usize)> {
        const NOTE: usize = MAX_NOTE_CHARS;
        const SHORT: usize = MAX_SHORT_CHARS;
        match self {
            ActionRequest::SignFor {} | ActionRequest::Archive {} => vec![],
            ActionRequest::Route { window, requirements, .. } => vec![("window", window, SHORT), ("requirements", requirements, NOTE)],
            ActionRequest::Dispatch { requirements, .. } => vec![("requirements", requirements, NOTE)],
            ActionRequest::Escalate { reason } | ActionRequest::Return { reason } | ActionRequest::Reopen { reason } | ActionRequest::RequestExtension { reason, .. } => vec![("reason", reason, NOTE)],
            ActionRequest::Reroute { window, reason, .. } => vec![("window", window.as_deref().unwrap_or_default(), SHORT), ("reason", reason, NOTE)],
            ActionRequest::AddHelpers { windows, .. } => windows.iter().map(|w| ("windows", w.as_str(), SHORT)).collect(),
            ActionRequest::Progress { note, .. } | ActionRequest::ApproveExtension { note } | ActionRequest::RefuseExtension { note } | ActionRequest::Supervise { note, .. } => {
                vec![("note", note, NOTE)]
            }
            ActionRequest::Resolve { public_reply, internal_note } => vec![("public_reply", public_reply, NOTE), ("internal_note", internal_note, NOTE)],
            ActionRequest::Feedback { method, note, .. } => vec![("method", method, SHORT), ("note", note, NOTE)],
            ActionRequest::Rate { comment, .. } => vec![("comment", comment, NOTE)],
            ActionRequest::Appeal { reason } => vec![("reason", reason, NOTE)],
            ActionRequest::UpholdAppeal { note } | ActionRequest::DismissAppeal { note } => vec![("note", note, NOTE)],
            ActionRequest::Merge { into } => vec![("into", into, SHORT)],
            ActionRequest::ReplySupervision { measures, .. } => vec![("measures", measures, NOTE)],
            ActionRequest::Decline { referral, reason } => vec![("referral", referral, SHORT), ("reason", reason, NOTE)],
            ActionRequest::Withdraw { reason, .. } => vec![("reason", reason, NOTE)],
            ActionRequest::Suspend { reason, note, expected_on } => vec![("reason", reason, SHORT), ("note", note, NOTE), ("expected_on", expected_on, SHORT)],
            ActionRequest::Resume { note } => vec![("note", note, NOTE)],
            ActionRequest::RequestAssistance { helpers, requirements } => {
                let mut v: Vec<(&'static str, &str, usize)> = helpers.iter().filter_map(|h| h.window.as_deref()).map(|w| ("helpers.window", w, SHORT)).collect();
                v.push(("requirements", requirements, NOTE));
                v
            }
            ActionRequest::ReplyAssistance { window, reply, .. } => vec![("window", window.as_deref().unwrap_or_default(), SHORT), ("reply", reply, NOTE)],
            ActionRequest::SuperviseAssistance { helper, note, .. } => vec![("helper.window", helper.window.as_deref().unwrap_or_default(), SHORT), ("note", note, NOTE)],
            ActionRequest::MediationSession { held_on, mediators, attendees, notes, .. } => {
                let mut v: Vec<(&'static str, &str, usize)> = mediators.iter().map(|m| ("mediators", m.as_str(), SHORT)).collect();
                v.extend([("held_on", held_on.as_str(), SHORT), ("attendees", attendees.as_str(), 200), ("notes", notes.as_str(), NOTE)]);
                v
            }
            ActionRequest::MediationAgreement { document, mediators, signed_on, .. } => {
                let mut v: Vec<(&'static str, &str, usize)> = mediators.iter().map(|m| ("mediators", m.as_str(), SHORT)).collect();
                v.extend([
                    ("signed_on", signed_on.as_str(), SHORT),
                    ("document.number", document.number.as_str(), SHORT),
                    ("document.matter", document.matter.as_str(), 5000),
                    ("document.terms", document.terms.as_str(), 5000),
                    ("document.performance", document.performance.as_str(), NOTE),
                ]);
                for p in &document.parties {
                    v.extend([
                        ("party.name", p.name.as_str(), 50),
                        ("party.gender", p.gender.as_str(), 8),
                        ("party.ethnicity", p.ethnicity.as_str(), 16),
                        ("party.age", p.age.as_str(), 8),
                        ("party.occupation", p.occupation.as_str(), SHORT),
                        ("party.phone", p.phone.as_str(), 20),
                        ("party.address", p.address.as_str(), 200),
                    ]);
                }
                v
            }
            ActionRequest::ReferConfirmation { court, note } => vec![("court", court, SHORT), ("note", note, NOTE)],
            ActionRequest::RecordConfirmation { ruling, ruled_on, note, .. } => vec![("ruling", ruling, SHORT), ("ruled_on", ruled_on, SHORT), ("note", note, NOTE)],
            ActionRequest::ReturnVisit { method, note, .. } => vec![("method", method, SHORT), ("note", note, NOTE)],
        }
    }

    /// Whether the step is an administrator's (decisions on extensions,
    /// supervision); every other is an operator's.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            ActionRequest::ApproveExtension { .. }
                | ActionRequest::RefuseExtension { .. }
                | ActionRequest::Supervise { .. }
                | ActionRequest::UpholdAppeal { .. }
                | ActionRequest::DismissAppeal { .. }
                | ActionRequest::SuperviseAssistance { .. }
        )
    }

    /// The mediator accounts a mediation step names (the node looks them
    /// up and gives their names with [`ActionRequest::with_mediators`]).
    pub fn mediator_accounts(&self) -> &[String] {
        match self {
            ActionRequest::MediationSession { mediators, .. } | ActionRequest::MediationAgreement { mediators, .. } => mediators,
            _ => &[],
        }
    }

    /// The step with its mediators looked up.
    pub fn with_mediators(mut self, found: Vec<Mediator>) -> ActionRequest {
        if let ActionRequest::MediationSession { mediator_names, .. } | ActionRequest::MediationAgreement { mediator_names, .. } = &mut self {
            *mediator_names = found;
        }
        self
    }

    /// The agreement's document blob (its canonical bytes), for a
    /// mediation agreement.
    pub fn agreement_blob(&self) -> Option<Vec<u8>> {
        match self {
            ActionRequest::MediationAgreement { document, .. } => Some(document.to_bytes()),
            _ => None,
        }
    }

    /// The case a merge names (a number or an id), to be looked up.
    pub fn merge_target(&self) -> Option<&str> {
        match self {
            ActionRequest::Merge { into } => Some(into),
            _ => None,
        }
    }

    /// Whether the step asks for a citizen's rating invitation (the caller
    /// makes the token and passes it to [`ActionRequest::into_action`]).
    pub fn wants_rating_invite(&self, default: bool) -> bool {
        matches!(self, ActionRequest::Feedback { invite_rating, .. } if invite_rating.unwrap_or(default))
    }

    /// The action, with the merge target already looked up (`merge_into`;
    /// required for a merge, ignored otherwise) and the rating invitation
    /// made (`invite`; used by feedback).
    pub fn into_action(self, merge_into: Option<RecordId>, invite: Option<RatingInvite>) -> Result<Action, StepError> {
        let due = |d: Option<String>| d.as_deref().map(|t| parse_time("due_at", t)).transpose();
        let action = match self {
            ActionRequest::SignFor {} => Action::SignFor,
            ActionRequest::Route { window, requirements, due_at } => Action::Route { window, requirements, due_ms: due(due_at)? },
            ActionRequest::Dispatch { to, requirements, due_at } => Action::Dispatch { to, requirements, due_ms: due(due_at)? },
            ActionRequest::Escalate { reason } => Action::Escalate { reason },
            ActionRequest::Return { reason } => Action::Return { reason },
            ActionRequest::Reroute { window, to, reason } => {
                let target = match (window, to) {
                    (Some(w), None) => RouteTarget::Window(w),
                    (None, Some(u)) => RouteTarget::Unit(u),
                    _ => return Err(StepError("reroute needs exactly one of window or to".into())),
                };
                Action::Reroute { target, reason }
            }
            ActionRequest::AddHelpers { windows, units } => Action::AddHelpers { helpers: windows.into_iter().map(RouteTarget::Window).chain(units.into_iter().map(RouteTarget::Unit)).collect() },
            ActionRequest::Progress { note, public } => Action::Progress { note, public },
            ActionRequest::RequestExtension { working_days, reason } => Action::RequestExtension { working_days, reason },
            ActionRequest::ApproveExtension { note } => Action::DecideExtension { approve: true, note },
            ActionRequest::RefuseExtension { note } => Action::DecideExtension { approve: false, note },
            ActionRequest::Supervise { grade, note } => Action::Supervise { grade, note },
            ActionRequest::Resolve { public_reply, internal_note } => Action::Resolve { public_reply, internal_note },
            ActionRequest::Feedback { method, note, .. } => Action::Feedback { method, note, invite },
            ActionRequest::Rate { rating, result_rating, comment } => Action::Rate { rating, comment, result_rating },
            ActionRequest::Appeal { reason } => Action::Appeal { reason },
            ActionRequest::UpholdAppeal { note } => Action::DecideAppeal { upheld: true, note },
            ActionRequest::DismissAppeal { note } => Action::DecideAppeal { upheld: false, note },
            ActionRequest::Reopen { reason } => Action::Reopen { reason },
            ActionRequest::Merge { .. } => Action::Merge { into: merge_into.ok_or_else(|| StepError("merge: the target case was not looked up".into()))? },
            ActionRequest::Archive {} => Action::Archive,
            ActionRequest::ReplySupervision { notice, measures } => {
                Action::ReplySupervision { notice: notice.ok_or_else(|| StepError("reply_supervision: the 督办 notice was not looked up".into()))?, measures }
            }
            other => other.into_decision()?,
        };
        Ok(action)
    }

    /// The steps of format 4 (see [`ActionRequest::into_action`]).
    fn into_decision(self) -> Result<Action, StepError> {
        let looked_up = |names: Vec<Mediator>, asked: &[String]| -> Result<Vec<Mediator>, StepError> {
            if names.len() != asked.len() || names.iter().zip(asked).any(|(m, a)| m.account != *a) {
                return Err(StepError("the mediators were not looked up".into()));
            }
            Ok(names)
        };
        Ok(match self {
            ActionRequest::Decline { referral, reason } => Action::Decline { referral, reason },
            ActionRequest::Withdraw { confirmation, reason } => Action::Withdraw { confirmation, reason },
            ActionRequest::Suspend { reason, note, expected_on } => Action::Suspend { reason, note, expected_ms: parse_day("expected_on", &expected_on, true)? },
            ActionRequest::Resume { note } => Action::Resume { note },
            ActionRequest::RequestAssistance { helpers, requirements } => Action::RequestAssistance {
                helpers: helpers
                    .iter()
                    .map(|h| {
                        let working_days = h.working_days.ok_or_else(|| StepError("request_assistance: a helper's working days were not filled in".into()))?;
                        Ok(AssistTarget { helper: h.target()?, working_days })
                    })
                    .collect::<Result<_, StepError>>()?,
                requirements,
            },
            ActionRequest::ReplyAssistance { request, window, reply, unit } => {
                let request = request.ok_or_else(|| StepError("reply_assistance: the 协办 request was not looked up".into()))?;
                let helper = match (window, unit) {
                    (Some(w), _) => RouteTarget::Window(w),
                    (None, Some(u)) => RouteTarget::Unit(u),
                    (None, None) => return Err(StepError("reply_assistance: the helper was not looked up".into())),
                };
                Action::ReplyAssistance { request, helper, reply }
            }
            ActionRequest::SuperviseAssistance { request, helper, grade, note } => Action::SuperviseAssistance { request, helper: helper.target()?, grade, note },
            ActionRequest::MediationSession { held_on, mediators, attendees, notes, mediator_names } => {
                Action::MediationSession { held_ms: parse_day("held_on", &held_on, false)?, mediators: looked_up(mediator_names, &mediators)?, attendees, notes }
            }
            ActionRequest::MediationAgreement { document, signatures, mediators, signed_on, mediator_names } => Action::MediationAgreement {
                document: BlobHash::of(&document.to_bytes()),
                signatures,
                mediators: looked_up(mediator_names, &mediators)?,
                signed_ms: parse_day("signed_on", &signed_on, false)?,
            },
            ActionRequest::ReferConfirmation { court, note } => Action::ReferConfirmation { court, note },
            ActionRequest::RecordConfirmation { confirmed, ruling, ruled_on, note } => Action::RecordConfirmation { confirmed, ruling, ruled_ms: parse_day("ruled_on", &ruled_on, false)?, note },
            ActionRequest::ReturnVisit { fulfilment, method, note } => Action::ReturnVisit { fulfilment, method, note },
            other => return Err(StepError(format!("{other:?} is not a step of format 4"))),
        })
    }
}
