//! The steps of record format 4 as the API takes them: what the node looks
//! up before signing (the 协办 request a helper answers, the policy's
//! default 协办 deadline, the mediators' accounts, the agreement's text
//! stored as a blob), and what a 派驻 window account may see and do.

use axum::http::StatusCode;
use zongzhi_protocol::case::{Mediator, RouteTarget};
use zongzhi_protocol::step::ActionRequest;
use zongzhi_protocol::{Action, RecordId};

use super::AppState;
use super::auth::outside_windows;
use super::error::ApiError;
use crate::accounts::{self, Session};
use crate::summary::CaseSummary;

/// The steps a window account takes on a case at one of its windows: the
/// handling of the case there (never where it goes next: routing,
/// dispatch, escalation, 不予受理 and 并单 are the center's, as are the
/// steps after resolution).
pub(crate) const WINDOW_STEPS: &[&str] = &[
    "progress",
    "attach",
    "request_extension",
    "resolve",
    "return",
    "withdraw",
    "suspend",
    "resume",
    "request_assistance",
    "reply_assistance",
    "reply_supervision",
    "mediation_session",
    "mediation_agreement",
    "refer_confirmation",
    "record_confirmation",
    "return_visit",
];

/// The steps a window account takes on a case its window helps with.
pub(crate) const HELPER_STEPS: &[&str] = &["progress", "attach", "reply_assistance"];

/// How a window account stands to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowReach {
    /// At one of its windows.
    Handles,
    /// One of its windows was asked to help.
    Helps,
}

/// A window account's reach over `case` (403 outside its windows); `None`
/// for every other account.
pub(crate) fn reach(s: &AppState, session: &Session, case: &RecordId) -> Result<Option<WindowReach>, ApiError> {
    if !session.is_window() {
        return Ok(None);
    }
    let me = s.node.division;
    let summary: Option<CaseSummary> = s.store.case_summary(case)?;
    match summary {
        Some(c) if c.owner == me && c.window.as_ref().is_some_and(|w| session.windows.contains(w)) => Ok(Some(WindowReach::Handles)),
        Some(c) if c.in_windows(me, &session.windows) => Ok(Some(WindowReach::Helps)),
        _ => Err(outside_windows(session, "这个案件")),
    }
}

/// Whether a window account with `reach` may take `action` (403 if not).
pub(crate) fn window_may(session: &Session, reach: WindowReach, action: &Action) -> Result<(), ApiError> {
    let allowed = match reach {
        WindowReach::Handles => WINDOW_STEPS,
        WindowReach::Helps => HELPER_STEPS,
    };
    let own_window = match action {
        Action::ReplyAssistance { helper: RouteTarget::Window(w), .. } => session.windows.contains(w),
        Action::ReplyAssistance { .. } => false,
        _ => true,
    };
    if allowed.contains(&action.as_str()) && own_window {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, "outside_windows", format!("派驻窗口账号不能在此案件上执行“{}” (a window account may not take {} on this case)", action.zh(), action.as_str())))
}

/// Fills in what the node looks up for a step of format 4; returns the
/// step and, for a mediation agreement, the document to store with it.
pub(crate) fn prepare(s: &AppState, session: &Session, case: RecordId, req: ActionRequest) -> Result<(ActionRequest, Option<Vec<u8>>), ApiError> {
    let req = match req {
        ActionRequest::RequestAssistance { mut helpers, requirements } => {
            let days = s.policy().decisions.assistance_working_days;
            for h in &mut helpers {
                h.working_days.get_or_insert(days);
            }
            ActionRequest::RequestAssistance { helpers, requirements }
        }
        ActionRequest::ReplyAssistance { request, window, reply, .. } => reply_assistance(s, session, case, request, window, reply)?,
        ActionRequest::MediationAgreement { mut document, signatures, mediators, signed_on, mediator_names } => {
            check_document(&document)?;
            if document.number.trim().is_empty() {
                let summary = s.store.case_summary(&case)?;
                document.number = summary.map(|c| format!("{}-调", c.number)).unwrap_or_default();
            }
            ActionRequest::MediationAgreement { document, signatures, mediators, signed_on, mediator_names }
        }
        other => other,
    };
    let mediators = lookup_mediators(s, req.mediator_accounts())?;
    let req = if req.mediator_accounts().is_empty() { req } else { req.with_mediators(mediators) };
    let blob = req.agreement_blob();
    Ok((req, blob))
}

/// 协办回复: the request waiting for this helper (a window account's
/// window, a window named by the center, or this unit) unless named.
fn reply_assistance(s: &AppState, session: &Session, case: RecordId, request: Option<RecordId>, window: Option<String>, reply: String) -> Result<ActionRequest, ApiError> {
    let me = s.node.division;
    let summary = s.store.case_summary(&case)?;
    let owed = summary.map(|c| c.assists_owed).unwrap_or_default();
    let window = match window {
        Some(w) if session.is_window() && !session.windows.contains(&w) => return Err(outside_windows(session, &format!("窗口 {w}"))),
        Some(w) => Some(w),
        // A window account answers for its window waiting on this case.
        None if session.is_window() => owed.iter().find_map(|(_, u, w, _)| w.as_ref().filter(|w| *u == me && session.windows.contains(w)).cloned()),
        None => None,
    };
    if session.is_window() && window.is_none() {
        return Err(outside_windows(session, "这个协办请求"));
    }
    let request = match request {
        Some(r) => r,
        None => owed.iter().find(|(_, u, w, _)| *u == me && *w == window).map(|(r, ..)| *r).ok_or_else(|| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation", "这个案件没有等待本单位（窗口）回复的协办请求 (no 协办 request of this case waits for this helper's reply)")
        })?,
    };
    Ok(ActionRequest::ReplyAssistance { request: Some(request), unit: window.is_none().then_some(me), window, reply })
}

/// The mediators a step names: accounts of this node marked as mediators
/// and enabled, with the names the agreement prints.
fn lookup_mediators(s: &AppState, accounts: &[String]) -> Result<Vec<Mediator>, ApiError> {
    let mut out = Vec::with_capacity(accounts.len());
    for name in accounts {
        let account: Option<accounts::Account> = s.store.account(name)?;
        match account {
            Some(a) if a.mediator && !a.disabled => out.push(Mediator { account: a.username.clone(), name: a.display_name.trim().to_string() }),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "not_a_mediator",
                    format!("{name} 不是本中心的调解员账号 ({name} is not an enabled mediator account of this center; an admin marks one with --mediator)"),
                ));
            }
        }
    }
    Ok(out)
}

/// An agreement names its parties (2 to 10, each by name), the matter and
/// the terms.
fn check_document(d: &zongzhi_protocol::case::AgreementDoc) -> Result<(), ApiError> {
    if d.parties.len() < 2 {
        return Err(ApiError::bad_request("an agreement (调解协议书) names at least two parties"));
    }
    if d.parties.iter().any(|p| p.name.trim().is_empty()) {
        return Err(ApiError::bad_request("every party of an agreement has a name"));
    }
    if d.matter.trim().is_empty() || d.terms.trim().is_empty() {
        return Err(ApiError::bad_request("an agreement states the matter in dispute (matter) and the terms agreed (terms)"));
    }
    Ok(())
}
