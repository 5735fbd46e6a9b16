//! Defects of the hardening issue, each driven the way the operator or the
//! attacker met it, against real node processes: a restored node with
//! HTTPS, a refused restore, refused starts, lockouts anyone could set,
//! the login audit flooded, one client taking every connection, policy
//! values out of range, 发生地 naming no unit, the public page's timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, OPERATOR_PASSWORD, TestNode, free_port, sample_case, wait_for};

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn refused(out: Output) -> String {
    assert!(!out.status.success(), "not refused: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A client that trusts exactly the certificate `pem` (and nothing else).
fn trusting(pem: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().use_rustls_tls().add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()).timeout(Duration::from_secs(10)).build().unwrap()
}

/// A township serving the console over HTTPS with a certificate from
/// `https-cert` in its data directory.
fn https_node() -> (TestNode, u16, String) {
    let https_port = free_port();
    let node = TestNode::init_with("330106001000", "留下街道综治中心", &format!("https_listen = \"127.0.0.1:{https_port}\"\ntls_cert = \"data/https-cert.pem\"\ntls_key = \"data/https-key.pem\"\n"));
    ok(node.node_cmd(&["https-cert", "--host", "127.0.0.1"]).output().unwrap());
    let pem = std::fs::read_to_string(node.dir.path().join("data/https-cert.pem")).unwrap();
    (node, https_port, pem)
}

/// Every file under `dir` with its bytes (what a refused restore must leave as it was).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

// ---------- 1. a restored node with HTTPS starts, with the same certificate ----------

#[test]
fn a_restored_node_serves_the_same_https_certificate() {
    let (mut node, https_port, pem) = https_node();
    node.start();
    let https = format!("https://127.0.0.1:{https_port}/api/health");
    assert_eq!(trusting(&pem).get(&https).send().unwrap().status(), 200);
    node.login("operator", OPERATOR_PASSWORD).file_case(&sample_case("备份前登记"));
    let data = node.dir.path().join("data");

    // A backup taken --with-key holds what the node needs to start: the
    // data directory goes entirely, the backup brings it back.
    let full = node.dir.path().join("backup-with-key");
    let out = ok(node.node_cmd(&["backup", "--with-key", "--out", full.to_str().unwrap()]).output().unwrap());
    assert!(out.contains("HTTPS certificate") && out.contains("its key included"), "{out}");
    // One without: the certificate only (the keys are kept apart).
    let plain = node.dir.path().join("backup-plain");
    let out = ok(node.node_cmd(&["backup", "--out", plain.to_str().unwrap()]).output().unwrap());
    assert!(out.contains("its key is not"), "{out}");
    assert!(plain.join("https-cert.pem").exists() && !plain.join("https-key.pem").exists() && !plain.join("node.key").exists());
    node.stop();

    std::fs::remove_dir_all(&data).unwrap();
    let out = ok(node.node_cmd(&["restore", "--from", full.to_str().unwrap()]).output().unwrap());
    assert!(out.contains("same HTTPS certificate"), "{out}");
    node.start();
    assert_eq!(trusting(&pem).get(&https).send().unwrap().status(), 200, "the restored node serves the certificate browsers accepted");

    // Without --with-key the runbook keeps node.key and the HTTPS key apart;
    // with them back, the backup brings the certificate.
    node.stop();
    let kept = node.dir.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    for f in ["node.key", "https-key.pem"] {
        std::fs::copy(data.join(f), kept.join(f)).unwrap();
    }
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(kept.join("node.key"), data.join("node.key")).unwrap();
    // The HTTPS key not put back: refused with what is missing, and nothing changed.
    let before = tree(&data);
    let err = refused(node.node_cmd(&["restore", "--from", plain.to_str().unwrap()]).output().unwrap());
    assert!(err.contains("https-key.pem") && err.contains("tls_key") && err.contains("nothing was changed"), "{err}");
    assert_eq!(tree(&data), before);
    std::fs::copy(kept.join("https-key.pem"), data.join("https-key.pem")).unwrap();
    ok(node.node_cmd(&["restore", "--from", plain.to_str().unwrap()]).output().unwrap());
    node.start();
    assert_eq!(trusting(&pem).get(&https).send().unwrap().status(), 200);
}

// ---------- 8. a refused restore changes nothing ----------

#[test]
fn a_refused_restore_leaves_the_node_as_it_was() {
    let mut mine = TestNode::init("330106001000", "留下街道综治中心");
    let mut other = TestNode::init("330106001000", "留下街道综治中心");
    mine.start();
    other.start();
    let filed = mine.login("operator", OPERATOR_PASSWORD).file_case(&sample_case("本节点的案件"))["number"].as_str().unwrap().to_string();
    other.login("operator", OPERATOR_PASSWORD).file_case(&sample_case("别的节点的案件"));
    let foreign = other.dir.path().join("backup");
    ok(other.node_cmd(&["backup", "--out", foreign.to_str().unwrap()]).output().unwrap());
    other.stop();
    mine.stop();
    let data = mine.dir.path().join("data");
    let before = tree(&data);

    // Another node's backup: refused (the key does not match).
    let err = refused(mine.node_cmd(&["restore", "--force", "--from", foreign.to_str().unwrap()]).output().unwrap());
    assert!(err.contains("holds the key of"), "{err}");
    // The same with its manifest edited to name this node: the store in
    // it belongs to the other node; found before anything moved.
    let manifest = foreign.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["node_id"] = json!(mine.node_id());
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let err = refused(mine.node_cmd(&["restore", "--force", "--from", foreign.to_str().unwrap()]).output().unwrap());
    assert!(err.contains("does not belong to the node its manifest names") && err.contains("nothing was changed"), "{err}");
    // A backup without its store.
    let broken = mine.dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(&manifest, broken.join("manifest.json")).unwrap();
    let err = refused(mine.node_cmd(&["restore", "--force", "--from", broken.to_str().unwrap()]).output().unwrap());
    assert!(err.contains("holds no store"), "{err}");

    // Nothing moved, nothing left behind: the node starts with its own store.
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.split('/').next().unwrap().to_string()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names(&tree(&data)), names(&before), "no db.replaced-*, no staging directory");
    mine.start();
    let (status, v) = mine.login("operator", OPERATOR_PASSWORD).get(&format!("/api/cases/{filed}"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["title"], "本节点的案件");
}

// ---------- 15. every refused start exits cleanly with its message and status 2 ----------

/// Runs `zongzhi-node run` (log level info) a few times; each must end
/// with status 2 (not a signal), say `says` on standard error, and (when
/// `before_store`) refuse before the store was opened.
fn refused_start(node: &TestNode, says: &str, before_store: bool) {
    for _ in 0..4 {
        let out = node.node_cmd(&["run"]).env("RUST_LOG", "info").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{says}: {:?}\n{err}", out.status);
        assert!(err.contains(says), "{says}:\n{err}");
        assert!(!err.contains("pthread") && !err.contains("panicked"), "{err}");
        if before_store {
            assert!(!err.contains("store opened"), "refused only after the store opened:\n{err}");
        }
    }
}

#[test]
fn every_refused_start_exits_cleanly_with_status_2() {
    let (node, https_port, _) = https_node();
    let config = std::fs::read_to_string(&node.config).unwrap();
    let set = |text: &str| std::fs::write(&node.config, text).unwrap();
    let cert = node.dir.path().join("data/https-cert.pem");
    let good_cert = std::fs::read(&cert).unwrap();

    // A bad certificate (what aborted one start in thirty).
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n").unwrap();
    refused_start(&node, "HTTPS certificate", true);
    std::fs::write(&cert, &good_cert).unwrap();
    // The key missing.
    let key = node.dir.path().join("data/https-key.pem");
    std::fs::rename(&key, node.dir.path().join("key.aside")).unwrap();
    refused_start(&node, "HTTPS private key", true);
    std::fs::rename(node.dir.path().join("key.aside"), &key).unwrap();
    // The HTTP, HTTPS and QUIC ports taken.
    let taken = std::net::TcpListener::bind(("127.0.0.1", node.port)).unwrap();
    refused_start(&node, "binding HTTP", true);
    drop(taken);
    let taken = std::net::TcpListener::bind(("127.0.0.1", https_port)).unwrap();
    refused_start(&node, "binding HTTPS", true);
    drop(taken);
    let quic = free_port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", quic)).unwrap();
    set(&format!("{config}quic_listen = \"127.0.0.1:{quic}\"\n"));
    refused_start(&node, "binding QUIC", true);
    drop(udp);
    // A parent that resolves to nothing; a template naming no variable.
    set(&format!("{config}parent = \"no-such-host.invalid:7900\"\n"));
    refused_start(&node, "resolving parent address", true);
    set(&format!("{config}[notify]\nadapter = \"log\"\n[notify.templates]\nreceipt = \"编号{{numbr}}\"\n"));
    refused_start(&node, "{numbr}", true);
    // One found only in the store (no certificate for a node that links):
    // refused after the writer's passes, still cleanly.
    set(&format!("{config}root_key = \"{}\"\nparent = \"127.0.0.1:{}\"\n", "11".repeat(32), free_port()));
    refused_start(&node, "has no certificate yet", false);
    set(&config);
    let mut node = node;
    node.start();
}

// ---------- 13. policy values out of range are refused ----------

#[test]
fn policy_values_out_of_range_are_refused_and_store_nothing() {
    let mut city = TestNode::init("330100000000", "示例市社会治安综合治理中心");
    city.start();
    let admin = city.login("admin", ADMIN_PASSWORD);
    let version = admin.get("/api/policy").1["version"].clone();
    for (patch, says) in [
        (json!({"deadlines": {"max_due_days": 100000}}), "max_due_days must be at least 1 and at most a year in days (366)"),
        (json!({"deadlines": {"rating_token_days": 367}}), "rating_token_days"),
        (json!({"repeat_window_days": 100000}), "repeat_window_days"),
        (json!({"deadlines": {"resolution_working_days": 251}}), "resolution_working_days"),
        (json!({"deadlines": {"feedback_minutes": 527041}}), "feedback_minutes"),
        (json!({"supervision": {"interview_after_minutes": 600000}}), "supervision threshold"),
    ] {
        let (status, v) = admin.post("/api/policy", &patch);
        assert_eq!((status, v["error"]["code"].as_str()), (422, Some("invalid_policy")), "{patch}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{patch}: {v}");
    }
    // A year with every weekday a holiday has no working day.
    let mut holidays = Vec::new();
    let mut day = jiff::civil::date(2027, 1, 1);
    while day.year() == 2027 {
        if !matches!(day.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
            holidays.push(json!({"date": day.to_string(), "name": "假日"}));
        }
        day = day.tomorrow().unwrap();
    }
    let (status, v) = admin.post("/api/policy", &json!({"calendars": {"2027": {"source": "test", "holidays": holidays, "make_up_workdays": []}}}));
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("working days"), "{v}");
    assert_eq!(admin.get("/api/policy").1["version"], version, "nothing signed");
    // The bounds themselves pass.
    let (status, v) = admin.post("/api/policy", &json!({"deadlines": {"max_due_days": 366, "rating_token_days": 366}, "repeat_window_days": 366}));
    assert_eq!(status, 201, "{v}");
}

// ---------- 14. 发生地 names an enrolled unit of the filing center's area ----------

#[test]
fn arose_in_must_be_an_enrolled_unit_below() {
    let h = zongzhi_tests::Hierarchy::start(1);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let count = || town.get("/api/cases?status=all").1["total"].as_u64().unwrap();
    let before = count();
    for (arose, status, says) in [("330106010201", 422, "not a center enrolled"), ("330106020001", 400, "not within this center's area")] {
        let mut c = sample_case("发生地不存在");
        c["arose_in"] = json!(arose);
        let (s, v) = town.post("/api/cases", &c);
        assert_eq!(s, status, "{arose}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }
    assert_eq!(count(), before, "nothing filed");
    // The enrolled village is fine, and counts as 越级 against it.
    let mut c = sample_case("发生在村里");
    c["arose_in"] = json!("330106010001");
    let v = town.file_case(&c);
    assert_eq!(v["skip_level"], true, "{v}");
}

// ---------- 6. a revoked node backs off and logs no sentinel ----------

#[test]
fn a_revoked_node_backs_off_and_says_why_plainly() {
    let mut h = zongzhi_tests::Hierarchy::start(1);
    let town = h.township.login("admin", ADMIN_PASSWORD);
    let (status, v) = town.post("/api/certs/revoke", &json!({"key": h.villages[0].node_id(), "cutoff_seq": 0, "reason": "设备丢失"}));
    assert_eq!(status, 201, "{v}");
    // The village dials again (restarted): refused in the handshake.
    h.villages[0].stop();
    h.villages[0].start();
    let village = h.villages[0].login("admin", ADMIN_PASSWORD);
    let row = wait_for("the refusal in the village's sync status", 60, || {
        let (_, v) = village.get("/api/sync");
        v["peers"].as_array().unwrap().iter().find(|p| p["role"] == "parent" && p["next_attempt_at"].is_string()).cloned()
    });
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let wait = at(&row["next_attempt_at"]).duration_since(at(&row["last_error_at"]));
    assert!(row["last_error"].as_str().unwrap().contains("refused this node's TLS handshake"), "{row}");
    assert!(wait >= jiff::SignedDuration::from_secs(14), "a refused node tries again {wait:?} later: {row}");
    // No sentinel number in either log; the township says what it refused.
    wait_for("the township to log the refusal", 30, || h.township.log().contains("is revoked").then_some(()));
    for log in [h.township.log(), h.villages[0].log()] {
        assert!(!log.contains(&u64::MAX.to_string()), "{log}");
    }
}

// ---------- 6. the console shows and takes times in China time ----------

/// `YYYY-MM-DD HH:MM` in China time of an RFC 3339 time.
fn china_minute(t: &str) -> String {
    let ts: jiff::Timestamp = t.parse().unwrap();
    ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m-%d %H:%M").to_string()
}

#[test]
fn the_console_shows_china_time_on_a_pc_set_to_utc() {
    let mut node = TestNode::init("330106001000", "留下街道综治中心");
    node.start();
    let mut b = zongzhi_tests::browser::Browser::launch();
    // The PC's clock is set to UTC (8 hours behind Beijing).
    b.call("Emulation.setTimezoneOverride", json!({"timezoneId": "Etc/UTC"}));
    assert_eq!(b.eval("new Date(Date.UTC(2026, 0, 1, 0, 0)).getHours()"), 0, "the browser runs in UTC");
    b.login(&node.url(), "operator", OPERATOR_PASSWORD);
    // Filed in the console with 受理时间 typed as the operator reads the wall clock in Beijing.
    let received = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    let typed = received.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m-%dT%H:%M").to_string();
    b.goto(&format!("{}/#/file", node.url()));
    b.wait("the filing form", 15, "document.querySelector('#file-form')");
    b.fill("#file-form input[name=title]", "两小时前来访");
    b.fill("#file-form textarea[name=content]", "来访人反映楼道堆物。");
    b.fill("#file-form select[name=big]", "02");
    b.fill("#file-form select[name=category]", "0202");
    b.fill("#file-form select[name=channel]", "on_site");
    b.fill("#file-form input[name=received_at]", &typed);
    b.click("#file-form button[type=submit]");
    b.wait("the new case", 15, "document.body.dataset.page === 'case' && document.querySelector('h1')?.innerText");
    let id = b.eval("location.hash").as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let case = node.login("operator", OPERATOR_PASSWORD).case(&id);
    assert_eq!(china_minute(case["received_at"].as_str().unwrap()), typed.replace('T', " "), "the typed time is China time: {}", case["received_at"]);
    // Shown in China time, as the API gives it (+08:00), not eight hours early.
    let shown = b.eval("[...document.querySelectorAll('dt')].find(d => d.innerText === '受理时间')?.nextElementSibling?.innerText");
    assert_eq!(shown.as_str(), Some(china_minute(case["received_at"].as_str().unwrap()).as_str()));
    let deadline = case["deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "routing").unwrap()["due_at"].as_str().unwrap().to_string();
    let page = b.eval("document.body.innerText").as_str().unwrap().to_string();
    assert!(page.contains(&china_minute(&deadline)), "the routing deadline {} in China time on the page:\n{page}", china_minute(&deadline));
}
