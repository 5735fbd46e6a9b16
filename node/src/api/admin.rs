//! Node administration: an online backup, and the override that ends a
//! restore no peer could confirm ([`crate::recovery`]).
//!
//! A backup may be asked for by an admin's session (it goes into the
//! configured `backup_dir`, without the node key), or by `zongzhi-node
//! backup` on the host: that command signs its request with the node key
//! it read from the data directory ([`host_signature`]), which proves
//! access to the host, and may name any directory and ask for the key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use super::{AppState, parse_json};
use crate::accounts::Role;
use crate::ledger::Op;

/// The header `zongzhi-node` signs host requests in.
pub const HOST_AUTH: &str = "x-zongzhi-host-auth";

/// What a host request signs: method, path, time and the body's hash.
pub fn host_message(method: &str, path: &str, ts_ms: u64, body: &[u8]) -> Vec<u8> {
    format!("zongzhi host request\n{method} {path}\n{ts_ms}\n{}", blake3::hash(body).to_hex()).into_bytes()
}

/// The header value for a host request signed with the node key.
pub fn host_signature(key: &zongzhi_protocol::NodeKey, method: &str, path: &str, ts_ms: u64, body: &[u8]) -> String {
    format!("{ts_ms}.{}", hex::encode(key.sign(&host_message(method, path, ts_ms, body))))
}

/// Whether the request carries a valid host signature (made within a
/// minute of now by this node's key).
fn host_signed(s: &AppState, headers: &HeaderMap, method: &str, path: &str, body: &[u8]) -> Result<bool, ApiError> {
    let Some(value) = headers.get(HOST_AUTH).and_then(|v| v.to_str().ok()) else { return Ok(false) };
    let refuse = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the host signature is invalid or more than a minute old (is the host's clock right?)");
    let (ts, sig) = value.split_once('.').ok_or_else(refuse)?;
    let ts: u64 = ts.parse().map_err(|_| refuse())?;
    let sig: [u8; 64] = hex::decode(sig).ok().and_then(|b| b.try_into().ok()).ok_or_else(refuse)?;
    if s.now_ms().abs_diff(ts) > 60_000 || s.node.id.verify(&host_message(method, path, ts, body), &sig).is_err() {
        return Err(refuse());
    }
    Ok(true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// Host requests only: where to write.
    #[serde(default)]
    dir: Option<String>,
    /// Host requests only: copy the node key too.
    #[serde(default)]
    with_key: bool,
}

pub(super) async fn backup(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let host = host_signed(&s, &headers, "POST", "/api/admin/backup", &body)?;
    if !host {
        authenticate(&s, &headers, Role::Admin).await?;
    }
    let req: BackupRequest = if body.is_empty() { BackupRequest { dir: None, with_key: false } } else { parse_json(&body)? };
    if !host && (req.dir.is_some() || req.with_key) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only `zongzhi-node backup` on the host may choose the directory or include the node key"));
    }
    let now = s.now_ms();
    let dir = match req.dir {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            // Two backups in one second get their own directories.
            let base = format!("zongzhi-{}-{}", s.node.division, crate::recovery::stamp(now));
            let mut dir = s.shared.paths.backup_dir.join(&base);
            let mut n = 1;
            while dir.exists() {
                n += 1;
                dir = s.shared.paths.backup_dir.join(format!("{base}-{n}"));
            }
            dir
        }
    };
    if dir.exists() {
        return Err(ApiError::new(StatusCode::CONFLICT, "exists", format!("{} already exists: name a new directory for the backup", dir.display())));
    }
    let files = crate::recovery::BackupFiles::of(&s.shared.paths, req.with_key);
    let (store, node) = (s.store.clone(), s.node.clone());
    let target = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || crate::recovery::backup(&store, &target, &node, &files, now))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "backup_failed", e))?;
    tracing::info!(dir = %dir.display(), own_seq = manifest.own_seq, "backup written");
    Ok((StatusCode::CREATED, Json(json!({"dir": dir.display().to_string(), "manifest": manifest}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    reason: String,
    /// Every center still waited for, named: the admin takes the risk
    /// that it holds records this node signed after its backup.
    #[serde(default)]
    without: Vec<String>,
}

/// An admin ends a restore that no peer confirmed, taking the risk that
/// records this node signed after the backup exist elsewhere.
pub(super) async fn recovery_override(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    let req: OverrideRequest = parse_json(&body)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request("give the reason (1 to 500 characters): it is logged with the override"));
    }
    if !s.shared.recovery.restoring() {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_restoring", "this node is not waiting for a restore to be confirmed"));
    }
    // The override names every center not heard from: a village offline
    // since before the restore may hold steps this node signed after its
    // backup, which would collide with the next ones it signs.
    let waiting = s.shared.recovery.waiting_for();
    if let Some(stranger) = req.without.iter().find(|d| !waiting.contains(d)) {
        let message = format!("{stranger} is not among the centers this restore waits for ({})", waiting.join(", "));
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_waited_for", message).with_details(json!({"waiting_for": waiting})));
    }
    let unnamed: Vec<&String> = waiting.iter().filter(|d| !req.without.contains(d)).collect();
    if !unnamed.is_empty() {
        let names: Vec<&str> = unnamed.iter().map(|d| d.as_str()).collect();
        let message = format!("name every center not heard from in `without` ({}): each may hold records this node signed after its backup", names.join(", "));
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "name_every_center", message).with_details(json!({"waiting_for": waiting})));
    }
    tracing::warn!(user = %session.username, reason, without = ?req.without, "restore confirmed by an admin's override, without hearing from every center");
    s.shared.recovery.force(&format!("admin {}: {reason}", session.username), &req.without);
    s.ledger.submit(Op::Ingest { records: vec![], blobs: vec![], cursor: None }).await?;
    Ok(Json(json!({"recovery": s.shared.recovery.status()})))
}
