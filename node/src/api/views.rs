//! The JSON a case is shown as: the full case view (timeline, contact by
//! role, the steps allowed now) and the list summary.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};
use zongzhi_protocol::case::{Contact, Rating, RouteTarget, SuperviseGrade};
use zongzhi_protocol::workflow::TimelineEntry;
use zongzhi_protocol::{Action, CaseState, DivisionCode, NodeId, Policy, Record, RecordId};

use super::error::ApiError;
use super::{AppState, time};
use crate::accounts::{self, Role, Session};
use crate::integrity;
use crate::ledger;
use crate::store::Store;
use crate::summary::CaseSummary;

fn category_json(policy: &Policy, code: &str) -> Value {
    match policy.subcategory(code) {
        Some((parent, leaf)) => json!({"code": code, "name": leaf.name, "parent_code": parent.code, "parent_name": parent.name}),
        None => json!({"code": code, "name": Value::Null}),
    }
}

fn target_json(t: &RouteTarget) -> Value {
    match t {
        RouteTarget::Window(w) => json!({"window": w}),
        RouteTarget::Unit(u) => json!({"unit": u.to_string()}),
    }
}

fn action_details(a: &Action) -> Value {
    let due = |d: &Option<u64>| d.map(time);
    match a {
        Action::File(f) => json!({"number": f.number, "title": f.title}),
        Action::SignFor | Action::Archive => json!({}),
        Action::Route { window, requirements, due_ms } => json!({"window": window, "requirements": requirements, "due_at": due(due_ms)}),
        Action::Dispatch { to, requirements, due_ms } => json!({"to": to.to_string(), "requirements": requirements, "due_at": due(due_ms)}),
        Action::Escalate { reason } | Action::Return { reason } | Action::Reopen { reason } => json!({"reason": reason}),
        Action::Reroute { target, reason } => json!({"target": target_json(target), "reason": reason}),
        Action::AddHelpers { helpers } => json!({"helpers": helpers.iter().map(target_json).collect::<Vec<_>>()}),
        Action::Progress { note, public } => json!({"note": note, "public": public}),
        Action::RequestExtension { working_days, reason } => json!({"working_days": working_days, "reason": reason}),
        Action::DecideExtension { approve, note } => json!({"approve": approve, "note": note}),
        Action::Supervise { grade, note } => json!({"grade": grade.as_str(), "grade_zh": grade.zh(), "note": note}),
        Action::Resolve { public_reply, internal_note } => json!({"public_reply": public_reply, "internal_note": internal_note}),
        Action::Feedback { method, note, invite } => json!({"method": method, "note": note, "rating_invited": invite.is_some(), "rating_token_expires_at": invite.map(|i| time(i.expires_ms))}),
        Action::Rate { rating, comment, result_rating } => json!({
            "rating": rating.as_str(), "rating_zh": rating.zh(), "comment": comment, "by": "staff",
            "result_rating": result_rating.map(|r| r.as_str()), "result_rating_zh": result_rating.map(|r| r.zh()),
        }),
        // The token is spent and never shown.
        Action::CitizenRate { rating, result_rating, comment, .. } => json!({
            "rating": rating.as_str(), "rating_zh": rating.zh(), "comment": comment, "by": "citizen",
            "result_rating": result_rating.as_str(), "result_rating_zh": result_rating.zh(),
        }),
        Action::Appeal { reason } => json!({"reason": reason}),
        Action::DecideAppeal { upheld, note } => json!({"upheld": upheld, "note": note}),
        Action::Merge { into } => json!({"into": into.to_string()}),
        Action::Attach { blob, name, mime, size } => json!({"blob": blob.to_string(), "name": name, "mime": mime, "size": size}),
        Action::ReplySupervision { notice, measures } => json!({"notice": notice.to_string(), "measures": measures}),
        Action::Decline { referral, reason } => json!({"referral": referral, "reason": reason}),
        Action::Withdraw { confirmation, reason } => json!({"confirmation": confirmation.as_str(), "confirmation_zh": confirmation.zh(), "reason": reason}),
        Action::Suspend { reason, note, expected_ms } => json!({"reason": reason, "note": note, "expected_at": time(*expected_ms)}),
        Action::Resume { note } => json!({"note": note}),
        Action::RequestAssistance { helpers, requirements } => json!({
            "helpers": helpers.iter().map(|h| { let mut v = target_json(&h.helper); v["working_days"] = json!(h.working_days); v }).collect::<Vec<_>>(),
            "requirements": requirements,
        }),
        Action::ReplyAssistance { request, helper, reply } => json!({"request": request.to_string(), "helper": target_json(helper), "reply": reply}),
        Action::SuperviseAssistance { request, helper, grade, note } => {
            json!({"request": request.to_string(), "helper": target_json(helper), "grade": grade.as_str(), "grade_zh": grade.zh(), "note": note})
        }
        Action::MediationSession { held_ms, mediators, attendees, notes } => json!({"held_at": time(*held_ms), "mediators": mediators, "attendees": attendees, "notes": notes}),
        Action::MediationAgreement { document, signatures, mediators, signed_ms } => json!({
            "document": document.to_string(), "signatures": signatures.iter().map(|b| b.to_string()).collect::<Vec<_>>(), "mediators": mediators, "signed_at": time(*signed_ms),
        }),
        Action::ReferConfirmation { court, note } => json!({"court": court, "note": note}),
        Action::RecordConfirmation { confirmed, ruling, ruled_ms, note } => json!({"confirmed": confirmed, "ruling": ruling, "ruled_at": time(*ruled_ms), "note": note}),
        Action::ReturnVisit { fulfilment, method, note } => json!({"fulfilment": fulfilment.as_str(), "fulfilment_zh": fulfilment.zh(), "method": method, "note": note}),
    }
}

fn contact_json(store: &Store, state: &CaseState, role: Role) -> Result<Value, ApiError> {
    let Some(hash) = state.filing.contact else { return Ok(Value::Null) };
    let Some(bytes) = store.blob(&hash.0)? else {
        return Ok(json!({"available": false}));
    };
    if zongzhi_protocol::BlobHash::of(&bytes) != hash {
        return Ok(json!({"available": false, "integrity_error": "stored contact does not match the hash the filing signed"}));
    }
    let contact = Contact::from_bytes(&bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    // A window account sees the contact of its windows' cases (it handles them).
    let masked = role < Role::Operator && role != Role::Window;
    let shown = if masked { contact.masked() } else { contact };
    Ok(json!({"available": true, "masked": masked, "name": shown.name, "phone": shown.phone, "id_number": shown.id_number, "address": shown.address}))
}

/// A case's stored records as read for its view, with what checking them found.
struct CaseRecords {
    records: Vec<Record>,
    /// The hash and signature check of each decoded record.
    verdicts: HashMap<RecordId, Result<(), String>>,
    /// Records indexed under the case but missing, undecodable or failing their check.
    integrity_errors: Vec<Value>,
}

impl CaseRecords {
    /// Reads the records indexed under `case`, checking each one's hash and signature.
    fn load(store: &Store, case: &RecordId) -> Result<CaseRecords, ApiError> {
        let ids = store.case_events(case)?;
        let mut records: Vec<Record> = Vec::with_capacity(ids.len());
        let mut verdicts: HashMap<RecordId, Result<(), String>> = HashMap::new();
        let mut integrity_errors = Vec::new();
        for id in ids {
            let Some(bytes) = store.record_bytes(&id)? else {
                integrity_errors.push(json!({"record": id.to_string(), "detail": "indexed but missing"}));
                continue;
            };
            let verdict = integrity::check_record(&id, &bytes);
            match Record::decode_unverified(&bytes) {
                Ok(mut r) => {
                    // A record is known by the id it is stored (and referenced)
                    // under; if its bytes no longer hash to it, the verdict says so.
                    r.id = id;
                    if let Err(d) = &verdict {
                        integrity_errors.push(json!({"record": id.to_string(), "detail": d}));
                    }
                    verdicts.insert(id, verdict.map(|_| ()));
                    records.push(r);
                }
                Err(e) => integrity_errors.push(json!({"record": id.to_string(), "detail": e.to_string()})),
            }
        }
        Ok(CaseRecords { records, verdicts, integrity_errors })
    }
}

/// The full view of `case` for `session`: the contact as its role may see it, the steps it may take.
pub(super) async fn case_view(s: &AppState, case: RecordId, session: &Session) -> Result<Value, ApiError> {
    let role = session.role;
    let policy = s.policy();
    let CaseRecords { records, verdicts, integrity_errors } = CaseRecords::load(&s.store, &case)?;
    let parked = parked_steps(&s.store, &case, records.is_empty())?;
    let format = s.shared.write_format();
    let state = ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "integrity",
            format!("case {case} cannot be read: {e}; problems: {}", integrity_errors.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join("; ")),
        )
    })?;
    let now = s.now_ms();
    let names = unit_names(&s.shared.trust());
    let unit_name = |u: &DivisionCode| names.get(u).cloned();
    let operators = operator_names(s, &state)?;
    let timeline = timeline_json(&state, &records, &verdicts, &s.node.id, &operators, &names);
    let deadlines = deadlines_json(&state, &policy, now, &names);
    let f = &state.filing;
    Ok(json!({
        "id": state.id.to_string(),
        "number": f.number,
        "title": f.title,
        "content": f.content,
        "category": category_json(&policy, &f.category),
        "request_type": {"code": f.request_type.as_str(), "name": f.request_type.zh()},
        "channel": {"code": f.channel.as_str(), "name": f.channel.zh()},
        "urgency": {"code": f.urgency.as_str(), "name": f.urgency.zh()},
        "complexity": {"code": f.complexity.as_str(), "name": f.complexity.zh()},
        "place": {"address": f.place.address, "lat": f.place.lat_e6.map(|v| v as f64 / 1e6), "lon": f.place.lon_e6.map(|v| v as f64 / 1e6)},
        "occurred_at": f.occurred_at_ms.map(time),
        "received_at": time(f.received_at_ms),
        "people_involved": f.people_involved,
        "amount_fen": f.amount_fen,
        "contact": contact_json(&s.store, &state, role)?,
        "status": {"code": state.status.as_str(), "name": state.status.zh()},
        "owner": state.owner.to_string(),
        "owner_name": unit_name(&state.owner),
        "window": state.window,
        "window_name": state.window.as_deref().and_then(|w| policy.window(w)).map(|w| w.name.clone()),
        "came_from": state.came_from.map(|c| c.to_string()),
        "filed_by": state.filed_by.to_string(),
        "filed_by_name": unit_name(&state.filed_by),
        "filed_at": time(state.filed_ms),
        "helpers": state.helpers.iter().map(target_json).collect::<Vec<_>>(),
        "units_handled": state.units_handled.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "highest_level": state.highest_level.as_str(),
        "escalations": state.escalations,
        "returns": state.returns,
        "reopens": state.reopens,
        "extension_pending": state.extension.as_ref().map(|e| json!({"working_days": e.working_days, "reason": e.reason, "operator": e.operator, "requested_at": time(e.requested_ms)})),
        "supervision": state.supervision.map(|g| json!({"grade": g.as_str(), "name": g.zh(), "count": state.supervisions})),
        "resolved_at": state.resolved_ms.map(time),
        "resolved_by": state.resolved_by.map(|u| u.to_string()),
        "public_reply": state.public_reply,
        "fed_back_at": state.fed_back_ms.map(time),
        "rating": state.rating.map(|r| json!({"code": r.as_str(), "name": r.zh()})),
        "ratings": ratings_json(&state),
        "rating_invite": state.invite.map(|i| json!({"expires_at": time(i.expires_ms)})),
        "arose_in": f.intake.arose_in.unwrap_or(state.filed_by).to_string(),
        "arose_in_name": unit_name(&f.intake.arose_in.unwrap_or(state.filed_by)),
        "skip_level": f.intake.skip_level,
        "has_query_code": f.intake.query_code_hash.is_some(),
        "merged_into": state.merged_into.map(|c| c.to_string()),
        "archived_at": state.archived_ms.map(time),
        "attachments": state.attachments,
        "deadlines": deadlines,
        "overdue": state.is_overdue(now),
        "heads": state.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "timeline": timeline,
        "integrity_errors": integrity_errors,
        "notices": notices_json(&state, now, &names),
        "decisions": super::decision_views::decisions_json(&s.store, &s.shared.policies(), &state, role, now, &names)?,
        "read_only": read_only_json(&parked),
        "parked": parked.iter().map(|(id, e)| json!({"record": id.to_string(), "format": e.format, "needs_format": e.needs, "reason": e.reason, "author": e.author})).collect::<Vec<_>>(),
        "allowed_actions": allowed_actions(&state, &policy, s.node.division, session, now, format, !parked.is_empty()),
        "my_windows": session.windows,
    }))
}

/// Every rating the case received, with its appeal.
fn ratings_json(state: &CaseState) -> Vec<Value> {
    state
        .ratings
        .iter()
        .map(|r| {
            json!({
                "event": r.event.to_string(),
                "at": time(r.at_ms),
                "unit": r.unit.to_string(),
                "by": r.by,
                "by_zh": r.by.zh(),
                "rating": {"code": r.rating.as_str(), "name": r.rating.zh()},
                "result_rating": r.result_rating.map(|x| json!({"code": x.as_str(), "name": x.zh()})),
                "appeal": r.appeal,
                "appeal_reason": r.appeal_reason,
                "counts": r.counts(),
            })
        })
        .collect()
}

/// The case's 督办 notices that ask for a reply (format 4), with their replies.
fn notices_json(state: &CaseState, now: u64, names: &HashMap<DivisionCode, String>) -> Vec<Value> {
    state
        .notices
        .iter()
        .map(|n| {
            json!({
                "id": n.id.to_string(),
                "grade": {"code": n.grade.as_str(), "name": n.grade.zh()},
                "by": n.by.to_string(),
                "by_name": names.get(&n.by),
                "to": n.to.to_string(),
                "to_name": names.get(&n.to),
                "at": time(n.at_ms),
                "reply_due_at": n.reply_due_ms.map(time),
                "replied_at": n.replied_ms.map(time),
                "measures": n.measures,
                "superseded_by": n.superseded_by.map(|x| x.to_string()),
                "late": n.replied_ms.map_or(n.reply_due_ms.is_some_and(|d| now > d), |r| n.reply_due_ms.is_some_and(|d| r > d)),
            })
        })
        .collect()
}

/// The case's steps held aside here (a newer record format, or following
/// one); a case whose filing itself is held aside cannot be shown.
fn parked_steps(store: &Store, case: &RecordId, nothing_else: bool) -> Result<Vec<(RecordId, crate::store::ParkedEntry)>, ApiError> {
    let mut parked = Vec::new();
    for id in store.parked_in_case(case)? {
        if let Some(e) = store.parked_entry(&id)? {
            parked.push((id, e));
        }
    }
    if nothing_else && let Some(needs) = parked.iter().map(|(_, e)| e.needs).max() {
        return Err(ApiError::from(ledger::LedgerError::NeedsUpgrade { format: needs, install: crate::release::reading_format(needs) }));
    }
    Ok(parked)
}

/// Why the case takes no step here: a step held aside needs an upgrade.
fn read_only_json(parked: &[(RecordId, crate::store::ParkedEntry)]) -> Option<Value> {
    let needs = parked.iter().map(|(_, e)| e.needs).max()?;
    let install = crate::release::reading_format(needs);
    Some(json!({
        "needs_format": needs,
        "install": install,
        "message": format!("此案件有本版本无法读取的步骤，需要升级到 {install} 后才能继续办理 (a step of this case needs record format {needs}: install {install})"),
    }))
}

/// The case's timeline: each step with its author, unit and operator, outcome and signature check.
fn timeline_json(
    state: &CaseState,
    records: &[Record],
    verdicts: &HashMap<RecordId, Result<(), String>>,
    own: &NodeId,
    operators: &HashMap<String, String>,
    names: &HashMap<DivisionCode, String>,
) -> Vec<Value> {
    let by_id: HashMap<RecordId, &Record> = records.iter().map(|r| (r.id, r)).collect();
    let unit_name = |u: &DivisionCode| names.get(u).cloned();
    state
        .timeline
        .iter()
        .map(|t| {
            let seq = by_id.get(&t.id).map(|r| r.header.seq);
            let format = by_id.get(&t.id).map(|r| r.format);
            let valid = verdicts.get(&t.id).map(|v| v.is_ok()).unwrap_or(false);
            // Display names are known for this node's own operators only.
            let operator_name = if t.author == *own { operators.get(&t.operator).filter(|n| !n.is_empty()).cloned() } else { None };
            let winner = t.overruled_by.and_then(|w| state.timeline.iter().find(|x| x.id == w));
            json!({
                "id": t.id.to_string(),
                "author": t.author.fmt_short(),
                "author_seq": seq,
                "format": format,
                "unit": t.unit.to_string(),
                "unit_name": unit_name(&t.unit),
                "operator": t.operator,
                "operator_name": operator_name.unwrap_or_else(|| t.operator.clone()),
                "time": time(t.hlc.wall_ms),
                "action": t.action.as_str(),
                "action_zh": t.action.zh(),
                "details": action_details(&t.action),
                "accepted": t.outcome.is_ok(),
                "rejected": t.outcome.as_ref().err().map(|r| json!({"rule": r.rule, "message": r.message, "message_zh": zongzhi_protocol::rules::zh(r.rule)})),
                "overruled_by": winner.map(|w| overruling_step_json(w, names)),
                "window": t.window,
                "signature_valid": valid,
            })
        })
        .collect()
}

/// The step that overruled another in the timeline, in brief.
fn overruling_step_json(w: &TimelineEntry, names: &HashMap<DivisionCode, String>) -> Value {
    json!({
        "id": w.id.to_string(),
        "action": w.action.as_str(),
        "action_zh": w.action.zh(),
        "unit": w.unit.to_string(),
        "unit_name": names.get(&w.unit).cloned(),
        "time": time(w.hlc.wall_ms),
    })
}

/// The case's deadlines: each clock with its unit, times and state at `now`.
/// The case's clocks, each naming the unit that must act
/// ([`CaseState::acting_unit`]): the same unit the queues and the clock
/// index use.
fn deadlines_json(state: &CaseState, policy: &Policy, now: u64, names: &HashMap<DivisionCode, String>) -> Vec<Value> {
    state
        .deadlines
        .iter()
        .map(|d| {
            let unit = state.acting_unit(d);
            json!({
                "kind": d.kind,
                "kind_zh": d.kind.zh(),
                "unit": unit.to_string(),
                "unit_name": names.get(&unit).cloned(),
                "started_with": (unit != d.unit).then(|| d.unit.to_string()),
                "started_at": time(d.started_ms),
                "due_at": d.due_ms.map(time),
                "met_at": d.met_ms.map(time),
                "on_time": d.met_on_time(),
                "running": d.is_running(),
                "overdue": d.is_overdue(now),
                "clock": d.clock(now, policy.deadlines.due_soon_percent),
                "waiting_year": d.waiting_year,
                "cancelled": d.cancelled,
                "extended_working_days": d.extended_working_days,
                "error": d.error,
                "window": d.window,
                "request": d.notice.filter(|_| d.kind == zongzhi_protocol::workflow::DeadlineKind::Assistance).map(|n| n.to_string()),
                "paused": d.paused.map(|p| json!({"at": time(p.at_ms), "left": p.left})),
            })
        })
        .collect()
}

/// Official unit names by division, from the certificates the node holds
/// (a division re-keyed after a revocation: the unrevoked certificate's name).
pub(crate) fn unit_names(trust: &zongzhi_protocol::trust::Trust) -> HashMap<DivisionCode, String> {
    let mut names: HashMap<DivisionCode, (bool, String)> = HashMap::new();
    for m in trust.members() {
        let revoked = trust.revocation(&m.cert.key).is_some();
        match names.get(&m.cert.division) {
            Some((was_revoked, _)) if !*was_revoked || revoked => {}
            _ => {
                names.insert(m.cert.division, (revoked, m.cert.name.clone()));
            }
        }
    }
    names.into_iter().map(|(d, (_, n))| (d, n)).collect()
}

/// Display names of this node's accounts that appear in the case's
/// timeline, by login name (empty when the account has none or is gone).
fn operator_names(s: &AppState, state: &CaseState) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for t in state.timeline.iter().filter(|t| t.author == s.node.id) {
        if !out.contains_key(&t.operator) {
            let account: Option<accounts::Account> = s.store.account(&t.operator)?;
            out.insert(t.operator.clone(), account.map(|a| a.display_name.trim().to_string()).unwrap_or_default());
        }
    }
    Ok(out)
}

/// The steps this center may take on the case now, by the workflow rules
/// and the user's role: what the console offers. Each is checked with the
/// same `CaseState::check` the ledger applies (sample field values stand in
/// for what the user will type).
/// Steps that need a record format above `format` (the gate) are not
/// offered (and from format 4 on, 协办 with deadlines takes the place of
/// the plain one); a case with a step held aside offers none. A window
/// account is offered its windows' steps only.
fn allowed_actions(state: &CaseState, policy: &Policy, unit: DivisionCode, session: &Session, now: u64, format: u8, parked: bool) -> Vec<&'static str> {
    if (session.role < Role::Operator && !session.is_window()) || parked {
        return Vec::new();
    }
    let (mut candidates, child) = base_candidates(state, policy, unit);
    candidates.extend(super::decision_views::candidates(state, policy, unit, session, now, child));
    // A window account acts as an operator within its windows' steps.
    let role = if session.is_window() { Role::Operator } else { session.role };
    let reach = session.is_window().then(|| {
        let handles = state.owner == unit && state.window.as_ref().is_some_and(|w| session.windows.contains(w));
        if handles { super::decisions::WINDOW_STEPS } else { super::decisions::HELPER_STEPS }
    });
    // The agreement is checked as if its scans were attached (the form uploads them).
    let mut with_scan = state.clone();
    with_scan.attachments.push(zongzhi_protocol::workflow::Attachment { blob: zongzhi_protocol::BlobHash([2; 32]), name: "…".into(), mime: "…".into(), size: 1, unit });
    candidates
        .into_iter()
        .filter(|(_, _, need)| role >= *need)
        .filter(|(_, action, _)| action.format_needed() <= format)
        .filter(|(code, _, _)| !(format >= 4 && *code == "add_helpers"))
        .filter(|(code, _, _)| reach.is_none_or(|steps| steps.contains(code)))
        .filter(|(code, action, _)| {
            let event = zongzhi_protocol::CaseEvent { case: Some(state.id), parents: state.heads.clone(), unit, operator: session.username.clone(), action: action.clone(), policy: policy.version };
            let eref = zongzhi_protocol::workflow::EventRef { id: RecordId([0; 32]), author: NodeId([0; 32]), seq: 0, hlc: zongzhi_protocol::Hlc { wall_ms: now, counter: 0 }, format, event: &event };
            let st = if *code == "mediation_agreement" { &with_scan } else { state };
            st.check(policy, &eref).is_ok()
        })
        .map(|(code, _, _)| code)
        .collect()
}

type Candidate = (&'static str, Action, Role);

/// The steps of formats 3 and 4 before the decisions, with sample values;
/// and the child unit a dispatch would name.
fn base_candidates(state: &CaseState, policy: &Policy, unit: DivisionCode) -> (Vec<Candidate>, Option<DivisionCode>) {
    let window = policy.windows.first().map(|w| w.code.clone()).unwrap_or_default();
    let child = match unit.level() {
        zongzhi_protocol::Level::City => DivisionCode::new(unit.as_u64() + 1_000_000).ok(),
        zongzhi_protocol::Level::County => DivisionCode::new(unit.as_u64() + 1_000).ok(),
        zongzhi_protocol::Level::Township => DivisionCode::new(unit.as_u64() + 1).ok(),
        zongzhi_protocol::Level::Village => None,
    };
    let text = || "…".to_string();
    let mut candidates: Vec<(&'static str, Action, Role)> = vec![
        ("sign_for", Action::SignFor, Role::Operator),
        ("route", Action::Route { window: window.clone(), requirements: text(), due_ms: None }, Role::Operator),
        ("escalate", Action::Escalate { reason: text() }, Role::Operator),
        ("return", Action::Return { reason: text() }, Role::Operator),
        ("reroute", Action::Reroute { target: RouteTarget::Window(window.clone()), reason: text() }, Role::Operator),
        ("add_helpers", Action::AddHelpers { helpers: vec![RouteTarget::Window(window)] }, Role::Operator),
        ("progress", Action::Progress { note: text(), public: false }, Role::Operator),
        ("request_extension", Action::RequestExtension { working_days: 1, reason: text() }, Role::Operator),
        ("approve_extension", Action::DecideExtension { approve: true, note: text() }, Role::Admin),
        ("refuse_extension", Action::DecideExtension { approve: false, note: text() }, Role::Admin),
        ("supervise", Action::Supervise { grade: SuperviseGrade::Normal, note: text() }, Role::Admin),
        ("resolve", Action::Resolve { public_reply: text(), internal_note: String::new() }, Role::Operator),
        ("feedback", Action::Feedback { method: "phone".into(), note: text(), invite: None }, Role::Operator),
        ("rate", Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None }, Role::Operator),
        ("reopen", Action::Reopen { reason: text() }, Role::Operator),
        ("appeal", Action::Appeal { reason: text() }, Role::Operator),
        ("uphold_appeal", Action::DecideAppeal { upheld: true, note: text() }, Role::Admin),
        ("dismiss_appeal", Action::DecideAppeal { upheld: false, note: text() }, Role::Admin),
        ("merge", Action::Merge { into: RecordId([1; 32]) }, Role::Operator),
        ("archive", Action::Archive, Role::Operator),
    ];
    if let Some(to) = child {
        candidates.push(("dispatch", Action::Dispatch { to, requirements: text(), due_ms: None }, Role::Operator));
    }
    if let Some(n) = state.notices.iter().rev().find(|n| n.to == unit && n.is_pending()) {
        candidates.push(("reply_supervision", Action::ReplySupervision { notice: n.id, measures: text() }, Role::Operator));
    }
    (candidates, child)
}

/// Years a running clock of the case waits for.
fn waiting_years(c: &CaseSummary) -> Vec<i32> {
    let mut y: Vec<i32> = c.waiting.iter().map(|(_, y)| *y).collect();
    y.sort_unstable();
    y.dedup();
    y
}

pub(crate) fn summary_json(policy: &Policy, c: &CaseSummary, now: u64) -> Value {
    json!({
        "id": c.id.to_string(),
        "number": c.number,
        "title": c.title,
        "category": category_json(policy, &c.category),
        "request_type": {"code": c.request_type.as_str(), "name": c.request_type.zh()},
        "channel": {"code": c.channel.as_str(), "name": c.channel.zh()},
        "urgency": {"code": c.urgency.as_str(), "name": c.urgency.zh()},
        "status": {"code": c.status.as_str(), "name": c.status.zh()},
        "owner": c.owner.to_string(),
        "window": c.window,
        "window_name": c.window.as_deref().and_then(|w| policy.window(w)).map(|w| w.name.clone()),
        "filed_by": c.filed_by.to_string(),
        "filed_at": time(c.filed_ms),
        "updated_at": time(c.updated_ms),
        "next_due_at": c.next_due_ms.map(time),
        "overdue": c.is_overdue(now),
        "due_soon": c.is_due_soon(now, policy.deadlines.due_soon_percent),
        "supervision": c.supervision.map(|g| g.as_str()),
        "returns": c.returns,
        "escalations": c.escalations,
        "waiting_calendar": waiting_years(c),
        "clocks": c.running.iter().map(|r| json!({
            "kind": r.kind.as_str(), "name": r.kind.zh(), "unit": r.unit.to_string(),
            "due_at": time(r.due_ms), "overdue": now > r.due_ms,
        })).collect::<Vec<_>>(),
    })
}
