//! The monitoring kit in deploy/monitoring/ against real nodes: the alert
//! rules pass promtool's check and their own unit tests, every metric the
//! rules and the Grafana dashboard name (and every label they match on) is
//! served by a running node's `/metrics`, and the gauges added for
//! operators read true: build, process, cases by status and supervision
//! grade, readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, OPERATOR_PASSWORD, TestNode, free_port, sample_case};

fn monitoring_dir() -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().unwrap().join("deploy/monitoring")
}

const RULES: &str = "zongzhi-alerts.yml";
const RULE_TESTS: &str = "zongzhi-alerts.test.yml";
const DASHBOARD: &str = "zongzhi-dashboard.json";

/// promtool, from Debian's `prometheus` package (.ci/run installs it).
fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool").args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("promtool not found ({e}): `apt-get install prometheus` (Debian's package ships promtool)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = monitoring_dir();
    let checked = promtool(&["check", "rules", RULES], &dir);
    let rules = std::fs::read_to_string(dir.join(RULES)).unwrap();
    let alerts = rules.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    assert!(alerts >= 10, "{alerts} alerts");
    assert!(checked.contains(&format!("SUCCESS: {alerts} rules found")), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// A metric selector in a PromQL expression: the metric's name and the
/// label names it matches on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// Aggregations and keywords that are not metric names even without `(`
/// right after them (`sum by (le) (…)`, `a and b`).
const NOT_METRICS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

/// The selectors of a PromQL expression: identifiers that are not
/// functions, aggregations or keywords, outside strings, durations and
/// grouping lists; with the label names of their `{…}` matchers.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() {
            // A number (0.99, 1e3): its letters are not identifiers.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&ident.as_str()) {
                // Its label list.
                if chars.get(next) == Some(&'(') {
                    i = next;
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                }
            } else if chars.get(next) == Some(&'(') || NOT_METRICS.contains(&ident.as_str()) {
                // A function call or an aggregation.
            } else {
                let mut labels = Vec::new();
                if chars.get(next) == Some(&'{') {
                    i = next + 1;
                    while i < chars.len() && chars[i] != '}' {
                        let j = skip_ws(i);
                        let l0 = j;
                        let mut k = j;
                        while k < chars.len() && (chars[k].is_ascii_alphanumeric() || chars[k] == '_') {
                            k += 1;
                        }
                        labels.push(chars[l0..k].iter().collect::<String>());
                        // Past the operator and the quoted value.
                        k = skip_ws(k);
                        while k < chars.len() && "=!~".contains(chars[k]) {
                            k += 1;
                        }
                        k = skip_ws(k);
                        let q = chars.get(k).copied().unwrap_or('"');
                        k += 1;
                        while k < chars.len() && chars[k] != q {
                            k += if chars[k] == '\\' { 2 } else { 1 };
                        }
                        i = skip_ws(k + 1);
                        if chars.get(i) == Some(&',') {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                out.push(Selector { metric: ident, labels });
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn selectors_are_found_past_functions_groupings_and_strings() {
    let s = selectors(r#"histogram_quantile(0.99, sum by (instance, le) (rate(zongzhi_fsync_duration_seconds_bucket{instance=~"$instance"}[5m]))) > 0.5"#);
    assert_eq!(s, [Selector { metric: "zongzhi_fsync_duration_seconds_bucket".into(), labels: vec!["instance".into()] }]);
    let s = selectors(r#"min_over_time(zongzhi_notify_queued[1h]) > 0 and increase(zongzhi_notify_delivered_total{a="x,}y", b!~'z'}[1h]) == 0"#);
    assert_eq!(s.iter().map(|s| s.metric.as_str()).collect::<Vec<_>>(), ["zongzhi_notify_queued", "zongzhi_notify_delivered_total"]);
    assert_eq!(s[1].labels, ["a", "b"]);
    assert_eq!(selectors("time() - process_start_time_seconds")[0].metric, "process_start_time_seconds");
    assert_eq!(selectors("up == 0")[0].metric, "up");
}

/// Every PromQL expression of the rules file (one `expr:` a line) and of
/// the dashboard (each target's `expr`, the template variables' queries).
fn expressions() -> Vec<(String, String)> {
    let dir = monitoring_dir();
    let mut out = Vec::new();
    for line in std::fs::read_to_string(dir.join(RULES)).unwrap().lines() {
        if let Some(expr) = line.trim_start().strip_prefix("expr:") {
            let expr = expr.trim();
            assert!(!expr.starts_with('|') && !expr.starts_with('>'), "keep each expr on one line: {line}");
            out.push((RULES.to_string(), expr.to_string()));
        }
    }
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(DASHBOARD)).unwrap()).unwrap();
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push((DASHBOARD.to_string(), e.clone()));
                }
                if let Some(Value::String(q)) = m.get("query").and_then(|q| q.get("query")) {
                    // label_values(metric, label)
                    let inner = q.strip_prefix("label_values(").and_then(|r| r.split(',').next()).expect("a label_values query");
                    out.push((DASHBOARD.to_string(), inner.trim().to_string()));
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut out);
    out
}

/// Sample names and, for each, the label names its samples carry.
fn served(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap()];
            for part in body.split("\",") {
                labels.insert(part.split('=').next().unwrap().to_string());
            }
        }
    }
    out
}

/// Labels Prometheus adds to every series it scrapes, and the series it
/// makes itself: not in a node's exposition.
const TARGET_LABELS: &[&str] = &["instance", "job"];
const PROMETHEUS_SERIES: &[&str] = &["up"];

#[test]
fn every_metric_the_alerts_and_the_dashboard_name_is_served_by_a_node() {
    let exprs = expressions();
    assert!(exprs.iter().filter(|(f, _)| f == RULES).count() >= 10 && exprs.iter().filter(|(f, _)| f == DASHBOARD).count() >= 20, "{exprs:?}");

    // A city and an enrolled county linked over QUIC (peer families), a
    // refused handshake (a township that dials the city), a case filed,
    // supervised and resolved (cases by status and grade).
    let city_q = free_port();
    let mut city = TestNode::init_with("330100000000", "示例市社会治安综合治理中心", &format!("quic_listen = \"127.0.0.1:{city_q}\"\n"));
    city.start();
    let root = city.node_id();
    let mut county = TestNode::init_with("330106000000", "示例区社会治安综合治理中心", &format!("root_key = \"{root}\"\nparent = \"127.0.0.1:{city_q}\"\n"));
    county.enroll_under(&city);
    county.start();
    // A township enrolled under the county but pointed at the city: the
    // city refuses its handshake (not its child).
    let mut misdirected = TestNode::init_with("330106010000", "示例街道社会治安综合治理中心", &format!("root_key = \"{root}\"\nparent = \"127.0.0.1:{city_q}\"\n"));
    misdirected.enroll_under(&county);
    misdirected.start();

    let op = city.login("operator", OPERATOR_PASSWORD);
    let admin = city.login("admin", ADMIN_PASSWORD);
    let waiting = op.file_case(&sample_case("等待签收"))["id"].as_str().unwrap().to_string();
    let supervised = op.file_case(&sample_case("督办的案件"))["id"].as_str().unwrap().to_string();
    op.act(&supervised, json!({"action": "sign_for"}));
    op.act(&supervised, json!({"action": "route", "window": "justice"}));
    admin.act(&supervised, json!({"action": "supervise", "grade": "yellow", "note": "请加快办理"}));

    let scrape = |node: &TestNode| reqwest::blocking::get(format!("{}/metrics", node.url())).unwrap().text().unwrap();
    let mut last = String::new();
    let ready = |t: &str| t.contains("zongzhi_peer_connected{peer=\"330106000000\",role=\"child\"} 1") && t.contains("zongzhi_handshakes_refused_total{");
    for _ in 0..300 {
        last = scrape(&city);
        if ready(&last) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready(&last), "no link to the county or no refused handshake in the city's metrics:\n{last}\n{}", city.log());
    let text = last;
    let families = served(&text);
    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for (file, expr) in &exprs {
        let found = selectors(expr);
        assert!(!found.is_empty(), "{file}: no metric in {expr}");
        for s in found {
            if PROMETHEUS_SERIES.contains(&s.metric.as_str()) {
                continue;
            }
            match families.get(&s.metric) {
                None => missing.push(format!("{file}: {} (in {expr})", s.metric)),
                Some(labels) => {
                    for l in s.labels.iter().filter(|l| !TARGET_LABELS.contains(&l.as_str())) {
                        if !labels.contains(l) {
                            missing.push(format!("{file}: label {l} of {} (in {expr})", s.metric));
                        }
                    }
                }
            }
            checked.insert(s.metric);
        }
    }
    assert!(missing.is_empty(), "named but not served by a node:\n{}\n\n{text}", missing.join("\n"));
    assert!(checked.len() >= 40, "{checked:?}");

    // What the new gauges say.
    let value = |text: &str, sample: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("{sample} not in:\n{text}")) };
    assert_eq!(value(&text, "zongzhi_cases{status=\"awaiting_receipt\"}"), 1.0);
    assert_eq!(value(&text, "zongzhi_cases{status=\"handling\"}"), 1.0);
    assert_eq!(value(&text, "zongzhi_cases{status=\"resolved\"}"), 0.0);
    assert_eq!(value(&text, "zongzhi_cases_supervised{grade=\"yellow\"}"), 1.0);
    assert_eq!(value(&text, "zongzhi_cases_supervised{grade=\"red\"}"), 0.0);
    assert_eq!(value(&text, "zongzhi_ready"), 1.0);
    assert_eq!(value(&text, "zongzhi_migrating"), 0.0);
    let build = text.lines().find(|l| l.starts_with("zongzhi_build_info{")).unwrap();
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && build.contains("schema=\"") && build.ends_with("} 1"), "{build}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value(&text, "process_start_time_seconds");
    assert!(started > now - 600.0 && started <= now, "started {started}, now {now}");
    let (fds, max_fds) = (value(&text, "process_open_fds"), value(&text, "process_max_fds"));
    assert!(fds >= 10.0 && max_fds >= fds, "{fds} of {max_fds}");
    assert!(value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(value(&text, "process_cpu_seconds_total") > 0.0);
    // A resolved case leaves the grade count; the status counts move.
    op.act(&supervised, json!({"action": "resolve", "public_reply": "已调解"}));
    let text = scrape(&city);
    assert_eq!(value(&text, "zongzhi_cases_supervised{grade=\"yellow\"}"), 0.0);
    assert_eq!(value(&text, "zongzhi_cases{status=\"resolved\"}"), 1.0);
    assert_eq!(value(&text, "zongzhi_cases{status=\"handling\"}"), 0.0);
    // The county holds none of the city's own cases.
    assert_eq!(value(&scrape(&county), "zongzhi_cases{status=\"awaiting_receipt\"}"), 0.0);
    let _ = waiting;
}
