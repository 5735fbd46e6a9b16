//! Record format 4 (release 0.2.0, the epoch release): the signed format
//! byte, the upgrade gate in the policy, and the supervision reply.
//!
//! What changed from format 3:
//! - the signed message is `zongzhi/record/v2\0 ‖ format ‖ kind ‖ author ‖
//!   payload`, so one signed payload can never travel under two formats;
//! - `Action` gains `ReplySupervision` (督办回复), appended;
//! - `Policy` gains `gate` (the write format the city finalized) and
//!   `supervision_reply` (the reply deadline of each 督办 grade), appended.
//! - `Action` gains the decisions a center takes (不予受理, 撤回,
//!   中止/恢复, 协办 with deadlines, its reply and 督办, the mediation
//!   steps: session, agreement, 司法确认 referral and ruling, 回访), and
//!   `Policy` their rules (`decisions`), appended after the above.
//!
//! Format 4 is the current in-memory model: its types are those of
//! [`crate::case`] and [`crate::policy`]. Before a later format changes one
//! of them, the type as it is now is copied here first (this module then
//! defines it instead of re-exporting it) and never edited again.
//!
//! Upcasting (format 3 → the model) and its inverse for the node that
//! still writes format 3 until the city finalizes are here too.

use super::v3;
pub use crate::case::{Action, CaseEvent};
pub use crate::policy::Policy;
use crate::policy::{DecisionRules, ReplyDeadlines, UpgradeGate};

/// Why a value of the model cannot be written in an older format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs record format {needs}; the tree writes format {format} until the city finalizes format {needs}")]
pub struct NotInFormat {
    pub what: &'static str,
    pub needs: u8,
    pub format: u8,
}

impl From<v3::Action> for Action {
    fn from(a: v3::Action) -> Action {
        match a {
            v3::Action::File(f) => Action::File(f),
            v3::Action::SignFor => Action::SignFor,
            v3::Action::Route { window, requirements, due_ms } => Action::Route { window, requirements, due_ms },
            v3::Action::Dispatch { to, requirements, due_ms } => Action::Dispatch { to, requirements, due_ms },
            v3::Action::Escalate { reason } => Action::Escalate { reason },
            v3::Action::Return { reason } => Action::Return { reason },
            v3::Action::Reroute { target, reason } => Action::Reroute { target, reason },
            v3::Action::AddHelpers { helpers } => Action::AddHelpers { helpers },
            v3::Action::Progress { note, public } => Action::Progress { note, public },
            v3::Action::RequestExtension { working_days, reason } => Action::RequestExtension { working_days, reason },
            v3::Action::DecideExtension { approve, note } => Action::DecideExtension { approve, note },
            v3::Action::Supervise { grade, note } => Action::Supervise { grade, note },
            v3::Action::Resolve { public_reply, internal_note } => Action::Resolve { public_reply, internal_note },
            v3::Action::Feedback { method, note, invite } => Action::Feedback { method, note, invite },
            v3::Action::Rate { rating, comment, result_rating } => Action::Rate { rating, comment, result_rating },
            v3::Action::Reopen { reason } => Action::Reopen { reason },
            v3::Action::Merge { into } => Action::Merge { into },
            v3::Action::Archive => Action::Archive,
            v3::Action::Attach { blob, name, mime, size } => Action::Attach { blob, name, mime, size },
            v3::Action::CitizenRate { token, rating, result_rating, comment } => Action::CitizenRate { token, rating, result_rating, comment },
            v3::Action::Appeal { reason } => Action::Appeal { reason },
            v3::Action::DecideAppeal { upheld, note } => Action::DecideAppeal { upheld, note },
        }
    }
}

/// The step as format 3 wrote it, if format 3 has it.
pub fn action_to_v3(a: &Action) -> Result<v3::Action, NotInFormat> {
    let needs = |what| NotInFormat { what, needs: a.format_needed(), format: 3 };
    Ok(match a.clone() {
        Action::File(f) => v3::Action::File(f),
        Action::SignFor => v3::Action::SignFor,
        Action::Route { window, requirements, due_ms } => v3::Action::Route { window, requirements, due_ms },
        Action::Dispatch { to, requirements, due_ms } => v3::Action::Dispatch { to, requirements, due_ms },
        Action::Escalate { reason } => v3::Action::Escalate { reason },
        Action::Return { reason } => v3::Action::Return { reason },
        Action::Reroute { target, reason } => v3::Action::Reroute { target, reason },
        Action::AddHelpers { helpers } => v3::Action::AddHelpers { helpers },
        Action::Progress { note, public } => v3::Action::Progress { note, public },
        Action::RequestExtension { working_days, reason } => v3::Action::RequestExtension { working_days, reason },
        Action::DecideExtension { approve, note } => v3::Action::DecideExtension { approve, note },
        Action::Supervise { grade, note } => v3::Action::Supervise { grade, note },
        Action::Resolve { public_reply, internal_note } => v3::Action::Resolve { public_reply, internal_note },
        Action::Feedback { method, note, invite } => v3::Action::Feedback { method, note, invite },
        Action::Rate { rating, comment, result_rating } => v3::Action::Rate { rating, comment, result_rating },
        Action::Reopen { reason } => v3::Action::Reopen { reason },
        Action::Merge { into } => v3::Action::Merge { into },
        Action::Archive => v3::Action::Archive,
        Action::Attach { blob, name, mime, size } => v3::Action::Attach { blob, name, mime, size },
        Action::CitizenRate { token, rating, result_rating, comment } => v3::Action::CitizenRate { token, rating, result_rating, comment },
        Action::Appeal { reason } => v3::Action::Appeal { reason },
        Action::DecideAppeal { upheld, note } => v3::Action::DecideAppeal { upheld, note },
        Action::ReplySupervision { .. } => return Err(needs("督办回复 (reply_supervision)")),
        Action::Decline { .. } => return Err(needs("不予受理 (decline)")),
        Action::Withdraw { .. } => return Err(needs("撤回 (withdraw)")),
        Action::Suspend { .. } => return Err(needs("中止 (suspend)")),
        Action::Resume { .. } => return Err(needs("恢复 (resume)")),
        Action::RequestAssistance { .. } => return Err(needs("协办 with deadlines (request_assistance)")),
        Action::ReplyAssistance { .. } => return Err(needs("协办回复 (reply_assistance)")),
        Action::SuperviseAssistance { .. } => return Err(needs("协办督办 (supervise_assistance)")),
        Action::MediationSession { .. } => return Err(needs("调解 (mediation_session)")),
        Action::MediationAgreement { .. } => return Err(needs("调解协议 (mediation_agreement)")),
        Action::ReferConfirmation { .. } => return Err(needs("申请司法确认 (refer_confirmation)")),
        Action::RecordConfirmation { .. } => return Err(needs("司法确认结果 (record_confirmation)")),
        Action::ReturnVisit { .. } => return Err(needs("回访 (return_visit)")),
    })
}

impl From<v3::CaseEvent> for CaseEvent {
    fn from(e: v3::CaseEvent) -> CaseEvent {
        CaseEvent { case: e.case, parents: e.parents, unit: e.unit, operator: e.operator, action: e.action.into(), policy: e.policy }
    }
}

pub fn case_event_to_v3(e: &CaseEvent) -> Result<v3::CaseEvent, NotInFormat> {
    Ok(v3::CaseEvent { case: e.case, parents: e.parents.clone(), unit: e.unit, operator: e.operator.clone(), action: action_to_v3(&e.action)?, policy: e.policy })
}

impl From<v3::Policy> for Policy {
    fn from(p: v3::Policy) -> Policy {
        Policy {
            version: p.version,
            categories: p.categories,
            windows: p.windows,
            deadlines: p.deadlines,
            supervision: p.supervision,
            repeat_window_days: p.repeat_window_days,
            report_grace_minutes: p.report_grace_minutes,
            calendar_warning_from: p.calendar_warning_from,
            calendars: p.calendars,
            gate: UpgradeGate::format_3(),
            supervision_reply: ReplyDeadlines::default(),
            decisions: DecisionRules::default(),
        }
    }
}

/// The policy as format 3 wrote it: only while nothing format 4 added is
/// set (the gate at 3, the reply deadlines at their defaults, which is
/// what a format-3 policy reads as).
pub fn policy_to_v3(p: &Policy) -> Result<v3::Policy, NotInFormat> {
    if p.gate != UpgradeGate::format_3() {
        return Err(NotInFormat { what: "the upgrade gate (finalizing)", needs: p.gate.write_format.max(4), format: 3 });
    }
    if p.supervision_reply != ReplyDeadlines::default() {
        return Err(NotInFormat { what: "督办 reply deadlines (supervision_reply)", needs: 4, format: 3 });
    }
    if p.decisions != DecisionRules::default() {
        return Err(NotInFormat { what: "the rules of 不予受理, 中止, 协办 and 回访 (decisions)", needs: 4, format: 3 });
    }
    Ok(v3::Policy {
        version: p.version,
        categories: p.categories.clone(),
        windows: p.windows.clone(),
        deadlines: p.deadlines.clone(),
        supervision: p.supervision.clone(),
        repeat_window_days: p.repeat_window_days,
        report_grace_minutes: p.report_grace_minutes,
        calendar_warning_from: p.calendar_warning_from,
        calendars: p.calendars.clone(),
    })
}
