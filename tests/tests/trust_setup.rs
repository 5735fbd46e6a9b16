//! The operator's first hour, on real nodes: a trust setup that cannot
//! work is refused at start-up with what to change (no certificate yet, a
//! wrong root key), and a `parent` that points at the wrong center shows
//! in the sync status with the fix, is logged once, and is retried with a
//! growing back-off rather than four times a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use zongzhi_tests::{ADMIN_PASSWORD, Hierarchy, TestNode, wait_for};

fn quic_of(node: &TestNode) -> String {
    let text = std::fs::read_to_string(&node.config).unwrap();
    text.lines().find_map(|l| l.strip_prefix("quic_listen = ")).unwrap().trim_matches('"').to_string()
}

fn run_fails(node: &TestNode) -> String {
    let out = node.node_cmd(&["run"]).output().unwrap();
    assert!(!out.status.success(), "the node started: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_setup_that_cannot_work_is_refused_or_named() {
    let h = Hierarchy::start(0);
    let root = h.city.node_id();
    let town_q = quic_of(&h.township);

    // A village started before its certificate was imported.
    let village = TestNode::init_with("330106010001", "示例社区工作站", &format!("root_key = \"{root}\"\nparent = \"{town_q}\"\n"));
    let err = run_fails(&village);
    assert!(err.contains("no certificate yet") && err.contains("enrollment-request.txt") && err.contains("import-cert"), "{err}");

    // Enrolled, then root_key set to some other key (the county's).
    village.enroll_under(&h.township);
    let config = std::fs::read_to_string(&village.config).unwrap();
    std::fs::write(&village.config, config.replace(&root, &h.county.node_id())).unwrap();
    let err = run_fails(&village);
    assert!(err.contains("root_key") && err.contains("is not the root"), "{err}");
    let out = village.node_cmd(&["verify"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PROBLEM certificate"));
    // Put right, it starts and links.
    std::fs::write(&village.config, &config).unwrap();
    let mut village = village;
    village.start();

    // A township whose `parent` points at the city instead of its county.
    let city_q = quic_of(&h.city);
    let wrong = TestNode::init_with("330106020000", "另一街道综治中心", &format!("root_key = \"{root}\"\nparent = \"{city_q}\"\nquic_listen = \"127.0.0.1:{}\"\n", zongzhi_tests::free_port()));
    wrong.enroll_under(&h.county);
    let mut wrong = wrong;
    wrong.start();
    let admin = wrong.login("admin", ADMIN_PASSWORD);
    let row = wait_for("the parent row with the reason", 15, || {
        let (_, v) = admin.get("/api/sync");
        v["peers"].as_array().unwrap().iter().find(|p| p["role"] == "parent" && p["last_error"].is_string()).cloned()
    });
    let why = row["last_error"].as_str().unwrap();
    assert!(why.contains("330100000000") && why.contains("not its parent") && why.contains("330106000000") && why.contains("set `parent`"), "{row}");
    assert_eq!(row["connected"], false);
    assert!(row["last_error_at"].is_string());
    // Backed off: a refused node dials again only after a long wait (its
    // own schedule, shown in the sync status), not within seconds; and
    // its log says it once.
    let at = |v: &serde_json::Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let row = wait_for("the next attempt in the parent row", 15, || {
        let (_, v) = admin.get("/api/sync");
        v["peers"].as_array().unwrap().iter().find(|p| p["role"] == "parent" && p["next_attempt_at"].is_string()).cloned()
    });
    let wait = at(&row["next_attempt_at"]).duration_since(at(&row["last_error_at"]));
    assert!(wait >= jiff::SignedDuration::from_secs(14), "the next try after a refusal comes {wait:?} later: {row}");
    let warned = wrong.log().lines().filter(|l| l.contains("not its parent")).count();
    assert_eq!(warned, 1, "{}", wrong.log());
}
