//! This node's operator accounts.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::{self, Role};
use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use super::{AppState, parse_json, time};

#[derive(Deserialize)]
struct CreateUser {
    username: String,
    password: String,
    role: String,
    #[serde(default)]
    display_name: String,
}

pub(super) async fn create_user(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let admin = authenticate(&s, &headers, Role::Admin).await?;
    let req: CreateUser = parse_json(&body)?;
    let role = Role::parse(&req.role).ok_or_else(|| ApiError::bad_request("role must be admin, operator or viewer"))?;
    let (store, now) = (s.store.clone(), s.now_ms());
    let account = tokio::task::spawn_blocking(move || {
        accounts::create(&store, &req.username, &req.password, role, &req.display_name, now)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    tracing::info!(by = %admin.username, user = %account.username, role = role.as_str(), "account created");
    Ok((StatusCode::CREATED, Json(user_json(&account))))
}

fn user_json(a: &accounts::Account) -> Value {
    json!({"username": a.username, "display_name": a.display_name, "role": a.role.as_str(), "created_at": time(a.created_ms)})
}

pub(super) async fn list_users(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let all: Vec<accounts::Account> = s.store.accounts()?;
    Ok(Json(json!({ "users": all.iter().map(user_json).collect::<Vec<_>>() })))
}
