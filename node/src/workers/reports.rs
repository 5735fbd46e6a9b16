//! The monthly report: this node signs its own figures for a month as a
//! report record, on request or once the month's grace period has passed
//! (checked on the supervision worker's tick).

use zongzhi_protocol::RecordId;

use crate::context::Context;
use crate::ledger::{self, Ledger, LedgerError, Op};

/// Signs this node's own figures for `month` as a report record. A month
/// is signed once it has closed; signing it again supersedes the earlier
/// report and needs a reason (`supersede`); both stay.
pub async fn sign_report(shared: &Context, ledger: &Ledger, month: u32, supersede: Option<String>) -> Result<(RecordId, zongzhi_protocol::kpi::MonthlyReport), LedgerError> {
    use zongzhi_protocol::kpi::{month_of, period_of};
    if month_of(shared.clock.now_ms()).is_none_or(|now| month >= now) {
        return Err(LedgerError::Invalid(format!("{} is still open (or has not begun): a month's report is signed once the month has closed, so that every step of it counts", period_of(month))));
    }
    let previous = shared.store.meta_get(&crate::report::signed_marker(month))?.and_then(|v| v.try_into().ok()).map(RecordId);
    let reason = supersede.map(|r| r.trim().to_string()).unwrap_or_default();
    if previous.is_some() && reason.is_empty() {
        return Err(LedgerError::Conflict(format!("the report for {} is already signed; to supersede it, give the reason (both reports stay visible)", period_of(month))));
    }
    if reason.chars().count() > zongzhi_protocol::step::MAX_NOTE_CHARS {
        return Err(LedgerError::Invalid(format!("the reason is longer than {} characters", zongzhi_protocol::step::MAX_NOTE_CHARS)));
    }
    let sh = shared.clone();
    let counts = tokio::task::spawn_blocking(move || crate::report::own_counts(&sh.store, sh.unit, month)).await.map_err(|e| LedgerError::Invalid(format!("report task failed: {e}")))??;
    let mut report = zongzhi_protocol::kpi::MonthlyReport::new(shared.unit, month, &counts);
    report.supersedes = previous;
    report.reason = if previous.is_some() { reason } else { String::new() };
    match ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::Report(report.clone()) }).await? {
        ledger::Outcome::Appended(id) => Ok((id, report)),
        other => Err(LedgerError::Invalid(format!("unexpected outcome {other:?}"))),
    }
}

/// Signs last month's report once its grace period has passed.
pub(super) async fn report_if_due(shared: &Context, ledger: &Ledger) {
    let due = crate::report::report_due(&shared.store, &shared.policy(), shared.clock.now_ms());
    match due {
        Ok(Some(month)) => match sign_report(shared, ledger, month, None).await {
            Ok((id, _)) => tracing::info!(month, record = %id.fmt_short(), "monthly report signed"),
            Err(e) => tracing::warn!(month, "monthly report not signed: {e}"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!("report check failed: {e}"),
    }
}
