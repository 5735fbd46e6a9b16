//! Federation: enrollment, trust, and (as it grows) replication between real nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use zongzhi_tests::{TestNode, ADMIN_PASSWORD};

#[test]
fn enrollment_chain_and_revocation() {
    let mut city = TestNode::init("330100000000", "示例市社会治安综合治理中心");
    city.start();
    let root = city.node_id();
    let root_line = format!("root_key = \"{root}\"\n");
    let mut county = TestNode::init_with("330106000000", "示例区社会治安综合治理中心", &root_line);
    let township = TestNode::init_with("330106010000", "示例街道社会治安综合治理中心", &root_line);
    let stranger = TestNode::init_with("330107010000", "外区街道", &root_line);

    // The township is not the city's child: the city refuses.
    let admin = city.login("admin", ADMIN_PASSWORD);
    let (status, v) = admin.post("/api/certs/issue", &json!({"request": township.enrollment_request()}));
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("not_my_child")), "{v}");
    // A forged request (one changed hex digit) is refused.
    let mut lines: Vec<String> = county.enrollment_request().lines().map(String::from).collect();
    let c = if lines[1].starts_with('0') { "1" } else { "0" };
    lines[1].replace_range(0..1, c);
    let (status, _) = admin.post("/api/certs/issue", &json!({"request": lines.join("\n")}));
    assert_eq!(status, 400);

    county.enroll_under(&city);
    county.start();
    // The county can now enroll its township, whose chain has three links.
    township.enroll_under(&county);
    let (_, certs) = county.login("admin", ADMIN_PASSWORD).get("/api/certs");
    let divisions: Vec<&str> = certs["certs"].as_array().unwrap().iter().map(|c| c["division"].as_str().unwrap()).collect();
    assert_eq!(divisions, vec!["330100000000", "330106000000", "330106010000"]);
    // A chain for another division does not import.
    let chain = std::fs::read_to_string(township.dir.path().join("chain.txt")).unwrap();
    let path = stranger.dir.path().join("chain.txt");
    std::fs::write(&path, chain).unwrap();
    let out = stranger.node_cmd(&["import-cert", "--file", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not this node's key"), "{}", String::from_utf8_lossy(&out.stderr));

    // The county revokes the township's key; the township cannot revoke the county.
    let township_key = township.node_id();
    let cadmin = county.login("admin", ADMIN_PASSWORD);
    let (status, v) = cadmin.post("/api/certs/revoke", &json!({"key": township_key, "cutoff_seq": 0, "reason": "设备丢失"}));
    assert_eq!(status, 201, "{v}");
    let (_, certs) = cadmin.get("/api/certs");
    let t = certs["certs"].as_array().unwrap().iter().find(|c| c["division"] == "330106010000").unwrap();
    assert_eq!(t["revoked"]["reason"], "设备丢失");
    let (status, _) = cadmin.post("/api/certs/revoke", &json!({"key": root, "cutoff_seq": 0, "reason": "x"}));
    assert_eq!(status, 400, "a county cannot revoke the city");
    county.stop();
    city.stop();
}
