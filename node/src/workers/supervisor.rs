//! The supervision worker: scans the open cases this node holds, and for
//! each one it supervises (its owner's parent, or grandparent for a problem
//! case; `protocol::supervision`) issues a graded notice for every clock
//! past due, at most once per (case, clock, grade).

use std::time::Duration;

use zongzhi_protocol::case::{RouteTarget, SuperviseGrade};
use zongzhi_protocol::supervision;
use zongzhi_protocol::workflow::DeadlineKind;
use zongzhi_protocol::{DivisionCode, RecordId};

use super::reports::report_if_due;
use crate::context::Context;
use crate::ledger::{Ledger, LedgerError, Op};

/// One notice to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub case: RecordId,
    pub number: String,
    pub kind: DeadlineKind,
    pub started_ms: u64,
    pub grade: SuperviseGrade,
    pub overdue_ms: u64,
    pub raised: bool,
    /// A late 协办 helper: the request and the helper (a 协办督办).
    pub assist: Option<(RecordId, RouteTarget)>,
}

/// The marker `meta` key that records a notice of `grade` issued.
pub fn marker(case: &RecordId, kind: DeadlineKind, started_ms: u64, grade: SuperviseGrade, raised: bool) -> String {
    marker_for(case, kind, started_ms, grade, raised, None)
}

/// [`marker`] of one helper's 协办 clock (several start with one request).
pub fn marker_for(case: &RecordId, kind: DeadlineKind, started_ms: u64, grade: SuperviseGrade, raised: bool, helper: Option<&str>) -> String {
    let level = if raised { "/raised" } else { "" };
    let helper = helper.map(|h| format!("/{h}")).unwrap_or_default();
    format!("{}{case}/{}/{started_ms}/{}{level}{helper}", crate::store::meta::SUPERVISED_PREFIX, kind.as_str(), grade.as_str())
}

/// A helper as the marker names it.
pub fn helper_key(h: &RouteTarget) -> String {
    match h {
        RouteTarget::Unit(u) => format!("unit-{u}"),
        RouteTarget::Window(w) => format!("window-{w}"),
    }
}

/// What a scan examined and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    pub due: Vec<Due>,
    /// Overdue clocks read from the clock index.
    pub examined: usize,
}

/// The notices this node owes at `now`: read from the clock index, only
/// clocks past due (the scan costs what is overdue, not what is held),
/// leaving out those whose notice of the grade earned was issued already.
pub fn scan(shared: &Context, now: u64) -> crate::store::Result<Vec<Due>> {
    Ok(scan_counted(shared, now)?.due)
}

pub fn scan_counted(shared: &Context, now: u64) -> crate::store::Result<Scan> {
    let policy = shared.policy();
    let me: DivisionCode = shared.unit;
    let mut out = Scan::default();
    let mut err = None;
    let mut helpers_seen = std::collections::HashSet::new();
    crate::index::overdue_clocks(&shared.store, now, |e| {
        out.examined += 1;
        // A 回访 is owed after resolution too (the case is archived only
        // once it is done).
        let live = e.status().is_some_and(|s| s.is_open() || (e.kind == DeadlineKind::ReturnVisit && !s.is_final()));
        if !live {
            return true;
        }
        if e.kind == DeadlineKind::Assistance {
            // Late helpers are chased by the center that asked them (the
            // owner while a request is pending), one 协办督办 each.
            if e.owner == me && helpers_seen.insert(e.case) {
                match late_helpers(shared, &e, now, &policy) {
                    Ok(mut due) => out.due.append(&mut due),
                    Err(x) => {
                        err = Some(x);
                        return false;
                    }
                }
            }
            return true;
        }
        let units = e.units_handled.max(1) as usize;
        if supervision::supervisor(e.owner, e.returns, units) != Some(me) {
            return true;
        }
        let Some(mut grade) = supervision::grade_for(&policy, now - e.due_ms) else { return true };
        let summary = match shared.store.case_summary(&e.case) {
            Ok(Some(s)) => s,
            Ok(None) => return true,
            Err(x) => {
                err = Some(x);
                return false;
            }
        };
        // An unanswered 督办 (its reply is late) is raised a grade above the
        // highest the case has had; after 约谈 there is no grade left.
        if e.kind == DeadlineKind::SupervisionReply {
            let Some(next) = next_grade(summary.supervision) else { return true };
            grade = grade.max(next);
        }
        let raised = supervision::is_problem_case(e.returns, units);
        match shared.store.meta_get(&marker(&e.case, e.kind, e.started_ms, grade, raised)) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(x) => {
                err = Some(x);
                return false;
            }
        }
        let number = summary.number;
        out.due.push(Due { case: e.case, number, kind: e.kind, started_ms: e.started_ms, grade, overdue_ms: now - e.due_ms, raised, assist: None });
        true
    })?;
    err.map_or(Ok(out), Err)
}

/// The 协办督办 a case owes its late helpers at `now`: each helper whose
/// reply is past due, at the grade its lateness earned, once per grade.
fn late_helpers(shared: &Context, e: &crate::index::ClockEntry, now: u64, policy: &zongzhi_protocol::Policy) -> crate::store::Result<Vec<Due>> {
    let Some(summary) = shared.store.case_summary(&e.case)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (request, unit, window, due) in &summary.assists_owed {
        let Some(due) = due.filter(|d| now > *d) else { continue };
        let Some(grade) = supervision::grade_for(policy, now - due) else { continue };
        let helper = match window {
            Some(w) => RouteTarget::Window(w.clone()),
            None => RouteTarget::Unit(*unit),
        };
        let Some(started_ms) = summary.running.iter().find(|r| r.kind == DeadlineKind::Assistance && r.unit == *unit && r.due_ms == due).map(|r| r.started_ms) else { continue };
        if shared.store.meta_get(&marker_for(&e.case, DeadlineKind::Assistance, started_ms, grade, false, Some(&helper_key(&helper))))?.is_some() {
            continue;
        }
        out.push(Due { case: e.case, number: summary.number.clone(), kind: DeadlineKind::Assistance, started_ms, grade, overdue_ms: now - due, raised: false, assist: Some((*request, helper)) });
    }
    Ok(out)
}

/// The grade above `current` (普通 when none); `None` above 约谈.
fn next_grade(current: Option<SuperviseGrade>) -> Option<SuperviseGrade> {
    match current {
        None => Some(SuperviseGrade::Normal),
        Some(g) => SuperviseGrade::ALL.iter().copied().find(|x| *x > g),
    }
}

/// The automatic notice a due entry calls for.
pub fn notice(d: &Due) -> Op {
    Op::AutoSupervise { case: d.case, kind: d.kind, started_ms: d.started_ms, grade: d.grade, raised: d.raised, note: note(d), assist: d.assist.clone() }
}

fn note(d: &Due) -> String {
    let hours = d.overdue_ms / 3_600_000;
    let mut text = if d.kind == DeadlineKind::SupervisionReply {
        format!("督办未按期回复（已超期{hours}小时），升级为{}：请立即回复整改措施。", d.grade.zh())
    } else if d.kind == DeadlineKind::Assistance {
        format!("协办未按期回复（已超期{hours}小时），{}：请立即回复协办意见。", d.grade.zh())
    } else if d.kind == DeadlineKind::Suspension {
        format!("中止期满未恢复（已超期{hours}小时），{}：请恢复办理或说明情况。", d.grade.zh())
    } else if d.kind == DeadlineKind::ReturnVisit {
        format!("调解协议回访已超期{hours}小时，{}：请立即回访并记录履行情况。", d.grade.zh())
    } else {
        format!("{}时限已超期{}小时，{}：请立即办理并报告进展。", d.kind.zh(), hours, d.grade.zh())
    };
    if d.raised {
        text = format!("提级督办（多次退回或多次转办）。{text}");
    }
    text
}

/// Runs one scan and issues what is owed; returns how many notices were issued.
pub async fn run_once(shared: &Context, ledger: &Ledger) -> usize {
    let sh = shared.clone();
    let due = match tokio::task::spawn_blocking(move || scan(&sh, sh.clock.now_ms())).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::error!("supervision scan failed: {e}");
            return 0;
        }
        Err(e) => {
            tracing::error!("supervision scan panicked: {e}");
            return 0;
        }
    };
    let mut issued = 0;
    // One at a time: each notice's marker is stored before the next is checked.
    for d in due {
        match ledger.step(notice(&d)).await {
            Ok(_) => {
                issued += 1;
                tracing::info!(case = %d.number, clock = d.kind.as_str(), grade = d.grade.as_str(), "supervision notice issued");
            }
            Err(LedgerError::AlreadyDone) => {}
            // The case moved on since the scan (signed for, handed over): nothing to do.
            Err(LedgerError::Rejected(r)) => tracing::debug!(case = %d.number, "supervision not issued: {}", r.message),
            Err(e) => tracing::warn!(case = %d.number, "supervision not issued: {e}"),
        }
    }
    issued
}

/// Scans every `interval` until the node stops.
pub async fn run(shared: Context, ledger: Ledger, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        run_once(&shared, &ledger).await;
        report_if_due(&shared, &ledger).await;
        shared.metrics.supervision_scan();
    }
}
