//! Statistics by window and by person through the HTTP API over real
//! nodes: 受理, 办结, on time and the ratings counted against the 派驻
//! window and the person who took each step, at a township (its own windows
//! and accounts) and at the city (every center's window of a code summed:
//! the township's and the county's 公安 window together), each figure equal
//! to a brute-force count over the case list and the case views; the same
//! rows in the CSV export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, sample_case, wait_case};

/// The counters compared, per group.
const COUNTERS: [&str; 7] = ["received", "resolved", "resolved_on_time", "rated", "citizen_rated", "citizen_satisfied", "citizen_basically_satisfied"];

type Figures = BTreeMap<String, BTreeMap<&'static str, i64>>;

/// Steps that stand: accepted and not overruled.
fn standing(case: &Value) -> Vec<&Value> {
    case["timeline"].as_array().unwrap().iter().filter(|t| t["accepted"] == json!(true) && t["overruled_by"].is_null()).collect()
}

/// The brute-force figures of `year` within the units whose codes begin
/// with `prefix` (the scope's subtree) by window (the code) or by person
/// (`unit:username`), from every case the node lists and each case's view.
fn brute(api: &Api, prefix: &str, year: &str, by_window: bool) -> Figures {
    let (status, list) = api.get("/api/cases?owner=all&status=all&limit=1000");
    assert_eq!(status, 200, "{list}");
    let mut out: Figures = BTreeMap::new();
    let mut add = |group: String, counter: &'static str, n: i64| {
        if n != 0 {
            *out.entry(group).or_default().entry(counter).or_default() += n;
        }
    };
    for c in list["cases"].as_array().unwrap() {
        let v = api.case(c["id"].as_str().unwrap());
        let steps = standing(&v);
        let in_year = |t: &Value| t["time"].as_str().unwrap().starts_with(year);
        let in_scope = |t: &Value| t["unit"].as_str().unwrap().starts_with(prefix);
        let person = |t: &Value| format!("{}:{}", t["unit"].as_str().unwrap(), t["operator"].as_str().unwrap());
        let group = |t: &Value| if by_window { t["window"].as_str().map(String::from) } else { Some(person(t)) };
        for t in steps.iter().filter(|t| in_year(t) && in_scope(t)) {
            match (t["action"].as_str().unwrap(), by_window) {
                ("file", false) => add(person(t), "received", 1),
                ("route", true) => add(t["details"]["window"].as_str().unwrap().to_string(), "received", 1),
                ("reroute", true) => {
                    if let Some(w) = t["details"]["target"]["window"].as_str() {
                        add(w.to_string(), "received", 1)
                    }
                }
                _ => {}
            }
        }
        // 办结 as the case stands: its last resolution, on time by the
        // last met resolution clock.
        let resolves: Vec<&Value> = steps.iter().copied().filter(|t| t["action"] == "resolve").collect();
        let resolved = v["resolved_at"].is_string();
        if let Some(t) = resolves.last().filter(|t| resolved && in_year(t) && in_scope(t))
            && let Some(g) = group(t)
        {
            let on_time = v["deadlines"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|d| ["resolution", "rehandle"].contains(&d["kind"].as_str().unwrap()) && !d["cancelled"].as_bool().unwrap() && d["met_at"].is_string())
                .is_some_and(|d| d["on_time"] == json!(true));
            add(g.clone(), "resolved", 1);
            add(g, "resolved_on_time", on_time as i64);
        }
        // Each rating against the last 办结 of the unit rated before it.
        for r in v["ratings"].as_array().unwrap().iter().filter(|r| r["counts"] == json!(true) && r["at"].as_str().unwrap().starts_with(year)) {
            let at = r["at"].as_str().unwrap();
            let Some(t) = resolves.iter().rev().find(|t| t["unit"] == r["unit"] && t["time"].as_str().unwrap() <= at) else { continue };
            let Some(g) = group(t).filter(|_| in_scope(t)) else { continue };
            let citizen = r["by"] == "citizen";
            add(g.clone(), "rated", 1);
            add(g.clone(), "citizen_rated", citizen as i64);
            add(g.clone(), "citizen_satisfied", (citizen && r["rating"]["code"] == "satisfied") as i64);
            add(g, "citizen_basically_satisfied", (citizen && r["rating"]["code"] == "basic") as i64);
        }
    }
    out
}

/// The API's table by window or person as the figures compared, with the
/// rows' names.
fn table(api: &Api, query: &str) -> (Figures, BTreeMap<String, String>, Value) {
    let (status, t) = api.get(&format!("/api/stats?{query}"));
    assert_eq!(status, 200, "{t}");
    let mut figures: Figures = BTreeMap::new();
    let mut names = BTreeMap::new();
    for r in t["rows"].as_array().unwrap() {
        let g = r["group"].as_str().unwrap().to_string();
        let e = figures.entry(g.clone()).or_default();
        for c in COUNTERS {
            let n = r["counts"][c].as_i64().unwrap();
            if n != 0 {
                e.insert(c, n);
            }
        }
        names.insert(g, r["name"].as_str().unwrap_or_default().to_string());
    }
    figures.retain(|_, v| !v.is_empty());
    (figures, names, t)
}

/// Sums the Parquet table by window and by person over a year.
const PARQUET_SCRIPT: &str = r#"
import duckdb, json, sys
d, year, counters = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
t = f"read_parquet('{d}/actors/*/*/*.parquet', hive_partitioning = false)"
sums = ", ".join(f'SUM("{c}")::BIGINT' for c in counters)
q = lambda key, kind: {r[0]: dict(zip(counters, r[1:])) for r in con.execute(f"SELECT {key}, {sums} FROM {t} WHERE kind = ? AND month // 100 = ? GROUP BY 1", [kind, year]).fetchall()}
print(json.dumps({"window": q('"window"', "window"), "person": q("unit || ':' || operator", "person")}))
"#;

/// `api` resolves, the center's operator gives feedback with an invitation
/// to rate, and the citizen rates on the public page with its token.
fn resolve_and_rate(api: &Api, center: &Api, public: &Api, id: &str, rating: &str) {
    api.act(id, json!({"action": "resolve", "public_reply": "已处理"}));
    let fed = center.act(id, json!({"action": "feedback", "note": "已电话告知", "invite_rating": true}));
    let token = fed["rating_invitation"]["token"].as_str().unwrap();
    let number = fed["number"].as_str().unwrap();
    let (status, v) = public.post(&format!("/api/public/cases/{number}/rating"), &json!({"token": token, "rating": rating, "result_rating": rating}));
    assert_eq!(status, 201, "{v}");
}

#[test]
fn statistics_by_window_and_by_person_equal_a_brute_force_count() {
    let mut h = Hierarchy::start_with(0, "public.enabled = true\npublic.requests_per_minute = 10000\n");
    let admin = h.township.login("admin", ADMIN_PASSWORD);
    for body in [
        json!({"username": "li", "password": "li-pass-0001", "role": "operator", "display_name": "李明"}),
        json!({"username": "ga", "password": "ga-pass-0001", "role": "window", "windows": ["police"], "display_name": "派出所窗口"}),
    ] {
        let (status, v) = admin.post("/api/users", &body);
        assert_eq!(status, 201, "{v}");
    }
    let op = h.township.login("operator", OPERATOR_PASSWORD);
    let li = h.township.login("li", "li-pass-0001");
    let ga = h.township.login("ga", "ga-pass-0001");
    let public = Api::new(&h.township.url(), None);
    let file = |api: &Api, title: &str| -> String {
        let id = api.file_case(&sample_case(title))["id"].as_str().unwrap().to_string();
        api.act(&id, json!({"action": "sign_for"}));
        id
    };
    // A: 公安 window, resolved by the window's own account, 满意.
    let a = file(&op, "夜间施工噪音");
    op.act(&a, json!({"action": "route", "window": "police", "requirements": "核查"}));
    resolve_and_rate(&ga, &op, &public, &a, "satisfied");
    // B: 司法所 window, resolved by the center's operator for the window, 不满意.
    let b = file(&li, "邻里宅基地纠纷");
    li.act(&b, json!({"action": "route", "window": "justice", "requirements": "调解"}));
    resolve_and_rate(&op, &op, &public, &b, "unsatisfied");
    // C: at the 公安 window, open.
    let c = file(&li, "电动车被盗");
    li.act(&c, json!({"action": "route", "window": "police", "requirements": "立案"}));
    // D: no window, resolved by 李明, 基本满意.
    let d = file(&op, "路灯损坏");
    resolve_and_rate(&li, &op, &public, &d, "basic");
    // E: the county's own 公安 window, 基本满意.
    let county = h.county.login("operator", OPERATOR_PASSWORD);
    let county_public = Api::new(&h.county.url(), None);
    let e = file(&county, "商铺占道经营");
    county.act(&e, json!({"action": "route", "window": "police", "requirements": "处置"}));
    resolve_and_rate(&county, &county, &county_public, &e, "basic");

    let year = &jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().to_string()[..4];
    let q = |by: &str| format!("by={by}&period={year}");

    // The township: its windows and its accounts.
    let (by_window, names, t) = table(&op, &q("window"));
    assert_eq!(by_window, brute(&op, "330106010", year, true), "by window at the township");
    assert_eq!(by_window["police"]["received"], 2, "{t}");
    assert_eq!(by_window["police"]["resolved"], 1, "{t}");
    assert_eq!(names["police"], "公安", "{t}");
    let police = t["rows"].as_array().unwrap().iter().find(|r| r["group"] == "police").unwrap();
    assert_eq!(police["kpis"]["satisfaction"]["value"], json!(1.0), "{police}");
    let justice = t["rows"].as_array().unwrap().iter().find(|r| r["group"] == "justice").unwrap();
    assert_eq!(justice["kpis"]["satisfaction"]["value"], json!(0.0), "{justice}");
    let (by_person, names, t) = table(&op, &q("person"));
    assert_eq!(by_person, brute(&op, "330106010", year, false), "by person at the township");
    assert_eq!(by_person["330106010000:li"]["received"], 2, "{t}");
    assert_eq!(by_person["330106010000:ga"]["resolved"], 1, "{t}");
    assert_eq!(names["330106010000:li"], "李明", "{t}");
    // By month and by quarter too: the same figures inside the year.
    let month = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().to_string()[..7].to_string();
    assert_eq!(table(&op, &format!("by=window&period={month}")).0, by_window, "the month holds every step");

    // A window account sees its queue only: the statistics are refused.
    let (status, v) = ga.get(&format!("/api/stats?{}", q("window")));
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("outside_windows")), "{v}");

    // The CSV has the same rows.
    let (status, _, csv) = op.get_raw(&format!("/api/stats?{}&format=csv", q("window")));
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let police_line: Vec<&str> = csv.lines().find(|l| l.starts_with("police,")).unwrap().split(',').collect();
    assert_eq!((police_line[col("received")], police_line[col("resolved")]), ("2", "1"), "{csv}");

    // The console (zh-CN): the township's statistics by window and by person.
    let mut br = Browser::launch();
    br.login(&h.township.url(), "operator", OPERATOR_PASSWORD);
    br.goto(&format!("{}/#/stats", h.township.url()));
    let choose = |br: &mut Browser, by: &str| {
        br.wait("the statistics page", 20, "document.querySelector('#stats-table') && document.querySelector('select[name=by]')");
        br.eval(&format!("(() => {{ const s = document.querySelector('select[name=by]'); s.value = '{by}'; s.dispatchEvent(new Event('change')); }})()"));
    };
    choose(&mut br, "window");
    br.wait("the 公安 row", 20, "document.querySelector('#stats-table tr[data-group=police] [data-test=received]')?.innerText === '2'");
    let row = br.text("#stats-table tr[data-group=police]");
    assert!(row.contains("公安") && row.contains("100.0%"), "{row}");
    assert_eq!(br.eval("document.querySelector('#stats-table thead th:nth-child(2)').innerText"), json!("窗口"));
    br.wait("the note", 5, "document.querySelector('[data-test=actors-note]')");
    br.screenshot("stats-by-window");
    choose(&mut br, "person");
    br.wait("李明's row", 20, "document.querySelector('#stats-table tr[data-group=\"330106010000:li\"] [data-test=group-name]')?.innerText === '李明'");
    let row = br.text("#stats-table tr[data-group=\"330106010000:li\"]");
    assert_eq!(br.eval("document.querySelector('#stats-table tr[data-group=\"330106010000:li\"] [data-test=received]').innerText"), json!("2"), "{row}");
    br.screenshot("stats-by-person");

    // The city: every center's 公安 window together, once every case's
    // rating is there.
    let city = h.city.login("operator", OPERATOR_PASSWORD);
    for id in [&a, &b, &c, &d, &e] {
        let rated = *id != c;
        wait_case(&h.city, &city, id, "the case at the city", |v| !rated || !v["ratings"].as_array().unwrap().is_empty());
    }
    let (at_city, _, t) = table(&city, &q("window"));
    assert_eq!(at_city, brute(&city, "3301", year, true), "by window at the city");
    assert_eq!((at_city["police"]["received"], at_city["police"]["resolved"], at_city["police"]["citizen_rated"]), (3, 2, 2), "{t}");
    let (persons, _, _) = table(&city, &q("person"));
    assert_eq!(persons, brute(&city, "3301", year, false), "by person at the city");
    // The Parquet export of the stopped city: the same figures by window
    // and by person, read back with DuckDB.
    h.city.stop();
    let out = tempfile::tempdir().unwrap();
    let run = h.city.node_cmd(&["export", "parquet", "--dir", out.path().to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let counters = serde_json::to_string(&COUNTERS).unwrap();
    let read = std::process::Command::new("python3").arg("-c").arg(PARQUET_SCRIPT).args([out.path().to_str().unwrap(), year, &counters]).output().unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let got: Value = serde_json::from_slice(&read.stdout).unwrap();
    let parquet = |kind: &str| -> Figures {
        let mut f: Figures = BTreeMap::new();
        for (g, counts) in got[kind].as_object().unwrap() {
            let e = f.entry(g.clone()).or_default();
            for c in COUNTERS {
                let n = counts[c].as_i64().unwrap();
                if n != 0 {
                    e.insert(c, n);
                }
            }
        }
        f.retain(|_, v| !v.is_empty());
        f
    };
    assert_eq!(parquet("window"), at_city, "the Parquet table by window");
    assert_eq!(parquet("person"), persons, "the Parquet table by person");
    h.city.start();
    let city = h.city.login("operator", OPERATOR_PASSWORD);

    // Bad input: a clear error.
    let (status, v) = city.get("/api/stats?by=desk");
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
}
