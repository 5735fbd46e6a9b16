//! A live tree moves from the previous release to this one in place
//! (UPGRADES.md §6.5), with real binaries: the previous release's
//! `zongzhi-node` is built from its commit in `releases.toml` by
//! `.ci/prev-release.sh` (the same target directory, so RocksDB is not
//! compiled again) and cached under its commit.
//!
//! A four-level tree (city, county, township, two villages) starts on the
//! previous release while a client files cases at a village. The binaries
//! are replaced top-down, each node killed with SIGKILL under that load; one
//! village is offline across its township's upgrade. Mixed links speak the
//! old protocol; upgraded pairs the new one. The city cannot finalize while
//! a center has not reported reading format 4 (and cannot override a
//! center that never reported on protocol 3: the previous release refuses
//! what it cannot read). Once every center runs this release the city
//! finalizes; new steps are signed in format 4; a 督办 asks the village
//! for a reply, which reaches the township and the city. Every step a node
//! acknowledged is at every node that holds its case, and no node raised
//! an integrity alarm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, sample_case, wait_for};

/// The previous release's `zongzhi-node`: `ZONGZHI_PREV_NODE`, else the
/// cache `.ci/prev-release.sh` fills (`deploy/test.sh` runs it first).
fn previous_release() -> PathBuf {
    if let Some(p) = std::env::var_os("ZONGZHI_PREV_NODE") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let releases = std::fs::read_to_string(root.join("releases.toml")).unwrap();
    let commits: Vec<&str> = releases.lines().filter_map(|l| l.trim().strip_prefix("commit = \"")).map(|c| c.trim_end_matches('"')).collect();
    let commit = commits[commits.len() - 2];
    let cache = std::env::var_os("ZONGZHI_PREV_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/zongzhi-prev"));
    let path = cache.join(commit).join("zongzhi-node");
    assert!(path.exists(), "the previous release's zongzhi-node is not built: run `deploy/test.sh` (or `.ci/prev-release.sh`, which builds commit {commit} once) or set ZONGZHI_PREV_NODE");
    path
}

fn health(node: &TestNode) -> Value {
    Api::new(&node.url(), None).get("/api/health").1
}

/// Upgrades a running node in place: SIGKILL, this build's binary, start.
fn upgrade(node: &mut TestNode) {
    node.kill9();
    node.use_binary(None);
    node.start();
    assert_eq!(health(node)["version"], "0.2.0");
}

/// The protocol of the link with `division` as `node` sees it.
fn link_protocol(api: &Api, division: &str) -> Option<u64> {
    let (_, s) = api.get("/api/sync");
    s["peers"].as_array()?.iter().find(|p| p["division"] == division && p["connected"] == json!(true))?["protocol"].as_u64()
}

#[test]
fn a_live_tree_is_upgraded_in_place_from_the_previous_release() {
    let prev = previous_release();
    let mut h = Hierarchy::start_on(Some(prev.clone()), 2, "");
    assert_eq!(health(&h.city)["version"], "0.1.0", "the tree starts on the previous release");
    let (v1, v2) = ("330106010001", "330106010002");

    // Before any upgrade: a case escalated from the first village.
    let village1 = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let early = village1.file_case(&sample_case("升级前的案件"))["id"].as_str().unwrap().to_string();
    village1.act(&early, json!({"action": "sign_for"}));
    village1.act(&early, json!({"action": "escalate", "reason": "需街道协调"}));

    // Load: a client files cases at the second village the whole time;
    // what the village acknowledged (201) is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let load = {
        let (stop, acked) = (stop.clone(), acked.clone());
        let url = h.villages[1].url();
        let token = h.villages[1].login("operator", OPERATOR_PASSWORD).token;
        std::thread::spawn(move || {
            let api = Api::new(&url, token);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Some((201, v)) = api.try_post("/api/cases", &sample_case(&format!("负载案件{n}"))) {
                    acked.lock().unwrap().push(v["id"].as_str().unwrap().to_string());
                }
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    wait_for("filings under load", 30, || (acked_count() >= 5).then_some(()));

    // The city first: it speaks the old protocol to the old county.
    upgrade(&mut h.city);
    let city = h.city.login("admin", ADMIN_PASSWORD);
    wait_for("the old county linked to the new city on protocol 2", 30, || (link_protocol(&city, "330106000000") == Some(2)).then_some(()));
    assert_eq!(health(&h.city)["upgrade"]["write_format"], 3, "nothing is signed in format 4 before the city finalizes");
    let (status, refused) = city.post("/api/policy/finalize", &json!({"format": 4}));
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "laggards");

    // The county, killed under load; its link to the city now speaks 3.
    let before = acked_count();
    upgrade(&mut h.county);
    wait_for("the county on protocol 3", 30, || (link_protocol(&city, "330106000000") == Some(3)).then_some(()));
    wait_for("the county's report at the city", 30, || {
        let (_, f) = city.get("/api/fleet");
        f["centers"].as_array().unwrap().iter().any(|c| c["division"] == "330106000000" && c["report"]["release"] == "0.2.0").then_some(())
    });

    // The first village goes offline; its township is upgraded meanwhile.
    h.villages[0].stop();
    upgrade(&mut h.township);
    upgrade(&mut h.villages[1]);
    wait_for("filings go on after the second village's upgrade", 30, || (acked_count() > before + 5).then_some(()));

    // The offline village still runs the previous release: no finalizing,
    // and no override either (it never reported on protocol 3).
    wait_for("the upgraded centers' reports at the city", 30, || {
        let (status, refused) = city.post("/api/policy/finalize", &json!({"format": 4}));
        assert_eq!(status, 409, "{refused}");
        let laggards: Vec<String> = refused["error"]["details"]["laggards"].as_array().unwrap().iter().map(|l| l["division"].as_str().unwrap().to_string()).collect();
        (laggards == [v1]).then_some(())
    });
    let (status, refused) = city.post("/api/policy/finalize", &json!({"format": 4, "override": [v1], "reason": "村站离线"}));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("override_refused")), "{refused}");

    // Back, upgraded: it catches up both ways.
    h.villages[0].use_binary(None);
    h.villages[0].start();
    wait_for("every center reports reading format 4", 60, || {
        let (_, f) = city.get("/api/fleet");
        (f["finalize"]["ready"] == json!(true)).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    // Finalize; the gate reaches the villages with the policy.
    let (status, done) = city.post("/api/policy/finalize", &json!({"format": 4}));
    assert_eq!(status, 201, "{done}");
    for node in h.all() {
        wait_for("the finalized gate at every node", 30, || (health(node)["upgrade"]["write_format"] == 4).then_some(()));
    }

    // A format-4 step end to end: the township's 督办 asks the village for
    // a reply; the reply reaches the township and the city.
    let case = village1.file_case(&sample_case("升级后的案件"))["id"].as_str().unwrap().to_string();
    let filed = village1.case(&case);
    assert_eq!(filed["timeline"][0]["format"], 4, "signed in the finalized format");
    let township = h.township.login("admin", ADMIN_PASSWORD);
    let town_view = zongzhi_tests::wait_case(&h.township, &township, &case, "the new case at the township", |_| true);
    assert_eq!(town_view["number"], filed["number"]);
    township.act(&case, json!({"action": "supervise", "grade": "normal", "note": "请尽快办理并回复"}));
    let notice = zongzhi_tests::wait_case(&h.villages[0], &village1, &case, "the 督办 at the village", |v| !v["notices"].as_array().unwrap().is_empty());
    assert!(notice["notices"][0]["reply_due_at"].is_string(), "{notice}");
    assert!(notice["allowed_actions"].as_array().unwrap().iter().any(|a| a == "reply_supervision"));
    village1.act(&case, json!({"action": "reply_supervision", "measures": "已约谈双方，三日内整改"}));
    for (node, api) in [(&h.township, &township), (&h.city, &city)] {
        zongzhi_tests::wait_case(node, api, &case, "the reply above", |v| v["notices"][0]["measures"] == "已约谈双方，三日内整改");
    }

    // Every acknowledged step is at every node that holds its case.
    let county = h.county.login("admin", ADMIN_PASSWORD);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "{} filings under load", acked.len());
    for id in acked.iter().chain([&early]) {
        for (node, api) in [(&h.township, &township), (&h.county, &county), (&h.city, &city)] {
            zongzhi_tests::wait_case(node, api, id, "an acknowledged filing above", |_| true);
        }
    }
    let escalated = zongzhi_tests::wait_case(&h.township, &township, &early, "the early escalation", |v| v["owner"] == "330106010000");
    assert_eq!(escalated["timeline"][0]["format"], 3, "a record signed before the upgrade keeps its format");
    // No node raised an integrity alarm.
    for node in h.all() {
        let admin = node.login("admin", ADMIN_PASSWORD);
        let (_, sync) = admin.get("/api/sync");
        assert!(sync["alarms"].as_array().unwrap().is_empty(), "{}: {}", node.url(), sync["alarms"]);
        let (_, integrity) = admin.get("/api/integrity");
        assert_eq!(integrity["ok"], true, "{}: {integrity}", node.url());
    }
    let _ = v2;
}
