//! Certificates: the ones held, a child's enrollment, revocation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::NodeId;

use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use super::{AppState, parse_json, time};
use crate::accounts::Role;
use crate::ledger::Op;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    /// `include`: revoked certificates too (hidden by default).
    #[serde(default)]
    revoked: Option<String>,
}

pub(super) async fn list_certs(State(s): State<AppState>, headers: HeaderMap, axum::extract::Query(q): axum::extract::Query<ListQuery>) -> ApiResult {
    // Window accounts too: the console names units from it.
    authenticate(&s, &headers, Role::Window).await?;
    let trust = s.shared.trust().clone();
    let with_revoked = q.revoked.as_deref() == Some("include");
    let mut members: Vec<&zongzhi_protocol::trust::Member> = trust.members().filter(|m| with_revoked || trust.revocation(&m.cert.key).is_none()).collect();
    members.sort_by_key(|m| m.cert.division);
    let list: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "key": m.cert.key.to_string(),
                "key_short": m.cert.key.fmt_short(),
                "division": m.cert.division.to_string(),
                "level": m.cert.level.as_str(),
                "name": m.cert.name,
                "issuer": m.cert.issuer.fmt_short(),
                "serial": m.cert.serial,
                "not_after": time(m.cert.not_after_ms),
                "revoked": trust.revocation(&m.cert.key).map(|r| json!({"cutoff_seq": r.cutoff_seq, "reason": r.reason})),
                "record": m.record.to_string(),
            })
        })
        .collect();
    let hidden = trust.members().count() - list.len();
    Ok(Json(json!({"root": trust.root().to_string(), "certs": list, "revoked_hidden": hidden})))
}

#[derive(Deserialize)]
struct IssueRequest {
    request: String,
    #[serde(default = "default_valid_days")]
    valid_days: u32,
    /// Check the request and show what would be signed, without signing.
    #[serde(default)]
    dry_run: bool,
}

fn default_valid_days() -> u32 {
    3650
}

/// The armored chain from the root down to `key`; for a division
/// re-enrolled with a new key, then the certificates of its earlier keys
/// and their revocations (the new node learns at once whose history it
/// takes over).
fn chain_text(s: &AppState, key: &NodeId) -> Result<String, ApiError> {
    let trust = s.shared.trust();
    let mut ids = trust.chain(key).ok_or_else(|| ApiError::internal("certificate chain incomplete"))?;
    if let Some(m) = trust.member(key) {
        for (old, _) in trust.predecessors(m.cert.division) {
            ids.extend(trust.member(&old).map(|p| p.record));
            ids.extend(trust.revocation_record(&old));
        }
    }
    let mut out = String::new();
    for id in ids {
        let bytes = s.store.record_bytes(&id)?.ok_or_else(|| ApiError::internal(format!("certificate record {id} missing")))?;
        out.push_str(&zongzhi_protocol::cert::armor(zongzhi_protocol::cert::RECORDS_ARMOR, &bytes));
    }
    Ok(out)
}

/// Approves a child center's enrollment request: signs its certificate.
pub(super) async fn issue_cert(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    let req: IssueRequest = parse_json(&body)?;
    let enrollment = zongzhi_protocol::cert::EnrollmentRequest::from_armored(&req.request).map_err(|e| ApiError::bad_request(format!("enrollment request: {e}")))?;
    if enrollment.division.parent() != Some(s.node.division) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_my_child",
            format!("{} is not directly below this center ({}); its own parent must approve it", enrollment.division, s.node.division),
        ));
    }
    if s.shared.trust().member(&s.node.id).is_none() {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_enrolled", "this node has no certificate yet; import its own chain first"));
    }
    if !(1..=7300).contains(&req.valid_days) {
        return Err(ApiError::bad_request("valid_days must be 1 to 7300"));
    }
    check_enrollment(&s, &enrollment)?;
    if req.dry_run {
        return Ok((
            StatusCode::OK,
            Json(json!({
                "division": enrollment.division.to_string(),
                "level": enrollment.division.level().as_str(),
                "level_zh": enrollment.division.level().zh(),
                "name": enrollment.name,
                "key": enrollment.key.to_string(),
                "key_short": enrollment.key.fmt_short(),
                "requested_at": time(enrollment.created_ms),
                "valid_days": req.valid_days,
            })),
        ));
    }
    let now = s.now_ms();
    let serial = s.shared.trust().members().filter(|m| m.cert.issuer == s.node.id).count() as u64 + 1;
    let cert = zongzhi_protocol::cert::NodeCert {
        key: enrollment.key,
        division: enrollment.division,
        level: enrollment.division.level(),
        name: enrollment.name.clone(),
        issuer: s.node.id,
        not_before_ms: now.saturating_sub(3_600_000),
        not_after_ms: now + req.valid_days as u64 * 86_400_000,
        serial,
    };
    let outcome = s.ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::NodeCert(cert) }).await?;
    let record = match outcome {
        crate::ledger::Outcome::Appended(id) => id.fmt_short(),
        _ => String::new(),
    };
    tracing::info!(by = %session.username, division = %enrollment.division, key = %enrollment.key.fmt_short(), record, "certificate issued");
    let chain = chain_text(&s, &enrollment.key)?;
    Ok((StatusCode::CREATED, Json(json!({"division": enrollment.division.to_string(), "name": enrollment.name, "key": enrollment.key.to_string(), "chain": chain}))))
}

/// What an enrollment must be beyond its signature and place in the tree:
/// an official name of its level, not this center's name or another
/// center's, and a division no valid certificate holds yet.
fn check_enrollment(s: &AppState, e: &zongzhi_protocol::cert::EnrollmentRequest) -> Result<(), ApiError> {
    let refuse = |code: &'static str, m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m);
    zongzhi_protocol::cert::check_name(e.division.level(), &e.name).map_err(|m| refuse("bad_name", format!("{}: {m}", e.name)))?;
    if e.name == s.node.name {
        return Err(refuse("name_taken", format!("{} is this center's own name: the child center must have its own official name", e.name)));
    }
    let trust = s.shared.trust();
    for m in trust.members() {
        if m.cert.key == e.key || trust.revocation(&m.cert.key).is_some() {
            continue;
        }
        if m.cert.division == e.division {
            return Err(refuse(
                "division_taken",
                format!("{} already has a valid certificate (key {}); if that center's key was replaced, revoke the old one first", e.division, m.cert.key.fmt_short()),
            ));
        }
        if m.cert.name == e.name {
            return Err(refuse("name_taken", format!("{} is already the name of {}: give the center its own official name", e.name, m.cert.division)));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct RevokeRequest {
    key: NodeId,
    /// Records of the key above this seq are void everywhere. Default: the
    /// last this center holds of it (what the tree has of the key).
    #[serde(default)]
    cutoff_seq: Option<u64>,
    reason: String,
    /// Show what the revocation would void; sign nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What this center holds of a key's chain, and what a cut-off voids.
fn revocation_preview(s: &AppState, key: &NodeId, cutoff: u64) -> Result<Value, ApiError> {
    let held = s.store.chain_last(key)?.map_or(0, |(seq, _)| seq);
    let mut voided = Vec::new();
    for seq in cutoff + 1..=held {
        let Some(id) = s.store.chain_entry(key, seq)? else { continue };
        let Some(bytes) = s.store.record_bytes(&id)? else { continue };
        let Ok(r) = zongzhi_protocol::Record::decode_unverified(&bytes) else { continue };
        let what = match &r.body {
            zongzhi_protocol::Body::CaseEvent(e) => {
                let case = e.case_id(r.id);
                let number = s.store.case_summary(&case)?.map(|c| c.number).unwrap_or_default();
                json!({"seq": seq, "record": id.to_string(), "action": e.action.as_str(), "action_zh": e.action.zh(), "case": case.to_string(), "number": number, "signed_at": time(r.header.hlc.wall_ms)})
            }
            other => json!({"seq": seq, "record": id.to_string(), "kind": other.kind().map(|k| k.as_str()), "signed_at": time(r.header.hlc.wall_ms)}),
        };
        voided.push(what);
    }
    Ok(json!({"held_seq": held, "cutoff_seq": cutoff, "voided": voided}))
}

/// Revokes a descendant's key: its records after `cutoff_seq` are refused
/// everywhere. The cut-off is chosen from what this center holds of the
/// key (`dry_run` shows what a cut-off voids before anything is signed);
/// one above it is refused, as it would leave room for records signed
/// with the key after its loss.
pub(super) async fn revoke_cert(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    let req: RevokeRequest = parse_json(&body)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("give a reason"));
    }
    let trust = s.shared.trust();
    let member = trust.member(&req.key).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no certificate for that key"))?;
    let division = member.cert.division;
    if !s.node.division.is_ancestor_of(division) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_below", format!("{division} is not below this center: its issuer or an ancestor revokes it")));
    }
    let held = s.store.chain_last(&req.key)?.map_or(0, |(seq, _)| seq);
    let cutoff = req.cutoff_seq.unwrap_or(held);
    if cutoff > held {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cutoff_above_held",
            format!("this center holds records of that key up to seq {held}; a cut-off of {cutoff} would keep valid whatever the lost key signs up to {cutoff}: use at most {held}"),
        ));
    }
    let mut preview = revocation_preview(&s, &req.key, cutoff)?;
    preview["key"] = json!(req.key.to_string());
    preview["division"] = json!(division.to_string());
    preview["name"] = json!(member.cert.name);
    if req.dry_run {
        preview["dry_run"] = json!(true);
        return Ok((StatusCode::OK, Json(preview)));
    }
    let rev = zongzhi_protocol::cert::Revocation { key: req.key, division, cutoff_seq: cutoff, reason: req.reason };
    let outcome = s.ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::Revocation(rev) }).await?;
    let record = match outcome {
        crate::ledger::Outcome::Appended(id) => id.fmt_short(),
        _ => String::new(),
    };
    tracing::warn!(by = %session.username, key = %req.key.fmt_short(), cutoff, record, "key revoked");
    preview["revoked"] = json!(req.key.to_string());
    Ok((StatusCode::CREATED, Json(preview)))
}
