//! Sessions: login, logout, `me`, and the bearer-token check every handler
//! starts with.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::{AppState, ClientAddr, parse_json, time};
use crate::accounts::{self, Check, Role, Session};
use crate::login::audit::Entry;
use crate::login::hashing::GateError;
use crate::login::throttle::{Lockout, Outcome, Refusal, Ticket};

/// The bearer token of a request, if any.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
}

pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap, min: Role) -> Result<Session, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first (Authorization: Bearer <token>)"))?;
    let store = state.store.clone();
    let token = token.to_string();
    let now = state.now_ms();
    let session = tokio::task::spawn_blocking(move || accounts::session(&store, &token, now))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "session expired or unknown; log in again"))?;
    require_role(&session, min)?;
    Ok(session)
}

/// 403 unless the session's role is at least `min`.
pub(super) fn require_role(session: &Session, min: Role) -> Result<(), ApiError> {
    if session.role < min {
        if session.is_window() {
            return Err(outside_windows(session, "这里"));
        }
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this needs the {} role; {} is {}", min.as_str(), session.username, session.role.as_str())));
    }
    Ok(())
}

/// 403 for a window account outside its windows' cases.
pub(crate) fn outside_windows(session: &Session, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "outside_windows",
        format!(
            "派驻窗口账号只能查看和办理本窗口（{}）的案件，{what}不在其内 ({} is a window account of {}: only those windows' cases)",
            session.windows.join("、"),
            session.username,
            session.windows.join(", ")
        ),
    )
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    /// The device token an earlier login of this client was given.
    #[serde(default)]
    device: Option<String>,
    /// The account's recovery code (to pass a lock guessing from
    /// elsewhere set).
    #[serde(default)]
    recovery_code: Option<String>,
}

/// Seconds from `now` until `until_ms`, rounded up.
fn secs_until(until_ms: u64, now: u64) -> u64 {
    until_ms.saturating_sub(now).div_ceil(1000).max(1)
}

/// The audit's name for a refusal.
fn refusal_outcome(r: &Refusal) -> &'static str {
    match r {
        Refusal::Locked { .. } => "locked",
        Refusal::AccountWait { .. } => "account_throttled",
        Refusal::AddressWait { .. } => "address_throttled",
    }
}

/// 429 for an attempt the throttle refused, saying when to try again.
pub(super) fn refused(user: &str, ip: std::net::IpAddr, r: Refusal, now: u64) -> ApiError {
    // The name as typed, within reason.
    let user: String = user.chars().take(64).collect();
    let secs = secs_until(r.until_ms(), now);
    let (code, message) = match r {
        Refusal::Locked { until_ms, everywhere: false } => (
            "locked",
            format!("account {user} is locked for this address ({ip}) after repeated failed logins from it until {}: try again in {secs} seconds, or ask an admin to unlock it", time(until_ms)),
        ),
        Refusal::Locked { until_ms, everywhere: true } => (
            "locked",
            format!(
                "account {user} is locked until {} after repeated failed logins from several addresses: log in from a browser or command line that logged in as {user} before, or with the account's recovery code, or ask an admin to unlock it",
                time(until_ms)
            ),
        ),
        Refusal::AccountWait { .. } => ("too_many_attempts", format!("too many failed logins for {user} from this address: wait {secs} seconds before trying again")),
        Refusal::AddressWait { locked, .. } => {
            ("too_many_attempts", format!("too many failed logins from this address ({ip}){}: wait {secs} seconds before trying again", if locked { ", which is blocked" } else { "" }))
        }
    };
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).retry_after(secs)
}

fn busy() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the node is checking too many passwords at once: try again in a second").retry_after(1)
}

/// Who the client is beyond its address: a device token it holds (a
/// login's, or the live session's), and whether the account knows it (or
/// the attempt carries the recovery code).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Client {
    pub device: Option<[u8; 8]>,
    pub trusted: bool,
}

/// The result of a password check through the throttle and the gate:
/// the check, and the lock this failure set on the client's pair, if any.
type Checked = Result<(Check, Option<u64>), ApiError>;

/// Checks `user`'s password from `ip`: refused before hashing when the
/// throttle says so (429), or the gate is full (503); recorded in the
/// audit as `kind` either way (refusals aggregated per address), durably
/// when a password was hashed, with every lock the failure set.
pub(super) async fn check_guarded(s: &AppState, user: &str, password: String, ip: std::net::IpAddr, kind: &'static str, client: Client) -> Checked {
    let now = s.now_ms();
    let ticket = match s.login.throttle.admit(user, ip, client.device, client.trusted, now) {
        Ok(t) => t,
        Err(r) => {
            s.login.audit.record_later(Entry::new(now, user, ip, kind, refusal_outcome(&r)));
            return Err(refused(user, ip, r, now));
        }
    };
    let (store, clock, name, login) = (s.store.clone(), s.shared.clock.clone(), user.to_string(), s.login.clone());
    let run = s.login.gate.run(move || decide(&login, ticket, accounts::check_password(&store, &name, &password), clock.now_ms())).await;
    let (check, locks) = match run {
        Ok(r) => r?,
        Err(GateError::Busy) => {
            s.login.audit.record_later(Entry::new(now, user, ip, kind, "busy"));
            return Err(busy());
        }
        Err(GateError::Task(m)) => return Err(ApiError::internal(m)),
    };
    let outcome = match &check {
        Check::Ok(_) => "ok",
        Check::UnknownUser => "unknown_user",
        Check::WrongPassword => "wrong_password",
        Check::Disabled => "disabled",
    };
    let at = s.now_ms();
    let mut entries = vec![Entry::new(at, user, ip, kind, outcome)];
    for l in &locks {
        let what = match l {
            Lockout::Pair { until_ms } => format!("{user} locked for {ip} until {}", time(*until_ms)),
            Lockout::Address { until_ms } => format!("address {ip} blocked until {}", time(*until_ms)),
            Lockout::Account { until_ms } => format!("{user} locked for unknown clients until {}", time(*until_ms)),
        };
        tracing::warn!(user, %ip, "login lockout: {what}");
        entries.push(Entry::lockout(at, user, ip, kind, what));
    }
    for entry in entries {
        if let Err(e) = s.login.audit.record(entry.clone()).await {
            // The storage refuses writes (a full disk): logging in to read
            // still works; the entry is written with the next group that can.
            tracing::warn!("the login audit could not be written now ({e}); kept for later");
            s.login.audit.record_later(entry);
        }
    }
    let pair_lock = locks.iter().find_map(|l| match l {
        Lockout::Pair { until_ms } => Some(*until_ms),
        _ => None,
    });
    Ok((check, pair_lock))
}

/// Tells the throttle how a check ended and keeps the changed lock state
/// (on the hashing thread, so it counts even if the client went away).
fn decide(login: &crate::login::Login, ticket: Ticket, check: Result<Check, accounts::AccountError>, now: u64) -> Result<(Check, Vec<Lockout>), ApiError> {
    let check = check?;
    let outcome = match check {
        Check::Ok(_) | Check::Disabled => Outcome::Success,
        Check::UnknownUser | Check::WrongPassword => Outcome::Failure,
    };
    let locks = ticket.finish(outcome, now);
    if let Err(e) = login.save_locks() {
        // Kept in memory; written with the next change the store takes.
        tracing::warn!("the login lock state could not be written now: {e}");
    }
    Ok((check, locks))
}

pub(super) async fn login(State(s): State<AppState>, ClientAddr(ip): ClientAddr, body: Bytes) -> ApiResult {
    let req: LoginRequest = parse_json(&body)?;
    let (store, name, device, code, now) = (s.store.clone(), req.username.clone(), req.device.clone(), req.recovery_code.clone(), s.now_ms());
    let trusted = tokio::task::spawn_blocking(move || accounts::is_trusted(&store, &name, device.as_deref(), code.as_deref(), now)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    let client = Client { device: req.device.as_deref().map(accounts::device_id), trusted };
    let (check, locked) = check_guarded(&s, &req.username, req.password, ip, "login", client).await?;
    let account = match check {
        Check::Ok(a) => a,
        Check::Disabled => return Err(accounts::AccountError::Disabled(req.username).into()),
        Check::UnknownUser | Check::WrongPassword => {
            return Err(match locked {
                Some(until_ms) => refused(&req.username, ip, Refusal::Locked { until_ms, everywhere: false }, s.now_ms()),
                None => accounts::AccountError::BadCredentials.into(),
            });
        }
    };
    let (store, now, device) = (s.store.clone(), s.now_ms(), req.device.clone());
    let (token, session, fresh) = tokio::task::spawn_blocking(move || -> Result<_, accounts::AccountError> {
        let (token, session) = accounts::open_session(&store, &account, now)?;
        // A full disk: the device is not remembered this time.
        let fresh = accounts::remember_device(&store, &account.username, device.as_deref(), now).unwrap_or_default();
        Ok((token, session, fresh))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(user = %session.username, %ip, "login");
    Ok(Json(json!({
        "token": token,
        "username": session.username,
        "role": session.role.as_str(),
        "expires_at": time(session.expires_ms),
        // Keep it and send it with the next login: a lock that guessing
        // from elsewhere sets does not keep this client out.
        "device": fresh.or(req.device),
    })))
}

#[derive(Deserialize)]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// A user sets their own password (the current one checked as a login
/// is): every other session of theirs ends; this one stays.
pub(super) async fn change_own_password(State(s): State<AppState>, ClientAddr(ip): ClientAddr, headers: HeaderMap, body: Bytes) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Window).await?;
    let token = bearer(&headers).unwrap_or_default().to_string();
    let req: ChangePassword = parse_json(&body)?;
    if !accounts::acceptable_password(&session.username, &req.new_password) {
        return Err(accounts::AccountError::WeakPassword.into());
    }
    // A live session is a known client: the account's lock for unknown
    // clients does not apply to it.
    let client = Client { device: Some(accounts::device_id(&token)), trusted: true };
    let (check, _) = check_guarded(&s, &session.username, req.current_password, ip, "password_change", client).await?;
    if !matches!(check, Check::Ok(_)) {
        return Err(accounts::AccountError::WrongPassword.into());
    }
    let (store, now, user) = (s.store.clone(), s.now_ms(), session.username.clone());
    let account = s.login.gate.run(move || accounts::set_password(&store, &user, &req.new_password, Some(&token), now)).await.map_err(|e| match e {
        GateError::Busy => busy(),
        GateError::Task(m) => ApiError::internal(m),
    })??;
    tracing::info!(user = %account.username, "password changed; other sessions ended");
    Ok(Json(json!({"username": account.username, "password_changed_at": account.password_changed_ms.map(time)})))
}

pub(super) async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    authenticate(&s, &headers, Role::Window).await?;
    if let Some(token) = bearer(&headers) {
        accounts::logout(&s.store, token)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Window).await?;
    let account: Option<accounts::Account> = s.store.account(&session.username)?;
    let mediator = account.as_ref().is_some_and(|a| a.mediator);
    Ok(Json(json!({
        "username": session.username,
        "display_name": account.map(|a| a.display_name).unwrap_or_default(),
        "role": session.role.as_str(),
        "windows": session.windows,
        "mediator": mediator,
        "unit": s.node.division.to_string(),
        "unit_name": s.node.name,
        "expires_at": time(session.expires_ms),
    })))
}
