//! The case list, its filters and paging, and search, through real HTTP
//! against a real node process: pages return every case once in list order
//! while cases change between pages; search finds by number, phone, ID
//! number and words, and never by a number the role may not see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use serde_json::{Value, json};
use zongzhi_tests::{Api, OPERATOR_PASSWORD, TestNode, VIEWER_PASSWORD, sample_case};

/// Every page of `query`, `limit` at a time; `between` runs after each page.
fn all_pages(api: &Api, query: &str, limit: usize, mut between: impl FnMut(usize)) -> (Vec<Value>, Value) {
    let mut out = Vec::new();
    let mut after = String::new();
    let mut first = Value::Null;
    for n in 0.. {
        let (status, page) = api.get(&format!("/api/cases?{query}&limit={limit}{after}"));
        assert_eq!(status, 200, "{page}");
        if n == 0 {
            first = page.clone();
        }
        out.extend(page["cases"].as_array().unwrap().iter().cloned());
        between(n);
        match page["next"].as_str() {
            Some(c) => after = format!("&after={c}"),
            None => break,
        }
    }
    (out, first)
}

fn numbers(cases: &[Value]) -> Vec<String> {
    cases.iter().map(|c| c["number"].as_str().unwrap().to_string()).collect()
}

fn case_with(title: &str, phone: &str, category: &str, urgent: bool) -> Value {
    let mut c = sample_case(title);
    c["contact"]["phone"] = json!(phone);
    c["category"] = json!(category);
    c["urgency"] = json!(if urgent { "urgent" } else { "normal" });
    c
}

#[test]
fn paging_filters_and_search() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let viewer = node.login("viewer", VIEWER_PASSWORD);
    let titles = ["楼上装修噪音扰民", "拖欠农民工工资", "物业多收停车费"];
    let mut ids = Vec::new();
    for i in 0..23 {
        let c = op.file_case(&case_with(titles[i % 3], &format!("1380000{:04}", i % 5), if i % 3 == 1 { "0401" } else { "0202" }, i % 7 == 0));
        ids.push((c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string()));
    }

    // Pages in list order, every case once; the total comes with the first.
    let (cases, first) = all_pages(&op, "status=all", 4, |_| {});
    assert_eq!(first["total"], 23);
    assert_eq!(first["total_exact"], true);
    let got = numbers(&cases);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 23, "each case once: {got:?}");
    let due: Vec<String> = cases.iter().map(|c| c["next_due_at"].as_str().unwrap_or("~").to_string()).collect();
    assert!(due.windows(2).all(|w| w[0] <= w[1]), "due order: {due:?}");

    // Cases change between pages: those that did not move come once each,
    // in order, and no case comes twice.
    let moved: Vec<String> = ids.iter().step_by(5).map(|(id, _)| id.clone()).collect();
    let mut k = 0;
    let (cases, _) = all_pages(&op, "status=all", 4, |_| {
        if let Some(id) = moved.get(k) {
            op.act(id, json!({"action": "sign_for"}));
            k += 1;
        }
    });
    let seen = numbers(&cases);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "no case twice: {seen:?}");
    let moved_numbers: HashSet<String> = ids.iter().step_by(5).map(|(_, n)| n.clone()).collect();
    for (_, n) in &ids {
        if !moved_numbers.contains(n) {
            assert!(seen.contains(n), "unchanged case {n} missing while others moved");
        }
    }

    // Filters from the index: urgency, category prefix, status.
    let (urgent, page) = all_pages(&op, "status=all&urgency=urgent", 2, |_| {});
    assert_eq!(urgent.len(), 4);
    assert_eq!(page["total"], 4);
    assert!(urgent.iter().all(|c| c["urgency"]["code"] == "urgent"));
    let (wages, _) = all_pages(&op, "status=all&category=04", 3, |_| {});
    assert_eq!(wages.len(), 8);
    assert!(wages.iter().all(|c| c["category"]["code"] == "0401"));
    let (signed, _) = all_pages(&op, "status=accepted", 10, |_| {});
    assert_eq!(signed.len(), moved.len());
    let (overdue, _) = all_pages(&op, "status=all&overdue=true", 10, |_| {});
    assert!(overdue.is_empty());
    // My clocks: this center registered every case and runs its clocks.
    let (mine, _) = all_pages(&op, "clock=any", 7, |_| {});
    assert_eq!(mine.len(), 23);
    assert!(mine.iter().all(|c| c["clocks"].as_array().unwrap().iter().any(|k| k["unit"] == "330102001000")));

    // Bad input: a JSON 400, nothing else.
    for q in ["after=zz", "limit=0", "clock=lunch", "overdue=maybe", "category=%27%20or%201"] {
        let (status, v) = op.get(&format!("/api/cases?{q}"));
        assert_eq!(status, 400, "{q}: {v}");
        assert!(v["error"]["message"].as_str().is_some(), "{v}");
    }

    // Search by number, by number prefix, by phone, by ID number, by words.
    let (n0, id0) = (&ids[0].1, &ids[0].0);
    let (_, v) = op.get(&format!("/api/search?q={n0}"));
    assert_eq!(v["kind"], "number");
    assert_eq!(v["cases"][0]["id"], id0.as_str());
    let (_, v) = op.get("/api/search?q=330102001000&limit=10");
    assert_eq!(v["cases"].as_array().unwrap().len(), 10);
    assert!(v["next"].is_string());
    let (_, v) = op.get("/api/search?q=138%2000000002");
    assert_eq!(v["kind"], "phone");
    let phone_hits: HashSet<String> = v["cases"].as_array().unwrap().iter().map(|c| c["number"].as_str().unwrap().to_string()).collect();
    let want: HashSet<String> = ids.iter().enumerate().filter(|(i, _)| i % 5 == 2).map(|(_, (_, n))| n.clone()).collect();
    assert_eq!(phone_hits, want);
    let (_, v) = op.get("/api/search?q=330102199001011234&limit=100");
    assert_eq!(v["kind"], "id_number");
    assert_eq!(v["cases"].as_array().unwrap().len(), 23);
    let (_, v) = op.get(&format!("/api/search?q={}", urlencode("工资")));
    assert_eq!(v["kind"], "words");
    assert_eq!(v["cases"].as_array().unwrap().len(), 8);
    let (_, v) = op.get(&format!("/api/search?q={}", urlencode("停车 物业")));
    assert_eq!(v["cases"].as_array().unwrap().len(), 7);
    let (_, v) = op.get(&format!("/api/search?q={}", urlencode("噪音工资")));
    assert!(v["cases"].as_array().unwrap().is_empty(), "every pair must occur: {v}");
    // Search results carry no personal data.
    let (_, v) = op.get("/api/search?q=13800000002");
    let text = v.to_string();
    assert!(!text.contains("13800000002") && !text.contains("张三"), "{text}");
    // A viewer may not search by phone; searching words works.
    let (status, v) = viewer.get("/api/search?q=13800000002");
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (status, _) = viewer.get(&format!("/api/search?q={}", urlencode("工资")));
    assert_eq!(status, 200);
    let (status, v) = op.get("/api/search?q=a");
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("query_too_short")), "{v}");

    // After a restart and a reindex the same answers come back.
    node.stop();
    let out = node.node_cmd(&["reindex"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let (again, _) = all_pages(&op, "status=all", 50, |_| {});
    assert_eq!(again.len(), 23);
    let (_, v) = op.get(&format!("/api/search?q={}", urlencode("工资")));
    assert_eq!(v["cases"].as_array().unwrap().len(), 8);
    let (_, v) = op.get("/api/search?q=13800000002");
    assert_eq!(v["cases"].as_array().unwrap().len(), want.len());
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
