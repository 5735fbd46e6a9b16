//! The decisions a center takes (record format 4) through the user's paths,
//! against real nodes: every step refused with nothing stored until the
//! city finalizes format 4; 不予受理 with its referral on the citizen's page
//! and message, 撤回, 中止/恢复 with each rule's refusal; a paused clock
//! across the calendar year and a restart; 派驻 window accounts refused
//! outside their windows (API and CLI); mediation through the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, OPERATOR_PASSWORD, TestNode, bin, sample_case, wait_for};

const CST: jiff::tz::Offset = jiff::tz::offset(8);

fn records(api: &Api) -> u64 {
    api.get("/api/health").1["records"].as_u64().unwrap()
}

/// A city center alone (every center of its tree is itself), with the
/// public page and messages by log; `extra` config lines.
fn city(extra: &str) -> TestNode {
    let mut n = TestNode::init_with("330100000000", "示例市社会治安综合治理中心", &format!("{extra}[public]\nenabled = true\n\n[notify]\nadapter = \"log\"\n"));
    // The log adapter's messages (the citizen's SMS) go to the node's log.
    n.start_with(&[], &[("RUST_LOG", "warn,zongzhi::notify=info")]);
    n
}

/// The city admin finalizes format 4 once its fleet is ready.
fn finalize(admin: &Api) {
    wait_for("the fleet ready to finalize", 30, || (admin.get("/api/fleet").1["finalize"]["ready"] == json!(true)).then_some(()));
    let (status, v) = admin.post("/api/policy/finalize", &json!({"format": 4}));
    assert_eq!(status, 201, "{v}");
    wait_for("the gate at 4", 30, || (admin.get("/api/health").1["upgrade"]["write_format"] == 4).then_some(()));
}

/// Creates an account through the API.
fn account(admin: &Api, body: Value) {
    let (status, v) = admin.post("/api/users", &body);
    assert_eq!(status, 201, "{body}: {v}");
}

fn allowed(v: &Value) -> Vec<String> {
    v["allowed_actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

/// A step refused with `status` and `want` (a rule, else a code), the case
/// and the store unchanged.
fn refused(api: &Api, case: &str, body: Value, status: u16, want: &str) {
    let before = (records(api), api.case(case)["timeline"].as_array().unwrap().len());
    let (got, v) = api.post(&format!("/api/cases/{case}/actions"), &body);
    assert_eq!(got, status, "{body}: {v}");
    let said = v["error"]["rule"].as_str().or(v["error"]["code"].as_str()).unwrap_or_default();
    assert_eq!(said, want, "{body}: {v}");
    assert_eq!((records(api), api.case(case)["timeline"].as_array().unwrap().len()), before, "{body} stored something");
}

fn deadline<'a>(case: &'a Value, kind: &str) -> &'a Value {
    case["deadlines"].as_array().unwrap().iter().rev().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} clock: {case}"))
}

fn ms(d: jiff::civil::Date, hour: i8) -> u64 {
    CST.to_timestamp(d.at(hour, 0, 0, 0)).unwrap().as_millisecond() as u64
}

fn today() -> jiff::civil::Date {
    CST.to_datetime(jiff::Timestamp::now()).date()
}

const NEW_STEPS: &[&str] = &[
    "decline",
    "withdraw",
    "suspend",
    "resume",
    "request_assistance",
    "reply_assistance",
    "supervise_assistance",
    "mediation_session",
    "mediation_agreement",
    "refer_confirmation",
    "record_confirmation",
    "return_visit",
];

/// Each new step, and a policy using the new rules, is refused (409
/// `needs_finalization`) with nothing stored, and not offered, until the
/// city finalizes format 4; then they are offered and taken.
#[test]
fn every_new_step_is_refused_and_hidden_until_the_city_finalizes_format_4() {
    let node = city("");
    let admin = node.login("admin", ADMIN_PASSWORD);
    let op = node.login("operator", OPERATOR_PASSWORD);
    account(&admin, json!({"username": "wang", "password": "mediator-pass-1", "role": "operator", "display_name": "王调解", "mediator": true}));
    let id = op.file_case(&sample_case("尚未升级时的决定"))["id"].as_str().unwrap().to_string();
    op.act(&id, json!({"action": "sign_for"}));
    let scan = op.post_raw(&format!("/api/cases/{id}/attachments?name=signed.pdf"), "application/pdf", b"%PDF-1.4 signed".to_vec());
    assert_eq!(scan.0, 201, "{}", scan.1);
    let blob = scan.1["attachments"][0]["blob"].as_str().unwrap().to_string();
    let case = op.case(&id);
    let offered = allowed(&case);
    assert!(offered.contains(&"add_helpers".to_string()), "{offered:?}");
    for step in NEW_STEPS {
        assert!(!offered.iter().any(|a| a == step), "{step} offered before finalizing: {offered:?}");
    }
    let day = today().to_string();
    let bodies = [
        json!({"action": "decline", "referral": "court", "reason": "属于法院管辖"}),
        json!({"action": "withdraw", "confirmation": "phone", "reason": "当事人来电撤回"}),
        json!({"action": "suspend", "reason": "appraisal", "note": "等待鉴定", "expected_on": today().tomorrow().unwrap().to_string()}),
        json!({"action": "resume", "note": "恢复"}),
        json!({"action": "request_assistance", "helpers": [{"window": "police"}], "requirements": "协助调查"}),
        json!({"action": "reply_assistance", "request": id, "window": "police", "reply": "已协助"}),
        json!({"action": "mediation_session", "held_on": day, "mediators": ["wang"], "attendees": "双方", "notes": "调解"}),
        json!({"action": "mediation_agreement", "document": {"parties": [{"name": "张三"}, {"name": "李四"}], "matter": "噪音", "terms": "不再夜间施工"},
               "signatures": [blob], "mediators": ["wang"], "signed_on": day}),
        json!({"action": "refer_confirmation", "court": "区人民法院"}),
        json!({"action": "record_confirmation", "confirmed": true, "ruling": "(2026)民特1号", "ruled_on": day}),
        json!({"action": "return_visit", "fulfilment": "kept", "note": "已履行"}),
    ];
    for body in bodies {
        refused(&op, &id, body, 409, "needs-finalization");
    }
    refused(&admin, &id, json!({"action": "supervise_assistance", "request": id, "helper": {"window": "police"}, "grade": "normal", "note": "催办"}), 409, "needs-finalization");
    // A policy with rules of its own for them needs format 4 too.
    let before = records(&admin);
    let (status, v) = admin.post("/api/policy", &json!({"decisions": {"return_visit_days": 15}}));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("needs_finalization")), "{v}");
    assert_eq!(records(&admin), before);

    finalize(&admin);
    let offered = allowed(&op.case(&id));
    for step in ["decline", "withdraw", "suspend", "request_assistance", "mediation_session", "mediation_agreement"] {
        assert!(offered.iter().any(|a| a == step), "{step} not offered after finalizing: {offered:?}");
    }
    assert!(!offered.contains(&"add_helpers".to_string()), "协办 with deadlines replaces the plain one: {offered:?}");
    let (status, v) = admin.post("/api/policy", &json!({"decisions": {"return_visit_days": 15}}));
    assert_eq!(status, 201, "{v}");
    let v = op.act(&id, json!({"action": "mediation_session", "held_on": day, "mediators": ["wang"], "attendees": "双方当事人", "notes": "各自陈述"}));
    assert_eq!(v["timeline"].as_array().unwrap().last().unwrap()["format"], 4);
    assert_eq!(v["decisions"]["mediation"]["sessions"][0]["mediators"][0]["name"], "王调解");
    // Only an enabled mediator account is named.
    refused(&op, &id, json!({"action": "mediation_session", "held_on": day, "mediators": ["operator"], "attendees": "双方", "notes": "x"}), 400, "not_a_mediator");
}

fn public_view(anon: &Api, number: &str, code: &str) -> Value {
    let (status, v) = anon.get(&format!("/api/public/cases/{number}?code={code}"));
    assert_eq!(status, 200, "{v}");
    v
}

fn notifications(admin: &Api, template: &str) -> Vec<Value> {
    let v = admin.get("/api/notifications").1;
    v["notifications"].as_array().unwrap_or_else(|| panic!("{v}")).iter().filter(|e| e["template"] == template).cloned().collect()
}

/// 不予受理 refers the citizen (their page and message say where and why),
/// 撤回 closes a case, 中止 stands its clocks still and 恢复 restarts them
/// with what they had left; each rule refuses with nothing stored; the
/// statistics count each in its own column, never as overdue.
#[test]
fn decline_withdraw_suspend_and_resume_through_the_api() {
    let node = city("");
    let admin = node.login("admin", ADMIN_PASSWORD);
    let op = node.login("operator", OPERATOR_PASSWORD);
    finalize(&admin);
    let anon = Api::new(&node.url(), None);

    // 不予受理 of a matter for the court.
    let filed = op.file_case(&sample_case("借款纠纷"));
    let (id, number, code) = (filed["id"].as_str().unwrap().to_string(), filed["number"].as_str().unwrap().to_string(), filed["receipt"]["query_code"].as_str().unwrap().to_string());
    refused(&op, &id, json!({"action": "decline", "referral": "moon", "reason": "x"}), 422, "unknown-referral");
    refused(&op, &id, json!({"action": "decline", "referral": "court", "reason": " "}), 422, "field-required");
    let v = op.act(&id, json!({"action": "decline", "referral": "court", "reason": "民间借贷纠纷属于人民法院受理范围"}));
    assert_eq!(v["status"]["code"], "declined");
    assert_eq!(v["decisions"]["declined"]["referral"]["name"], "人民法院");
    assert!(v["deadlines"].as_array().unwrap().iter().all(|d| d["running"] == false), "its clocks stopped: {}", v["deadlines"]);
    refused(&op, &id, json!({"action": "progress", "note": "x"}), 422, "case-is-closed");
    let page = public_view(&anon, &number, &code);
    assert_eq!((page["status"]["code"].as_str(), page["declined"]["referral"].as_str()), (Some("declined"), Some("人民法院")), "{page}");
    assert!(page["declined"]["guidance"].as_str().unwrap().contains("诉讼服务中心"), "{page}");
    assert!(page["steps"].as_array().unwrap().iter().any(|s| s["step"] == "不予受理" && s["note"].as_str().unwrap().contains("请到人民法院")), "{page}");
    // The citizen's message says it too (the log adapter writes it).
    wait_for("the 不予受理 message queued", 20, || (!notifications(&admin, "declined").is_empty()).then_some(()));
    let sms = wait_for("the 不予受理 message sent", 20, || node.log().lines().find(|l| l.contains("不予受理") && l.contains(&number)).map(String::from));
    assert!(sms.contains("请到人民法院") && sms.contains("诉讼服务中心"), "{sms}");

    // 撤回 by phone, from an open case at a window.
    let w = op.file_case(&sample_case("噪音投诉"))["id"].as_str().unwrap().to_string();
    op.act(&w, json!({"action": "sign_for"}));
    op.act(&w, json!({"action": "route", "window": "police"}));
    refused(&op, &w, json!({"action": "decline", "referral": "court", "reason": "x"}), 422, "status");
    refused(&op, &w, json!({"action": "withdraw", "confirmation": "fax", "reason": "x"}), 400, "bad_request");
    let v = op.act(&w, json!({"action": "withdraw", "confirmation": "phone", "reason": "当事人来电：双方已和解"}));
    assert_eq!((v["status"]["code"].as_str(), v["decisions"]["withdrawn"]["confirmation"]["name"].as_str()), (Some("withdrawn"), Some("电话确认")));
    assert_eq!(v["overdue"], false);

    // 中止 and 恢复.
    let s = op.file_case(&sample_case("宅基地边界纠纷"))["id"].as_str().unwrap().to_string();
    op.act(&s, json!({"action": "sign_for"}));
    let due_before = deadline(&op.case(&s), "resolution")["due_at"].clone();
    let far = (today() + jiff::ToSpan::days(120)).to_string();
    let past = (today() - jiff::ToSpan::days(1)).to_string();
    let soon = (today() + jiff::ToSpan::days(20)).to_string();
    refused(&op, &s, json!({"action": "suspend", "reason": "appraisal", "note": "等待鉴定", "expected_on": far}), 422, "suspension-length");
    refused(&op, &s, json!({"action": "suspend", "reason": "appraisal", "note": "等待鉴定", "expected_on": past}), 422, "expected-in-future");
    refused(&op, &s, json!({"action": "suspend", "reason": "weather", "note": "等待", "expected_on": soon}), 422, "unknown-suspension-reason");
    refused(&op, &s, json!({"action": "suspend", "reason": "appraisal", "note": "", "expected_on": soon}), 422, "field-required");
    refused(&op, &s, json!({"action": "resume"}), 422, "status");
    let v = op.act(&s, json!({"action": "suspend", "reason": "appraisal", "note": "等待土地测绘鉴定", "expected_on": soon}));
    assert_eq!(v["status"]["code"], "suspended");
    let d = deadline(&v, "resolution");
    assert_eq!((d["clock"].as_str(), d["running"].as_bool()), (Some("paused"), Some(false)), "{d}");
    assert_eq!(deadline(&v, "suspension")["due_at"].as_str().map(|t| &t[..10]), Some(soon.as_str()));
    assert!(allowed(&v).contains(&"resume".to_string()) && !allowed(&v).contains(&"resolve".to_string()), "{:?}", allowed(&v));
    refused(&op, &s, json!({"action": "resolve", "public_reply": "x"}), 422, "status");
    let page = op.get("/api/cases?status=suspended").1;
    assert!(page["cases"].as_array().unwrap().iter().any(|c| c["id"] == s), "the 已中止 tab: {page}");
    let v = op.act(&s, json!({"action": "resume", "note": "鉴定结论已出"}));
    assert_eq!(v["status"]["code"], "accepted");
    let d = deadline(&v, "resolution");
    assert_eq!(d["running"], true);
    assert_eq!(d["due_at"], due_before, "resumed the same day: the same working days left");
    assert_eq!(deadline(&v, "suspension")["on_time"], true);

    // Each in its own column.
    let stats = admin.get("/api/stats").1;
    let counts = &stats["total"]["counts"];
    assert_eq!((counts["declined"].as_i64(), counts["withdrawn"].as_i64(), counts["suspended"].as_i64(), counts["resumed"].as_i64()), (Some(1), Some(1), Some(1), Some(1)), "{stats}");
    assert_eq!((counts["received"].as_i64(), counts["resolved"].as_i64(), counts["open_overdue"].as_i64()), (Some(3), Some(0), Some(0)), "{stats}");
}

/// A case paused in December with working days left is resumed in January
/// after a restart: the next year has no calendar yet, so the clock waits
/// (待定); the city signs the year's calendar and the due time follows from
/// the days it had left.
#[test]
fn a_paused_clock_crosses_the_year_boundary_and_a_restart() {
    // 2026 is the last year the shipped policy has a calendar for. Stand on
    // Tuesday 8 December 2026, 10:00.
    let year: i16 = 2026;
    let offset = |d: jiff::civil::Date| (ms(d, 10) as i64 - jiff::Timestamp::now().as_millisecond()) / 1000;
    let december = offset(jiff::civil::Date::new(year, 12, 8).unwrap());
    let mut node = city(&format!("clock_offset_secs = {december}\n"));
    let admin = node.login("admin", ADMIN_PASSWORD);
    let op = node.login("operator", OPERATOR_PASSWORD);
    finalize(&admin);
    let id = op.file_case(&sample_case("山林权属纠纷"))["id"].as_str().unwrap().to_string();
    op.act(&id, json!({"action": "sign_for"}));
    let due = deadline(&op.case(&id), "resolution")["due_at"].as_str().unwrap().to_string();
    let expected = jiff::civil::Date::new(year + 1, 1, 31).unwrap().to_string();
    let v = op.act(&id, json!({"action": "suspend", "reason": "other_authority", "note": "等待林业部门确权", "expected_on": expected}));
    let left = deadline(&v, "resolution")["paused"]["left"].clone();
    assert_eq!(left, json!({"working_days": 7}), "8 December: the 7 working days to {due} are left");

    // The node is stopped; it starts again on 11 January of next year.
    node.stop();
    let config = std::fs::read_to_string(&node.config).unwrap();
    let january = offset(jiff::civil::Date::new(year + 1, 1, 11).unwrap());
    let shifted = config.replace(&format!("clock_offset_secs = {december}"), &format!("clock_offset_secs = {january}"));
    assert_ne!(config, shifted);
    std::fs::write(&node.config, shifted).unwrap();
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    assert_eq!(deadline(&op.case(&id), "resolution")["clock"], "paused", "still paused after the restart");
    let v = op.act(&id, json!({"action": "resume", "note": "确权结果已出"}));
    let d = deadline(&v, "resolution");
    assert_eq!((d["clock"].as_str(), d["waiting_year"].as_i64()), (Some("waiting_for_calendar"), Some(i64::from(year + 1))), "{d}");
    assert!(op.get("/api/cases?waiting_calendar=true").1["cases"].as_array().unwrap().iter().any(|c| c["id"] == id));

    // The city signs next year's calendar (New Year's Day off): seven
    // working days after Monday 11 January end on Wednesday 20 January.
    let cal = json!({"source": "测试用日历", "holidays": [{"date": format!("{}-01-01", year + 1), "name": "元旦"}], "make_up_workdays": []});
    let (status, v) = admin.post("/api/policy", &json!({"calendars": {(year + 1).to_string(): cal}}));
    assert_eq!(status, 201, "{v}");
    let v = wait_for("the clock computed", 20, || {
        let v = op.case(&id);
        (deadline(&v, "resolution")["clock"] != "waiting_for_calendar").then_some(v)
    });
    let d = deadline(&v, "resolution");
    assert_eq!(d["due_at"].as_str().map(|t| &t[..10]), Some(format!("{}-01-20", year + 1).as_str()), "{d}");
    assert_eq!(d["running"], true);
}

struct Cli {
    node: String,
    session: std::path::PathBuf,
}

impl Cli {
    fn new(node: &TestNode, dir: &tempfile::TempDir, who: &str) -> Cli {
        Cli { node: node.url(), session: dir.path().join(format!("{who}.json")) }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("zongzhi")).args(args).env("ZONGZHI_NODE", &self.node).env("ZONGZHI_SESSION", &self.session).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "zongzhi {args:?}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "zongzhi {args:?} should fail: {}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

/// A 派驻 window account sees and acts on its window's cases only: the
/// cases at its window and those its window was asked to help with; every
/// other case, list, search, statistics and export is refused with 403,
/// through the API and the command line.
#[test]
fn a_window_account_works_on_its_windows_cases_only() {
    let node = city("");
    let admin = node.login("admin", ADMIN_PASSWORD);
    let op = node.login("operator", OPERATOR_PASSWORD);
    finalize(&admin);
    let dir = tempfile::tempdir().unwrap();
    let admin_cli = Cli::new(&node, &dir, "admin");
    admin_cli.ok(&["login", "--user", "admin", "--password", ADMIN_PASSWORD]);
    // A window account needs its windows, and only a window account has any.
    assert!(admin_cli.fails(&["user", "add", "--username", "nowin", "--role", "window", "--password", "window-pass-1"]).contains("window"));
    assert!(admin_cli.fails(&["user", "add", "--username", "opwin", "--role", "operator", "--window", "justice", "--password", "window-pass-1"]).contains("window"));
    assert!(admin_cli.fails(&["user", "add", "--username", "badwin", "--role", "window", "--window", "nowhere", "--password", "window-pass-1"]).contains("nowhere"));
    admin_cli.ok(&["user", "add", "--username", "sfs", "--role", "window", "--window", "justice", "--display-name", "司法所窗口", "--password", "window-pass-1"]);

    let file = |title: &str| op.file_case(&sample_case(title))["id"].as_str().unwrap().to_string();
    let at_justice = file("婚姻家庭纠纷");
    op.act(&at_justice, json!({"action": "sign_for"}));
    op.act(&at_justice, json!({"action": "route", "window": "justice"}));
    let at_police = file("治安问题");
    op.act(&at_police, json!({"action": "sign_for"}));
    op.act(&at_police, json!({"action": "route", "window": "police"}));
    let helped = file("物业服务纠纷");
    op.act(&helped, json!({"action": "sign_for"}));
    op.act(&helped, json!({"action": "request_assistance", "helpers": [{"window": "justice", "working_days": 2}, {"window": "police"}], "requirements": "请提供调解意见"}));
    let unrouted = file("邻里纠纷");

    let sfs = node.login("sfs", "window-pass-1");
    let me = sfs.get("/api/me").1;
    assert_eq!((me["role"].as_str(), me["windows"].clone()), (Some("window"), json!(["justice"])));
    let listed = |q: &str| -> Vec<String> {
        let (status, v) = sfs.get(&format!("/api/cases?{q}"));
        assert_eq!(status, 200, "{v}");
        v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
    };
    let mut open = listed("status=open");
    open.sort();
    let mut want = vec![at_justice.clone(), helped.clone()];
    want.sort();
    assert_eq!(open, want, "its queue: the case at its window and the one it helps with");
    assert_eq!(listed("clock=assistance"), vec![helped.clone()], "待协办");
    assert_eq!(sfs.get("/api/cases?status=open").1["total"], 2);
    // Outside its windows: 403 everywhere, nothing stored.
    let forbidden = |status: u16, v: &Value, what: &str| assert_eq!((status, v["error"]["code"].as_str()), (403, Some("outside_windows")), "{what}: {v}");
    for case in [&at_police, &unrouted] {
        let (status, v) = sfs.get(&format!("/api/cases/{case}"));
        forbidden(status, &v, "a case elsewhere");
        let before = records(&op);
        let (status, v) = sfs.post(&format!("/api/cases/{case}/actions"), &json!({"action": "progress", "note": "越权"}));
        forbidden(status, &v, "a step elsewhere");
        assert_eq!(records(&op), before);
    }
    let (status, v) = sfs.get("/api/cases?window=police");
    forbidden(status, &v, "another window's queue");
    let (status, v) = sfs.get("/api/cases?owner=all");
    forbidden(status, &v, "every owner's cases");
    for path in ["/api/search?q=纠纷", "/api/stats", "/api/cases/export?format=csv", "/api/repeats", "/api/users", "/api/sync"] {
        let (status, v) = sfs.get(path);
        forbidden(status, &v, path);
    }
    let (status, v) = sfs.post("/api/cases", &sample_case("窗口受理"));
    forbidden(status, &v, "filing");
    // Its window's steps only: no dispatch or 不予受理 even at its window.
    let before = records(&op);
    let (status, v) = sfs.post(&format!("/api/cases/{at_justice}/actions"), &json!({"action": "escalate", "reason": "越权"}));
    forbidden(status, &v, "escalating");
    let (status, v) = sfs.post(&format!("/api/cases/{helped}/actions"), &json!({"action": "reply_assistance", "window": "police", "reply": "越权"}));
    forbidden(status, &v, "another window's reply");
    assert_eq!(records(&op), before);
    let offered = allowed(&sfs.case(&at_justice));
    assert!(offered.contains(&"resolve".to_string()) && offered.contains(&"suspend".to_string()) && !offered.contains(&"escalate".to_string()), "{offered:?}");
    assert_eq!(allowed(&sfs.case(&helped)), vec!["progress".to_string(), "reply_assistance".to_string()]);
    // …and it takes them.
    let v = sfs.act(&helped, json!({"action": "reply_assistance", "reply": "司法所意见：建议由物业公司与业主协商"}));
    let reply = v["decisions"]["assists"].as_array().unwrap().iter().find(|a| a["helper"]["window"] == "justice").unwrap().clone();
    assert_eq!((reply["reply"].as_str(), reply["late"].as_bool()), (Some("司法所意见：建议由物业公司与业主协商"), Some(false)), "{reply}");
    assert_eq!(v["timeline"].as_array().unwrap().last().unwrap()["window"], "justice", "the step is its window's");
    assert_eq!(v["timeline"].as_array().unwrap().last().unwrap()["operator"], "sfs");
    assert!(listed("clock=assistance").is_empty(), "answered: off its 待协办 tab");
    sfs.act(&at_justice, json!({"action": "progress", "note": "已约双方到司法所调解"}));
    let v = sfs.act(&at_justice, json!({"action": "resolve", "public_reply": "经司法所调解，双方达成和解"}));
    assert_eq!(v["status"]["code"], "resolved");

    // The command line, as the window account.
    let cli = Cli::new(&node, &dir, "sfs");
    cli.ok(&["login", "--user", "sfs", "--password", "window-pass-1"]);
    let queue = cli.ok(&["queue", "--status", "all"]);
    assert!(queue.contains("婚姻家庭纠纷") && queue.contains("物业服务纠纷") && !queue.contains("治安问题"), "{queue}");
    let err = cli.fails(&["show", &at_police]);
    assert!(err.contains("outside_windows") || err.contains("派驻窗口"), "{err}");
    let err = cli.fails(&["progress", &unrouted, "--note", "越权"]);
    assert!(err.contains("outside_windows") || err.contains("派驻窗口"), "{err}");
    assert!(cli.fails(&["search", "纠纷"]).contains("派驻窗口"));
    // The center's operator sees one window's queue.
    let v = op.get("/api/cases?window=justice&status=all").1;
    assert_eq!(v["cases"].as_array().unwrap().len(), 2, "{v}");
}

/// Mediation through the command line: a mediator account, a session, the
/// agreement with its text and scans, 司法确认, and the 回访 that lets the
/// case be archived; the agreement's text travels as a blob whose hash the
/// step signs.
#[test]
fn mediation_through_the_command_line() {
    let node = city("");
    let admin = node.login("admin", ADMIN_PASSWORD);
    finalize(&admin);
    let dir = tempfile::tempdir().unwrap();
    let admin_cli = Cli::new(&node, &dir, "admin");
    admin_cli.ok(&["login", "--user", "admin", "--password", ADMIN_PASSWORD]);
    admin_cli.ok(&["user", "add", "--username", "wang", "--role", "operator", "--display-name", "王调解", "--mediator", "--password", "mediator-pass-1"]);
    let cli = Cli::new(&node, &dir, "wang");
    cli.ok(&["login", "--user", "wang", "--password", "mediator-pass-1"]);
    let op = node.login("operator", OPERATOR_PASSWORD);
    let filed = op.file_case(&sample_case("相邻关系纠纷"));
    let (id, number) = (filed["id"].as_str().unwrap().to_string(), filed["number"].as_str().unwrap().to_string());
    cli.ok(&["sign-for", &number]);
    let day = today().to_string();
    assert!(cli.fails(&["mediate", &number, "--held-on", &day, "--mediator", "operator", "--attendees", "双方", "--notes", "x"]).contains("调解员"));
    cli.ok(&["mediate", &number, "--held-on", &day, "--mediator", "wang", "--attendees", "申请人张三、被申请人李四", "--notes", "双方陈述，初步达成一致"]);
    let file = dir.path().join("agreement.json");
    std::fs::write(
        &file,
        json!({"parties": [{"name": "张三", "gender": "男", "age": "45", "address": "某小区3幢502"}, {"name": "李四", "gender": "女", "address": "某小区3幢602"}],
               "matter": "李四装修噪音影响张三休息", "terms": "李四每日8时至18时施工，并赔偿张三500元", "performance": "十日内一次付清", "copies": 3})
        .to_string(),
    )
    .unwrap();
    let scan = dir.path().join("签字页.pdf");
    std::fs::write(&scan, b"%PDF-1.4 scanned signatures").unwrap();
    cli.ok(&["agreement", &number, "--file", file.to_str().unwrap(), "--scan", scan.to_str().unwrap(), "--mediator", "wang", "--signed-on", &day]);
    let v = op.case(&id);
    let ag = &v["decisions"]["mediation"]["agreements"][0];
    assert_eq!(ag["document"]["terms"], "李四每日8时至18时施工，并赔偿张三500元", "{ag}");
    assert_eq!(ag["document"]["number"], format!("{number}-调"));
    assert_eq!(ag["signatures"][0]["name"], "签字页.pdf");
    assert!(v["attachments"].as_array().unwrap().iter().any(|a| a["name"] == "签字页.pdf"));
    // The signed step holds the hash, never the names.
    let step = v["timeline"].as_array().unwrap().iter().find(|t| t["action"] == "mediation_agreement").unwrap().clone();
    assert!(!step["details"].to_string().contains("张三"), "{step}");
    assert_eq!(step["details"]["document"], ag["document_hash"]);
    cli.ok(&["resolve", &number, "--reply", "经调解达成协议"]);
    cli.ok(&["confirm-refer", &number, "--court", "西湖区人民法院"]);
    assert!(cli.fails(&["confirm-result", &number, "--ruling", "x", "--ruled-on", &day]).contains("--confirmed"));
    cli.ok(&["feedback", &number, "--note", "已告知调解结果", "--no-rating-invite"]);
    cli.ok(&["rate", &number, "--rating", "satisfied"]);
    assert!(cli.fails(&["archive", &number]).contains("司法确认"));
    cli.ok(&["confirm-result", &number, "--confirmed", "--ruling", "(2026)浙0106民特12号", "--ruled-on", &day]);
    let err = cli.fails(&["archive", &number]);
    assert!(err.contains("回访") || err.contains("archive-needs-return-visit"), "{err}");
    cli.ok(&["return-visit", &number, "--fulfilment", "kept", "--method", "visit", "--note", "已按协议施工并付清赔偿"]);
    cli.ok(&["archive", &number]);
    let v = op.case(&id);
    assert_eq!(v["status"]["code"], "archived");
    let ag = &v["decisions"]["mediation"]["agreements"][0];
    assert_eq!((ag["confirmation"]["ruling"]["confirmed"].as_bool(), ag["visits"][0]["fulfilment"]["code"].as_str()), (Some(true), Some("kept")));
    let viewer = node.login("viewer", zongzhi_tests::VIEWER_PASSWORD);
    let masked = viewer.case(&id);
    assert_eq!(masked["decisions"]["mediation"]["agreements"][0]["document"]["parties"][0]["name"], "张*", "masked for viewers");
    let counts = admin.get("/api/stats").1["total"]["counts"].clone();
    for c in ["mediation_sessions", "mediation_agreements", "confirmation_referred", "confirmed", "return_visits", "return_visits_on_time", "agreements_kept"] {
        assert_eq!(counts[c], 1, "{c}: {counts}");
    }
}
