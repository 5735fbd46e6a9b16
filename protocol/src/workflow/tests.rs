use super::*;
use crate::case::{Channel, Complexity, Place, RequestType, Urgency};
use crate::identity::NodeKey;
use crate::record::Header;
use proptest::prelude::*;

/// Signs events as several units, keeping each author's chain.
struct Units {
    keys: Vec<(DivisionCode, NodeKey, u64, Option<RecordId>)>,
    clock: u64,
    /// The policy version the events name.
    policy: u32,
}

// 2026-11-02 09:00 China time (a Monday).
const T0: u64 = 1_794_906_000_000;

impl Units {
    fn new(codes: &[&str]) -> Units {
        let keys = codes.iter().enumerate().map(|(i, c)| (c.parse().unwrap(), NodeKey::from_seed([i as u8 + 1; 32]), 0, None)).collect();
        Units { keys, clock: T0, policy: 1 }
    }

    fn code(&self, i: usize) -> DivisionCode {
        self.keys[i].0
    }

    fn event(&mut self, unit: usize, operator: &str, case: Option<RecordId>, parents: Vec<RecordId>, action: Action) -> Record {
        self.clock += 60_000;
        let policy = self.policy;
        let (code, key, seq, prev) = &mut self.keys[unit];
        *seq += 1;
        let header = Header { seq: *seq, prev: *prev, hlc: Hlc { wall_ms: self.clock, counter: 0 } };
        let body = Body::CaseEvent(CaseEvent { case, parents, unit: *code, operator: operator.into(), action, policy });
        let r = Record::sign(key, header, body);
        *prev = Some(r.id);
        r
    }
}

fn filing(urgency: Urgency) -> Action {
    Action::File(Box::new(Filing {
        number: "330102001001-2026-000001".into(),
        title: "邻居装修噪音扰民".into(),
        content: "楼上装修每天早上七点开始施工".into(),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::OnSite,
        urgency,
        complexity: Complexity::General,
        place: Place { address: "留下街道某小区".into(), lat_e6: Some(30_250_000), lon_e6: Some(120_050_000) },
        occurred_at_ms: None,
        received_at_ms: T0,
        people_involved: 2,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    }))
}

/// Applies events one by one, as a node does, returning each outcome.
struct Case {
    policy: PolicySet,
    records: Vec<Record>,
}

impl Case {
    fn state(&self) -> CaseState {
        let refs: Vec<EventRef<'_>> = self.records.iter().filter_map(EventRef::from_record).collect();
        fold(&self.policy, &NoRevocations, &refs).unwrap()
    }

    fn step(&mut self, units: &mut Units, unit: usize, operator: &str, action: Action) -> Result<(), Rejection> {
        let st = self.state();
        let r = units.event(unit, operator, Some(st.id), st.heads.clone(), action);
        self.records.push(r);
        self.state().timeline.last().unwrap().outcome.clone()
    }
}

fn start(units: &mut Units, unit: usize, urgency: Urgency) -> Case {
    let r = units.event(unit, "op1", None, vec![], filing(urgency));
    Case { policy: Policy::default_policy().into(), records: vec![r] }
}

/// A calendar with no holidays: every weekday works.
fn plain_calendar(year: u16) -> crate::policy::YearCalendar {
    crate::policy::YearCalendar { year, source: "test".into(), holidays: vec![], makeup_workdays: vec![] }
}

fn resolution(st: &CaseState) -> Deadline {
    st.deadlines.iter().find(|d| matches!(d.kind, DeadlineKind::Resolution) && !d.cancelled).cloned().unwrap()
}

/// Each clock keeps the rules of the version its step named: a year that
/// version lacks waits, is filled from the first later version that has
/// it, and a computed due time never moves when a later version changes the
/// deadline table or that year's calendar.
#[test]
fn clocks_across_policy_versions() {
    let mut u = Units::new(&["330102001000"]);
    // Monday 2026-12-28 09:00 China time: 7 working days run into 2027.
    u.clock = 1_798_419_600_000 - 60_000;
    let r = u.event(
        0,
        "op1",
        None,
        vec![],
        match filing(Urgency::Normal) {
            Action::File(mut f) => {
                f.received_at_ms = 1_798_419_600_000;
                Action::File(f)
            }
            a => a,
        },
    );
    let v1 = Policy::default_policy();
    let mut c = Case { policy: v1.clone().into(), records: vec![r] };
    let st = c.state();
    let d = resolution(&st);
    assert_eq!((d.due_ms, d.waiting_year), (None, Some(2027)));
    assert_eq!(d.clock(0, 75), Clock::WaitingForCalendar);
    assert_eq!(st.waiting_years(), vec![2027]);
    let facts = crate::kpi::facts(&st);
    assert!(facts.iter().any(|f| f.counter == crate::kpi::Counter::WaitingForCalendar && f.value == 1), "{facts:?}");
    // An extension approved while waiting is not lost.
    c.step(&mut u, 0, "op1", Action::SignFor).unwrap();
    c.step(&mut u, 0, "op1", Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::RequestExtension { working_days: 2, reason: "需要勘查".into() }).unwrap();
    c.step(&mut u, 0, "leader", Action::DecideExtension { approve: true, note: "同意".into() }).unwrap();
    assert_eq!(resolution(&c.state()).due_ms, None);

    // v2 adds 2027 (no holidays): 29, 30, 31 Dec, then 1 Jan (a Friday) and
    // 4–8 Jan: 7 + 2 working days end on Friday 2027-01-08.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.calendars.push(plain_calendar(2027));
    let mut set: PolicySet = v1.clone().into();
    set.insert(v2.clone());
    c.policy = set.clone();
    let due = resolution(&c.state()).due_ms.unwrap();
    assert_eq!(crate::policy::format_china(due), "2027-01-08 23:59");
    assert!(c.state().waiting_years().is_empty());

    // v3 changes the table and makes 2027-01-01 a holiday: the clock started
    // under v1 (2027 filled from v2) does not move.
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.deadlines.resolution_working_days = 20;
    v3.calendars[2].holidays.push(crate::policy::Holiday { date: 20270101, name: "元旦".into() });
    set.insert(v3);
    c.policy = set.clone();
    assert_eq!(resolution(&c.state()).due_ms, Some(due));

    // A version the node does not hold yet: the case says so.
    u.policy = 9;
    c.step(&mut u, 0, "op1", Action::Progress { note: "已联系".into(), public: false }).unwrap();
    assert_eq!(c.state().policy_missing, Some(9));
}

fn rule(r: Result<(), Rejection>) -> &'static str {
    r.expect_err("expected a rejection").rule
}

#[test]
fn whole_workflow_at_one_center() {
    let mut u = Units::new(&["330102001000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    assert_eq!(c.state().status, Status::AwaitingReceipt);
    c.step(&mut u, 0, "op1", Action::SignFor).unwrap();
    c.step(&mut u, 0, "op1", Action::Route { window: "justice".into(), requirements: "调解".into(), due_ms: None }).unwrap();
    assert_eq!(c.state().status, Status::Handling);
    c.step(&mut u, 0, "op1", Action::Progress { note: "已联系双方".into(), public: true }).unwrap();
    c.step(&mut u, 0, "op1", Action::RequestExtension { working_days: 3, reason: "需要现场勘查".into() }).unwrap();
    // The requester may not approve their own request.
    assert_eq!(rule(c.step(&mut u, 0, "op1", Action::DecideExtension { approve: true, note: "同意".into() })), "no-self-approval");
    let due_before = c.state().deadlines.iter().find(|d| d.kind == DeadlineKind::Resolution).unwrap().due_ms.unwrap();
    c.step(&mut u, 0, "leader", Action::DecideExtension { approve: true, note: "同意".into() }).unwrap();
    let res = c.state().deadlines.iter().find(|d| d.kind == DeadlineKind::Resolution).cloned().unwrap();
    assert!(res.due_ms.unwrap() > due_before);
    assert_eq!(res.extended_working_days, 3);
    c.step(&mut u, 0, "leader", Action::Supervise { grade: SuperviseGrade::Yellow, note: "加快办理".into() }).unwrap();
    c.step(&mut u, 0, "op1", Action::Resolve { public_reply: "已调解".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op1", Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Rate { rating: Rating::Unsatisfied, comment: "仍有噪音".into(), result_rating: None }).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op1", Action::Archive)), "archive-needs-satisfied");
    c.step(&mut u, 0, "op1", Action::Reopen { reason: "复核后重办".into() }).unwrap();
    assert_eq!(c.state().status, Status::Handling);
    assert_eq!(c.state().reopens, 1);
    c.step(&mut u, 0, "op1", Action::Resolve { public_reply: "已限定施工时间".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op1", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Archive).unwrap();
    let st = c.state();
    assert_eq!(st.status, Status::Archived);
    assert_eq!(st.supervision, Some(SuperviseGrade::Yellow));
    assert!(st.deadlines.iter().all(|d| !d.is_running()));
    assert_eq!(rule(c.step(&mut u, 0, "op1", Action::Progress { note: "x".into(), public: false })), "case-is-closed");
}

#[test]
fn authority_rules() {
    // village, its township, another village of that township, the county.
    let mut u = Units::new(&["330102001001", "330102001000", "330102001002", "330102000000"]);
    let mut c = start(&mut u, 0, Urgency::Urgent);
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Route { window: "police".into(), requirements: String::new(), due_ms: None })), "status");
    assert_eq!(rule(c.step(&mut u, 1, "op", Action::SignFor)), "only-owner");
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Route { window: "nowhere".into(), requirements: String::new(), due_ms: None })), "unknown-window");
    assert_eq!(rule(c.step(&mut u, 2, "op", Action::Resolve { public_reply: "x".into(), internal_note: String::new() })), "only-owner");
    assert_eq!(rule(c.step(&mut u, 2, "op", Action::Supervise { grade: SuperviseGrade::Normal, note: "x".into() })), "supervisor-is-ancestor");
    let other_village = u.code(2);
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Dispatch { to: other_village, requirements: String::new(), due_ms: None })), "dispatch-to-descendant");
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Escalate { reason: " ".into() })), "field-required");
    // Escalate village → township → county; the county dispatches down to the other village.
    c.step(&mut u, 0, "op", Action::Escalate { reason: "涉及多方".into() }).unwrap();
    assert_eq!(c.state().owner, u.code(1));
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Resolve { public_reply: "x".into(), internal_note: String::new() })), "only-owner");
    c.step(&mut u, 1, "op", Action::SignFor).unwrap();
    c.step(&mut u, 3, "op", Action::Supervise { grade: SuperviseGrade::Red, note: "尽快".into() }).unwrap();
    c.step(&mut u, 1, "op", Action::Escalate { reason: "需县级协调".into() }).unwrap();
    c.step(&mut u, 3, "op", Action::SignFor).unwrap();
    c.step(&mut u, 3, "op", Action::Dispatch { to: other_village, requirements: "就近处置".into(), due_ms: None }).unwrap();
    // The receiving village disputes it and returns it.
    c.step(&mut u, 2, "op", Action::Return { reason: "不属于本村".into() }).unwrap();
    let st = c.state();
    assert_eq!((st.owner, st.status, st.returns), (u.code(3), Status::Returned, 1));
    c.step(&mut u, 3, "op", Action::Reroute { target: RouteTarget::Window("police".into()), reason: "由公安处理".into() }).unwrap();
    c.step(&mut u, 3, "op", Action::Resolve { public_reply: "已处置".into(), internal_note: String::new() }).unwrap();
    // The filing village alone gives the feedback and records the rating:
    // the county that resolved it may not (one authority per step, and no
    // unit rates its own work).
    assert_eq!(rule(c.step(&mut u, 3, "op", Action::Feedback { method: "visit".into(), note: "x".into(), invite: None })), "only-filing-center");
    c.step(&mut u, 0, "op", Action::Feedback { method: "visit".into(), note: "已上门告知".into(), invite: None }).unwrap();
    assert_eq!(rule(c.step(&mut u, 3, "op", Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None })), "only-filing-center");
    c.step(&mut u, 0, "op", Action::Rate { rating: Rating::Unsatisfied, comment: String::new(), result_rating: None }).unwrap();
    // Re-handling is the filing center's call too (not the township's nor the county's).
    for other in [1, 3] {
        assert_eq!(rule(c.step(&mut u, other, "op", Action::Reopen { reason: "复核".into() })), "only-filing-center");
    }
    c.step(&mut u, 0, "op", Action::Reopen { reason: "当事人不满意".into() }).unwrap();
    // The county handles it again, and the village closes the loop.
    c.step(&mut u, 3, "op", Action::Resolve { public_reply: "已再次处置".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op", Action::Feedback { method: "visit".into(), note: "已告知".into(), invite: None }).unwrap();
    c.step(&mut u, 0, "op", Action::Rate { rating: Rating::Basic, comment: String::new(), result_rating: None }).unwrap();
    let st = c.state();
    assert_eq!(st.units_handled, vec![u.code(0), u.code(1), u.code(3), u.code(2)]);
    assert_eq!(st.highest_level, Level::County);
    assert_eq!(st.escalations, 2);
    assert_eq!(st.resolved_by, Some(u.code(3)));
}

#[test]
fn city_cannot_escalate_and_merge_into_self_is_refused() {
    let mut u = Units::new(&["330100000000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Escalate { reason: "x".into() })), "no-level-above");
    let id = c.state().id;
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Merge { into: id })), "merge-into-other");
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Return { reason: "x".into() })), "nothing-to-return");
}

#[test]
fn concurrent_conflicting_steps_have_one_winner() {
    // Township and village both act on the same head: the village resolves
    // while the township (an ancestor, not the owner) also tries to.
    let mut u = Units::new(&["330102001001", "330102001000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    let st = c.state();
    let a = u.event(0, "op", Some(st.id), st.heads.clone(), Action::Escalate { reason: "上报".into() });
    let b = u.event(0, "op", Some(st.id), st.heads.clone(), Action::Resolve { public_reply: "已解决".into(), internal_note: String::new() });
    c.records.push(a.clone());
    c.records.push(b.clone());
    let st = c.state();
    let accepted: Vec<_> = st.timeline.iter().filter(|t| t.id == a.id || t.id == b.id).map(|t| t.outcome.is_ok()).collect();
    assert_eq!(accepted.iter().filter(|x| **x).count(), 1, "exactly one of two conflicting steps wins");
    assert_eq!(st.heads.len(), 2);
}

#[test]
fn fold_refuses_foreign_and_orphan_events() {
    let mut u = Units::new(&["330102001000"]);
    let c1 = start(&mut u, 0, Urgency::Normal);
    let c2 = start(&mut u, 0, Urgency::Normal);
    let policy: PolicySet = Policy::default_policy().into();
    let both: Vec<Record> = c1.records.iter().chain(c2.records.iter()).cloned().collect();
    let refs: Vec<EventRef<'_>> = both.iter().filter_map(EventRef::from_record).collect();
    assert_eq!(fold(&policy, &NoRevocations, &refs).err(), Some(FoldError::NoSingleFiling(2)));
    let orphan = u.event(0, "op", Some(c1.records[0].id), vec![RecordId([9; 32])], Action::SignFor);
    let recs = [c1.records[0].clone(), orphan];
    let refs: Vec<EventRef<'_>> = recs.iter().filter_map(EventRef::from_record).collect();
    assert!(matches!(fold(&policy, &NoRevocations, &refs), Err(FoldError::MissingParents(_))));
}

/// Random actions by random units of a small tree, each event naming as
/// parents a random non-empty subset of the events so far (so branches run
/// concurrently), some of them invalid.
fn random_case(ops: &[(usize, u8, u8, u16)]) -> Vec<Record> {
    let mut u = Units::new(&["330102001001", "330102001000", "330102000000", "330102001002"]);
    let first = u.event(0, "op", None, vec![], filing(Urgency::Normal));
    let case = first.id;
    let mut recs = vec![first];
    for &(unit, action, who, pick) in ops {
        let unit = unit % 4;
        let action = match action % 16 {
            0 => Action::SignFor,
            1 => Action::Route { window: "police".into(), requirements: String::new(), due_ms: None },
            2 => Action::Escalate { reason: "r".into() },
            3 => Action::Dispatch { to: "330102001002".parse().unwrap(), requirements: String::new(), due_ms: None },
            4 => Action::Return { reason: "r".into() },
            5 => Action::Reroute { target: RouteTarget::Window("justice".into()), reason: "r".into() },
            6 => Action::RequestExtension { working_days: 2, reason: "r".into() },
            7 => Action::DecideExtension { approve: who % 2 == 0, note: "n".into() },
            8 => Action::Supervise { grade: SuperviseGrade::ALL[who as usize % 4], note: "n".into() },
            9 => Action::Resolve { public_reply: "done".into(), internal_note: String::new() },
            10 => Action::Feedback { method: "phone".into(), note: "n".into(), invite: None },
            11 => Action::Rate { rating: Rating::ALL[who as usize % 3], comment: String::new(), result_rating: None },
            12 => Action::Reopen { reason: "r".into() },
            13 => Action::Archive,
            14 => Action::AddHelpers { helpers: vec![RouteTarget::Window("health".into())] },
            _ => Action::Progress { note: "n".into(), public: false },
        };
        // Parents: the latest event, plus maybe an older one.
        let n = recs.len();
        let mut parents = vec![recs[n - 1 - (pick as usize % n.min(3))].id];
        if pick % 5 == 0 && n > 1 {
            parents.push(recs[pick as usize % (n - 1)].id);
        }
        parents.sort();
        parents.dedup();
        let operator = format!("op{}", who % 2);
        recs.push(u.event(unit, &operator, Some(case), parents, action));
    }
    recs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every causal order of the same events gives the same state.
    #[test]
    fn every_causal_order_gives_the_same_state(
        ops in proptest::collection::vec((0usize..4, 0u8..16, 0u8..8, 0u16..1000), 0..40),
        seed in any::<u64>(),
    ) {
        let policy: PolicySet = Policy::default_policy().into();
        let recs = random_case(&ops);
        let refs: Vec<EventRef<'_>> = recs.iter().filter_map(EventRef::from_record).collect();
        let reference = fold(&policy, &NoRevocations, &refs).unwrap();

        // A random topological order: repeatedly pick a random ready event.
        let mut rng = seed;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let mut placed: HashSet<RecordId> = HashSet::new();
        let mut order: Vec<EventRef<'_>> = Vec::new();
        while order.len() < refs.len() {
            let ready: Vec<&EventRef<'_>> = refs.iter()
                .filter(|e| !placed.contains(&e.id) && e.event.parents.iter().all(|p| placed.contains(p)))
                .collect();
            let pick = *ready[(next() % ready.len() as u64) as usize];
            placed.insert(pick.id);
            order.push(pick);
        }
        // Applying incrementally in that order, as a node receiving events
        // one by one would, must agree with the canonical fold whenever the
        // order happens to be canonical; and the fold itself ignores the
        // input order entirely.
        prop_assert_eq!(&fold(&policy, &NoRevocations, &order).unwrap(), &reference);
        let mut reversed = refs.clone();
        reversed.reverse();
        prop_assert_eq!(&fold(&policy, &NoRevocations, &reversed).unwrap(), &reference);
        // Duplicates count once.
        let mut doubled = refs.clone();
        doubled.extend(refs.iter().copied());
        prop_assert_eq!(&fold(&policy, &NoRevocations, &doubled).unwrap(), &reference);
        // Invariants of any reachable state.
        prop_assert!(reference.units_handled.contains(&reference.owner));
        prop_assert_eq!(reference.timeline.len(), refs.len());
        if reference.status == Status::Handling { prop_assert!(reference.window.is_some()); }
    }
}

/// A revocation map for tests: author → cut-off.
struct Revoked(HashMap<NodeId, u64>);

impl FoldContext for Revoked {
    fn cutoff(&self, author: &NodeId) -> Option<u64> {
        self.0.get(author).copied()
    }
}

#[test]
fn revoked_authors_events_after_the_cutoff_are_void() {
    // village, township.
    let mut u = Units::new(&["330102001001", "330102001000"]);
    let mut c = start(&mut u, 0, Urgency::Normal); // village seq 1
    c.step(&mut u, 0, "op", Action::SignFor).unwrap(); // seq 2
    c.step(&mut u, 0, "op", Action::Escalate { reason: "涉及多个村".into() }).unwrap(); // seq 3
    c.step(&mut u, 1, "op", Action::SignFor).unwrap(); // township acts on the escalation
    let village = u.keys[0].1.id();
    let refs: Vec<EventRef<'_>> = c.records.iter().filter_map(EventRef::from_record).collect();
    // Revoked after its 2nd record: the escalation is void, so the township
    // never owned the case and its sign-for is rejected too.
    let st = fold(&c.policy, &Revoked(HashMap::from([(village, 2)])), &refs).unwrap();
    assert_eq!(st.status, Status::Accepted);
    assert_eq!(st.owner, u.code(0));
    let rules: Vec<_> = st.timeline.iter().map(|t| t.outcome.as_ref().err().map(|r| r.rule)).collect();
    assert_eq!(rules, vec![None, None, Some("author-revoked"), Some("only-owner")]);
    // Same answer in any order the events are given.
    let mut reversed = refs.clone();
    reversed.reverse();
    assert_eq!(fold(&c.policy, &Revoked(HashMap::from([(village, 2)])), &reversed).unwrap(), st);
    // Revoked from the start: the case itself is void and takes no steps.
    let st = fold(&c.policy, &Revoked(HashMap::from([(village, 0)])), &refs).unwrap();
    assert_eq!(st.status, Status::Void);
    assert!(st.deadlines.is_empty());
    assert!(st.timeline.iter().all(|t| t.outcome.is_err()));
    // A cut-off at or beyond the last record changes nothing.
    assert_eq!(fold(&c.policy, &Revoked(HashMap::from([(village, 3)])), &refs).unwrap(), fold(&c.policy, &NoRevocations, &refs).unwrap());
}

proptest! {
    /// A running clock moves Running → DueSoon → Overdue as time passes, due
    /// soon exactly once the policy's share of its span has elapsed; a met
    /// clock is on time exactly when met by its due time.
    #[test]
    fn clock_states_follow_time(start in 0u64..1_000_000_000, span in 1u64..100_000_000, t1 in 0u64..300_000_000, t2 in 0u64..300_000_000, pct in 1u8..=100) {
        let d = Deadline { kind: DeadlineKind::Resolution, unit: "330102001000".parse().unwrap(), started_ms: start, due_ms: Some(start + span), waiting_year: None, met_ms: None, cancelled: false, error: None, extended_working_days: 0, notice: None, window: None, paused: None };
        let rank = |c: Clock| match c { Clock::Running => 0, Clock::DueSoon => 1, Clock::Overdue => 2, other => panic!("{other:?}") };
        let (a, b) = (start + t1.min(t2), start + t1.max(t2));
        prop_assert!(rank(d.clock(a, pct)) <= rank(d.clock(b, pct)));
        let now = start + t1;
        let expect = if now > start + span { Clock::Overdue } else if (t1 as u128) * 100 >= (span as u128) * pct as u128 { Clock::DueSoon } else { Clock::Running };
        prop_assert_eq!(d.clock(now, pct), expect);
        prop_assert_eq!(d.clock(now, pct) == Clock::Overdue, d.is_overdue(now));
        let met = Deadline { met_ms: Some(now), ..d.clone() };
        prop_assert_eq!(met.clock(u64::MAX, pct), if now <= start + span { Clock::MetOnTime } else { Clock::MetLate });
    }
}

/// Knows the accepted merges of other cases.
struct Merges(HashMap<RecordId, (Hlc, RecordId)>);

impl FoldContext for Merges {
    fn cutoff(&self, _: &NodeId) -> Option<u64> {
        None
    }

    fn merge_of(&self, case: &RecordId) -> Option<(Hlc, RecordId)> {
        self.0.get(case).copied()
    }
}

/// A into B and B into A, signed at the same moment on two nodes: on every
/// node the earlier stands and the later is rejected once both are known.
#[test]
fn crossing_merges_keep_the_earlier() {
    let mut u = Units::new(&["330102001000", "330102001001"]);
    let a = start(&mut u, 0, Urgency::Normal);
    let b = start(&mut u, 0, Urgency::Normal);
    let (sa, sb) = (a.state(), b.state());
    let m1 = u.event(0, "op1", Some(sa.id), sa.heads.clone(), Action::Merge { into: sb.id });
    let m2 = u.event(0, "op1", Some(sb.id), sb.heads.clone(), Action::Merge { into: sa.id });
    let fold_with = |records: &[Record], ctx: &Merges| {
        let refs: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).collect();
        fold(&Policy::default_policy().into(), ctx, &refs).unwrap()
    };
    let a_records = [a.records.clone(), vec![m1.clone()]].concat();
    let b_records = [b.records.clone(), vec![m2.clone()]].concat();
    // Before either node knows the other's merge, both stand...
    let lone_a = fold_with(&a_records, &Merges(HashMap::new()));
    let lone_b = fold_with(&b_records, &Merges(HashMap::new()));
    assert_eq!((lone_a.status, lone_b.status), (Status::Merged, Status::Merged));
    // ...once both are known, only the earlier (m1) does.
    let st_a = fold_with(&a_records, &Merges(HashMap::from([(sb.id, lone_b.merge_event.unwrap())])));
    assert_eq!(st_a.status, Status::Merged);
    let st_b = fold_with(&b_records, &Merges(HashMap::from([(sa.id, st_a.merge_event.unwrap())])));
    assert_eq!(st_b.status, Status::AwaitingReceipt);
    assert_eq!(rule(st_b.timeline.last().unwrap().outcome.clone()), "merge-target-merged");
}

/// An extension has one decider at a time: the level directly above the
/// owner (a higher level may not decide at the same time), or the owning
/// center itself while the case is at one of its department windows.
#[test]
fn an_extension_has_one_decider() {
    let mut u = Units::new(&["330102001001", "330102001000", "330102000000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    c.step(&mut u, 0, "op", Action::RequestExtension { working_days: 2, reason: "需要勘查".into() }).unwrap();
    assert_eq!(rule(c.step(&mut u, 2, "leader", Action::DecideExtension { approve: true, note: "同意".into() })), "supervising-level-decides");
    assert_eq!(rule(c.step(&mut u, 0, "leader", Action::DecideExtension { approve: true, note: "同意".into() })), "supervising-level-decides");
    c.step(&mut u, 1, "leader", Action::DecideExtension { approve: true, note: "同意".into() }).unwrap();
    assert!(c.state().extension.is_none());
}

/// Every rating counts in the month it was given: a 不满意, then 重办 and a
/// 满意 a month later, are two ratings in two months (the 不满意 does not
/// vanish when the case is re-handled). A citizen's rating needs the
/// feedback's token, works once and expires; staff ratings count apart; an
/// upheld 差评申诉 sets a rating aside without deleting it.
#[test]
fn every_rating_counts_in_its_month_and_citizen_ratings_need_the_token() {
    use crate::case::rating_token_hash;
    use crate::kpi::{Counter, Figures, Kpi, facts, month_of};
    let mut u = Units::new(&["330102001001", "330102001000", "330102000000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    c.step(&mut u, 0, "op", Action::Resolve { public_reply: "已调解".into(), internal_note: String::new() }).unwrap();
    let token = [7u8; 16];
    let invite = crate::case::RatingInvite { token_hash: rating_token_hash(&token), expires_ms: u.clock + 7 * 86_400_000 };
    c.step(&mut u, 0, "op", Action::Feedback { method: "sms".into(), note: "已短信告知".into(), invite: Some(invite) }).unwrap();
    let citizen = |token: [u8; 16], rating| Action::CitizenRate { token, rating, result_rating: Rating::Unsatisfied, comment: "仍有噪音".into() };
    // A wrong token is refused, by any center; the right one from the city.
    assert_eq!(rule(c.step(&mut u, 2, "public", citizen([8; 16], Rating::Unsatisfied))), "rating-token");
    c.step(&mut u, 2, "public", citizen(token, Rating::Unsatisfied)).unwrap();
    // Once only.
    assert_eq!(rule(c.step(&mut u, 2, "public", citizen(token, Rating::Satisfied))), "status");
    let first_month = month_of(u.clock).unwrap();
    // The village appeals; the township (the level above) decides: here
    // it dismisses, so the rating stands.
    assert_eq!(rule(c.step(&mut u, 1, "op", Action::Appeal { reason: "x".into() })), "appeal-by-rated-unit");
    c.step(&mut u, 0, "op", Action::Appeal { reason: "诉求超出政策范围".into() }).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Reopen { reason: "重办".into() })), "appeal-pending");
    assert_eq!(rule(c.step(&mut u, 2, "leader", Action::DecideAppeal { upheld: false, note: String::new() })), "supervising-level-decides");
    c.step(&mut u, 1, "leader", Action::DecideAppeal { upheld: false, note: "评价属实".into() }).unwrap();
    c.step(&mut u, 0, "op", Action::Reopen { reason: "重新调解".into() }).unwrap();
    // A month later: resolved again, staff enter a 满意.
    u.clock += 31 * 86_400_000;
    c.step(&mut u, 0, "op", Action::Resolve { public_reply: "已限定施工时间".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }).unwrap();
    // No invitation: a citizen's rating is refused even with the old token.
    assert_eq!(rule(c.step(&mut u, 2, "public", citizen(token, Rating::Satisfied))), "no-rating-invitation");
    c.step(&mut u, 0, "op", Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None }).unwrap();
    let second_month = month_of(u.clock).unwrap();
    assert_ne!(first_month, second_month);
    let st = c.state();
    assert_eq!(st.ratings.len(), 2);
    let month = |m: u32| {
        let mut f = Figures::default();
        for fact in facts(&st).iter().filter(|f| f.month == m) {
            f.counts[fact.counter as usize] += fact.value;
        }
        f
    };
    let (a, b) = (month(first_month), month(second_month));
    assert_eq!((a.get(Counter::CitizenRated), a.get(Counter::CitizenUnsatisfied), a.get(Counter::Rated)), (1, 1, 1));
    assert_eq!(Kpi::Satisfaction.value(&a), Some(0.0));
    assert_eq!(Kpi::ResultSatisfaction.value(&a), Some(0.0));
    assert_eq!((b.get(Counter::CitizenRated), b.get(Counter::Rated), b.get(Counter::Satisfied)), (0, 1, 1));
    assert_eq!(Kpi::Satisfaction.value(&b), None, "a staff rating never counts towards the citizens' satisfaction");
    assert_eq!(Kpi::StaffSatisfaction.value(&b), Some(1.0));
    assert_eq!(Kpi::CitizenRatedShare.value(&b), Some(0.0));

    // An expired token is refused; an upheld appeal sets the rating aside.
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op", Action::SignFor).unwrap();
    c.step(&mut u, 0, "op", Action::Resolve { public_reply: "已答复".into(), internal_note: String::new() }).unwrap();
    let invite = crate::case::RatingInvite { token_hash: rating_token_hash(&token), expires_ms: u.clock + 60_000 };
    c.step(&mut u, 0, "op", Action::Feedback { method: "sms".into(), note: "已告知".into(), invite: Some(invite) }).unwrap();
    u.clock += 3_600_000;
    assert_eq!(rule(c.step(&mut u, 2, "public", citizen(token, Rating::Unsatisfied))), "rating-token-expired");
    c.step(&mut u, 0, "op", Action::Rate { rating: Rating::Unsatisfied, comment: String::new(), result_rating: None }).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op", Action::Archive)), "archive-needs-satisfied");
    c.step(&mut u, 0, "op", Action::Appeal { reason: "诉求超出政策范围".into() }).unwrap();
    c.step(&mut u, 1, "leader", Action::DecideAppeal { upheld: true, note: "申诉成立".into() }).unwrap();
    c.step(&mut u, 0, "op", Action::Archive).unwrap();
    let st = c.state();
    assert_eq!(st.ratings.len(), 1, "the rating is kept");
    let all: Vec<_> = facts(&st);
    let get = |counter| all.iter().filter(|f| f.counter == counter).map(|f| f.value).sum::<i64>();
    assert_eq!((get(Counter::AppealUpheld), get(Counter::Appealed), get(Counter::Rated), get(Counter::Unsatisfied)), (1, 1, 0, 0));
}

/// The counters by window and by person (`kpi::attributed`): 受理 by the
/// person who filed and the window routed to (a refused step counts for
/// nobody); 办结 as the case stands, against its resolver; each rating
/// against the last 办结 before it (a 不满意, 重办 and a 满意 by another
/// person are one rating each).
#[test]
fn counters_by_window_and_person() {
    use crate::kpi::{Actor, Counter, attributed};
    let mut u = Units::new(&["330102001000"]);
    let mut c = start(&mut u, 0, Urgency::Normal);
    c.step(&mut u, 0, "op1", Action::SignFor).unwrap();
    assert_eq!(rule(c.step(&mut u, 0, "op9", Action::Route { window: "nowhere".into(), requirements: String::new(), due_ms: None })), "unknown-window");
    c.step(&mut u, 0, "op2", Action::Route { window: "police".into(), requirements: String::new(), due_ms: None }).unwrap();
    c.step(&mut u, 0, "ga", Action::Resolve { public_reply: "已处理".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op1", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Rate { rating: Rating::Unsatisfied, comment: String::new(), result_rating: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Reopen { reason: "重办".into() }).unwrap();
    c.step(&mut u, 0, "li", Action::Resolve { public_reply: "已重新处理".into(), internal_note: String::new() }).unwrap();
    c.step(&mut u, 0, "op1", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }).unwrap();
    c.step(&mut u, 0, "op1", Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None }).unwrap();
    let facts = attributed(&c.state());
    let unit = u.code(0);
    let get = |actor: Actor, counter: Counter| facts.iter().filter(|f| f.actor == actor && f.counter == counter).map(|f| f.value).sum::<i64>();
    let person = |name: &str| Actor::Person { unit, operator: name.into() };
    let window = |code: &str| Actor::Window { unit, window: code.into() };
    assert_eq!(get(person("op1"), Counter::Received), 1, "{facts:?}");
    assert_eq!(get(window("police"), Counter::Received), 1, "{facts:?}");
    assert!(facts.iter().all(|f| f.actor != person("op9") && f.actor != window("nowhere")), "a refused step counts for nobody: {facts:?}");
    assert_eq!((get(person("ga"), Counter::Resolved), get(person("ga"), Counter::Unsatisfied), get(person("ga"), Counter::Satisfied)), (0, 1, 0), "{facts:?}");
    assert_eq!((get(person("li"), Counter::Resolved), get(person("li"), Counter::ResolvedOnTime), get(person("li"), Counter::Satisfied)), (1, 1, 1), "{facts:?}");
    assert_eq!((get(window("police"), Counter::Resolved), get(window("police"), Counter::Rated)), (1, 2), "{facts:?}");
}
