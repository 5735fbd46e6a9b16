//! Writes the format-4 compatibility corpus with release 0.2.0's own code
//! (run at commit f12e2c1): records of every kind signed in record format
//! 4 (`Record::sign_as(.., 4, ..)`), with seeded keys (ed25519 signing is
//! deterministic), cases that together take every workflow step of format
//! 4 (the 22 of format 3 and the 13 it added), and the projection of each
//! case as 0.2.0 folds it.
//!
//! While generating, it was registered in protocol/Cargo.toml as
//! `[[test]] name = "gen_corpus4" path = "tests/corpus/format-4/generate.rs"`
//! and run with
//!
//!   ZONGZHI_CORPUS_OUT=<dir> cargo test -p zongzhi-protocol --test gen_corpus4
//!
//! The output is committed once under protocol/tests/corpus/format-4 and
//! never regenerated; later releases must decode, verify, re-encode and
//! fold it to the same projection. This file is kept for reference only.

#![allow(clippy::unwrap_used)]
// The projection is one `json!` of many fields.
#![recursion_limit = "256"]

use serde_json::{json, Value};
use zongzhi_protocol::case::*;
use zongzhi_protocol::cert::{NodeCert, Revocation};
use zongzhi_protocol::kpi::Actor;
use zongzhi_protocol::policy::{PolicySet, Referral, ReplyDeadlines, SuspensionReason, UpgradeGate};
use zongzhi_protocol::report::MonthlyReport;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::workflow::{fold, CaseState, EventRef, Left};
use zongzhi_protocol::{Body, DivisionCode, Header, Hlc, NodeKey, Policy, Record, RecordId};

const FORMAT: u8 = 4;
const T0: u64 = 1_793_581_200_000; // 2026-11-02 09:00 China time (a Monday)
const MIN: u64 = 60_000;
const DAY: u64 = 86_400_000;
/// The policy version every case event names (the one with the format-4
/// fields set).
const POLICY: u32 = 2;

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
        let r = Record::sign_as(&self.key, FORMAT, Header { seq: self.seq, prev: self.prev, hlc: Hlc { wall_ms: at, counter: 0 } }, body).unwrap();
        assert_eq!(r.format, FORMAT);
        self.prev = Some(r.id);
        r
    }
}

struct Corpus {
    dir: std::path::PathBuf,
    n: usize,
    records: Vec<Record>,
    manifest: Vec<(String, String)>,
    at: u64,
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
    /// A case step 30 minutes after the previous one.
    fn step(&mut self, a: &mut Author, case: Option<RecordId>, parents: &[RecordId], op: &str, action: Action, name: &str) -> Record {
        self.at += 30 * MIN;
        let r = event(a, self.at, case, parents, op, action);
        self.put(name, &r);
        r
    }
    /// Steps one after the other, each on the previous; returns the last.
    fn chain(&mut self, a: &mut Author, case: RecordId, mut head: RecordId, prefix: &str, steps: Vec<(&str, &str, Action)>) -> RecordId {
        for (name, op, action) in steps {
            head = self.step(a, Some(case), &[head], op, action, &format!("{prefix}-{name}")).id;
        }
        head
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
        not_before_ms: T0 - DAY,
        not_after_ms: T0 + 10 * 365 * DAY,
        serial,
    });
    issuer.sign(at, body)
}

fn event(a: &mut Author, at: u64, case: Option<RecordId>, parents: &[RecordId], op: &str, action: Action) -> Record {
    let e = CaseEvent { case, parents: parents.to_vec(), unit: a.unit, operator: op.into(), action, policy: POLICY };
    a.sign(at, Body::CaseEvent(e))
}

#[allow(clippy::too_many_arguments)]
fn filing(number: &str, title: &str, category: &str, urgency: Urgency, complexity: Complexity, contact: Option<BlobHash>, intake: Intake, received_at_ms: u64) -> Action {
    Action::File(Box::new(Filing {
        number: number.into(),
        title: title.into(),
        content: format!("{title}：群众反映情况，请核实处理。"),
        category: category.into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency,
        complexity,
        place: Place { address: "某街道某小区".into(), lat_e6: Some(30_250_000), lon_e6: Some(120_160_000) },
        occurred_at_ms: Some(T0 - 3_600_000),
        received_at_ms,
        people_involved: 2,
        amount_fen: Some(150_000),
        contact,
        intake,
    }))
}

/// The policy of version 2: the format-4 fields set (the gate finalized
/// at format 4 with an override, other 督办 reply deadlines, a referral
/// and a 中止 reason version 1 does not have, a retired referral, other
/// decision deadlines).
fn policy_v2(v1: &Policy) -> Policy {
    let mut p = v1.clone();
    p.version = 2;
    p.gate = UpgradeGate { write_format: 4, overridden: vec!["330106001009".parse().unwrap()], reason: "九号社区工作站设备待更换，暂未升级".into() };
    p.supervision_reply = ReplyDeadlines { normal_working_days: 5, yellow_working_days: 3, red_working_days: 2, interview_working_days: 1 };
    p.decisions.referrals.push(Referral {
        code: "land_arbitration".into(),
        name: "农村土地承包仲裁委员会".into(),
        guidance: "农村土地承包经营纠纷可向县级农村土地承包仲裁委员会申请仲裁".into(),
        retired: false,
    });
    p.decisions.referrals.iter_mut().find(|r| r.code == "petitions").unwrap().retired = true;
    p.decisions.suspension_reasons.push(SuspensionReason { code: "party_request".into(), name: "当事人申请暂缓调解".into(), retired: false });
    p.decisions.max_suspension_days = 60;
    p.decisions.assistance_working_days = 4;
    p.decisions.max_assistance_working_days = 15;
    p.decisions.return_visit_days = 20;
    p
}

/// The projection of a folded case: what the corpus pins (the fields of
/// format 3's, and those of format 4's steps).
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
        "notices": st.notices.iter().map(|n| json!({
            "id": n.id.to_string(), "grade": n.grade.as_str(), "by": n.by.to_string(), "to": n.to.to_string(), "at_ms": n.at_ms,
            "reply_due_ms": n.reply_due_ms, "replied_ms": n.replied_ms, "measures": n.measures, "superseded_by": n.superseded_by.map(|x| x.to_string()),
        })).collect::<Vec<_>>(),
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
            "notice": d.notice.map(|n| n.to_string()),
            "window": d.window, "error": d.error,
            "paused": d.paused.map(|p| json!({"at_ms": p.at_ms, "left": match p.left {
                None => Value::Null,
                Some(Left::WorkingDays(n)) => json!({"working_days": n}),
                Some(Left::Ms(ms)) => json!({"ms": ms}),
            }})),
        })).collect::<Vec<_>>(),
        "heads": st.heads.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "timeline": st.timeline.iter().map(|t| json!({
            "id": t.id.to_string(), "action": t.action.as_str(), "unit": t.unit.to_string(), "operator": t.operator,
            "outcome": match &t.outcome { Ok(()) => "ok".to_string(), Err(r) => r.rule.to_string() },
            "overruled_by": t.overruled_by.map(|o| o.to_string()),
            "window": t.window,
        })).collect::<Vec<_>>(),
        "facts": zongzhi_protocol::kpi::facts(st).iter().map(|f| json!({"month": f.month, "unit": f.unit.to_string(), "counter": f.counter.as_str(), "value": f.value})).collect::<Vec<_>>(),
        "policy_missing": st.policy_missing,
        "declined": st.declined.as_ref().map(|d| json!({
            "id": d.id.to_string(), "referral": d.referral, "reason": d.reason, "unit": d.unit.to_string(), "at_ms": d.at_ms, "policy": d.policy,
        })),
        "withdrawn": st.withdrawn.as_ref().map(|w| json!({
            "id": w.id.to_string(), "confirmation": w.confirmation.as_str(), "reason": w.reason, "unit": w.unit.to_string(), "at_ms": w.at_ms,
        })),
        "suspensions": st.suspensions.iter().map(|s| json!({
            "id": s.id.to_string(), "reason": s.reason, "note": s.note, "unit": s.unit.to_string(), "at_ms": s.at_ms, "expected_ms": s.expected_ms,
            "policy": s.policy, "before": s.before.as_str(), "resumed_ms": s.resumed_ms, "resumed_by": s.resumed_by.map(|x| x.to_string()),
        })).collect::<Vec<_>>(),
        "assists": st.assists.iter().map(|a| json!({
            "request": a.request.to_string(), "by": a.by.to_string(), "helper": format!("{:?}", a.helper), "requirements": a.requirements,
            "at_ms": a.at_ms, "working_days": a.working_days, "due_ms": a.due_ms, "replied_ms": a.replied_ms, "reply": a.reply,
            "reply_event": a.reply_event.map(|x| x.to_string()), "ended_by": a.ended_by.map(|x| x.to_string()),
            "supervision": a.supervision.map(|g| g.as_str()), "supervisions": a.supervisions,
        })).collect::<Vec<_>>(),
        "mediation": {
            "sessions": st.mediation.sessions.iter().map(|s| json!({
                "id": s.id.to_string(), "unit": s.unit.to_string(), "at_ms": s.at_ms, "held_ms": s.held_ms,
                "mediators": s.mediators.iter().map(|m| json!({"account": m.account, "name": m.name})).collect::<Vec<_>>(),
                "attendees": s.attendees, "notes": s.notes,
            })).collect::<Vec<_>>(),
            "agreements": st.mediation.agreements.iter().map(|a| json!({
                "id": a.id.to_string(), "unit": a.unit.to_string(), "at_ms": a.at_ms, "document": a.document.to_string(),
                "signatures": a.signatures.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                "mediators": a.mediators.iter().map(|m| json!({"account": m.account, "name": m.name})).collect::<Vec<_>>(),
                "signed_ms": a.signed_ms,
                "confirmation": a.confirmation.as_ref().map(|c| json!({
                    "id": c.id.to_string(), "at_ms": c.at_ms, "court": c.court, "note": c.note,
                    "ruling": c.ruling.as_ref().map(|r| json!({"id": r.id.to_string(), "at_ms": r.at_ms, "confirmed": r.confirmed, "ruling": r.ruling, "ruled_ms": r.ruled_ms, "note": r.note})),
                })),
                "visits": a.visits.iter().map(|v| json!({"id": v.id.to_string(), "at_ms": v.at_ms, "fulfilment": v.fulfilment.as_str(), "method": v.method, "note": v.note})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "attributed": zongzhi_protocol::kpi::attributed(st).iter().map(|f| json!({
            "month": f.month,
            "actor": match &f.actor {
                Actor::Window { unit, window } => json!({"unit": unit.to_string(), "window": window}),
                Actor::Person { unit, operator } => json!({"unit": unit.to_string(), "operator": operator}),
            },
            "counter": f.counter.as_str(), "value": f.value,
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn write_format_4_corpus() {
    let Some(out) = std::env::var_os("ZONGZHI_CORPUS_OUT") else { return };
    let dir = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Corpus { dir, n: 0, records: Vec::new(), manifest: Vec::new(), at: T0 };
    let mut city = Author::new(1, "330100000000");
    let mut county = Author::new(2, "330106000000");
    let mut town = Author::new(3, "330106001000");
    let mut village = Author::new(4, "330106001001");
    let mut village2 = Author::new(5, "330106001002");
    let stray = NodeKey::from_seed([6; 32]);

    // Trust: root, two policy versions, certificates down the tree, a
    // revocation.
    let key = NodeKey::from_seed([1; 32]);
    let r = cert(&mut city, T0 - DAY, &key, "330100000000", "杭州市社会治安综合治理中心");
    c.put("node_cert-root", &r);
    let v1 = Policy::default_policy();
    v1.validate(None).unwrap();
    let r = city.sign(T0 - 86_000_000, Body::Policy(Box::new(v1.clone())));
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
    let v2 = policy_v2(&v1);
    v2.validate(Some(&v1)).unwrap();
    let r = city.sign(T0 - 79_000_000, Body::Policy(Box::new(v2.clone())));
    c.put("policy-v2", &r);

    // Case 1 at the village: window, extension, feedback with a citizen's
    // invitation, a 不满意, 差评申诉 dismissed, 重办, staff rating, archive.
    let contact = Contact { name: "张三".into(), phone: "13812341234".into(), id_number: "330106199001011234".into(), address: "北山街道某小区".into() };
    let fp_key = fingerprint_key(city.key.id().as_bytes());
    let intake = Intake { arose_in: None, query_code_hash: Some(query_code_hash("330106001001-2026-000101", "ABCDE-FGHJK")), complainant: Fingerprint::of(&fp_key, &contact), skip_level: false };
    let received = T0 - 10 * MIN;
    let f1 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000101", "楼上噪音扰民", "0202", Urgency::Normal, Complexity::General, Some(contact.hash()), intake, received), "case1-file");
    let token = [7u8; 16];
    let h1 = c.chain(&mut village, f1.id, f1.id, "case1", vec![
        ("sign_for", "wang", Action::SignFor),
        ("route", "wang", Action::Route { window: "police".into(), requirements: "请核实并调解".into(), due_ms: None }),
        ("progress", "li", Action::Progress { note: "已上门了解情况".into(), public: true }),
        ("attach", "li", Action::Attach { blob: BlobHash::of(b"photo"), name: "现场照片.jpg".into(), mime: "image/jpeg".into(), size: 5 }),
        ("request_extension", "li", Action::RequestExtension { working_days: 3, reason: "需要等待鉴定".into() }),
        ("decide_extension", "wang", Action::DecideExtension { approve: true, note: "同意延期".into() }),
        ("resolve", "li", Action::Resolve { public_reply: "已调解，双方达成一致".into(), internal_note: "内部备注".into() }),
        ("feedback", "wang", Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: Some(RatingInvite { token_hash: rating_token_hash(&token), expires_ms: T0 + 7 * DAY }) }),
        ("citizen_rate", "citizen", Action::CitizenRate { token, rating: Rating::Unsatisfied, result_rating: Rating::Unsatisfied, comment: "没有解决".into() }),
        ("appeal", "wang", Action::Appeal { reason: "群众诉求超出政策范围".into() }),
    ]);
    let h1 = c.chain(&mut town, f1.id, h1, "case1", vec![("decide_appeal", "zhao", Action::DecideAppeal { upheld: false, note: "申诉不成立".into() })]);
    c.chain(&mut village, f1.id, h1, "case1", vec![
        ("reopen", "wang", Action::Reopen { reason: "群众不满意，重新办理".into() }),
        ("resolve2", "li", Action::Resolve { public_reply: "再次调解成功".into(), internal_note: String::new() }),
        ("feedback2", "wang", Action::Feedback { method: "visit".into(), note: "上门反馈".into(), invite: None }),
        ("rate", "wang", Action::Rate { rating: Rating::Satisfied, comment: "满意".into(), result_rating: Some(Rating::Basic) }),
        ("archive", "wang", Action::Archive),
    ]);

    // Case 2: escalated to the township, helpers, dispatched to the second
    // village, returned, re-routed to a window, 督办 by the county (a
    // notice of format 4: the township replies), 协办 with deadlines to a
    // window and the second village (its reply and the 协办督办 of the
    // window are concurrent; both stand), the window's reply, resolved; a
    // feedback the rules refuse (the township is not the filing center).
    let f2 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000102", "宅基地纠纷", "0203", Urgency::Urgent, Complexity::Complex, None, Intake::default(), received), "case2-file");
    let k2 = f2.id;
    let h2 = c.chain(&mut village, k2, k2, "case2", vec![
        ("sign_for", "wang", Action::SignFor),
        ("escalate", "wang", Action::Escalate { reason: "涉及多个村，需街道协调".into() }),
    ]);
    let h2 = c.chain(&mut town, k2, h2, "case2", vec![
        ("town_sign_for", "zhao", Action::SignFor),
        ("add_helpers", "zhao", Action::AddHelpers { helpers: vec![RouteTarget::Window("justice".into()), RouteTarget::Unit("330106001002".parse().unwrap())] }),
        ("dispatch", "zhao", Action::Dispatch { to: "330106001002".parse().unwrap(), requirements: "请宝石社区牵头".into(), due_ms: Some(T0 + 5 * DAY) }),
    ]);
    let h2 = c.chain(&mut village2, k2, h2, "case2", vec![("return", "chen", Action::Return { reason: "不属于本社区".into() })]);
    let h2 = c.chain(&mut town, k2, h2, "case2", vec![("reroute", "zhao", Action::Reroute { target: RouteTarget::Window("natural_resources".into()), reason: "转自然资源窗口".into() })]);
    let notice = c.step(&mut county, Some(k2), &[h2], "sun", Action::Supervise { grade: SuperviseGrade::Yellow, note: "请加快办理".into() }, "case2-supervise");
    let h2 = c.chain(&mut town, k2, notice.id, "case2", vec![
        ("reply_supervision", "zhao", Action::ReplySupervision { notice: notice.id, measures: "已召集自然资源所和两村现场踏勘，三日内出具确权意见".into() }),
    ]);
    let request = c.step(
        &mut town,
        Some(k2),
        &[h2],
        "zhao",
        Action::RequestAssistance {
            helpers: vec![
                AssistTarget { helper: RouteTarget::Window("justice".into()), working_days: 3 },
                AssistTarget { helper: RouteTarget::Unit("330106001002".parse().unwrap()), working_days: 4 },
            ],
            requirements: "请司法窗口出具调解意见，宝石社区提供历史用地资料".into(),
        },
        "case2-request_assistance",
    );
    let unit_reply = c.step(
        &mut village2,
        Some(k2),
        &[request.id],
        "chen",
        Action::ReplyAssistance { request: request.id, helper: RouteTarget::Unit("330106001002".parse().unwrap()), reply: "已提供1998年宅基地审批档案复印件".into() },
        "case2-reply_assistance_unit",
    );
    let chase = c.step(
        &mut town,
        Some(k2),
        &[request.id],
        "zhao",
        Action::SuperviseAssistance { request: request.id, helper: RouteTarget::Window("justice".into()), grade: SuperviseGrade::Normal, note: "请尽快出具调解意见".into() },
        "case2-supervise_assistance",
    );
    let window_reply = c.step(
        &mut town,
        Some(k2),
        &[unit_reply.id, chase.id],
        "zhou",
        Action::ReplyAssistance { request: request.id, helper: RouteTarget::Window("justice".into()), reply: "建议以1998年审批图为准调解".into() },
        "case2-reply_assistance_window",
    );
    let h2 = c.chain(&mut town, k2, window_reply.id, "case2", vec![("resolve", "zhao", Action::Resolve { public_reply: "已确权".into(), internal_note: String::new() })]);
    let _refused = c.step(&mut town, Some(k2), &[h2], "zhao", Action::Feedback { method: "phone".into(), note: "反馈".into(), invite: None }, "case2-feedback_refused");
    let h2 = c.chain(&mut village, k2, h2, "case2", vec![
        ("feedback", "wang", Action::Feedback { method: "phone".into(), note: "已告知".into(), invite: None }),
        ("rate", "wang", Action::Rate { rating: Rating::Basic, comment: String::new(), result_rating: None }),
    ]);
    let _ = h2;

    // Case 3: a duplicate merged into case 1.
    let f3 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000103", "楼上噪音扰民（重复）", "0202", Urgency::Normal, Complexity::General, None, Intake::default(), received), "case3-file");
    c.chain(&mut village, f3.id, f3.id, "case3", vec![("merge", "wang", Action::Merge { into: f1.id })]);

    // Case 4: filed at the township for a village's matter (越级), a
    // concurrent pair of steps (a sign-for and a merge from the same head:
    // both stand, the merge folding after the sign-for), and an escalation
    // that saw only the sign-for: overruled by the merge.
    let f4 = c.step(&mut town, None, &[], "zhao", filing("330106001000-2026-000101", "越级反映物业问题", "0202", Urgency::Normal, Complexity::General, None, Intake { arose_in: Some("330106001001".parse().unwrap()), query_code_hash: None, complainant: Fingerprint::of(&fp_key, &contact), skip_level: true }, received), "case4-file");
    let k4 = Some(f4.id);
    let a = c.step(&mut town, k4, &[f4.id], "zhao", Action::SignFor, "case4-sign_for");
    let _ = c.step(&mut town, k4, &[f4.id], "qian", Action::Merge { into: f1.id }, "case4-merge_concurrent");
    let _ = c.step(&mut town, k4, &[a.id], "zhao", Action::Escalate { reason: "需区级协调".into() }, "case4-escalate");

    // Case 5: 不予受理, referred to a place only policy version 2 lists.
    let f5 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000104", "土地承包经营权纠纷", "0203", Urgency::Normal, Complexity::General, None, Intake::default(), received), "case5-file");
    c.chain(&mut village, f5.id, f5.id, "case5", vec![
        ("sign_for", "wang", Action::SignFor),
        ("decline", "wang", Action::Decline { referral: "land_arbitration".into(), reason: "属于农村土地承包经营纠纷，依法由仲裁委员会处理".into() }),
    ]);

    // Case 6: 中止 for an appraisal, 恢复 (the clocks run again with the
    // time they had left), 中止 again for a reason only version 2 lists:
    // it ends 中止, its clocks standing still.
    let f6 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000105", "装修损坏邻居房屋", "0201", Urgency::Normal, Complexity::General, None, Intake::default(), received), "case6-file");
    let at6 = c.at;
    c.chain(&mut village, f6.id, f6.id, "case6", vec![
        ("sign_for", "wang", Action::SignFor),
        ("route", "wang", Action::Route { window: "justice".into(), requirements: "请组织调解".into(), due_ms: None }),
        ("suspend", "li", Action::Suspend { reason: "appraisal".into(), note: "等待房屋损坏鉴定结论".into(), expected_ms: at6 + 10 * DAY }),
        ("resume", "li", Action::Resume { note: "鉴定结论已出".into() }),
        ("suspend2", "li", Action::Suspend { reason: "party_request".into(), note: "双方申请暂缓调解".into(), expected_ms: at6 + 20 * DAY }),
    ]);

    // Case 7: 中止 because a party went to court, then 撤回 while 中止 (the
    // clocks standing still stop uncounted).
    let f7 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000106", "借款纠纷", "0201", Urgency::Normal, Complexity::General, None, Intake::default(), received), "case7-file");
    let at7 = c.at;
    c.chain(&mut village, f7.id, f7.id, "case7", vec![
        ("sign_for", "wang", Action::SignFor),
        ("suspend", "wang", Action::Suspend { reason: "litigation".into(), note: "当事人已起诉".into(), expected_ms: at7 + 30 * DAY }),
        ("withdraw", "wang", Action::Withdraw { confirmation: WithdrawalConfirmation::Written, reason: "当事人已通过诉讼解决，书面申请撤回".into() }),
    ]);

    // Case 8: mediation. A session, the parties' signed confirmation
    // attached, an agreement, 司法确认 refused; a second session and
    // agreement, 司法确认 confirmed, 回访, resolved, rated and archived.
    let f8 = c.step(&mut village, None, &[], "wang", filing("330106001001-2026-000107", "相邻通行纠纷", "0201", Urgency::Normal, Complexity::General, None, Intake::default(), received), "case8-file");
    let mediators = vec![Mediator { account: "liu".into(), name: "刘建国".into() }, Mediator { account: "he".into(), name: "何秀英".into() }];
    let doc = |n: u32, terms: &str| AgreementDoc {
        number: format!("保俶调字〔2026〕第{n}号"),
        parties: vec![
            Party { name: "张三".into(), gender: "男".into(), age: "45".into(), phone: "13812341234".into(), address: "北山街道某小区1幢".into(), ..Default::default() },
            Party { name: "李四".into(), gender: "女".into(), age: "52".into(), phone: "13912341234".into(), address: "北山街道某小区2幢".into(), ..Default::default() },
        ],
        matter: "两户因楼道通行及杂物堆放发生争执".into(),
        terms: terms.into(),
        performance: "协议签订之日起七日内履行".into(),
        copies: 3,
    };
    let scan1 = BlobHash::of(b"signed confirmation 1");
    let scan2 = BlobHash::of(b"signed confirmation 2");
    let at8 = c.at;
    let h8 = c.chain(&mut village, f8.id, f8.id, "case8", vec![
        ("sign_for", "wang", Action::SignFor),
        ("mediation_session", "liu", Action::MediationSession { held_ms: at8 + 30 * MIN, mediators: mediators.clone(), attendees: "张三、李四及楼道长".into(), notes: "双方陈述争议，初步同意清理杂物".into() }),
        ("attach", "liu", Action::Attach { blob: scan1, name: "当事人签字确认书.pdf".into(), mime: "application/pdf".into(), size: 21 }),
        ("mediation_agreement", "liu", Action::MediationAgreement { document: BlobHash::of(&doc(12, "李四于七日内清理楼道杂物").to_bytes()), signatures: vec![scan1], mediators: mediators.clone(), signed_ms: at8 + 80 * MIN }),
        ("refer_confirmation", "liu", Action::ReferConfirmation { court: "杭州市西湖区人民法院".into(), note: "双方共同申请司法确认".into() }),
        ("record_confirmation", "liu", Action::RecordConfirmation { confirmed: false, ruling: "（2026）浙0106民特101号".into(), ruled_ms: at8 + 140 * MIN, note: "协议内容不明确，驳回申请".into() }),
        ("mediation_session2", "he", Action::MediationSession { held_ms: at8 + 200 * MIN, mediators: mediators[1..].to_vec(), attendees: "张三、李四".into(), notes: "重新明确清理范围和期限".into() }),
        ("attach2", "he", Action::Attach { blob: scan2, name: "当事人签字确认书（二）.pdf".into(), mime: "application/pdf".into(), size: 21 }),
        ("mediation_agreement2", "he", Action::MediationAgreement { document: BlobHash::of(&doc(13, "李四于2026年11月9日前清理一楼至三楼楼道杂物，张三不再阻拦通行").to_bytes()), signatures: vec![scan2], mediators: mediators[1..].to_vec(), signed_ms: at8 + 260 * MIN }),
        ("refer_confirmation2", "he", Action::ReferConfirmation { court: "杭州市西湖区人民法院".into(), note: String::new() }),
        ("record_confirmation2", "he", Action::RecordConfirmation { confirmed: true, ruling: "（2026）浙0106民特102号".into(), ruled_ms: at8 + 320 * MIN, note: "裁定调解协议有效".into() }),
        ("return_visit", "he", Action::ReturnVisit { fulfilment: Fulfilment::Kept, method: "visit".into(), note: "楼道已清理，双方无新争议".into() }),
        ("resolve", "he", Action::Resolve { public_reply: "经调解双方达成协议并经司法确认，已履行".into(), internal_note: String::new() }),
        ("feedback", "wang", Action::Feedback { method: "phone".into(), note: "已电话告知".into(), invite: None }),
        ("rate", "wang", Action::Rate { rating: Rating::Satisfied, comment: "满意".into(), result_rating: Some(Rating::Satisfied) }),
        ("archive", "wang", Action::Archive),
    ]);
    let _ = h8;

    // Monthly reports: one, and one that supersedes it.
    let report = MonthlyReport { unit: village.unit, month: 202610, counts: vec![(0, 3), (8, 1)], definitions: zongzhi_protocol::kpi::DEFINITIONS.into(), supersedes: None, reason: String::new() };
    let r = village.sign(T0 + DAY, Body::Report(report));
    c.put("report", &r);
    let again = MonthlyReport { unit: village.unit, month: 202610, counts: vec![(0, 4), (8, 1)], definitions: zongzhi_protocol::kpi::DEFINITIONS.into(), supersedes: Some(r.id), reason: "补录一件漏登的来电".into() };
    let r = village.sign(T0 + DAY + 60 * MIN, Body::Report(again));
    c.put("report-superseding", &r);

    // Every case as 0.2.0 folds it.
    let mut trust = Trust::new(city.key.id());
    let mut policies = PolicySet::new(v1);
    for r in &c.records {
        match &r.body {
            Body::NodeCert(_) => trust.add_cert(r).unwrap(),
            Body::Revocation(_) => trust.add_revocation(r).unwrap(),
            Body::Policy(p) => {
                policies.insert((**p).clone());
            }
            _ => {}
        }
    }
    let records = c.records.clone();
    let refused = ["case2-feedback_refused", "case4-escalate"];
    for (i, case) in [f1.id, f2.id, f3.id, f4.id, f5.id, f6.id, f7.id, f8.id].iter().enumerate() {
        let events: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).filter(|e| e.event.case_id(e.id) == *case).collect();
        let st = fold(&policies, &trust, &events).unwrap();
        assert_eq!(st.policy_missing, None);
        // Every step stands but the two refused on purpose.
        for t in &st.timeline {
            let name = &c.manifest.iter().zip(&records).find(|(_, r)| r.id == t.id).unwrap().0 .0;
            assert_eq!(t.outcome.is_err(), refused.iter().any(|r| name.contains(r)), "{name}: {:?}", t.outcome);
        }
        c.json(&format!("case{}.json", i + 1), &projection(&st));
    }
    let manifest: Vec<Value> = c.manifest.iter().map(|(f, h)| json!({"file": f, "blake3": h})).collect();
    std::fs::write(
        c.dir.join("MANIFEST.json"),
        serde_json::to_string_pretty(&json!({"format": 4, "release": "0.2.0", "commit": "f12e2c10143f2c078f1efa0d3291090a54aef3ba", "files": manifest})).unwrap() + "\n",
    )
    .unwrap();
}
