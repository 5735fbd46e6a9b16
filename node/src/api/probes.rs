//! Liveness and readiness for orchestrators and load balancers
//! ([`crate::probes`]): no login, no store read, JSON either way.
//! `GET /api/health` stays the detailed view (always 200 while the node
//! answers, `"status": "degraded"` with the reasons inside).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// 200 while the node can do its job without a restart (its writer
/// thread runs); 503 when only a restart helps.
pub(super) async fn live(State(s): State<AppState>) -> Response {
    if s.ledger.writer_alive() {
        (StatusCode::OK, Json(json!({"status": "live"}))).into_response()
    } else {
        let reason = json!({"code": "writer_stopped", "message": "the writer thread has stopped: restart the node"});
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "dead", "reasons": [reason]}))).into_response()
    }
}

/// 200 while the node takes writes; 503 with the reasons (storage fault,
/// restoring, migrating) while it does not. Reads keep working either way.
pub(super) async fn ready(State(s): State<AppState>) -> Response {
    let mut why: Vec<serde_json::Value> = crate::probes::readiness(&s.shared).iter().map(|r| json!({"code": r.code(), "message": r.message()})).collect();
    if !s.ledger.writer_alive() {
        why.push(json!({"code": "writer_stopped", "message": "the writer thread has stopped: restart the node"}));
    }
    if why.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "5")], Json(json!({"status": "not_ready", "reasons": why}))).into_response()
    }
}
