//! Observability against a real node process: `/metrics` is OpenMetrics
//! text in which every sample belongs to a declared family, with requests
//! counted and timed per route pattern (never the raw path), the writer's
//! group sizes, the synced writes' latency and RocksDB's size; and the
//! node's logs as JSON lines with `--log-format json` or
//! `ZONGZHI_LOG_FORMAT=json` (text by default), in China Standard Time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use zongzhi_tests::{Api, OPERATOR_PASSWORD, TestNode, sample_case};

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The sample suffixes each OpenMetrics type allows.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "gauge" | "unknown" => &[""],
        "info" => &["_info"],
        "summary" => &["", "_sum", "_count", "_created"],
        "stateset" => &[""],
        "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
        other => panic!("unknown metric type {other}"),
    }
}

/// `{a="x",b="y\"z"}` → labels; returns the rest after `}`.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').expect("labels start with {");
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r);
        }
        let eq = rest.find('=').expect("label = value");
        let key = rest[..eq].to_string();
        assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name {key:?}");
        let mut chars = rest[eq + 1..].char_indices();
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "quoted label value in {s}");
        let mut value = String::new();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c} in {s}"),
                },
                (i, '"') => break eq + 1 + i + 1,
                (_, c) => value.push(c),
            }
        };
        assert!(labels.insert(key.clone(), value).is_none(), "label {key} twice in {s}");
        rest = &rest[end..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses an exposition, checking its shape: `# HELP` then `# TYPE` (then
/// `# UNIT`) declare each family once, every sample line belongs to a
/// declared family with a suffix its type allows (and comes under it),
/// values are numbers, and the text ends with `# EOF`.
fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut help: Option<String> = None;
    let mut lines = text.lines().peekable();
    assert!(text.ends_with("# EOF\n"), "the exposition ends with # EOF:\n{text}");
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "nothing after # EOF");
            break;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert_eq!(help.take().as_deref(), Some(name), "# HELP before # TYPE {name}");
            suffixes(kind);
            assert!(families.insert(name.to_string(), kind.to_string()).is_none(), "family {name} declared twice");
            current = Some((name.to_string(), kind.to_string()));
        } else if let Some(rest) = line.strip_prefix("# UNIT ") {
            let (name, unit) = rest.split_once(' ').unwrap();
            assert_eq!(current.as_ref().map(|c| c.0.as_str()), Some(name));
            assert!(name.ends_with(&format!("_{unit}")), "{name} ends with its unit {unit}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let end = line.find(['{', ' ']).expect("name then labels or value");
            let name = &line[..end];
            let (labels, rest) = if line[end..].starts_with('{') { parse_labels(&line[end..]) } else { (BTreeMap::new(), &line[end..]) };
            let value: f64 = rest.trim().parse().unwrap_or_else(|_| panic!("value of {line}"));
            let (family, kind) = current.as_ref().unwrap_or_else(|| panic!("{line} before any # TYPE"));
            let suffix = name.strip_prefix(family.as_str()).unwrap_or_else(|| panic!("{name} is not in the family above it, {family}"));
            assert!(suffixes(kind).contains(&suffix), "{name}: suffix {suffix:?} not allowed for a {kind}");
            samples.push(Sample { name: name.to_string(), labels, value });
        }
    }
    (families, samples)
}

/// The sum of the samples named `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples.iter().filter(|s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))).map(|s| s.value).collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Scrapes `/metrics`: the content type the encoder is meant for, and the text parsed.
fn scrape(node: &TestNode) -> (String, HashMap<String, String>, Vec<Sample>) {
    let (status, headers, body) = Api::new(&node.url(), None).get_raw("/metrics");
    assert_eq!(status, 200);
    let ctype = headers["content-type"].to_str().unwrap();
    assert!(ctype.starts_with("application/openmetrics-text; version=1.0.0"), "{ctype}");
    let text = String::from_utf8(body).unwrap();
    let (families, samples) = parse(&text);
    (text, families, samples)
}

/// A series' labels (without `le`).
type SeriesKey = Vec<(String, String)>;

/// Each histogram series: buckets cumulative, `+Inf` equal to `_count`.
fn check_histograms(families: &HashMap<String, String>, samples: &[Sample]) {
    for (family, _) in families.iter().filter(|(_, k)| k.as_str() == "histogram") {
        let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let mut key: SeriesKey = s.labels.clone().into_iter().collect();
            key.retain(|(k, _)| k != "le");
            let le = s.labels["le"].as_str();
            series.entry(key).or_default().push((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, s.value));
        }
        for (key, buckets) in series {
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family} {key:?}: buckets cumulative");
            let want: Vec<(&str, &str)> = key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let count = samples.iter().find(|s| s.name == format!("{family}_count") && s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).eq(want.iter().copied()));
            assert_eq!(buckets.last().map(|b| (b.0, b.1)), Some((f64::INFINITY, count.unwrap().value)), "{family} {key:?}: +Inf is the count");
        }
    }
}

#[test]
fn metrics_count_requests_per_route_the_writers_groups_fsyncs_and_the_store() {
    let mut node = TestNode::init("330106001000", "留下街道综治中心");
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let (_, families, before) = scrape(&node);
    check_histograms(&families, &before);
    fn route(r: &str) -> [(&str, &str); 2] {
        [("method", "GET"), ("route", r)]
    }
    assert_eq!(value(&before, "zongzhi_http_request_duration_seconds_count", &route("/api/cases")), None, "nothing listed yet");

    for _ in 0..3 {
        assert_eq!(op.get("/api/cases").0, 200);
    }
    let ids: Vec<String> = (0..4).map(|i| op.file_case(&sample_case(&format!("噪音扰民 {i}")))["id"].as_str().unwrap().to_string()).collect();
    for id in &ids[..2] {
        op.case(id);
    }
    assert_eq!(op.get("/api/no-such-route").0, 404);

    let (text, families, after) = scrape(&node);
    check_histograms(&families, &after);
    // Three listings: one series for the route, all 2xx.
    assert_eq!(value(&after, "zongzhi_http_request_duration_seconds_count", &route("/api/cases")), Some(3.0), "{text}");
    assert_eq!(value(&after, "zongzhi_http_request_duration_seconds_bucket", &[("method", "GET"), ("route", "/api/cases"), ("le", "+Inf")]), Some(3.0));
    assert_eq!(value(&after, "zongzhi_http_requests_total", &[("method", "GET"), ("route", "/api/cases"), ("status", "2xx")]), Some(3.0), "{text}");
    assert_eq!(value(&after, "zongzhi_http_requests_total", &[("method", "POST"), ("route", "/api/cases"), ("status", "2xx")]), Some(4.0), "{text}");
    // Two case pages under the route pattern, never under the raw path.
    assert_eq!(value(&after, "zongzhi_http_request_duration_seconds_count", &route("/api/cases/{case}")), Some(2.0), "{text}");
    assert!(ids.iter().all(|id| !text.contains(id.as_str())), "a case id as a label value:\n{text}");
    assert_eq!(value(&after, "zongzhi_http_requests_total", &[("route", "unmatched"), ("status", "4xx")]), Some(1.0), "{text}");
    assert!(!text.contains("no-such-route"), "{text}");
    // The login and the start-up health checks are there too.
    assert_eq!(value(&after, "zongzhi_http_requests_total", &[("method", "POST"), ("route", "/api/login"), ("status", "2xx")]), Some(1.0), "{text}");
    assert!(value(&after, "zongzhi_http_request_duration_seconds_sum", &route("/api/cases")).unwrap() > 0.0);

    // The writer: every filing went through a group written with one fsync.
    let groups = value(&after, "zongzhi_write_group_operations_count", &[]).unwrap();
    assert!(groups >= 1.0, "{text}");
    assert!(value(&after, "zongzhi_write_group_operations_sum", &[]).unwrap() >= 4.0, "{text}");
    assert!(value(&after, "zongzhi_write_group_records_sum", &[]).unwrap() >= 4.0, "{text}");
    assert_eq!(value(&after, "zongzhi_write_group_records_count", &[]), Some(groups));
    assert!(value(&after, "zongzhi_fsync_duration_seconds_count", &[]).unwrap() >= groups, "{text}");
    assert!(value(&after, "zongzhi_fsync_duration_seconds_sum", &[]).unwrap() > 0.0, "{text}");
    assert_eq!(families["zongzhi_fsync_duration_seconds"], "histogram");

    // RocksDB's size, and the gauges and counters the node had before.
    assert!(value(&after, "zongzhi_rocksdb_sst_bytes", &[]).unwrap() > 0.0, "{text}");
    assert!(value(&after, "zongzhi_rocksdb_memtable_bytes", &[]).unwrap() > 0.0, "{text}");
    assert!(value(&after, "zongzhi_rocksdb_live_data_bytes", &[]).is_some(), "{text}");
    assert_eq!(value(&after, "zongzhi_restoring", &[]), Some(0.0), "{text}");
    assert_eq!(value(&after, "zongzhi_storage_unavailable", &[]), Some(0.0), "{text}");
    assert_eq!(value(&after, "zongzhi_integrity_alarms", &[]), Some(0.0), "{text}");
    assert!(value(&after, "zongzhi_calendar_warning", &[]).is_some(), "{text}");
    assert!(value(&after, "zongzhi_records", &[]).unwrap() >= 4.0, "{text}");
    assert!(value(&after, "zongzhi_http_connections_total", &[]).unwrap() >= 1.0, "{text}");
    assert_eq!(families["zongzhi_http_connections"], "counter");
    assert!(value(&after, "zongzhi_password_hashes_total", &[]).unwrap() >= 1.0, "{text}");
}

/// The lines the node logged in one run (appended to node.log from `from`).
fn run_log(node: &mut TestNode, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let from = node.log().len();
    node.start_with(args, env);
    // Something at INFO and at WARN: a login, a refused login.
    node.login("operator", OPERATOR_PASSWORD);
    let (status, _) = Api::new(&node.url(), None).post("/api/login", &serde_json::json!({"username": "operator", "password": "wrong"}));
    assert_eq!(status, 401);
    node.stop();
    let log = node.log();
    log[from..].lines().map(str::to_string).collect()
}

#[test]
fn logs_are_json_lines_in_china_time_with_log_format_json() {
    let mut node = TestNode::init("330106001000", "留下街道综治中心");
    let info = [("RUST_LOG", "info")];

    let text = run_log(&mut node, &[], &info);
    assert!(text.len() >= 3, "{text:?}");
    for line in &text {
        assert!(serde_json::from_str::<Value>(line).is_err(), "text by default: {line}");
    }
    assert!(text.iter().any(|l| l.contains("+08:00") && l.contains(" INFO ")), "{text:?}");

    let json_env = [("RUST_LOG", "info"), ("ZONGZHI_LOG_FORMAT", "json")];
    for (how, lines) in [("--log-format json", run_log(&mut node, &["--log-format", "json"], &info)), ("ZONGZHI_LOG_FORMAT=json", run_log(&mut node, &[], &json_env))] {
        assert!(lines.len() >= 3, "{how}: {lines:?}");
        let mut levels = Vec::new();
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{how}: not JSON ({e}): {line}"));
            let ts = v["timestamp"].as_str().unwrap_or_else(|| panic!("{how}: no timestamp: {line}"));
            assert!(ts.ends_with("+08:00"), "{how}: {ts}");
            ts.parse::<jiff::Timestamp>().unwrap_or_else(|e| panic!("{how}: {ts} is not RFC 3339: {e}"));
            let level = v["level"].as_str().unwrap_or_else(|| panic!("{how}: no level: {line}"));
            assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level), "{how}: {line}");
            assert!(v["message"].is_string() || v["fields"].is_object(), "{how}: a message: {line}");
            levels.push(level.to_string());
        }
        assert!(levels.iter().any(|l| l == "INFO"), "{how}: {lines:?}");
    }
}
