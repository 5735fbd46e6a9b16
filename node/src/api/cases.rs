//! Filing, workflow steps, attachments, one case and the case list.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::case::{Channel, Complexity, Contact, Place, RequestType, Urgency};
use zongzhi_protocol::step::{ActionRequest, check_length};
use zongzhi_protocol::{Filing, RecordId};

use super::attachment;
use super::auth::{authenticate, require_role};
use super::decisions;
use super::error::{ApiError, ApiResult};
use super::views::{case_view, summary_json};
use super::{AppState, parse_json, parse_time};
use crate::accounts::Role;
use crate::ledger::{self, Op};

pub(super) async fn resolve_case(s: &AppState, reference: &str) -> Result<RecordId, ApiError> {
    let found = match RecordId::from_hex(reference) {
        Some(id) if s.store.case_summary(&id)?.is_some() => Some(id),
        Some(_) => None,
        None => s.store.case_by_number(reference)?,
    };
    found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no case {reference}")))
}

/// Most characters in a case's title.
const MAX_TITLE_CHARS: usize = 200;
/// Most characters in a case's content (what the complainant said).
const MAX_CONTENT_CHARS: usize = 10_000;

#[derive(Deserialize, Default)]
pub(super) struct PlaceRequest {
    #[serde(default)]
    pub(super) address: String,
    pub(super) lat: Option<f64>,
    pub(super) lon: Option<f64>,
}

/// The JSON of a filing (`POST /api/cases`, and the systems' intake).
#[derive(Deserialize)]
pub(super) struct FileRequest {
    title: String,
    content: String,
    category: String,
    request_type: RequestType,
    channel: Channel,
    #[serde(default = "default_urgency")]
    urgency: Urgency,
    #[serde(default = "default_complexity")]
    complexity: Complexity,
    #[serde(default)]
    place: PlaceRequest,
    occurred_at: Option<String>,
    received_at: Option<String>,
    #[serde(default)]
    people_involved: u32,
    amount_fen: Option<u64>,
    contact: Option<Contact>,
    /// 发生地: the division where the matter arose (default: this center's).
    arose_in: Option<zongzhi_protocol::DivisionCode>,
    /// Give the citizen a receipt with a query code (default yes).
    #[serde(default = "default_true")]
    receipt: bool,
}

fn default_true() -> bool {
    true
}

fn default_urgency() -> Urgency {
    Urgency::Normal
}

fn default_complexity() -> Complexity {
    Complexity::General
}

fn micro_degrees(field: &str, v: Option<f64>, max: f64) -> Result<Option<i32>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x.abs() <= max => Ok(Some((x * 1e6).round() as i32)),
        Some(_) => Err(ApiError::bad_request(format!("place.{field} must be between -{max} and {max}"))),
    }
}

fn validate_contact(c: &Contact) -> Result<(), ApiError> {
    if c.name.trim().is_empty() || c.name.chars().count() > 50 {
        return Err(ApiError::bad_request("contact.name must be 1 to 50 characters"));
    }
    if c.phone.len() > 20 || !c.phone.chars().all(|ch| ch.is_ascii_digit() || ch == '-' || ch == '+' || ch == ' ') {
        return Err(ApiError::bad_request("contact.phone may hold only digits, spaces, '+' and '-' (at most 20)"));
    }
    if !(c.id_number.is_empty() || (c.id_number.len() == 18 && c.id_number.chars().all(|ch| ch.is_ascii_digit() || ch == 'X' || ch == 'x'))) {
        return Err(ApiError::bad_request("contact.id_number must be an 18-character resident ID number"));
    }
    if c.address.chars().count() > 200 {
        return Err(ApiError::bad_request("contact.address is longer than 200 characters"));
    }
    Ok(())
}

pub(super) async fn file_case(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Operator).await?;
    let req: FileRequest = parse_json(&body)?;
    let (ack, query_code) = file_request(&s, req, session.username.clone(), None).await?;
    let mut view = case_view(&s, ack.case, &session).await?;
    if let Some(code) = &query_code {
        let number = view["number"].as_str().unwrap_or_default().to_string();
        view["receipt"] = crate::citizen::receipt_json(&s.shared.key, &number, ack.case, code, s.public.config.url.as_deref());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Checks a filing and files it as `operator`; `source`: the system and
/// its reference, for a filing through the intake (kept with the case).
/// Returns the case and the receipt's query code.
pub(super) async fn file_request(s: &AppState, req: FileRequest, operator: String, source: Option<(String, String)>) -> Result<(ledger::Ack, Option<String>), ApiError> {
    let now = s.now_ms();
    let received_at_ms = match &req.received_at {
        Some(t) => parse_time("received_at", t)?,
        None => now,
    };
    if received_at_ms > now + 5 * 60_000 {
        return Err(ApiError::bad_request("received_at is in the future"));
    }
    // Every clock of the case starts at 受理时间: dated back further, a
    // case filed now would arrive overdue and draw supervision at once.
    if received_at_ms.saturating_add(s.received_at_max_ms) < now {
        return Err(ApiError::bad_request(format!(
            "received_at lies more than {} hours back (received_at_max_hours): 受理时间 is when this center received the matter (a complaint taken on paper over a weekend, say), and every deadline runs from it, so a case dated back further would arrive overdue and be supervised at once",
            s.received_at_max_ms / 3_600_000
        )));
    }
    let occurred_at_ms = req.occurred_at.as_deref().map(|t| parse_time("occurred_at", t)).transpose()?;
    if let Some(c) = &req.contact {
        validate_contact(c)?;
    }
    for (field, value, max) in [("title", &req.title, MAX_TITLE_CHARS), ("content", &req.content, MAX_CONTENT_CHARS), ("place.address", &req.place.address, 200), ("category", &req.category, 32)] {
        check_length(field, value, max).map_err(|e| ApiError::bad_request(e.0))?;
    }
    // (The ledger refuses a 发生地 outside this center's area.)
    let arose_in = req.arose_in.filter(|a| *a != s.node.division);
    let skip_level = match arose_in {
        Some(a) => is_skip_level(s, a, &req.category, req.contact.as_ref())?,
        None => false,
    };
    let query_code = req.receipt.then(crate::citizen::new_query_code);
    let mut filing = Filing {
        number: String::new(),
        title: req.title,
        content: req.content,
        category: req.category,
        request_type: req.request_type,
        channel: req.channel,
        urgency: req.urgency,
        complexity: req.complexity,
        place: Place { address: req.place.address, lat_e6: micro_degrees("lat", req.place.lat, 90.0)?, lon_e6: micro_degrees("lon", req.place.lon, 180.0)? },
        occurred_at_ms,
        received_at_ms,
        people_involved: req.people_involved,
        amount_fen: req.amount_fen,
        contact: None,
        intake: Default::default(),
    };
    filing.intake.arose_in = arose_in;
    filing.intake.skip_level = skip_level;
    let code = query_code.clone().map(|code| crate::ledger::QueryCode { code, notify: s.notify.is_some() });
    let filing = Box::new(filing);
    let op = match source {
        Some((system, reference)) => Op::FileFrom { system, reference, filing, contact: req.contact, query_code: code, operator },
        None => Op::File { filing, contact: req.contact, query_code: code, operator },
    };
    let ack = s.ledger.step(op).await?;
    Ok((ack, query_code))
}

/// 越级: a filing here about a matter that arose in `arose_in` below, with
/// no earlier case of the same complainant and category filed there (as
/// far as this center holds its subtree's cases). Without a phone or ID
/// number there is no way to tell: it counts as 越级.
fn is_skip_level(s: &AppState, arose_in: zongzhi_protocol::DivisionCode, category: &str, contact: Option<&Contact>) -> Result<bool, ApiError> {
    let root = s.shared.trust().root();
    let Some(person) = contact.and_then(|c| crate::index::person_of_contact(&root, c)) else { return Ok(true) };
    let earlier = s.store.cases_of_person(&person, Some(category))?;
    Ok(!earlier.iter().any(|(_, _, unit)| arose_in.contains(*unit)))
}

pub(super) async fn case_action(State(s): State<AppState>, headers: HeaderMap, Path(case): Path<String>, body: Bytes) -> ApiResult {
    // Authenticate before looking at the body, so 401 wins over 400; the
    // role needed depends on the step.
    let session = authenticate(&s, &headers, Role::Window).await?;
    let req = ActionRequest::from_json(&body).map_err(|e| ApiError::bad_request(e.0))?;
    if !session.is_window() {
        require_role(&session, if req.needs_admin() { Role::Admin } else { Role::Operator })?;
    }
    let case = resolve_case(&s, &case).await?;
    // A 派驻 window account: only its windows' cases (403 elsewhere).
    let reach = decisions::reach(&s, &session, &case)?;
    let req = match req {
        // The 督办 waiting for this unit's reply, unless the request names one.
        ActionRequest::ReplySupervision { notice: None, measures } => ActionRequest::ReplySupervision { notice: Some(pending_notice(&s, case)?), measures },
        other => other,
    };
    let (req, document) = decisions::prepare(&s, &session, case, req)?;
    let merge_into = match req.merge_target() {
        Some(into) => Some(resolve_case(&s, into).await?),
        None => None,
    };
    // A rating invitation: a one-time token for the citizen, its hash in
    // the signed feedback; the token itself is shown this once.
    // By default where citizens have a public page to rate on.
    let public_page = s.public.config.enabled || s.public.config.url.is_some();
    let is_feedback = req.wants_rating_invite(true);
    let token = req.wants_rating_invite(public_page).then(crate::citizen::new_rating_token);
    let invite = token.as_ref().map(|(t, _)| zongzhi_protocol::case::RatingInvite {
        token_hash: zongzhi_protocol::case::rating_token_hash(t),
        expires_ms: s.now_ms() + u64::from(s.policy().deadlines.rating_token_days) * 86_400_000,
    });
    let action = req.into_action(merge_into, invite).map_err(|e| ApiError::bad_request(e.0))?;
    if let Some(reach) = reach {
        decisions::window_may(&session, reach, &action)?;
    }
    // The rating token also waits beside the step for the rating
    // invitation message (deleted when the message is queued).
    let secrets = token.as_ref().filter(|_| s.notify.is_some()).map(|(_, text)| vec![("rating_token", text.clone())]).unwrap_or_default();
    let op = if let Some(blob) = document {
        Op::ActWithBlob { case, action, operator: session.username.clone(), blob }
    } else if secrets.is_empty() {
        Op::Act { case, action, operator: session.username.clone() }
    } else {
        Op::ActWithSecrets { case, action, operator: session.username.clone(), secrets: secrets.clone() }
    };
    let ack = s.ledger.step(op).await?;
    let mut view = case_view(&s, ack.case, &session).await?;
    if let (Some((_, text)), Some(invite)) = (token, invite) {
        let number = view["number"].as_str().unwrap_or_default().to_string();
        let expires = super::time(invite.expires_ms);
        // Sent to the citizen's phone by message: the operator never sees
        // the token, so staff cannot rate in the citizen's place.
        let by_message = !secrets.is_empty() && view["contact"]["phone"].as_str().is_some_and(|p| !p.trim().is_empty());
        view["rating_invitation"] = if by_message {
            json!({"sent_by_message": true, "token": null, "link": null, "expires_at": expires})
        } else {
            let link = s.public.config.url.as_deref().map(|u| format!("{}#n={number}&r={text}", u.trim_end_matches('#')));
            json!({"sent_by_message": false, "token": text, "link": link, "expires_at": expires})
        };
    } else if is_feedback && !public_page {
        // Say why there is no invitation: the citizen has nowhere to rate.
        view["rating_invitation"] = json!({
            "invited": false,
            "reason": "no_public_page",
            "message": "未邀请群众评价：本中心未配置公众查询页（节点配置中没有 [public] 的 enabled 或 url），群众无处评价；请由工作人员录入群众的评价（zongzhi rate），或配置 [public] 后再反馈 (no rating invitation: this node knows no public page; set [public] url, or enter the citizen's rating as staff)",
        });
    }
    Ok(Json(view))
}

/// The 督办 of `case` waiting for this unit's reply (the newest).
fn pending_notice(s: &AppState, case: RecordId) -> Result<RecordId, ApiError> {
    let records = crate::ledger::load_case_records(&s.store, &case)?;
    let state = crate::ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records)?;
    state
        .notices
        .iter()
        .rev()
        .find(|n| n.to == s.node.division && n.is_pending())
        .map(|n| n.id)
        .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation", "这个案件没有等待本单位回复的督办 (no 督办 of this case waits for this unit's reply)"))
}

pub(super) async fn attach(State(s): State<AppState>, headers: HeaderMap, Path(case): Path<String>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Window).await?;
    if !session.is_window() {
        require_role(&session, Role::Operator)?;
    }
    let case = resolve_case(&s, &case).await?;
    if let Some(reach) = decisions::reach(&s, &session, &case)? {
        decisions::window_may(&session, reach, &zongzhi_protocol::Action::Attach { blob: zongzhi_protocol::BlobHash([0; 32]), name: String::new(), mime: String::new(), size: 0 })?;
    }
    let given = q.get("name").map(String::as_str).unwrap_or_default();
    if given.chars().count() > attachment::MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!("the file name is longer than {} characters", attachment::MAX_NAME_CHARS)));
    }
    let name = attachment::clean_name(given).ok_or_else(|| ApiError::bad_request(format!("give the file name as ?name= (1 to {} characters)", attachment::MAX_NAME_CHARS)))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the attachment is empty"));
    }
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream").chars().take(100).collect();
    let op = Op::Attach { case, bytes: body.to_vec(), name, mime, operator: session.username.clone() };
    let ack = s.ledger.step(op).await?;
    Ok((StatusCode::CREATED, Json(case_view(&s, ack.case, &session).await?)))
}

pub(super) async fn download(State(s): State<AppState>, headers: HeaderMap, Path((case, blob)): Path<(String, String)>) -> ApiResult<Response> {
    let session = authenticate(&s, &headers, Role::Window).await?;
    let case = resolve_case(&s, &case).await?;
    decisions::reach(&s, &session, &case)?;
    let records = ledger::load_case_records(&s.store, &case)?;
    let state = ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records)?;
    let att = state.attachments.iter().find(|a| a.blob.to_string() == blob).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such attachment on this case"))?;
    let bytes = s.store.blob(&att.blob.0)?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "attachment content is not held on this node"))?;
    if zongzhi_protocol::BlobHash::of(&bytes) != att.blob {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", "stored attachment does not match its hash"));
    }
    let served = [
        (header::CONTENT_TYPE, attachment::served_type(&att.mime).to_string()),
        (header::CONTENT_DISPOSITION, attachment::content_disposition(&att.name)),
        (header::CACHE_CONTROL, "private, no-store".to_string()),
    ];
    Ok((served, bytes).into_response())
}

pub(super) async fn case_detail(State(s): State<AppState>, headers: HeaderMap, Path(case): Path<String>) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Window).await?;
    let case = resolve_case(&s, &case).await?;
    decisions::reach(&s, &session, &case)?;
    Ok(Json(case_view(&s, case, &session).await?))
}

pub(super) async fn list_cases(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Window).await?;
    let policy = s.policy();
    let now = s.now_ms();
    let mut filter = crate::queue::Filter::from_query(&q, s.node.division).map_err(ApiError::bad_request)?;
    if session.is_window() {
        // A window account's queue is its windows' cases at this center.
        if filter.owner != Some(s.node.division) || filter.overruled.is_some() {
            return Err(super::auth::outside_windows(&session, "其他单位的案件"));
        }
        filter = filter.for_windows(s.node.division, &session.windows).ok_or_else(|| super::auth::outside_windows(&session, "这个窗口"))?;
    }
    let limit: usize = match q.get("limit") {
        None => 100,
        Some(l) => l.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| ApiError::bad_request("limit must be 1 to 1000"))?,
    };
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        Some(a) => Some(crate::queue::Cursor::parse(a).ok_or_else(|| ApiError::bad_request("after must be the `next` value of an earlier page"))?),
        None => None,
    };
    let store = s.store.clone();
    let p = policy.clone();
    let page = tokio::task::spawn_blocking(move || crate::queue::page(&store, &filter, &p, now, after.as_ref(), limit)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "total": page.total,
        "total_exact": page.total_exact,
        "cases": page.cases.iter().map(|c| summary_json(&policy, c, now)).collect::<Vec<_>>(),
        "next": page.next.map(|c| c.to_string()),
    })))
}

#[derive(Deserialize)]
pub(super) struct SimilarQuery {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    id_number: String,
    #[serde(default)]
    category: String,
}

/// At intake: the cases this node holds of the same complainant (by the
/// fingerprint of a phone or ID number, never the contact itself), the
/// same category's and the open ones first: likely duplicates to 并单 and
/// open cases to tell the complainant about. A fingerprint bucket is
/// shared by about 80 phone numbers, so a case whose contact this node
/// holds is marked `confirmed` when its phone or ID number is the same.
pub(super) async fn similar(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<SimilarQuery>) -> ApiResult {
    authenticate(&s, &headers, Role::Operator).await?;
    let probe = Contact { name: String::new(), phone: q.phone.chars().take(20).collect(), id_number: q.id_number.chars().take(18).collect(), address: String::new() };
    let Some(person) = crate::index::person_of_contact(&s.shared.trust().root(), &probe) else {
        return Err(ApiError::bad_request("give a phone number or an ID number"));
    };
    let policy = s.policy();
    let now = s.now_ms();
    let window = u64::from(policy.repeat_window_days) * 86_400_000;
    let mut out = Vec::new();
    for (filed, id, _) in s.store.cases_of_person(&person, None)? {
        let Some(c) = s.store.case_summary(&id)? else { continue };
        let same_category = c.category == q.category;
        let open = c.status.is_open();
        if !(open || (same_category && now.saturating_sub(filed) <= window)) {
            continue;
        }
        let held = c.contact.and_then(|h| s.store.blob(&h.0).ok().flatten()).and_then(|b| Contact::from_bytes(&b).ok());
        let confirmed = held.map(|h| {
            use zongzhi_protocol::case::{normalize_id_number, normalize_phone};
            let same = |a: Option<String>, b: Option<String>| a.is_some() && a == b;
            same(normalize_phone(&h.phone), normalize_phone(&probe.phone)) || same(normalize_id_number(&h.id_number), normalize_id_number(&probe.id_number))
        });
        let mut v = summary_json(&policy, &c, now);
        v["same_category"] = json!(same_category);
        v["open"] = json!(open);
        v["confirmed"] = json!(confirmed);
        v["likely_duplicate"] = json!(same_category && open);
        out.push(v);
    }
    out.sort_by_key(|v| (!v["likely_duplicate"].as_bool().unwrap_or(false), !v["open"].as_bool().unwrap_or(false)));
    out.truncate(50);
    Ok(Json(json!({"cases": out})))
}

#[derive(Deserialize)]
pub(super) struct RepeatsQuery {
    #[serde(default)]
    period: String,
    #[serde(default)]
    scope: String,
}

/// Across the subtree: the same complainant (fingerprint) with cases of one
/// category filed at several centers (`several_centers`), or filed higher
/// up while a case of theirs is open below (越级重复, `over_open_case`),
/// with at least one of the cases filed in the period. No contact is read:
/// the fingerprints alone group them, so a county sees its villages'
/// repeats without their contact blobs.
pub(super) async fn repeats(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<RepeatsQuery>) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let scope: zongzhi_protocol::DivisionCode = if q.scope.is_empty() { s.node.division } else { q.scope.parse().map_err(|e| ApiError::bad_request(format!("scope: {e}")))? };
    if !s.node.division.contains(scope) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "outside_subtree", format!("{scope} is not in this center's subtree")));
    }
    let period = if q.period.is_empty() {
        let m = zongzhi_protocol::kpi::month_of(s.now_ms()).unwrap_or(197001);
        zongzhi_protocol::kpi::period_of(m)
    } else {
        q.period.clone()
    };
    let months = zongzhi_protocol::kpi::period_months(&period).map_err(ApiError::bad_request)?;
    let store = s.store.clone();
    let policy = s.policy();
    let now = s.now_ms();
    const MAX_GROUPS: usize = 500;
    let groups = tokio::task::spawn_blocking(move || crate::index::repeat_groups(&store, scope, &months, MAX_GROUPS)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    let truncated = groups.len() >= MAX_GROUPS;
    let mut out = Vec::new();
    for (kind, cases) in groups.into_iter().take(MAX_GROUPS) {
        let list: Vec<Value> = cases.iter().map(|c| summary_json(&policy, c, now)).collect();
        out.push(json!({"kind": kind, "category": list.first().map(|c| c["category"].clone()), "cases": list}));
    }
    Ok(Json(json!({"scope": scope.to_string(), "period": period, "groups": out, "truncated": truncated})))
}
