//! The HTTP JSON API (axum). Every handler authenticates, checks the role,
//! and goes through the same [`Ledger`] and [`Store`] as everything else.
//!
//! Errors are JSON: `{"error": {"code": "...", "message": "...", "rule": "..."}}`.
//! 400 malformed input, 401 not logged in, 403 wrong role, 404 unknown case,
//! 409 exists, 422 a workflow rule forbids the step (`rule` names it),
//! 429 too many failed logins and 503 `busy` (both with `Retry-After`).

pub mod admin;
mod attachment;
mod auth;
mod cases;
mod certs;
mod decision_views;
mod decisions;
mod error;
mod fleet;
mod intake;
mod monitor;
mod notifications;
pub mod policy;
mod probes;
mod public;
mod stats;
mod users;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use zongzhi_protocol::{DivisionCode, NodeId, Policy};

use crate::context::Context;
use crate::ledger::Ledger;
use crate::store::Store;
use auth::{change_own_password, login, logout, me};
use cases::{attach, case_action, case_detail, download, file_case, list_cases};
use certs::{issue_cert, list_certs, revoke_cert};
use monitor::{health, integrity_check, metrics, sync_status};
use stats::{check_reports, sign_report, stats_table};
use users::{create_user, disable_user, enable_user, list_users, login_audit, recovery_code, reset_password, unlock_user};

pub(crate) use auth::authenticate;
pub use error::ApiError;
pub(crate) use error::ApiResult;
pub(crate) use views::{summary_json, unit_names};

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
    /// Login throttle, password-hash gate and login audit.
    pub login: Arc<crate::login::Login>,
    /// The public progress page's settings and gate.
    pub public: Arc<crate::citizen::PublicGate>,
    /// The notification adapter in use (`webhook`, `log`), none when off.
    pub notify: Option<&'static str>,
    /// How far back a filing's 受理时间 may lie (`received_at_max_hours`).
    pub received_at_max_ms: u64,
    /// Systems that file cases through `/api/intake` and Open311.
    pub integrations: Arc<crate::integration::Integrations>,
    /// One intake filing at a time: the check of a system's reference and
    /// the filing that records it are not interleaved with another's.
    pub intake_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// The state with the node's login limits and public page, and the
    /// lock state the store kept for them (loaded once, under the rules
    /// the config sets).
    pub fn new(shared: Context, ledger: Ledger, node: NodeInfo, login: &crate::login::LoginConfig, public: &crate::citizen::PublicConfig) -> Result<AppState, crate::store::StoreError> {
        let now = shared.clock.now_ms();
        let login = crate::login::Login::new(login, shared.store.clone(), now)?;
        let public = crate::citizen::PublicGate::new(public.clone(), shared.store.clone(), now)?;
        Ok(AppState { store: shared.store.clone(), shared, ledger, node, login, public, notify: None, received_at_max_ms: 72 * 3_600_000, integrations: Arc::default(), intake_lock: Arc::default() })
    }

    /// The same state with the bound on a filing's 受理时间 (hours back).
    pub fn with_received_at_max(self, hours: u64) -> AppState {
        AppState { received_at_max_ms: hours.saturating_mul(3_600_000), ..self }
    }

    /// The same state with the systems of `[[integration]]`.
    pub fn with_integrations(self, integrations: Arc<crate::integration::Integrations>) -> AppState {
        AppState { integrations, ..self }
    }

    /// The same state with the notification adapter in use.
    pub fn with_notify(self, adapter: Option<&'static str>) -> AppState {
        AppState { notify: adapter, ..self }
    }

    /// Now, from the node's clock (the system clock in the binary).
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.shared.policy()
    }
}

/// The client's IP address, from the connection (the server is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`). A forwarding
/// proxy's headers are not trusted: behind one, every client shares its
/// address (and its per-address login limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::ConnectInfo;
        match parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            Some(ConnectInfo(a)) => Ok(ClientAddr(a.ip())),
            None => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| tracing::warn!("HTTP served without connection info: every client shares one login limit"));
                Ok(ClientAddr(std::net::IpAddr::from([0, 0, 0, 0])))
            }
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/health/live", get(probes::live))
        .route("/api/health/ready", get(probes::ready))
        .route("/api/openapi.json", get(openapi))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_own_password))
        .route("/api/policy", get(policy::get_policy).post(policy::sign_policy))
        .route("/api/policy/diff", get(policy::diff))
        .route("/api/policy/finalize", post(fleet::finalize))
        .route("/api/fleet", get(fleet::list))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{username}/unlock", post(unlock_user))
        .route("/api/users/{username}/password", post(reset_password))
        .route("/api/users/{username}/disable", post(disable_user))
        .route("/api/users/{username}/enable", post(enable_user))
        .route("/api/users/{username}/recovery-code", post(recovery_code))
        .route("/api/users/{username}/scope", post(users::set_scope))
        .route("/api/login-audit", get(login_audit))
        .route("/api/cases", get(list_cases).post(file_case))
        .route("/api/cases/export", get(crate::export::cases))
        .route("/api/cases/similar", get(cases::similar))
        .route("/api/repeats", get(cases::repeats))
        .route("/api/cases/{case}", get(case_detail))
        .route("/api/cases/{case}/actions", post(case_action))
        .route("/api/cases/{case}/public-locks", get(public::number_locks))
        .route("/api/cases/{case}/public-unlock", post(public::unlock_number))
        .route("/api/cases/{case}/attachments", post(attach).layer(DefaultBodyLimit::max(MAX_ATTACHMENT)))
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
        .route("/api/admin/backup", post(admin::backup))
        .route("/api/admin/recovery", post(admin::recovery_override))
        .route("/public/", get(public::page))
        .route("/public", get(|| async { axum::response::Redirect::permanent("/public/") }))
        .route("/public/public.js", get(public::script))
        .route("/public/public.css", get(public::style))
        .route("/api/public/cases/{number}", get(public::case_progress))
        .route("/api/public/cases/{number}/rating", post(public::rate))
        .route("/api/public/receipts/verify", get(public::verify_receipt))
        .route("/api/public/trust", get(public::trust_bundle))
        .route("/api/notifications", get(notifications::list))
        .route("/api/intake/cases", post(intake::file))
        .route("/api/intake/cases/{external_ref}", get(intake::status))
        .route("/open311/v2/{file}", get(intake::services_or_requests).post(intake::post_request))
        .route("/open311/v2/requests/{file}", get(intake::get_requests))
        .merge(crate::console::routes())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Counts every request by method, route pattern (`MatchedPath`: one label
/// for `/api/cases/{case}`, never the raw path; `unmatched` when no route
/// matched) and status class, and times it until its response headers are
/// ready (a streamed body, an export say, goes on after).
async fn count_requests(axum::extract::State(s): axum::extract::State<AppState>, request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
    let method = request.method().clone();
    // A duration, not a time of day: the node's clock is not needed.
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    s.shared.metrics.http_request(&method, route.as_deref(), response.status().as_u16(), started.elapsed());
    response
}

/// Every error is JSON, also those the HTTP layer answers before a handler
/// runs (413 body too large, 415, 405, a route that does not exist, a body
/// the framework could not read): the text it gave becomes the message,
/// and headers such as `Allow` or `Retry-After` stay.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let code = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "too_large",
        415 => "unsupported_media_type",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut json = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

/// What the console may load: its own files only (no inline script or
/// style, nothing from elsewhere), and no page may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; frame-src blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every response: the policy above, no type sniffing (an
/// attachment is never taken for a page), no framing, no referrer sent
/// elsewhere.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The route table, for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/health/live"),
    ("get", "/api/health/ready"),
    ("get", "/api/openapi.json"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("post", "/api/me/password"),
    ("get", "/api/policy"),
    ("post", "/api/policy"),
    ("get", "/api/policy/diff"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("post", "/api/users/{username}/unlock"),
    ("post", "/api/users/{username}/password"),
    ("post", "/api/users/{username}/disable"),
    ("post", "/api/users/{username}/enable"),
    ("post", "/api/users/{username}/recovery-code"),
    ("post", "/api/users/{username}/scope"),
    ("get", "/api/login-audit"),
    ("get", "/api/cases"),
    ("post", "/api/cases"),
    ("get", "/api/cases/export"),
    ("get", "/api/cases/{case}"),
    ("post", "/api/cases/{case}/actions"),
    ("get", "/api/cases/{case}/public-locks"),
    ("post", "/api/cases/{case}/public-unlock"),
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
    ("post", "/api/admin/backup"),
    ("post", "/api/admin/recovery"),
    ("get", "/api/cases/similar"),
    ("get", "/api/repeats"),
    ("get", "/api/public/cases/{number}"),
    ("post", "/api/public/cases/{number}/rating"),
    ("get", "/api/public/receipts/verify"),
    ("get", "/api/public/trust"),
    ("get", "/api/notifications"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub(crate) fn time(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(ts) => ts.display_with_offset(jiff::tz::offset(8)).to_string(),
        Err(_) => ms.to_string(),
    }
}

fn parse_time(field: &str, s: &str) -> Result<u64, ApiError> {
    zongzhi_protocol::step::parse_time(field, s).map_err(|e| ApiError::bad_request(e.0))
}
