//! The decisions of record format 4: 不予受理, 撤回, 中止/恢复, 协办 with
//! deadlines and replies, mediation (sessions, agreement, 司法确认, 回访).

// Test code throughout (the layers test reads a module's code up to its
// first test attribute).
#[cfg(test)]
use super::*;
use crate::case::{AgreementDoc, AssistTarget, Channel, Complexity, Fulfilment, Mediator, Place, RequestType, WithdrawalConfirmation};
use crate::identity::NodeKey;
use crate::kpi::{Counter, facts};
use crate::policy::{YearCalendar, format_china};
use crate::record::Header;

// 2026-11-02 09:00 China time (a Monday).
const T0: u64 = 1_793_581_200_000;
const MINUTE: u64 = 60_000;
const DAY: u64 = 86_400_000;

const TOWN: usize = 0;
const V1: usize = 1;
const V2: usize = 2;
const COUNTY: usize = 3;

/// A township with two villages below it and its county above, each
/// signing with its own key; the clock moves a minute per step unless set.
struct Tree {
    keys: Vec<(DivisionCode, NodeKey, u64, Option<RecordId>)>,
    clock: u64,
    policy: PolicySet,
    records: Vec<Record>,
}

impl Tree {
    fn new() -> Tree {
        let keys = ["330106010000", "330106010001", "330106010002", "330106000000"].iter().enumerate().map(|(i, c)| (c.parse().unwrap(), NodeKey::from_seed([i as u8 + 20; 32]), 0, None)).collect();
        Tree { keys, clock: T0, policy: Policy::default_policy().into(), records: Vec::new() }
    }

    fn code(&self, i: usize) -> DivisionCode {
        self.keys[i].0
    }

    fn sign(&mut self, unit: usize, case: Option<RecordId>, parents: Vec<RecordId>, action: Action) -> Record {
        self.clock += MINUTE;
        let policy = self.policy.current().version;
        let (code, key, seq, prev) = &mut self.keys[unit];
        *seq += 1;
        let header = Header { seq: *seq, prev: *prev, hlc: Hlc { wall_ms: self.clock, counter: 0 } };
        let r = Record::sign(key, header, Body::CaseEvent(CaseEvent { case, parents, unit: *code, operator: "op".into(), action, policy }));
        *prev = Some(r.id);
        r
    }

    /// Files a case at `unit` (a complaint received at T0).
    fn file(&mut self, unit: usize) {
        let filing = Filing {
            number: "330106010000-2026-000001".into(),
            title: "宅基地边界纠纷".into(),
            content: "两户因宅基地边界发生争执".into(),
            category: "0203".into(),
            request_type: RequestType::Complaint,
            channel: Channel::OnSite,
            urgency: Urgency::Normal,
            complexity: Complexity::General,
            place: Place::default(),
            occurred_at_ms: None,
            received_at_ms: T0,
            people_involved: 2,
            amount_fen: None,
            contact: None,
            intake: Default::default(),
        };
        let r = self.sign(unit, None, vec![], Action::File(Box::new(filing)));
        self.records = vec![r];
    }

    fn state(&self) -> CaseState {
        let refs: Vec<EventRef<'_>> = self.records.iter().filter_map(EventRef::from_record).collect();
        fold(&self.policy, &NoRevocations, &refs).unwrap()
    }

    /// Takes a step as `unit`; the outcome the fold gave it.
    fn step(&mut self, unit: usize, action: Action) -> Result<(), Rejection> {
        let st = self.state();
        let r = self.sign(unit, Some(st.id), st.heads.clone(), action);
        self.records.push(r);
        self.state().timeline.last().unwrap().outcome.clone()
    }

    /// The rule a refused step broke; the case is the same as before it.
    fn refused(&mut self, unit: usize, action: Action) -> &'static str {
        let before = self.state();
        let rule = self.step(unit, action).expect_err("refused").rule;
        let after = self.state();
        assert_eq!((before.status, &before.deadlines, &before.assists, &before.mediation), (after.status, &after.deadlines, &after.assists, &after.mediation), "a refused step changed the case");
        self.records.pop();
        rule
    }

    fn last_id(&self) -> RecordId {
        self.records.last().unwrap().id
    }
}

fn clock(st: &CaseState, kind: DeadlineKind) -> Deadline {
    st.deadlines.iter().rev().find(|d| d.kind == kind).cloned().unwrap_or_else(|| panic!("no {kind:?} clock"))
}

fn count(st: &CaseState, c: Counter) -> i64 {
    facts(st).iter().filter(|f| f.counter == c).map(|f| f.value).sum()
}

fn text() -> String {
    "…".into()
}

#[test]
fn every_new_step_needs_format_4_and_signs_in_it() {
    let key = NodeKey::from_seed([7; 32]);
    let id = RecordId([3; 32]);
    let m = vec![Mediator { account: "wang".into(), name: "王调解".into() }];
    let steps = vec![
        Action::Decline { referral: "court".into(), reason: text() },
        Action::Withdraw { confirmation: WithdrawalConfirmation::Phone, reason: text() },
        Action::Suspend { reason: "appraisal".into(), note: text(), expected_ms: T0 },
        Action::Resume { note: text() },
        Action::RequestAssistance { helpers: vec![AssistTarget { helper: RouteTarget::Window("justice".into()), working_days: 3 }], requirements: text() },
        Action::ReplyAssistance { request: id, helper: RouteTarget::Unit("330106010001".parse().unwrap()), reply: text() },
        Action::SuperviseAssistance { request: id, helper: RouteTarget::Window("justice".into()), grade: SuperviseGrade::Yellow, note: text() },
        Action::MediationSession { held_ms: T0, mediators: m.clone(), attendees: text(), notes: text() },
        Action::MediationAgreement { document: BlobHash([1; 32]), signatures: vec![BlobHash([2; 32])], mediators: m, signed_ms: T0 },
        Action::ReferConfirmation { court: "区人民法院".into(), note: text() },
        Action::RecordConfirmation { confirmed: true, ruling: "(2026)浙0106民特1号".into(), ruled_ms: T0, note: text() },
        Action::ReturnVisit { fulfilment: Fulfilment::Kept, method: "phone".into(), note: text() },
    ];
    let names: std::collections::BTreeSet<&str> = steps.iter().map(|a| a.as_str()).collect();
    assert_eq!(names.len(), steps.len());
    for (i, action) in steps.into_iter().enumerate() {
        assert_eq!(action.format_needed(), 4, "{}", action.as_str());
        assert!(crate::format::v4::action_to_v3(&action).is_err(), "{} must not be written in format 3", action.as_str());
        let body = Body::CaseEvent(CaseEvent { case: Some(id), parents: vec![id], unit: "330106010000".parse().unwrap(), operator: "op".into(), action: action.clone(), policy: 1 });
        let header = Header { seq: i as u64 + 1, prev: (i > 0).then_some(id), hlc: Hlc { wall_ms: T0, counter: 0 } };
        assert!(Record::sign_as(&key, 3, header, body.clone()).is_err(), "{} signed in format 3", action.as_str());
        let r = Record::sign(&key, header, body);
        assert_eq!(r.format, 4);
        let back = Record::decode(r.bytes()).unwrap();
        assert_eq!(back.case_event().map(|e| &e.action), Some(&action));
        assert_eq!(crate::record::needed_for(&back.body), 4);
    }
}

#[test]
fn a_policy_with_decision_rules_of_its_own_needs_format_4() {
    let mut p = Policy::default_policy();
    assert!(crate::format::v4::policy_to_v3(&p).is_ok());
    p.decisions.return_visit_days = 15;
    assert!(crate::format::v4::policy_to_v3(&p).is_err());
    let mut p = Policy::default_policy();
    p.decisions.referrals[0].retired = true;
    assert!(crate::format::v4::policy_to_v3(&p).is_err());
    // A referral code is never removed, only retired.
    let mut next = Policy::default_policy();
    next.version = 2;
    next.decisions.referrals.remove(0);
    assert!(next.validate(Some(&Policy::default_policy())).is_err());
}

#[test]
fn a_declined_case_is_received_never_resolved_or_overdue_and_its_clocks_stop() {
    let mut t = Tree::new();
    t.file(V1);
    t.step(V1, Action::SignFor).unwrap();
    assert_eq!(t.refused(V2, Action::Decline { referral: "court".into(), reason: text() }), "only-owner");
    assert_eq!(t.refused(V1, Action::Decline { referral: "moon".into(), reason: text() }), "unknown-referral");
    assert_eq!(t.refused(V1, Action::Decline { referral: "court".into(), reason: " ".into() }), "field-required");
    // A retired referral is refused under the version that retired it.
    let mut v2 = Policy::default_policy();
    v2.version = 2;
    v2.decisions.referrals[0].retired = true;
    t.policy.insert(v2);
    assert_eq!(t.refused(V1, Action::Decline { referral: "court".into(), reason: text() }), "retired-referral");
    t.step(V1, Action::Decline { referral: "police".into(), reason: "涉嫌违法犯罪，应由公安机关处理".into() }).unwrap();
    let st = t.state();
    assert_eq!(st.status, Status::Declined);
    assert!(st.status.is_final() && !st.status.is_open());
    assert_eq!(st.declined.as_ref().map(|d| (d.referral.as_str(), d.unit)), Some(("police", t.code(V1))));
    assert!(st.deadlines.iter().all(|d| !d.is_running()), "every clock stopped");
    assert!(!st.is_overdue(T0 + 100 * DAY));
    assert_eq!((count(&st, Counter::Received), count(&st, Counter::Declined)), (1, 1));
    assert_eq!((count(&st, Counter::Routed), count(&st, Counter::Resolved), count(&st, Counter::Closed)), (0, 0, 0));
    assert_eq!(t.refused(V1, Action::Progress { note: text(), public: false }), "case-is-closed");
}

#[test]
fn a_withdrawal_closes_the_case_from_any_open_status_by_its_owner() {
    let mut t = Tree::new();
    t.file(V1);
    t.step(V1, Action::SignFor).unwrap();
    t.step(V1, Action::Escalate { reason: "需要乡镇协调".into() }).unwrap();
    assert_eq!(t.refused(V1, Action::Withdraw { confirmation: WithdrawalConfirmation::Phone, reason: text() }), "only-owner");
    t.step(TOWN, Action::SignFor).unwrap();
    t.step(TOWN, Action::Withdraw { confirmation: WithdrawalConfirmation::Phone, reason: "当事人来电表示双方已自行和解".into() }).unwrap();
    let st = t.state();
    assert_eq!(st.status, Status::Withdrawn);
    assert_eq!(st.withdrawn.as_ref().map(|w| (w.confirmation, w.unit)), Some((WithdrawalConfirmation::Phone, t.code(TOWN))));
    assert!(!st.is_overdue(T0 + 100 * DAY));
    assert_eq!((count(&st, Counter::Withdrawn), count(&st, Counter::Resolved)), (1, 0));
    assert_eq!(facts(&st).iter().find(|f| f.counter == Counter::Withdrawn).map(|f| f.unit), Some(t.code(TOWN)));
}

#[test]
fn suspend_keeps_the_working_days_left_and_resume_restarts_them() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    t.step(TOWN, Action::Route { window: "natural_resources".into(), requirements: text(), due_ms: None }).unwrap();
    // Filed Monday 2 Nov: 7 working days → Wednesday 11 Nov.
    assert_eq!(format_china(clock(&t.state(), DeadlineKind::Resolution).due_ms.unwrap()), "2026-11-11 23:59");
    let expected = T0 + 30 * DAY;
    assert_eq!(t.refused(V1, Action::Suspend { reason: "appraisal".into(), note: text(), expected_ms: expected }), "only-owner");
    assert_eq!(t.refused(TOWN, Action::Suspend { reason: "weather".into(), note: text(), expected_ms: expected }), "unknown-suspension-reason");
    assert_eq!(t.refused(TOWN, Action::Suspend { reason: "appraisal".into(), note: text(), expected_ms: T0 }), "expected-in-future");
    assert_eq!(t.refused(TOWN, Action::Suspend { reason: "appraisal".into(), note: text(), expected_ms: T0 + 120 * DAY }), "suspension-length");
    assert_eq!(t.refused(TOWN, Action::Suspend { reason: "appraisal".into(), note: " ".into(), expected_ms: expected }), "field-required");
    assert_eq!(t.refused(TOWN, Action::Resume { note: text() }), "status");
    // Wednesday 4 Nov: Thu 5, Fri 6, Mon 9, Tue 10, Wed 11 are left.
    t.clock = T0 + 2 * DAY;
    t.step(TOWN, Action::Suspend { reason: "appraisal".into(), note: "等待土地测绘鉴定".into(), expected_ms: expected }).unwrap();
    let st = t.state();
    assert_eq!(st.status, Status::Suspended);
    let d = clock(&st, DeadlineKind::Resolution);
    assert_eq!(d.paused.and_then(|p| p.left), Some(Left::WorkingDays(5)));
    assert!(!d.is_running() && d.clock(T0 + 60 * DAY, 75) == Clock::Paused);
    assert!(!st.is_overdue(T0 + 25 * DAY), "a paused clock is never overdue");
    assert_eq!(clock(&st, DeadlineKind::Suspension).due_ms, Some(expected));
    // Steps that need the case handled wait for 恢复.
    assert_eq!(t.refused(TOWN, Action::Resolve { public_reply: text(), internal_note: String::new() }), "status");
    assert_eq!(t.refused(TOWN, Action::Suspend { reason: "appraisal".into(), note: text(), expected_ms: expected }), "status");
    // Resumed Monday 23 Nov: five working days from the next day → Mon 30 Nov.
    t.clock = T0 + 21 * DAY;
    t.step(TOWN, Action::Resume { note: "鉴定结论已出".into() }).unwrap();
    let st = t.state();
    assert_eq!(st.status, Status::Handling, "back to where it was");
    let d = clock(&st, DeadlineKind::Resolution);
    assert!(d.is_running() && d.paused.is_none());
    assert_eq!(format_china(d.due_ms.unwrap()), "2026-11-30 23:59");
    assert_eq!(clock(&st, DeadlineKind::Suspension).met_on_time(), Some(true));
    t.step(TOWN, Action::Resolve { public_reply: "已调处".into(), internal_note: String::new() }).unwrap();
    let st = t.state();
    assert_eq!((count(&st, Counter::Suspended), count(&st, Counter::Resumed), count(&st, Counter::ResumedOnTime)), (1, 1, 1));
    assert_eq!((count(&st, Counter::ResolvedOnTime), count(&st, Counter::ClosedLate)), (1, 0), "the days of the 中止 are not counted");
}

#[test]
fn a_clock_past_due_keeps_running_through_a_suspension() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    t.clock = T0 + 15 * DAY;
    t.step(TOWN, Action::Suspend { reason: "litigation".into(), note: text(), expected_ms: T0 + 40 * DAY }).unwrap();
    let d = clock(&t.state(), DeadlineKind::Resolution);
    assert!(d.paused.is_none() && d.is_overdue(T0 + 15 * DAY + MINUTE));
}

#[test]
fn a_resumed_clock_waits_for_next_years_calendar_and_is_computed_when_it_comes() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    // Suspended Tuesday 3 Nov with 6 working days left; resumed in 2027,
    // which the policy has no calendar for.
    t.clock = T0 + DAY;
    t.step(TOWN, Action::Suspend { reason: "other_authority".into(), note: text(), expected_ms: T0 + 80 * DAY }).unwrap();
    assert_eq!(clock(&t.state(), DeadlineKind::Resolution).paused.and_then(|p| p.left), Some(Left::WorkingDays(6)));
    // 2027-01-11 09:00 China time, a Monday.
    t.clock = 1_799_629_200_000;
    t.step(TOWN, Action::Resume { note: text() }).unwrap();
    let d = clock(&t.state(), DeadlineKind::Resolution);
    assert_eq!((d.due_ms, d.waiting_year), (None, Some(2027)));
    assert_eq!(t.state().waiting_years(), vec![2027]);
    let mut v2 = Policy::default_policy();
    v2.version = 2;
    v2.calendars.push(YearCalendar { year: 2027, source: "test".into(), holidays: vec![], makeup_workdays: vec![] });
    t.policy.insert(v2);
    // Tue 12 … Mon 18, Tue 19 Jan: the sixth working day.
    assert_eq!(format_china(clock(&t.state(), DeadlineKind::Resolution).due_ms.unwrap()), "2027-01-19 23:59");
}

#[test]
fn assistance_has_a_deadline_per_helper_and_replies_meet_it() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    let helpers = |v: Vec<(RouteTarget, u32)>| v.into_iter().map(|(helper, working_days)| AssistTarget { helper, working_days }).collect::<Vec<_>>();
    let (v1, v2) = (RouteTarget::Unit(t.code(V1)), RouteTarget::Unit(t.code(V2)));
    let justice = RouteTarget::Window("justice".into());
    assert_eq!(t.refused(V1, Action::RequestAssistance { helpers: helpers(vec![(v2.clone(), 3)]), requirements: text() }), "only-owner");
    let county = RouteTarget::Unit(t.code(COUNTY));
    assert_eq!(t.refused(TOWN, Action::RequestAssistance { helpers: helpers(vec![(county, 3)]), requirements: text() }), "helper-below-owner");
    assert_eq!(t.refused(TOWN, Action::RequestAssistance { helpers: helpers(vec![(v1.clone(), 0)]), requirements: text() }), "assistance-length");
    assert_eq!(t.refused(TOWN, Action::RequestAssistance { helpers: helpers(vec![(v1.clone(), 3), (v1.clone(), 2)]), requirements: text() }), "helper-twice");
    assert_eq!(t.refused(TOWN, Action::RequestAssistance { helpers: helpers(vec![(RouteTarget::Window("nowhere".into()), 3)]), requirements: text() }), "unknown-window");
    t.step(TOWN, Action::RequestAssistance { helpers: helpers(vec![(v1.clone(), 3), (v2.clone(), 5), (justice.clone(), 2)]), requirements: "协助核实宅基地边界".into() }).unwrap();
    let request = t.last_id();
    let st = t.state();
    assert_eq!(st.assists.len(), 3);
    assert!(st.helpers.contains(&v1) && st.helpers.contains(&justice));
    let clocks: Vec<(DivisionCode, Option<String>, String)> =
        st.deadlines.iter().filter(|d| d.kind == DeadlineKind::Assistance).map(|d| (d.unit, d.window.clone(), format_china(d.due_ms.unwrap()))).collect();
    assert_eq!(
        clocks,
        vec![(t.code(V1), None, "2026-11-05 23:59".to_string()), (t.code(V2), None, "2026-11-09 23:59".to_string()), (t.code(TOWN), Some("justice".to_string()), "2026-11-04 23:59".to_string()),]
    );
    assert_eq!(t.refused(TOWN, Action::RequestAssistance { helpers: helpers(vec![(v1.clone(), 3)]), requirements: text() }), "assistance-pending");
    // Each helper replies for itself; the window's center for the window.
    assert_eq!(t.refused(V2, Action::ReplyAssistance { request, helper: v1.clone(), reply: text() }), "reply-by-helper");
    assert_eq!(t.refused(V1, Action::ReplyAssistance { request, helper: justice.clone(), reply: text() }), "reply-by-helper");
    t.step(V1, Action::ReplyAssistance { request, helper: v1.clone(), reply: "已实地核实边界".into() }).unwrap();
    assert_eq!(t.refused(V1, Action::ReplyAssistance { request, helper: v1.clone(), reply: text() }), "assistance-replied");
    t.step(TOWN, Action::ReplyAssistance { request, helper: justice.clone(), reply: "司法所已出具调解意见".into() }).unwrap();
    // Village 2 is late: its clock runs past due; the township chases it.
    assert!(t.state().is_overdue(T0 + 8 * DAY));
    assert_eq!(t.refused(V1, Action::SuperviseAssistance { request, helper: v2.clone(), grade: SuperviseGrade::Normal, note: text() }), "supervise-by-requester");
    t.step(TOWN, Action::SuperviseAssistance { request, helper: v2.clone(), grade: SuperviseGrade::Yellow, note: "请立即回复".into() }).unwrap();
    assert_eq!(t.refused(TOWN, Action::SuperviseAssistance { request, helper: v1.clone(), grade: SuperviseGrade::Yellow, note: text() }), "assistance-not-pending");
    t.clock = T0 + 8 * DAY;
    t.step(V2, Action::ReplyAssistance { request, helper: v2.clone(), reply: "迟复：已协调".into() }).unwrap();
    let st = t.state();
    assert!(st.assists.iter().all(|a| !a.is_pending()));
    assert_eq!(st.timeline.iter().filter(|e| e.window.as_deref() == Some("justice")).count(), 1, "the window's reply is the window's");
    let by = |c: Counter, unit: DivisionCode| facts(&st).iter().filter(|f| f.counter == c && f.unit == unit).map(|f| f.value).sum::<i64>();
    assert_eq!((by(Counter::AssistanceRequested, t.code(V1)), by(Counter::AssistanceReplied, t.code(V1)), by(Counter::AssistanceRepliedOnTime, t.code(V1))), (1, 1, 1));
    assert_eq!((by(Counter::AssistanceReplied, t.code(V2)), by(Counter::AssistanceRepliedOnTime, t.code(V2)), by(Counter::AssistanceSupervised, t.code(V2))), (1, 0, 1));
    assert_eq!(by(Counter::AssistanceRepliedOnTime, t.code(TOWN)), 1);
}

#[test]
fn assistance_unanswered_ends_when_the_case_moves_on() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    t.step(TOWN, Action::RequestAssistance { helpers: vec![AssistTarget { helper: RouteTarget::Unit(t.code(V1)), working_days: 3 }], requirements: text() }).unwrap();
    let request = t.last_id();
    t.step(TOWN, Action::Escalate { reason: "需要区里协调".into() }).unwrap();
    let st = t.state();
    assert!(st.assists[0].ended_by.is_some());
    assert!(st.deadlines.iter().filter(|d| d.kind == DeadlineKind::Assistance).all(|d| d.cancelled));
    assert_eq!(count(&st, Counter::AssistanceReplied), 0);
    // A late answer is still taken (it informs), uncounted.
    t.step(V1, Action::ReplyAssistance { request, helper: RouteTarget::Unit(t.code(V1)), reply: text() }).unwrap();
    assert_eq!(count(&t.state(), Counter::AssistanceReplied), 0);
}

#[test]
fn mediation_sessions_an_agreement_its_confirmation_and_return_visit() {
    let mut t = Tree::new();
    t.file(TOWN);
    t.step(TOWN, Action::SignFor).unwrap();
    let m = vec![Mediator { account: "wang".into(), name: "王调解".into() }];
    assert_eq!(t.refused(TOWN, Action::MediationSession { held_ms: T0, mediators: vec![], attendees: text(), notes: text() }), "mediators");
    assert_eq!(t.refused(TOWN, Action::MediationSession { held_ms: T0 + DAY, mediators: m.clone(), attendees: text(), notes: text() }), "date-in-future");
    assert_eq!(t.refused(V1, Action::MediationSession { held_ms: T0, mediators: m.clone(), attendees: text(), notes: text() }), "only-owner");
    t.step(TOWN, Action::MediationSession { held_ms: T0, mediators: m.clone(), attendees: "申请人张某、被申请人李某".into(), notes: "双方陈述意见".into() }).unwrap();
    let doc = AgreementDoc { terms: "李某于十日内拆除越界围墙".into(), ..Default::default() };
    let document = BlobHash::of(&doc.to_bytes());
    let scan = BlobHash([5; 32]);
    let agreement = |sigs: Vec<BlobHash>| Action::MediationAgreement { document, signatures: sigs, mediators: vec![Mediator { account: "wang".into(), name: "王调解".into() }], signed_ms: T0 };
    assert_eq!(t.refused(TOWN, agreement(vec![])), "signatures-required");
    assert_eq!(t.refused(TOWN, agreement(vec![scan])), "signature-not-attached");
    assert_eq!(t.refused(TOWN, Action::ReturnVisit { fulfilment: Fulfilment::Kept, method: "phone".into(), note: text() }), "no-agreement");
    t.step(TOWN, Action::Attach { blob: scan, name: "签字页.pdf".into(), mime: "application/pdf".into(), size: 10 }).unwrap();
    t.step(TOWN, agreement(vec![scan])).unwrap();
    assert_eq!(t.refused(TOWN, agreement(vec![scan])), "one-agreement");
    let visit = clock(&t.state(), DeadlineKind::ReturnVisit);
    assert_eq!(visit.due_ms, Some(T0 + 30 * DAY));
    t.step(TOWN, Action::Resolve { public_reply: "经调解达成协议".into(), internal_note: String::new() }).unwrap();
    // After resolution the mediating unit refers it to the court.
    assert_eq!(t.refused(V1, Action::ReferConfirmation { court: "区人民法院".into(), note: text() }), "mediating-unit");
    assert_eq!(t.refused(TOWN, Action::RecordConfirmation { confirmed: true, ruling: "x".into(), ruled_ms: T0, note: text() }), "no-confirmation-referral");
    t.step(TOWN, Action::ReferConfirmation { court: "区人民法院".into(), note: String::new() }).unwrap();
    t.step(TOWN, Action::Feedback { method: "phone".into(), note: text(), invite: None }).unwrap();
    t.step(TOWN, Action::Rate { rating: crate::case::Rating::Satisfied, comment: String::new(), result_rating: None }).unwrap();
    assert_eq!(t.refused(TOWN, Action::Archive), "archive-needs-confirmation");
    t.clock = T0 + 5 * DAY;
    t.step(TOWN, Action::RecordConfirmation { confirmed: true, ruling: "(2026)浙0106民特12号".into(), ruled_ms: T0 + 3 * DAY, note: String::new() }).unwrap();
    assert_eq!(t.refused(TOWN, Action::Archive), "archive-needs-return-visit");
    t.clock = T0 + 29 * DAY;
    t.step(TOWN, Action::ReturnVisit { fulfilment: Fulfilment::Kept, method: "上门".into(), note: "围墙已拆除".into() }).unwrap();
    t.step(TOWN, Action::Archive).unwrap();
    let st = t.state();
    assert_eq!(st.status, Status::Archived);
    for (c, n) in [
        (Counter::MediationSessions, 1),
        (Counter::MediationAgreements, 1),
        (Counter::ConfirmationReferred, 1),
        (Counter::Confirmed, 1),
        (Counter::ReturnVisits, 1),
        (Counter::ReturnVisitsOnTime, 1),
        (Counter::AgreementsKept, 1),
    ] {
        assert_eq!(count(&st, c), n, "{c:?}");
    }
}
