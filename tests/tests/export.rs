//! Exports: the case list as CSV and XLSX over HTTP (same cases in the
//! same order as `GET /api/cases`, personal data masked by role), and the
//! Parquet tables of `zongzhi-node export parquet`, read back with an
//! independent reader (DuckDB) and checked against the API's statistics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use zongzhi_tests::{Api, Hierarchy, OPERATOR_PASSWORD, TestNode, VIEWER_PASSWORD, sample_case, wait_for};

const HEADERS: [&str; 22] = [
    "编号",
    "标题",
    "大类",
    "小类",
    "类型",
    "渠道",
    "紧急程度",
    "状态",
    "承办单位",
    "承办单位代码",
    "登记单位",
    "登记单位代码",
    "受理时间",
    "登记时间",
    "下一时限",
    "是否超期",
    "督办",
    "退回次数",
    "上报次数",
    "姓名",
    "电话",
    "证件号",
];
const NAME: usize = 19;
const PHONE: usize = 20;
const ID_NUMBER: usize = 21;
const RETURNS: usize = 17;

/// A raw GET: status, headers, body.
fn get_raw(api: &Api, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let mut req = http.get(format!("{}{path}", api.base));
    if let Some(t) = &api.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().unwrap().to_vec())
}

/// The CSV export as rows (header first); checks the BOM and headers.
fn csv_export(api: &Api, filters: &str) -> Vec<Vec<String>> {
    let (status, headers, body) = get_raw(api, &format!("/api/cases/export?format=csv&{filters}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"cases-") && disposition.ends_with(".csv\""), "{disposition}");
    assert!(body.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM first");
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(&body[3..]);
    let rows: Vec<Vec<String>> = r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect();
    assert_eq!(rows[0], HEADERS, "header row");
    assert!(rows.iter().all(|r| r.len() == HEADERS.len()));
    rows
}

/// Case numbers `GET /api/cases` lists for the filters, in order.
fn listed(api: &Api, filters: &str) -> Vec<Value> {
    let (status, v) = api.get(&format!("/api/cases?limit=1000&{filters}"));
    assert_eq!(status, 200, "{v}");
    assert!(v["next"].is_null(), "one page");
    v["cases"].as_array().unwrap().clone()
}

fn numbers(cases: &[Value]) -> Vec<String> {
    cases.iter().map(|c| c["number"].as_str().unwrap().to_string()).collect()
}

/// Runs a Python snippet with DuckDB (installed with pip if missing) and
/// returns what it prints as JSON.
fn duckdb(script: &str, args: &[&str]) -> Value {
    let have = Command::new("python3").args(["-c", "import duckdb"]).status().expect("python3 is needed to read the Parquet files back");
    if !have.success() {
        let st = Command::new("python3").args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "duckdb"]).status().unwrap();
        assert!(st.success(), "pip install duckdb failed");
    }
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "duckdb script failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const DUCKDB_SCRIPT: &str = r#"
import duckdb, json, sys
d, month, counters = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
cases = f"read_parquet('{d}/cases/**/*.parquet', hive_partitioning = true)"
events = f"read_parquet('{d}/events/**/*.parquet', hive_partitioning = true)"
stats = f"read_parquet('{d}/stats/**/*.parquet', hive_partitioning = true)"
month = f"{month // 100:04d}-{month % 100:02d}"
sums = ", ".join(f'SUM("{c}")::BIGINT' for c in counters)
out = {
    "stats": {r[0]: dict(zip(counters, r[1:])) for r in con.execute(f"SELECT unit, {sums} FROM {stats} WHERE tag = 0 AND month = ? GROUP BY unit", [month]).fetchall()},
    "status": dict(con.execute(f"SELECT status, count(*) FROM {cases} GROUP BY status").fetchall()),
    "cases": con.execute(f"SELECT count(*) FROM {cases}").fetchone()[0],
    "case_columns": [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {cases}").fetchall()],
    "events_per_case": dict(con.execute(f"SELECT case_id, count(*) FROM {events} GROUP BY case_id").fetchall()),
    "events": con.execute(f"SELECT count(*) FROM {events}").fetchone()[0],
    "duplicate_events": con.execute(f"SELECT count(*) - count(DISTINCT record_id) FROM {events}").fetchone()[0],
    "event_files": con.execute(f"SELECT count(DISTINCT filename) FROM read_parquet('{d}/events/**/*.parquet', filename = true)").fetchone()[0],
    "filed_actions": con.execute(f"SELECT count(*) FROM {events} WHERE action = 'file'").fetchone()[0],
    "owner_counties": dict(con.execute(f"SELECT owner, any_value(county) FROM {cases} GROUP BY owner").fetchall()),
}
print(json.dumps(out))
"#;

/// Every file below `dir`, as paths.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

/// What the API says, to compare the Parquet tables with.
struct Expected {
    month: u32,
    /// unit → counter → value (`GET /api/stats?by=unit`).
    stats: BTreeMap<String, BTreeMap<String, i64>>,
    status: BTreeMap<String, i64>,
    /// case id → timeline length.
    events: BTreeMap<String, i64>,
}

fn expected(api: &Api) -> Expected {
    let month = {
        let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
        now.year() as u32 * 100 + now.month() as u32
    };
    let period = format!("{}-{:02}", month / 100, month % 100);
    let (status, t) = api.get(&format!("/api/stats?by=unit&period={period}"));
    assert_eq!(status, 200, "{t}");
    let mut stats = BTreeMap::new();
    for row in t["rows"].as_array().unwrap() {
        let counts: BTreeMap<String, i64> = zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| (c.as_str().to_string(), row["counts"][c.as_str()].as_i64().unwrap())).collect();
        stats.insert(row["group"].as_str().unwrap().to_string(), counts);
    }
    let all = listed(api, "owner=all&status=all");
    let ids: std::collections::BTreeSet<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "GET /api/cases lists a case twice: {:?}", numbers(&all));
    let mut by_status = BTreeMap::new();
    let mut events = BTreeMap::new();
    for c in &all {
        *by_status.entry(c["status"]["code"].as_str().unwrap().to_string()).or_insert(0) += 1;
        let id = c["id"].as_str().unwrap();
        events.insert(id.to_string(), api.case(id)["timeline"].as_array().unwrap().len() as i64);
    }
    Expected { month, stats, status: by_status, events }
}

fn counters() -> String {
    serde_json::to_string(&zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()).unwrap()
}

/// `zongzhi-node export parquet` on the stopped node; its summary line.
fn export_parquet(node: &TestNode, dir: &Path, since: Option<&str>) -> Result<String, String> {
    let mut args = vec!["export", "parquet", "--dir", dir.to_str().unwrap()];
    if let Some(s) = since {
        args.extend(["--since", s]);
    }
    let out = node.node_cmd(&args).output().unwrap();
    if out.status.success() { Ok(String::from_utf8_lossy(&out.stdout).to_string()) } else { Err(String::from_utf8_lossy(&out.stderr).to_string()) }
}

/// The DuckDB figures equal the API's.
fn check_parquet(dir: &Path, want: &Expected) -> Value {
    let got = duckdb(DUCKDB_SCRIPT, &[dir.to_str().unwrap(), &want.month.to_string(), &counters()]);
    // Statistics: every unit's own counters for the month.
    let got_stats: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_value(got["stats"].clone()).unwrap();
    assert!(!want.stats.is_empty());
    for (unit, counts) in &want.stats {
        for (counter, value) in counts {
            let g = got_stats.get(unit).and_then(|c| c.get(counter)).copied().unwrap_or(0);
            assert_eq!(g, *value, "{unit} {counter}: DuckDB {g}, API {value}");
        }
    }
    for unit in got_stats.keys() {
        assert!(want.stats.contains_key(unit), "DuckDB has unit {unit} the API does not");
    }
    assert!(want.stats.values().any(|c| c["received"] > 0) && want.stats.len() >= 2, "a meaningful comparison: {:?}", want.stats);
    // Cases per status.
    let got_status: BTreeMap<String, i64> = serde_json::from_value(got["status"].clone()).unwrap();
    assert_eq!(got_status, want.status);
    // One event row per record of each case, none twice.
    let got_events: BTreeMap<String, i64> = serde_json::from_value(got["events_per_case"].clone()).unwrap();
    assert_eq!(got_events, want.events);
    assert_eq!(got["duplicate_events"], 0);
    assert_eq!(got["filed_actions"].as_u64(), Some(want.events.len() as u64));
    // No personal data and no free text in the case table.
    let columns: Vec<String> = serde_json::from_value(got["case_columns"].clone()).unwrap();
    for forbidden in ["title", "content", "contact", "name", "phone", "id_number", "address"] {
        assert!(!columns.iter().any(|c| c == forbidden), "{forbidden} in {columns:?}");
    }
    for needed in ["case_id", "number", "category", "status", "owner", "filed_by", "filed_at", "next_due_at", "county", "township", "supervision"] {
        assert!(columns.iter().any(|c| c == needed), "{needed} missing from {columns:?}");
    }
    got
}

#[test]
fn case_list_exports_and_parquet_for_analytics() {
    let mut h = Hierarchy::start(0);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let county_op = h.county.login("operator", OPERATOR_PASSWORD);
    let county_viewer = h.county.login("viewer", VIEWER_PASSWORD);

    // --- cases at the township and the county ---
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let waiting = id(&town.file_case(&sample_case("楼上装修噪音扰民")));
    let handling = id(&town.file_case(&sample_case("小区停车位纠纷")));
    town.act(&handling, json!({"action": "sign_for"}));
    town.act(&handling, json!({"action": "route", "window": "justice", "requirements": "组织调解"}));
    let closed = id(&town.file_case(&json!({
        "title": "婚姻家庭矛盾调解", "content": "夫妻因家务长期争吵。", "category": "0101",
        "request_type": "help", "channel": "phone", "urgency": "normal",
        "contact": {"name": "李四", "phone": "13900001111"}
    })));
    town.act(&closed, json!({"action": "sign_for"}));
    town.act(&closed, json!({"action": "route", "window": "justice"}));
    town.act(&closed, json!({"action": "resolve", "public_reply": "已调解"}));
    town.act(&closed, json!({"action": "feedback", "note": "已电话告知"}));
    town.act(&closed, json!({"action": "rate", "rating": "satisfied"}));
    town.act(&closed, json!({"action": "archive"}));
    let mut formula = sample_case("=HYPERLINK(\"http://example.invalid\",\"点击\")");
    formula["urgency"] = json!("urgent");
    formula["contact"]["phone"] = json!("+8613812341234");
    let formula = id(&town.file_case(&formula));
    let escalated = id(&town.file_case(&sample_case("跨街道土地纠纷")));
    town.act(&escalated, json!({"action": "sign_for"}));
    town.act(&escalated, json!({"action": "escalate", "reason": "涉及多个街道"}));
    wait_for("the escalated case at the county", 20, || {
        let (status, v) = county_op.get(&format!("/api/cases/{escalated}"));
        (status == 200 && v["owner"] == "330106000000").then_some(())
    });
    county_op.act(&escalated, json!({"action": "sign_for"}));
    let own = id(&county_op.file_case(&sample_case("区级窗口受理：物业纠纷")));
    county_op.act(&own, json!({"action": "sign_for"}));
    county_op.act(&own, json!({"action": "route", "window": "housing"}));
    county_op.act(&own, json!({"action": "resolve", "public_reply": "已督促物业整改"}));
    // Everything the township did has reached the county.
    let town_cases = [&waiting, &handling, &closed, &formula, &escalated];
    wait_for("the township's records at the county", 30, || {
        town_cases
            .iter()
            .all(|c| {
                let (status, v) = county_op.get(&format!("/api/cases/{c}"));
                status == 200 && v["timeline"].as_array().unwrap().len() == town.case(c)["timeline"].as_array().unwrap().len()
            })
            .then_some(())
    });

    // --- CSV: the same cases in the same order as GET /api/cases ---
    for filters in ["", "owner=all&status=all", "owner=all&status=all&category=02", "owner=all&urgency=urgent", "owner=all&status=archived,resolved", "owner=330106010000"] {
        let want = listed(&county_viewer, filters);
        let rows = csv_export(&county_viewer, filters);
        assert_eq!(rows[1..].iter().map(|r| r[0].clone()).collect::<Vec<_>>(), numbers(&want), "filters {filters:?}");
        // Columns against the list and the detail.
        for (row, c) in rows[1..].iter().zip(&want) {
            assert_eq!(row[7], c["status"]["name"].as_str().unwrap(), "状态");
            // The contact as the viewer's detail view shows it (blank where
            // the county does not hold the blob).
            let d = county_viewer.case(c["id"].as_str().unwrap());
            assert_eq!((row[8].as_str(), row[9].as_str()), (d["owner_name"].as_str().unwrap(), c["owner"].as_str().unwrap()), "承办单位 by name, and its code");
            assert_eq!((row[10].as_str(), row[11].as_str()), (d["filed_by_name"].as_str().unwrap(), c["filed_by"].as_str().unwrap()), "登记单位");
            assert!(!row[8].is_empty() && !row[10].is_empty(), "{row:?}");
            assert_eq!(row[12], d["received_at"].as_str().unwrap(), "受理时间 in +08:00");
            assert_eq!(row[13], c["filed_at"].as_str().unwrap(), "登记时间 in +08:00");
            assert_eq!(row[15], if c["overdue"] == true { "是" } else { "否" });
            assert_eq!(row[RETURNS], c["returns"].to_string());
            assert_eq!(row[RETURNS + 1], c["escalations"].to_string());
            assert_eq!(row[3], c["category"]["name"].as_str().unwrap(), "小类");
            assert_eq!(row[2], c["category"]["parent_name"].as_str().unwrap(), "大类");
            let phone = if d["contact"]["available"] == true { d["contact"]["phone"].as_str().unwrap().to_string() } else { String::new() };
            assert_eq!(row[PHONE], zongzhi_node::export::csv_cell(&phone), "电话 of {}", row[0]);
        }
    }
    // Masking by role, on the county's own case.
    let own_number = county_op.case(&own)["number"].as_str().unwrap().to_string();
    let find = |rows: &[Vec<String>]| rows.iter().find(|r| r[0] == own_number).cloned().unwrap();
    let as_viewer = find(&csv_export(&county_viewer, "owner=all&status=all"));
    assert_eq!((as_viewer[PHONE].as_str(), as_viewer[ID_NUMBER].as_str()), ("138****1234", "330102********1234"));
    assert_eq!(as_viewer[NAME], "张*");
    let as_operator = find(&csv_export(&county_op, "owner=all&status=all"));
    assert_eq!((as_operator[PHONE].as_str(), as_operator[ID_NUMBER].as_str(), as_operator[NAME].as_str()), ("13812341234", "330102199001011234", "张三"));
    // Formula injection: the title and the "+86" phone are text.
    let town_rows = csv_export(&town, "owner=all&status=all");
    let f = town_rows.iter().find(|r| r[1].contains("HYPERLINK")).unwrap();
    assert!(f[1].starts_with("'=HYPERLINK"), "{f:?}");
    assert_eq!(f[PHONE], "'+8613812341234");
    assert_eq!(f[6], "紧急");
    assert_eq!(f[0], town.case(&formula)["number"].as_str().unwrap());

    // --- bad requests are JSON 400s; no login is 401 ---
    for bad in ["format=pdf", "status=bogus", "overdue=maybe", "owner=12", "clock=never", "category=%E4%B8%AD"] {
        let (status, v) = county_viewer.get(&format!("/api/cases/export?{bad}"));
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{bad}: {v}");
    }
    let (status, v) = Api::new(&h.county.url(), None).get("/api/cases/export?format=csv");
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthenticated")));

    // --- XLSX: parses, same rows as the CSV ---
    let (status, headers, body) = get_raw(&county_op, "/api/cases/export?format=xlsx&owner=all&status=all");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(headers["content-disposition"].to_str().unwrap().ends_with(".xlsx\""));
    assert_eq!(headers["content-length"].to_str().unwrap(), body.len().to_string());
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).unwrap();
    let sheet = book.worksheet_range("台账").unwrap();
    let cells: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    let csv_rows = csv_export(&county_op, "owner=all&status=all");
    assert_eq!(cells.len(), csv_rows.len());
    assert_eq!(cells[0], HEADERS);
    for (x, c) in cells.iter().zip(&csv_rows).skip(1) {
        assert_eq!(x[0], c[0], "编号");
        assert_eq!(x[7], c[7], "状态");
        assert_eq!(x[RETURNS], c[RETURNS], "退回次数 as a number");
        // The XLSX holds the text as it is (no apostrophe: cells are never formulas there).
        assert_eq!(x[PHONE], c[PHONE].trim_start_matches('\''), "电话");
    }
    assert!(matches!(sheet.get_value((1, RETURNS as u32)), Some(calamine::Data::Float(_))), "numbers are numbers");

    // --- the CLI downloads the same export ---
    let work = tempfile::tempdir().unwrap();
    let session = work.path().join("session.json");
    let zongzhi = |args: &[&str]| {
        let out = Command::new(zongzhi_tests::bin("zongzhi")).args(args).env("ZONGZHI_NODE", h.county.url()).env("ZONGZHI_SESSION", &session).output().unwrap();
        assert!(out.status.success(), "zongzhi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    zongzhi(&["login", "--user", "viewer", "--password", VIEWER_PASSWORD]);
    let file = work.path().join("cases.csv");
    let said = zongzhi(&["export", "cases", "--format", "csv", "--out", file.to_str().unwrap(), "--owner", "all", "--status", "all"]);
    assert!(said.contains("wrote"), "{said}");
    let (_, _, body) = get_raw(&county_viewer, "/api/cases/export?format=csv&owner=all&status=all");
    assert_eq!(std::fs::read(&file).unwrap(), body, "the CLI writes what the API sends");
    let file = work.path().join("urgent.xlsx");
    zongzhi(&["export", "cases", "--format", "xlsx", "--out", file.to_str().unwrap(), "--owner", "all", "--urgent"]);
    let mut book = calamine::Xlsx::new(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    let sheet = book.worksheet_range("台账").unwrap();
    assert_eq!(sheet.height(), 1 + listed(&county_viewer, "owner=all&urgency=urgent").len());
    assert!(!work.path().join("urgent.xlsx.part").exists());
    let bad = work.path().join("bad.pdf");
    let out = Command::new(zongzhi_tests::bin("zongzhi"))
        .args(["export", "cases", "--format", "pdf", "--out", bad.to_str().unwrap()])
        .env("ZONGZHI_NODE", h.county.url())
        .env("ZONGZHI_SESSION", &session)
        .output()
        .unwrap();
    // Refused by the command line itself (a fixed-value option), exit code 2.
    assert!(out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("possible values: csv, xlsx"), "{out:?}");
    let (status, _, body) = get_raw(&county_viewer, "/api/cases/export?format=pdf");
    assert!(status == 400 && String::from_utf8_lossy(&body).contains("format must be csv or xlsx"), "{status}");
    assert!(!bad.exists());

    // --- Parquet: DuckDB agrees with the API ---
    let want = expected(&county_op);
    h.county.stop();
    let out = tempfile::tempdir().unwrap();
    let summary = export_parquet(&h.county, out.path(), None).unwrap();
    assert!(summary.contains(&format!("cases: {} rows", want.events.len())), "{summary}");
    assert!(summary.contains("events/city=330100000000/month=") && summary.contains("/part-330106000000-000000000001-"), "{summary}");
    let got = check_parquet(out.path(), &want);
    assert_eq!(got["event_files"], 1);
    assert_eq!(got["owner_counties"]["330106010000"], "330106000000", "county derived from the owner's lineage");
    let manifest: Value = serde_json::from_slice(&std::fs::read(out.path().join("_zongzhi/330106000000.json")).unwrap()).unwrap();
    let first_to = manifest["feed_to"].as_u64().unwrap();
    assert!(first_to > 0);
    // A run with nothing new writes no event part, and still agrees.
    let again = export_parquet(&h.county, out.path(), None).unwrap();
    assert!(again.contains("events: 0 rows"), "{again}");
    check_parquet(out.path(), &want);

    // --- incremental: new work, a second event part, fresh snapshots ---
    h.county.start();
    let county_op = h.county.login("operator", OPERATOR_PASSWORD);
    county_op.act(&own, json!({"action": "feedback", "note": "已电话回访"}));
    county_op.file_case(&sample_case("区级受理：噪音"));
    town.act(&handling, json!({"action": "progress", "note": "已约双方面谈"}));
    wait_for("the township's progress note at the county", 30, || {
        let (status, v) = county_op.get(&format!("/api/cases/{handling}"));
        (status == 200 && v["timeline"].as_array().unwrap().len() == town.case(&handling)["timeline"].as_array().unwrap().len()).then_some(())
    });
    let want = expected(&county_op);
    h.county.stop();
    let summary = export_parquet(&h.county, out.path(), None).unwrap();
    assert!(summary.contains(&format!("/part-330106000000-{:012}-", first_to + 1)), "{summary}");
    let got = check_parquet(out.path(), &want);
    assert_eq!(got["event_files"], 2);
    let case_files = files_under(&out.path().join("cases"));
    assert!(case_files.iter().all(|f| f.ends_with("/330106000000.parquet")), "the snapshot replaced, no temp files left: {case_files:?}");

    // --since: a fresh directory from tomorrow holds nothing; today's holds
    // today's cases; a different --since on a used directory is refused.
    let tomorrow = (jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().tomorrow().unwrap()).to_string();
    let later = tempfile::tempdir().unwrap();
    let summary = export_parquet(&h.county, later.path(), Some(&tomorrow)).unwrap();
    assert!(summary.contains("cases: 0 rows") && summary.contains("events: 0 rows"), "{summary}");
    let err = export_parquet(&h.county, out.path(), Some(&tomorrow)).unwrap_err();
    assert!(err.contains("--since"), "{err}");
    assert!(export_parquet(&h.county, later.path(), Some("2026-02-30")).is_err());
}
