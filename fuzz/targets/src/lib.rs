//! Fuzz targets for zongzhi that run on stable Rust.
//!
//! Each target is a function of `&[u8]` that must never panic: a panic is a
//! bug (a crash, or a broken invariant checked with `assert!`). The targets
//! return an "outcome class" (for example the error variant a decoder gave),
//! which the coverage-free driver in [`run_with`] uses to keep inputs that
//! reach something new.
//!
//! The same functions back the cargo-fuzz targets in `fuzz/fuzz_targets/`
//! (nightly, libFuzzer) and the `zongzhi-fuzz` binary here (stable, the
//! mutation driver below).

use std::collections::{BTreeSet, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;
use zongzhi_protocol::case::{Channel, Complexity, Place, Rating, RequestType, RouteTarget, SuperviseGrade, Urgency};
use zongzhi_protocol::codec;
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::policy::document::{PatchError, PolicyDoc, apply_patch};
use zongzhi_protocol::record::RecordError;
use zongzhi_protocol::step::ActionRequest;
use zongzhi_protocol::sync::Frame;
use zongzhi_protocol::workflow::{CaseState, EventRef, NoRevocations, fold};
use zongzhi_protocol::{Action, Body, CaseEvent, DivisionCode, Filing, Header, Hlc, NodeKey, Policy, Record, RecordId};

/// The names of all targets.
pub const TARGETS: &[&str] = &["record", "frame", "policy_json", "action_json", "fold_orders"];

/// A target: input bytes to an outcome class.
pub type Target = fn(&[u8]) -> String;

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    Some(match name {
        "record" => record,
        "frame" => frame,
        "policy_json" => policy_json,
        "action_json" => action_json,
        "fold_orders" => fold_orders,
        _ => return None,
    })
}

/// An error as an outcome class: its variant and the first plain words of
/// its message (no numbers, paths or quoted input), so messages that quote
/// the input do not make endless classes.
fn class<E: std::fmt::Debug + std::fmt::Display>(prefix: &str, e: &E) -> String {
    let debug = format!("{e:?}");
    let variant: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let display = e.to_string();
    let words: Vec<String> = display
        .split_whitespace()
        // A word before a colon names what the message is about (often a
        // key from the input): leave it out.
        .filter(|w| !w.ends_with(':'))
        .map(|w| w.trim_end_matches([',', '.', ';']))
        .filter(|w| !w.is_empty() && w.len() <= 16 && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .take(8)
        .map(String::from)
        .collect();
    format!("{prefix}:{variant}:{}", words.join(" "))
}

// ---------------------------------------------------------------- record

/// Division codes used by the structured targets.
const UNITS: &[&str] = &["330102001001", "330102001000", "330102000000", "330102001002", "330100000000"];

fn unit(i: usize) -> DivisionCode {
    match UNITS[i % UNITS.len()].parse() {
        Ok(d) => d,
        Err(_) => panic!("fixed division code {} does not parse", UNITS[i % UNITS.len()]),
    }
}

/// Decodes arbitrary bytes as a record (unverified and verified) and checks
/// what a decoded record promises; then builds, signs and decodes a record
/// from the same bytes read as structured input.
pub fn record(data: &[u8]) -> String {
    let raw = record_raw(data);
    let built = record_structured(data);
    format!("{raw}|{built}")
}

fn record_raw(data: &[u8]) -> String {
    let unverified = Record::decode_unverified(data);
    let verified = Record::decode(data);
    match &unverified {
        Err(e) => {
            assert_eq!(verified.as_ref().err(), Some(e), "decode and decode_unverified disagree on malformed bytes");
            class("err", e)
        }
        Ok(r) => {
            assert_eq!(r.bytes(), data, "a record keeps the bytes it came from");
            assert_eq!(r.id, RecordId::of(data), "the id is the hash of the bytes");
            let again = Record::decode_unverified(r.bytes()).expect("a decoded record's bytes decode again");
            assert_eq!(&again, r, "decoding the same bytes twice differs");
            // Canonical envelope: the bytes are the one encoding of what was
            // decoded, so two byte strings never decode to the same record
            // (the id would differ for one signed content).
            let envelope = codec::encode(&(r.format, r.kind_byte(), r.author.0, r.payload().to_vec(), *r.signature()));
            assert_eq!(envelope, data, "the envelope is not the canonical encoding of the decoded record");
            match &verified {
                Ok(v) => assert_eq!(v, r, "verified and unverified decodes differ"),
                Err(e) => assert!(matches!(e, RecordError::Signature(_)), "decode failed after decode_unverified succeeded, not on the signature: {e:?}"),
            }
            // The payload is signed, so only its author can write it in a
            // non-minimal form; note it as a class, not as a failure.
            // (An unreadable record, of a newer format, keeps its bytes as they came.)
            let canonical_payload = match r.encode_again() {
                Ok(payload) if payload == r.payload() => "",
                Ok(_) => ":payload-not-minimal",
                Err(_) => ":unreadable",
            };
            let sig = if verified.is_ok() { "verified" } else { "bad-signature" };
            format!("ok:{}:{sig}{canonical_payload}", r.kind().map_or("unknown", |k| k.as_str()))
        }
    }
}

/// A small, structured description of a case event, read from fuzz input.
#[derive(Debug, Arbitrary)]
struct EventInput {
    seed: [u8; 32],
    seq: u64,
    prev: [u8; 32],
    wall_ms: u64,
    counter: u32,
    case: Option<[u8; 32]>,
    parents: Vec<[u8; 32]>,
    unit: u8,
    operator: String,
    policy: u32,
    action: ActionInput,
}

#[derive(Debug, Arbitrary)]
enum ActionInput {
    SignFor,
    Archive,
    Progress { note: String, public: bool },
    Route { window: String, requirements: String, due_ms: Option<u64> },
    Escalate { reason: String },
    Reroute { window: String, reason: String },
    AddHelpers { units: Vec<u8>, windows: Vec<String> },
    RequestExtension { working_days: u32, reason: String },
    DecideExtension { approve: bool, note: String },
    Supervise { grade: u8, note: String },
    Rate { rating: u8, comment: String },
    CitizenRate { token: [u8; 16], rating: u8, result: u8, comment: String },
    Appeal { reason: String },
    DecideAppeal { upheld: bool, note: String },
    Merge { into: [u8; 32] },
    Attach { blob: [u8; 32], name: String, mime: String, size: u64 },
    File { title: String, content: String, category: String, received_at_ms: u64, lat: Option<i32>, amount: Option<u64>, flags: u8 },
}

impl ActionInput {
    fn build(self) -> Action {
        match self {
            ActionInput::SignFor => Action::SignFor,
            ActionInput::Archive => Action::Archive,
            ActionInput::Progress { note, public } => Action::Progress { note, public },
            ActionInput::Route { window, requirements, due_ms } => Action::Route { window, requirements, due_ms },
            ActionInput::Escalate { reason } => Action::Escalate { reason },
            ActionInput::Reroute { window, reason } => Action::Reroute { target: RouteTarget::Window(window), reason },
            ActionInput::AddHelpers { units, windows } => {
                Action::AddHelpers { helpers: units.into_iter().map(|u| RouteTarget::Unit(unit(u as usize))).chain(windows.into_iter().map(RouteTarget::Window)).collect() }
            }
            ActionInput::RequestExtension { working_days, reason } => Action::RequestExtension { working_days, reason },
            ActionInput::DecideExtension { approve, note } => Action::DecideExtension { approve, note },
            ActionInput::Supervise { grade, note } => Action::Supervise { grade: SuperviseGrade::ALL[grade as usize % SuperviseGrade::ALL.len()], note },
            ActionInput::Rate { rating, comment } => Action::Rate { rating: Rating::ALL[rating as usize % Rating::ALL.len()], comment, result_rating: None },
            ActionInput::CitizenRate { token, rating, result, comment } => {
                Action::CitizenRate { token, rating: Rating::ALL[rating as usize % Rating::ALL.len()], result_rating: Rating::ALL[result as usize % Rating::ALL.len()], comment }
            }
            ActionInput::Appeal { reason } => Action::Appeal { reason },
            ActionInput::DecideAppeal { upheld, note } => Action::DecideAppeal { upheld, note },
            ActionInput::Merge { into } => Action::Merge { into: RecordId(into) },
            ActionInput::Attach { blob, name, mime, size } => Action::Attach { blob: zongzhi_protocol::BlobHash(blob), name, mime, size },
            ActionInput::File { title, content, category, received_at_ms, lat, amount, flags } => Action::File(Box::new(Filing {
                number: "330102001001-2026-000001".into(),
                title,
                content,
                category,
                request_type: RequestType::ALL[flags as usize % RequestType::ALL.len()],
                channel: Channel::ALL[(flags >> 3) as usize % Channel::ALL.len()],
                urgency: if flags & 0x40 != 0 { Urgency::Urgent } else { Urgency::Normal },
                complexity: if flags & 0x80 != 0 { Complexity::Complex } else { Complexity::General },
                place: Place { address: String::new(), lat_e6: lat, lon_e6: None },
                occurred_at_ms: None,
                received_at_ms,
                people_involved: u32::from(flags),
                amount_fen: amount,
                contact: None,
                intake: Default::default(),
            })),
        }
    }
}

fn record_structured(data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    let Ok(input) = EventInput::arbitrary(&mut u) else {
        return "built:none".into();
    };
    let seq = input.seq.max(1);
    let header = Header { seq, prev: (seq > 1).then_some(RecordId(input.prev)), hlc: Hlc { wall_ms: input.wall_ms, counter: input.counter } };
    let action = input.action.build();
    let name = action.as_str();
    let event = CaseEvent {
        case: input.case.map(RecordId),
        parents: input.parents.into_iter().map(RecordId).collect(),
        unit: unit(input.unit as usize),
        operator: input.operator,
        policy: input.policy,
        action,
    };
    let key = NodeKey::from_seed(input.seed);
    let body = Body::CaseEvent(event);
    let r = Record::sign(&key, header, body.clone());
    assert_eq!(r.header, header, "signing changed the header");
    assert_eq!(r.body, body, "signing changed the body");
    assert_eq!(r.author, key.id());
    assert_eq!(r.id, RecordId::of(r.bytes()));
    let back = Record::decode(r.bytes()).expect("a freshly signed record decodes and verifies");
    assert_eq!(back, r, "a signed record does not round-trip");
    assert_eq!(Record::decode_unverified(r.bytes()).expect("decodes unverified"), r);
    // The raw checks hold for what we signed too.
    let raw = record_raw(r.bytes());
    assert!(raw.starts_with("ok:case_event:verified"), "a signed record is classed {raw}");
    format!("built:{name}")
}

// ---------------------------------------------------------------- frame

/// Decodes a sync frame body; a decoded frame must survive encoding and
/// decoding again unchanged, and its re-encoding is a fixed point.
pub fn frame(data: &[u8]) -> String {
    let f = match Frame::decode(data) {
        Ok(f) => f,
        Err(e) => return class("err", &e),
    };
    let wire = f.to_wire();
    let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
    assert_eq!(Frame::check_len(len).expect("a decoded frame fits the frame limit"), wire.len() - 4);
    let again = Frame::decode(&wire[4..]).expect("a re-encoded frame decodes");
    assert_eq!(again, f, "frame does not round-trip");
    assert_eq!(again.to_wire(), wire, "re-encoding is not a fixed point");
    let canonical = if wire[4..] == *data { "" } else { ":not-minimal" };
    let kind = match &f {
        Frame::Hello { chain, .. } => {
            records_class(chain);
            "hello"
        }
        Frame::Subscribe { .. } => "subscribe",
        Frame::Batch { records, .. } => {
            records_class(records);
            "batch"
        }
        Frame::Ack { .. } => "ack",
        Frame::Refuse { .. } => "refuse",
        Frame::Want { .. } => "want",
        Frame::Received { .. } => "received",
        Frame::Status { .. } => "status",
    };
    format!("ok:{kind}{canonical}")
}

/// Records carried in a frame go through the record checks too.
fn records_class(records: &[Vec<u8>]) {
    for r in records.iter().take(4) {
        record_raw(r);
    }
}

// ---------------------------------------------------------------- policy_json

/// Applies arbitrary bytes, read as JSON, as a merge patch to the default
/// policy. An accepted patch must give a valid policy, applying it again
/// must change nothing, and the policy must survive its document form and
/// its wire encoding.
pub fn policy_json(data: &[u8]) -> String {
    let Ok(patch) = serde_json::from_slice::<Value>(data) else {
        return "not-json".into();
    };
    let base = default_policy();
    match apply_patch(base, &patch) {
        Err(e) => class("err", &e),
        Ok((next, changes)) => {
            check_accepted_patch(base, &patch, &next, &changes);
            format!("ok:{}", changes.iter().map(|c| c.path.split('/').next().unwrap_or("")).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(","))
        }
    }
}

fn check_accepted_patch(base: &Policy, patch: &Value, next: &Policy, changes: &[zongzhi_protocol::policy::document::Change]) {
    assert!(!changes.is_empty(), "an accepted patch lists no change");
    assert_eq!(next.version, base.version + 1);
    if let Err(e) = next.validate(Some(base)) {
        panic!("accepted patch gives an invalid policy: {e}");
    }
    if let Err(e) = next.validate(None) {
        panic!("accepted patch gives a policy invalid on its own: {e}");
    }
    match apply_patch(next, patch) {
        Err(PatchError::NoChange(v)) => assert_eq!(v, next.version),
        other => panic!("the same patch applied twice is not a no-change: {other:?}"),
    }
    let doc = PolicyDoc::of(next);
    match doc.to_policy(next.version, next) {
        Ok(p) => assert_eq!(&p, next, "policy does not survive its document form"),
        Err(e) => panic!("the document of an accepted policy is refused: {e}"),
    }
    let json = serde_json::to_value(&doc).expect("a policy document serializes");
    let doc2: PolicyDoc = serde_json::from_value(json).expect("a serialized policy document reads back");
    assert_eq!(doc2, doc, "policy document does not survive JSON");
    let bytes = codec::encode(next);
    let decoded: Policy = codec::decode(&bytes, codec::MAX_DECODE_BYTES).expect("an encoded policy decodes");
    assert_eq!(&decoded, next, "policy does not survive the wire encoding");
}

fn default_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(Policy::default_policy)
}

// ---------------------------------------------------------------- action_json

/// Reads arbitrary bytes as the JSON body of a workflow step (what
/// `POST /api/cases/{id}/actions` parses, through the same
/// `protocol::step` functions) and takes the action on a case in each
/// state of the workflow, as its owner and as the level above. An
/// accepted body gives an action that survives the record encoding; the
/// fold applies or rejects it by a named rule, never panics; a rejected
/// step leaves the case's status, owner and clocks as they were.
pub fn action_json(data: &[u8]) -> String {
    let req = match ActionRequest::from_json(data) {
        Ok(r) => r,
        Err(_) => return "not-a-step".into(),
    };
    let admin = req.needs_admin();
    let merge_into = req.merge_target().map(|_| RecordId([7; 32]));
    let invite = req.wants_rating_invite(true).then_some(zongzhi_protocol::case::RatingInvite { token_hash: [1; 32], expires_ms: u64::MAX });
    let action = match req.into_action(merge_into, invite) {
        Ok(a) => a,
        Err(e) => return class("refused", &e),
    };
    let name = action.as_str();
    let mut outcomes = Vec::new();
    for prefix in PREFIXES {
        let mut recs = case_with_steps(prefix);
        let before = fold_of(&recs.iter().collect::<Vec<_>>()).unwrap_or_else(|e| panic!("the prefix {prefix:?} does not fold: {e}"));
        for who in [0usize, 1] {
            let last = recs[recs.len() - 1].id;
            let step = sign_step(who, recs.len() as u64, Some(recs[0].id), vec![last], action.clone());
            let decoded = Record::decode(step.bytes()).unwrap_or_else(|e| panic!("a signed {name} does not decode: {e}"));
            assert_eq!(decoded.body, step.body, "a {name} does not survive the record encoding");
            recs.push(step);
            let after = fold_of(&recs.iter().collect::<Vec<_>>()).unwrap_or_else(|e| panic!("{name} after {prefix:?} does not fold: {e}"));
            assert_eq!(after.timeline.len(), recs.len(), "every event is in the timeline");
            match &after.timeline[recs.len() - 1].outcome {
                Ok(()) => outcomes.push('+'),
                Err(r) => {
                    assert!(!r.rule.is_empty(), "a rejection names its rule");
                    assert_eq!((after.status, after.owner, &after.deadlines), (before.status, before.owner, &before.deadlines), "a rejected {name} changed the case");
                    outcomes.push('-');
                }
            }
            recs.pop();
        }
    }
    format!("ok:{name}:{}:{}", if admin { "admin" } else { "operator" }, outcomes.into_iter().collect::<String>())
}

/// The steps before the fuzzed one: a case in each state of the workflow.
const PREFIXES: &[&[u8]] = &[&[], &[0], &[0, 1], &[0, 9], &[0, 9, 10], &[0, 9, 10, 11], &[0, 2]];

/// A filing by the village (key 0) followed by `steps` (as `step_action`
/// numbers) taken by it, each naming the one before.
fn case_with_steps(steps: &[u8]) -> Vec<Record> {
    let first = sign_step(0, 0, None, vec![], filing());
    let mut recs = vec![first];
    for (i, a) in steps.iter().enumerate() {
        let last = recs[recs.len() - 1].id;
        recs.push(sign_step(0, i as u64 + 1, Some(recs[0].id), vec![last], step_action(*a, 0)));
    }
    recs
}

/// A case event by key `who` (unit `who`), `n` minutes after the filing.
/// Every one is its author's first record: the fold does not follow
/// authors' chains, the ingest in front of it does.
fn sign_step(who: usize, n: u64, case: Option<RecordId>, parents: Vec<RecordId>, action: Action) -> Record {
    let header = Header { seq: 1, prev: None, hlc: Hlc { wall_ms: T0 + n * 60_000, counter: who as u32 } };
    Record::sign(&keys()[who], header, Body::CaseEvent(CaseEvent { case, parents, unit: unit(who), operator: "op".into(), action, policy: 1 }))
}

// ---------------------------------------------------------------- fold_orders

fn policy_set() -> &'static PolicySet {
    static S: OnceLock<PolicySet> = OnceLock::new();
    S.get_or_init(|| default_policy().clone().into())
}

fn keys() -> &'static [NodeKey] {
    static K: OnceLock<Vec<NodeKey>> = OnceLock::new();
    K.get_or_init(|| (0..4u8).map(|i| NodeKey::from_seed([i + 1; 32])).collect())
}

// 2026-11-02 09:00 China time (a Monday).
const T0: u64 = 1_794_906_000_000;

fn filing() -> Action {
    Action::File(Box::new(Filing {
        number: "330102001001-2026-000001".into(),
        title: "邻居装修噪音扰民".into(),
        content: "楼上装修每天早上七点开始施工".into(),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::OnSite,
        urgency: Urgency::Normal,
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

fn step_action(action: u8, who: u8) -> Action {
    match action % 17 {
        0 => Action::SignFor,
        1 => Action::Route { window: "police".into(), requirements: String::new(), due_ms: None },
        2 => Action::Escalate { reason: "r".into() },
        3 => Action::Dispatch { to: unit(3), requirements: String::new(), due_ms: None },
        4 => Action::Return { reason: "r".into() },
        5 => Action::Reroute { target: RouteTarget::Window("justice".into()), reason: "r".into() },
        6 => Action::RequestExtension { working_days: 2, reason: "r".into() },
        7 => Action::DecideExtension { approve: who.is_multiple_of(2), note: "n".into() },
        8 => Action::Supervise { grade: SuperviseGrade::ALL[who as usize % 4], note: "n".into() },
        9 => Action::Resolve { public_reply: "done".into(), internal_note: String::new() },
        10 => Action::Feedback { method: "phone".into(), note: "n".into(), invite: None },
        11 => Action::Rate { rating: Rating::ALL[who as usize % 3], comment: String::new(), result_rating: None },
        12 => Action::Reopen { reason: "r".into() },
        13 => Action::Archive,
        14 => Action::AddHelpers { helpers: vec![RouteTarget::Window("health".into())] },
        15 => Action::Merge { into: RecordId([who; 32]) },
        _ => Action::Progress { note: "n".into(), public: who.is_multiple_of(3) },
    }
}

/// Builds one case from the input: a filing, then up to 12 steps by units
/// of a small tree, each naming as parents the latest event and maybe an
/// older one (concurrent branches), many of them against the rules. The
/// HLCs may tie across authors, so the tie-break by id is exercised.
fn build_case(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<Record>> {
    let keys = keys();
    let mut chain: Vec<(u64, Option<RecordId>)> = vec![(0, None); keys.len()];
    let mut clock = T0;
    let mut sign = |who: usize, clock: u64, case: Option<RecordId>, parents: Vec<RecordId>, operator: String, action: Action| {
        let (seq, prev) = &mut chain[who];
        *seq += 1;
        let header = Header { seq: *seq, prev: *prev, hlc: Hlc { wall_ms: clock, counter: 0 } };
        let body = Body::CaseEvent(CaseEvent { case, parents, unit: unit(who), operator, action, policy: 1 });
        let r = Record::sign(&keys[who], header, body);
        *prev = Some(r.id);
        r
    };
    let first = sign(0, clock, None, vec![], "op".into(), filing());
    let case = first.id;
    let mut recs = vec![first];
    let steps = u.int_in_range(0..=12u8)?;
    for _ in 0..steps {
        let (who, action, op, pick, tick): (u8, u8, u8, u16, u8) = Arbitrary::arbitrary(u)?;
        let who = who as usize % keys.len();
        // Mostly a minute later; sometimes the same instant (a tie).
        clock += if tick.is_multiple_of(4) { 0 } else { 60_000 };
        let n = recs.len();
        let mut parents = vec![recs[n - 1 - (pick as usize % n.min(3))].id];
        if pick.is_multiple_of(5) && n > 1 {
            parents.push(recs[pick as usize % (n - 1)].id);
        }
        parents.sort();
        parents.dedup();
        let r = sign(who, clock, Some(case), parents, format!("op{}", op % 2), step_action(action, op));
        recs.push(r);
    }
    Ok(recs)
}

fn fold_of(records: &[&Record]) -> Result<CaseState, zongzhi_protocol::workflow::FoldError> {
    let refs: Vec<EventRef<'_>> = records.iter().filter_map(|r| EventRef::from_record(r)).collect();
    fold(policy_set(), &NoRevocations, &refs)
}

/// Folds one case's events in an order chosen by the input. The fold orders
/// events itself (parents first, ties by HLC then id) and counts duplicates
/// once, so any order and any duplication gives the identical state; a
/// causally closed subset folds, and one missing a parent is refused.
pub fn fold_orders(data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    let Ok(recs) = build_case(&mut u) else {
        return "none".into();
    };
    let all: Vec<&Record> = recs.iter().collect();
    let reference = match fold_of(&all) {
        Ok(s) => s,
        Err(e) => panic!("the generated case does not fold: {e}"),
    };
    assert_eq!(reference.timeline.len(), recs.len(), "every event is in the timeline");
    assert!(reference.units_handled.contains(&reference.owner));
    let rejected = reference.timeline.iter().filter(|t| t.outcome.is_err()).count();

    // Any permutation, with some events repeated.
    let mut order: Vec<&Record> = Vec::with_capacity(recs.len() * 2);
    let mut pool: Vec<&Record> = all.clone();
    while !pool.is_empty() {
        let i = u.choose_index(pool.len()).unwrap_or(0);
        order.push(pool.swap_remove(i));
        if u.ratio(1, 8).unwrap_or(false) {
            order.push(order[u.choose_index(order.len()).unwrap_or(0)]);
        }
    }
    match fold_of(&order) {
        Ok(s) => assert_eq!(s, reference, "the fold depends on the order of its input"),
        Err(e) => panic!("a permutation of a foldable case does not fold: {e}"),
    }

    // A subset: causally closed ones fold to a state with one line per
    // event; others are refused for a missing parent.
    let keep: Vec<&Record> = all.iter().copied().filter(|r| r.id == recs[0].id || u.ratio(3, 4).unwrap_or(true)).collect();
    let kept: HashSet<RecordId> = keep.iter().map(|r| r.id).collect();
    let closed = keep.iter().all(|r| r.case_event().is_some_and(|e| e.parents.iter().all(|p| kept.contains(p))));
    match (fold_of(&keep), closed) {
        (Ok(s), true) => assert_eq!(s.timeline.len(), keep.len()),
        (Err(zongzhi_protocol::workflow::FoldError::MissingParents(_)), false) => {}
        (other, closed) => panic!("subset (closed: {closed}) folds to {other:?}"),
    }
    format!("ok:{}:{}:{rejected}", recs.len(), reference.status.as_str())
}

// ---------------------------------------------------------------- corpus seeds

/// Seed inputs for a target, named: what `zongzhi-fuzz --write-corpus`
/// writes to `fuzz/corpus/<target>/`.
pub fn seed_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "record" => {
            let key = NodeKey::from_seed([42; 32]);
            let filing = Record::sign(
                &key,
                Header { seq: 1, prev: None, hlc: Hlc { wall_ms: T0, counter: 0 } },
                Body::CaseEvent(CaseEvent { case: None, parents: vec![], unit: unit(0), operator: "wang".into(), policy: 1, action: filing() }),
            );
            let step = Record::sign(
                &key,
                Header { seq: 2, prev: Some(filing.id), hlc: Hlc { wall_ms: T0 + 60_000, counter: 1 } },
                Body::CaseEvent(CaseEvent {
                    case: Some(filing.id),
                    parents: vec![filing.id],
                    unit: unit(0),
                    operator: "wang".into(),
                    policy: 1,
                    action: Action::Progress { note: "已联系双方".into(), public: true },
                }),
            );
            let policy = Record::sign(&key, Header { seq: 3, prev: Some(step.id), hlc: Hlc { wall_ms: T0 + 120_000, counter: 0 } }, Body::Policy(Box::new(default_policy().clone())));
            vec![
                ("case-event-filing".into(), filing.bytes().to_vec()),
                ("case-event-progress".into(), step.bytes().to_vec()),
                ("policy".into(), policy.bytes().to_vec()),
                ("regression-noncanonical-payload-length".into(), non_minimal_payload_length(&step)),
                ("structured-sign-for".into(), vec![7; 120]),
            ]
        }
        "frame" => {
            let key = NodeKey::from_seed([9; 32]);
            let r = Record::sign(
                &key,
                Header { seq: 1, prev: None, hlc: Hlc { wall_ms: T0, counter: 0 } },
                Body::CaseEvent(CaseEvent { case: None, parents: vec![], unit: unit(1), operator: "li".into(), policy: 1, action: filing() }),
            );
            let frames = [
                ("hello", Frame::Hello { version: zongzhi_protocol::sync::PROTOCOL_VERSION, chain: vec![r.bytes().to_vec()], epoch: [1; 16] }),
                ("subscribe", Frame::Subscribe { epoch: [2; 16], cursor: 300, own: false }),
                ("batch", Frame::Batch { epoch: [3; 16], upto: 7, head: 9, records: vec![r.bytes().to_vec()], blobs: vec![([4; 32], b"blob".to_vec())] }),
                ("ack", Frame::Ack { upto: 70_000 }),
                ("refuse", Frame::Refuse { reason: "证书已吊销".into() }),
                ("want", Frame::Want { ids: vec![[5; 32], [6; 32]] }),
                ("received", Frame::Received { upto: 1 }),
            ];
            frames.into_iter().map(|(n, f)| (n.to_string(), f.to_wire()[4..].to_vec())).collect()
        }
        "policy_json" => {
            vec![
                (
                    "calendar-2027.json".into(),
                    r#"{"calendars":{"2027":{"source":"国务院办公厅","holidays":[{"date":"2027-01-01","name":"元旦"},{"date":"2027-10-01","name":"国庆节"}],"make_up_workdays":["2027-09-26"]}}}"#
                        .as_bytes()
                        .to_vec(),
                ),
                ("deadlines.json".into(), r#"{"deadlines":{"resolution_working_days":9},"repeat_window_days":45}"#.as_bytes().to_vec()),
                (
                    "window-and-category.json".into(),
                    r#"{"windows":{"traffic":{"name":"交警"}},"categories":{"02":{"children":{"0299":{"name":"其他纠纷","default_window":"traffic"}}}}}"#.as_bytes().to_vec(),
                ),
                ("warning.json".into(), r#"{"calendar_warning_from":"11-15","supervision":{"yellow_after_minutes":2880}}"#.as_bytes().to_vec()),
                ("regression-negative-year.json".into(), r#"{"calendars":{"2027":{"source":"x","holidays":[{"date":"-002027-10-01","name":"国庆"}],"make_up_workdays":[]}}}"#.as_bytes().to_vec()),
                (
                    "regression-noncanonical-year-key.json".into(),
                    r#"{"calendars":{"02027":{"source":"x","holidays":[{"date":"2027-01-01","name":"元旦"}],"make_up_workdays":[]}}}"#.as_bytes().to_vec(),
                ),
            ]
        }
        "action_json" => [
            ("sign-for.json", r#"{"action":"sign_for"}"#),
            ("route.json", r#"{"action":"route","window":"justice","requirements":"调解","due_at":"2026-11-20T17:00:00+08:00"}"#),
            ("dispatch.json", r#"{"action":"dispatch","to":"330102001002","requirements":"属地处置"}"#),
            ("escalate.json", r#"{"action":"escalate","reason":"本级无法解决"}"#),
            ("reroute-both.json", r#"{"action":"reroute","window":"police","to":"330102001002","reason":"x"}"#),
            ("add-helpers.json", r#"{"action":"add_helpers","windows":["health"],"units":["330102001002"]}"#),
            ("extension.json", r#"{"action":"request_extension","working_days":5,"reason":"需要现场勘查"}"#),
            ("approve.json", r#"{"action":"approve_extension","note":"同意"}"#),
            ("supervise.json", r#"{"action":"supervise","grade":"red","note":"请抓紧办理"}"#),
            ("resolve.json", r#"{"action":"resolve","public_reply":"已调解","internal_note":"内部"}"#),
            ("feedback.json", r#"{"action":"feedback","note":"已电话告知"}"#),
            ("rate.json", r#"{"action":"rate","rating":"unsatisfied","comment":"不满意"}"#),
            ("reopen.json", r#"{"action":"reopen","reason":"重新办理"}"#),
            ("merge.json", r#"{"action":"merge","into":"330102001001-2026-000002"}"#),
            ("archive.json", r#"{"action":"archive"}"#),
            ("regression-due-before-1970.json", r#"{"action":"route","window":"police","due_at":"1969-12-31T23:59:59Z"}"#),
        ]
        .into_iter()
        .map(|(n, j)| (n.to_string(), j.as_bytes().to_vec()))
        .collect(),
        "fold_orders" => vec![
            ("filing-only".into(), vec![0]),
            ("whole-workflow".into(), {
                // sign for, route, progress, resolve, feedback, rate, archive
                let mut v = vec![7];
                for a in [0u8, 1, 16, 9, 10, 11, 13] {
                    v.extend_from_slice(&[0, a, 0, 0, 0, 1]);
                }
                v.extend_from_slice(&[3, 1, 4, 1, 5, 9, 2, 6]);
                v
            }),
            ("branches".into(), (1u8..=255).map(|b| b.wrapping_mul(37)).collect()),
        ],
        _ => Vec::new(),
    }
}

/// The record with its envelope's payload length written non-minimally
/// (`0xFB` + u16, or `0xFC` + u32 for long payloads).
pub fn non_minimal_payload_length(r: &Record) -> Vec<u8> {
    let len = r.payload().len();
    let canonical = codec::encode(&(len as u64));
    let at = r.bytes().len() - 64 - len - canonical.len();
    assert_eq!(&r.bytes()[at..at + canonical.len()], &canonical[..], "length prefix located");
    let wider = if len < 251 { [&[0xFB][..], &(len as u16).to_le_bytes()].concat() } else { [&[0xFC][..], &(len as u32).to_le_bytes()].concat() };
    [&r.bytes()[..at], &wider[..], &r.bytes()[at + canonical.len()..]].concat()
}

// ---------------------------------------------------------------- driver

/// This crate's directory, taken at run time first: cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test or binary, and a build reused
/// from a cached target dir may have been compiled in another checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Where `fuzz/` is (the parent of this crate).
pub fn fuzz_dir() -> PathBuf {
    let here = manifest_dir();
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// The corpus files of a target, sorted by name.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect()).unwrap_or_default();
    files.sort();
    files
}

/// A seeded xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const MAX_INPUT: usize = 64 * 1024;

const INTERESTING: &[u64] = &[0, 1, 0x7F, 0x80, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, u64::MAX, i64::MAX as u64];

/// Tokens for the JSON target's dictionary.
const JSON_TOKENS: &[&str] = &[
    "\"calendars\"",
    "\"holidays\"",
    "\"make_up_workdays\"",
    "\"source\"",
    "\"date\"",
    "\"name\"",
    "\"categories\"",
    "\"children\"",
    "\"default_window\"",
    "\"retired\"",
    "\"windows\"",
    "\"deadlines\"",
    "\"supervision\"",
    "\"repeat_window_days\"",
    "\"report_grace_minutes\"",
    "\"calendar_warning_from\"",
    "\"2027\"",
    "\"2026\"",
    "\"2027-02-29\"",
    "\"2028-02-29\"",
    "\"-002027-10-01\"",
    "\"+2027-01-01\"",
    "\"12-31\"",
    "\"02-30\"",
    "null",
    "true",
    "false",
    "{}",
    "[]",
    "0",
    "-1",
    "4294967296",
    "1e400",
    "\"\\u0000\"",
    "\" \"",
    "\"police\"",
    "\"0202\"",
    "\"02\"",
];

/// What a driver run does.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: String,
    /// Stop after this long (if set).
    pub seconds: Option<f64>,
    /// Stop after this many mutated inputs (if set).
    pub max_execs: Option<u64>,
    pub seed: u64,
    /// Corpus files to start from; the built-in seeds are added when the
    /// directory is empty or missing.
    pub corpus_dir: PathBuf,
    /// Where a crashing input is written (`None`: not written).
    pub crash_dir: Option<PathBuf>,
}

/// A panic found by the driver.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
    pub written: Option<PathBuf>,
}

/// What a driver run did.
#[derive(Debug, Clone)]
pub struct Stats {
    pub target: String,
    pub execs: u64,
    pub elapsed: Duration,
    pub initial_corpus: usize,
    /// Inputs kept because they reached a new outcome class.
    pub new_entries: usize,
    pub classes: usize,
    /// The outcome classes seen, sorted.
    pub class_names: Vec<String>,
    pub crash: Option<Crash>,
}

impl Stats {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `target` under `catch_unwind`: the outcome class, or the panic message.
pub fn call(target: Target, input: &[u8]) -> Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|p| p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "panic".into()))
}

/// [`run_with`] for `seconds`, writing crashes to `fuzz/crashes/<target>/`.
pub fn run(target: &str, seconds: f64, seed: u64, corpus_dir: &Path) -> Result<Stats, String> {
    run_with(&Config { target: target.into(), seconds: Some(seconds), max_execs: None, seed, corpus_dir: corpus_dir.to_path_buf(), crash_dir: Some(fuzz_dir().join("crashes").join(target)) })
}

/// The mutation driver: starts from the corpus, mutates, keeps inputs that
/// reach a new outcome class, stops at the first panic.
pub fn run_with(cfg: &Config) -> Result<Stats, String> {
    let t = target(&cfg.target).ok_or_else(|| format!("unknown target {:?}; targets: {}", cfg.target, TARGETS.join(", ")))?;
    let mut corpus: Vec<Vec<u8>> = corpus_files(&cfg.corpus_dir).iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if corpus.is_empty() {
        corpus = seed_corpus(&cfg.target).into_iter().map(|(_, b)| b).collect();
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let initial = corpus.len();
    let mut rng = Rng::new(cfg.seed);
    let mut classes: HashSet<String> = HashSet::new();
    let start = Instant::now();
    let mut execs = 0u64;
    let mut crash = None;
    let is_json = matches!(cfg.target.as_str(), "policy_json" | "action_json");
    // The corpus itself first.
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    queue.reverse();
    loop {
        if cfg.max_execs.is_some_and(|m| execs >= m) || cfg.seconds.is_some_and(|s| start.elapsed().as_secs_f64() >= s) {
            break;
        }
        let input = match queue.pop() {
            Some(i) => i,
            None => mutate(&mut rng, &corpus, is_json),
        };
        execs += 1;
        match call(t, &input) {
            Ok(c) => {
                if classes.insert(c) && execs > initial as u64 && corpus.len() < 4096 {
                    corpus.push(input);
                }
            }
            Err(message) => {
                let written = cfg.crash_dir.as_ref().and_then(|d| {
                    std::fs::create_dir_all(d).ok()?;
                    let p = d.join(format!("crash-{}", &blake3::hash(&input).to_hex()[..16]));
                    std::fs::write(&p, &input).ok()?;
                    Some(p)
                });
                crash = Some(Crash { input, message, written });
                break;
            }
        }
    }
    Ok(Stats {
        target: cfg.target.clone(),
        execs,
        elapsed: start.elapsed(),
        initial_corpus: initial,
        new_entries: corpus.len() - initial,
        classes: classes.len(),
        class_names: {
            let mut v: Vec<String> = classes.into_iter().collect();
            v.sort();
            v
        },
        crash,
    })
}

/// One mutated input from the corpus: one to four stacked mutations, or a
/// structural JSON mutation for JSON targets.
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], json: bool) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    if json
        && rng.chance(2)
        && let Ok(mut v) = serde_json::from_slice::<Value>(&data)
    {
        for _ in 0..1 + rng.below(3) {
            mutate_json(rng, &mut v, corpus);
        }
        if let Ok(s) = serde_json::to_vec(&v) {
            return s;
        }
    }
    for _ in 0..1 + rng.below(4) {
        mutate_bytes(rng, &mut data, corpus, json);
    }
    data.truncate(MAX_INPUT);
    data
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], json: bool) {
    let len = data.len();
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(i..i, bytes);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = (1 + rng.below(16)).min(len - i);
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            // An interesting value, little- or big-endian, of 1, 2, 4 or 8 bytes.
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let w = 1 << rng.below(4);
            let bytes = if rng.chance(2) { v.to_le_bytes()[..w].to_vec() } else { v.to_be_bytes()[8 - w..].to_vec() };
            let i = rng.below(len);
            let end = (i + w).min(len);
            data.splice(i..end, bytes);
        }
        5 => {
            // Splice: a prefix of this with a suffix of another.
            let other = &corpus[rng.below(corpus.len())];
            let a = rng.below(len + 1);
            let b = rng.below(other.len() + 1);
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
        }
        6 if len > 0 => {
            // Duplicate a chunk.
            let i = rng.below(len);
            let n = (1 + rng.below(32)).min(len - i);
            let chunk = data[i..i + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        7 if len > 0 => {
            let i = rng.below(len);
            let d = 1 + rng.below(16) as u8;
            data[i] = if rng.chance(2) { data[i].wrapping_add(d) } else { data[i].wrapping_sub(d) };
        }
        8 if json => {
            let tok = JSON_TOKENS[rng.below(JSON_TOKENS.len())].as_bytes();
            let i = rng.below(len + 1);
            if rng.chance(2) {
                data.splice(i..i, tok.iter().copied());
            } else {
                let end = (i + tok.len()).min(len);
                data.splice(i..end, tok.iter().copied());
            }
        }
        9 if len > 0 => {
            data.truncate(rng.below(len));
        }
        10 if len > 0 => {
            // Widen a one-byte varint (bincode: a value below 251) to the
            // same value in three, five or nine bytes.
            let i = rng.below(len);
            let v = u64::from(data[i]);
            if v < 251 {
                let wide = match rng.below(3) {
                    0 => [&[0xFB][..], &(v as u16).to_le_bytes()].concat(),
                    1 => [&[0xFC][..], &(v as u32).to_le_bytes()].concat(),
                    _ => [&[0xFD][..], &v.to_le_bytes()].concat(),
                };
                data.splice(i..=i, wide);
            }
        }
        _ => {
            // A varint-width marker, the shape bincode lengths take.
            let i = rng.below(len + 1);
            let marker = [0xFB, 0xFC, 0xFD, 0xFE][rng.below(4)];
            data.insert(i, marker);
        }
    }
}

/// Values a JSON mutation may put in.
fn interesting_json(rng: &mut Rng) -> Value {
    use serde_json::json;
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(u32::MAX),
        5 => json!(u64::MAX),
        6 => json!(1.5),
        7 => json!(""),
        8 => json!("x".repeat(1 + rng.below(300))),
        9 => json!({}),
        10 => json!([]),
        11 => json!(["2027-01-01"]),
        12 => json!({"date": "2027-01-01", "name": "元旦"}),
        13 => json!({"source": "x", "holidays": [], "make_up_workdays": []}),
        14 => json!({"name": "新窗口"}),
        _ => {
            let tok = JSON_TOKENS[rng.below(JSON_TOKENS.len())];
            serde_json::from_str(tok).unwrap_or(Value::Null)
        }
    }
}

fn mutate_json(rng: &mut Rng, v: &mut Value, corpus: &[Vec<u8>]) {
    // Walk down to a random node.
    let mut node = v;
    for _ in 0..rng.below(6) {
        let next_is_leaf = match node {
            Value::Object(m) if !m.is_empty() => false,
            Value::Array(a) if !a.is_empty() => false,
            _ => true,
        };
        if next_is_leaf || rng.chance(3) {
            break;
        }
        let pick = rng.below(usize::MAX);
        node = match node {
            Value::Object(m) => {
                let n = m.len();
                match m.values_mut().nth(pick % n) {
                    Some(x) => x,
                    None => return,
                }
            }
            Value::Array(a) => {
                let n = a.len();
                &mut a[pick % n]
            }
            _ => return,
        };
    }
    match rng.below(6) {
        0 => *node = interesting_json(rng),
        1 => {
            if let Value::Object(m) = node {
                let key = match rng.below(4) {
                    0 => format!("{}", 2020 + rng.below(12)),
                    1 => format!("0{}", 2020 + rng.below(12)),
                    2 => JSON_TOKENS[rng.below(JSON_TOKENS.len())].trim_matches('"').to_string(),
                    _ => format!("{:02}{:02}", rng.below(100), rng.below(100)),
                };
                m.insert(key, interesting_json(rng));
            } else if let Value::Array(a) = node {
                a.push(interesting_json(rng));
            }
        }
        2 => {
            if let Value::Object(m) = node
                && !m.is_empty()
            {
                let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                m.remove(&k);
            } else if let Value::Array(a) = node
                && !a.is_empty()
            {
                a.remove(rng.below(a.len()));
            }
        }
        3 => {
            // A string leaf: a date-like or name-like edit.
            if let Value::String(s) = node {
                *s = match rng.below(5) {
                    0 => format!("{:04}-{:02}-{:02}", 2020 + rng.below(12), rng.below(14), rng.below(33)),
                    1 => format!("{:02}-{:02}", rng.below(14), rng.below(33)),
                    2 => format!(" {s} "),
                    3 => s.chars().rev().collect(),
                    _ => String::new(),
                };
            } else if let Value::Number(_) = node {
                *node = Value::from(rng.next_u64() >> rng.below(64));
            }
        }
        4 => {
            // A subtree of another corpus entry.
            let other = &corpus[rng.below(corpus.len())];
            if let Ok(o) = serde_json::from_slice::<Value>(other)
                && let Value::Object(m) = &o
                && let Some((k, x)) = m.iter().nth(rng.below(m.len().max(1)))
            {
                if let Value::Object(t) = node {
                    t.insert(k.clone(), x.clone());
                } else {
                    *node = x.clone();
                }
            }
        }
        _ => {
            // Wrap the node: a value where an object or array was expected.
            let inner = node.take();
            *node = if rng.chance(2) { Value::Array(vec![inner]) } else { serde_json::json!({ "x": inner }) };
        }
    }
}
