//! A center that loses its machine and key without a backup is re-enrolled
//! with a new key and carries on as the same division (README, "Runbook:
//! a center lost its machine and key"), over real nodes.
//!
//! A village works (cases escalated, dispatched to it, open at it, its
//! monthly report signed), then its machine is gone. The township previews
//! the revocation — what it holds of the old key, what a cut-off voids —
//! and revokes with the cut-off at what it holds. A new node with a new key
//! enrolls for the same division; the township's chain brings the old
//! key's certificate and revocation; the new node signs nothing until its
//! township has given the division's history back. Then: its old cases are
//! there and its own (sign-for of the case dispatched to it, the open
//! case resolved, 反馈 of a case resolved above); its next case number
//! continues the old serials (no number issued twice, at any holder); the
//! old report stays listed beside the new one; the citizen's receipt and
//! query code of an old case still work; no alarm anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, sample_case, wait_case, wait_for};

const VILLAGE: &str = "330106010001";
const TOWNSHIP: &str = "330106010000";

fn number(v: &Value) -> String {
    v["number"].as_str().unwrap().to_string()
}

#[test]
fn a_center_that_lost_its_machine_is_re_enrolled_and_carries_on() {
    let mut h = Hierarchy::start_with(1, "public = { enabled = true }\n");
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let town_admin = h.township.login("admin", ADMIN_PASSWORD);

    // A: filed at the village with a receipt, escalated, held by the township.
    let a = village.file_case(&sample_case("村里受理后上报"));
    let (a_id, a_number) = (a["id"].as_str().unwrap().to_string(), number(&a));
    let (token, code) = (a["receipt"]["token"].as_str().unwrap().to_string(), a["receipt"]["query_code"].as_str().unwrap().to_string());
    village.act(&a_id, json!({"action": "sign_for"}));
    village.act(&a_id, json!({"action": "escalate", "reason": "需街道协调"}));
    // B: escalated, to be resolved above: its 反馈 is the village's.
    let b = village.file_case(&sample_case("上报后由街道办结"));
    let b_id = b["id"].as_str().unwrap().to_string();
    village.act(&b_id, json!({"action": "sign_for"}));
    village.act(&b_id, json!({"action": "escalate", "reason": "超出村级职权"}));
    // D: open at the village.
    let d = village.file_case(&sample_case("村里在办的案件"));
    let d_id = d["id"].as_str().unwrap().to_string();
    village.act(&d_id, json!({"action": "sign_for"}));
    // C: the township dispatches a case to the village.
    let c = town.file_case(&sample_case("街道下派的案件"));
    let c_id = c["id"].as_str().unwrap().to_string();
    town.act(&c_id, json!({"action": "sign_for"}));
    town.act(&c_id, json!({"action": "dispatch", "to": VILLAGE, "requirements": "属地处置"}));
    wait_case(&h.villages[0], &village, &c_id, "the dispatched case at the village", |_| true);
    let numbers: Vec<String> = [&a, &b, &d].iter().map(|v| number(v)).collect();

    // Everything the village signed reached the township (its report of
    // last month, signed on its own, included).
    let held = |api: &Api| -> u64 {
        let (_, s) = api.get("/api/sync");
        s["peers"].as_array().unwrap().iter().find(|p| p["division"] == VILLAGE).map_or(u64::MAX, |p| p["behind_from_peer"].as_u64().unwrap_or(u64::MAX))
    };
    wait_for("the village's records at the township", 30, || (held(&town_admin) == 0).then_some(()));
    wait_case(&h.township, &town, &d_id, "D at the township", |v| v["status"]["code"] == "accepted");
    let old_key = h.villages[0].node_id();
    // Last month's report, signed by the village (the worker signs it on
    // its own once the grace period has passed, if the node ran then).
    let last_month = {
        let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date();
        let first = today.first_of_month().yesterday().unwrap();
        format!("{:04}-{:02}", first.year(), first.month())
    };
    let village_admin = h.villages[0].login("admin", ADMIN_PASSWORD);
    let (status, v) = village_admin.post("/api/reports", &json!({"period": last_month}));
    assert!(status == 201 || v["error"]["code"] == "conflict", "{status} {v}");
    let old_report = wait_for("the village's report of last month at the township", 30, || {
        let (_, r) = town_admin.get(&format!("/api/reports?scope={VILLAGE}&period={last_month}"));
        r["reports"].as_array().unwrap().iter().find(|x| x["unit"] == VILLAGE).map(|x| x["record"].as_str().unwrap().to_string())
    });

    // The village's machine is lost, key and disk.
    let lost = h.villages.pop().unwrap();
    drop(lost);

    // The township sees what it holds of the old key before signing.
    let (status, preview) = town_admin.post("/api/certs/revoke", &json!({"key": old_key, "reason": "设备被盗", "dry_run": true}));
    assert_eq!(status, 200, "{preview}");
    let held_seq = preview["held_seq"].as_u64().unwrap();
    assert!(held_seq >= 8, "{preview}");
    assert_eq!(preview["voided"].as_array().unwrap().len(), 0, "a cut-off at what the township holds voids nothing");
    let (status, lower) = town_admin.post("/api/certs/revoke", &json!({"key": old_key, "reason": "x", "cutoff_seq": held_seq - 2, "dry_run": true}));
    assert_eq!(lower["voided"].as_array().unwrap().len(), 2, "{status} {lower}");
    let (status, above) = town_admin.post("/api/certs/revoke", &json!({"key": old_key, "reason": "x", "cutoff_seq": held_seq + 5}));
    assert_eq!((status, above["error"]["code"].as_str()), (422, Some("cutoff_above_held")), "{above}");
    let (status, done) = town_admin.post("/api/certs/revoke", &json!({"key": old_key, "reason": "设备被盗"}));
    assert_eq!(status, 201, "{done}");

    // A new machine, a new key, the same division.
    let root = h.city.node_id();
    let town_q =
        std::fs::read_to_string(&h.township.config).unwrap().lines().find_map(|l| l.strip_prefix("quic_listen = \"").map(|a| a.trim_end_matches('"').rsplit(':').next().unwrap().to_string())).unwrap();
    let mut fresh = TestNode::init_with(VILLAGE, "示例社区1工作站", &format!("root_key = \"{root}\"\nparent = \"127.0.0.1:{town_q}\"\nsupervision_interval_secs = 1\npublic = {{ enabled = true }}\n"));
    assert_ne!(fresh.node_id(), old_key);
    fresh.enroll_under(&h.township);
    fresh.start();
    let health = |n: &TestNode| Api::new(&n.url(), None).get("/api/health").1;
    // It signs nothing until the township gave the division's history back.
    wait_for("the succession confirmed by the township", 30, || (health(&fresh)["recovery"]["restoring"] == false).then_some(()));
    assert!(health(&fresh)["recovery"]["succeeds"].as_array().is_some_and(|s| !s.is_empty()), "{}", health(&fresh));
    let village = fresh.login("operator", OPERATOR_PASSWORD);

    // Its history is back: every old case, by number too.
    for (id, n) in [(&a_id, &numbers[0]), (&b_id, &numbers[1]), (&d_id, &numbers[2])] {
        let v = wait_case(&fresh, &village, id, "an old case at the new node", |_| true);
        assert_eq!(&number(&v), n);
        assert_eq!(village.get(&format!("/api/cases/{n}")).0, 200);
    }
    // Its own cases: sign for the dispatched one, resolve the open one.
    wait_case(&fresh, &village, &c_id, "the dispatched case at the new node", |v| v["status"]["code"] == "awaiting_receipt");
    village.act(&c_id, json!({"action": "sign_for"}));
    village.act(&d_id, json!({"action": "resolve", "public_reply": "已调解"}));
    // B resolved above comes back for the village's 反馈.
    town.act(&b_id, json!({"action": "sign_for"}));
    town.act(&b_id, json!({"action": "resolve", "public_reply": "街道已协调解决"}));
    wait_case(&fresh, &village, &b_id, "B resolved, back at the new node", |v| v["status"]["code"] == "resolved");
    village.act(&b_id, json!({"action": "feedback", "note": "已电话告知", "invite_rating": false}));
    // Its case numbers go on from the old serials.
    let e = village.file_case(&sample_case("新机器受理的第一件"));
    let serial = |n: &str| n.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    let max_old = numbers.iter().map(|n| serial(n)).max().unwrap();
    assert_eq!(serial(&number(&e)), max_old + 1, "{} after {numbers:?}", number(&e));

    // Above: each number names one case; the steps arrived.
    let city = h.city.login("operator", OPERATOR_PASSWORD);
    wait_case(&h.city, &city, e["id"].as_str().unwrap(), "the new case at the city", |_| true);
    for (n, id) in [(number(&e), e["id"].as_str().unwrap().to_string()), (a_number.clone(), a_id.clone())] {
        let (status, v) = city.get(&format!("/api/cases/{n}"));
        assert_eq!((status, v["id"].as_str()), (200, Some(id.as_str())), "{n}");
    }
    wait_case(&h.township, &town, &c_id, "the new node's sign-for at the township", |v| v["status"]["code"] == "accepted");
    wait_case(&h.township, &town, &b_id, "the new node's 反馈 at the township", |v| v["status"]["code"] == "fed_back");
    // The old report stays listed (the new key's own reports come beside it).
    let (status, v) = fresh.login("admin", ADMIN_PASSWORD).post("/api/reports", &json!({"period": last_month}));
    assert!(status == 201 || v["error"]["code"] == "conflict", "the new key signs the division's report: {status} {v}");
    wait_for("two reports of the village at the township", 30, || {
        let (_, r) = town_admin.get(&format!("/api/reports?scope={VILLAGE}&period={last_month}"));
        r["reports"].as_array().unwrap().iter().any(|x| x["unit"] == VILLAGE && !x["superseded"].as_array().unwrap().is_empty()).then_some(())
    });
    let (_, r) = town_admin.get(&format!("/api/reports?scope={VILLAGE}&period={last_month}"));
    let listed: Vec<String> = r["reports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|x| std::iter::once(x["record"].as_str().unwrap().to_string()).chain(x["superseded"].as_array().unwrap().iter().map(|s| s["record"].as_str().unwrap().to_string())))
        .collect();
    assert!(listed.contains(&old_report), "{r}");
    // The citizen's receipt and query code of an old case.
    for node in [&fresh, &h.township, &h.city] {
        let anon = Api::new(&node.url(), None);
        let (status, v) = anon.get(&format!("/api/public/cases/{a_number}?code={code}"));
        assert_eq!(status, 200, "{}: {v}", node.url());
        let (status, v) = anon.get(&format!("/api/public/receipts/verify?token={token}"));
        assert_eq!(status, 200, "{}: {v}", node.url());
    }
    // No alarm anywhere; the township lists the division once.
    for node in [&h.city, &h.county, &h.township, &fresh] {
        let admin = node.login("admin", ADMIN_PASSWORD);
        let (_, sync) = admin.get("/api/sync");
        assert!(sync["alarms"].as_array().unwrap().is_empty(), "{}: {}", node.url(), sync["alarms"]);
    }
    let (_, sync) = town_admin.get("/api/sync");
    assert_eq!(sync["peers"].as_array().unwrap().iter().filter(|p| p["division"] == VILLAGE).count(), 1, "{sync}");
    let metrics = reqwest::blocking::get(format!("{}/metrics", h.township.url())).unwrap().text().unwrap();
    let connected: Vec<&str> = metrics.lines().filter(|l| l.starts_with("zongzhi_peer_connected{") && l.contains(VILLAGE)).collect();
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert!(connected[0].ends_with(" 1"), "{connected:?}");
    let _ = TOWNSHIP;
}
