//! Sessions: login, logout, `me`, and the bearer-token check every handler
//! starts with.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, Role, Session};
use super::error::{ApiError, ApiResult};
use super::{AppState, parse_json, time};

pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap, min: Role) -> Result<Session, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first (Authorization: Bearer <token>)"))?;
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
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role; {} is {}", min.as_str(), session.username, session.role.as_str()),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

pub(super) async fn login(State(s): State<AppState>, body: Bytes) -> ApiResult {
    let req: LoginRequest = parse_json(&body)?;
    let store = s.store.clone();
    let now = s.now_ms();
    let (token, session) = tokio::task::spawn_blocking(move || accounts::login(&store, &req.username, &req.password, now))
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

pub(super) async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    authenticate(&s, &headers, Role::Viewer).await?;
    if let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        accounts::logout(&s.store, token.trim())?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
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
