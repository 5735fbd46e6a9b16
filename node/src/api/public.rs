//! The citizens' side, without login: the public progress page
//! (`/public/`), a case's progress by number and query code, the citizen's
//! rating with the one-time token, checking a receipt, and the tree's
//! certificates for checking receipts offline. Served only where
//! `[public] enabled = true` (typically the city, which holds every case
//! event of the tree).
//!
//! What a citizen sees is the case's progress, never personal data or
//! internal notes: no contact, no content, no operator names, no internal
//! notes, no rejected steps; progress notes only when marked public.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::case::{Rating, query_code_hash};
use zongzhi_protocol::receipt::Receipt;
use zongzhi_protocol::workflow::{DeadlineKind, EventRef};
use zongzhi_protocol::{Action, CaseState, DivisionCode, Hlc, NodeId, RecordId};

use super::error::{ApiError, ApiResult};
use super::{AppState, ClientAddr, time};
use crate::citizen::{Refusal, parse_rating_token};
use crate::ledger::{self, Op};

const PAGE: &str = include_str!("../console/public.html");
const PAGE_JS: &str = include_str!("../console/public.js");
const PAGE_CSS: &str = include_str!("../console/public.css");

/// The operator name on a citizen's rating.
pub const CITIZEN_OPERATOR: &str = "群众";

fn enabled(s: &AppState) -> Result<(), ApiError> {
    if s.public.config.enabled { Ok(()) } else { Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "this center does not serve the public progress page ([public] enabled = false)")) }
}

pub(super) async fn page(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    enabled(&s)?;
    Ok(crate::console::page("text/html; charset=utf-8", PAGE))
}

pub(super) async fn script(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    enabled(&s)?;
    Ok(crate::console::page("text/javascript; charset=utf-8", PAGE_JS))
}

pub(super) async fn style(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    enabled(&s)?;
    Ok(crate::console::page("text/css; charset=utf-8", PAGE_CSS))
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::RateLimited(secs) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "查询过于频繁，请稍后再试 (too many requests from this address)").retry_after(secs),
        Refusal::Locked(secs) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            format!("因多次输入错误，本网络对该编号的查询已暂时锁定，请 {} 分钟后再试，或请受理中心工作人员解锁 (too many wrong codes for this number from this address)", secs.div_ceil(60)),
        )
        .retry_after(secs),
        Refusal::AddressLocked(secs) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "locked", format!("因多次输入错误，本网络的查询已暂时锁定，请 {} 分钟后再试 (too many wrong codes from this address)", secs.div_ceil(60)))
                .retry_after(secs)
        }
    }
}

/// A wrong code, token or unknown number: the same answer for each, so
/// the answer tells nothing about which numbers exist; counted against
/// the asking address (and kept), answered no earlier than
/// `wrong_answer_ms` after `started`, so its time tells nothing either.
async fn wrong(s: &AppState, addr: std::net::IpAddr, number: &str, what: &str, started: tokio::time::Instant) -> ApiError {
    let e = match s.public.wrong(addr, number, s.now_ms()) {
        Ok(left) => ApiError::new(StatusCode::FORBIDDEN, "wrong_code", format!("编号或{what}不正确，还可尝试 {left} 次 (wrong number or {what})")),
        Err(r) => refused(r),
    };
    let gate = s.public.clone();
    if let Ok(Err(err)) = tokio::task::spawn_blocking(move || gate.save()).await {
        tracing::warn!("the public page's lock state could not be written now: {err}");
    }
    tokio::time::sleep_until(started + std::time::Duration::from_millis(s.public.config.wrong_answer_ms)).await;
    e
}

/// The query code hash the filing of `number` signed, read from the
/// filing record alone: the same reads and hashing for a number held or
/// not, with or without a history, so that the time a wrong code takes
/// does not depend on the case. `None`: no such case here, or no code.
fn filed_code_hash(s: &AppState, number: &str) -> Result<Option<[u8; 32]>, ApiError> {
    let id = if number.len() > 40 { None } else { s.store.case_by_number(number)? };
    // An unknown number reads a record too (one that is never there).
    let bytes = s.store.record_bytes(&id.unwrap_or(RecordId([0xFF; 32])))?;
    let record = bytes.and_then(|b| zongzhi_protocol::Record::decode(&b).ok());
    Ok(match record.map(|r| r.body) {
        Some(zongzhi_protocol::Body::CaseEvent(zongzhi_protocol::CaseEvent { action: Action::File(f), .. })) if id.is_some() => f.intake.query_code_hash,
        _ => None,
    })
}

/// The case of `number` as this node holds it, folded.
fn held_case(s: &AppState, number: &str) -> Result<Option<CaseState>, ApiError> {
    if number.len() > 40 {
        return Ok(None);
    }
    let Some(id) = s.store.case_by_number(number)? else { return Ok(None) };
    let records = ledger::load_case_records(&s.store, &id)?;
    Ok(Some(ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records)?))
}

#[derive(Deserialize)]
pub(super) struct CodeQuery {
    #[serde(default)]
    code: String,
}

pub(super) async fn case_progress(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Path(number): Path<String>, Query(q): Query<CodeQuery>) -> ApiResult {
    let started = tokio::time::Instant::now();
    enabled(&s)?;
    s.public.admit(addr, &number, s.now_ms()).map_err(refused)?;
    // The code first, against the filing alone; the case is folded only
    // for the right code.
    let given = query_code_hash(&number, &q.code);
    let filed = filed_code_hash(&s, &number)?;
    if !filed.is_some_and(|h| constant_time_eq(&h, &given)) {
        return Err(wrong(&s, addr, &number, "查询码", started).await);
    }
    let Some(state) = held_case(&s, &number)? else {
        return Err(wrong(&s, addr, &number, "查询码", started).await);
    };
    s.public.right(addr, &number);
    Ok(Json(public_view(&s, &state)))
}

/// Equal bytes, compared without stopping at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The case as the citizen may see it.
fn public_view(s: &AppState, st: &CaseState) -> Value {
    let names = super::views::unit_names(&s.shared.trust());
    let name = |u: &DivisionCode| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    let policy = s.policy();
    let now = s.now_ms();
    let steps: Vec<Value> = st
        .timeline
        .iter()
        .filter(|t| t.outcome.is_ok())
        .filter_map(|t| {
            let rules = s.shared.policies();
            let decisions = &rules.rules(st.declined.as_ref().map_or(1, |d| d.policy)).policy.decisions;
            let note = match &t.action {
                Action::Progress { note, public: true } => Some(note.clone()),
                Action::Progress { public: false, .. } | Action::Attach { .. } | Action::Supervise { .. } | Action::AddHelpers { .. } => return None,
                Action::Resolve { public_reply, .. } => Some(public_reply.clone()),
                Action::RequestExtension { .. } | Action::DecideExtension { .. } | Action::Appeal { .. } | Action::DecideAppeal { .. } => return None,
                // Internal work: the citizen sees that it happened, not what was said.
                Action::RequestAssistance { .. } | Action::ReplyAssistance { .. } | Action::SuperviseAssistance { .. } | Action::ReplySupervision { .. } => return None,
                Action::Decline { referral, reason } => Some(match decisions.referral(referral) {
                    Some(r) => format!("{reason}。请到{}：{}", r.name, r.guidance),
                    None => reason.clone(),
                }),
                Action::Withdraw { confirmation, .. } => Some(format!("已按您的意愿撤回（{}）", confirmation.zh())),
                Action::Suspend { reason, expected_ms, .. } => {
                    let name = st.suspensions.iter().find(|x| x.id == t.id).and_then(|x| rules.rules(x.policy).policy.decisions.suspension_reason(reason).map(|r| r.name.clone()));
                    Some(format!(
                        "{}，预计{}恢复办理；中止期间不计入办理期限",
                        name.unwrap_or_else(|| reason.clone()),
                        zongzhi_protocol::policy::format_china(*expected_ms).get(..10).unwrap_or_default()
                    ))
                }
                Action::Resume { .. } => Some("已恢复办理".to_string()),
                _ => None,
            };
            Some(json!({"time": time(t.hlc.wall_ms), "step": t.action.zh(), "unit": name(&t.unit), "note": note}))
        })
        .collect();
    let resolution = st.deadlines.iter().rfind(|d| matches!(d.kind, DeadlineKind::Resolution | DeadlineKind::Rehandle) && !d.cancelled);
    let invite_open = st.invite.is_some_and(|i| i.expires_ms >= now);
    json!({
        "number": st.filing.number,
        "title": st.filing.title,
        "category": policy.subcategory(&st.filing.category).map(|(_, leaf)| leaf.name.clone()),
        "request_type": st.filing.request_type.zh(),
        "status": {"code": st.status.as_str(), "name": st.status.zh()},
        "filed_at": time(st.filed_ms),
        "filed_by": name(&st.filed_by),
        "handling_unit": name(&st.owner),
        // A clock standing still (中止) has no due time to show.
        "due_at": resolution.filter(|d| d.paused.is_none()).and_then(|d| d.due_ms).map(time),
        "overdue": resolution.is_some_and(|d| d.is_overdue(now)),
        "resolved_at": st.resolved_ms.map(time),
        "reply": st.public_reply,
        "declined": st.declined.as_ref().map(|d| {
            let r = s.shared.policies().rules(d.policy).policy.decisions.referral(&d.referral).cloned();
            json!({"reason": d.reason, "referral": r.as_ref().map(|r| r.name.clone()), "guidance": r.map(|r| r.guidance), "at": time(d.at_ms)})
        }),
        "withdrawn": st.withdrawn.as_ref().map(|w| json!({"confirmation": w.confirmation.zh(), "at": time(w.at_ms)})),
        "suspended": st.suspensions.last().filter(|x| x.resumed_ms.is_none()).map(|x| {
            let reason = s.shared.policies().rules(x.policy).policy.decisions.suspension_reason(&x.reason).map(|r| r.name.clone());
            json!({"reason": reason, "since": time(x.at_ms), "expected_at": time(x.expected_ms)})
        }),
        "steps": steps,
        "rating_open": invite_open,
        "rating_expires_at": st.invite.filter(|_| invite_open).map(|i| time(i.expires_ms)),
        "ratings": st.ratings.iter().map(|r| json!({
            "at": time(r.at_ms), "rating": r.rating.zh(), "result_rating": r.result_rating.map(|x| x.zh()),
            "by": r.by.zh(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    token: String,
    rating: Rating,
    result_rating: Rating,
    #[serde(default)]
    comment: String,
}

/// The citizen rates: the token from the feedback proves it; this node
/// signs the rating (群众评价), which replicates to the case's owner.
pub(super) async fn rate(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Path(number): Path<String>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let started = tokio::time::Instant::now();
    enabled(&s)?;
    s.public.admit(addr, &number, s.now_ms()).map_err(refused)?;
    let req: RatingRequest = super::parse_json(&body)?;
    zongzhi_protocol::step::check_length("comment", &req.comment, 500).map_err(|e| ApiError::bad_request(e.0))?;
    let token = parse_rating_token(&req.token);
    // The token's case must fold to tell a wrong token: its answer waits
    // for the same floor as an unknown number's.
    let state = held_case(&s, &number)?;
    let (Some(token), Some(state)) = (token, state) else {
        return Err(wrong(&s, addr, &number, "评价码", started).await);
    };
    // Only the token given at a feedback of this case gets an answer that
    // tells more than "wrong" (expired, rated already, not now): anyone
    // else learns nothing, not even that the number exists.
    let hash = zongzhi_protocol::case::rating_token_hash(&token);
    let invited = state.invite.is_some_and(|i| constant_time_eq(&i.token_hash, &hash));
    let used = state.timeline.iter().any(|t| matches!(&t.action, Action::CitizenRate { token: used, .. } if *used == token));
    if !invited && !used {
        return Err(wrong(&s, addr, &number, "评价码", started).await);
    }
    let action = Action::CitizenRate { token, rating: req.rating, result_rating: req.result_rating, comment: req.comment };
    // The rules first, as the ledger will apply them, to answer each
    // refusal plainly; only a wrong token counts towards the lock.
    let event = zongzhi_protocol::CaseEvent {
        case: Some(state.id),
        parents: state.heads.clone(),
        unit: s.node.division,
        operator: CITIZEN_OPERATOR.into(),
        action: action.clone(),
        policy: s.policy().version,
    };
    let eref = EventRef { id: RecordId([0; 32]), author: NodeId([0; 32]), seq: 0, hlc: Hlc { wall_ms: s.now_ms(), counter: 0 }, format: s.shared.write_format(), event: &event };
    if let Err(r) = state.check(&s.policy(), &eref) {
        return Err(match r.rule {
            "rating-token" => wrong(&s, addr, &number, "评价码", started).await,
            "rating-token-expired" => ApiError::new(StatusCode::GONE, "token_expired", "评价码已过期 (the rating token has expired)"),
            "no-rating-invitation" | "status" if !state.ratings.is_empty() && state.invite.is_none() => {
                ApiError::new(StatusCode::CONFLICT, "already_rated", "该事项已评价，一事一评 (this case has been rated; each token works once)")
            }
            _ => ApiError::new(StatusCode::CONFLICT, "not_ratable", format!("该事项现在不能评价 (the case cannot be rated now: {})", r.message)),
        });
    }
    s.public.right(addr, &number);
    let ack = s.ledger.step(Op::Act { case: state.id, action, operator: CITIZEN_OPERATOR.into() }).await?;
    let records = ledger::load_case_records(&s.store, &ack.case)?;
    let state = ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records)?;
    Ok((StatusCode::CREATED, Json(json!({"rated": true, "case": public_view(&s, &state)}))))
}

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// Checks a receipt against the city root key and the certificates this
/// node holds: no call to the center that signed it.
pub(super) async fn verify_receipt(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Query(q): Query<TokenQuery>) -> ApiResult {
    enabled(&s)?;
    s.public.admit(addr, "", s.now_ms()).map_err(refused)?;
    let receipt = Receipt::parse(&q.token).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let trust = s.shared.trust();
    match receipt.verify(&trust) {
        Ok(v) => {
            let held = s.store.case_by_number(&receipt.number)?;
            Ok(Json(json!({
                "valid": true,
                "number": receipt.number,
                "record": receipt.record.to_string(),
                "center": v.center,
                "division": v.division.to_string(),
                "signer": v.signer.to_string(),
                "signer_revoked": v.signer_revoked,
                "case_held_here": held == Some(receipt.record),
            })))
        }
        Err(e) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_receipt", format!("回执无效 (the receipt does not check out): {e}"))),
    }
}

/// The tree's certificates and revocations as records (hex), with the
/// root key: what `zongzhi verify-receipt --trust` reads to check receipts
/// offline. Public: certificates name centers and keys, nothing else.
pub(super) async fn trust_bundle(State(s): State<AppState>) -> ApiResult {
    enabled(&s)?;
    let trust = s.shared.trust();
    let mut records = Vec::new();
    for id in s.store.trust_records()? {
        if let Some(bytes) = s.store.record_bytes(&id)? {
            records.push(hex::encode(bytes));
        }
    }
    Ok(Json(json!({"root": trust.root().to_string(), "records": records})))
}

/// The case number of `case` (an id or a number) held here.
async fn number_of(s: &AppState, case: &str) -> Result<String, ApiError> {
    let id = super::cases::resolve_case(s, case).await?;
    let summary = s.store.case_summary(&id)?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no case {case}")))?;
    Ok(summary.number)
}

fn locks_json(s: &AppState, number: &str) -> Value {
    let locks: Vec<Value> = s.public.locks_of(number, s.now_ms()).into_iter().map(|(a, until)| json!({"address": a.to_string(), "until": time(until)})).collect();
    json!({"number": number, "public_page": s.public.config.enabled, "locked_addresses": locks})
}

/// Staff: the client addresses locked out of a case number on this node's
/// public page (after wrong query codes or rating tokens).
pub(super) async fn number_locks(State(s): State<AppState>, headers: axum::http::HeaderMap, Path(case): Path<String>) -> ApiResult {
    super::auth::authenticate(&s, &headers, crate::accounts::Role::Operator).await?;
    let number = number_of(&s, &case).await?;
    Ok(Json(locks_json(&s, &number)))
}

/// Staff lift every lock on a case number at this node's public page (a
/// citizen who called because the page refused them); logged and audited.
pub(super) async fn unlock_number(State(s): State<AppState>, ClientAddr(ip): ClientAddr, headers: axum::http::HeaderMap, Path(case): Path<String>) -> ApiResult {
    let session = super::auth::authenticate(&s, &headers, crate::accounts::Role::Operator).await?;
    let number = number_of(&s, &case).await?;
    let lifted = s.public.unlock_number(&number, s.now_ms());
    let gate = s.public.clone();
    tokio::task::spawn_blocking(move || gate.save()).await.map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %session.username, %number, lifted, "public page: locks on the number lifted");
    let entry = crate::login::audit::Entry::admin(s.now_ms(), &session.username, &number, ip, "public_unlock", format!("{lifted} addresses locked out of {number} on the public page let in again"));
    if let Err(e) = s.login.audit.record(entry.clone()).await {
        tracing::warn!("the login audit could not be written now ({e}); kept for later");
        s.login.audit.record_later(entry);
    }
    let mut v = locks_json(&s, &number);
    v["lifted"] = json!(lifted);
    Ok(Json(v))
}
