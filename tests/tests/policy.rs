//! The policy across years, through the HTTP API of real nodes linked over
//! QUIC: a clock waiting for next year's calendar, the city signing that
//! calendar, every copy of the case computing its due time, statistics and
//! supervision following; a later deadline-table change moving nothing
//! already computed; restart and reindex giving the same state; and every
//! refusal of a bad policy or workflow step storing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::civil::{Date, Weekday};
use serde_json::{Value, json};
use zongzhi_node::store::Store;
use zongzhi_protocol::policy::{Holiday, Policy, YearCalendar};
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, metric, sample_case, wait_case, wait_for};

const CST: jiff::tz::Offset = jiff::tz::offset(8);

fn ms(d: Date, hour: i8) -> u64 {
    CST.to_timestamp(d.at(hour, 0, 0, 0)).unwrap().as_millisecond() as u64
}

fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).unwrap().display_with_offset(CST).to_string()
}

fn today() -> Date {
    CST.to_datetime(jiff::Timestamp::now()).date()
}

/// A made-up calendar for `year` (the real notice is not in the repository):
/// New Year's Day off, and the first Saturday of February a make-up workday.
fn test_calendar(year: i16) -> (Value, YearCalendar) {
    let mut sat = Date::new(year, 2, 1).unwrap();
    while sat.weekday() != Weekday::Saturday {
        sat = sat.tomorrow().unwrap();
    }
    let json = json!({
        "source": format!("测试用{year}年日历（非国务院通知）"),
        "holidays": [{"date": format!("{year}-01-01"), "name": "元旦"}],
        "make_up_workdays": [sat.to_string()],
    });
    let ymd = |d: Date| d.year() as u32 * 10_000 + d.month() as u32 * 100 + d.day() as u32;
    let cal = YearCalendar { year: year as u16, source: String::new(), holidays: vec![Holiday { date: ymd(Date::new(year, 1, 1).unwrap()), name: "元旦".into() }], makeup_workdays: vec![ymd(sat)] };
    (json, cal)
}

fn deadline<'a>(case: &'a Value, kind: &str) -> &'a Value {
    case["deadlines"].as_array().unwrap().iter().rev().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} clock: {case}"))
}

fn records(api: &Api) -> u64 {
    api.get("/api/health").1["records"].as_u64().unwrap()
}

fn waiting_stat(api: &Api, scope: &str) -> i64 {
    let (status, v) = api.get(&format!("/api/stats?scope={scope}"));
    assert_eq!(status, 200, "{v}");
    v["total"]["counts"]["waiting_for_calendar"].as_i64().unwrap_or_else(|| panic!("no waiting_for_calendar counter: {v}"))
}

/// The whole year-boundary story on a tree whose clocks stand on 1 February
/// of next year (every node's clock shifted alike): a complex case received
/// on 21 December with an approved extension waits for next year's calendar;
/// the city signs it; the village's and the township's copies compute the
/// due time, the statistics stop counting it as waiting, the township's
/// supervision worker issues the notice it is owed; a deadline-table change
/// moves nothing; restart and reindex give the same state.
#[test]
fn a_clock_waiting_for_next_years_calendar_is_computed_everywhere_when_the_city_signs_it() {
    let year = today().year();
    let next = year + 1;
    let node_now = ms(Date::new(next, 2, 1).unwrap(), 10);
    let offset = (node_now as i64 - jiff::Timestamp::now().as_millisecond()) / 1000;
    // 受理时间 back in December (of the test's "last year"): a backlog
    // entered knowingly, beyond the default 72 hours.
    let mut h = Hierarchy::start_with(1, &format!("clock_offset_secs = {offset}\nreceived_at_max_hours = 2400\n"));
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let town_admin = h.township.login("admin", ADMIN_PASSWORD);
    let city_admin = h.city.login("admin", ADMIN_PASSWORD);

    // The shipped calendars end in 2026: the tree needs this year's (the
    // test's "last year") first, or every clock would wait.
    if city_admin.get("/api/policy").1["calendars"].get(year.to_string()).is_none() {
        let (status, v) = city_admin.post("/api/policy", &json!({"calendars": {year.to_string(): test_calendar(year).0}}));
        assert_eq!(status, 201, "{v}");
    }
    let base_version = city_admin.get("/api/policy").1["version"].as_u64().unwrap();
    wait_for("the village to hold the base policy", 20, || (village.get("/api/policy").1["version"].as_u64() == Some(base_version)).then_some(()));

    // The node's date is in `next`, whose calendar is missing: a loud warning.
    let health = village.get("/api/health").1;
    assert_eq!(health["calendar"]["missing"], json!([next]), "{health}");
    assert!(health["calendar"]["warning"].as_str().unwrap().contains(&format!("缺少{next}年工作日历")), "{health}");

    let received = ms(Date::new(year, 12, 21).unwrap(), 10);
    let mut body = sample_case("年末受理的复杂纠纷");
    body["complexity"] = json!("complex");
    body["received_at"] = json!(rfc3339(received));
    let filed = village.file_case(&body);
    let id = filed["id"].as_str().unwrap().to_string();
    let res = deadline(&filed, "resolution");
    assert_eq!((res["clock"].as_str(), res["waiting_year"].as_i64(), res["due_at"].is_null()), (Some("waiting_for_calendar"), Some(next as i64), true), "{res}");
    village.act(&id, json!({"action": "sign_for"}));
    village.act(&id, json!({"action": "request_extension", "working_days": 5, "reason": "需要现场勘查"}));
    // The township (the level directly above the village, the one decider
    // of a village's own request) approves on its copy.
    wait_case(&h.township, &town_admin, &id, "the extension request at the township", |v| v["extension_pending"]["working_days"] == 5);
    town_admin.act(&id, json!({"action": "approve_extension", "note": "同意延期"}));
    let v = wait_case(&h.villages[0], &village, &id, "the approval at the village", |v| deadline(v, "resolution")["extended_working_days"] == 5);
    village.act(&id, json!({"action": "route", "window": "justice", "requirements": "调解"}));
    assert_eq!(deadline(&v, "resolution")["clock"], "waiting_for_calendar", "{v}");

    // Visible everywhere an operator or a monitor looks.
    let (_, q) = village.get("/api/cases?waiting_calendar=true");
    assert_eq!(q["cases"].as_array().unwrap().len(), 1, "{q}");
    assert_eq!(q["cases"][0]["waiting_calendar"], json!([next]), "{q}");
    assert_eq!(village.get("/api/health").1["calendar"]["cases_waiting"], 1);
    let metrics = reqwest::blocking::get(format!("{}/metrics", h.villages[0].url())).unwrap().text().unwrap();
    assert!(metrics.contains("zongzhi_cases_waiting_for_calendar 1"), "{metrics}");
    assert!(metrics.contains(&format!("zongzhi_calendar_missing{{year=\"{next}\"}} 1")), "{metrics}");
    let town_stats = h.township.login("operator", OPERATOR_PASSWORD);
    wait_for("the waiting clock in the township's statistics", 20, || (waiting_stat(&town_stats, "330106010000") >= 1).then_some(()));

    // The city signs next year's calendar through the API.
    let (cal_json, cal) = test_calendar(next);
    let (status, signed) = city_admin.post("/api/policy", &json!({"calendars": {next.to_string(): cal_json}}));
    assert_eq!(status, 201, "{signed}");
    assert_eq!(signed["changes"][0]["path"], format!("calendars/{next}"), "{signed}");

    // The due time every node must compute: 15 + 5 working days from the
    // day received, with the calendars held.
    let mut p = Policy::default_policy();
    if p.calendar(year as i32).is_none() {
        p.calendars.push(test_calendar(year).1);
    }
    p.calendars.push(cal);
    let expected = rfc3339(p.add_working_days(received, 20).unwrap());
    for (node, api) in [(&h.villages[0], &village), (&h.township, &town_admin)] {
        let v = wait_case(node, api, &id, "the computed due time", |v| !deadline(v, "resolution")["due_at"].is_null());
        let res = deadline(&v, "resolution");
        assert_eq!(res["due_at"].as_str(), Some(expected.as_str()), "{res}");
        assert_ne!(res["clock"], "waiting_for_calendar");
    }
    // Statistics and the queue follow; the township's worker supervises
    // the now overdue clock (the village's parent supervises its cases).
    wait_for("the statistics to stop counting the clock as waiting", 20, || (waiting_stat(&town_stats, "330106010000") == 0).then_some(()));
    assert!(village.get("/api/cases?waiting_calendar=true").1["cases"].as_array().unwrap().is_empty());
    assert_eq!(village.get("/api/health").1["calendar"]["cases_waiting"], 0);
    let v =
        wait_case(&h.villages[0], &village, &id, "the automatic supervision notice", |v| v["timeline"].as_array().unwrap().iter().any(|t| t["action"] == "supervise" && t["operator"] == "自动督办"));
    let due = deadline(&v, "resolution")["due_at"].clone();

    // A later deadline-table change moves no computed due time.
    let (status, v3) = city_admin.post("/api/policy", &json!({"deadlines": {"resolution_complex_working_days": 30}}));
    assert_eq!(status, 201, "{v3}");
    let v3 = v3["version"].as_u64().unwrap();
    wait_for("the village to hold the new version", 20, || (village.get("/api/policy").1["version"].as_u64() == Some(v3)).then_some(()));
    assert_eq!(deadline(&village.case(&id), "resolution")["due_at"], due);

    // Restart and reindex: the same state.
    let snapshot = |api: &Api| {
        let c = api.case(&id);
        json!([c["deadlines"], c["status"], c["supervision"]])
    };
    // Settled first: the supervision workers run every second. Settled is
    // the nodes' own word: each has scanned twice more, nothing waits to
    // be sent or received on any link, and the view has not changed.
    let before = wait_for("the township's view of the case to settle", 120, || {
        let a = snapshot(&town_admin);
        for node in h.all() {
            let scans = metric(node, "zongzhi_supervision_scans_total");
            wait_for("two more supervision scans", 60, || (metric(node, "zongzhi_supervision_scans_total") >= scans + 2.0).then_some(()));
        }
        let quiet = h.all().iter().all(|node| {
            let (_, sync) = node.login("admin", ADMIN_PASSWORD).get("/api/sync");
            sync["peers"].as_array().unwrap().iter().filter(|p| p["connected"] == true).all(|p| p["behind_to_peer"] == 0 && p["behind_from_peer"] == 0)
        });
        (quiet && snapshot(&town_admin) == a).then_some(a)
    });
    let notices = |api: &Api| -> Vec<String> {
        let c = api.case(&id);
        c["timeline"].as_array().unwrap().iter().filter(|t| t["action"] == "supervise").map(|t| format!("{} {} {} {}", t["time"], t["unit"], t["operator"], t["details"]["note"])).collect()
    };
    let notices_before = notices(&town_admin);
    h.township.stop();
    let dump = |node: &TestNode| Store::open(&node.db_path()).unwrap().derived_dump().unwrap();
    let derived = dump(&h.township);
    let out = h.township.node_cmd(&["reindex"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&h.township), derived, "reindex computed different derived state");
    h.township.start();
    assert_eq!(snapshot(&town_admin), before, "notices before the restart: {notices_before:#?}\nafter: {:#?}", notices(&town_admin));
}

/// Every refusal: a clear 4xx and nothing stored (the feed does not grow,
/// the policy version does not change).
#[test]
fn bad_policies_and_bad_steps_are_refused_and_store_nothing() {
    // A backlog (补录) may be entered with its old 受理时间 where the node allows it.
    let h = Hierarchy::start_with(2, "received_at_max_hours = 100000\n");
    let city_admin = h.city.login("admin", ADMIN_PASSWORD);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let village_admin = h.villages[0].login("admin", ADMIN_PASSWORD);
    let version = city_admin.get("/api/policy").1["version"].clone();
    let next = today().year() + 1;

    let refuse = |api: &Api, path: &str, body: Value, status: u16, code: &str| {
        let before = records(api);
        let (got, v) = api.post(path, &body);
        assert_eq!((got, v["error"]["code"].as_str()), (status, Some(code)), "{body} → {v}");
        assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty(), "{v}");
        assert_eq!(records(api), before, "{body} stored something");
    };
    let cal = |holidays: Value, makeup: Value| json!({"calendars": {next.to_string(): {"holidays": holidays, "make_up_workdays": makeup}}});
    let weekday = {
        let mut d = Date::new(next, 3, 1).unwrap();
        while matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            d = d.tomorrow().unwrap();
        }
        d.to_string()
    };
    let saturday = {
        let mut d = Date::new(next, 3, 1).unwrap();
        while d.weekday() != Weekday::Saturday {
            d = d.tomorrow().unwrap();
        }
        d.to_string()
    };
    for (body, status, code) in [
        (json!({"version": 99}), 400, "unknown_key"),
        (json!({"calendar": {}}), 400, "unknown_key"),
        (json!({"deadlines": {"resolution_working_days": "seven"}}), 400, "bad_patch"),
        (json!([1, 2]), 400, "bad_patch"),
        (json!({"deadlines": {"resolution_working_days": 7}}), 409, "no_change"),
        (cal(json!([{"date": format!("{}-12-31", next - 1), "name": "元旦"}]), json!([])), 422, "invalid_policy"),
        (cal(json!([]), json!([weekday])), 422, "invalid_policy"),
        (cal(json!([{"date": saturday, "name": "春节"}]), json!([saturday])), 422, "invalid_policy"),
        (cal(json!([{"date": format!("{next}-01-01"), "name": "元旦"}, {"date": format!("{next}-01-01"), "name": "元旦"}]), json!([])), 422, "invalid_policy"),
        (json!({"calendars": {"2025": null}}), 422, "invalid_policy"),
        (json!({"windows": {"police": null}}), 422, "invalid_policy"),
        (json!({"windows": {"fire": {"name": ""}}}), 422, "invalid_policy"),
        (json!({"windows": {"fire": {"name": "消".repeat(200)}}}), 422, "invalid_policy"),
        (json!({"categories": {"01": {"children": {"0299": {"name": "错位小类", "default_window": "police"}}}}}), 422, "invalid_policy"),
    ] {
        refuse(&city_admin, "/api/policy", body, status, code);
    }
    // Only the city signs, and only its admin.
    refuse(&village_admin, "/api/policy", json!({"windows": {"fire": {"name": "消防"}}}), 403, "not_root");
    let city_op = h.city.login("operator", OPERATOR_PASSWORD);
    refuse(&city_op, "/api/policy", json!({"windows": {"fire": {"name": "消防"}}}), 403, "forbidden");
    assert_eq!(city_admin.get("/api/policy").1["version"], version);

    // A dry run shows the change and signs nothing; then a window and a
    // category are added, renamed and retired as versions with readable diffs.
    let before = records(&city_admin);
    let (status, dry) = city_admin.post("/api/policy?dry_run=true", &json!({"windows": {"fire": {"name": "消防"}}}));
    assert_eq!((status, dry["dry_run"].as_bool()), (200, Some(true)), "{dry}");
    assert_eq!(dry["changes"][0]["text"], "新增窗口 fire（消防）");
    assert_eq!(records(&city_admin), before);
    let (status, v2) = city_admin.post(
        "/api/policy",
        &json!({
            "windows": {"fire": {"name": "消防"}, "court": {"name": "诉调对接"}},
            "categories": {"10": {"name": "城市管理", "children": {"1001": {"name": "占道经营", "default_window": "fire"}}}},
        }),
    );
    assert_eq!(status, 201, "{v2}");
    let (status, v3) = city_admin.post("/api/policy", &json!({"windows": {"court": {"name": "诉调对接（法院）", "retired": true}}}));
    assert_eq!(status, 201, "{v3}");
    let (_, diff) = city_admin.get(&format!("/api/policy/diff?from={}&to={}", v2["version"], v3["version"]));
    let texts: Vec<&str> = diff["changes"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"窗口 court 更名：诉调对接 → 诉调对接（法院）") && texts.contains(&"窗口 court 停用"), "{diff}");
    let (status, old) = city_admin.get(&format!("/api/policy?version={}", v2["version"]));
    assert_eq!((status, old["windows"]["court"]["retired"].as_bool()), (200, Some(false)), "{old}");
    assert_eq!(city_admin.get("/api/policy?version=999").0, 404);
    let v3n = v3["version"].as_u64().unwrap();
    wait_for("the township to hold the new windows", 20, || (town.get("/api/policy").1["version"].as_u64() == Some(v3n)).then_some(()));

    // Workflow rule gaps, at the township (two villages below it).
    let case = town.file_case(&sample_case("乡镇受理的纠纷"));
    let id = case["id"].as_str().unwrap().to_string();
    town.act(&id, json!({"action": "sign_for"}));
    let act = |body: Value| (format!("/api/cases/{id}/actions"), body);
    let now_ms = jiff::Timestamp::now().as_millisecond() as u64;
    for ((path, body), status, rule) in [
        // A village that is not enrolled (330106010099 does not exist).
        (act(json!({"action": "dispatch", "to": "330106010099", "requirements": "处理"})), 422, "unknown-unit"),
        (act(json!({"action": "add_helpers", "units": ["330106010099"]})), 422, "unknown-unit"),
        // A hand-set deadline in the past, or too far ahead.
        (act(json!({"action": "route", "window": "justice", "due_at": "1971-01-01T00:00:00+08:00"})), 422, "due-in-future"),
        (act(json!({"action": "route", "window": "justice", "due_at": rfc3339(now_ms + 400 * 86_400_000)})), 422, "due-within-bound"),
        (act(json!({"action": "dispatch", "to": "330106010001", "due_at": "1971-01-01T00:00:00+08:00"})), 422, "due-in-future"),
        // A retired window.
        (act(json!({"action": "route", "window": "court"})), 422, "retired-window"),
    ] {
        let before = records(&town);
        let (got, v) = town.post(&path, &body);
        assert_eq!((got, v["error"]["rule"].as_str()), (status, Some(rule)), "{body} → {v}");
        assert_eq!(records(&town), before, "{body} stored something");
    }
    // The new window takes cases at once.
    town.act(&id, json!({"action": "route", "window": "fire", "requirements": "消防检查", "due_at": rfc3339(now_ms + 3 * 86_400_000)}));

    // Merging: A into B, then B into A is refused (B is closed), as is a
    // merge into an archived case.
    let a = town.file_case(&sample_case("重复投诉甲"))["id"].as_str().unwrap().to_string();
    let b = town.file_case(&sample_case("重复投诉乙"))["id"].as_str().unwrap().to_string();
    town.act(&a, json!({"action": "merge", "into": b}));
    let before = records(&town);
    let (status, v) = town.post(&format!("/api/cases/{b}/actions"), &json!({"action": "merge", "into": a}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("merge-target-open")), "{v}");
    assert_eq!(records(&town), before);
    assert_eq!(town.case(&b)["status"]["code"], "awaiting_receipt");

    // Filing back-dated into a year without a calendar names the year.
    let mut old = sample_case("补录的旧案");
    old["received_at"] = json!("2024-06-03T09:00:00+08:00");
    let before = records(&town);
    let (status, v) = town.post("/api/cases", &old);
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("no-calendar-for-year")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("2024"), "{v}");
    assert_eq!(records(&town), before);
}

/// The early warning follows the policy's lead time: off before it, on
/// from it (in health and metrics), off once next year's calendar is signed.
#[test]
fn the_calendar_warning_follows_the_lead_time() {
    let mut city = TestNode::init("330100000000", "示例市社会治安综合治理中心");
    city.start();
    let admin = city.login("admin", ADMIN_PASSWORD);
    let today = today();
    let year = today.year();
    if admin.get("/api/policy").1["calendars"].get(year.to_string()).is_none() {
        let (status, v) = admin.post("/api/policy", &json!({"calendars": {year.to_string(): test_calendar(year).0}}));
        assert_eq!(status, 201, "{v}");
    }
    let warning = |api: &Api| api.get("/api/health").1["calendar"]["warning"].clone();
    let gauge = || {
        let m = reqwest::blocking::get(format!("{}/metrics", city.url())).unwrap().text().unwrap();
        m.lines().find_map(|l| l.strip_prefix("zongzhi_calendar_warning ")).unwrap().trim().to_string()
    };
    if let Ok(tomorrow) = today.tomorrow()
        && tomorrow.year() == year
    {
        let (status, v) = admin.post("/api/policy", &json!({"calendar_warning_from": tomorrow.strftime("%m-%d").to_string()}));
        assert_eq!(status, 201, "{v}");
        assert!(warning(&admin).is_null(), "{}", admin.get("/api/health").1);
        assert_eq!(gauge(), "0");
    }
    let (status, v) = admin.post("/api/policy", &json!({"calendar_warning_from": today.strftime("%m-%d").to_string()}));
    assert!(status == 201 || v["error"]["code"] == "no_change", "{v}");
    let w = warning(&admin);
    assert!(w.as_str().unwrap().contains(&format!("缺少{}年工作日历", year + 1)), "{w}");
    assert_eq!(gauge(), "1");
    let (status, v) = admin.post("/api/policy", &json!({"calendars": {(year + 1).to_string(): test_calendar(year + 1).0}}));
    assert_eq!(status, 201, "{v}");
    assert!(warning(&admin).is_null());
    assert_eq!(gauge(), "0");
}

/// Crossing merges from two nodes (A into B at the village while the
/// township is down, B into A at the township while the village is down):
/// once both meet, every node keeps the earlier and rejects the later, the
/// same way, and never closes both.
#[test]
fn crossing_merges_from_two_nodes_keep_one_the_same_everywhere() {
    let mut h = Hierarchy::start(1);
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let a = village.file_case(&sample_case("重复反映甲"))["id"].as_str().unwrap().to_string();
    village.act(&a, json!({"action": "sign_for"}));
    let b = town.file_case(&sample_case("重复反映乙"))["id"].as_str().unwrap().to_string();
    town.act(&b, json!({"action": "sign_for"}));
    // The village helps with B, so it holds B.
    town.act(&b, json!({"action": "add_helpers", "units": ["330106010001"]}));
    wait_case(&h.villages[0], &village, &b, "B at the village", |_| true);
    wait_case(&h.township, &town, &a, "A at the township", |_| true);

    h.township.stop();
    village.act(&a, json!({"action": "merge", "into": b}));
    h.villages[0].stop();
    h.township.start();
    town.act(&b, json!({"action": "merge", "into": a}));
    h.villages[0].start();

    let city = h.city.login("operator", OPERATOR_PASSWORD);
    // Either case may not have reached a node yet: not there, no outcome.
    let outcome = |api: &Api| {
        let status = |c: &str| {
            let (code, v) = api.get(&format!("/api/cases/{c}"));
            if code == 200 { v["status"]["code"].as_str().unwrap_or_default().to_string() } else { String::new() }
        };
        (status(&a), status(&b))
    };
    // A's merge was signed first: it stands; B's is rejected and B stays open.
    for (name, api) in [("village", &village), ("township", &town), ("city", &city)] {
        // Settled once both merges are there (the node's own one alone
        // already gives the same statuses).
        let has_both = |api: &Api| [&a, &b].iter().all(|c| api.get(&format!("/api/cases/{c}")).1["timeline"].as_array().is_some_and(|t| t.iter().any(|t| t["action"] == "merge")));
        let got = wait_for(&format!("the merges to settle at the {name}"), 30, || {
            let o = outcome(api);
            (o == ("merged".to_string(), "accepted".to_string()) && has_both(api)).then_some(o)
        });
        assert_eq!(got.0, "merged");
        let sb = api.case(&b);
        let last = sb["timeline"].as_array().unwrap().iter().rev().find(|t| t["action"] == "merge").unwrap().clone();
        assert_eq!(last["rejected"]["rule"], "merge-target-merged", "{name}: {sb}");
        let (_, q) = api.get("/api/cases?status=merged&owner=all");
        assert_eq!(q["total"], 1, "{name}: {q}");
    }
    // Reindex at the township computes the same.
    h.township.stop();
    let out = h.township.node_cmd(&["reindex"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    h.township.start();
    assert_eq!(outcome(&town), ("merged".to_string(), "accepted".to_string()));
    let (_, q) = town.get("/api/cases?status=merged&owner=all");
    assert_eq!(q["total"], 1, "{q}");
}
