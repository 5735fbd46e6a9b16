//! What the sync status says waits, on real nodes: records waiting for an
//! offline child are counted (a dispatch to it and the case's history),
//! and fall to 0 once it is back; an idle, caught-up link shows nothing
//! waiting either way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Hierarchy, OPERATOR_PASSWORD, sample_case, wait_case, wait_for};

fn row(node: &zongzhi_tests::TestNode, division: &str) -> Option<Value> {
    let (_, v) = node.login("admin", ADMIN_PASSWORD).get("/api/sync");
    v["peers"].as_array().unwrap().iter().find(|p| p["division"] == division).cloned()
}

#[test]
fn waiting_counts_follow_an_offline_child() {
    let mut h = Hierarchy::start(1);
    let village = "330106010001";
    // Caught up and idle: nothing waits either way.
    wait_for("an idle link with nothing waiting", 20, || {
        let r = row(&h.township, village)?;
        (r["connected"] == true && r["waiting_to_peer"] == 0 && r["behind_from_peer"] == 0).then_some(())
    });
    wait_for("the village's parent row idle", 20, || {
        let r = row(&h.villages[0], "330106010000")?;
        (r["waiting_to_peer"] == 0 && r["behind_from_peer"] == 0).then_some(())
    });

    // The village goes offline; the township dispatches a case to it.
    h.villages[0].kill9();
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let id = town.file_case(&sample_case("需村里处置"))["id"].as_str().unwrap().to_string();
    town.act(&id, json!({"action": "sign_for"}));
    town.act(&id, json!({"action": "dispatch", "to": village, "requirements": "属地处置"}));
    let r = wait_for("the waiting records counted for the offline village", 20, || {
        let r = row(&h.township, village)?;
        (r["connected"] == false && r["waiting_to_peer"].as_u64() >= Some(3)).then_some(r)
    });
    assert!(r["last_contact"].is_string(), "{r}");

    // Back online: it gets them and nothing waits.
    h.villages[0].start();
    let v = h.villages[0].login("operator", OPERATOR_PASSWORD);
    wait_case(&h.villages[0], &v, &id, "the dispatched case at the village", |c| c["owner"]["code"] == village || c["owner"] == village);
    wait_for("nothing waiting once the village caught up", 20, || {
        let r = row(&h.township, village)?;
        (r["connected"] == true && r["waiting_to_peer"] == 0).then_some(())
    });
}
