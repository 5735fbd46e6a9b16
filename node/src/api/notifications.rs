//! `GET /api/notifications` (admins): the citizen notification outbox
//! ([`crate::notify`]) — messages waiting (oldest first), given up and
//! recently delivered (newest first), with the phone number masked and
//! never the text.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use super::{AppState, time};
use crate::accounts::Role;
use crate::notify::Entry;
use crate::store::OutboxState;

/// The most entries listed per state.
const MAX_LIMIT: usize = 1000;

fn entry_json(state: OutboxState, e: &Entry) -> Value {
    let pending = state == OutboxState::Pending;
    json!({
        "id": e.id,
        "state": state.as_str(),
        "template": e.template.as_str(),
        "case": e.case,
        "case_number": e.case_number,
        "to": e.to_masked,
        "attempts": e.attempts,
        "created_at": time(e.created_ms),
        "next_attempt_at": pending.then(|| time(e.next_attempt_ms)),
        "last_error": e.last_error,
        "done_at": e.done_ms.map(time),
    })
}

pub(super) async fn list(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Admin).await?;
    let states: Vec<OutboxState> = match q.get("state").map(String::as_str) {
        None | Some("") | Some("all") => OutboxState::ALL.to_vec(),
        Some(v) => vec![OutboxState::parse(v).ok_or_else(|| ApiError::bad_request(format!("state must be pending, failed, delivered or all, not {v:?}")))?],
    };
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 100,
        Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| ApiError::bad_request(format!("limit must be a whole number from 1 to {MAX_LIMIT}, not {v:?}")))?,
    };
    let store = s.store.clone();
    let (counts, list) = tokio::task::spawn_blocking(move || -> crate::store::Result<(Value, Vec<Value>)> {
        let mut counts = serde_json::Map::new();
        for state in OutboxState::ALL {
            counts.insert(state.as_str().into(), store.notify_count(state)?.into());
        }
        let mut list = Vec::new();
        for state in states {
            for (_, e) in store.notify_entries::<Entry>(state, limit)? {
                list.push(entry_json(state, &e));
            }
        }
        Ok((Value::Object(counts), list))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "enabled": s.notify.is_some(),
        "adapter": s.notify,
        "cursor": s.store.notify_cursor()?,
        "counts": counts,
        "notifications": list,
    })))
}
