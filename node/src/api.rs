//! The HTTP JSON API (axum). Every handler authenticates, checks the role,
//! and goes through the same [`Ledger`] and [`Store`] as everything else.
//!
//! Errors are JSON: `{"error": {"code": "...", "message": "...", "rule": "..."}}`.
//! 400 malformed input, 401 not logged in, 403 wrong role, 404 unknown case,
//! 409 exists, 422 a workflow rule forbids the step (`rule` names it).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use zongzhi_protocol::case::{
    Channel, Complexity, Contact, Place, Rating, RequestType, RouteTarget, SuperviseGrade, Urgency,
};
use zongzhi_protocol::{Action, CaseState, DivisionCode, Filing, NodeId, Policy, Record, RecordId};
use zongzhi_protocol::step::ActionRequest;

use crate::accounts::{self, AccountError, Role, Session};
use crate::integrity;
use crate::ledger::{self, Ledger, LedgerError, Op};
use crate::context::Context;
use crate::store::{Store, StoreError};
use crate::summary::CaseSummary;

/// Largest JSON request body.
pub const MAX_JSON_BODY: usize = 256 * 1024;
/// Largest attachment.
pub const MAX_ATTACHMENT: usize = 10 * 1024 * 1024;

/// What this node is.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: NodeId,
    pub division: DivisionCode,
    pub name: String,
}

#[derive(Clone)]
pub struct AppState {
    pub shared: Context,
    pub store: Arc<Store>,
    pub ledger: Ledger,
    pub node: NodeInfo,
}

impl AppState {
    pub fn new(shared: Context, ledger: Ledger, node: NodeInfo) -> AppState {
        AppState { store: shared.store.clone(), shared, ledger, node }
    }

    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.shared.policy()
    }
}

// ---------- errors ----------

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    rule: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), rule: None }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(rule) = self.rule {
            body["rule"] = json!(rule);
        }
        (self.status, Json(json!({ "error": body }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The storage engine failed (I/O, a full disk): the request was
            // fine, the node cannot serve it now.
            StoreError::Rocks(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", format!("storage: {e}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NoSuchCase(c) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no case {c}")),
            LedgerError::Rejected(r) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "rule_violation",
                message: r.message,
                rule: Some(r.rule),
            },
            LedgerError::Invalid(m) => ApiError::bad_request(m),
            LedgerError::Integrity(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", m),
            LedgerError::Store(e) => e.into(),
            LedgerError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the node is shutting down"),
            LedgerError::AlreadyDone => ApiError::new(StatusCode::CONFLICT, "exists", "already done"),
            LedgerError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            LedgerError::WriteFailed(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", format!("the write could not be stored ({m}); nothing was changed, try again"))
            }
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string()),
            AccountError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            AccountError::Store(e) => e.into(),
            AccountError::Hash(m) => ApiError::internal(m),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

pub(crate) type ApiResult<T = Json<Value>> = Result<T, ApiError>;

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

// ---------- auth ----------

pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap, min: Role) -> Result<Session, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first (Authorization: Bearer <token>)"))?;
    let store = state.store.clone();
    let token = token.to_string();
    let session = tokio::task::spawn_blocking(move || accounts::session(&store, &token, crate::context::now_ms()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "session expired or unknown; log in again"))?;
    require_role(&session, min)?;
    Ok(session)
}

/// 403 unless the session's role is at least `min`.
fn require_role(session: &Session, min: Role) -> Result<(), ApiError> {
    if session.role < min {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role; {} is {}", min.as_str(), session.username, session.role.as_str()),
        ));
    }
    Ok(())
}

// ---------- router ----------

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/policy", get(crate::policy_api::get_policy).post(crate::policy_api::sign_policy))
        .route("/api/policy/diff", get(crate::policy_api::diff))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/cases", get(list_cases).post(file_case))
        .route("/api/cases/export", get(crate::export::cases))
        .route("/api/cases/{case}", get(case_detail))
        .route("/api/cases/{case}/actions", post(case_action))
        .route(
            "/api/cases/{case}/attachments",
            post(attach).layer(DefaultBodyLimit::max(MAX_ATTACHMENT)),
        )
        .route("/api/cases/{case}/attachments/{blob}", get(download))
        .route("/api/integrity", get(integrity_check))
        .route("/api/sync", get(sync_status))
        .route("/api/stats", get(stats_table))
        .route("/api/search", get(crate::search::route))
        .route("/api/reports", get(check_reports).post(sign_report))
        .route("/metrics", get(metrics))
        .route("/api/certs", get(list_certs))
        .route("/api/certs/issue", post(issue_cert))
        .route("/api/certs/revoke", post(revoke_cert))
        .merge(crate::console::routes())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
}

/// The route table, for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/openapi.json"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("get", "/api/policy"),
    ("post", "/api/policy"),
    ("get", "/api/policy/diff"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("get", "/api/cases"),
    ("post", "/api/cases"),
    ("get", "/api/cases/export"),
    ("get", "/api/cases/{case}"),
    ("post", "/api/cases/{case}/actions"),
    ("post", "/api/cases/{case}/attachments"),
    ("get", "/api/cases/{case}/attachments/{blob}"),
    ("get", "/api/integrity"),
    ("get", "/api/sync"),
    ("get", "/api/stats"),
    ("get", "/api/search"),
    ("get", "/api/reports"),
    ("post", "/api/reports"),
    ("get", "/metrics"),
    ("get", "/api/certs"),
    ("post", "/api/certs/issue"),
    ("post", "/api/certs/revoke"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn health(State(s): State<AppState>) -> ApiResult {
    // The writer publishes the feed head after each commit (no store read).
    let records = *s.shared.feed.borrow();
    Ok(Json(json!({
        "status": "ok",
        "node_id": s.node.id.to_string(),
        "node_short": s.node.id.fmt_short(),
        "division": s.node.division.to_string(),
        "level": s.node.division.level().as_str(),
        "level_zh": s.node.division.level().zh(),
        "name": s.node.name,
        "records": records,
        "version": env!("CARGO_PKG_VERSION"),
        "calendar": crate::policy_api::health_block(&s)?,
    })))
}

// ---------- accounts ----------

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let req: LoginRequest = parse_json(&body)?;
    let store = s.store.clone();
    let (token, session) = tokio::task::spawn_blocking(move || accounts::login(&store, &req.username, &req.password, crate::context::now_ms()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(user = %session.username, "login");
    Ok(Json(json!({
        "token": token,
        "username": session.username,
        "role": session.role.as_str(),
        "expires_at": time(session.expires_ms),
    })))
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    authenticate(&s, &headers, Role::Viewer).await?;
    if let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        accounts::logout(&s.store, token.trim())?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Viewer).await?;
    let account: Option<accounts::Account> = s.store.account(&session.username)?;
    Ok(Json(json!({
        "username": session.username,
        "display_name": account.map(|a| a.display_name).unwrap_or_default(),
        "role": session.role.as_str(),
        "unit": s.node.division.to_string(),
        "unit_name": s.node.name,
        "expires_at": time(session.expires_ms),
    })))
}

#[derive(Deserialize)]
struct CreateUser {
    username: String,
    password: String,
    role: String,
    #[serde(default)]
    display_name: String,
}

async fn create_user(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let req: CreateUser = parse_json(&body)?;
    let role = Role::parse(&req.role).ok_or_else(|| ApiError::bad_request("role must be admin, operator or viewer"))?;
    let store = s.store.clone();
    let account = tokio::task::spawn_blocking(move || {
        accounts::create(&store, &req.username, &req.password, role, &req.display_name, crate::context::now_ms())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %admin.username, user = %account.username, role = role.as_str(), "account created");
    Ok((StatusCode::CREATED, Json(user_json(&account))))
}

fn user_json(a: &accounts::Account) -> Value {
    json!({"username": a.username, "display_name": a.display_name, "role": a.role.as_str(), "created_at": time(a.created_ms)})
}

async fn list_users(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let all: Vec<accounts::Account> = s.store.accounts()?;
    Ok(Json(json!({ "users": all.iter().map(user_json).collect::<Vec<_>>() })))
}

pub(crate) fn time(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(ts) => ts.display_with_offset(jiff::tz::offset(8)).to_string(),
        Err(_) => ms.to_string(),
    }
}

fn parse_time(field: &str, s: &str) -> Result<u64, ApiError> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{field}: expected an RFC 3339 time like 2026-11-28T09:30:00+08:00 ({e})")))?;
    u64::try_from(ts.as_millisecond()).map_err(|_| ApiError::bad_request(format!("{field}: before 1970")))
}

async fn resolve_case(s: &AppState, reference: &str) -> Result<RecordId, ApiError> {
    let found = match RecordId::from_hex(reference) {
        Some(id) if s.store.case_summary(&id)?.is_some() => Some(id),
        Some(_) => None,
        None => s.store.case_by_number(reference)?,
    };
    found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no case {reference}")))
}

#[derive(Deserialize, Default)]
struct PlaceRequest {
    #[serde(default)]
    address: String,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Deserialize)]
struct FileRequest {
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

async fn file_case(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Operator).await?;
    let req: FileRequest = parse_json(&body)?;
    let now = crate::context::now_ms();
    let received_at_ms = match &req.received_at {
        Some(t) => parse_time("received_at", t)?,
        None => now,
    };
    if received_at_ms > now + 5 * 60_000 {
        return Err(ApiError::bad_request("received_at is in the future"));
    }
    let occurred_at_ms = req.occurred_at.as_deref().map(|t| parse_time("occurred_at", t)).transpose()?;
    if let Some(c) = &req.contact {
        validate_contact(c)?;
    }
    let filing = Filing {
        number: String::new(),
        title: req.title,
        content: req.content,
        category: req.category,
        request_type: req.request_type,
        channel: req.channel,
        urgency: req.urgency,
        complexity: req.complexity,
        place: Place {
            address: req.place.address,
            lat_e6: micro_degrees("lat", req.place.lat, 90.0)?,
            lon_e6: micro_degrees("lon", req.place.lon, 180.0)?,
        },
        occurred_at_ms,
        received_at_ms,
        people_involved: req.people_involved,
        amount_fen: req.amount_fen,
        contact: None,
    };
    let ack = s.ledger.step(Op::File { filing: Box::new(filing), contact: req.contact, operator: session.username.clone() }).await?;
    let view = case_view(&s, ack.case, &session).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn case_action(State(s): State<AppState>, headers: HeaderMap, Path(case): Path<String>, body: Bytes) -> ApiResult {
    // Authenticate before looking at the body, so 401 wins over 400; the
    // role needed depends on the step.
    let session = authenticate(&s, &headers, Role::Viewer).await?;
    let req: ActionRequest = parse_json(&body)?;
    require_role(&session, if req.needs_admin() { Role::Admin } else { Role::Operator })?;
    let case = resolve_case(&s, &case).await?;
    let merge_into = match req.merge_target() {
        Some(into) => Some(resolve_case(&s, into).await?),
        None => None,
    };
    let action = req.into_action(merge_into).map_err(|e| ApiError::bad_request(e.0))?;
    let ack = s.ledger.step(Op::Act { case, action, operator: session.username.clone() }).await?;
    Ok(Json(case_view(&s, ack.case, &session).await?))
}

async fn attach(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(case): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Operator).await?;
    let case = resolve_case(&s, &case).await?;
    let name = q.get("name").cloned().unwrap_or_default();
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("give the file name as ?name= (1 to 200 characters)"));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the attachment is empty"));
    }
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .chars()
        .take(100)
        .collect();
    let op = Op::Attach { case, bytes: body.to_vec(), name, mime, operator: session.username.clone() };
    let ack = s.ledger.step(op).await?;
    Ok((StatusCode::CREATED, Json(case_view(&s, ack.case, &session).await?)))
}

async fn download(State(s): State<AppState>, headers: HeaderMap, Path((case, blob)): Path<(String, String)>) -> ApiResult<Response> {
    authenticate(&s, &headers, Role::Viewer).await?;
    let case = resolve_case(&s, &case).await?;
    let records = ledger::load_case_records(&s.store, &case)?;
    let state = ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records)?;
    let att = state
        .attachments
        .iter()
        .find(|a| a.blob.to_string() == blob)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such attachment on this case"))?;
    let bytes = s.store.blob(&att.blob.0)?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "attachment content is not held on this node"))?;
    if zongzhi_protocol::BlobHash::of(&bytes) != att.blob {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", "stored attachment does not match its hash"));
    }
    Ok(([(header::CONTENT_TYPE, att.mime.clone())], bytes).into_response())
}

async fn case_detail(State(s): State<AppState>, headers: HeaderMap, Path(case): Path<String>) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Viewer).await?;
    let case = resolve_case(&s, &case).await?;
    Ok(Json(case_view(&s, case, &session).await?))
}

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
        Action::Feedback { method, note } => json!({"method": method, "note": note}),
        Action::Rate { rating, comment } => json!({"rating": rating.as_str(), "rating_zh": rating.zh(), "comment": comment}),
        Action::Merge { into } => json!({"into": into.to_string()}),
        Action::Attach { blob, name, mime, size } => json!({"blob": blob.to_string(), "name": name, "mime": mime, "size": size}),
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
    let masked = role < Role::Operator;
    let shown = if masked { contact.masked() } else { contact };
    Ok(json!({"available": true, "masked": masked, "name": shown.name, "phone": shown.phone, "id_number": shown.id_number, "address": shown.address}))
}

async fn case_view(s: &AppState, case: RecordId, session: &Session) -> Result<Value, ApiError> {
    let role = session.role;
    let policy = s.policy();
    let ids = s.store.case_events(&case)?;
    let mut records: Vec<Record> = Vec::with_capacity(ids.len());
    let mut verdicts: HashMap<RecordId, Result<(), String>> = HashMap::new();
    let mut integrity_errors = Vec::new();
    for id in ids {
        let Some(bytes) = s.store.record_bytes(&id)? else {
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
    let state = ledger::fold_records(&s.store, &s.shared.policies(), &s.shared.trust(), &records).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", format!("case {case} cannot be read: {e}; problems: {integrity_errors:?}"))
    })?;
    let by_id: HashMap<RecordId, &Record> = records.iter().map(|r| (r.id, r)).collect();
    let now = crate::context::now_ms();
    let names = unit_names(&s.shared.trust());
    let unit_name = |u: &DivisionCode| names.get(u).cloned();
    let operators = operator_names(s, &state)?;
    let timeline: Vec<Value> = state
        .timeline
        .iter()
        .map(|t| {
            let seq = by_id.get(&t.id).map(|r| r.header.seq);
            let valid = verdicts.get(&t.id).map(|v| v.is_ok()).unwrap_or(false);
            // Display names are known for this node's own operators only.
            let operator_name = if t.author == s.node.id { operators.get(&t.operator).filter(|n| !n.is_empty()).cloned() } else { None };
            json!({
                "id": t.id.to_string(),
                "author": t.author.fmt_short(),
                "author_seq": seq,
                "unit": t.unit.to_string(),
                "unit_name": unit_name(&t.unit),
                "operator": t.operator,
                "operator_name": operator_name.unwrap_or_else(|| t.operator.clone()),
                "time": time(t.hlc.wall_ms),
                "action": t.action.as_str(),
                "action_zh": t.action.zh(),
                "details": action_details(&t.action),
                "accepted": t.outcome.is_ok(),
                "rejected": t.outcome.as_ref().err().map(|r| json!({"rule": r.rule, "message": r.message})),
                "overruled_by": t.overruled_by.and_then(|w| state.timeline.iter().find(|x| x.id == w)).map(|w| json!({
                    "id": w.id.to_string(),
                    "action": w.action.as_str(),
                    "action_zh": w.action.zh(),
                    "unit": w.unit.to_string(),
                    "unit_name": unit_name(&w.unit),
                    "time": time(w.hlc.wall_ms),
                })),
                "signature_valid": valid,
            })
        })
        .collect();
    let deadlines: Vec<Value> = state
        .deadlines
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "kind_zh": d.kind.zh(),
                "unit": d.unit.to_string(),
                "unit_name": unit_name(&d.unit),
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
            })
        })
        .collect();
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
        "merged_into": state.merged_into.map(|c| c.to_string()),
        "archived_at": state.archived_ms.map(time),
        "attachments": state.attachments,
        "deadlines": deadlines,
        "overdue": state.is_overdue(now),
        "heads": state.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "timeline": timeline,
        "integrity_errors": integrity_errors,
        "allowed_actions": allowed_actions(&state, &policy, s.node.division, session),
    }))
}

/// Official unit names by division, from the certificates the node holds
/// (a division re-keyed after a revocation: the unrevoked certificate's name).
fn unit_names(trust: &zongzhi_protocol::trust::Trust) -> HashMap<DivisionCode, String> {
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
fn allowed_actions(state: &CaseState, policy: &Policy, unit: DivisionCode, session: &Session) -> Vec<&'static str> {
    if session.role < Role::Operator {
        return Vec::new();
    }
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
        ("feedback", Action::Feedback { method: "phone".into(), note: text() }, Role::Operator),
        ("rate", Action::Rate { rating: Rating::Satisfied, comment: String::new() }, Role::Operator),
        ("reopen", Action::Reopen { reason: text() }, Role::Operator),
        ("archive", Action::Archive, Role::Operator),
    ];
    if let Some(to) = child {
        candidates.push(("dispatch", Action::Dispatch { to, requirements: text(), due_ms: None }, Role::Operator));
    }
    let now = crate::context::now_ms();
    candidates
        .into_iter()
        .filter(|(_, _, need)| session.role >= *need)
        .filter(|(_, action, _)| {
            let event = zongzhi_protocol::CaseEvent { case: Some(state.id), parents: state.heads.clone(), unit, operator: session.username.clone(), action: action.clone(), policy: policy.version };
            let eref = zongzhi_protocol::workflow::EventRef {
                id: RecordId([0; 32]),
                author: NodeId([0; 32]),
                seq: 0,
                hlc: zongzhi_protocol::Hlc { wall_ms: now, counter: 0 },
                event: &event,
            };
            state.check(policy, &eref).is_ok()
        })
        .map(|(code, _, _)| code)
        .collect()
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

async fn list_cases(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let policy = s.policy();
    let now = crate::context::now_ms();
    let filter = crate::queue::Filter::from_query(&q, s.node.division).map_err(ApiError::bad_request)?;
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
    let page = tokio::task::spawn_blocking(move || crate::queue::page(&store, &filter, &p, now, after.as_ref(), limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "total": page.total,
        "total_exact": page.total_exact,
        "cases": page.cases.iter().map(|c| summary_json(&policy, c, now)).collect::<Vec<_>>(),
        "next": page.next.map(|c| c.to_string()),
    })))
}

async fn integrity_check(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let store = s.store.clone();
    let id = s.node.id;
    let report = tokio::task::spawn_blocking(move || integrity::check(&store, &id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({"ok": report.ok(), "report": report})))
}

// ---------- certificates ----------

async fn list_certs(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let trust = s.shared.trust().clone();
    let mut members: Vec<&zongzhi_protocol::trust::Member> = trust.members().collect();
    members.sort_by_key(|m| m.cert.division);
    let list: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "key": m.cert.key.to_string(),
                "key_short": m.cert.key.fmt_short(),
                "division": m.cert.division.to_string(),
                "level": m.cert.level.as_str(),
                "name": m.cert.name,
                "issuer": m.cert.issuer.fmt_short(),
                "serial": m.cert.serial,
                "not_after": time(m.cert.not_after_ms),
                "revoked": trust.revocation(&m.cert.key).map(|r| json!({"cutoff_seq": r.cutoff_seq, "reason": r.reason})),
                "record": m.record.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({"root": trust.root().to_string(), "certs": list})))
}

#[derive(Deserialize)]
struct IssueRequest {
    request: String,
    #[serde(default = "default_valid_days")]
    valid_days: u32,
}

fn default_valid_days() -> u32 {
    3650
}

/// The armored chain from the root down to `key`.
fn chain_text(s: &AppState, key: &NodeId) -> Result<String, ApiError> {
    let ids = s.shared.trust().chain(key).ok_or_else(|| ApiError::internal("certificate chain incomplete"))?;
    let mut out = String::new();
    for id in ids {
        let bytes = s.store.record_bytes(&id)?.ok_or_else(|| ApiError::internal(format!("certificate record {id} missing")))?;
        out.push_str(&zongzhi_protocol::cert::armor(zongzhi_protocol::cert::RECORDS_ARMOR, &bytes));
    }
    Ok(out)
}

/// Approves a child center's enrollment request: signs its certificate.
async fn issue_cert(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    let req: IssueRequest = parse_json(&body)?;
    let enrollment = zongzhi_protocol::cert::EnrollmentRequest::from_armored(&req.request)
        .map_err(|e| ApiError::bad_request(format!("enrollment request: {e}")))?;
    if enrollment.division.parent() != Some(s.node.division) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_my_child",
            format!("{} is not directly below this center ({}); its own parent must approve it", enrollment.division, s.node.division),
        ));
    }
    if s.shared.trust().member(&s.node.id).is_none() {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_enrolled", "this node has no certificate yet; import its own chain first"));
    }
    if !(1..=7300).contains(&req.valid_days) {
        return Err(ApiError::bad_request("valid_days must be 1 to 7300"));
    }
    let now = crate::context::now_ms();
    let serial = s.shared.trust().members().filter(|m| m.cert.issuer == s.node.id).count() as u64 + 1;
    let cert = zongzhi_protocol::cert::NodeCert {
        key: enrollment.key,
        division: enrollment.division,
        level: enrollment.division.level(),
        name: enrollment.name.clone(),
        issuer: s.node.id,
        not_before_ms: now.saturating_sub(3_600_000),
        not_after_ms: now + req.valid_days as u64 * 86_400_000,
        serial,
    };
    let outcome = s.ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::NodeCert(cert) }).await?;
    tracing::info!(by = %session.username, division = %enrollment.division, key = %enrollment.key.fmt_short(), "certificate issued: {outcome:?}");
    let chain = chain_text(&s, &enrollment.key)?;
    Ok((StatusCode::CREATED, Json(json!({"division": enrollment.division.to_string(), "name": enrollment.name, "key": enrollment.key.to_string(), "chain": chain}))))
}

#[derive(Deserialize)]
struct RevokeRequest {
    key: NodeId,
    cutoff_seq: u64,
    reason: String,
}

/// Revokes a descendant's key: its records after `cutoff_seq` are refused everywhere.
async fn revoke_cert(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    let req: RevokeRequest = parse_json(&body)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("give a reason"));
    }
    let division = s
        .shared
        .trust()
        .member(&req.key)
        .map(|m| m.cert.division)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no certificate for that key"))?;
    let rev = zongzhi_protocol::cert::Revocation { key: req.key, division, cutoff_seq: req.cutoff_seq, reason: req.reason };
    let outcome = s.ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::Revocation(rev) }).await?;
    tracing::warn!(by = %session.username, key = %req.key.fmt_short(), "key revoked: {outcome:?}");
    Ok((StatusCode::CREATED, Json(json!({"revoked": req.key.to_string(), "division": division.to_string()}))))
}

// ---------- replication ----------

// ---------- statistics ----------

/// Parses the statistics query parameters shared by the API's tables.
fn stats_query(s: &AppState, q: &HashMap<String, String>) -> Result<crate::report::Query, ApiError> {
    use zongzhi_protocol::kpi::{self, Kpi};
    let scope: DivisionCode = match q.get("scope").map(String::as_str) {
        None | Some("") => s.node.division,
        Some(c) => c.parse().map_err(|e| ApiError::bad_request(format!("scope: {e}")))?,
    };
    if !s.node.division.contains(scope) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "outside_subtree", format!("{scope} is not in this center's subtree ({})", s.node.division)));
    }
    let by_text = q.get("by").map(String::as_str).filter(|b| !b.is_empty()).unwrap_or("unit");
    let by = crate::stats::By::parse(by_text)
        .ok_or_else(|| ApiError::bad_request(format!("by must be unit, level, county, township, village, category or channel, not {by_text:?}")))?;
    let period = match q.get("period").map(String::as_str) {
        None | Some("") => {
            let m = kpi::month_of(crate::context::now_ms()).unwrap_or(197001);
            format!("{}-{:02}", m / 100, m % 100)
        }
        Some(p) => p.to_string(),
    };
    let months = kpi::period_months(&period).map_err(ApiError::bad_request)?;
    let kpis: Vec<Kpi> = match q.get("kpi").map(String::as_str) {
        None | Some("") | Some("all") => Kpi::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|k| {
                Kpi::parse(k.trim()).ok_or_else(|| {
                    let known: Vec<&str> = Kpi::ALL.iter().map(|k| k.as_str()).collect();
                    ApiError::bad_request(format!("unknown KPI {k:?}; known: {}", known.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let number = |name: &str, max: usize| -> Result<Option<usize>, ApiError> {
        match q.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!("{name} must be a whole number from 0 to {max}, not {v:?}"))),
            },
        }
    };
    let limit = number("limit", 10_000)?;
    let offset = number("offset", 1_000_000)?.unwrap_or(0);
    Ok(crate::report::Query { scope, period, months, by, kpis, offset, limit })
}

async fn stats_table(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    authenticate(&s, &headers, Role::Viewer).await?;
    let query = stats_query(&s, &q)?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(ApiError::bad_request(format!("format must be json or csv, not {f:?}"))),
    };
    let (store, trust, policy) = (s.store.clone(), s.shared.trust(), s.policy());
    let kpis = query.kpis.clone();
    let table = tokio::task::spawn_blocking(move || crate::report::table(&store, &trust, &policy, &query, crate::context::now_ms()))
        .await
        .map_err(|e| ApiError::internal(format!("statistics task failed: {e}")))??;
    if csv {
        let name = format!("zongzhi-stats-{}-{}.csv", table["scope"].as_str().unwrap_or(""), table["period"].as_str().unwrap_or(""));
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
            crate::report::to_csv(&table, &kpis),
        )
            .into_response());
    }
    Ok(Json(table).into_response())
}

/// Reports of the subtree for a period, each checked against the events.
async fn check_reports(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let query = stats_query(&s, &q)?;
    let (store, trust) = (s.store.clone(), s.shared.trust());
    let v = tokio::task::spawn_blocking(move || crate::report::check(&store, &trust, query.scope, &query.months))
        .await
        .map_err(|e| ApiError::internal(format!("report check failed: {e}")))??;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct SignReportRequest {
    /// `YYYY-MM`.
    period: String,
}

/// Signs this center's own figures for a month (it also happens on its own
/// after each month closes).
async fn sign_report(State(s): State<AppState>, headers: HeaderMap, Json(req): Json<SignReportRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    use zongzhi_protocol::kpi;
    authenticate(&s, &headers, Role::Admin).await?;
    let months = kpi::period_months(&req.period).map_err(ApiError::bad_request)?;
    let [month] = months[..] else {
        return Err(ApiError::bad_request("a report covers one month: period must be YYYY-MM"));
    };
    if Some(month) > kpi::month_of(crate::context::now_ms()) {
        return Err(ApiError::bad_request("that month has not begun"));
    }
    let (id, report) = crate::supervisor::sign_report(&s.shared, &s.ledger, month).await?;
    Ok((StatusCode::CREATED, Json(json!({"record": id.to_string(), "report": report}))))
}

async fn sync_status(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let status = s.shared.sync.snapshot();
    let mut peers: Vec<Value> = status
        .peers
        .values()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            v["last_contact"] = json!(p.last_contact_ms.map(time));
            v
        })
        .collect();
    peers.sort_by(|a, b| a["division"].as_str().cmp(&b["division"].as_str()));
    let alarms: Vec<ledger::Alarm> = s.store.alarms()?;
    Ok(Json(json!({
        "node": s.node.id.to_string(),
        "division": s.node.division.to_string(),
        "feed_head": *s.shared.feed.borrow(),
        "peers": peers,
        "refused_handshakes": status.refused,
        "alarms": alarms,
    })))
}

/// Prometheus text exposition: store, replication and refusal counters. No
/// personal data; served on the API address (loopback by default).
async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    use std::fmt::Write;
    let status = s.shared.sync.snapshot();
    let mut out = String::new();
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(out, "# HELP zongzhi_records Records in this node's feed.\n# TYPE zongzhi_records gauge\nzongzhi_records {}", *s.shared.feed.borrow());
    let _ = writeln!(out, "# HELP zongzhi_pending_records Received records waiting for their parents.\n# TYPE zongzhi_pending_records gauge\nzongzhi_pending_records {}", s.store.pending_count(usize::MAX)?);
    let _ = writeln!(out, "# HELP zongzhi_integrity_alarms Integrity alarms raised (equivocation, chain gaps).\n# TYPE zongzhi_integrity_alarms counter\nzongzhi_integrity_alarms {}", s.store.alarm_count()?);
    let _ = writeln!(out, "# HELP zongzhi_handshakes_refused_total Handshakes refused, by reason.\n# TYPE zongzhi_handshakes_refused_total counter");
    for (reason, n) in &status.refused {
        let _ = writeln!(out, "zongzhi_handshakes_refused_total{{reason=\"{}\"}} {n}", esc(reason));
    }
    type PeerMetric = (&'static str, &'static str, fn(&crate::status::PeerStatus) -> u64);
    let gauges: [PeerMetric; 8] = [
        ("zongzhi_peer_connected", "1 while a link with the peer is up.", |p| p.connected as u64),
        ("zongzhi_peer_records_sent_total", "Records sent to the peer.", |p| p.records_sent),
        ("zongzhi_peer_records_received_total", "Records received from the peer and stored.", |p| p.records_received),
        ("zongzhi_peer_bytes_sent_total", "Frame bytes sent to the peer.", |p| p.bytes_sent),
        ("zongzhi_peer_bytes_received_total", "Frame bytes received from the peer.", |p| p.bytes_received),
        ("zongzhi_peer_behind_to_peer", "Feed positions the peer has not acknowledged.", |p| p.behind_to_peer),
        ("zongzhi_peer_behind_from_peer", "Peer feed positions not yet received.", |p| p.behind_from_peer),
        ("zongzhi_peer_errors_total", "Link errors and refused records.", |p| p.errors),
    ];
    let mut peers: Vec<&crate::status::PeerStatus> = status.peers.values().collect();
    peers.sort_by(|a, b| a.division.cmp(&b.division));
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", if name.ends_with("_total") { "counter" } else { "gauge" });
        for p in &peers {
            let _ = writeln!(out, "{name}{{peer=\"{}\",role=\"{}\"}} {}", esc(&p.division), esc(&p.role), f(p));
        }
    }
    let policy = s.shared.policy();
    let missing = policy.missing_calendars(crate::context::now_ms());
    let _ = writeln!(out, "# HELP zongzhi_calendar_warning 1 while a working-day calendar this node needs by now is missing (this year, or next year from the policy's warning date).\n# TYPE zongzhi_calendar_warning gauge\nzongzhi_calendar_warning {}", !missing.is_empty() as u8);
    let _ = writeln!(out, "# HELP zongzhi_calendar_missing 1 for each year whose calendar is needed by now and missing.\n# TYPE zongzhi_calendar_missing gauge");
    for y in &missing {
        let _ = writeln!(out, "zongzhi_calendar_missing{{year=\"{y}\"}} 1");
    }
    let (waiting, _) = crate::policy_api::waiting_counts(&s.store)?;
    let _ = writeln!(out, "# HELP zongzhi_cases_waiting_for_calendar Open cases with a clock waiting for a working-day calendar.\n# TYPE zongzhi_cases_waiting_for_calendar gauge\nzongzhi_cases_waiting_for_calendar {waiting}");
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
