//! The city's policy over HTTP: the whole document of any version, the
//! difference between versions, signing a new version from a merge patch,
//! and the working-day calendar warning every node shows.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

use zongzhi_protocol::case::{Channel, RequestType};
use zongzhi_protocol::policy::document::{self, PatchError, PolicyDoc};
use zongzhi_protocol::policy::{PolicySet, china_date, format_china};
use zongzhi_protocol::workflow::Status;
use zongzhi_protocol::{Body, Policy, Record};

use super::{ApiError, ApiResult, AppState, authenticate};
use crate::accounts::Role;
use crate::ledger::Op;
use crate::store::Store;

/// When and by whom each held version was signed: (version → (ms, author)).
fn signatures(store: &Store) -> Result<BTreeMap<u32, (u64, String)>, ApiError> {
    let mut out = BTreeMap::new();
    for id in store.trust_records()? {
        let Some(bytes) = store.record_bytes(&id)? else { continue };
        let Ok(record) = Record::decode_unverified(&bytes) else { continue };
        if let Body::Policy(p) = &record.body {
            out.entry(p.version).or_insert((record.header.hlc.wall_ms, record.author.to_string()));
        }
    }
    Ok(out)
}

/// The calendar situation at `now`: years held, the years missing that a
/// node needs by now (this year always, next year from the warning date),
/// and the warning text.
pub fn calendar_status(p: &Policy, now: u64) -> Value {
    let today = china_date(now).ok();
    let year = today.map(|d| d.year() as i32).unwrap_or(0);
    let missing = p.missing_calendars(now);
    let warning = if missing.contains(&year) {
        Some(format!("缺少{year}年工作日历：按工作日计算的时限无法确定。请市级管理员立即在“策略”页面载入{year}年工作日历。"))
    } else {
        missing.first().map(|y| format!("缺少{y}年工作日历：请市级管理员在国务院办公厅发布{y}年部分节假日安排的通知后，在“策略”页面载入{y}年工作日历。"))
    };
    json!({
        "years": p.calendar_years(),
        "today": today.map(|d| d.to_string()),
        "current_year": year,
        "next_year": year + 1,
        "missing": missing,
        "warning_from": format!("{year}-{:02}-{:02}", p.calendar_warning_from / 100, p.calendar_warning_from % 100),
        "warning": warning,
    })
}

/// Open cases with a clock waiting for a calendar, by year.
pub fn waiting_counts(store: &Store) -> Result<(u64, BTreeMap<i32, u64>), ApiError> {
    let mut total = 0;
    let mut by_year = BTreeMap::new();
    for id in store.waiting_cases()? {
        let Some(s) = store.case_summary(&id)? else { continue };
        if !s.status.is_open() || s.waiting.is_empty() {
            continue;
        }
        total += 1;
        let mut years: Vec<i32> = s.waiting.iter().map(|(_, y)| *y).collect();
        years.dedup();
        for y in years {
            *by_year.entry(y).or_insert(0) += 1;
        }
    }
    Ok((total, by_year))
}

/// The `calendar` block of `/api/health`.
pub fn health_block(s: &AppState) -> Result<Value, ApiError> {
    let mut v = calendar_status(&s.shared.policy(), s.now_ms());
    let (total, by_year) = waiting_counts(&s.store)?;
    v["cases_waiting"] = json!(total);
    v["cases_waiting_by_year"] = json!(by_year.iter().map(|(y, n)| (y.to_string(), *n)).collect::<BTreeMap<_, _>>());
    Ok(v)
}

fn document_json(p: &Policy, signed: Option<&(u64, String)>) -> Value {
    let mut doc = serde_json::to_value(PolicyDoc::of(p)).unwrap_or(Value::Null);
    doc["version"] = json!(p.version);
    doc["signed_at"] = json!(signed.map(|(ms, _)| format_china(*ms)));
    doc["signed_at_ms"] = json!(signed.map(|(ms, _)| *ms));
    doc["signed_by"] = json!(signed.map(|(_, by)| by.clone()));
    doc
}

fn version_param(q: &HashMap<String, String>, key: &str) -> Result<Option<u32>, ApiError> {
    q.get(key).filter(|v| !v.is_empty()).map(|v| v.parse::<u32>().map_err(|_| ApiError::bad_request(format!("{key} must be a policy version number")))).transpose()
}

fn held(set: &PolicySet, version: u32) -> Result<&Policy, ApiError> {
    set.get(version).map(|p| &**p).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_such_version", format!("this node holds no policy version {version} (newest: {})", set.current().version)))
}

/// `GET /api/policy[?version=N]`: the whole document of a version (the
/// current one by default), the calendar status and the version list.
pub async fn get_policy(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    // Window accounts too: the console's forms need the windows, categories and lists.
    authenticate(&s, &headers, Role::Window).await?;
    let set = s.shared.policies();
    let p = match version_param(&q, "version")? {
        Some(v) => held(&set, v)?,
        None => &**set.current(),
    };
    let sigs = signatures(&s.store)?;
    let mut doc = document_json(p, sigs.get(&p.version));
    doc["calendar_status"] = calendar_status(set.current(), s.now_ms());
    doc["versions"] = json!(
        set.versions()
            .map(|v| {
                let sig = sigs.get(&v.version);
                json!({"version": v.version, "signed_at": sig.map(|(ms, _)| format_china(*ms)), "signed_at_ms": sig.map(|(ms, _)| *ms)})
            })
            .collect::<Vec<_>>()
    );
    doc["channels"] = json!(Channel::ALL.iter().map(|c| json!({"code": c.as_str(), "name": c.zh()})).collect::<Vec<_>>());
    doc["request_types"] = json!(RequestType::ALL.iter().map(|c| json!({"code": c.as_str(), "name": c.zh()})).collect::<Vec<_>>());
    doc["statuses"] = json!(Status::ALL.iter().map(|c| json!({"code": c.as_str(), "name": c.zh()})).collect::<Vec<_>>());
    Ok(Json(doc))
}

/// `GET /api/policy/diff?from=N[&to=M]`.
pub async fn diff(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let set = s.shared.policies();
    let to = version_param(&q, "to")?.unwrap_or(set.current().version);
    let from = version_param(&q, "from")?.unwrap_or(to.saturating_sub(1).max(1));
    let (a, b) = (held(&set, from)?, held(&set, to)?);
    Ok(Json(json!({"from": from, "to": to, "changes": document::diff(a, b)})))
}

fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Shape(m) if m.contains("unknown field") => ApiError::new(StatusCode::BAD_REQUEST, "unknown_key", m),
        PatchError::Shape(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_patch", m),
        PatchError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy", m),
        e @ PatchError::NoChange(_) => ApiError::new(StatusCode::CONFLICT, "no_change", e.to_string()),
    }
}

/// `POST /api/policy[?dry_run=true]`: the city admin's merge patch over the
/// current document, validated and signed as the next version (or only
/// previewed). It replicates to every node like any record.
pub async fn sign_policy(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    if s.shared.trust().root() != s.node.id {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_root", "only the city center signs the policy"));
    }
    let dry_run = match q.get("dry_run").map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ApiError::bad_request("dry_run must be true or false")),
    };
    let patch: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let current = s.policy();
    let (next, changes) = document::apply_patch(&current, &patch).map_err(patch_error)?;
    let version = next.version;
    if dry_run {
        return Ok((StatusCode::OK, Json(json!({"version": version, "changes": changes, "dry_run": true}))));
    }
    s.ledger.submit(Op::AppendOwn { body: Body::Policy(Box::new(next)) }).await?;
    tracing::info!(version, user = %session.username, changes = changes.len(), "policy version signed");
    Ok((StatusCode::CREATED, Json(json!({"version": version, "changes": changes}))))
}
