//! A workflow step as a client sends it: the JSON body of
//! `POST /api/cases/{id}/actions`, and its translation into an [`Action`].
//! Pure (no store, no clock), so the same path runs under the fuzz target
//! `action_json` as behind the HTTP route.

use serde::Deserialize;

use crate::case::{Rating, RatingInvite, RouteTarget, SuperviseGrade};
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
}

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
            ActionRequest::Progress { note, .. } | ActionRequest::ApproveExtension { note } | ActionRequest::RefuseExtension { note } | ActionRequest::Supervise { note, .. } => vec![("note", note, NOTE)],
            ActionRequest::Resolve { public_reply, internal_note } => vec![("public_reply", public_reply, NOTE), ("internal_note", internal_note, NOTE)],
            ActionRequest::Feedback { method, note, .. } => vec![("method", method, SHORT), ("note", note, NOTE)],
            ActionRequest::Rate { comment, .. } => vec![("comment", comment, NOTE)],
            ActionRequest::Appeal { reason } => vec![("reason", reason, NOTE)],
            ActionRequest::UpholdAppeal { note } | ActionRequest::DismissAppeal { note } => vec![("note", note, NOTE)],
            ActionRequest::Merge { into } => vec![("into", into, SHORT)],
            ActionRequest::ReplySupervision { measures, .. } => vec![("measures", measures, NOTE)],
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
        )
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
            ActionRequest::AddHelpers { windows, units } => Action::AddHelpers {
                helpers: windows.into_iter().map(RouteTarget::Window).chain(units.into_iter().map(RouteTarget::Unit)).collect(),
            },
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
        };
        Ok(action)
    }
}
