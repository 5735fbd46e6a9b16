//! The indexes answer as a brute-force pass over every summary does: after
//! random workflows, at several clock readings, and after `reindex`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use zongzhi_protocol::case::{Channel, Complexity, Contact, Place, Rating, RequestType, Urgency};
use zongzhi_protocol::workflow::{DeadlineKind, Status};
use zongzhi_protocol::{Action, Filing, RecordId, kpi};

use crate::config::Config;
use crate::ledger::{self, Op, Outcome, Writer};
use crate::queue::{self, ClockFilter, Filter};
use crate::stats::By;
use crate::store::Store;
use crate::summary::CaseSummary;

const CATEGORIES: [&str; 4] = ["0202", "0201", "0401", "0501"];
const PHONES: [&str; 3] = ["13800001111", "13900002222", "13700003333"];

fn node() -> (tempfile::TempDir, Writer, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: Config = toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市\"\n", dir.path().join("data"))).unwrap();
    crate::node::init(&cfg).unwrap();
    let key = Arc::new(crate::node::load_key(&cfg).unwrap());
    let store = crate::node::open_store(&cfg, &key).unwrap();
    let shared = crate::node::shared_state(&cfg, store.clone(), key).unwrap();
    (dir, Writer::new(shared).unwrap(), store)
}

#[derive(Debug, Clone)]
enum Step {
    File { category: usize, urgent: bool, phone: Option<usize>, title: usize },
    Act { case: usize, action: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize, any::<bool>(), proptest::option::of(0..3usize), 0..3usize).prop_map(|(category, urgent, phone, title)| Step::File { category, urgent, phone, title }),
        (0..64usize, 0..10usize).prop_map(|(case, action)| Step::Act { case, action }),
        (0..64usize, 0..10usize).prop_map(|(case, action)| Step::Act { case, action }),
    ]
}

const TITLES: [&str; 3] = ["楼上噪音扰民", "拖欠工资三个月", "物业收费争议噪音"];

fn action(n: usize, cases: &[RecordId]) -> Action {
    match n {
        0 => Action::SignFor,
        1 => Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None },
        2 => Action::Progress { note: "进展".into(), public: true },
        3 => Action::Resolve { public_reply: "已办结".into(), internal_note: String::new() },
        4 => Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: None },
        5 => Action::Rate { rating: Rating::Unsatisfied, comment: String::new(), result_rating: None },
        6 => Action::Reopen { reason: "不满意".into() },
        7 => Action::Archive,
        8 => Action::Merge { into: cases[0] },
        _ => Action::Rate { rating: Rating::Satisfied, comment: String::new(), result_rating: None },
    }
}

fn filing(category: usize, urgent: bool, title: usize) -> Filing {
    Filing {
        number: String::new(),
        title: TITLES[title].into(),
        content: "请尽快处理".into(),
        category: CATEGORIES[category].into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency: if urgent { Urgency::Urgent } else { Urgency::Normal },
        complexity: Complexity::General,
        place: Place::default(),
        occurred_at_ms: None,
        received_at_ms: crate::context::now_ms(),
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    }
}

fn run(w: &mut Writer, steps: &[Step]) -> Vec<RecordId> {
    let mut cases = Vec::new();
    for s in steps {
        let op = match s {
            Step::File { category, urgent, phone, title } => Op::File {
                filing: Box::new(filing(*category, *urgent, *title)),
                contact: phone.map(|p| Contact { name: "张三".into(), phone: PHONES[p].into(), id_number: String::new(), address: String::new() }),
                query_code: None,
                operator: "op".into(),
            },
            Step::Act { case, action: a } if !cases.is_empty() => {
                // The first step of the lifecycle, from `a` on, that the
                // case accepts: cases move through every status.
                let case = cases[case % cases.len()];
                let order: Vec<usize> = match a {
                    2 | 8 => vec![*a],
                    _ => {
                        let life = [0, 1, 3, 4, 5, 9, 6, 7];
                        let at = life.iter().position(|x| x == a).unwrap_or(0);
                        life.iter().cycle().skip(at).take(life.len()).copied().collect()
                    }
                };
                for n in order {
                    if w.run(Op::Act { case, action: action(n, &cases), operator: "op".into() }).is_ok() {
                        break;
                    }
                }
                continue;
            }
            Step::Act { .. } => continue,
        };
        if let Ok(Outcome::Step(ack)) = w.run(op) {
            cases.push(ack.case);
        }
    }
    cases
}

fn summaries(store: &Store) -> Vec<CaseSummary> {
    let mut v = Vec::new();
    store
        .all_summaries(|s| {
            v.push(s);
            true
        })
        .unwrap();
    v
}

fn filters(me: zongzhi_protocol::DivisionCode) -> Vec<Filter> {
    let mut out = Vec::new();
    for owner in [Some(me), None] {
        for statuses in [queue::OPEN.to_vec(), Status::ALL.to_vec(), vec![Status::Resolved]] {
            for (urgency, category, overdue, due_soon) in [
                (None, "", None, false),
                (Some(Urgency::Urgent), "", None, false),
                (None, "02", None, false),
                (None, "0401", Some(true), false),
                (None, "", Some(true), false),
                (None, "", Some(false), false),
                (None, "", None, true),
            ] {
                out.push(Filter { owner, statuses: statuses.clone(), urgency, category: category.into(), overdue, due_soon, waiting_calendar: false, overruled: None, clock: None, windows: None });
            }
        }
    }
    for which in [ClockFilter::Any, ClockFilter::Kind(DeadlineKind::Resolution), ClockFilter::Kind(DeadlineKind::Feedback)] {
        for overdue in [None, Some(true)] {
            // This unit's clocks, and every unit's (`clock_of=all`).
            for unit in [Some(me), None] {
                out.push(Filter {
                    owner: None,
                    statuses: vec![],
                    urgency: None,
                    category: String::new(),
                    overdue,
                    due_soon: false,
                    waiting_calendar: false,
                    overruled: None,
                    clock: Some((unit, which)),
                    windows: None,
                });
            }
        }
    }
    out
}

/// The list by brute force: every summary, filtered, in list order.
fn brute_list(all: &[CaseSummary], f: &Filter, policy: &zongzhi_protocol::Policy, now: u64) -> Vec<RecordId> {
    let mut v: Vec<(Vec<u8>, RecordId)> = all
        .iter()
        .filter(|c| f.matches(policy, c, now))
        .filter(|c| match (f.clock, f.overdue) {
            // The clock view's overdue selection is that of the clock listed.
            (Some((unit, which)), Some(o)) => {
                c.running.iter().filter(|r| unit.is_none_or(|u| r.unit == u) && which.admits(r.kind)).min_by_key(|r| (r.due_ms, r.kind)).is_some_and(|r| (now > r.due_ms) == o)
            }
            _ => true,
        })
        .map(|c| {
            let key = match f.clock {
                Some((unit, which)) => {
                    let r = c.running.iter().filter(|r| unit.is_none_or(|u| r.unit == u) && which.admits(r.kind)).min_by_key(|r| (r.due_ms, r.kind)).unwrap();
                    [r.due_ms.to_be_bytes().as_slice(), &c.id.0].concat()
                }
                None => crate::index::position(c),
            };
            (key, c.id)
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// Every page of a list, three at a time.
fn paged(store: &Store, f: &Filter, policy: &zongzhi_protocol::Policy, now: u64) -> (Vec<RecordId>, usize) {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let p = queue::page(store, f, policy, now, after.as_ref(), 3).unwrap();
        let total = p.total;
        out.extend(p.cases.iter().map(|c| c.id));
        match p.next {
            Some(n) => after = Some(n),
            None => return (out, total),
        }
    }
}

/// Repeats and open past-due counts by brute force, per unit, for one month.
fn brute_figures(all: &[CaseSummary], month: u32, now: u64, window_ms: u64) -> (i64, i64) {
    let mut seen: HashMap<(zongzhi_protocol::BlobHash, String), Vec<u64>> = HashMap::new();
    for s in all.iter().filter(|s| s.status != Status::Void) {
        if let Some(c) = s.contact {
            seen.entry((c, s.category.clone())).or_default().push(s.filed_ms);
        }
    }
    let repeats = all
        .iter()
        .filter(|s| s.status != Status::Void && kpi::month_of(s.filed_ms) == Some(month))
        .filter(|s| s.contact.is_some_and(|c| seen[&(c, s.category.clone())].iter().any(|t| *t < s.filed_ms && s.filed_ms - t <= window_ms)))
        .count() as i64;
    let overdue = all
        .iter()
        .filter(|s| s.status.is_open())
        .filter(|s| s.running.iter().any(|r| matches!(r.kind, DeadlineKind::Resolution | DeadlineKind::Rehandle) && r.due_ms < now && kpi::month_of(r.due_ms) == Some(month)))
        .count() as i64;
    (repeats, overdue)
}

fn check(w: &Writer, store: &Store, window_days: u64) {
    let shared = w.shared();
    let policy = shared.policy();
    let all = summaries(store);
    let real = crate::context::now_ms();
    for now in [real, real + 3 * 86_400_000, real + 40 * 86_400_000] {
        for f in filters(shared.unit) {
            let want = brute_list(&all, &f, &policy, now);
            let (got, total) = paged(store, &f, &policy, now);
            assert_eq!(got, want, "list of {f:?} at +{} d", (now - real) / 86_400_000);
            let distinct: HashSet<_> = want.iter().collect();
            assert_eq!(total, distinct.len(), "total of {f:?}");
        }
        // The statistics' repeat and open past-due figures, whole city.
        let due_month = kpi::month_of(now).unwrap();
        let filed_month = kpi::month_of(real).unwrap();
        for month in [filed_month, due_month] {
            let q = crate::report::Query { scope: shared.unit, period: month.to_string(), months: vec![month], baseline: None, by: By::Unit, kpis: vec![], offset: 0, limit: None };
            let t = crate::report::table(store, &shared.trust(), &policy, &shared.policies(), &q, now).unwrap();
            let (repeats, overdue) = brute_figures(&all, month, now, window_days * 86_400_000);
            assert_eq!(t["total"]["counts"]["repeats"].as_i64(), Some(repeats), "repeats in {month}");
            assert_eq!(t["total"]["counts"]["open_overdue"].as_i64(), Some(overdue), "open past due in {month} at {now}");
        }
    }
    // Search: every title word finds exactly the cases whose title has it;
    // every phone the cases of that complainant.
    for word in ["噪音", "工资", "物业收费"] {
        let found = crate::search::search(store, word, true, 500, None).unwrap();
        let got: HashSet<RecordId> = found.cases.iter().map(|c| c.id).collect();
        let want: HashSet<RecordId> = all.iter().filter(|c| c.title.contains(word)).map(|c| c.id).collect();
        assert_eq!(got, want, "search {word}");
    }
    for phone in PHONES {
        let found = crate::search::search(store, phone, true, 500, None).unwrap();
        assert_eq!(found.kind, crate::search::Kind::Phone);
        let got: HashSet<RecordId> = found.cases.iter().map(|c| c.id).collect();
        let want: HashSet<RecordId> =
            all.iter().filter(|c| c.contact.is_some_and(|h| store.blob(&h.0).unwrap().is_some_and(|b| Contact::from_bytes(&b).unwrap().phone == phone))).map(|c| c.id).collect();
        assert_eq!(got, want, "search {phone}");
        assert!(matches!(crate::search::search(store, phone, false, 10, None), Err(crate::search::SearchError::Role)));
    }
    // The supervision scan reads the overdue clocks only.
    let later = real + 40 * 86_400_000;
    let scan = crate::workers::supervisor::scan_counted(shared, later).unwrap();
    let overdue_clocks: usize = all.iter().map(|c| c.running.iter().filter(|r| r.due_ms < later).count()).sum();
    assert_eq!(scan.examined, overdue_clocks);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn indexes_answer_as_brute_force_does(steps in proptest::collection::vec(step(), 20..120)) {
        let (_dir, mut w, store) = node();
        run(&mut w, &steps);
        check(&w, &store, 180);
        // Reindex rebuilds the same indexes.
        let before = store.derived_dump().unwrap();
        let shared = w.shared().clone();
        ledger::reindex(&store, &shared.policies(), &shared.trust()).unwrap();
        let after = store.derived_dump().unwrap();
        prop_assert_eq!(before.len(), after.len());
        prop_assert!(before == after, "reindex changed the derived data");
        check(&w, &store, 180);
        // A zero-day window: no filing repeats another (all differ in time).
        store.set_repeat_window(0).unwrap();
        check(&w, &store, 0);
    }
}

/// The repeat marks as a brute-force pass decides them: within each group
/// (complainant, category), a filing repeats when the latest filing
/// strictly before it is within the window.
fn brute_marks(entries: &[(usize, usize, u64, RecordId)], window_ms: u64) -> HashSet<RecordId> {
    let mut marks = HashSet::new();
    for (p, c, t, id) in entries {
        let latest_before = entries.iter().filter(|(p2, c2, t2, _)| (p2, c2) == (p, c) && t2 < t).map(|e| e.2).max();
        if latest_before.is_some_and(|b| t - b <= window_ms) {
            marks.insert(*id);
        }
    }
    marks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Cases reach a node in any order of their filing times (a child's
    /// filing replicated after a later one here, a case voided and back),
    /// in write batches of any size: the stored marks still equal a
    /// recomputation. (The sim found marks missing when an earlier filing
    /// arrived after a later one: a span was read only at its first time.)
    #[test]
    fn repeat_marks_hold_whatever_order_filings_arrive_in(
        filings in proptest::collection::vec((0..2usize, 0..2usize, 0..40u64), 1..30),
        batch_sizes in proptest::collection::vec(1..5usize, 30),
        voids in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let (_dir, mut w, store) = node();
        let ack = w.run(Op::File { filing: Box::new(filing(0, false, 0)), contact: None, query_code: None, operator: "op".into() }).unwrap();
        let Outcome::Step(ack) = ack else { panic!("{ack:?}") };
        let template = store.case_summary(&ack.case).unwrap().unwrap();
        // Hours apart, in a random order; two complainants, two categories.
        let mut entries = Vec::new();
        let mut summaries = Vec::new();
        for (i, (person, cat, hour)) in filings.iter().enumerate() {
            let mut s = template.clone();
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            s.id = RecordId(id);
            s.number = format!("T{i}");
            s.category = CATEGORIES[*cat].into();
            s.person = Some([*person as u8 + 1; 32]);
            s.filed_ms = 1_760_000_000_000 + hour * 3_600_000 + i as u64;
            entries.push((*person, *cat, s.filed_ms, s.id));
            summaries.push(s);
        }
        store.set_repeat_window(1).unwrap();
        let day = 86_400_000;
        let mut at = 0;
        for (n, size) in batch_sizes.iter().enumerate() {
            if at >= summaries.len() {
                break;
            }
            let mut b = store.batch();
            for s in &summaries[at..(at + size).min(summaries.len())] {
                b.put_summary(None, s);
            }
            at += size;
            store.commit(b).unwrap();
            // Now and then a stored case is voided (leaves its group).
            if voids[n] {
                let s = &summaries[n % at.min(summaries.len())];
                if let Some(before) = store.case_summary(&s.id).unwrap() && before.status != Status::Void {
                    let mut after = before.clone();
                    after.status = Status::Void;
                    let mut b = store.batch();
                    b.put_summary(Some(&before), &after);
                    store.commit(b).unwrap();
                    entries.retain(|e| e.3 != s.id);
                }
            }
        }
        let marked: HashSet<RecordId> = store
            .derived_dump()
            .unwrap()
            .into_iter()
            .filter(|(cf, _, _)| cf == "repeat_marks")
            .map(|(_, k, _)| RecordId(k[48..80].try_into().unwrap()))
            .collect();
        prop_assert_eq!(marked, brute_marks(&entries, day));
    }
}

/// Open cases by supervision grade (the `g` counts behind
/// `zongzhi_cases_supervised`) as a pass over every summary counts them:
/// after supervision, after a case closes, after a backfill of a store
/// written without them, and after `reindex`.
#[test]
fn grade_counts_follow_supervision_and_closing() {
    use zongzhi_protocol::case::SuperviseGrade;
    let (_dir, mut w, store) = node();
    let grade_counts = |store: &Store| -> Vec<i64> {
        let keys: Vec<Vec<u8>> = SuperviseGrade::ALL.iter().map(|g| crate::index::grade_count_key(*g)).collect();
        store.index_counts(&keys).unwrap()
    };
    let brute = |store: &Store| -> Vec<i64> {
        let mut n = vec![0i64; SuperviseGrade::ALL.len()];
        store
            .all_summaries(|s| {
                if let Some(g) = s.supervision.filter(|_| s.status.is_open()) {
                    n[SuperviseGrade::ALL.iter().position(|x| *x == g).unwrap()] += 1;
                }
                true
            })
            .unwrap();
        n
    };
    let mut cases = Vec::new();
    for i in 0..4 {
        let Outcome::Step(ack) = w.run(Op::File { filing: Box::new(filing(i % 4, false, 0)), contact: None, query_code: None, operator: "op".into() }).unwrap() else { panic!("filing refused") };
        cases.push(ack.case);
    }
    let act = |w: &mut Writer, case: RecordId, action: Action| {
        w.run(Op::Act { case, action, operator: "op".into() }).unwrap();
    };
    for (case, grade) in [(cases[0], SuperviseGrade::Yellow), (cases[1], SuperviseGrade::Yellow), (cases[2], SuperviseGrade::Red)] {
        act(&mut w, case, Action::SignFor);
        // At one of its windows: the center is above the handler.
        act(&mut w, case, Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None });
        act(&mut w, case, Action::Supervise { grade, note: "请加快办理".into() });
    }
    // A second, higher grade moves the case from yellow to interview.
    act(&mut w, cases[1], Action::Supervise { grade: SuperviseGrade::Interview, note: "约谈".into() });
    assert_eq!(grade_counts(&store), [0, 1, 1, 1]);
    assert_eq!(grade_counts(&store), brute(&store));
    // A resolved case is no longer counted.
    act(&mut w, cases[2], Action::Resolve { public_reply: "已办结".into(), internal_note: String::new() });
    assert_eq!(grade_counts(&store), [0, 1, 0, 1]);
    assert_eq!(grade_counts(&store), brute(&store));
    assert!(store.meta_get(crate::index::GRADE_COUNTS).unwrap().is_some(), "a new store is marked at start-up");
    // A store written before the counts existed: no marker, no counts.
    let mut b = store.batch();
    for (g, n) in SuperviseGrade::ALL.iter().zip(grade_counts(&store)) {
        b.count_grade(*g, -n);
    }
    b.delete_meta(crate::index::GRADE_COUNTS);
    store.commit(b).unwrap();
    assert_eq!(grade_counts(&store), [0, 0, 0, 0]);
    let policy = w.shared().policy();
    crate::index::backfill_grade_counts(&store, &policy).unwrap();
    assert_eq!(grade_counts(&store), brute(&store));
    // Once marked, a second start-up adds nothing.
    crate::index::backfill_grade_counts(&store, &policy).unwrap();
    assert_eq!(grade_counts(&store), [0, 1, 0, 1]);
    let shared = w.shared().clone();
    ledger::reindex(&store, &shared.policies(), &shared.trust()).unwrap();
    assert_eq!(grade_counts(&store), [0, 1, 0, 1]);
}
