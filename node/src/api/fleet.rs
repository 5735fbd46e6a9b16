//! The tree's upgrade state over HTTP: the fleet view (every center of this
//! node's subtree with its release, formats, schema, last report and its
//! age, what it holds aside and its alarms) and, at the city, finalizing a
//! record format (UPGRADES.md §4): the write format raised in a new signed
//! policy once every enrolled center reads it, or with an override that
//! names the laggards and is kept in the policy.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::{Body, DivisionCode};

use super::{ApiError, ApiResult, AppState, authenticate, time};
use crate::accounts::Role;
use crate::ledger::Op;
use crate::replication::fleet;

/// The next format the city could finalize: one above the gate, if this
/// release writes it.
fn next_format(s: &AppState) -> Option<u8> {
    let gate = s.policy().gate.write_format;
    (gate < s.shared.caps.write_max).then_some(gate + 1)
}

/// `GET /api/fleet`: every center of this node's subtree, and whether the
/// tree is ready for the next record format.
pub(super) async fn list(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let (rows, readiness) = {
        let ctx = s.shared.clone();
        let next = next_format(&s);
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let rows = fleet::fleet(&ctx)?;
            let readiness = next.map(|f| fleet::readiness(&ctx, f)).transpose()?;
            Ok((rows, readiness))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
    };
    let policy = s.policy();
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let centers: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["reported_at"] = json!(r.report.as_ref().map(|x| time(x.at_ms)));
            v["received_at"] = json!(r.received_ms.map(time));
            v["state_zh"] = json!(state_zh(r.state));
            v
        })
        .collect();
    Ok(Json(json!({
        "release": s.shared.caps.release,
        "gate": policy.gate,
        "policy_version": policy.version,
        "write_format": s.shared.write_format(),
        "finalize": readiness,
        "counts": {"ok": count("ok"), "stale": count("stale"), "never": count("never"), "revoked": count("revoked"), "expired": count("expired")},
        "stale_after_secs": fleet::STALE_AFTER_MS / 1000,
        "centers": centers,
    })))
}

fn state_zh(state: &str) -> &'static str {
    match state {
        "self" => "本节点",
        "ok" => "正常",
        "stale" => "久未联系",
        "never" => "未报告版本",
        "revoked" => "已撤销",
        "expired" => "证书过期",
        _ => "",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FinalizeRequest {
    /// The record format to allow (the next one).
    format: u8,
    /// Laggards finalized over, by division code; each must be named.
    #[serde(default)]
    r#override: Vec<DivisionCode>,
    #[serde(default)]
    reason: String,
    /// Only check and show what finalizing would do.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/policy/finalize`: the city admin raises the write format.
/// Refused while a center has not reported reading it, unless the request
/// names every such laggard (and gives a reason) and each of them runs a
/// release that holds aside what it cannot read. The gate never goes down.
pub(super) async fn finalize(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let session = authenticate(&s, &headers, Role::Admin).await?;
    if s.shared.trust().root() != s.node.id {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_root", "only the city center finalizes a release"));
    }
    let req: FinalizeRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let ctx = s.shared.clone();
    let (named, reason) = (req.r#override.clone(), req.reason.clone());
    let outcome = tokio::task::spawn_blocking(move || fleet::finalizing_policy(&ctx, req.format, &named, &reason)).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let laggards_json = |ls: &[fleet::Laggard]| ls.iter().map(|l| json!({"division": l.division.to_string(), "name": l.name, "why": l.why, "can_park": l.can_park})).collect::<Vec<_>>();
    let (policy, readiness) = match outcome {
        Ok(x) => x,
        Err(e) => {
            let message = e.to_string();
            return Err(match e {
                fleet::FinalizeError::Nothing(_) => ApiError::new(StatusCode::CONFLICT, "nothing_to_finalize", message),
                fleet::FinalizeError::WrongFormat { .. } | fleet::FinalizeError::NotLaggards(_) | fleet::FinalizeError::NeedsReason => ApiError::bad_request(message),
                fleet::FinalizeError::Laggards { laggards, .. } => ApiError::new(StatusCode::CONFLICT, "laggards", message).with_details(json!({"laggards": laggards_json(&laggards)})),
                fleet::FinalizeError::OverrideRefused(laggards) => ApiError::new(StatusCode::CONFLICT, "override_refused", message).with_details(json!({"laggards": laggards_json(&laggards)})),
                fleet::FinalizeError::Store(e) => e.into(),
            });
        }
    };
    let next = policy.gate.write_format;
    let overridden: Vec<String> = policy.gate.overridden.iter().map(|d| d.to_string()).collect();
    if req.dry_run {
        return Ok((StatusCode::OK, Json(json!({"dry_run": true, "format": next, "version": policy.version, "overridden": overridden, "ready": readiness.ready}))));
    }
    let version = policy.version;
    s.ledger.submit(Op::AppendOwn { body: Body::Policy(Box::new(policy)) }).await?;
    tracing::warn!(format = next, version, user = %session.username, overridden = ?overridden, "the city finalized record format {next}: every node signs it from now on");
    Ok((StatusCode::CREATED, Json(json!({"format": next, "version": version, "overridden": overridden}))))
}
