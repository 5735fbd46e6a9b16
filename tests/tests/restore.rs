//! Backup and restore through the commands an operator runs, on real
//! nodes: a township is backed up while it runs, works on, loses its data
//! and is restored. Before it signs anything it gets back from its county
//! the records it signed after the backup (and from its village those the
//! village filed meanwhile); then new steps continue its chain, case
//! numbers continue, and no node raises an alarm. A restored node that no
//! peer can confirm stays read-only until an admin overrides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use serde_json::{Value, json};
use zongzhi_node::store::Store;
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, free_port, sample_case, wait_case, wait_for};

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn own_head(node: &TestNode) -> (u64, String) {
    let store = Store::open(&node.db_path()).unwrap();
    let key = zongzhi_protocol::NodeId::from_hex(&node.node_id()).unwrap();
    let (seq, id) = store.chain_last(&key).unwrap().unwrap();
    (seq, id.to_string())
}

fn numbers(api: &Api) -> Vec<String> {
    let (status, v) = api.get("/api/cases?limit=500");
    assert_eq!(status, 200, "{v}");
    let mut n: Vec<String> = v["cases"].as_array().unwrap().iter().map(|c| c["number"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

fn alarms(node: &TestNode) -> Vec<Value> {
    let (_, v) = node.login("admin", ADMIN_PASSWORD).get("/api/sync");
    v["alarms"].as_array().unwrap().clone()
}

#[test]
fn a_restored_township_gets_its_chain_back_before_it_signs() {
    let mut h = Hierarchy::start(1);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let county = h.county.login("operator", OPERATOR_PASSWORD);
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let a = town.file_case(&sample_case("备份前登记"))["id"].as_str().unwrap().to_string();
    village.file_case(&sample_case("村里备份前登记"));

    // Online backup of the running township (the command signs its request
    // with the node key); the key stays out of it.
    let backup = h.township.dir.path().join("backup-1");
    let out = ok(h.township.node_cmd(&["backup", "--out", backup.to_str().unwrap()]).output().unwrap());
    assert!(out.contains("written to") && out.contains("not in this backup"), "{out}");
    assert!(backup.join("manifest.json").exists() && !backup.join("node.key").exists());

    // Work after the backup: the township signs a step and a filing, the
    // village files; all of it reaches the county.
    town.act(&a, json!({"action": "sign_for"}));
    let b = town.file_case(&sample_case("备份后登记"));
    let b_id = b["id"].as_str().unwrap().to_string();
    let v2 = village.file_case(&sample_case("村里备份后登记"))["id"].as_str().unwrap().to_string();
    wait_case(&h.county, &county, &b_id, "the county holds the township's later filing", |_| true);
    wait_case(&h.county, &county, &a, "the county holds the township's later step", |c| c["status"]["code"] != "awaiting_receipt");
    wait_case(&h.township, &town, &v2, "the township holds the village's later filing", |_| true);
    let before = numbers(&town);

    // The township's disk dies.
    h.township.kill9();
    let head_before = own_head(&h.township);
    std::fs::remove_dir_all(h.township.db_path()).unwrap();

    let out = ok(h.township.node_cmd(&["restore", "--from", backup.to_str().unwrap()]).output().unwrap());
    assert!(out.contains("signs nothing"), "{out}");
    h.township.start();
    let admin = h.township.login("admin", ADMIN_PASSWORD);
    let health = wait_for("the county to confirm the restore", 30, || {
        let (_, v) = admin.get("/api/health");
        (v["recovery"]["restoring"] == false && v["recovery"]["confirmed_by"].is_string()).then_some(v)
    });
    assert_eq!(health["recovery"]["confirmed_by"], "330106000000", "{health}");
    assert_eq!(health["recovery"]["forced"], false);
    // The village that may have held later records was heard from too.
    assert!(health["recovery"]["heard_from"].as_array().unwrap().contains(&json!("330106010001")), "{health}");

    // Everything is back, nothing twice.
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    wait_for("the village's later filing back at the township", 20, || (numbers(&town) == before).then_some(()));
    assert_eq!(town.case(&a)["status"]["code"], "accepted", "the step signed after the backup is back");
    // New steps continue the chain and the case numbers.
    let c = town.file_case(&sample_case("恢复后登记"));
    assert!(c["number"].as_str().unwrap().ends_with("-000003"), "the numbers continue after the two filed before the loss: {}", c["number"]);
    town.act(&b_id, json!({"action": "sign_for"}));
    let c_id = c["id"].as_str().unwrap().to_string();
    wait_case(&h.county, &county, &c_id, "the county takes the new filing", |_| true);
    wait_case(&h.county, &county, &b_id, "the county takes the new step", |c| c["status"]["code"] == "accepted");
    for node in h.all() {
        assert!(alarms(node).is_empty(), "alarms at {}: {:?}", node.url(), alarms(node));
    }
    h.township.stop();
    let (seq, _) = own_head(&h.township);
    assert_eq!(seq, head_before.0 + 2, "the chain went on from where it was ({head_before:?}), not from the backup");
}

#[test]
fn a_restore_no_peer_confirms_stays_read_only_until_an_admin_overrides() {
    // A township, enrolled, whose county is not reachable.
    let h = Hierarchy::start(0);
    let mut node = TestNode::init_with("330106001000", "留下街道综治中心", &format!("root_key = \"{}\"\nparent = \"127.0.0.1:{}\"\n", h.city.node_id(), free_port()));
    node.enroll_under(&h.county);
    drop(h);
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    op.file_case(&sample_case("备份前"));
    node.stop();
    // Offline backup (the node stopped), with the key this time.
    let backup = node.dir.path().join("backup-2");
    ok(node.node_cmd(&["backup", "--out", backup.to_str().unwrap(), "--with-key"]).output().unwrap());
    let key_mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(backup.join("node.key")).unwrap().permissions());
    assert_eq!(key_mode & 0o777, 0o600);
    node.start();
    op.file_case(&sample_case("备份后，无人知晓"));
    node.kill9();

    // Restoring over a store needs --force, and keeps the old one aside.
    let refused = node.node_cmd(&["restore", "--from", backup.to_str().unwrap()]).output().unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--force"));
    // The key comes from the backup when the data directory lost it.
    std::fs::remove_file(node.dir.path().join("data/node.key")).unwrap();
    ok(node.node_cmd(&["restore", "--from", backup.to_str().unwrap(), "--force"]).output().unwrap());
    assert!(std::fs::read_dir(node.dir.path().join("data")).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("db.replaced-")));
    node.start();

    let op = node.login("operator", OPERATOR_PASSWORD);
    let (_, health) = op.get("/api/health");
    assert_eq!((health["status"].as_str(), health["recovery"]["restoring"].as_bool()), (Some("degraded"), Some(true)), "{health}");
    // Read-only: reads work, every signing step is refused, changing nothing.
    assert_eq!(numbers(&op).len(), 1);
    let (status, v) = op.post("/api/cases", &sample_case("恢复中登记"));
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("restoring")), "{v}");
    assert_eq!(numbers(&op).len(), 1);
    // The readiness probe says so (503 `restoring`); liveness stays 200.
    let probe = |which: &str| {
        let r = reqwest::blocking::get(format!("{}/api/health/{which}", node.url())).unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (status, ready) = probe("ready");
    assert_eq!((status, ready["reasons"][0]["code"].as_str()), (503, Some("restoring")), "{ready}");
    assert_eq!(probe("live").0, 200);
    // … and so does the CLI's probe (the image's health check), by exit code.
    let cli = std::process::Command::new(zongzhi_tests::bin("zongzhi")).args(["--node", &node.url(), "ready"]).output().unwrap();
    assert!(!cli.status.success() && String::from_utf8_lossy(&cli.stderr).contains("restoring"), "{cli:?}");

    // Only an admin overrides, with a reason.
    let (status, _) = op.post("/api/admin/recovery", &json!({"reason": "区级中心故障"}));
    assert_eq!(status, 403);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let (status, v) = admin.post("/api/admin/recovery", &json!({"reason": "  "}));
    assert_eq!(status, 400, "{v}");
    // The override names every center waited for (here the county).
    assert_eq!(health["recovery"]["waiting_for"], json!(["330106000000"]), "{health}");
    let (status, v) = admin.post("/api/admin/recovery", &json!({"reason": "区级中心故障"}));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("name_every_center")), "{v}");
    let (status, v) = admin.post("/api/admin/recovery", &json!({"reason": "区级中心故障", "without": ["330106000000", "330106001001"]}));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("not_waited_for")), "{v}");
    assert_eq!(op.get("/api/health").1["recovery"]["restoring"], true, "a refused override changes nothing");
    // The console tells everyone, and gives the admin the override.
    let mut b = Browser::launch();
    b.login(&node.url(), "admin", ADMIN_PASSWORD);
    let banner = b.wait("the restoring banner", 15, "document.querySelector('[data-test=restoring]')?.innerText");
    assert!(banner.as_str().unwrap().contains("已由备份恢复"), "{banner}");
    b.goto(&format!("{}/#/sync", node.url()));
    b.wait("the override form", 15, "document.querySelector('#override-form')");
    b.fill("#override-form input[name=reason]", "区级中心故障，经主任批准");
    b.click("#override-form input[name=without][value='330106000000']");
    b.click("#override-form button[type=submit]");
    b.wait("the banner gone after the override", 15, "document.querySelector('#storage-banner').hidden");
    b.screenshot("restore-override");
    let (_, health) = op.get("/api/health");
    assert_eq!(health["recovery"]["restoring"], false, "{health}");
    assert!(health["recovery"]["confirmed_by"].as_str().unwrap().contains("区级中心故障"));
    let (status, ready) = probe("ready");
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    op.file_case(&sample_case("确认后登记"));
    let (status, _) = admin.post("/api/admin/recovery", &json!({"reason": "again"}));
    assert_eq!(status, 409);

    // The console's admin may also back up, into backup_dir, without the key.
    b.goto(&format!("{}/#/sync", node.url()));
    b.click("[data-test=backup-now]");
    let done = b.wait("the backup written", 20, "(t => t.includes('备份已写入') && t)(document.querySelector('[data-test=backup-result]')?.innerText || '')");
    assert!(done.as_str().unwrap().contains("/backups/zongzhi-330106001000-"), "{done}");
    let (status, v) = admin.post("/api/admin/backup", &json!({}));
    assert_eq!(status, 201, "{v}");
    assert!(v["dir"].as_str().unwrap().contains("/backups/zongzhi-330106001000-"));
    let (status, _) = admin.post("/api/admin/backup", &json!({"with_key": true}));
    assert_eq!(status, 403);
    let (status, _) = op.post("/api/admin/backup", &json!({}));
    assert_eq!(status, 403);
}

/// A township signed steps after its backup that reached only its village
/// (the county was down), then lost its disk while the village was
/// offline. The county coming back does not confirm the restore: the
/// village may hold later records, so the township waits for it (or for an
/// admin who names it). When the village returns it brings the records
/// back; they restore the chain, and the township's next steps follow
/// them: no equivocation, no lost case, at any level.
#[test]
fn a_restore_waits_for_the_child_that_may_hold_later_records() {
    let mut h = Hierarchy::start(1);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    town.file_case(&sample_case("备份前登记"));
    let backup = h.township.dir.path().join("backup-3");
    ok(h.township.node_cmd(&["backup", "--out", backup.to_str().unwrap()]).output().unwrap());

    // After the backup, with the county down: a case filed and dispatched
    // to the village reaches only the village.
    h.county.stop();
    let d = town.file_case(&sample_case("备份后交办到村"))["id"].as_str().unwrap().to_string();
    town.act(&d, json!({"action": "sign_for"}));
    town.act(&d, json!({"action": "dispatch", "to": "330106010001", "requirements": "属地处置"}));
    wait_case(&h.villages[0], &village, &d, "the dispatch at the village", |c| c["owner"] == "330106010001");
    let before = numbers(&town);
    h.villages[0].stop();

    // The township's disk dies; it is restored while the village is away.
    h.township.kill9();
    let head_before = own_head(&h.township);
    std::fs::remove_dir_all(h.township.db_path()).unwrap();
    ok(h.township.node_cmd(&["restore", "--from", backup.to_str().unwrap()]).output().unwrap());
    h.township.start();
    h.county.start();
    let admin = h.township.login("admin", ADMIN_PASSWORD);
    let health = wait_for("the county heard from", 60, || {
        let (_, v) = admin.get("/api/health");
        (v["recovery"]["heard_from"] == json!(["330106000000"])).then_some(v)
    });
    assert_eq!(health["recovery"]["restoring"], true, "the county alone does not confirm: {health}");
    assert_eq!(health["recovery"]["waiting_for"], json!(["330106010001"]), "{health}");
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let (status, v) = town.post("/api/cases", &sample_case("恢复中登记"));
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("restoring")), "{v}");
    // An override must name the village.
    let (status, v) = admin.post("/api/admin/recovery", &json!({"reason": "村里长期离线"}));
    assert_eq!((status, v["error"]["code"].as_str(), v["error"]["details"]["waiting_for"].clone()), (422, Some("name_every_center"), json!(["330106010001"])), "{v}");

    // The village comes back with the township's later records.
    h.villages[0].start();
    let health = wait_for("the village to confirm the restore", 60, || {
        let (_, v) = admin.get("/api/health");
        (v["recovery"]["restoring"] == false).then_some(v)
    });
    assert_eq!(health["recovery"]["forced"], false, "{health}");
    assert_eq!(numbers(&town), before, "the dispatched case is back at the township");
    assert_eq!(town.case(&d)["owner"], "330106010001");
    let c = town.file_case(&sample_case("恢复后登记"));
    assert!(c["number"].as_str().unwrap().ends_with("-000003"), "the numbers continue: {}", c["number"]);
    let c_id = c["id"].as_str().unwrap().to_string();
    let county = h.county.login("operator", OPERATOR_PASSWORD);
    wait_case(&h.county, &county, &d, "the county gets the dispatch", |c| c["owner"] == "330106010001");
    wait_case(&h.county, &county, &c_id, "the county gets the new filing", |_| true);
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    village.act(&d, json!({"action": "sign_for"}));
    wait_case(&h.county, &county, &d, "the village's step at the county", |c| c["status"]["code"] == "accepted");
    for node in h.all() {
        assert!(alarms(node).is_empty(), "alarms at {}: {:?}", node.url(), alarms(node));
    }
    h.township.stop();
    let (seq, _) = own_head(&h.township);
    assert_eq!(seq, head_before.0 + 1, "the chain went on from the village's copy ({head_before:?})");
}
