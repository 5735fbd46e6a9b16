//! 协办 across levels over QUIC, on a live tree of real nodes (city,
//! county, township, two villages): the township asks both villages and its
//! 司法所 window for help, each with its deadline; each helper finds the
//! request in its queue and replies; the owner sees the replies and what is
//! late; a late village is chased by the township's supervision worker
//! (协办督办); the county and the city hold the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, OPERATOR_PASSWORD, TestNode, sample_case, wait_case, wait_for};

fn assist<'a>(case: &'a Value, helper: &str) -> &'a Value {
    case["decisions"]["assists"].as_array().unwrap().iter().find(|a| a["helper"]["unit"] == helper || a["helper"]["window"] == helper).unwrap_or_else(|| panic!("no 协办 of {helper}: {case}"))
}

fn queue(api: &Api, q: &str) -> Vec<String> {
    let (status, v) = api.get(&format!("/api/cases?{q}"));
    assert_eq!(status, 200, "{v}");
    v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

/// Restarts `node` with its clock standing `secs` later.
fn restart_shifted(node: &mut TestNode, secs: i64) {
    node.stop();
    let config = std::fs::read_to_string(&node.config).unwrap();
    std::fs::write(&node.config, format!("clock_offset_secs = {secs}\n{config}")).unwrap();
    node.start();
}

#[test]
fn assistance_across_levels_over_quic() {
    let mut h = Hierarchy::start(2);
    let city = h.city.login("admin", ADMIN_PASSWORD);
    wait_for("every center reported", 60, || (city.get("/api/fleet").1["finalize"]["ready"] == json!(true)).then_some(()));
    let (status, v) = city.post("/api/policy/finalize", &json!({"format": 4}));
    assert_eq!(status, 201, "{v}");
    let (v1_code, v2_code) = ("330106010001", "330106010002");
    for n in h.all() {
        let api = n.login("operator", OPERATOR_PASSWORD);
        wait_for("the gate at every center", 30, || (api.get("/api/health").1["upgrade"]["write_format"] == 4).then_some(()));
    }
    let town_admin = h.township.login("admin", ADMIN_PASSWORD);
    let (status, v) = town_admin.post("/api/users", &json!({"username": "sfs", "password": "window-pass-1", "role": "window", "windows": ["justice"]}));
    assert_eq!(status, 201, "{v}");
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let id = town.file_case(&sample_case("土地承包经营纠纷"))["id"].as_str().unwrap().to_string();
    town.act(&id, json!({"action": "sign_for"}));
    // A helper must be a center below or a window of the township.
    let (status, v) = town.post(&format!("/api/cases/{id}/actions"), &json!({"action": "request_assistance", "helpers": [{"unit": "330106000000"}], "requirements": "x"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("helper-below-owner")), "{v}");
    let v = town.act(
        &id,
        json!({"action": "request_assistance", "requirements": "请核实承包地边界并提出意见",
               "helpers": [{"unit": v1_code, "working_days": 1}, {"unit": v2_code, "working_days": 1}, {"window": "justice", "working_days": 2}]}),
    );
    for helper in [v1_code, v2_code, "justice"] {
        let a = assist(&v, helper);
        assert!(a["due_at"].is_string() && a["pending"] == true, "{a}");
    }

    // Each village finds it in its 待协办 tab and the first replies.
    let v1 = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let v2 = h.villages[1].login("operator", OPERATOR_PASSWORD);
    wait_case(&h.villages[0], &v1, &id, "the request at village 1", |_| true);
    wait_case(&h.villages[1], &v2, &id, "the request at village 2", |_| true);
    assert_eq!(queue(&v1, "clock=assistance"), vec![id.clone()]);
    assert_eq!(queue(&v2, "clock=assistance"), vec![id.clone()]);
    let (status, v) = v1.post(&format!("/api/cases/{id}/actions"), &json!({"action": "resolve", "public_reply": "x"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("only-owner")), "a helper does not take over: {v}");
    let v = v1.act(&id, json!({"action": "reply_assistance", "reply": "村委会已实地核实，边界以1998年承包合同为准"}));
    assert!(assist(&v, v1_code)["replied_at"].is_string());
    assert!(queue(&v1, "clock=assistance").is_empty());
    // The 司法所 window answers at the township, with its account.
    let sfs = h.township.login("sfs", "window-pass-1");
    assert_eq!(queue(&sfs, "clock=assistance"), vec![id.clone()]);
    sfs.act(&id, json!({"action": "reply_assistance", "reply": "司法所建议组织双方调解"}));
    let v = wait_case(&h.township, &town, &id, "village 1's reply at the township", |v| assist(v, v1_code)["replied_at"].is_string());
    assert_eq!(assist(&v, "justice")["reply"], "司法所建议组织双方调解");
    assert_eq!(assist(&v, v2_code)["pending"], true);

    // Village 2 does not answer. Three days later the township's
    // supervision worker chases it (协办督办), and the notice reaches it.
    restart_shifted(&mut h.township, 3 * 86_400);
    let town = h.township.login("operator", OPERATOR_PASSWORD);
    let v = wait_case(&h.township, &town, &id, "the township's 协办督办", |v| assist(v, v2_code)["supervision"].is_object());
    let a = assist(&v, v2_code);
    assert_eq!((a["late"].as_bool(), a["pending"].as_bool()), (Some(true), Some(true)), "{a}");
    let chased = v["timeline"].as_array().unwrap().iter().find(|t| t["action"] == "supervise_assistance").unwrap().clone();
    assert_eq!((chased["unit"].as_str(), chased["details"]["helper"]["unit"].as_str()), (Some("330106010000"), Some(v2_code)), "{chased}");
    assert!(chased["details"]["note"].as_str().unwrap().contains("协办未按期回复"), "{chased}");
    wait_case(&h.villages[1], &v2, &id, "the 协办督办 at village 2", |v| assist(v, v2_code)["supervision"].is_object());
    // Its late reply is taken, and shown late.
    v2.act(&id, json!({"action": "reply_assistance", "reply": "迟复：已协调双方"}));
    let v = wait_case(&h.township, &town, &id, "village 2's late reply", |v| assist(v, v2_code)["replied_at"].is_string());
    assert_eq!(assist(&v, v2_code)["late"], true);

    // The county and the city hold the same.
    let at_town = v["decisions"]["assists"].clone();
    for n in [&h.county, &h.city] {
        let api = n.login("operator", OPERATOR_PASSWORD);
        let v = wait_case(n, &api, &id, "every reply above", |v| v["decisions"]["assists"].as_array().is_some_and(|a| a.iter().all(|x| x["replied_at"].is_string())));
        assert_eq!(v["decisions"]["assists"], at_town);
    }
    let county = h.county.login("operator", OPERATOR_PASSWORD);
    let stats = wait_for("the county's figures", 20, || {
        let v = county.get("/api/stats?scope=330106000000").1;
        (v["total"]["counts"]["assistance_replied"] == 3).then_some(v)
    });
    assert_eq!((stats["total"]["counts"]["assistance_requested"].as_i64(), stats["total"]["counts"]["assistance_replied_on_time"].as_i64()), (Some(3), Some(2)), "{stats}");
}
