//! Incremental statistics equal a brute-force recomputation from the
//! records, for random workflows; and `reindex` rebuilds the same counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use zongzhi_node::config::Config;
use zongzhi_node::ledger::{self, Op, Outcome, Writer};
use zongzhi_node::stats;
use zongzhi_node::store::Store;
use zongzhi_protocol::case::{Channel, Complexity, Place, Rating, RequestType, SuperviseGrade, Urgency};
use zongzhi_protocol::kpi::{self, COUNTERS, Counts};
use zongzhi_protocol::{Action, Filing, RecordId};

/// One step a test applies to case number `case % open cases`.
#[derive(Debug, Clone)]
enum Step {
    File { category: usize, channel: usize, urgent: bool, complex: bool },
    SignFor,
    Route,
    Progress,
    Resolve,
    Feedback,
    Rate(usize),
    Reopen,
    Supervise,
    Extension,
    Archive,
}

fn step() -> impl Strategy<Value = (usize, Step)> {
    let s = prop_oneof![
        3 => (0usize..3, 0usize..3, any::<bool>(), any::<bool>()).prop_map(|(category, channel, urgent, complex)| Step::File { category, channel, urgent, complex }),
        3 => Just(Step::SignFor),
        2 => Just(Step::Route),
        1 => Just(Step::Progress),
        3 => Just(Step::Resolve),
        2 => Just(Step::Feedback),
        2 => (0usize..3).prop_map(Step::Rate),
        1 => Just(Step::Reopen),
        1 => Just(Step::Supervise),
        1 => Just(Step::Extension),
        1 => Just(Step::Archive),
    ];
    (0usize..8, s)
}

fn filing(category: &str, channel: Channel, urgent: bool, complex: bool) -> Box<Filing> {
    Box::new(Filing {
        number: String::new(),
        title: "邻里纠纷".into(),
        content: "测试".into(),
        category: category.into(),
        request_type: RequestType::Complaint,
        channel,
        urgency: if urgent { Urgency::Urgent } else { Urgency::Normal },
        complexity: if complex { Complexity::Complex } else { Complexity::General },
        place: Place::default(),
        occurred_at_ms: None,
        received_at_ms: zongzhi_node::context::now_ms(),
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    })
}

/// All stats entries: key → counts.
fn dump(store: &Store) -> BTreeMap<Vec<u8>, Counts> {
    let mut out = BTreeMap::new();
    store
        .scan_stats(&[], &[0xFF; 32], |k, v| {
            let c = stats::decode(v);
            if c.iter().any(|x| *x != 0) {
                out.insert(k.to_vec(), c);
            }
        })
        .unwrap();
    out
}

/// Folds every stored case from its records and sums its facts.
fn brute_force(store: &Store, policy: &zongzhi_protocol::policy::PolicySet, trust: &zongzhi_protocol::trust::Trust, cases: &[RecordId]) -> BTreeMap<Vec<u8>, Counts> {
    let mut acc: HashMap<Vec<u8>, Counts> = HashMap::new();
    for case in cases {
        let records = ledger::load_case_records(store, case).unwrap();
        let state = ledger::fold_records(store, policy, trust, &records).unwrap();
        let facts = kpi::facts(&state);
        for (k, d) in stats::deltas(&state.filing.category, state.filing.channel, &[], &facts) {
            let e = acc.entry(k).or_insert([0; COUNTERS]);
            for (a, b) in e.iter_mut().zip(d) {
                *a += b;
            }
        }
    }
    acc.into_iter().filter(|(_, c)| c.iter().any(|x| *x != 0)).collect()
}

fn city() -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: Config = toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市\"\n", dir.path().join("data"))).unwrap();
    zongzhi_node::node::init(&cfg).unwrap();
    let key = Arc::new(zongzhi_node::node::load_key(&cfg).unwrap());
    let store = zongzhi_node::node::open_store(&cfg, &key).unwrap();
    let shared = zongzhi_node::node::shared_state(&cfg, store, key).unwrap();
    (dir, Writer::new(shared).unwrap())
}

/// The operation for a step on case number `target` of `cases` (`None`:
/// no case yet).
fn op_for(st: Step, target: usize, cases: &[RecordId]) -> Option<Op> {
    let categories = ["0202", "0101", "0301"];
    let op = match st {
        Step::File { category, channel, urgent, complex } => {
            Op::File { filing: filing(categories[category], Channel::ALL[channel % Channel::ALL.len()], urgent, complex), contact: None, query_code: None, operator: "op".into() }
        }
        other => {
            let case = (!cases.is_empty()).then(|| cases[target % cases.len()])?;
            let a = match other {
                Step::SignFor => Action::SignFor,
                Step::Route => Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None },
                Step::Progress => Action::Progress { note: "到场".into(), public: false },
                Step::Resolve => Action::Resolve { public_reply: "已调解".into(), internal_note: String::new() },
                Step::Feedback => Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None },
                Step::Rate(r) => Action::Rate { rating: [Rating::Satisfied, Rating::Basic, Rating::Unsatisfied][r], comment: String::new(), result_rating: None },
                Step::Reopen => Action::Reopen { reason: "重办".into() },
                Step::Supervise => Action::Supervise { grade: SuperviseGrade::Yellow, note: "加快".into() },
                Step::Extension => Action::RequestExtension { working_days: 2, reason: "需要勘查".into() },
                Step::Archive => Action::Archive,
                Step::File { .. } => unreachable!(),
            };
            Op::Act { case, action: a, operator: "op".into() }
        }
    };
    Some(op)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn incremental_statistics_equal_a_recomputation(steps in proptest::collection::vec(step(), 1..60)) {
        let (_dir, mut w) = city();
        let policy = w.shared().policies();
        let mut cases: Vec<RecordId> = Vec::new();
        for (target, st) in steps {
            let Some(op) = op_for(st, target, &cases) else { continue };
            // Steps the rules refuse change nothing; that is part of the test.
            if let Ok(Outcome::Step(ack)) = w.run(op)
                && !cases.contains(&ack.case)
            {
                cases.push(ack.case);
            }
        }
        let store = w.shared().store.clone();
        let trust = w.shared().trust();
        let incremental = dump(&store);
        prop_assert_eq!(&incremental, &brute_force(&store, &policy, &trust, &cases));
        prop_assert!(cases.is_empty() || !incremental.is_empty());
        // reindex rebuilds the same counters.
        ledger::reindex(&store, &policy, &trust).unwrap();
        prop_assert_eq!(&dump(&store), &incremental);
    }

    /// The same through the writer thread, which prepares a group while the
    /// commit thread writes the previous one: steps are queued in waves
    /// without waiting for each other, so consecutive steps on one case
    /// land in groups written back to back.
    #[test]
    fn statistics_stay_exact_when_groups_are_prepared_while_others_are_written(
        steps in proptest::collection::vec((step(), any::<bool>()), 1..80),
    ) {
        let (_dir, w) = city();
        let policy = w.shared().policies();
        let store = w.shared().store.clone();
        let trust = w.shared().trust();
        let ledger = ledger::Ledger::start(w);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut cases: Vec<RecordId> = Vec::new();
        let mut wave = Vec::new();
        for ((target, st), last_of_wave) in steps {
            if let Some(op) = op_for(st, target, &cases) {
                wave.push(rt.block_on(ledger.enqueue(op)).unwrap());
            }
            if last_of_wave {
                for reply in wave.drain(..) {
                    if let Ok(Outcome::Step(ack)) = rt.block_on(reply).unwrap()
                        && !cases.contains(&ack.case)
                    {
                        cases.push(ack.case);
                    }
                }
            }
        }
        for reply in wave.drain(..) {
            if let Ok(Outcome::Step(ack)) = rt.block_on(reply).unwrap()
                && !cases.contains(&ack.case)
            {
                cases.push(ack.case);
            }
        }
        ledger.shutdown();
        let incremental = dump(&store);
        prop_assert_eq!(&incremental, &brute_force(&store, &policy, &trust, &cases));
        ledger::reindex(&store, &policy, &trust).unwrap();
        prop_assert_eq!(&dump(&store), &incremental);
    }
}
