//! Federation: enrollment, trust, and (as it grows) replication between real nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use zongzhi_tests::{ADMIN_PASSWORD, TestNode};

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
    assert!(certs["certs"].as_array().unwrap().iter().all(|c| c["division"] != "330106010000"), "a revoked certificate is hidden by default: {certs}");
    assert_eq!(certs["revoked_hidden"], 1);
    let (_, certs) = cadmin.get("/api/certs?revoked=include");
    let t = certs["certs"].as_array().unwrap().iter().find(|c| c["division"] == "330106010000").unwrap();
    assert_eq!(t["revoked"]["reason"], "设备丢失");
    let (status, v) = cadmin.post("/api/certs/revoke", &json!({"key": root, "cutoff_seq": 0, "reason": "x"}));
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("not_below")), "a county cannot revoke the city: {v}");
    county.stop();
    city.stop();
}

fn ops(h: &zongzhi_tests::Hierarchy) -> Vec<zongzhi_tests::Api> {
    h.all().iter().map(|n| n.login("operator", zongzhi_tests::OPERATOR_PASSWORD)).collect()
}

/// Escalation village → township → county → city and the decision back to
/// the village; dispatch city → village; identical state everywhere.
#[test]
fn escalation_and_dispatch_across_four_levels() {
    use zongzhi_tests::{Hierarchy, sample_case, wait_case};
    let h = Hierarchy::start(1);
    let apis = ops(&h);
    let (city, county, town, village) = (&apis[0], &apis[1], &apis[2], &apis[3]);

    // The village files a dispute it cannot resolve and escalates it.
    let c = village.file_case(&sample_case("宅基地边界纠纷"));
    let id = c["id"].as_str().unwrap().to_string();
    village.act(&id, serde_json::json!({"action": "sign_for"}));
    village.act(&id, serde_json::json!({"action": "escalate", "reason": "涉及两村，村里无法调处"}));
    let t0 = std::time::Instant::now();
    let v = wait_case(&h.township, town, &id, "the township to receive the escalation", |v| v["owner"] == "330106010000");
    eprintln!("escalation reached the township in {:?}", t0.elapsed());
    assert_eq!(v["status"]["code"], "awaiting_receipt");
    // Personal data travels with an escalated case.
    assert_eq!(v["contact"]["phone"], "13812341234");
    town.act(&id, serde_json::json!({"action": "sign_for"}));
    town.act(&id, serde_json::json!({"action": "escalate", "reason": "需区级协调"}));
    wait_case(&h.county, county, &id, "the county", |v| v["owner"] == "330106000000");
    county.act(&id, serde_json::json!({"action": "sign_for"}));
    county.act(&id, serde_json::json!({"action": "escalate", "reason": "需市级部门"}));
    wait_case(&h.city, city, &id, "the city", |v| v["owner"] == "330100000000");
    city.act(&id, serde_json::json!({"action": "sign_for"}));
    // Supervision from above reaches the owner… (the city is the owner now; the decision goes down.)
    city.act(&id, serde_json::json!({"action": "route", "window": "natural_resources"}));
    city.act(&id, serde_json::json!({"action": "resolve", "public_reply": "经市自然资源局确权，边界以1998年确权图为准"}));
    // Closing the loop has one authority, the filing village: the city that
    // resolved it may not give the feedback or rate its own work, so two
    // centers cannot both acknowledge it while the link is slow.
    let (status, v) = city.post(&format!("/api/cases/{id}/actions"), &serde_json::json!({"action": "feedback", "note": "市里直接告知"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("only-filing-center")), "{v}");
    // The decision comes back to the village, which gives feedback and records the rating.
    wait_case(&h.villages[0], village, &id, "the decision at the village", |v| v["status"]["code"] == "resolved");
    village.act(&id, serde_json::json!({"action": "feedback", "note": "已上门告知当事人"}));
    village.act(&id, serde_json::json!({"action": "rate", "rating": "satisfied"}));
    wait_case(&h.city, city, &id, "the rating at the city", |v| v["status"]["code"] == "rated");

    // Dispatch down: the city files a case and dispatches it to the village.
    let d = city.file_case(&sample_case("市长热线转办：噪音扰民"));
    let did = d["id"].as_str().unwrap().to_string();
    city.act(&did, serde_json::json!({"action": "sign_for"}));
    city.act(&did, serde_json::json!({"action": "dispatch", "to": "330106010001", "requirements": "属地处置"}));
    let v = wait_case(&h.villages[0], village, &did, "the dispatched case at the village", |v| v["owner"] == "330106010001");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 3, "whole history arrives with the dispatch");
    village.act(&did, serde_json::json!({"action": "sign_for"}));
    village.act(&did, serde_json::json!({"action": "resolve", "public_reply": "已协调施工时间"}));
    wait_case(&h.city, city, &did, "the village's resolution at the city", |v| v["status"]["code"] == "resolved");

    // Supervision from the county reaches the owning village.
    let s = village.file_case(&sample_case("久拖未决的纠纷"));
    let sid = s["id"].as_str().unwrap().to_string();
    village.act(&sid, serde_json::json!({"action": "sign_for"}));
    wait_case(&h.county, county, &sid, "the village's case at the county", |_| true);
    let cadmin = h.county.login("admin", zongzhi_tests::ADMIN_PASSWORD);
    cadmin.act(&sid, serde_json::json!({"action": "supervise", "grade": "red", "note": "请三日内办结"}));
    wait_case(&h.villages[0], village, &sid, "the supervision notice at the village", |v| v["supervision"]["grade"] == "red");

    // Every node that holds a case computes the same state.
    for case in [&id, &did] {
        let states: Vec<serde_json::Value> = apis
            .iter()
            .map(|a| {
                let v = wait_case(&h.city, a, case, "the final state everywhere", |v| v["timeline"].as_array().unwrap().len() == city.case(case)["timeline"].as_array().unwrap().len());
                serde_json::json!({"status": v["status"], "owner": v["owner"], "timeline": v["timeline"], "heads": v["heads"], "rating": v["rating"]})
            })
            .collect();
        for s in &states[1..] {
            assert_eq!(s, &states[0], "nodes disagree on case {case}");
        }
    }

    // Statistics: the county and the city count the county's subtree alike.
    let county_stats = |api: &zongzhi_tests::Api| {
        let (status, v) = api.get("/api/stats?scope=330106000000&by=unit");
        assert_eq!(status, 200, "{v}");
        json!([v["rows"], v["total"]])
    };
    let at_county = county_stats(county);
    assert_eq!(at_county, county_stats(city), "county and city disagree on the county's statistics");
    let total = &at_county[1]["counts"];
    assert_eq!((total["received"].as_i64(), total["resolved"].as_i64(), total["rated"].as_i64()), (Some(2), Some(1), Some(0)), "{at_county}");
    // The township sees its own subtree, not its county's.
    let (status, _) = town.get("/api/stats?scope=330106000000");
    assert_eq!(status, 403);
}

/// Waits until the parent acknowledges the batch sent on `link` (it stored
/// what it took, with the cursor): the parent's own word that it is done,
/// however busy the machine.
async fn acked(link: &mut zongzhi_node::net::testing::RawLink) {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            if let zongzhi_protocol::sync::Frame::Ack { .. } = link.next_frame().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("the parent acknowledged the batch");
}

/// Bad input over a live, authenticated link: refused, nothing stored, and
/// the parent keeps serving its other children.
#[test]
fn bad_input_over_quic_is_refused_and_changes_nothing() {
    use zongzhi_node::net::testing::RawLink;
    use zongzhi_protocol::NodeKey;
    use zongzhi_tests::{Hierarchy, sample_case, wait_case};

    let h = Hierarchy::start(0);
    // A second township under the county: enrolled, not running; the test
    // speaks for it with its real key.
    let rogue = h.spoken_child("330106020000", "另一街道综治中心");
    let (key, shared, parent) = (rogue.key.clone(), rogue.shared.clone(), rogue.parent);

    let county_api = h.county.login("admin", ADMIN_PASSWORD);
    let records = || county_api.get("/api/health").1["records"].as_u64().unwrap();
    let before = records();

    let event = |k: &NodeKey, seq: u64, prev: Option<zongzhi_protocol::RecordId>, title: &str| zongzhi_tests::signed_filing(k, "330106020000", seq, prev, title);
    let good = event(&key, 1, None, "伪造测试");
    let mut forged_sig = good.bytes().to_vec();
    let n = forged_sig.len();
    forged_sig[n - 10] ^= 0x01;
    let mut flipped = good.bytes().to_vec();
    flipped[n / 2] ^= 0x01;
    let stranger = event(&NodeKey::generate(&mut rand_core::OsRng), 1, None, "伪造测试").into_bytes();

    let rt = tokio::runtime::Runtime::new().unwrap();
    for (what, batch) in [("forged signature", vec![forged_sig.clone()]), ("flipped byte", vec![flipped.clone()])] {
        let reason = rt.block_on(async {
            let (link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
            RawLink::send_batch(&mut send, batch).await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(10), link.closed()).await.unwrap()
        });
        assert!(reason.contains("signature") || reason.contains("malformed") || reason.contains("encoding"), "{what}: {reason}");
        assert_eq!(records(), before, "{what} stored something");
    }
    // An unknown author's record is refused; the link stays up.
    rt.block_on(async {
        let (mut link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
        RawLink::send_batch(&mut send, vec![stranger.clone()]).await.unwrap();
        acked(&mut link).await;
        link.conn.close(0u32.into(), b"done");
    });
    assert_eq!(records(), before, "unknown author stored");
    // An oversized frame is refused by its length prefix; garbage is refused.
    for (what, bytes) in [("oversized frame", vec![0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3]), ("garbage", vec![0, 0, 0, 5, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB])] {
        let reason = rt.block_on(async {
            let (link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
            RawLink::send_raw(&mut send, &bytes).await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(10), link.closed()).await.unwrap()
        });
        assert!(reason.contains("frame") || reason.contains("limit") || reason.contains("malformed"), "{what}: {reason}");
        assert_eq!(records(), before, "{what} stored something");
    }
    // The sync status counted the errors.
    let (_, sync) = county_api.get("/api/sync");
    let rogue_status = sync["peers"].as_array().unwrap().iter().find(|p| p["division"] == "330106020000").unwrap().clone();
    assert!(rogue_status["errors"].as_u64().unwrap() >= 4, "{rogue_status}");
    // A valid record over the same kind of link is stored.
    rt.block_on(async {
        let (mut link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
        RawLink::send_batch(&mut send, vec![good.bytes().to_vec()]).await.unwrap();
        acked(&mut link).await;
        link.conn.close(0u32.into(), b"done");
    });
    assert_eq!(records(), before + 1, "a valid record from an enrolled child is stored");

    // Integrity alarms: a second record with seq 1 (equivocation) is refused
    // and raised with proof; a record at seq 3 after seq 1 is a chain gap.
    let equivocating = event(&key, 1, None, "同一序号的另一条记录");
    let gap = event(&key, 3, Some(good.id), "伪造测试");
    rt.block_on(async {
        let (mut link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
        RawLink::send_batch(&mut send, vec![equivocating.bytes().to_vec(), gap.bytes().to_vec()]).await.unwrap();
        acked(&mut link).await;
        link.conn.close(0u32.into(), b"done");
    });
    assert_eq!(records(), before + 2, "the equivocating record is refused, the gapped one stored");
    let (_, sync) = county_api.get("/api/sync");
    let kinds: Vec<&str> = sync["alarms"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"equivocation") && kinds.contains(&"chain_gap"), "{kinds:?}");
    let eq = sync["alarms"].as_array().unwrap().iter().find(|a| a["kind"] == "equivocation").unwrap();
    assert_eq!(eq["proof"].as_array().unwrap().len(), 2, "both records are kept as proof");

    // Revocation: the county revokes the rogue; its handshakes are refused.
    let (status, v) = county_api.post("/api/certs/revoke", &serde_json::json!({"key": key.id().to_string(), "cutoff_seq": 1, "reason": "设备丢失"}));
    assert_eq!(status, 201, "{v}");
    let refused = rt.block_on(async { RawLink::connect(&shared, parent).await.is_err() });
    assert!(refused, "a revoked key must not complete the handshake");
    let (_, sync) = county_api.get("/api/sync");
    assert!(sync["refused_handshakes"]["revoked"].as_u64().unwrap_or(0) >= 1, "{sync}");
    // … and counted in the metrics.
    let metrics = reqwest::blocking::get(format!("{}/metrics", h.county.url())).unwrap().text().unwrap();
    assert!(metrics.contains("zongzhi_handshakes_refused_total{reason=\"revoked\"}"), "{metrics}");
    // Two alarms above, and a third: the gapped record (seq 3) is above the
    // cut-off, so the case it filed was voided and re-evaluated.
    assert!(metrics.contains("zongzhi_integrity_alarms 3"), "{metrics}");
    let (_, sync) = county_api.get("/api/sync");
    assert!(sync["alarms"].as_array().unwrap().iter().any(|a| a["kind"] == "revoked_records"), "{sync}");
    // The revocation reaches the city, which then refuses records above the cut-off.
    let city_admin = h.city.login("admin", ADMIN_PASSWORD);
    zongzhi_tests::wait_for("the revocation at the city", 20, || {
        let (_, certs) = city_admin.get("/api/certs?revoked=include");
        certs["certs"].as_array().unwrap().iter().any(|c| c["division"] == "330106020000" && !c["revoked"].is_null()).then_some(())
    });

    // The county kept serving the honest township all along.
    let town = h.township.login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    let c = town.file_case(&sample_case("攻击之后的正常案件"));
    let id = c["id"].as_str().unwrap();
    let city_op = h.city.login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    wait_case(&h.city, &city_op, id, "the honest township's case at the city", |_| true);

    // A handshake that fails at the TLS level (another ALPN), before any
    // certificate is looked at, is counted too, once.
    let county_admin = h.county.login("admin", ADMIN_PASSWORD);
    let tls_refusals = || -> u64 {
        let (_, s) = county_admin.get("/api/sync");
        s["refused_handshakes"].as_object().unwrap().iter().filter(|(k, _)| k.starts_with("TLS:")).map(|(_, v)| v.as_u64().unwrap()).sum()
    };
    let before = tls_refusals();
    let ended = rt.block_on(zongzhi_node::net::testing::handshake_with_alpn(&shared, parent, b"not-zongzhi"));
    assert!(!ended.starts_with("connected"), "{ended}");
    zongzhi_tests::wait_for("the TLS-level refusal counted", 10, || (tls_refusals() == before + 1).then_some(()));
}

/// A village cut off while both sides add records catches up both ways when
/// its link returns; a relay killed with SIGKILL mid-sync loses nothing and
/// applies nothing twice.
#[test]
fn offline_village_catches_up_and_relay_survives_sigkill() {
    use zongzhi_tests::{Hierarchy, sample_case, wait_for};
    let mut h = Hierarchy::start(1);
    let village = h.villages[0].login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    let county = h.county.login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    let records = |api: &zongzhi_tests::Api| api.get("/api/health").1["records"].as_u64().unwrap();
    let county_before = records(&county);

    // The township (the village's only link upward) goes down hard.
    h.township.kill9();
    let n = 1200;
    let mut first_bulk = String::new();
    for i in 0..n {
        let c = village.file_case(&sample_case(&format!("断网期间受理的案件{i}")));
        if i == 0 {
            first_bulk = c["id"].as_str().unwrap().to_string();
        }
    }
    // The last case filed offline is urgent: it must travel first.
    let mut urgent = sample_case("断网期间的紧急案件：燃气泄漏");
    urgent["urgency"] = serde_json::json!("urgent");
    urgent["category"] = serde_json::json!("0702");
    let urgent_id = village.file_case(&urgent)["id"].as_str().unwrap().to_string();
    // Meanwhile the county dispatches a case down to the village.
    let d = county.file_case(&sample_case("区里下派的案件"));
    let did = d["id"].as_str().unwrap().to_string();
    county.act(&did, serde_json::json!({"action": "sign_for"}));
    county.act(&did, serde_json::json!({"action": "dispatch", "to": "330106010001", "requirements": "属地处置"}));
    // … and supervises it at once (督办): the notice follows the dispatch
    // that brings the case into the village's subtree and must not wait
    // there for an unrelated record.
    let cadmin = h.county.login("admin", ADMIN_PASSWORD);
    cadmin.act(&did, serde_json::json!({"action": "supervise", "grade": "yellow", "note": "请尽快签收"}));

    // The relay comes back, is killed in the middle of the catch-up, and comes back again.
    h.township.start();
    let town = h.township.login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    let got = wait_for("the catch-up to start", 60, || {
        let (_, q) = town.get("/api/cases?owner=330106010001&status=all&limit=1");
        q["total"].as_u64().filter(|t| *t > 2)
    });
    h.township.kill9();
    eprintln!("township killed with {got} of {n} village cases received");
    h.township.start();

    // Both directions converge.
    wait_for("the village's cases at the county", 60, || {
        let (_, q) = county.get("/api/cases?owner=330106010001&status=all&limit=1");
        (q["total"].as_u64() == Some(n as u64 + 2)).then_some(())
    });
    let v = zongzhi_tests::wait_case(&h.villages[0], &village, &did, "the dispatched and supervised case at the village", |v| v["owner"] == "330106010001" && v["supervision"]["grade"] == "yellow");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 4);
    let metrics = reqwest::blocking::get(format!("{}/metrics", h.villages[0].url())).unwrap().text().unwrap();
    assert!(metrics.contains("zongzhi_pending_records 0"), "nothing left waiting at the village:\n{metrics}");
    // Nothing applied twice: the county stored exactly the new records once
    // (the feed head is published just after the write the list reads, so
    // wait for it to reach the count, then check it is not above).
    // Monthly reports are signed on their own once a month has closed
    // (any time during the run, at any level): the exact count is of case
    // events, in the county's store at the end.
    let expected = county_before + n as u64 + 1 + 4;
    wait_for("the county's feed head", 20, || Some(records(&county)).filter(|r| *r >= expected));
    let admin = h.county.login("admin", ADMIN_PASSWORD);
    let (_, integrity) = admin.get("/api/integrity");
    assert_eq!(integrity["ok"], true, "{integrity}");
    let (_, sync) = admin.get("/api/sync");
    let t = sync["peers"].as_array().unwrap().iter().find(|p| p["division"] == "330106010000").unwrap().clone();
    assert_eq!(t["connected"], true, "{t}");

    h.county.stop();
    let county_store = zongzhi_node::store::Store::open(&h.county.db_path()).unwrap();
    let events = county_store.feed_records(1, 100_000).unwrap().iter().filter(|(_, _, b)| b.get(1) == Some(&(zongzhi_protocol::RecordKind::CaseEvent as u8))).count();
    assert_eq!(events, n + 1 + 4, "each case event stored exactly once at the county");

    // Urgent first: in the township's feed, the urgent case (filed last) came
    // before the first of the bulk.
    h.township.stop();
    let store = zongzhi_node::store::Store::open(&h.township.db_path()).unwrap();
    let feed = store.feed_range(1, 100_000).unwrap();
    let pos = |id: &str| feed.iter().find(|(_, r)| r.to_string() == id).map(|(s, _)| *s).unwrap();
    assert!(pos(&urgent_id) < pos(&first_bulk), "the urgent case was not sent ahead of the catch-up");
}

/// A record whose parents never came is parked, the parents are requested
/// (`Want`), and both are applied when they arrive.
#[test]
fn missing_parents_are_requested() {
    use zongzhi_node::net::testing::RawLink;
    use zongzhi_protocol::sync::Frame;
    use zongzhi_protocol::{Action, Body, CaseEvent, Header, Hlc, Record};
    use zongzhi_tests::Hierarchy;

    let h = Hierarchy::start(0);
    let child = h.spoken_child("330106030000", "第三街道综治中心");
    let (key, shared, parent) = (child.key.clone(), child.shared.clone(), child.parent);
    let county_api = h.county.login("admin", ADMIN_PASSWORD);
    let records = || county_api.get("/api/health").1["records"].as_u64().unwrap();
    let before = records();

    let filing = zongzhi_tests::signed_filing(&key, "330106030000", 1, None, "父事件后到");
    let now = filing.header.hlc.wall_ms;
    let sign_for = Record::sign(
        &key,
        Header { seq: 2, prev: Some(filing.id), hlc: Hlc { wall_ms: now + 1, counter: 0 } },
        Body::CaseEvent(CaseEvent { case: Some(filing.id), parents: vec![filing.id], unit: "330106030000".parse().unwrap(), operator: "op".into(), action: Action::SignFor, policy: 1 }),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut link, mut send) = RawLink::connect(&shared, parent).await.unwrap();
        // Only the child event: its parent is missing.
        RawLink::send_batch(&mut send, vec![sign_for.bytes().to_vec()]).await.unwrap();
        let wanted = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                if let Frame::Want { ids } = link.next_frame().await.unwrap() {
                    return ids;
                }
            }
        })
        .await
        .unwrap();
        assert!(wanted.contains(&filing.id.0), "the missing filing was not requested");
        RawLink::send_batch(&mut send, vec![filing.bytes().to_vec()]).await.unwrap();
        acked(&mut link).await;
        link.conn.close(0u32.into(), b"done");
    });
    assert_eq!(records(), before + 2, "both records applied once the parent arrived");
    let d = county_api.case(&filing.id.to_string());
    assert_eq!(d["status"]["code"], "accepted");
    let metrics = reqwest::blocking::get(format!("{}/metrics", h.county.url())).unwrap().text().unwrap();
    assert!(metrics.contains("zongzhi_pending_records 0"), "{metrics}");
}

/// A key is revoked after records it signed were already replicated: those
/// above the cut-off become void on the revoking county, on the city that
/// learns of it over the feed, and on a township that was offline when it
/// was issued; every one of them computes the same state.
#[test]
fn revocation_voids_records_above_the_cutoff_everywhere() {
    use zongzhi_tests::{ADMIN_PASSWORD, Hierarchy, sample_case, wait_case, wait_for};
    let mut h = Hierarchy::start(1);
    let apis = ops(&h);
    let (city, county, town, village) = (&apis[0], &apis[1], &apis[2], &apis[3]);
    let a = village.file_case(&sample_case("邻里纠纷"))["id"].as_str().unwrap().to_string();
    let v = village.act(&a, json!({"action": "sign_for"}));
    let cutoff = v["timeline"][1]["author_seq"].as_u64().unwrap();
    // Then the key is stolen: an escalation and a new case signed with it.
    village.act(&a, json!({"action": "escalate", "reason": "伪造的上报"}));
    let b = village.file_case(&sample_case("伪造的案件"))["id"].as_str().unwrap().to_string();
    for (node, api) in [(&h.township, town), (&h.county, county), (&h.city, city)] {
        wait_case(node, api, &a, "the escalation everywhere", |v| v["owner"] == "330106010000");
        wait_case(node, api, &b, "the new case everywhere", |_| true);
    }
    h.township.stop();

    let cadmin = h.county.login("admin", ADMIN_PASSWORD);
    let (status, v) = cadmin.post("/api/certs/revoke", &json!({"key": h.villages[0].node_id(), "cutoff_seq": cutoff, "reason": "密钥泄露"}));
    assert_eq!(status, 201, "{v}");
    let voided = |api: &zongzhi_tests::Api, node: &zongzhi_tests::TestNode, what: &str| -> (serde_json::Value, serde_json::Value) {
        let va = wait_case(node, api, &a, what, |v| v["owner"] == "330106010001");
        assert_eq!(va["status"]["code"], "accepted");
        assert_eq!(va["timeline"][2]["rejected"]["rule"], "author-revoked", "{va}");
        let vb = wait_case(node, api, &b, what, |v| v["status"]["code"] == "void");
        assert_eq!(vb["timeline"][0]["rejected"]["rule"], "author-revoked");
        // The stored summaries (lists, queues, statistics) follow the
        // detail, which folds the records as they are (the re-fold that
        // rewrites the summaries runs right after the revocation's write).
        let listed = |query: &str, id: &str| {
            let (_, list) = api.get(query);
            list["cases"].as_array().unwrap().iter().any(|c| c["id"] == id)
        };
        wait_for(&format!("{what}: the void case in the list"), 10, || listed("/api/cases?status=void&owner=all", &b).then_some(()));
        wait_for(&format!("{what}: the escalation undone in the list"), 10, || listed("/api/cases?status=accepted&owner=330106010001", &a).then_some(()));
        (va, vb)
    };
    let at_county = voided(county, &h.county, "the county to void the records");
    let at_city = voided(city, &h.city, "the city to learn the revocation and void the records");
    // The county's alarm names the cases it re-evaluated.
    let (_, sync) = cadmin.get("/api/sync");
    let alarms = sync["alarms"].as_array().unwrap();
    assert!(alarms.iter().any(|x| x["kind"] == "revoked_records"), "{sync}");

    // The township was offline when the revocation was issued.
    h.township.start();
    let at_town = voided(town, &h.township, "the township to catch up and void the records");
    let view = |(va, vb): &(serde_json::Value, serde_json::Value)| json!([va["status"], va["owner"], va["timeline"], vb["status"], vb["timeline"]]);
    assert_eq!(view(&at_county), view(&at_city));
    assert_eq!(view(&at_county), view(&at_town));
    // The revoked village can no longer connect to its township.
    let tadmin = h.township.login("admin", ADMIN_PASSWORD);
    wait_for("the township to refuse the revoked village", 20, || {
        let (_, s) = tadmin.get("/api/sync");
        (s["refused_handshakes"]["revoked"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    // Restarting re-runs the pass: nothing changes, no second alarm.
    h.county.stop();
    h.county.start();
    let (_, sync2) = h.county.login("admin", ADMIN_PASSWORD).get("/api/sync");
    let count = |s: &serde_json::Value| s["alarms"].as_array().unwrap().iter().filter(|x| x["kind"] == "revoked_records").count();
    assert_eq!(count(&sync2), count(&sync));
}

/// Overdue cases are supervised by the owner's parent, once per clock and
/// grade, also across a restart; a case passed between three units is
/// supervised one level higher (提级督办).
#[test]
fn overdue_cases_are_supervised_automatically_once() {
    use zongzhi_tests::{Hierarchy, sample_case, wait_case};
    // Cases received days ago, entered as a backlog (beyond the default
    // 72 hours of received_at_max_hours).
    let mut h = Hierarchy::start_with(1, "received_at_max_hours = 720\n");
    let apis = ops(&h);
    let (city, county, _town, village) = (&apis[0], &apis[1], &apis[2], &apis[3]);
    let days_ago = |d: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * d)).to_string();
    let auto = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["action"] == "supervise" && t["operator"] == "自动督办")
            .map(|t| (t["unit"].as_str().unwrap().to_string(), t["details"]["grade"].as_str().unwrap_or_default().to_string()))
            .collect()
    };

    // Received five days ago and never routed: the routing clock (24 h) is
    // four days past due, which earns 红牌 from the township at once.
    let mut body = sample_case("积压五天未分流的纠纷");
    body["received_at"] = json!(days_ago(5));
    let a = village.file_case(&body)["id"].as_str().unwrap().to_string();
    let v = wait_case(&h.villages[0], village, &a, "the township's notice at the village", |v| v["supervision"]["grade"] == "red");
    assert_eq!(auto(&v), vec![("330106010000".to_string(), "red".to_string())], "{}", v["timeline"]);

    // Filed by the city fifteen days ago, dispatched to the county and on to
    // the township: three units, so the city (not the county) supervises.
    let mut body = sample_case("多次转办的积案");
    body["received_at"] = json!(days_ago(15));
    let b = city.file_case(&body)["id"].as_str().unwrap().to_string();
    city.act(&b, json!({"action": "sign_for"}));
    city.act(&b, json!({"action": "dispatch", "to": "330106000000", "requirements": "属地处置"}));
    wait_case(&h.county, county, &b, "the dispatch at the county", |v| v["owner"] == "330106000000");
    county.act(&b, json!({"action": "sign_for"}));
    county.act(&b, json!({"action": "dispatch", "to": "330106010000", "requirements": "请街道办理"}));
    // (The city may already have supervised the county over the same
    // clock while the county held the case; the raised notice comes on top.)
    let raised = |v: &serde_json::Value| v["timeline"].as_array().unwrap().iter().filter(|t| t["operator"] == "自动督办" && t["details"]["note"].as_str().unwrap_or("").contains("提级督办")).count();
    let v = wait_case(&h.city, city, &b, "the raised supervision", |v| v["owner"] == "330106010000" && raised(v) > 0);
    let notices = auto(&v);
    assert!(notices.iter().all(|(unit, _)| unit == "330100000000"), "raised one level, to the city, not the county: {notices:?}");
    assert_eq!(raised(&v), 1);

    // Restarts and further scans issue nothing twice.
    h.township.stop();
    h.township.start();
    h.city.stop();
    h.city.start();
    // Each restarted node has scanned twice since (its own count).
    for node in [&h.township, &h.city] {
        zongzhi_tests::wait_for("two supervision scans after the restart", 60, || (zongzhi_tests::metric(node, "zongzhi_supervision_scans_total") >= 2.0).then_some(()));
    }
    let v = village.case(&a);
    assert_eq!(auto(&v).len(), 1, "{}", v["timeline"]);
    let v = wait_case(&h.city, &h.city.login("operator", zongzhi_tests::OPERATOR_PASSWORD), &b, "the city after restart", |_| true);
    assert_eq!(auto(&v), notices);

    // The city signs a new policy; every node applies the newest version.
    let city_admin = h.city.login("admin", ADMIN_PASSWORD);
    let (_, before) = village.get("/api/policy");
    let (status, v) = city_admin.post("/api/policy", &json!({"deadlines": {"feedback_minutes": 720}}));
    assert_eq!(status, 201, "{v}");
    let version = v["version"].as_u64().unwrap();
    assert_eq!(version, before["version"].as_u64().unwrap() + 1);
    zongzhi_tests::wait_for("the new policy at the village", 20, || {
        let (_, p) = village.get("/api/policy");
        (p["version"].as_u64() == Some(version) && p["deadlines"]["feedback_minutes"] == 720).then_some(())
    });
    let (status, _) = h.county.login("admin", ADMIN_PASSWORD).post("/api/policy", &json!({"deadlines": {"feedback_minutes": 1}}));
    assert_eq!(status, 403, "only the city signs the policy");
    let (status, v) = city_admin.post("/api/policy", &json!({"deadlines": {"coffee_minutes": 5}}));
    assert_eq!((status, v["error"]["message"].as_str().unwrap().contains("coffee_minutes")), (400, true));
    // A restarted node keeps the newest policy.
    h.villages[0].stop();
    h.villages[0].start();
    let (_, p) = h.villages[0].login("operator", zongzhi_tests::OPERATOR_PASSWORD).get("/api/policy");
    assert_eq!(p["version"].as_u64(), Some(version));
}

/// A village signs its monthly figures; the city checks the report against
/// the events it holds. A falsified report (signed with the village's real
/// key, figures changed) is flagged with the unit, figure, reported and
/// recomputed values.
#[test]
fn falsified_monthly_report_is_flagged_at_the_city() {
    use zongzhi_tests::{Hierarchy, sample_case, wait_for};
    let mut h = Hierarchy::start(1);
    let apis = ops(&h);
    let village = &apis[3];
    for title in ["噪音纠纷", "物业纠纷"] {
        let id = village.file_case(&sample_case(title))["id"].as_str().unwrap().to_string();
        village.act(&id, json!({"action": "sign_for"}));
        village.act(&id, json!({"action": "resolve", "public_reply": "已调解"}));
    }
    let month = zongzhi_protocol::kpi::month_of(zongzhi_node::context::now_ms()).unwrap();
    let period = format!("{}-{:02}", month / 100, month % 100);
    // A month's report is signed once the month has closed: this one is
    // still open.
    let (status, v) = h.villages[0].login("admin", ADMIN_PASSWORD).post("/api/reports", &json!({"period": period}));
    assert_eq!(status, 400, "{v}");
    // Forty days on (every node's clock together), the village signs it
    // on its own once the grace period has passed.
    for node in [&mut h.city, &mut h.county, &mut h.township, &mut h.villages[0]] {
        node.stop();
        let mut cfg = std::fs::read_to_string(&node.config).unwrap();
        cfg.push_str("clock_offset_secs = 3456000\n");
        std::fs::write(&node.config, cfg).unwrap();
        node.start();
    }
    let apis = ops(&h);
    let city = &apis[0];
    let reports = |api: &zongzhi_tests::Api| {
        let (status, v) = api.get(&format!("/api/reports?period={period}"));
        assert_eq!(status, 200, "{v}");
        v
    };
    let ok = wait_for("the village's report at the city", 20, || {
        let v = reports(city);
        v["reports"].as_array().unwrap().iter().find(|r| r["unit"] == "330106010001").cloned()
    });
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["reported"]["received"], 2);
    assert_eq!(ok["reported"]["resolved_locally"], 2);

    // Falsify: the village's own key signs a report that claims more cases.
    h.villages[0].stop();
    {
        use zongzhi_node::{config::Config, ledger::Op, ledger::Writer, node};
        let cfg = Config::load(&h.villages[0].config).unwrap();
        let key = std::sync::Arc::new(node::load_key(&cfg).unwrap());
        let store = node::open_store(&cfg, &key).unwrap();
        let mut w = Writer::new(node::shared_state(&cfg, store, key).unwrap()).unwrap();
        let mut counts = zongzhi_node::report::own_counts(&w.shared().store, cfg.division, month).unwrap();
        counts[zongzhi_protocol::kpi::Counter::Received as usize] += 5;
        counts[zongzhi_protocol::kpi::Counter::Satisfied as usize] += 5;
        counts[zongzhi_protocol::kpi::Counter::Rated as usize] += 5;
        let report = zongzhi_protocol::kpi::MonthlyReport::new(cfg.division, month, &counts);
        w.run(Op::AppendOwn { body: zongzhi_protocol::Body::Report(report) }).unwrap();
    }
    h.villages[0].start();
    let flagged = wait_for("the falsified report at the city", 20, || {
        let v = reports(city);
        v["reports"].as_array().unwrap().iter().find(|r| r["unit"] == "330106010001" && r["ok"] == false).cloned()
    });
    let d: Vec<(String, f64, f64)> = flagged["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["figure"].as_str().unwrap().to_string(), d["reported"].as_f64().unwrap_or(f64::NAN), d["recomputed"].as_f64().unwrap_or(f64::NAN)))
        .collect();
    assert!(d.contains(&("received".to_string(), 7.0, 2.0)), "{d:?}");
    assert!(d.contains(&("rated".to_string(), 5.0, 0.0)), "{d:?}");
    assert!(d.iter().any(|(f, _, _)| f == "registration_on_time"), "KPIs derived from false counts differ too: {d:?}");
    // The CLI reports the discrepancy and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("s.json");
    let run = |args: &[&str]| std::process::Command::new(zongzhi_tests::bin("zongzhi")).args(args).env("ZONGZHI_NODE", h.city.url()).env("ZONGZHI_SESSION", &session).output().unwrap();
    assert!(run(&["login", "--user", "viewer", "--password", zongzhi_tests::VIEWER_PASSWORD]).status.success());
    let out = run(&["reports", "check", "--period", &period]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("不一致") && text.contains("received") && text.contains("330106010001"), "{text}");
}

/// A link cut in the middle of a catch-up (a relay drops every packet until
/// both ends give the connection up) costs at most the one batch that was
/// on the wire: what the township had read is stored although it could not
/// be acknowledged, and the village resumes after it.
#[test]
fn a_cut_link_resends_at_most_one_batch() {
    use zongzhi_tests::{Hierarchy, UdpRelay, sample_case, wait_for};
    let mut h = Hierarchy::start(1);
    let config = std::fs::read_to_string(&h.township.config).unwrap();
    let town_q: u16 = config.lines().find_map(|l| l.strip_prefix("quic_listen = \"127.0.0.1:")).unwrap().trim_end_matches('"').parse().unwrap();
    // About 40 % of the transfer below goes through before the cut.
    let n = 1500u64;
    let relay = UdpRelay::start(town_q, n * 560 * 2 / 5).unwrap();
    let stored_before = h.township.login("viewer", zongzhi_tests::VIEWER_PASSWORD).get("/api/health").1["records"].as_u64().unwrap();
    h.township.stop();
    h.villages[0].stop();
    let config = std::fs::read_to_string(&h.villages[0].config).unwrap();
    std::fs::write(&h.villages[0].config, config.replace(&format!("127.0.0.1:{town_q}"), &format!("127.0.0.1:{}", relay.port))).unwrap();
    h.villages[0].start();
    let village = h.villages[0].login("operator", zongzhi_tests::OPERATOR_PASSWORD);
    for i in 0..n {
        village.file_case(&sample_case(&format!("断网期间受理的案件{i}")));
    }
    h.township.start();
    let town = h.township.login("admin", ADMIN_PASSWORD);
    let village_admin = h.villages[0].login("admin", ADMIN_PASSWORD);
    let peer = |api: &zongzhi_tests::Api, division: &str| {
        let (_, sync) = api.get("/api/sync");
        sync["peers"].as_array().unwrap().iter().find(|p| p["division"] == division).cloned().unwrap_or_default()
    };
    let held = || town.get("/api/cases?owner=330106010001&status=all&limit=1").1["total"].as_u64().unwrap_or(0);
    wait_for("the cut", 60, || relay.cut.load(std::sync::atomic::Ordering::SeqCst).then_some(()));
    wait_for("both ends to give the link up", 60, || (peer(&town, "330106010001")["connected"] != true && peer(&village_admin, "330106010000")["connected"] != true).then_some(()));
    let at_cut = held();
    assert!(at_cut > 0 && at_cut < n, "the cut came at {at_cut} of {n}");
    relay.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("the rest of the catch-up", 90, || (held() == n).then_some(()));
    // Sent again = sent − what the township stored in the meantime: the
    // village may send more than the filings (its monthly report, when the
    // township had not received it before it stopped), so the filings'
    // count is not the bar (the township's own report, if it signs one,
    // only makes the bound looser by one).
    let stored_now = || town.get("/api/health").1["records"].as_u64().unwrap() - stored_before;
    wait_for("the township's record count to follow", 20, || (stored_now() >= n).then_some(()));
    // The village's count of what it sent is final once the township
    // acknowledged everything (nothing more is on the way).
    wait_for("the township to acknowledge everything", 60, || (peer(&village_admin, "330106010000")["behind_to_peer"] == 0).then_some(()));
    let sent = peer(&village_admin, "330106010000")["records_sent"].as_u64().unwrap();
    let stored = stored_now();
    eprintln!("cut at {at_cut} of {n} cases; the village sent {sent} records, the township stored {stored}");
    assert!(stored >= n, "the township stored {stored} of {n}");
    assert!(sent.saturating_sub(stored) <= zongzhi_protocol::sync::BATCH_RECORDS as u64, "{} records sent again", sent.saturating_sub(stored));
    assert_eq!(peer(&town, "330106010001")["duplicates_received"], 0);
    let (_, integrity) = town.get("/api/integrity");
    assert_eq!(integrity["ok"], true, "{integrity}");
}

/// Steps that only add to a case (a 督办) may cross a step that closes it
/// while a link is down: both were acknowledged, and after the catch-up the
/// 督办 stands overruled (被覆盖). Its unit sees it on the case page with the
/// step that won, and the statistics count it against that unit.
#[test]
fn an_overruled_step_is_shown_with_the_step_that_won_and_counted() {
    use zongzhi_tests::{Hierarchy, OPERATOR_PASSWORD, sample_case, wait_case};
    let mut h = Hierarchy::start(1);
    let village = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let c = village.file_case(&sample_case("邻里噪音纠纷"));
    let id = c["id"].as_str().unwrap().to_string();
    village.act(&id, json!({"action": "sign_for"}));
    village.act(&id, json!({"action": "resolve", "public_reply": "已调解"}));
    village.act(&id, json!({"action": "feedback", "note": "已电话告知"}));
    village.act(&id, json!({"action": "rate", "rating": "satisfied"}));
    let county = h.county.login("admin", ADMIN_PASSWORD);
    wait_case(&h.county, &county, &id, "the rating at the county", |v| v["status"]["code"] == "rated");

    // The township (the village's only link up) goes down; the village
    // archives; the county, not knowing, supervises the case.
    h.township.kill9();
    village.act(&id, json!({"action": "archive"}));
    county.act(&id, json!({"action": "supervise", "grade": "normal", "note": "请说明处理情况"}));
    h.township.start();

    let overruled = |v: &serde_json::Value| -> Option<serde_json::Value> {
        let t = v["timeline"].as_array()?.iter().find(|t| t["action"] == "supervise")?.clone();
        (v["status"]["code"] == "archived").then_some(t)
    };
    for (node, api, at) in [(&h.county, &county, "county"), (&h.villages[0], &village, "village")] {
        let v = wait_case(node, api, &id, &format!("the archive and the 督办 both at the {at}"), |v| overruled(v).is_some());
        let t = overruled(&v).unwrap();
        assert_eq!(t["accepted"], false, "{at}: {t}");
        assert_eq!(t["rejected"]["rule"], "case-is-closed", "{at}: {t}");
        assert_eq!(t["overruled_by"]["action"], "archive", "{at}: {t}");
        assert_eq!(t["overruled_by"]["unit"], "330106010001", "{at}: {t}");
    }
    let (status, v) = county.get("/api/stats?scope=330106000000&by=unit");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"]["counts"]["overruled"].as_i64(), Some(1), "{v}");
    // The unit whose step was overruled finds the case in its list
    // (?overruled=true: whoever owns it, whatever its status); the unit
    // whose step won does not. The same after a rebuild of the indexes.
    let listed = |api: &zongzhi_tests::Api| -> Vec<String> {
        let (status, v) = api.get("/api/cases?overruled=true");
        assert_eq!(status, 200, "{v}");
        v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(listed(&county), vec![id.clone()]);
    assert!(listed(&village).is_empty());
    h.county.stop();
    let out = h.county.node_cmd(&["reindex"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    h.county.start();
    let county = h.county.login("admin", ADMIN_PASSWORD);
    assert_eq!(listed(&county), vec![id.clone()]);
    // The county's operator finds it in the console: the 被覆盖 tab lists
    // the case, and its page shows the 督办 overruled by the village's 归档.
    let mut b = zongzhi_tests::browser::Browser::launch();
    b.login(&h.county.url(), "admin", ADMIN_PASSWORD);
    b.click("button[data-filter=overruled]");
    let row = format!("#queue-list[data-filter=overruled] #queue tr[data-id=\"{id}\"]");
    b.wait("the case in the 被覆盖 tab", 15, &format!("document.querySelector('{row}')"));
    assert!(b.text("[data-test=overruled-note]").contains("覆盖"));
    b.screenshot("overruled-tab");
    b.click(&row);
    let shown = b.wait("the overruled 督办 on the case page", 15, "document.querySelector('[data-test=overruled]')?.innerText");
    let shown = shown.as_str().unwrap();
    assert!(shown.contains("被覆盖") && shown.contains("归档"), "{shown}");
    b.screenshot("overruled-case");
    let (status, v) = county.get("/api/cases?overruled=maybe");
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
    for n in h.all() {
        assert!(!n.log().contains("integrity alarm"), "an honest race raised an alarm: {}", n.log());
    }
}

/// A restarted node answers its peers' packets for the old connection with
/// a stateless reset (both the reset key and the connection-id key come
/// from the node key), so a child reconnects at once instead of waiting out
/// the 15 s idle timeout. Before the connection-id key was derived, the new
/// process dropped the packets as "invalid CID" and the village waited 15 s.
#[test]
fn a_child_reconnects_at_once_after_its_parent_restarts() {
    use zongzhi_tests::{Hierarchy, wait_for};
    let mut h = Hierarchy::start(1);
    let village = h.villages[0].login("admin", ADMIN_PASSWORD);
    let link = |api: &zongzhi_tests::Api| {
        let (_, s) = api.get("/api/sync");
        let p = s["peers"].as_array().and_then(|ps| ps.iter().find(|p| p["division"] == "330106010000").cloned()).unwrap_or_default();
        (p["connected"] == true, p["connects"].as_u64().unwrap_or(0))
    };
    let before = wait_for("the village's link up", 30, || Some(link(&village)).filter(|l| l.0)).1;
    h.township.kill9();
    h.township.start();
    let started = std::time::Instant::now();
    wait_for("the village to reconnect well within the idle timeout", 8, || {
        let (up, n) = link(&village);
        (up && n > before).then_some(())
    });
    eprintln!("reconnected {:?} after the township's restart", started.elapsed());
}

/// A village started while its township is down has a row for its parent
/// in the sync status from the first failed attempt: offline, with the
/// error and its time (the table was empty). The log says "parent link
/// down" once at INFO, then repeats at DEBUG only.
#[test]
fn an_unreachable_parent_shows_offline_with_its_error_and_time() {
    use zongzhi_tests::{Hierarchy, wait_for};
    let mut h = Hierarchy::start(1);
    h.township.stop();
    h.villages[0].stop();
    h.villages[0].start();
    let village = h.villages[0].login("admin", ADMIN_PASSWORD);
    let row = wait_for("the parent's row with its error", 40, || {
        let (_, s) = village.get("/api/sync");
        s["peers"].as_array()?.iter().find(|p| p["division"] == "330106010000" && !p["last_error"].is_null()).cloned()
    });
    assert_eq!((row["role"].as_str(), row["connected"].as_bool()), (Some("parent"), Some(false)), "{row}");
    assert_eq!(row["name"], "示例街道社会治安综合治理中心", "{row}");
    assert!(row["last_error_at"].as_str().is_some_and(|t| t.ends_with("+08:00")), "{row}");
    // Health says it too (degraded, the parent and its error), and the log
    // warns once with the error: a center notices without reading /api/sync.
    let (_, health) = village.get("/api/health");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!((health["parent"]["connected"].as_bool(), health["parent"]["division"].as_str()), (Some(false), Some("330106010000")), "{health}");
    assert!(health["parent"]["last_error"].as_str().is_some_and(|e| e.contains("reachable")), "{health}");
    assert!(health["parent"]["next_attempt_at"].is_string(), "{health}");
    let log = h.villages[0].log();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("parent link down") && l.contains("reachable")), "{log}");
    // Back up: ok again.
    h.township.start();
    wait_for("health ok once the parent is back", 60, || (village.get("/api/health").1["status"] == "ok").then_some(()));
}
