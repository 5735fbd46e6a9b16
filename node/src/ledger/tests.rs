#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

use crate::config::Config;
use crate::context::now_ms;
use crate::store::Store;
use crate::summary::CaseSummary;
use std::sync::Arc;
use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};
use zongzhi_protocol::{Action, Body, CaseEvent, DivisionCode, Filing, Header, Hlc, NodeKey, Record, RecordId};

/// A city node's writer on a fresh directory, its store and shared state.
fn city() -> (tempfile::TempDir, Writer, Arc<Store>, Context) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: Config = toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市\"\n", dir.path().join("data"))).unwrap();
    crate::node::init(&cfg).unwrap();
    let key = Arc::new(crate::node::load_key(&cfg).unwrap());
    let store = crate::node::open_store(&cfg, &key).unwrap();
    let shared = crate::node::shared_state(&cfg, store.clone(), key).unwrap();
    (dir, Writer::new(shared.clone()).unwrap(), store, shared)
}

/// The case a handed-over group's first operation filed or acted on.
/// A county the city certifies (key from `seed`): its key and division.
fn certify_county(w: &mut Writer, shared: &Context, seed: u8) -> (NodeKey, DivisionCode) {
    use zongzhi_protocol::cert::NodeCert;
    use zongzhi_protocol::division::Level;
    let county = NodeKey::from_seed([seed; 32]);
    let division: DivisionCode = "330106000000".parse().unwrap();
    let now = now_ms();
    let cert = NodeCert {
        key: county.id(),
        division,
        level: Level::County,
        name: "西湖区社会治安综合治理中心".into(),
        issuer: shared.key.id(),
        not_before_ms: now - 3_600_000,
        not_after_ms: now + 86_400_000,
        serial: 2,
    };
    w.run(Op::AppendOwn { body: Body::NodeCert(cert) }).unwrap();
    (county, division)
}

fn case_of(c: &Commit<'_>) -> RecordId {
    match &c.replies[0].1 {
        Ok(Outcome::Step(ack)) => ack.case,
        other => panic!("unexpected {other:?}"),
    }
}

fn file() -> Op {
    Op::File { filing: Box::new(filing(String::new())), contact: None, query_code: None, operator: "op".into() }
}

fn filing(number: String) -> Filing {
    Filing {
        number,
        title: "噪音扰民".into(),
        content: "楼上夜间装修".into(),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency: Urgency::Normal,
        complexity: Complexity::General,
        place: Place::default(),
        occurred_at_ms: None,
        received_at_ms: now_ms(),
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    }
}

fn act(case: RecordId, action: Action) -> Op {
    Op::Act { case, action, operator: "op".into() }
}

/// Reply channels for `n` operations.
fn replies(n: usize) -> (Vec<Reply>, Vec<tokio::sync::oneshot::Receiver<Result<Outcome>>>) {
    (0..n).map(|_| tokio::sync::oneshot::channel()).unzip()
}

fn stepped(rx: tokio::sync::oneshot::Receiver<Result<Outcome>>) -> Result<Ack> {
    match rx.blocking_recv().expect("answered")? {
        Outcome::Step(ack) => Ok(ack),
        other => panic!("unexpected {other:?}"),
    }
}

/// What a restart would check: the own chain ends where meta says, and
/// every stored summary is the fold of the case's stored records.
fn consistent(w: &Writer) {
    let shared = w.shared.clone();
    Writer::new(shared.clone()).expect("a restart finds the chain and meta in agreement");
    let store = &shared.store;
    let chain = store.author_chain(&shared.key.id()).unwrap();
    assert!(chain.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64 + 1), "own chain has no gap");
    let mut summaries = Vec::new();
    store
        .all_summaries(|s| {
            summaries.push(s);
            true
        })
        .unwrap();
    for s in summaries {
        let state = fold_records(store, &shared.policies(), &shared.trust(), &load_case_records(store, &s.id).unwrap()).unwrap();
        assert_eq!(s, CaseSummary::of(&state));
    }
}

#[test]
fn a_group_prepared_while_the_previous_is_written_sees_its_changes() {
    let (_dir, mut w, store, shared) = city();
    let (r, mut rx) = replies(1);
    let c1 = w.turn(&store, vec![file()], r).expect("something to write");
    let case = case_of(&c1);
    // Prepared on top of the filing before it is written: the case, its
    // records and the own chain head come from the group in flight.
    let g2 = w.prepare_group(&store, vec![act(case, Action::SignFor)]);
    assert!(g2.results.iter().all(|r| r.is_ok()), "{:?}", g2.results);
    assert!(w.inflight.as_ref().is_some_and(|f| !f.settled()), "prepared without waiting for the write");
    c1.run(&store, &shared);
    stepped(rx.remove(0)).unwrap();
    let (r, mut rx) = replies(1);
    let c2 = w.hand_off(g2, r).expect("something to write");
    let g3 = w.prepare_group(&store, vec![act(case, Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None })]);
    c2.run(&store, &shared);
    stepped(rx.remove(0)).unwrap();
    let (r, mut rx) = replies(1);
    w.hand_off(g3, r).expect("something to write").run(&store, &shared);
    stepped(rx.remove(0)).unwrap();
    w.settle().unwrap();
    let summary = store.case_summary(&case).unwrap().unwrap();
    assert_eq!(summary.events, 3);
    assert_eq!(summary.status, zongzhi_protocol::workflow::Status::Handling);
    assert_eq!(*shared.feed.borrow(), store.feed_len().unwrap());
    consistent(&w);
}

#[test]
fn a_failed_write_fails_the_group_built_on_it_and_the_writer_resumes_from_what_is_durable() {
    let (_dir, mut w, store, shared) = city();
    let feed_before = store.feed_len().unwrap();
    let (r, _rx) = replies(1);
    let c1 = w.turn(&store, vec![file()], r).expect("something to write");
    let case = case_of(&c1);
    let g2 = w.prepare_group(&store, vec![act(case, Action::SignFor), file()]);
    assert!(g2.results.iter().all(|r| r.is_ok()));
    // The commit thread's write fails (disk full): nothing of it is stored.
    let Commit { done, .. } = c1;
    done.send(Err("no space left on device".into())).unwrap();
    let (r, mut rx) = replies(2);
    assert!(w.hand_off(g2, r).is_none(), "nothing built on a failed write is written");
    for rx in rx.drain(..) {
        let err = stepped(rx).unwrap_err().to_string();
        assert!(err.contains("write failed") && err.contains("no space left"), "{err}");
    }
    assert_eq!(store.feed_len().unwrap(), feed_before);
    assert!(store.case_summary(&case).unwrap().is_none());
    // The next group starts from the durable position again.
    let (r, mut rx) = replies(1);
    w.turn(&store, vec![file()], r).expect("something to write").run(&store, &shared);
    let ack = stepped(rx.remove(0)).unwrap();
    w.settle().unwrap();
    assert_eq!(store.feed_len().unwrap(), feed_before + 1);
    assert!(store.case_summary(&ack.case).unwrap().is_some());
    let (r, mut rx) = replies(1);
    w.turn(&store, vec![act(ack.case, Action::SignFor)], r).expect("something to write").run(&store, &shared);
    stepped(rx.remove(0)).unwrap();
    w.settle().unwrap();
    consistent(&w);
}

#[test]
fn received_records_build_on_a_group_still_being_written() {
    let (_dir, mut w, store, shared) = city();
    // A county the city certifies; it sends a filing, then a sign-for
    // naming the filing, in two batches.
    let (county, division) = certify_county(&mut w, &shared, 5);
    let sign = |seq: u64, prev: Option<RecordId>, case: Option<RecordId>, action: Action| {
        let event = CaseEvent { case, parents: case.into_iter().collect(), unit: division, operator: "op".into(), action, policy: 1 };
        Record::sign(&county, Header { seq, prev, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event))
    };
    let filed = sign(1, None, None, Action::File(Box::new(filing(format!("{division}-2026-000001")))));
    let signed_for = sign(2, Some(filed.id), Some(filed.id), Action::SignFor);
    let ingest = |records: Vec<Record>, upto: u64| Op::Ingest { records, blobs: vec![], cursor: Some(Cursor { peer: county.id(), direction: DIRECTION_UP, epoch: [1; 16], upto, in_order: true }) };
    let ingested = |r: &Result<Outcome>| match r {
        Ok(Outcome::Ingested(report)) => report.clone(),
        other => panic!("unexpected {other:?}"),
    };
    let (r, _rx) = replies(1);
    let c1 = w.turn(&store, vec![ingest(vec![filed.clone()], 1)], r).expect("something to write");
    // While the filing is being written: its parent is known, the chain
    // continues (no gap alarm), nothing waits.
    let g2 = w.prepare_group(&store, vec![ingest(vec![signed_for.clone()], 2)]);
    let report = ingested(&g2.results[0]);
    assert_eq!((report.applied, report.pending, report.rejected.len(), report.missing.len()), (1, 0, 0, 0), "{report:?}");
    c1.run(&store, &shared);
    let (r, _rx) = replies(1);
    let c2 = w.hand_off(g2, r).expect("something to write");
    // The same record again while the sign-for is being written: a duplicate.
    let g3 = w.prepare_group(&store, vec![ingest(vec![signed_for], 2)]);
    assert_eq!(ingested(&g3.results[0]).duplicates, 1);
    c2.run(&store, &shared);
    let (r, _rx) = replies(1);
    w.hand_off(g3, r).expect("the cursor is written").run(&store, &shared);
    w.settle().unwrap();
    assert_eq!(store.alarm_count().unwrap(), 0, "no chain gap or equivocation raised");
    let summary = store.case_summary(&filed.id).unwrap().unwrap();
    assert_eq!((summary.events, summary.status), (2, zongzhi_protocol::workflow::Status::Accepted));
    assert_eq!(store.author_chain(&county.id()).unwrap().len(), 2);
    consistent(&w);
}

/// A step that arrives before its parent in the same group (as a 督办
/// sent ahead of the dispatch that brings its case down) waits, and is
/// applied when the parent lands later in that group, whether in the
/// same ingest or in a later one of the group.
#[test]
fn a_step_parked_in_a_group_is_applied_when_its_parent_lands_in_that_group() {
    let (_dir, mut w, store, shared) = city();
    let (county, division) = certify_county(&mut w, &shared, 6);
    let sign = |seq: u64, prev: Option<RecordId>, case: Option<RecordId>, action: Action| {
        let event = CaseEvent { case, parents: case.into_iter().collect(), unit: division, operator: "op".into(), action, policy: 1 };
        Record::sign(&county, Header { seq, prev, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event))
    };
    let ingest = |records: Vec<Record>| Op::Ingest { records, blobs: vec![], cursor: None };
    let mut last: Option<RecordId> = None;
    for (n, split) in [(1u32, false), (2, true)] {
        let filed = sign(2 * n as u64 - 1, last, None, Action::File(Box::new(filing(format!("{division}-2026-00000{n}")))));
        let signed_for = sign(2 * n as u64, Some(filed.id), Some(filed.id), Action::SignFor);
        last = Some(signed_for.id);
        let ops = if split { vec![ingest(vec![signed_for.clone()]), ingest(vec![filed.clone()])] } else { vec![ingest(vec![signed_for.clone(), filed.clone()])] };
        let (r, _rx) = replies(ops.len());
        w.turn(&store, ops, r).expect("something to write").run(&store, &shared);
        w.settle().unwrap();
        let summary = store.case_summary(&filed.id).unwrap().unwrap();
        assert_eq!((summary.events, summary.status), (2, zongzhi_protocol::workflow::Status::Accepted), "split: {split}");
        assert_eq!(store.pending_count(10).unwrap(), 0, "nothing left waiting (split: {split})");
    }
    consistent(&w);
}

fn contact_after_its_case(local: bool) {
    use zongzhi_protocol::case::Contact;
    let (_dir, mut w, store, shared) = city();
    let (county, division) = certify_county(&mut w, &shared, 7);
    let contact = Contact { name: "王芳".into(), phone: "13812345678".into(), id_number: String::new(), address: String::new() };
    let bytes = contact.to_bytes();
    let hash = BlobHash::of(&bytes);
    let mut f = filing(format!("{division}-2026-000001"));
    f.contact = Some(hash);
    let event = CaseEvent { case: None, parents: vec![], unit: division, operator: "op".into(), action: Action::File(Box::new(f)), policy: 1 };
    let filed = Record::sign(&county, Header { seq: 1, prev: None, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event));
    let phone = |store: &Store| crate::search::search(store, "138-1234-5678", true, 10, None).unwrap().cases.len();
    w.run(Op::Ingest { records: vec![filed], blobs: vec![], cursor: None }).unwrap();
    assert_eq!(phone(&store), 0, "the contact is not held yet");
    if local {
        // The same person files here: the contact comes with the filing.
        let mut f = filing(String::new());
        f.contact = None;
        w.run(Op::File { filing: Box::new(f), contact: Some(contact.clone()), query_code: None, operator: "op".into() }).unwrap();
        assert_eq!(phone(&store), 2, "both cases are filed under the phone");
    } else {
        w.run(Op::Ingest { records: vec![], blobs: vec![(hash, bytes.clone())], cursor: None }).unwrap();
        assert_eq!(phone(&store), 1, "filed under the phone once the contact arrives");
    }
    // The same blob again files nothing twice.
    w.run(Op::Ingest { records: vec![], blobs: vec![(hash, bytes)], cursor: None }).unwrap();
    assert_eq!(phone(&store), if local { 2 } else { 1 });
    consistent(&w);
    // Reindex files the same.
    let before = store.derived_dump().unwrap();
    crate::ledger::reindex(&store, &shared.policies(), &shared.trust()).unwrap();
    assert!(store.derived_dump().unwrap() == before, "reindex changed the derived data");
}

/// A complainant's contact that arrives in a later batch than the case's
/// events still files the case under the phone number.
#[test]
fn a_contact_arriving_after_its_case_is_searchable_by_phone() {
    contact_after_its_case(false);
}

/// … and so does one that arrives with a local filing by the same person
/// (found by the simulator's reindex check).
#[test]
fn a_contact_filed_here_after_a_replicated_case_files_that_case_too() {
    contact_after_its_case(true);
}

/// A child's own chain is checked for gaps only in batches that continue
/// its feed: the urgent cases sent ahead of a catch-up, and records
/// waiting here for their parents, are not gaps (every urgent catch-up
/// raised false alarms before; found by the simulator's alarm check).
#[test]
fn only_a_real_gap_in_a_childs_chain_is_an_alarm() {
    let (_dir, mut w, store, shared) = city();
    let (county, division) = certify_county(&mut w, &shared, 7);
    let mut chain: Vec<Record> = Vec::new();
    let mut sign = |case: Option<RecordId>, action: Action| {
        let prev = chain.last().map(|r| r.id);
        let event = CaseEvent { case, parents: case.into_iter().collect(), unit: division, operator: "op".into(), action, policy: 1 };
        let r = Record::sign(&county, Header { seq: chain.len() as u64 + 1, prev, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event));
        chain.push(r.clone());
        r
    };
    let a = sign(None, Action::File(Box::new(filing(format!("{division}-2026-000001")))));
    let b = sign(Some(a.id), Action::SignFor);
    let urgent = sign(None, Action::File(Box::new(filing(format!("{division}-2026-000002")))));
    let unknown_case = RecordId([9; 32]);
    let parked = sign(Some(unknown_case), Action::SignFor);
    let after_parked = sign(Some(a.id), Action::Progress { note: "再进展".into(), public: true });
    let ingest =
        |records: Vec<Record>, upto: u64, in_order: bool| Op::Ingest { records, blobs: vec![], cursor: Some(Cursor { peer: county.id(), direction: DIRECTION_UP, epoch: [1; 16], upto, in_order }) };
    // The urgent case first (the cursor stays), then the feed in order.
    w.run(ingest(vec![urgent.clone()], 0, false)).unwrap();
    w.run(ingest(vec![a.clone(), b.clone(), urgent], 3, true)).unwrap();
    // Seq 4 waits for a case not held here; seq 5 follows it: no gap.
    w.run(ingest(vec![parked], 4, true)).unwrap();
    w.run(ingest(vec![after_parked], 5, true)).unwrap();
    // The same records again out of feed order: nothing to check.
    w.settle().unwrap();
    assert_eq!(store.pending_count(10).unwrap(), 1);
    assert_eq!(store.alarm_count().unwrap(), 0, "{:?}", store.alarms::<Alarm>().unwrap());
    // A continuing batch that skips a record: a gap, with proof.
    let _never_sent = sign(Some(a.id), Action::Progress { note: "未送达".into(), public: true });
    let seventh = sign(Some(a.id), Action::Progress { note: "第七条".into(), public: true });
    w.run(ingest(vec![seventh], 7, true)).unwrap();
    w.settle().unwrap();
    let alarms: Vec<Alarm> = store.alarms().unwrap();
    assert_eq!(alarms.iter().map(|x| (x.kind.as_str(), x.seq)).collect::<Vec<_>>(), vec![("chain_gap", 7)], "{alarms:?}");
    consistent(&w);
}

/// A signed record of `county` (chain `seq`, `prev`) in `format`.
fn county_record(county: &NodeKey, seq: u64, prev: Option<RecordId>, format: u8, body: Body) -> Record {
    Record::sign_as(county, format, Header { seq, prev, hlc: Hlc { wall_ms: now_ms() + seq, counter: 0 } }, body).unwrap()
}

fn county_event(division: DivisionCode, case: Option<RecordId>, parents: Vec<RecordId>, action: Action) -> Body {
    Body::CaseEvent(CaseEvent { case, parents, unit: division, operator: "op".into(), action, policy: 1 })
}

/// UPGRADES.md §5: a node on a release that reads format 3 only receives
/// a case's format-4 step, a format-3 step that follows it and a step of a
/// format no release reads yet. The batch is stored with its cursor (the
/// link goes on), the three are held aside with their reasons, the case
/// takes no step here; after the upgrade the two it can now read are
/// taken in, in causal order, and the case is what a node that read them
/// directly folds; the third stays held. `reindex` rebuilds the same marks.
#[test]
fn records_of_a_newer_format_are_held_aside_and_taken_in_after_the_upgrade() {
    let (_dir, mut w, store, shared) = city();
    let (county, division) = certify_county(&mut w, &shared, 2);
    drop(w);
    let mut old = shared.clone();
    old.caps = Arc::new(crate::release::Capabilities::of_release("0.1.0").unwrap());
    let mut w = Writer::new(old).unwrap();

    let filed = county_record(&county, 1, None, 3, county_event(division, None, vec![], Action::File(Box::new(filing("330106000000-2026-000001".into())))));
    let note = |text: &str| Action::Progress { note: text.into(), public: false };
    let p1 = county_record(&county, 2, Some(filed.id), 4, county_event(division, Some(filed.id), vec![filed.id], note("格式4")));
    let p2 = county_record(&county, 3, Some(p1.id), 3, county_event(division, Some(filed.id), vec![p1.id], note("之后的格式3")));
    // Format 5: the frozen prefix, then a variant no release has.
    let mut payload = zongzhi_protocol::codec::encode(&Header { seq: 4, prev: Some(p2.id), hlc: Hlc { wall_ms: now_ms() + 4, counter: 0 } });
    let prefix = zongzhi_protocol::format::CasePrefix { case: Some(filed.id), parents: vec![p2.id], unit: division, operator: "op".into() };
    zongzhi_protocol::codec::encode_into(&prefix, &mut payload);
    zongzhi_protocol::codec::encode_into(&99u32, &mut payload);
    let future = Record::sign_raw(&county, 5, 1, payload).unwrap();
    let cursor = Cursor { peer: county.id(), direction: DIRECTION_UP, epoch: [3; 16], upto: 4, in_order: true };
    let records = vec![filed.clone(), p1.clone(), p2.clone(), future.clone()];
    let report = match w.run(Op::Ingest { records: records.clone(), blobs: vec![], cursor: Some(cursor) }).unwrap() {
        Outcome::Ingested(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((report.applied, report.parked, report.rejected.len()), (1, 3, 0), "{report:?}");
    assert_eq!(report.parked_needs, 5);
    assert_eq!(store.cursor(&county.id(), DIRECTION_UP).unwrap(), Some(([3; 16], 4)), "the batch's cursor is stored: the link goes on");
    assert!(store.alarm_count().unwrap() == 0, "no chain gap: the held records are in the author's chain");
    let held: Vec<(RecordId, u8)> = store.parked().unwrap().into_iter().map(|(id, e)| (id, e.needs)).collect();
    assert_eq!(held, vec![(p1.id, 4), (p2.id, 4), (future.id, 5)]);
    match w.run(act(filed.id, note("本地"))) {
        Err(LedgerError::NeedsUpgrade { format: 5, .. }) => {}
        other => panic!("a case with a step held aside takes no step here: {other:?}"),
    }
    // Sent again (a resend after a cut): held records count as held.
    match w.run(Op::Ingest { records: records.clone(), blobs: vec![], cursor: None }).unwrap() {
        Outcome::Ingested(r) => assert_eq!((r.duplicates, r.parked), (4, 0)),
        other => panic!("{other:?}"),
    }
    drop(w);

    // The upgrade: this build reads format 4.
    let mut w = Writer::new(shared.clone()).unwrap();
    match w.run(Op::Unpark).unwrap() {
        Outcome::Ingested(r) => assert_eq!((r.applied, r.rejected.len()), (2, 0), "{r:?}"),
        other => panic!("{other:?}"),
    }
    let held: Vec<RecordId> = store.parked().unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(held, vec![future.id], "the format-5 step stays held");
    consistent(&w);
    let state = fold_records(&store, &shared.policies(), &shared.trust(), &load_case_records(&store, &filed.id).unwrap()).unwrap();
    let direct =
        zongzhi_protocol::workflow::fold(&shared.policies(), &*shared.trust(), &[&filed, &p1, &p2].iter().filter_map(|r| zongzhi_protocol::workflow::EventRef::from_record(r)).collect::<Vec<_>>())
            .unwrap();
    assert_eq!(state, direct, "taken in after the upgrade = read at once");
    // Rebuilt from the records: the same marks and summaries.
    let before = store.parked().unwrap();
    crate::ledger::reindex(&store, &shared.policies(), &shared.trust()).unwrap();
    assert_eq!(store.parked().unwrap(), before);
    consistent(&w);
}
