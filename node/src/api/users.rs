//! This node's operator accounts: creation, the list with each account's
//! failed logins and lock, unlocking, password resets, disabling, and the
//! login audit (admins only).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{authenticate, bearer};
use super::error::{ApiError, ApiResult};
use super::{AppState, ClientAddr, parse_json, time};
use crate::accounts::{self, Role};
use crate::login::audit::Entry;
use crate::login::hashing::GateError;

/// Records an admin's action in the login audit (events: never evicted
/// by refused attempts) and keeps the lock state it changed.
async fn audit_admin(s: &AppState, by: &str, target: &str, ip: std::net::IpAddr, action: &str, detail: String) {
    if let Err(e) = s.login.save_locks() {
        tracing::warn!("the login lock state could not be written now: {e}");
    }
    let entry = Entry::admin(s.now_ms(), by, target, ip, action, detail);
    if let Err(e) = s.login.audit.record(entry.clone()).await {
        tracing::warn!("the login audit could not be written now ({e}); kept for later");
        s.login.audit.record_later(entry);
    }
}

#[derive(Deserialize)]
struct CreateUser {
    username: String,
    password: String,
    role: String,
    #[serde(default)]
    display_name: String,
    /// A window account's department windows (role `window`).
    #[serde(default)]
    windows: Vec<String>,
    /// The account mediates (调解员).
    #[serde(default)]
    mediator: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetScope {
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default)]
    mediator: bool,
}

/// Window codes of this center's policy, not retired.
fn known_windows(s: &AppState, windows: &[String]) -> Result<(), ApiError> {
    let policy = s.policy();
    match windows.iter().find(|w| policy.window(w).is_none_or(|x| x.retired)) {
        Some(w) => Err(ApiError::bad_request(format!("no department window {w:?} in force in the policy"))),
        None => Ok(()),
    }
}

fn gate_error(e: GateError) -> ApiError {
    match e {
        GateError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the node is checking too many passwords at once: try again in a second").retry_after(1),
        GateError::Task(m) => ApiError::internal(m),
    }
}

pub(super) async fn create_user(State(s): State<AppState>, ClientAddr(ip): ClientAddr, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let req: CreateUser = parse_json(&body)?;
    let role = Role::parse(&req.role).ok_or_else(|| ApiError::bad_request("role must be admin, operator, viewer or window"))?;
    let scope = accounts::Scope { windows: req.windows.clone(), mediator: req.mediator };
    scope.check(role)?;
    known_windows(&s, &scope.windows)?;
    let (store, now) = (s.store.clone(), s.now_ms());
    let account = s.login.gate.run(move || accounts::create_scoped(&store, &req.username, &req.password, role, &req.display_name, now, scope)).await.map_err(gate_error)??;
    tracing::info!(by = %admin.username, user = %account.username, role = role.as_str(), "account created");
    audit_admin(&s, &admin.username, &account.username, ip, "user_created", format!("role {}", role.as_str())).await;
    Ok((StatusCode::CREATED, Json(user_json(&s, &account))))
}

/// An account as admins see it: with its failed logins and lock.
fn user_json(s: &AppState, a: &accounts::Account) -> Value {
    let state = s.login.throttle.account_state(&a.username, s.now_ms());
    json!({
        "username": a.username,
        "display_name": a.display_name,
        "role": a.role.as_str(),
        "created_at": time(a.created_ms),
        "disabled": a.disabled,
        "password_changed_at": a.password_changed_ms.map(time),
        "windows": a.windows,
        "mediator": a.mediator,
        "failed_logins": state.failures,
        "locked_until": state.locked_until_ms.map(time),
        // Locked for every client it does not know (guessing from several
        // addresses): known devices and the recovery code still get in.
        "locked_everywhere": state.locked_everywhere,
        "locked_for": state.locked_for.iter().map(|(who, until)| json!({"client": who, "until": time(*until)})).collect::<Vec<_>>(),
        "retry_at": state.retry_at_ms.map(time),
        "known_devices": a.devices.len(),
        "has_recovery_code": a.recovery_hash.is_some(),
    })
}

pub(super) async fn list_users(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let all: Vec<accounts::Account> = s.store.accounts()?;
    Ok(Json(json!({ "users": all.iter().map(|a| user_json(&s, a)).collect::<Vec<_>>() })))
}

/// The account named in the path, or 404.
fn account(s: &AppState, username: &str) -> Result<accounts::Account, ApiError> {
    s.store.account(username)?.ok_or_else(|| accounts::AccountError::NoSuchUser(username.into()).into())
}

/// Clears an account's failed logins and lock.
pub(super) async fn unlock_user(State(s): State<AppState>, ClientAddr(ip): ClientAddr, Path(username): Path<String>, headers: HeaderMap) -> ApiResult {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let a = account(&s, &username)?;
    s.login.throttle.unlock(&username);
    tracing::info!(by = %admin.username, user = %username, "account unlocked");
    audit_admin(&s, &admin.username, &username, ip, "unlock", "failed logins and locks cleared".into()).await;
    Ok(Json(user_json(&s, &a)))
}

#[derive(Deserialize)]
struct ResetPassword {
    password: String,
}

/// An admin sets an account's password: its sessions end and its lock is
/// cleared (an admin resetting their own keeps the session asking).
pub(super) async fn reset_password(State(s): State<AppState>, ClientAddr(ip): ClientAddr, Path(username): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let req: ResetPassword = parse_json(&body)?;
    account(&s, &username)?;
    if !accounts::acceptable_password(&username, &req.password) {
        return Err(accounts::AccountError::WeakPassword.into());
    }
    let keep = (admin.username == username).then(|| bearer(&headers).unwrap_or_default().to_string());
    let (store, now, user) = (s.store.clone(), s.now_ms(), username.clone());
    let a = s.login.gate.run(move || accounts::set_password(&store, &user, &req.password, keep.as_deref(), now)).await.map_err(gate_error)??;
    s.login.throttle.unlock(&username);
    tracing::info!(by = %admin.username, user = %username, "password reset; sessions ended");
    audit_admin(&s, &admin.username, &username, ip, "password_reset", "sessions ended, locks cleared".into()).await;
    Ok(Json(user_json(&s, &a)))
}

async fn set_disabled(s: AppState, ip: std::net::IpAddr, username: String, headers: HeaderMap, disabled: bool) -> ApiResult {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let store = s.store.clone();
    let (user, by) = (username.clone(), admin.username.clone());
    let a = tokio::task::spawn_blocking(move || accounts::set_disabled(&store, &user, disabled, Some(&by))).await.map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %admin.username, user = %username, disabled, "account {}", if disabled { "disabled; sessions ended" } else { "enabled" });
    let action = if disabled { "disabled" } else { "enabled" };
    audit_admin(&s, &admin.username, &username, ip, action, format!("account {action}")).await;
    Ok(Json(user_json(&s, &a)))
}

/// Sets an account's windows (a window account) and whether it mediates;
/// its sessions end.
pub(super) async fn set_scope(State(s): State<AppState>, Path(username): Path<String>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let req: SetScope = parse_json(&body)?;
    known_windows(&s, &req.windows)?;
    let store = s.store.clone();
    let user = username.clone();
    let a = tokio::task::spawn_blocking(move || accounts::set_scope(&store, &user, accounts::Scope { windows: req.windows, mediator: req.mediator }))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %admin.username, user = %username, windows = ?a.windows, mediator = a.mediator, "account scope set; sessions ended");
    Ok(Json(user_json(&s, &a)))
}

/// Disables an account: its sessions end and it cannot log in.
pub(super) async fn disable_user(State(s): State<AppState>, ClientAddr(ip): ClientAddr, Path(username): Path<String>, headers: HeaderMap) -> ApiResult {
    set_disabled(s, ip, username, headers, true).await
}

pub(super) async fn enable_user(State(s): State<AppState>, ClientAddr(ip): ClientAddr, Path(username): Path<String>, headers: HeaderMap) -> ApiResult {
    set_disabled(s, ip, username, headers, false).await
}

/// Makes an account's recovery code (replacing the one before), shown this
/// once: with it the account's user gets in while guessing from several
/// addresses locks the account for clients it does not know. The admin
/// keeps it (on paper, in the safe).
pub(super) async fn recovery_code(State(s): State<AppState>, ClientAddr(ip): ClientAddr, Path(username): Path<String>, headers: HeaderMap) -> ApiResult {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    account(&s, &username)?;
    let (store, user) = (s.store.clone(), username.clone());
    let code = tokio::task::spawn_blocking(move || accounts::new_recovery_code(&store, &user)).await.map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %admin.username, user = %username, "recovery code made");
    audit_admin(&s, &admin.username, &username, ip, "recovery_code", "a new recovery code replaces any earlier one".into()).await;
    Ok(Json(json!({"username": username, "recovery_code": code})))
}

/// The newest entries of the login audit (`limit`, default 100, at most
/// 10,000; `log=events` for successful logins, lockouts and admins'
/// actions only, `log=refusals` for refused attempts only, aggregated per
/// client address), and the client addresses held up now.
pub(super) async fn login_audit(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let max = crate::login::audit::KEEP;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 100,
        Some(v) => v.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| ApiError::bad_request(format!("limit must be a whole number from 1 to {max}, not {v:?}")))?,
    };
    let only = match q.get("log").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some("events") => Some(crate::store::AuditKind::Events),
        Some("refusals") => Some(crate::store::AuditKind::Refusals),
        Some(v) => return Err(ApiError::bad_request(format!("log must be events, refusals or all, not {v:?}"))),
    };
    let entries = s.login.audit.newest(limit, only).await?;
    let now = s.now_ms();
    let blocked: Vec<Value> = s.login.throttle.blocked_addresses(now).into_iter().map(|(a, n, until)| json!({"address": a.to_string(), "failed_logins": n, "until": time(until)})).collect();
    Ok(Json(json!({
        "entries": entries.iter().map(|e| json!({
            "time": time(e.at_ms), "username": e.username, "address": e.address, "kind": e.kind, "outcome": e.outcome, "ok": e.outcome == "ok",
            "count": e.count, "first_time": e.first_ms.map(time), "usernames": e.usernames, "by": e.by, "detail": e.detail,
        })).collect::<Vec<_>>(),
        "blocked_addresses": blocked,
        "not_recorded": s.login.audit.dropped(),
    })))
}
