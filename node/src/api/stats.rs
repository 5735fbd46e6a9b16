//! Statistics tables and monthly reports.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::DivisionCode;

use super::AppState;
use super::auth::authenticate;
use super::error::{ApiError, ApiResult};
use crate::accounts::Role;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Parses the statistics query parameters shared by the API's tables.
fn stats_query(s: &AppState, q: &HashMap<String, String>) -> Result<crate::report::Query, ApiError> {
    use zongzhi_protocol::kpi::{self, Kpi};
    let scope: DivisionCode = match q.get("scope").map(String::as_str) {
        None | Some("") => s.node.division,
        Some(c) => c.parse().map_err(|e| ApiError::bad_request(format!("scope: {e}")))?,
    };
    if !s.node.division.contains(scope) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "outside_subtree", format!("{scope} is not in this center's subtree ({})", s.node.division)));
    }
    let by_text = q.get("by").map(String::as_str).filter(|b| !b.is_empty()).unwrap_or("unit");
    let by =
        crate::stats::By::parse(by_text).ok_or_else(|| ApiError::bad_request(format!("by must be unit, level, county, township, village, category, channel, window or person, not {by_text:?}")))?;
    let period = match q.get("period").map(String::as_str) {
        None | Some("") => {
            let m = kpi::month_of(s.now_ms()).unwrap_or(197001);
            format!("{}-{:02}", m / 100, m % 100)
        }
        Some(p) => p.to_string(),
    };
    let months = kpi::period_months(&period).map_err(ApiError::bad_request)?;
    let kpis: Vec<Kpi> = match q.get("kpi").map(String::as_str) {
        // By window or person: the figures counted against them.
        None | Some("") if matches!(by, crate::stats::By::Window | crate::stats::By::Person) => vec![Kpi::ResolutionOnTime, Kpi::Satisfaction, Kpi::AvgHandlingDays],
        None | Some("") | Some("all") => Kpi::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|k| {
                Kpi::parse(k.trim()).ok_or_else(|| {
                    let known: Vec<&str> = Kpi::ALL.iter().map(|k| k.as_str()).collect();
                    ApiError::bad_request(format!("unknown KPI {k:?}; known: {}", known.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let number = |name: &str, max: usize| -> Result<Option<usize>, ApiError> {
        match q.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!("{name} must be a whole number from 0 to {max}, not {v:?}"))),
            },
        }
    };
    let limit = number("limit", 10_000)?;
    let offset = number("offset", 1_000_000)?.unwrap_or(0);
    let baseline = match q.get("baseline").map(String::as_str) {
        None | Some("") => None,
        Some(p) => Some((p.to_string(), kpi::period_months(p).map_err(|e| ApiError::bad_request(format!("baseline: {e}")))?)),
    };
    Ok(crate::report::Query { scope, period, months, baseline, by, kpis, offset, limit })
}

pub(super) async fn stats_table(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    authenticate(&s, &headers, Role::Viewer).await?;
    let query = stats_query(&s, &q)?;
    let format = match q.get("format").map(String::as_str) {
        None | Some("") | Some("json") => "json",
        Some("csv") => "csv",
        Some("xlsx") => "xlsx",
        Some(f) => return Err(ApiError::bad_request(format!("format must be json, csv or xlsx, not {f:?}"))),
    };
    let (store, trust, policy, policies) = (s.store.clone(), s.shared.trust(), s.policy(), s.shared.policies());
    let kpis = query.kpis.clone();
    let now = s.now_ms();
    let by_person = query.by == crate::stats::By::Person;
    let mut table =
        tokio::task::spawn_blocking(move || crate::report::table(&store, &trust, &policy, &policies, &query, now)).await.map_err(|e| ApiError::internal(format!("statistics task failed: {e}")))??;
    if by_person {
        // This center's accounts by their display names.
        let own = s.node.division.to_string();
        for row in table["rows"].as_array_mut().into_iter().flatten() {
            let Some((unit, user)) = row["group"].as_str().and_then(|g| g.split_once(':')).map(|(u, n)| (u.to_string(), n.to_string())) else { continue };
            if unit == own
                && let Some(account) = s.store.account::<crate::accounts::Account>(&user)?
                && !account.display_name.trim().is_empty()
            {
                row["name"] = json!(account.display_name.trim());
            }
        }
    }
    let name = format!("zongzhi-stats-{}-{}.{format}", table["scope"].as_str().unwrap_or(""), table["period"].as_str().unwrap_or(""));
    let disposition = (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""));
    match format {
        "csv" => Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), disposition], crate::report::to_csv(&table, &kpis)).into_response()),
        "xlsx" => {
            let bytes = tokio::task::spawn_blocking(move || crate::report::to_xlsx(&table, &kpis))
                .await
                .map_err(|e| ApiError::internal(format!("statistics export task failed: {e}")))?
                .map_err(|e| ApiError::internal(format!("writing the spreadsheet: {e}")))?;
            Ok(([(header::CONTENT_TYPE, XLSX.to_string()), disposition], bytes).into_response())
        }
        _ => Ok(Json(table).into_response()),
    }
}

/// Reports of the subtree for a period, each checked against the events.
pub(super) async fn check_reports(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    authenticate(&s, &headers, Role::Viewer).await?;
    let query = stats_query(&s, &q)?;
    let (store, trust) = (s.store.clone(), s.shared.trust());
    let v = tokio::task::spawn_blocking(move || crate::report::check(&store, &trust, query.scope, &query.months)).await.map_err(|e| ApiError::internal(format!("report check failed: {e}")))??;
    Ok(Json(v))
}

#[derive(Deserialize)]
pub(super) struct SignReportRequest {
    /// `YYYY-MM`.
    period: String,
    /// Why a report already signed for the month is superseded.
    #[serde(default)]
    supersede_reason: Option<String>,
}

/// Signs this center's own figures for a month (it also happens on its own
/// after each month closes).
pub(super) async fn sign_report(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    use zongzhi_protocol::kpi;
    authenticate(&s, &headers, Role::Admin).await?;
    let req: SignReportRequest = super::parse_json(&body)?;
    let months = kpi::period_months(&req.period).map_err(ApiError::bad_request)?;
    let [month] = months[..] else {
        return Err(ApiError::bad_request("a report covers one month: period must be YYYY-MM"));
    };
    let (id, report) = crate::workers::reports::sign_report(&s.shared, &s.ledger, month, req.supersede_reason).await?;
    let period = report.period();
    Ok((StatusCode::CREATED, Json(json!({"record": id.to_string(), "period": period, "report": report}))))
}
