//! Accounts on a center's network: login backoff and lockout per account
//! and per client address, the bound on concurrent password hashes,
//! sessions ended by a new password or a disable, the login audit, and the
//! statistics as XLSX. Real `zongzhi-node` processes over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, OPERATOR_PASSWORD, TestNode, VIEWER_PASSWORD, sample_case};

const TOWNSHIP: &str = "330102001000";
const NAME: &str = "留下街道社会治安综合治理中心";

fn node_with(login: &str) -> TestNode {
    let mut node = TestNode::init_with(TOWNSHIP, NAME, &format!("[login]\n{login}"));
    node.start();
    node
}

fn login_as(api: &Api, user: &str, password: &str) -> (u16, HeaderMap, Value) {
    api.post_full("/api/login", &json!({"username": user, "password": password}))
}

fn retry_after(h: &HeaderMap) -> u64 {
    h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("a Retry-After header in seconds")
}

/// A gauge or counter from `/metrics`.
fn metric(node: &TestNode, name: &str) -> u64 {
    let (status, v) = Api::new(&node.url(), None).get("/metrics");
    assert_eq!(status, 200);
    let text = v.as_str().unwrap().to_string();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' '))).unwrap_or_else(|| panic!("no {name} in /metrics")).trim().parse().unwrap()
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn user<'a>(users: &'a Value, name: &str) -> &'a Value {
    users["users"].as_array().unwrap().iter().find(|u| u["username"] == name).unwrap()
}

/// A wrong password for `user`, waiting out 429 `too_many_attempts` as told.
fn wrong_after_waiting(api: &Api, user: &str) -> (u16, HeaderMap, Value) {
    loop {
        let r = login_as(api, user, "not-the-password");
        if r.0 == 429 && error_code(&r.2) == "too_many_attempts" {
            std::thread::sleep(Duration::from_secs(retry_after(&r.1)));
            continue;
        }
        return r;
    }
}

#[test]
fn failed_logins_slow_down_then_lock_until_an_admin_unlocks() {
    // Delays of 0.2 s, doubling, so the test waits seconds, not minutes.
    let node = node_with("account_first_delay_ms = 200\n");
    let anon = Api::new(&node.url(), None);
    for i in 1..=5 {
        let (status, _, v) = login_as(&anon, "operator", "not-the-password");
        assert_eq!((status, error_code(&v)), (401, "bad_credentials"), "failure {i}: {v}");
    }
    // The sixth attempt waits, whatever the password: 429 saying how long.
    for password in ["not-the-password", OPERATOR_PASSWORD] {
        let (status, h, v) = login_as(&anon, "operator", password);
        assert_eq!((status, error_code(&v)), (429, "too_many_attempts"), "{v}");
        assert!(retry_after(&h) >= 1);
        assert!(v["error"]["message"].as_str().unwrap().contains("seconds before trying again"), "{v}");
    }
    // Failures six to nine after each wait; the tenth locks the account.
    for n in 6..=10 {
        let (status, h, v) = wrong_after_waiting(&anon, "operator");
        if n < 10 {
            assert_eq!(status, 401, "failure {n}: {v}");
        } else {
            assert_eq!((status, error_code(&v)), (429, "locked"), "{v}");
            assert!(retry_after(&h) > 800, "locked for 15 minutes");
        }
    }
    // Locked: the right password is refused too, before any hash.
    let hashes = metric(&node, "zongzhi_password_hashes_total");
    let (status, h, v) = login_as(&anon, "operator", OPERATOR_PASSWORD);
    assert_eq!((status, error_code(&v)), (429, "locked"), "{v}");
    assert!(retry_after(&h) > 800);
    assert!(v["error"]["message"].as_str().unwrap().contains("ask an admin to unlock"), "{v}");
    assert_eq!(metric(&node, "zongzhi_password_hashes_total"), hashes, "a locked account's password is not checked");

    // The admin sees the lock and lifts it; others may not; JSON errors.
    let admin = node.login("admin", ADMIN_PASSWORD);
    let (status, users) = admin.get("/api/users");
    assert_eq!(status, 200);
    let op = user(&users, "operator");
    assert!(op["locked_until"].is_string(), "{op}");
    assert_eq!(op["failed_logins"], 10, "{op}");
    assert!(user(&users, "viewer")["locked_until"].is_null());
    let viewer = node.login("viewer", VIEWER_PASSWORD);
    let (status, v) = viewer.post("/api/users/operator/unlock", &json!({}));
    assert_eq!((status, error_code(&v)), (403, "forbidden"), "{v}");
    let (status, v) = admin.post("/api/users/nobody/unlock", &json!({}));
    assert_eq!((status, error_code(&v)), (404, "not_found"), "{v}");
    let (status, v) = anon.post("/api/users/operator/unlock", &json!({}));
    assert_eq!((status, error_code(&v)), (401, "unauthenticated"), "{v}");
    let (status, v) = admin.post("/api/users/operator/unlock", &json!({}));
    assert_eq!(status, 200, "{v}");
    assert!(v["locked_until"].is_null() && v["failed_logins"] == 0, "{v}");
    let (status, _, v) = login_as(&anon, "operator", OPERATOR_PASSWORD);
    assert_eq!(status, 200, "unlocked: {v}");
}

#[test]
fn a_client_address_is_limited_across_user_names() {
    let node = node_with("address_failures_before_delay = 6\naddress_failures_to_lock = 8\naddress_first_delay_ms = 200\n");
    let here = Api::new(&node.url(), None);
    for name in ["operator", "viewer", "admin", "nobody", "wang.wu", "li"] {
        let (status, _, v) = login_as(&here, name, "not-the-password");
        assert_eq!(status, 401, "{name}: {v}");
    }
    // Six failures, each on another name: this address waits, also with
    // the right password, which is not checked.
    let hashes = metric(&node, "zongzhi_password_hashes_total");
    let (status, h, v) = login_as(&here, "admin", ADMIN_PASSWORD);
    assert_eq!((status, error_code(&v)), (429, "too_many_attempts"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("from this address (127.0.0.1)"), "{v}");
    assert!(retry_after(&h) >= 1);
    assert_eq!(metric(&node, "zongzhi_password_hashes_total"), hashes);
    // Another address is not held up.
    let mut elsewhere = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 2]));
    elsewhere.log_in("admin", ADMIN_PASSWORD);
    // Two more failures block the address.
    for name in ["zhao", "qian"] {
        let (status, _, v) = wrong_after_waiting(&here, name);
        assert_eq!(status, 401, "{v}");
    }
    let (status, h, v) = login_as(&here, "admin", ADMIN_PASSWORD);
    assert_eq!((status, error_code(&v)), (429, "too_many_attempts"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("blocked"), "{v}");
    assert!(retry_after(&h) > 800);
    // No account is locked by it; the admin sees the address.
    let (_, users) = elsewhere.get("/api/users");
    for u in users["users"].as_array().unwrap() {
        assert!(u["locked_until"].is_null() && u["failed_logins"].as_u64().unwrap() <= 1, "{u}");
    }
    let (status, audit) = elsewhere.get("/api/login-audit");
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["blocked_addresses"][0]["address"], "127.0.0.1", "{audit}");
    assert_eq!(audit["blocked_addresses"][0]["failed_logins"], 8, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["address"] == "127.0.0.2" && e["username"] == "admin" && e["outcome"] == "ok"), "{audit}");
    assert!(entries.iter().any(|e| e["address"] == "127.0.0.1" && e["outcome"] == "address_throttled"), "{audit}");
}

#[test]
fn parallel_wrong_logins_hash_a_few_at_a_time() {
    // No backoff here: every attempt reaches the password check.
    let node = node_with("account_failures_before_delay = 1000\naccount_failures_to_lock = 1000\naddress_failures_before_delay = 1000\naddress_failures_to_lock = 1000\nhash_queue = 16\n");
    let permits = metric(&node, "zongzhi_password_hash_permits");
    assert_eq!(permits, 2);
    let hashes = metric(&node, "zongzhi_password_hashes_total");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (api, barrier) = (Api::new(&node.url(), None), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let name = if i % 2 == 0 { "operator".to_string() } else { format!("guess{i}") };
                login_as(&api, &name, "not-the-password")
            })
        })
        .collect();
    let (mut checked, mut busy) = (0, 0);
    for t in threads {
        let (status, h, v) = t.join().unwrap();
        match status {
            401 => checked += 1,
            503 => {
                assert_eq!(error_code(&v), "busy", "{v}");
                assert_eq!(retry_after(&h), 1);
                busy += 1;
            }
            s => panic!("{s}: {v}"),
        }
    }
    assert_eq!(checked + busy, 64);
    assert!(metric(&node, "zongzhi_password_hashes_peak") <= permits, "never more hashes at once than permits");
    assert_eq!(metric(&node, "zongzhi_password_hashes_total") - hashes, checked);
    assert_eq!(metric(&node, "zongzhi_login_busy_total"), busy);
    assert_eq!((metric(&node, "zongzhi_password_hashes_active"), metric(&node, "zongzhi_password_hash_waiting")), (0, 0));
    // Every attempt is in the audit, the refused ones too (aggregated per
    // address: each entry counts its attempts).
    let admin = node.login("admin", ADMIN_PASSWORD);
    let (_, audit) = admin.get("/api/login-audit?limit=1000");
    let count = |outcome: &str| audit["entries"].as_array().unwrap().iter().filter(|e| e["outcome"] == outcome).map(|e| e["count"].as_u64().unwrap()).sum::<u64>();
    assert_eq!((count("wrong_password") + count("unknown_user"), count("busy")), (checked, busy), "{audit}");
}

#[test]
fn a_new_password_or_a_disable_ends_sessions() {
    let mut node = node_with("");
    let mine = node.login("operator", OPERATOR_PASSWORD);
    let other = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let change = |api: &Api, current: &str, new: &str| api.post("/api/me/password", &json!({"current_password": current, "new_password": new}));
    // Bad new passwords change nothing.
    for bad in ["        ", "operator", "OPERATOR", "7-chars"] {
        let (status, v) = change(&mine, OPERATOR_PASSWORD, bad);
        assert_eq!((status, error_code(&v)), (400, "bad_request"), "{bad:?}: {v}");
        let (status, v) = admin.post("/api/users/operator/password", &json!({"password": bad}));
        assert_eq!((status, error_code(&v)), (400, "bad_request"), "{bad:?}: {v}");
    }
    assert_eq!(other.get("/api/me").0, 200);
    let (status, v) = change(&mine, "not-the-password", "new-operator-pass");
    assert_eq!((status, error_code(&v)), (403, "wrong_password"), "{v}");
    assert_eq!(other.get("/api/me").0, 200, "nothing changed");
    // The change ends the other session, not this one.
    let (status, v) = change(&mine, OPERATOR_PASSWORD, "new-operator-pass");
    assert_eq!(status, 200, "{v}");
    assert_eq!(other.get("/api/me").0, 401);
    assert_eq!(mine.get("/api/me").0, 200);
    let anon = Api::new(&node.url(), None);
    assert_eq!(login_as(&anon, "operator", OPERATOR_PASSWORD).0, 401);
    let again = node.login("operator", "new-operator-pass");

    // An admin's reset ends every session of the account.
    let viewer = node.login("viewer", VIEWER_PASSWORD);
    let (status, v) = viewer.post("/api/users/operator/password", &json!({"password": "reset-operator-1"}));
    assert_eq!((status, error_code(&v)), (403, "forbidden"), "{v}");
    let (status, v) = admin.post("/api/users/nobody/password", &json!({"password": "reset-operator-1"}));
    assert_eq!((status, error_code(&v)), (404, "not_found"), "{v}");
    let (status, v) = admin.post("/api/users/operator/password", &json!({"password": "reset-operator-1"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!((mine.get("/api/me").0, again.get("/api/me").0), (401, 401));
    let op = node.login("operator", "reset-operator-1");

    // Disabling ends the sessions and refuses the right password.
    let (status, v) = admin.post("/api/users/admin/disable", &json!({}));
    assert_eq!((status, error_code(&v)), (409, "conflict"), "{v}");
    let (status, v) = admin.post("/api/users/operator/disable", &json!({}));
    assert_eq!((status, v["disabled"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(op.get("/api/me").0, 401);
    let (status, _, v) = login_as(&anon, "operator", "reset-operator-1");
    assert_eq!((status, error_code(&v)), (403, "disabled"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("ask an admin"), "{v}");
    let (status, _) = admin.post("/api/users/operator/enable", &json!({}));
    assert_eq!(status, 200);
    node.login("operator", "reset-operator-1");

    // The same from the command line, on the stopped node.
    node.stop();
    fn run(node: &TestNode, args: &[&str]) -> std::process::Output {
        node.node_cmd(args).output().unwrap()
    }
    let out = run(&node, &["user", "passwd", "--username", "viewer", "--password", "viewer"]);
    assert!(!out.status.success(), "a weak password is refused");
    assert!(run(&node, &["user", "disable", "--username", "viewer"]).status.success());
    assert!(!run(&node, &["user", "disable", "--username", "nobody"]).status.success());
    node.start();
    assert_eq!(viewer.get("/api/me").0, 401, "disabled from the command line");
    assert_eq!(login_as(&anon, "viewer", VIEWER_PASSWORD).0, 403);
    node.stop();
    assert!(run(&node, &["user", "enable", "--username", "viewer"]).status.success());
    let out = run(&node, &["user", "passwd", "--username", "viewer", "--password", "viewer-pass-2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.start();
    assert_eq!(login_as(&anon, "viewer", VIEWER_PASSWORD).0, 401);
    node.login("viewer", "viewer-pass-2");
}

#[test]
fn the_login_audit_keeps_every_attempt_for_admins() {
    let mut node = node_with("");
    let anon = Api::new(&node.url(), None);
    assert_eq!(login_as(&anon, "operator", "not-the-password").0, 401);
    assert_eq!(login_as(&anon, "nobody", "not-the-password").0, 401);
    let viewer = node.login("viewer", VIEWER_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let (status, v) = viewer.get("/api/login-audit");
    assert_eq!((status, error_code(&v)), (403, "forbidden"), "{v}");
    assert_eq!(anon.get("/api/login-audit").0, 401);
    for bad in ["0", "abc", "10001"] {
        let (status, v) = admin.get(&format!("/api/login-audit?limit={bad}"));
        assert_eq!((status, error_code(&v)), (400, "bad_request"), "{v}");
    }
    let expect = [("admin", "ok"), ("viewer", "ok"), ("nobody", "unknown_user"), ("operator", "wrong_password")];
    let check = |audit: &Value| {
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), expect.len(), "{audit}");
        for (e, (user, outcome)) in entries.iter().zip(expect) {
            assert_eq!((e["username"].as_str(), e["outcome"].as_str(), e["address"].as_str()), (Some(user), Some(outcome), Some("127.0.0.1")), "{audit}");
            assert_eq!((e["kind"].as_str(), e["ok"].as_bool()), (Some("login"), Some(outcome == "ok")));
            assert!(e["time"].as_str().unwrap().contains("+08:00"), "{e}");
        }
    };
    let (status, audit) = admin.get("/api/login-audit");
    assert_eq!(status, 200);
    check(&audit);
    let (_, two) = admin.get("/api/login-audit?limit=2");
    assert_eq!(two["entries"].as_array().unwrap().len(), 2);
    // Kept across a restart.
    node.stop();
    node.start();
    let mut admin = Api::new(&node.url(), None);
    let (_, audit) = {
        // Read with a fresh session, then drop that login from the view.
        admin.log_in("admin", ADMIN_PASSWORD);
        admin.get("/api/login-audit?limit=5")
    };
    let mut tail = audit.clone();
    tail["entries"] = json!(audit["entries"].as_array().unwrap()[1..].to_vec());
    assert_eq!(audit["entries"][0]["username"], "admin");
    check(&tail);
}

#[test]
fn statistics_export_as_xlsx_reads_back_as_the_json() {
    use calamine::{Data, Reader};
    let node = node_with("");
    let op = node.login("operator", OPERATOR_PASSWORD);
    for title in ["楼上装修噪音扰民", "小区停车纠纷"] {
        let c = op.file_case(&sample_case(title));
        op.act(c["id"].as_str().unwrap(), json!({"action": "sign_for"}));
    }
    let (status, table) = op.get("/api/stats?by=channel");
    assert_eq!(status, 200);
    let (status, headers, body) = op.get_raw("/api/stats?by=channel&format=xlsx");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(headers["content-disposition"].to_str().unwrap().ends_with(".xlsx\""));
    let (_, _, csv) = op.get_raw("/api/stats?by=channel&format=csv");
    let csv = String::from_utf8(csv).unwrap();
    let columns: Vec<&str> = csv.lines().next().unwrap().split(',').collect();

    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).unwrap();
    let sheet = book.worksheet_range("统计").unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert_eq!(sheet.height(), rows.len() + 2, "a header, a row per group, the total");
    assert_eq!(sheet.width(), columns.len(), "the CSV's columns");
    let header: Vec<String> = (0..columns.len()).map(|c| sheet.get_value((0, c as u32)).unwrap().to_string()).collect();
    assert_eq!(&header[..3], ["代码", "名称", "排名"]);
    assert!(header.iter().all(|h| !h.is_ascii()), "Chinese headers: {header:?}");
    let mut expected: Vec<(&str, &str, &Value, &Value)> = rows.iter().map(|r| (r["group"].as_str().unwrap(), r["name"].as_str().unwrap(), &r["rank"], r)).collect();
    expected.push(("total", table["scope_name"].as_str().unwrap(), &Value::Null, &table["total"]));
    let kpis_from = columns.iter().position(|c| *c == "repeats").unwrap() + 1;
    let mut received = 0.0;
    for (i, (group, name, rank, row)) in expected.into_iter().enumerate() {
        let r = i as u32 + 1;
        let text = |c: u32| sheet.get_value((r, c)).map(|d| d.to_string()).unwrap_or_default();
        assert!(matches!(sheet.get_value((r, 0)), Some(Data::String(_))), "codes are text");
        assert_eq!((text(0).as_str(), text(1).as_str()), (group, name));
        for (c, col) in columns.iter().enumerate().skip(2) {
            // Counters up to `repeats`, then each KPI and its target (a
            // KPI may share a counter's name).
            let want = match *col {
                "rank" => rank.as_f64(),
                k if c < kpis_from => row["counts"][k].as_f64(),
                k => match k.strip_suffix("_target") {
                    Some(kpi) => row["kpis"][kpi]["target"]["value"].as_f64(),
                    None => row["kpis"][k]["value"].as_f64(),
                },
            };
            let got = match sheet.get_value((r, c as u32)) {
                Some(Data::Float(f)) => Some(*f),
                Some(Data::Int(n)) => Some(*n as f64),
                None | Some(Data::Empty) => None,
                Some(other) => panic!("{col} of {group} is not a number: {other:?}"),
            };
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{col} of {group}: {g} ≠ {w}"),
                (g, w) => assert_eq!(g, w, "{col} of {group}"),
            }
            if *col == "received" && group == "total" {
                received = got.unwrap();
            }
        }
    }
    assert_eq!(received, 2.0);
}

/// Ten slow wrong passwords from another address lock that address out of
/// the account, not the real user; the lock outlives a restart; guessing
/// spread over several addresses locks the account for clients it does not
/// know, and the real admin still gets in from a browser or command line
/// that logged in before (its device token) or with the recovery code.
#[test]
fn guessing_from_elsewhere_never_locks_the_real_user_out() {
    let mut node = node_with("account_first_delay_ms = 200\naccount_failures_to_lock_everywhere = 14\n");
    let mut real = Api::new(&node.url(), None);
    let (status, _, first) = login_as(&real, "admin", ADMIN_PASSWORD);
    assert_eq!(status, 200, "{first}");
    let device = first["device"].as_str().expect("a device token for the next login").to_string();
    real.token = Some(first["token"].as_str().unwrap().to_string());
    let (status, made) = real.post("/api/users/admin/recovery-code", &json!({}));
    assert_eq!(status, 200, "{made}");
    let recovery = made["recovery_code"].as_str().unwrap().to_string();

    // Ten slow wrong passwords from 127.0.0.2: that address is locked out.
    let attacker = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 2]));
    for n in 1..=10 {
        let (status, _, v) = wrong_after_waiting(&attacker, "admin");
        assert_eq!(status, if n < 10 { 401 } else { 429 }, "failure {n}: {v}");
    }
    assert_eq!(error_code(&login_as(&attacker, "admin", ADMIN_PASSWORD).2), "locked");
    // The real admin, at their own address, is not.
    assert_eq!(login_as(&real, "admin", ADMIN_PASSWORD).0, 200, "the real admin logs in");
    // A restart keeps the lock.
    node.stop();
    node.start();
    let (status, _, v) = login_as(&attacker, "admin", ADMIN_PASSWORD);
    assert_eq!((status, error_code(&v)), (429, "locked"), "a restart lifts no lock: {v}");

    // Guessing spread over more addresses: the account is locked for every
    // client it does not know.
    for last in [3u8, 4] {
        let elsewhere = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, last]));
        for _ in 0..2 {
            assert_eq!(wrong_after_waiting(&elsewhere, "admin").0, 401);
        }
    }
    let stranger = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 9]));
    let (status, _, v) = login_as(&stranger, "admin", ADMIN_PASSWORD);
    assert_eq!((status, error_code(&v)), (429, "locked"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("recovery code"), "{v}");
    // The real admin: from the client that logged in before …
    let (status, _, v) = real.post_full("/api/login", &json!({"username": "admin", "password": ADMIN_PASSWORD, "device": device}));
    assert_eq!(status, 200, "a known device gets in: {v}");
    // … or anywhere with the recovery code (the command line takes it too).
    let (status, _, v) = stranger.post_full("/api/login", &json!({"username": "admin", "password": ADMIN_PASSWORD, "recovery_code": recovery.to_lowercase()}));
    assert_eq!(status, 200, "the recovery code gets in: {v}");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(zongzhi_tests::bin("zongzhi"))
        .args(["login", "--user", "admin", "--password", ADMIN_PASSWORD, "--recovery-code", &recovery])
        .env("ZONGZHI_NODE", node.url())
        .env("ZONGZHI_SESSION", dir.path().join("s.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The admin sees it all, and lifts it.
    let admin = node.login_with_device("admin", ADMIN_PASSWORD, &device);
    let (_, users) = admin.get("/api/users");
    let a = user(&users, "admin");
    assert_eq!(a["locked_everywhere"], true, "{a}");
    assert!(a["locked_for"].as_array().unwrap().iter().any(|l| l["client"] == "127.0.0.2"), "{a}");
    let (_, audit) = admin.get("/api/login-audit?log=events");
    let lockouts = audit["entries"].as_array().unwrap().iter().filter(|e| e["outcome"] == "lockout").count();
    assert!(lockouts >= 2, "the pair's and the account's lockouts are events: {audit}");
    assert_eq!(admin.post("/api/users/admin/unlock", &json!({})).0, 200);
    assert_eq!(login_as(&stranger, "admin", ADMIN_PASSWORD).0, 200);
    assert_eq!(login_as(&attacker, "admin", ADMIN_PASSWORD).0, 200);
    // On a stopped node, with no admin able to log in: `user unlock`.
    let again = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 10]));
    for _ in 0..10 {
        wrong_after_waiting(&again, "admin");
    }
    assert_eq!(error_code(&login_as(&again, "admin", ADMIN_PASSWORD).2), "locked");
    node.stop();
    let out = node.node_cmd(&["user", "unlock", "--username", "admin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.start();
    assert_eq!(login_as(&again, "admin", ADMIN_PASSWORD).0, 200);
}

/// Eleven thousand refused logins from one address, as fast as they come:
/// one aggregated entry; the successful login before them stays in the
/// audit, and so does the lockout they caused.
#[test]
fn a_flood_of_refused_logins_never_evicts_a_successful_one() {
    let node = node_with("address_failures_before_delay = 1000\naddress_failures_to_lock = 3\n");
    let admin = node.login("admin", ADMIN_PASSWORD);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let api = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 2]));
            std::thread::spawn(move || {
                for i in 0..1375 {
                    let (status, _, _) = login_as(&api, if i % 2 == 0 { "admin" } else { "root" }, "not-the-password");
                    assert!(status == 401 || status == 429, "{status}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (_, audit) = admin.get("/api/login-audit?limit=10000");
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["username"] == "admin" && e["outcome"] == "ok" && e["address"] == "127.0.0.1"), "the successful login stays");
    assert!(entries.iter().any(|e| e["outcome"] == "lockout" && e["address"] == "127.0.0.2"), "the lockout stays");
    let refused: u64 = entries.iter().filter(|e| e["address"] == "127.0.0.2" && e["outcome"] != "lockout").map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(refused + audit["not_recorded"].as_u64().unwrap(), 11_000, "every attempt counted");
    assert!(entries.len() < 20, "aggregated per address and outcome: {} entries", entries.len());
    let (_, events) = admin.get("/api/login-audit?log=events&limit=10000");
    assert!(events["entries"].as_array().unwrap().iter().all(|e| e["outcome"] == "ok" || e["outcome"] == "lockout" || e["kind"] == "admin"), "{events}");
}
