//! The decisions of record format 4 in a case's JSON: 不予受理 with its
//! referral, 撤回, 中止/恢复, 协办 with deadlines and replies, mediation
//! (sessions, the agreement's text, 司法确认, 回访); and the sample steps
//! `allowed_actions` checks them with.

use std::collections::HashMap;

use serde_json::{Value, json};
use zongzhi_protocol::case::{AgreementDoc, AssistTarget, Fulfilment, Mediator, RouteTarget, SuperviseGrade, WithdrawalConfirmation};
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::workflow::{Agreement, Assistance};
use zongzhi_protocol::{Action, BlobHash, CaseState, DivisionCode, Policy};

use super::error::ApiError;
use super::time;
use crate::accounts::{Role, Session};
use crate::store::Store;

fn helper_json(h: &RouteTarget, names: &HashMap<DivisionCode, String>, policy: &Policy) -> Value {
    match h {
        RouteTarget::Window(w) => json!({"window": w, "name": policy.window(w).map(|x| x.name.clone())}),
        RouteTarget::Unit(u) => json!({"unit": u.to_string(), "name": names.get(u)}),
    }
}

/// The decisions taken on a case, as the case view shows them.
pub(super) fn decisions_json(store: &Store, policies: &PolicySet, st: &CaseState, role: Role, now: u64, names: &HashMap<DivisionCode, String>) -> Result<Value, ApiError> {
    let current = policies.current();
    let declined = st.declined.as_ref().map(|d| {
        let r = policies.rules(d.policy).policy.decisions.referral(&d.referral).cloned();
        json!({
            "referral": {"code": d.referral, "name": r.as_ref().map(|r| r.name.clone()), "guidance": r.map(|r| r.guidance)},
            "reason": d.reason, "unit": d.unit.to_string(), "unit_name": names.get(&d.unit), "at": time(d.at_ms),
        })
    });
    let withdrawn = st.withdrawn.as_ref().map(|w| {
        json!({"confirmation": {"code": w.confirmation.as_str(), "name": w.confirmation.zh()}, "reason": w.reason, "unit": w.unit.to_string(), "unit_name": names.get(&w.unit), "at": time(w.at_ms)})
    });
    let suspensions: Vec<Value> = st
        .suspensions
        .iter()
        .map(|x| {
            let reason = policies.rules(x.policy).policy.decisions.suspension_reason(&x.reason).map(|r| r.name.clone());
            json!({
                "id": x.id.to_string(), "reason": {"code": x.reason, "name": reason}, "note": x.note, "unit": x.unit.to_string(),
                "at": time(x.at_ms), "expected_at": time(x.expected_ms), "resumed_at": x.resumed_ms.map(time),
                "late": x.resumed_ms.map_or(now > x.expected_ms, |r| r > x.expected_ms),
            })
        })
        .collect();
    let assists: Vec<Value> = st.assists.iter().map(|a| assist_json(a, now, names, current)).collect();
    let sessions: Vec<Value> = st
        .mediation
        .sessions
        .iter()
        .map(|x| json!({"id": x.id.to_string(), "unit": x.unit.to_string(), "at": time(x.at_ms), "held_at": time(x.held_ms), "mediators": x.mediators, "attendees": x.attendees, "notes": x.notes}))
        .collect();
    let mut agreements = Vec::new();
    for a in &st.mediation.agreements {
        agreements.push(agreement_json(store, st, a, role, names)?);
    }
    Ok(json!({
        "declined": declined,
        "withdrawn": withdrawn,
        "suspensions": suspensions,
        "assists": assists,
        "mediation": {"sessions": sessions, "agreements": agreements},
    }))
}

fn assist_json(a: &Assistance, now: u64, names: &HashMap<DivisionCode, String>, policy: &Policy) -> Value {
    json!({
        "request": a.request.to_string(),
        "by": a.by.to_string(),
        "by_name": names.get(&a.by),
        "helper": helper_json(&a.helper, names, policy),
        "unit": a.unit().to_string(),
        "requirements": a.requirements,
        "at": time(a.at_ms),
        "working_days": a.working_days,
        "due_at": a.due_ms.map(time),
        "replied_at": a.replied_ms.map(time),
        "reply": a.reply,
        "ended": a.ended_by.is_some(),
        "pending": a.is_pending(),
        "late": a.replied_ms.map_or(a.is_pending() && a.due_ms.is_some_and(|d| now > d), |r| a.due_ms.is_some_and(|d| r > d)),
        "supervision": a.supervision.map(|g| json!({"code": g.as_str(), "name": g.zh(), "count": a.supervisions})),
    })
}

/// An agreement with its text (the blob the step signed; personal details
/// masked for viewers), its scans, 司法确认 and 回访.
fn agreement_json(store: &Store, st: &CaseState, a: &Agreement, role: Role, names: &HashMap<DivisionCode, String>) -> Result<Value, ApiError> {
    let document = match store.blob(&a.document.0)? {
        Some(bytes) if BlobHash::of(&bytes) == a.document => match AgreementDoc::from_bytes(&bytes) {
            Ok(d) if role < Role::Operator && role != Role::Window => json!(d.masked()),
            Ok(d) => json!(d),
            Err(_) => Value::Null,
        },
        _ => Value::Null,
    };
    let scans: Vec<Value> = a.signatures.iter().map(|b| json!({"blob": b.to_string(), "name": st.attachments.iter().find(|x| x.blob == *b).map(|x| x.name.clone())})).collect();
    let confirmation = a.confirmation.as_ref().map(|c| {
        json!({
            "court": c.court, "note": c.note, "at": time(c.at_ms),
            "ruling": c.ruling.as_ref().map(|r| json!({"confirmed": r.confirmed, "ruling": r.ruling, "ruled_at": time(r.ruled_ms), "note": r.note, "at": time(r.at_ms)})),
        })
    });
    let visits: Vec<Value> =
        a.visits.iter().map(|v| json!({"at": time(v.at_ms), "fulfilment": {"code": v.fulfilment.as_str(), "name": v.fulfilment.zh()}, "method": v.method, "note": v.note})).collect();
    Ok(json!({
        "id": a.id.to_string(),
        "unit": a.unit.to_string(),
        "unit_name": names.get(&a.unit),
        "at": time(a.at_ms),
        "signed_at": time(a.signed_ms),
        "mediators": a.mediators,
        "document_hash": a.document.to_string(),
        "document": document,
        "signatures": scans,
        "confirmation": confirmation,
        "visits": visits,
    }))
}

/// Sample steps of format 4 for `allowed_actions`, with the role each needs.
pub(super) fn candidates(st: &CaseState, policy: &Policy, unit: DivisionCode, session: &Session, now: u64, child: Option<DivisionCode>) -> Vec<(&'static str, Action, Role)> {
    let text = || "…".to_string();
    let d = &policy.decisions;
    let mut out: Vec<(&'static str, Action, Role)> = Vec::new();
    if let Some(r) = d.referrals.iter().find(|r| !r.retired) {
        out.push(("decline", Action::Decline { referral: r.code.clone(), reason: text() }, Role::Operator));
    }
    out.push(("withdraw", Action::Withdraw { confirmation: WithdrawalConfirmation::Phone, reason: text() }, Role::Operator));
    if let Some(r) = d.suspension_reasons.iter().find(|r| !r.retired) {
        out.push(("suspend", Action::Suspend { reason: r.code.clone(), note: text(), expected_ms: now + 86_400_000 }, Role::Operator));
    }
    out.push(("resume", Action::Resume { note: text() }, Role::Operator));
    // A helper not asked already: a window, else a unit below.
    let free = |h: &RouteTarget| !st.assists.iter().any(|a| a.helper == *h && a.is_pending());
    let helper = policy.windows.iter().filter(|w| !w.retired).map(|w| RouteTarget::Window(w.code.clone())).chain(child.map(RouteTarget::Unit)).find(|h| free(h));
    if let Some(helper) = helper {
        let helpers = vec![AssistTarget { helper, working_days: d.assistance_working_days }];
        out.push(("request_assistance", Action::RequestAssistance { helpers, requirements: text() }, Role::Operator));
    }
    let answerable = |a: &&Assistance| {
        a.replied_ms.is_none()
            && match &a.helper {
                RouteTarget::Unit(u) => *u == unit && !session.is_window(),
                RouteTarget::Window(w) => a.by == unit && (!session.is_window() || session.windows.contains(w)),
            }
    };
    if let Some(a) = st.assists.iter().find(answerable) {
        out.push(("reply_assistance", Action::ReplyAssistance { request: a.request, helper: a.helper.clone(), reply: text() }, Role::Operator));
    }
    if let Some(a) = st.assists.iter().find(|a| a.by == unit && a.is_pending()) {
        let action = Action::SuperviseAssistance { request: a.request, helper: a.helper.clone(), grade: SuperviseGrade::Normal, note: text() };
        out.push(("supervise_assistance", action, Role::Admin));
    }
    let mediators = vec![Mediator { account: session.username.clone(), name: session.username.clone() }];
    out.push(("mediation_session", Action::MediationSession { held_ms: now, mediators: mediators.clone(), attendees: text(), notes: text() }, Role::Operator));
    let agreement = Action::MediationAgreement { document: BlobHash([1; 32]), signatures: vec![BlobHash([2; 32])], mediators, signed_ms: now };
    out.push(("mediation_agreement", agreement, Role::Operator));
    out.push(("refer_confirmation", Action::ReferConfirmation { court: text(), note: String::new() }, Role::Operator));
    out.push(("record_confirmation", Action::RecordConfirmation { confirmed: true, ruling: text(), ruled_ms: now, note: String::new() }, Role::Operator));
    out.push(("return_visit", Action::ReturnVisit { fulfilment: Fulfilment::Kept, method: "phone".into(), note: text() }, Role::Operator));
    out
}
