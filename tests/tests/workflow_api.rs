//! The whole case workflow and every rejection path, through real HTTP
//! against a real node process on a temporary RocksDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, OPERATOR_PASSWORD, TestNode, VIEWER_PASSWORD, sample_case};

fn records(api: &Api) -> u64 {
    api.get("/api/health").1["records"].as_u64().unwrap()
}

fn last_action(v: &Value) -> (String, bool) {
    let t = v["timeline"].as_array().unwrap().last().unwrap();
    (t["action"].as_str().unwrap().to_string(), t["accepted"].as_bool().unwrap())
}

/// Asserts a 4xx JSON error with `code` (and `rule`), and that nothing was stored.
fn refused(api: &Api, before: u64, (status, v): (u16, Value), want_status: u16, want_code: &str, want_rule: Option<&str>) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"]["code"], want_code, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap_or_default().is_empty(), "{v}");
    if let Some(rule) = want_rule {
        assert_eq!(v["error"]["rule"], rule, "{v}");
        // The operator's words come with it, from the one table the console shows.
        assert_eq!(v["error"]["message_zh"].as_str(), zongzhi_protocol::rules::zh(rule), "{v}");
        assert!(v["error"]["message_zh"].is_string(), "{v}");
    }
    assert_eq!(records(api), before, "a refused request stored something");
}

#[test]
fn whole_workflow_and_every_rejection() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let viewer = node.login("viewer", VIEWER_PASSWORD);
    let anon = Api::new(&node.url(), None);

    // --- 受理 ---
    let c = op.file_case(&sample_case("楼上装修噪音扰民"));
    let id = c["id"].as_str().unwrap().to_string();
    let number = c["number"].as_str().unwrap().to_string();
    assert!(number.starts_with("330102001000-2026-") || number.starts_with("330102001000-20"), "{number}");
    assert_eq!(c["status"]["code"], "awaiting_receipt");
    assert_eq!(c["contact"]["phone"], "13812341234");
    assert_eq!(c["category"]["parent_name"], "邻里纠纷");
    assert_eq!(c["timeline"][0]["operator"], "operator");
    assert_eq!(c["timeline"][0]["signature_valid"], true);
    // The case number works as a reference too.
    assert_eq!(op.case(&number)["id"], id.as_str());

    // Masking: a viewer sees 138****1234; an operator sees the number.
    let v = viewer.case(&id);
    assert_eq!(v["contact"]["phone"], "138****1234");
    assert_eq!(v["contact"]["id_number"], "330102********1234");
    assert_eq!(v["contact"]["masked"], true);
    assert_eq!(op.case(&id)["contact"]["masked"], false);

    // --- forbidden transitions: 422 naming the rule, nothing stored ---
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "resolve", "public_reply": "x"})), 422, "rule_violation", Some("status"));
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "route", "window": "police"})), 422, "rule_violation", Some("status"));
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "escalate", "reason": "x"})), 422, "rule_violation", Some("status"));

    // --- 签收 → 分流 ---
    op.act(&id, json!({"action": "sign_for"}));
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "route", "window": "nowhere"})), 422, "rule_violation", Some("unknown-window"));
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "dispatch", "to": "330102002001"})), 422, "rule_violation", Some("dispatch-to-descendant"));
    let c = op.act(&id, json!({"action": "route", "window": "justice", "requirements": "组织调解"}));
    assert_eq!(c["status"]["code"], "handling");
    assert_eq!(c["window_name"], "司法");

    // --- 退单 → 改派, 协办, progress ---
    let c = op.act(&id, json!({"action": "return", "reason": "应由住建部门处理"}));
    assert_eq!((c["status"]["code"].as_str(), c["returns"].as_u64()), (Some("returned"), Some(1)));
    op.act(&id, json!({"action": "reroute", "window": "housing", "reason": "改派住建"}));
    let c = op.act(&id, json!({"action": "add_helpers", "windows": ["police"]}));
    assert_eq!(c["helpers"][0]["window"], "police");
    op.act(&id, json!({"action": "progress", "note": "已约双方面谈", "public": true}));

    // --- 延期: the requester cannot approve it; operators cannot decide at all ---
    op.act(&id, json!({"action": "request_extension", "working_days": 3, "reason": "需要现场勘查"}));
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "approve_extension"})), 403, "forbidden", None);
    refused(
        &op,
        before,
        op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "request_extension", "working_days": 2, "reason": "再次"})),
        422,
        "rule_violation",
        Some("one-extension-at-a-time"),
    );
    let c = admin.act(&id, json!({"action": "approve_extension", "note": "同意延期三个工作日"}));
    let resolution = c["deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "resolution").unwrap();
    assert_eq!(resolution["extended_working_days"], 3);
    assert!(c["extension_pending"].is_null());

    // --- 督办 ---
    let c = admin.act(&id, json!({"action": "supervise", "grade": "yellow", "note": "请加快办理"}));
    assert_eq!(c["supervision"]["grade"], "yellow");

    // --- evidence ---
    let (status, c) = op.post_raw(&format!("/api/cases/{id}/attachments?name=photo.jpg"), "image/jpeg", b"\xFF\xD8fake-jpeg".to_vec());
    assert_eq!(status, 201, "{c}");
    let blob = c["attachments"][0]["blob"].as_str().unwrap().to_string();
    let (status, headers, body) = op.get_raw(&format!("/api/cases/{id}/attachments/{blob}"));
    assert_eq!((status, body.as_slice()), (200, &b"\xFF\xD8fake-jpeg"[..]));
    let header = |h: &reqwest::header::HeaderMap, k: &str| h.get(k).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(header(&headers, "content-type"), "image/jpeg");
    assert_eq!(header(&headers, "content-disposition"), "attachment; filename=\"photo.jpg\"; filename*=UTF-8''photo.jpg");
    let (status, v) = op.post_raw(&format!("/api/cases/{id}/attachments"), "image/jpeg", b"x".to_vec());
    assert_eq!(status, 400, "{v}");
    // A page uploaded as evidence, under a name that tries to leave its
    // directory and to add a header line: the name is cleaned before it is
    // signed, and the download is a file of no runnable type.
    let evil = "..%2F..%2Fconsole%2Fx%0D%0ASet-Cookie%3A%20a%3Db%22.html";
    let (status, c) = op.post_raw(&format!("/api/cases/{id}/attachments?name={evil}"), "text/html", b"<script>alert(1)</script>".to_vec());
    assert_eq!(status, 201, "{c}");
    let att = c["attachments"].as_array().unwrap().iter().find(|a| a["name"].as_str().unwrap().ends_with(".html")).unwrap().clone();
    assert_eq!(att["name"], "console_x__Set-Cookie_ a=b_.html", "{att}");
    let (status, headers, _) = op.get_raw(&format!("/api/cases/{id}/attachments/{}", att["blob"].as_str().unwrap()));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let disposition = header(&headers, "content-disposition");
    assert!(disposition.starts_with("attachment; filename=\"console_x__Set-Cookie_ a=b_.html\""), "{disposition}");
    assert!(headers.get("set-cookie").is_none());
    // Errors the HTTP layer answers before any handler are JSON too, and
    // the token is checked before the body is read.
    let big = vec![b'x'; zongzhi_node::api::MAX_JSON_BODY + 1];
    let (status, v) = op.post_raw("/api/cases", "application/json", big);
    assert_eq!((status, v["error"]["code"].as_str()), (413, Some("too_large")), "{v}");
    let (status, v) = op.post_raw(&format!("/api/cases/{id}/attachments?name=a.bin"), "application/octet-stream", vec![0; zongzhi_node::api::MAX_ATTACHMENT + 1]);
    assert_eq!((status, v["error"]["code"].as_str()), (413, Some("too_large")), "{v}");
    let anonymous = zongzhi_tests::Api::new(&op.base, None);
    for path in ["/api/reports", "/api/policy"] {
        let (status, v) = anonymous.post_raw(path, "text/plain", b"not json".to_vec());
        assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthenticated")), "{path}: {v}");
    }
    let (status, v) = op.get("/api/no-such-route");
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")), "{v}");
    let (status, v) = op.post_raw("/api/health", "application/json", b"{}".to_vec());
    assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{v}");
    // Every response, the console's too, carries the browser policy.
    for path in ["/", "/api/health", &format!("/api/cases/{id}")] {
        let (_, headers, _) = op.get_raw(path);
        let csp = header(&headers, "content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!((header(&headers, "x-frame-options"), header(&headers, "referrer-policy")), ("DENY".into(), "no-referrer".into()), "{path}");
    }

    // --- 办结 → 反馈 → 评价 不满意 → 重办 → … → 归档 ---
    op.act(&id, json!({"action": "resolve", "public_reply": "已协调施工时间为9点至18点"}));
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "rate", "rating": "satisfied"})), 422, "rule_violation", Some("status"));
    op.act(&id, json!({"action": "feedback", "note": "已电话告知诉求人"}));
    op.act(&id, json!({"action": "rate", "rating": "unsatisfied", "comment": "仍有噪音"}));
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "archive"})), 422, "rule_violation", Some("archive-needs-satisfied"));
    let c = op.act(&id, json!({"action": "reopen", "reason": "复核后重办"}));
    assert_eq!((c["status"]["code"].as_str(), c["reopens"].as_u64()), (Some("handling"), Some(1)));
    assert!(c["deadlines"].as_array().unwrap().iter().any(|d| d["kind"] == "rehandle" && d["running"] == true));
    op.act(&id, json!({"action": "resolve", "public_reply": "已现场监督整改"}));
    op.act(&id, json!({"action": "feedback", "method": "visit", "note": "已上门回访"}));
    op.act(&id, json!({"action": "rate", "rating": "satisfied"}));
    let c = op.act(&id, json!({"action": "archive"}));
    assert_eq!(c["status"]["code"], "archived");
    assert!(c["timeline"].as_array().unwrap().iter().all(|t| t["accepted"] == true && t["signature_valid"] == true));
    assert_eq!(last_action(&c), ("archive".to_string(), true));
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "progress", "note": "x"})), 422, "rule_violation", Some("case-is-closed"));

    // --- 并单 ---
    let dup = op.file_case(&sample_case("同一噪音问题重复反映"));
    let dup_id = dup["id"].as_str().unwrap();
    // Not into the archived case: it takes no more steps.
    let before = records(&op);
    refused(&op, before, op.post(&format!("/api/cases/{dup_id}/actions"), &json!({"action": "merge", "into": number})), 422, "rule_violation", Some("merge-target-open"));
    let open = op.file_case(&sample_case("同一噪音问题首次反映"));
    let open_id = open["id"].as_str().unwrap();
    let c = op.act(dup_id, json!({"action": "merge", "into": open["number"]}));
    assert_eq!(c["status"]["code"], "merged");
    assert_eq!(c["merged_into"], open_id);

    // --- queue with filters ---
    op.file_case(&json!({"title": "疑似燃气泄漏", "content": "楼道有燃气味", "category": "0702", "request_type": "help", "channel": "phone", "urgency": "urgent"}));
    let (status, q) = op.get("/api/cases?urgency=urgent");
    assert_eq!(status, 200);
    assert_eq!(q["total"], 1);
    assert_eq!(q["cases"][0]["category"]["name"], "安全隐患");
    let (_, q) = op.get("/api/cases?status=all&category=02");
    assert_eq!(q["total"], 3);
    let (_, q) = op.get("/api/cases?status=archived,merged");
    assert_eq!(q["total"], 2);
    let (_, q) = op.get("/api/cases?overdue=true");
    assert_eq!(q["total"], 0);
    let (_, q) = op.get("/api/cases?owner=all&status=open");
    assert_eq!(q["total"], 2);
    let (status, v) = op.get("/api/cases?status=bogus");
    assert_eq!(status, 400, "{v}");
    let (status, v) = op.get("/api/cases?owner=12345");
    assert_eq!(status, 400, "{v}");

    // --- auth and roles ---
    let before = records(&op);
    refused(&op, before, anon.post("/api/cases", &sample_case("x")), 401, "unauthenticated", None);
    refused(&op, before, Api::new(&node.url(), Some("00".repeat(32))).post("/api/cases", &sample_case("x")), 401, "unauthenticated", None);
    refused(&op, before, anon.get(&format!("/api/cases/{id}")), 401, "unauthenticated", None);
    refused(&op, before, viewer.post("/api/cases", &sample_case("x")), 403, "forbidden", None);
    refused(&op, before, viewer.post(&format!("/api/cases/{dup_id}/actions"), &json!({"action": "progress", "note": "x"})), 403, "forbidden", None);
    refused(&op, before, op.post("/api/users", &json!({"username": "eve", "password": "12345678", "role": "admin"})), 403, "forbidden", None);
    refused(&op, before, anon.post("/api/login", &json!({"username": "operator", "password": "wrong"})), 401, "bad_credentials", None);
    refused(&op, before, anon.post("/api/login", &json!({"username": "nobody", "password": "wrong"})), 401, "bad_credentials", None);
    let (status, _) = viewer.get("/api/cases");
    assert_eq!(status, 200, "viewers may read");

    // --- bad input: 400, nothing stored ---
    let before = records(&op);
    refused(&op, before, op.post_raw("/api/cases", "application/json", b"{not json".to_vec()), 400, "bad_request", None);
    refused(&op, before, op.post("/api/cases", &json!({"title": "x"})), 400, "bad_request", None);
    let mut bad = sample_case("x");
    bad["channel"] = json!("pigeon");
    refused(&op, before, op.post("/api/cases", &bad), 400, "bad_request", None);
    let mut bad = sample_case("x");
    bad["category"] = json!("9999");
    refused(&op, before, op.post("/api/cases", &bad), 422, "rule_violation", Some("unknown-category"));
    let mut bad = sample_case("");
    bad["title"] = json!("   ");
    refused(&op, before, op.post("/api/cases", &bad), 422, "rule_violation", Some("field-required"));
    let mut bad = sample_case("x");
    bad["contact"]["phone"] = json!("call me maybe");
    refused(&op, before, op.post("/api/cases", &bad), 400, "bad_request", None);
    let mut bad = sample_case("x");
    bad["received_at"] = json!("2999-01-01T00:00:00+08:00");
    refused(&op, before, op.post("/api/cases", &bad), 400, "bad_request", None);
    let mut bad = sample_case("x");
    bad["place"]["lat"] = json!(123.0);
    refused(&op, before, op.post("/api/cases", &bad), 400, "bad_request", None);
    // Every free-text field has a limit (a 200,000-character address was
    // once stored and replicated).
    for (field, value) in [("/place/address", "址".repeat(20_000)), ("/title", "题".repeat(201)), ("/content", "容".repeat(10_001))] {
        let mut bad = sample_case("x");
        *bad.pointer_mut(field).unwrap() = json!(value);
        refused(&op, before, op.post("/api/cases", &bad), 400, "bad_request", None);
    }
    let long = "长".repeat(2001);
    for step in [
        json!({"action": "resolve", "public_reply": "好", "internal_note": long}),
        json!({"action": "progress", "note": long}),
        json!({"action": "feedback", "method": "m".repeat(65), "note": "好"}),
        json!({"action": "rate", "rating": "satisfied", "comment": long}),
        json!({"action": "dispatch", "to": "330102001001", "requirements": long}),
    ] {
        let (status, v) = op.post(&format!("/api/cases/{dup_id}/actions"), &step);
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains("at most"), "{step}: {v}");
        refused(&op, before, (status, v), 400, "bad_request", None);
    }
    refused(&op, before, op.post(&format!("/api/cases/{dup_id}/actions"), &json!({"action": "fly"})), 400, "bad_request", None);
    refused(&op, before, op.post("/api/cases/nonexistent/actions", &json!({"action": "sign_for"})), 404, "not_found", None);
    let (status, _) = op.post_raw("/api/cases", "application/json", vec![b' '; 512 * 1024]);
    assert_eq!(status, 413, "oversized body");
    assert_eq!(records(&op), before);

    // --- accounts through the API ---
    let (status, v) = admin.post("/api/users", &json!({"username": "li.si", "password": "longenough", "role": "operator", "display_name": "李四"}));
    assert_eq!(status, 201, "{v}");
    let (status, v) = admin.post("/api/users", &json!({"username": "li.si", "password": "longenough", "role": "operator"}));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("exists")));
    let (status, _) = admin.post("/api/users", &json!({"username": "x", "password": "short", "role": "operator"}));
    assert_eq!(status, 400);
    // Eight blanks, the user name itself, or a page of text are not passwords.
    for password in ["        ".to_string(), "wang.wu1".into(), " WANG.WU1 ".into(), "p".repeat(257)] {
        let (status, v) = admin.post("/api/users", &json!({"username": "wang.wu1", "password": password, "role": "operator"}));
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{password:?}: {v}");
    }
    let li = node.login("li.si", "longenough");
    assert_eq!(li.get("/api/me").1["display_name"], "李四");
    let (status, _) = li.post("/api/logout", &json!({}));
    assert_eq!(status, 204);
    assert_eq!(li.get("/api/me").0, 401, "token is dead after logout");

    // --- the node's own chain is complete and every record verifies ---
    let (status, v) = admin.get("/api/integrity");
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["report"]["own_chain_length"].as_u64(), Some(records(&op)));

    // --- OpenAPI document lists every route ---
    let (status, doc) = anon.get("/api/openapi.json");
    assert_eq!(status, 200);
    for (method, path) in zongzhi_node::api::ROUTES {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing from the OpenAPI document");
    }
    node.stop();
}

#[test]
fn escalation_is_refused_at_the_city_and_allowed_below() {
    let mut city = TestNode::init("330100000000", "杭州市社会治安综合治理中心");
    city.start();
    let op = city.login("operator", OPERATOR_PASSWORD);
    let c = op.file_case(&sample_case("市级受理"));
    let id = c["id"].as_str().unwrap();
    op.act(id, json!({"action": "sign_for"}));
    let (status, v) = op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "escalate", "reason": "无上级"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("no-level-above")));
    // In Chinese too (the console's own table once waited for a rule name never sent).
    assert_eq!(v["error"]["message_zh"], "市级中心没有上级，不能上报", "{v}");
    // The city dispatches down to an enrolled center only; the case leaves its queue.
    let (status, v) = op.post(&format!("/api/cases/{id}/actions"), &json!({"action": "dispatch", "to": "330102000000", "requirements": "就地化解"}));
    assert_eq!((status, v["error"]["rule"].as_str()), (422, Some("unknown-unit")), "{v}");
    let county = TestNode::init_with("330102000000", "西湖区社会治安综合治理中心", &format!("root_key = \"{}\"\n", city.node_id()));
    county.enroll_under(&city);
    let c = op.act(id, json!({"action": "dispatch", "to": "330102000000", "requirements": "就地化解"}));
    assert_eq!(c["owner"], "330102000000");
    assert_eq!(c["status"]["code"], "awaiting_receipt");
    let (_, q) = op.get("/api/cases");
    assert_eq!(q["total"], 0);
    let (_, q) = op.get("/api/cases?owner=330102000000");
    assert_eq!(q["total"], 1);
    // Health names the node.
    let (_, h) = op.get("/api/health");
    assert_eq!((h["level"].as_str(), h["division"].as_str()), (Some("city"), Some("330100000000")));
    city.stop();
}
