//! The monthly report: this node signs its own figures for a month as a
//! report record, on request or once the month's grace period has passed
//! (checked on the supervision worker's tick).

use zongzhi_protocol::RecordId;

use crate::context::Context;
use crate::ledger::{self, Ledger, LedgerError, Op};

/// Signs this node's own figures for `month` as a report record.
pub async fn sign_report(shared: &Context, ledger: &Ledger, month: u32) -> Result<(RecordId, zongzhi_protocol::kpi::MonthlyReport), LedgerError> {
    let sh = shared.clone();
    let counts = tokio::task::spawn_blocking(move || crate::report::own_counts(&sh.store, sh.unit, month))
        .await
        .map_err(|e| LedgerError::Invalid(format!("report task failed: {e}")))??;
    let report = zongzhi_protocol::kpi::MonthlyReport::new(shared.unit, month, &counts);
    match ledger.submit(Op::AppendOwn { body: zongzhi_protocol::Body::Report(report.clone()) }).await? {
        ledger::Outcome::Appended(id) => Ok((id, report)),
        other => Err(LedgerError::Invalid(format!("unexpected outcome {other:?}"))),
    }
}

/// Signs last month's report once its grace period has passed.
pub(super) async fn report_if_due(shared: &Context, ledger: &Ledger) {
    let due = crate::report::report_due(&shared.store, &shared.policy(), shared.clock.now_ms());
    match due {
        Ok(Some(month)) => match sign_report(shared, ledger, month).await {
            Ok((id, _)) => tracing::info!(month, record = %id.fmt_short(), "monthly report signed"),
            Err(e) => tracing::warn!(month, "monthly report not signed: {e}"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!("report check failed: {e}"),
    }
}
