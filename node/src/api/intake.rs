//! Other systems' routes (`crate::integration`): filing with their own
//! reference, the case's status by that reference, and Open311 GeoReport
//! v2 (service list, requests) as a thin mapping over the same filing.
//!
//! A system is known by its API key (`X-Api-Key`, or Open311's `api_key`
//! parameter); it sees only the cases it filed.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use zongzhi_protocol::RecordId;

use super::AppState;
use super::cases::{FileRequest, file_request};
use super::error::ApiError;
use crate::integration::Integration;

/// Most characters in a system's reference.
const MAX_REF_CHARS: usize = 64;

/// The system whose key the request carries (header, else `api_key`).
fn system(s: &AppState, headers: &HeaderMap, param: Option<&str>) -> Result<Integration, ApiError> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).or(param).filter(|k| !k.trim().is_empty());
    let Some(key) = key else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "an integrated system sends its API key as X-Api-Key (or api_key)"));
    };
    s.integrations.by_key(key).cloned().ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "unknown API key"))
}

fn check_ref(reference: &str) -> Result<(), ApiError> {
    let ok = !reference.is_empty() && reference.chars().count() <= MAX_REF_CHARS && reference.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok { Ok(()) } else { Err(ApiError::bad_request(format!("external_ref must be 1 to {MAX_REF_CHARS} letters, digits, '-', '_', '.' or ':'"))) }
}

/// Open311's `closed`: the matter is dealt with (办结 and after, or merged, or void).
fn closed(status: zongzhi_protocol::Status) -> bool {
    use zongzhi_protocol::Status::*;
    matches!(status, Resolved | FedBack | Rated | Archived | Merged | Void)
}

/// The case `system` filed under `reference`, if any.
fn case_of(s: &AppState, system: &str, reference: &str) -> Result<Option<RecordId>, ApiError> {
    let Some(bytes) = s.store.meta_get(&crate::integration::ref_key(system, reference))? else { return Ok(None) };
    let id: [u8; 32] = bytes.as_slice().try_into().map_err(|_| ApiError::internal("a stored intake reference is not a case id"))?;
    Ok(Some(RecordId(id)))
}

/// A case as its system sees it: number, status, owner, deadlines, the public reply.
fn status_json(s: &AppState, case: RecordId, reference: &str) -> Result<Value, ApiError> {
    let summary = s.store.case_summary(&case)?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such case"))?;
    let names = super::views::unit_names(&s.shared.trust());
    Ok(json!({
        "external_ref": reference,
        "case_id": case.to_string(),
        "number": summary.number,
        "status": summary.status.as_str(),
        "status_zh": summary.status.zh(),
        "closed": closed(summary.status),
        "owner": summary.owner.to_string(),
        "owner_name": names.get(&summary.owner).cloned().unwrap_or_default(),
        "filed_at": super::time(summary.filed_ms),
        "updated_at": super::time(summary.updated_ms),
        "next_due_at": summary.next_due_ms.map(super::time),
        "public_reply": public_reply(s, case)?,
    }))
}

/// The resolution's public reply, once the case has one.
fn public_reply(s: &AppState, case: RecordId) -> Result<Option<String>, ApiError> {
    let records = crate::ledger::load_case_records(&s.store, &case)?;
    Ok(records.iter().rev().find_map(|r| match r.case_event().map(|e| &e.action) {
        Some(zongzhi_protocol::Action::Resolve { public_reply, .. }) => Some(public_reply.clone()),
        _ => None,
    }))
}

/// `POST /api/intake/cases`: a filing's JSON (as `POST /api/cases`) with
/// `external_ref`; `channel` defaults to the system's. 201 with the new
/// case; 200 with the case already filed under that reference.
pub(super) async fn file(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let system = system(&s, &headers, None)?;
    let mut v: Value = super::parse_json(&body)?;
    let Some(obj) = v.as_object_mut() else { return Err(ApiError::bad_request("the body must be a JSON object")) };
    let reference = match obj.remove("external_ref") {
        Some(Value::String(r)) => r,
        _ => return Err(ApiError::bad_request("external_ref (the system's own reference, a string) is required")),
    };
    check_ref(&reference)?;
    obj.entry("channel").or_insert_with(|| json!(system.channel));
    let req: FileRequest = serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("invalid filing: {e}")))?;
    let (status, case, code) = file_once(&s, &system, reference.clone(), req).await?;
    let mut out = status_json(&s, case, &reference)?;
    if let Some(code) = code {
        let number = out["number"].as_str().unwrap_or_default().to_string();
        out["receipt"] = crate::citizen::receipt_json(&s.shared.key, &number, case, &code, s.public.config.url.as_deref());
    }
    Ok((status, Json(out)))
}

/// Files `req` for `system` under `reference` unless it filed it before:
/// (201, the new case, its query code) or (200, the earlier case, none).
async fn file_once(s: &AppState, system: &Integration, reference: String, req: FileRequest) -> Result<(StatusCode, RecordId, Option<String>), ApiError> {
    let _one_at_a_time = s.intake_lock.lock().await;
    if let Some(case) = case_of(s, &system.name, &reference)? {
        return Ok((StatusCode::OK, case, None));
    }
    let operator = format!("接口:{}", system.name);
    let (ack, code) = file_request(s, req, operator, Some((system.name.clone(), reference))).await?;
    Ok((StatusCode::CREATED, ack.case, code))
}

/// `GET /api/intake/cases/{external_ref}`: the case's status.
pub(super) async fn status(State(s): State<AppState>, headers: HeaderMap, Path(reference): Path<String>) -> Result<Json<Value>, ApiError> {
    let system = system(&s, &headers, None)?;
    check_ref(&reference)?;
    let case = case_of(&s, &system.name, &reference)?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{} filed nothing under {reference}", system.name)))?;
    Ok(Json(status_json(&s, case, &reference)?))
}

// ---------- Open311 GeoReport v2 ----------

/// An Open311 error answer: `[{"code", "description"}]`.
fn open311_error(e: ApiError) -> Response {
    let (status, v) = e.parts();
    (status, Json(json!([{"code": status.as_u16(), "description": v["message"]}]))).into_response()
}

/// `GET /open311/v2/services.json` or `/open311/v2/requests.json`.
pub(super) async fn services_or_requests(state: State<AppState>, headers: HeaderMap, Path(file): Path<String>, query: Query<HashMap<String, String>>) -> Response {
    if file == "services.json" {
        return services(&state.0);
    }
    get_requests(state, headers, Path(file), query).await
}

/// The service list: the policy's leaf categories (小类) in force, grouped
/// by their 大类. No key needed: the taxonomy is no secret.
fn services(s: &AppState) -> Response {
    let policy = s.shared.policy();
    let list: Vec<Value> = policy
        .categories
        .iter()
        .filter(|c| !c.retired)
        .flat_map(|c| c.children.iter().filter(|l| !l.retired).map(move |l| (c, l)))
        .map(|(c, l)| {
            json!({"service_code": l.code, "service_name": l.name, "description": format!("{}/{}", c.name, l.name), "metadata": false, "type": "realtime", "keywords": c.name, "group": c.name})
        })
        .collect();
    Json(list).into_response()
}

/// `POST /open311/v2/requests.json` (form-encoded, as the spec says):
/// `api_key`, `service_code`, `description`, `lat`, `long`,
/// `address_string`, `first_name`, `last_name`, `phone`, and
/// `attribute[external_ref]` (the system's reference: a repeat answers
/// the same request) and `attribute[title]`.
pub(super) async fn post_request(State(s): State<AppState>, headers: HeaderMap, Path(file): Path<String>, body: Bytes) -> Response {
    match open311_file(&s, &headers, &file, &body).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => open311_error(e),
    }
}

async fn open311_file(s: &AppState, headers: &HeaderMap, file: &str, body: &[u8]) -> Result<Value, ApiError> {
    if file != "requests.json" {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "only JSON is served: requests.json"));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let system = system(s, headers, form.get("api_key").map(String::as_str))?;
    let field = |k: &str| form.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let service = field("service_code").ok_or_else(|| ApiError::bad_request("service_code is required"))?;
    let description = field("description").ok_or_else(|| ApiError::bad_request("description is required"))?;
    let number = |k: &str| field(k).map(|v| v.parse::<f64>().map_err(|_| ApiError::bad_request(format!("{k} is not a number")))).transpose();
    let title = field("attribute[title]").map(String::from).unwrap_or_else(|| description.chars().take(30).collect());
    let name = [field("first_name"), field("last_name")].into_iter().flatten().collect::<Vec<_>>().join("");
    let contact = (!name.is_empty() || field("phone").is_some())
        .then(|| json!({"name": if name.is_empty() { "来电人".to_string() } else { name }, "phone": field("phone").unwrap_or(""), "id_number": "", "address": ""}));
    let req = json!({
        "title": title, "content": description, "category": service,
        "request_type": "complaint", "channel": system.channel,
        "place": {"address": field("address_string").unwrap_or(""), "lat": number("lat")?, "lon": number("long")?},
        "contact": contact,
    });
    let req: FileRequest = serde_json::from_value(req).map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    let reference = match field("attribute[external_ref]") {
        Some(r) => r.to_string(),
        None => format!("open311:{}", hex::encode(rand_bytes())),
    };
    check_ref(&reference)?;
    let (_, case, _) = file_once(s, &system, reference, req).await?;
    let summary = s.store.case_summary(&case)?.ok_or_else(|| ApiError::internal("the filed case is not stored"))?;
    Ok(json!([{"service_request_id": summary.number, "service_notice": format!("已受理，编号{}", summary.number), "account_id": null}]))
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}

/// `GET /open311/v2/requests/{number}.json` and
/// `GET /open311/v2/requests.json?service_request_id=a,b`: the requests
/// this system filed (others are not found).
pub(super) async fn get_requests(State(s): State<AppState>, headers: HeaderMap, Path(file): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ids: Vec<String> = if let Some(one) = file.strip_suffix(".json").filter(|f| *f != "requests") {
        vec![one.to_string()]
    } else if file == "requests.json" {
        q.get("service_request_id").map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
    } else {
        return open311_error(ApiError::new(StatusCode::NOT_FOUND, "not_found", "only JSON is served"));
    };
    match open311_requests(&s, &headers, q.get("api_key").map(String::as_str), &ids) {
        Ok(list) => Json(list).into_response(),
        Err(e) => open311_error(e),
    }
}

fn open311_requests(s: &AppState, headers: &HeaderMap, key: Option<&str>, ids: &[String]) -> Result<Vec<Value>, ApiError> {
    let system = system(s, headers, key)?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(ApiError::bad_request("give service_request_id: 1 to 100 case numbers, comma separated"));
    }
    let policy = s.shared.policy();
    let names = super::views::unit_names(&s.shared.trust());
    let mut out = Vec::new();
    for number in ids {
        let Some(case) = s.store.case_by_number(number)? else { continue };
        // Only what this system filed.
        if crate::integration::source_of(&s.store, &case)?.is_none_or(|(sys, _)| sys != system.name) {
            continue;
        }
        let Some(c) = s.store.case_summary(&case)? else { continue };
        let service_name = policy.subcategory(&c.category).map(|(_, l)| l.name.clone()).unwrap_or_default();
        let records = crate::ledger::load_case_records(&s.store, &case)?;
        let filing = records.first().and_then(|r| r.case_event()).and_then(|e| match &e.action {
            zongzhi_protocol::Action::File(f) => Some(f.clone()),
            _ => None,
        });
        let place = filing.as_ref().map(|f| f.place.clone()).unwrap_or_default();
        out.push(json!({
            "service_request_id": c.number,
            "status": if closed(c.status) { "closed" } else { "open" },
            "status_notes": public_reply(s, case)?.unwrap_or_else(|| c.status.zh().to_string()),
            "service_name": service_name,
            "service_code": c.category,
            "description": filing.as_ref().map(|f| f.content.clone()).unwrap_or_default(),
            "agency_responsible": names.get(&c.owner).cloned().unwrap_or_else(|| c.owner.to_string()),
            "service_notice": c.status.zh(),
            "requested_datetime": super::time(c.filed_ms),
            "updated_datetime": super::time(c.updated_ms),
            "expected_datetime": c.next_due_ms.map(super::time),
            "address": place.address,
            "lat": place.lat_e6.map(|v| v as f64 / 1e6),
            "long": place.lon_e6.map(|v| v as f64 / 1e6),
            "media_url": null,
        }));
    }
    Ok(out)
}
