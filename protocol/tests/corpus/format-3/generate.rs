//! Writes the format-3 compatibility corpus with release 0.1.0's own code
//! (run at commit b92aa6a, the baseline): records of every kind and every
//! workflow step, signed with seeded keys (ed25519 signing is
//! deterministic), and the projection of each case as 0.1.0 folds it.
//!
//!   ZONGZHI_CORPUS_OUT=<dir> cargo test -p zongzhi-protocol --test gen_corpus
//!
//! The output is committed once under protocol/tests/corpus/format-3 and
//! never regenerated; later releases must decode, verify, re-encode and
//! fold it to the same projection.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use zongzhi_protocol::case::*;
use zongzhi_protocol::cert::{NodeCert, Revocation};
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::report::MonthlyReport;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::workflow::{fold, CaseState, EventRef};
use zongzhi_protocol::{Body, DivisionCode, Header, Hlc, NodeKey, Policy, Record, RecordId};

const T0: u64 = 1_793_581_200_000; // 2026-11-02 09:00 China time
const MIN: u64 = 60_000;

struct Author {
    key: NodeKey,
    unit: DivisionCode,
    seq: u64,
    prev: Option<RecordId>,
}

impl Author {
    fn new(seed: u8, unit: &str) -> Author {
        Author { key: NodeKey::from_seed([seed; 32]), unit: unit.parse().unwrap(), seq: 0, prev: None }
    }
    fn sign(&mut self, at: u64, body: Body) -> Record {
        self.seq += 1;
        let r = Record::sign(&self.key, Header { seq: self.seq, prev: self.prev, hlc: Hlc { wall_ms: at, counter: 0 } }, body);
        self.prev = Some(r.id);
        r
    }
}

struct Corpus {
    dir: std::path::PathBuf,
    n: usize,
    records: Vec<Record>,
    manifest: Vec<(String, String)>,
}

impl Corpus {
    fn put(&mut self, name: &str, r: &Record) {
        self.n += 1;
        let file = format!("{:03}-{name}.bin", self.n);
        std::fs::write(self.dir.join(&file), r.bytes()).unwrap();
        self.manifest.push((file, blake3::hash(r.bytes()).to_hex().to_string()));
        self.records.push(r.clone());
    }
    fn json(&mut self, file: &str, v: &Value) {
        let text = serde_json::to_string_pretty(v).unwrap() + "\n";
        std::fs::write(self.dir.join(file), &text).unwrap();
        self.manifest.push((file.to_string(), blake3::hash(text.as_bytes()).to_hex().to_string()));
    }
}

fn cert(issuer: &mut Author, at: u64, key: &NodeKey, division: &str, name: &str) -> Record {
    let division: DivisionCode = division.parse().unwrap();
    let serial = issuer.seq + 1;
    let body = Body::NodeCert(NodeCert {
        key: key.id(),
        division,
        level: division.level(),
        name: name.into(),
        issuer: issuer.key.id(),
        not_before_ms: T0 - 86_400_000,
        not_after_ms: T0 + 10 * 365 * 86_400_000,
        serial,
    });
    issuer.sign(at, body)
}

fn event(a: &mut Author, at: u64, case: Option<RecordId>, parents: &[RecordId], op: &str, action: Action) -> Record {
    let e = CaseEvent { case, parents: parents.to_vec(), unit: a.unit, operator: op.into(), action, policy: 1 };
    a.sign(at, Body::CaseEvent(e))
}

fn filing(number: &str, title: &str, urgency: Urgency, complexity: Complexity, contact: Option<BlobHash>, intake: Intake) -> Action {
    Action::File(Box::new(Filing {
        number: number.into(),
        title: title.into(),
        content: format!("{title}：群众来电反映情况，请核实处理。"),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency,
        complexity,
        place: Place { address: "某街道某小区".into(), lat_e6: Some(30_250_000), lon_e6: Some(120_160_000) },
        occurred_at_ms: Some(T0 - 3_600_000),
        received_at_ms: T0 - 10 * MIN,
        people_involved: 2,
        amount_fen: Some(150_000),
        contact,
        intake,
    }))
}

/// The projection of a folded case: what the corpus pins.
fn projection(st: &CaseState) -> Value {
    json!({
        "id": st.id.to_string(),
        "number": st.filing.number,
        "status": st.status.as_str(),
        "owner": st.owner.to_string(),
        "filed_by": st.filed_by.to_string(),
        "filed_ms": st.filed_ms,
        "window": st.window,
        "came_from": st.came_from.map(|c| c.to_string()),
        "helpers": st.helpers.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>(),
        "units_handled": st.units_handled.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "highest_level": st.highest_level.as_str(),
        "escalations": st.escalations,
        "returns": st.returns,
        "reopens": st.reopens,
        "extension": st.extension.as_ref().map(|e| json!({"working_days": e.working_days, "unit": e.unit.to_string(), "operator": e.operator})),
        "supervision": st.supervision.map(|g| g.as_str()),
        "supervisions": st.supervisions,
        "resolved_ms": st.resolved_ms,
        "resolved_by": st.resolved_by.map(|u| u.to_string()),
        "public_reply": st.public_reply,
        "fed_back_ms": st.fed_back_ms,
        "rating": st.rating.map(|r| r.as_str()),
        "rated_ms": st.rated_ms,
        "ratings": st.ratings.iter().map(|r| json!({
            "event": r.event.to_string(), "at_ms": r.at_ms, "unit": r.unit.to_string(), "by": format!("{:?}", r.by),
            "rating": r.rating.as_str(), "result_rating": r.result_rating.map(|x| x.as_str()), "appeal": format!("{:?}", r.appeal),
            "counts": r.counts(),
        })).collect::<Vec<_>>(),
        "invite_expires_ms": st.invite.map(|i| i.expires_ms),
        "merged_into": st.merged_into.map(|m| m.to_string()),
        "archived_ms": st.archived_ms,
        "attachments": st.attachments.iter().map(|a| json!({"blob": a.blob.to_string(), "name": a.name, "mime": a.mime, "size": a.size, "unit": a.unit.to_string()})).collect::<Vec<_>>(),
        "deadlines": st.deadlines.iter().map(|d| json!({
            "kind": d.kind.as_str(), "unit": d.unit.to_string(), "started_ms": d.started_ms, "due_ms": d.due_ms,
            "waiting_year": d.waiting_year, "met_ms": d.met_ms, "cancelled": d.cancelled, "extended_working_days": d.extended_working_days,
        })).collect::<Vec<_>>(),
        "heads": st.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "timeline": st.timeline.iter().map(|t| json!({
            "id": t.id.to_string(), "action": t.action.as_str(), "unit": t.unit.to_string(), "operator": t.operator,
            "outcome": match &t.outcome { Ok(()) => "ok".to_string(), Err(r) => r.rule.to_string() },
            "overruled_by": t.overruled_by.map(|o| o.to_string()),
        })).collect::<Vec<_>>(),
        "facts": zongzhi_protocol::kpi::facts(st).iter().map(|f| json!({"month": f.month, "unit": f.unit.to_string(), "counter": f.counter.as_str(), "value": f.value})).collect::<Vec<_>>(),
    })
}

#[test]
fn write_format_3_corpus() {
    let Some(out) = std::env::var_os("ZONGZHI_CORPUS_OUT") else { return };
    let dir = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Corpus { dir, n: 0, records: Vec::new(), manifest: Vec::new() };
    let mut city = Author::new(1, "330100000000");
    let mut county = Author::new(2, "330106000000");
    let mut town = Author::new(3, "330106001000");
    let mut village = Author::new(4, "330106001001");
    let mut village2 = Author::new(5, "330106001002");
    let stray = NodeKey::from_seed([6; 32]);

    // Trust: root, policy, certificates down the tree, a revocation.
    let key = NodeKey::from_seed([1; 32]);
    let r = cert(&mut city, T0 - 86_400_000, &key, "330100000000", "杭州市社会治安综合治理中心");
    c.put("node_cert-root", &r);
    let policy = Policy::default_policy();
    let r = city.sign(T0 - 86_000_000, Body::Policy(Box::new(policy.clone())));
    c.put("policy-v1", &r);
    let r = cert(&mut city, T0 - 85_000_000, &county.key, "330106000000", "西湖区社会治安综合治理中心");
    c.put("node_cert-county", &r);
    let r = cert(&mut county, T0 - 84_000_000, &town.key, "330106001000", "北山街道社会治安综合治理中心");
    c.put("node_cert-township", &r);
    let r = cert(&mut town, T0 - 83_000_000, &village.key, "330106001001", "保俶社区社会治安综合治理工作站");
    c.put("node_cert-village", &r);
    let r = cert(&mut town, T0 - 82_000_000, &village2.key, "330106001002", "宝石社区社会治安综合治理工作站");
    c.put("node_cert-village2", &r);
    let r = cert(&mut town, T0 - 81_000_000, &stray, "330106001003", "西山社区社会治安综合治理工作站");
    c.put("node_cert-stray", &r);
    let revoke = Revocation { key: stray.id(), division: "330106001003".parse().unwrap(), cutoff_seq: 0, reason: "设备丢失".into() };
    let r = town.sign(T0 - 80_000_000, Body::Revocation(revoke));
    c.put("revocation", &r);

    // Case 1 at the village: window, extension, feedback with a citizen's
    // invitation, a 不满意, 差评申诉 dismissed, 重办, staff rating, archive.
    let contact = Contact { name: "张三".into(), phone: "13812341234".into(), id_number: "330106199001011234".into(), address: "北山街道某小区".into() };
    let fp_key = fingerprint_key(city.key.id().as_bytes());
    let intake = Intake { arose_in: None, query_code_hash: Some(query_code_hash("330106001001-2026-000001", "ABCDE-FGHJK")), complainant: Fingerprint::of(&fp_key, &contact), skip_level: false };
    let mut at = T0;
    let mut step = |a: &mut Author, case: Option<RecordId>, parents: &[RecordId], op: &str, action: Action, name: &str, c: &mut Corpus| -> Record {
        at += 30 * MIN;
        let r = event(a, at, case, parents, op, action);
        c.put(name, &r);
        r
    };
    let f1 = step(&mut village, None, &[], "wang", filing("330106001001-2026-000001", "楼上噪音扰民", Urgency::Normal, Complexity::General, Some(contact.hash()), intake), "case1-file", &mut c);
    let k1 = Some(f1.id);
    let mut head = f1.id;
    let token = [7u8; 16];
    let script: Vec<(&str, &str, Action)> = vec![
        ("sign_for", "wang", Action::SignFor),
        ("route", "wang", Action::Route { window: "police".into(), requirements: "请核实并调解".into(), due_ms: None }),
        ("progress", "li", Action::Progress { note: "已上门了解情况".into(), public: true }),
        ("attach", "li", Action::Attach { blob: BlobHash::of(b"photo"), name: "现场照片.jpg".into(), mime: "image/jpeg".into(), size: 5 }),
        ("request_extension", "li", Action::RequestExtension { working_days: 3, reason: "需要等待鉴定".into() }),
        ("decide_extension", "wang", Action::DecideExtension { approve: true, note: "同意延期".into() }),
        ("resolve", "li", Action::Resolve { public_reply: "已调解，双方达成一致".into(), internal_note: "内部备注".into() }),
        ("feedback", "wang", Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: Some(RatingInvite { token_hash: rating_token_hash(&token), expires_ms: T0 + 7 * 86_400_000 }) }),
        ("citizen_rate", "citizen", Action::CitizenRate { token, rating: Rating::Unsatisfied, result_rating: Rating::Unsatisfied, comment: "没有解决".into() }),
        ("appeal", "wang", Action::Appeal { reason: "群众诉求超出政策范围".into() }),
    ];
    for (name, op, action) in script {
        head = step(&mut village, k1, &[head], op, action, &format!("case1-{name}"), &mut c).id;
    }
    head = step(&mut town, k1, &[head], "zhao", Action::DecideAppeal { upheld: false, note: "申诉不成立".into() }, "case1-decide_appeal", &mut c).id;
    for (name, op, action) in [
        ("reopen", "wang", Action::Reopen { reason: "群众不满意，重新办理".into() }),
        ("resolve2", "li", Action::Resolve { public_reply: "再次调解成功".into(), internal_note: String::new() }),
        ("feedback2", "wang", Action::Feedback { method: "visit".into(), note: "上门反馈".into(), invite: None }),
        ("rate", "wang", Action::Rate { rating: Rating::Satisfied, comment: "满意".into(), result_rating: Some(Rating::Basic) }),
        ("archive", "wang", Action::Archive),
    ] {
        head = step(&mut village, k1, &[head], op, action, &format!("case1-{name}"), &mut c).id;
    }
    let _ = head;

    // Case 2: escalated to the township, helpers, dispatched to the second
    // village, returned, re-routed to a window, supervised by the county,
    // resolved; then a step after the revocation cut-off by a stray key is
    // not possible (it has no chain): the fold's void path is covered by
    // case 4.
    let f2 = step(&mut village, None, &[], "wang", filing("330106001001-2026-000002", "宅基地纠纷", Urgency::Urgent, Complexity::Complex, None, Intake::default()), "case2-file", &mut c);
    let k2 = Some(f2.id);
    let mut h2 = step(&mut village, k2, &[f2.id], "wang", Action::SignFor, "case2-sign_for", &mut c).id;
    h2 = step(&mut village, k2, &[h2], "wang", Action::Escalate { reason: "涉及多个村，需街道协调".into() }, "case2-escalate", &mut c).id;
    h2 = step(&mut town, k2, &[h2], "zhao", Action::SignFor, "case2-town_sign_for", &mut c).id;
    h2 = step(&mut town, k2, &[h2], "zhao", Action::AddHelpers { helpers: vec![RouteTarget::Window("justice".into()), RouteTarget::Unit("330106001002".parse().unwrap())] }, "case2-add_helpers", &mut c).id;
    h2 = step(&mut town, k2, &[h2], "zhao", Action::Dispatch { to: "330106001002".parse().unwrap(), requirements: "请宝石社区牵头".into(), due_ms: Some(T0 + 5 * 86_400_000) }, "case2-dispatch", &mut c).id;
    h2 = step(&mut village2, k2, &[h2], "chen", Action::Return { reason: "不属于本社区".into() }, "case2-return", &mut c).id;
    h2 = step(&mut town, k2, &[h2], "zhao", Action::Reroute { target: RouteTarget::Window("natural_resources".into()), reason: "转自然资源窗口".into() }, "case2-reroute", &mut c).id;
    h2 = step(&mut county, k2, &[h2], "sun", Action::Supervise { grade: SuperviseGrade::Yellow, note: "请加快办理".into() }, "case2-supervise", &mut c).id;
    h2 = step(&mut town, k2, &[h2], "zhao", Action::Resolve { public_reply: "已确权".into(), internal_note: String::new() }, "case2-resolve", &mut c).id;
    // A step the rules refuse (the township is not the filing center).
    let _refused = step(&mut town, k2, &[h2], "zhao", Action::Feedback { method: "phone".into(), note: "反馈".into(), invite: None }, "case2-feedback_refused", &mut c);
    h2 = step(&mut village, k2, &[h2], "wang", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }, "case2-feedback", &mut c).id;
    let _ = step(&mut village, k2, &[h2], "wang", Action::Rate { rating: Rating::Basic, comment: String::new(), result_rating: None }, "case2-rate", &mut c);

    // Case 3: a duplicate merged into case 1.
    let f3 = step(&mut village, None, &[], "wang", filing("330106001001-2026-000003", "楼上噪音扰民（重复）", Urgency::Normal, Complexity::General, None, Intake::default()), "case3-file", &mut c);
    let _ = step(&mut village, Some(f3.id), &[f3.id], "wang", Action::Merge { into: f1.id }, "case3-merge", &mut c);

    // Case 4: filed at the township for a village's matter (越级), a
    // concurrent pair of steps (two sign-fors from the same head: one
    // stands, one is overruled).
    let f4 = step(&mut town, None, &[], "zhao", filing("330106001000-2026-000001", "越级反映物业问题", Urgency::Normal, Complexity::General, None, Intake { arose_in: Some("330106001001".parse().unwrap()), query_code_hash: None, complainant: Fingerprint::of(&fp_key, &contact), skip_level: true }), "case4-file", &mut c);
    let k4 = Some(f4.id);
    let a = step(&mut town, k4, &[f4.id], "zhao", Action::SignFor, "case4-sign_for", &mut c);
    let _ = step(&mut town, k4, &[f4.id], "qian", Action::Merge { into: f1.id }, "case4-merge_concurrent", &mut c);
    let _ = step(&mut town, k4, &[a.id], "zhao", Action::Escalate { reason: "需区级协调".into() }, "case4-escalate", &mut c);

    // A monthly report.
    let report = MonthlyReport { unit: village.unit, month: 202610, counts: vec![(0, 3), (8, 1)], definitions: zongzhi_protocol::kpi::DEFINITIONS.into(), supersedes: None, reason: String::new() };
    let r = village.sign(T0 + 86_400_000, Body::Report(report));
    c.put("report", &r);

    // Every case as 0.1.0 folds it.
    let mut trust = Trust::new(city.key.id());
    for r in &c.records {
        match &r.body {
            Body::NodeCert(_) => trust.add_cert(r).unwrap(),
            Body::Revocation(_) => trust.add_revocation(r).unwrap(),
            _ => {}
        }
    }
    let policies = PolicySet::new(policy);
    let records = c.records.clone();
    for (i, case) in [f1.id, f2.id, f3.id, f4.id].iter().enumerate() {
        let events: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).filter(|e| e.event.case_id(e.id) == *case).collect();
        let st = fold(&policies, &trust, &events).unwrap();
        c.json(&format!("case{}.json", i + 1), &projection(&st));
    }
    let manifest: Vec<Value> = c.manifest.iter().map(|(f, h)| json!({"file": f, "blake3": h})).collect();
    std::fs::write(
        c.dir.join("MANIFEST.json"),
        serde_json::to_string_pretty(&json!({"format": 3, "release": "0.1.0", "commit": "b92aa6acfc26060575126e176ca714bb731c1321", "files": manifest})).unwrap() + "\n",
    )
    .unwrap();
}
