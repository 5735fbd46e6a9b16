//! Analytics across cities: two cities export into one prefix (one of
//! them while its node runs, from a checkpoint the node takes), and the
//! README's province queries, run as they stand with DuckDB over the hive
//! partitions, agree with what each city's API says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use zongzhi_tests::{Hierarchy, OPERATOR_PASSWORD, TestNode, sample_case, wait_for};

/// The SQL between the README's `province-sql` markers.
fn readme_queries() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme.find("<!-- province-sql:start -->").expect("start marker");
    let end = readme.find("<!-- province-sql:end -->").expect("end marker");
    let block = &readme[start..end];
    let sql = &block[block.find("```sql").unwrap() + 6..block.rfind("```").unwrap()];
    let without_comments: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    without_comments.split(';').map(str::trim).filter(|q| !q.is_empty()).map(String::from).collect()
}

fn export(node: &TestNode, prefix: &Path) -> String {
    let o = node.node_cmd(&["export", "parquet", "--dir", prefix.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

const RUN: &str = r#"
import duckdb, json, sys
prefix, queries = sys.argv[1], json.loads(sys.argv[2])
con = duckdb.connect()
out = []
for q in queries:
    cur = con.execute(q.replace("PREFIX", prefix))
    cols = [d[0] for d in cur.description]
    out.append([dict(zip(cols, [v if isinstance(v, (int, float, str)) or v is None else str(v) for v in row])) for row in cur.fetchall()])
extra = {
    "places": con.execute(f"SELECT city, count(*), min(lat), min(lon) FROM read_parquet('{prefix}/places/**/*.parquet', hive_partitioning = true) GROUP BY city ORDER BY city").fetchall(),
    "windows": con.execute(f"SELECT count(*) FROM read_parquet('{prefix}/windows/**/*.parquet', hive_partitioning = true)").fetchone()[0],
}
print(json.dumps({"results": out, "extra": extra}))
"#;

#[test]
fn a_province_queries_two_cities_exports_together() {
    // City A: a tree; 3 cases at the village, 1 at the city, one resolved.
    let a = Hierarchy::start(1);
    let village = a.villages[0].login("operator", OPERATOR_PASSWORD);
    for i in 0..3 {
        village.file_case(&sample_case(&format!("村级受理{i}")));
    }
    let city_a = a.city.login("operator", OPERATOR_PASSWORD);
    let own = city_a.file_case(&sample_case("市级受理"))["id"].as_str().unwrap().to_string();
    city_a.act(&own, json!({"action": "sign_for"}));
    city_a.act(&own, json!({"action": "resolve", "public_reply": "已处理"}));
    wait_for("the village's cases at the city", 60, || (city_a.get("/api/cases?owner=all&status=all").1["total"] == 4).then_some(()));
    // City B: on its own, 2 cases.
    let mut b = TestNode::init("330200000000", "宁波市社会治安综合治理中心");
    b.start();
    let city_b = b.login("operator", OPERATOR_PASSWORD);
    for i in 0..2 {
        city_b.file_case(&sample_case(&format!("宁波受理{i}")));
    }
    let month = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m").to_string();

    let prefix = tempfile::tempdir().unwrap();
    // A while its node runs: from a checkpoint, which is gone afterwards.
    let said = export(&a.city, prefix.path());
    assert!(said.contains("from a checkpoint of the running node"), "{said}");
    let backups = a.city.dir.path().join("data").join("backups");
    let left: Vec<_> = std::fs::read_dir(&backups).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "checkpoints left in {}: {left:?}", backups.display());
    // B stopped.
    b.stop();
    let said = export(&b, prefix.path());
    assert!(said.contains("from the stopped node's store"), "{said}");
    // Each city wrote its own partitions only.
    for (city, table) in [("330100000000", "cases"), ("330200000000", "cases"), ("330100000000", "units"), ("330200000000", "categories")] {
        assert!(prefix.path().join(table).join(format!("city={city}")).is_dir(), "{table} of {city}");
    }

    let queries = readme_queries();
    assert_eq!(queries.len(), 3, "{queries:?}");
    let o = Command::new("python3").args(["-c", RUN, prefix.path().to_str().unwrap(), &serde_json::to_string(&queries).unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let [cities, units, categories] = [&v["results"][0], &v["results"][1], &v["results"][2]];

    // 1. The cities' monthly ranking: A received 4 (1 resolved), B 2.
    // DuckDB reads the partition values as numbers where they look like one (hive_types_autocast).
    let city_of = |r: &Value| r["city"].to_string().trim_matches('"').to_string();
    let row = |city: &str| cities.as_array().unwrap().iter().find(|r| city_of(r) == city && r["month"] == month.as_str()).cloned().unwrap_or_else(|| panic!("{city} {month} in {cities}"));
    let (ra, rb) = (row("330100000000"), row("330200000000"));
    assert_eq!((ra["received"].as_f64(), ra["resolved"].as_f64(), ra["rank"].as_i64()), (Some(4.0), Some(1.0), Some(1)), "{ra}");
    assert_eq!((rb["received"].as_f64(), rb["rank"].as_i64()), (Some(2.0), Some(2)), "{rb}");
    assert_eq!(ra["resolution_rate"].as_f64(), Some(0.25));
    // The same as each city's own statistics.
    let api_received = |api: &zongzhi_tests::Api| api.get(&format!("/api/stats?by=unit&period={month}")).1["total"]["counts"]["received"].as_f64();
    assert_eq!(api_received(&city_a), Some(4.0));

    // 2. Units by name and level: the village first with 3, then the city with 1, then 宁波 with 2 between them.
    let names: Vec<(String, String, i64)> =
        units.as_array().unwrap().iter().map(|r| (r["name"].as_str().unwrap().to_string(), r["level_zh"].as_str().unwrap().to_string(), r["filed"].as_i64().unwrap())).collect();
    assert_eq!(names, [("示例社区1工作站".into(), "村（社区）".into(), 3), ("宁波市社会治安综合治理中心".into(), "市".into(), 2), ("示例市社会治安综合治理中心".into(), "市".into(), 1)], "{units}");

    // 3. Categories by each city's names: every case is 0202 under 02.
    let cats: Vec<(String, i64)> = categories.as_array().unwrap().iter().map(|r| (city_of(r), r["cases"].as_i64().unwrap())).collect();
    assert_eq!(cats, [("330100000000".to_string(), 4), ("330200000000".to_string(), 2)], "{categories}");
    assert!(categories[0]["category"].as_str().is_some_and(|n| !n.is_empty()));

    // Places with coordinates, and the windows dimension.
    assert_eq!(v["extra"]["places"], json!([[330100000000i64, 4, 30.25, 120.05], [330200000000i64, 2, 30.25, 120.05]]));
    assert!(v["extra"]["windows"].as_i64().unwrap() >= 2);
}
