//! Restart, reindex, SIGKILL at random moments, and tamper detection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zongzhi_node::store::Store;
use zongzhi_protocol::RecordId;
use zongzhi_tests::{ADMIN_PASSWORD, Api, OPERATOR_PASSWORD, TestNode, sample_case};

/// Everything a user can read about the node's cases, for comparisons.
fn snapshot(api: &Api) -> Value {
    let (_, all) = api.get("/api/cases?owner=all&status=all&limit=1000");
    let mut details = Vec::new();
    for c in all["cases"].as_array().unwrap() {
        let mut d = api.case(c["id"].as_str().unwrap());
        // Countdown flags depend on the wall clock, not on stored state.
        strip_clock_dependent(&mut d);
        details.push(d);
    }
    let mut all = all;
    for c in all["cases"].as_array_mut().unwrap() {
        strip_clock_dependent(c);
    }
    json!({"queue": all, "details": details})
}

fn strip_clock_dependent(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("overdue");
        o.remove("due_soon");
        if let Some(ds) = o.get_mut("deadlines").and_then(Value::as_array_mut) {
            for d in ds {
                d.as_object_mut().unwrap().remove("overdue");
            }
        }
    }
}

fn drive_some_cases(api: &Api) {
    for i in 0..5 {
        let c = api.file_case(&sample_case(&format!("案件{i}")));
        let id = c["id"].as_str().unwrap();
        api.act(id, json!({"action": "sign_for"}));
        if i % 2 == 0 {
            api.act(id, json!({"action": "route", "window": "justice"}));
            api.act(id, json!({"action": "resolve", "public_reply": "已处理"}));
        }
        if i == 4 {
            api.act(id, json!({"action": "feedback", "note": "已告知"}));
        }
    }
}

#[test]
fn state_is_identical_after_restart_and_after_reindex() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    drive_some_cases(&api);
    let before = snapshot(&api);
    node.stop();
    node.start();
    assert_eq!(snapshot(&api), before, "state changed across a clean restart");
    node.stop();

    let dump = |node: &TestNode| Store::open(&node.db_path()).unwrap().derived_dump().unwrap();
    let derived_before = dump(&node);
    assert!(!derived_before.is_empty());
    let out = node.node_cmd(&["reindex"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&node), derived_before, "reindex produced different derived data");
    node.start();
    assert_eq!(snapshot(&api), before, "state changed after reindex");
    node.stop();
}

/// What the driver threads saw acknowledged.
#[derive(Default)]
struct Acked {
    /// (case id, event id) of every 2xx step.
    events: Vec<(String, String)>,
}

fn driver(api: Api, acked: Arc<Mutex<Acked>>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut open: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (path, body) = if open.is_empty() || next() % 3 == 0 {
            ("/api/cases".to_string(), sample_case("崩溃测试案件"))
        } else {
            let id = open[(next() % open.len() as u64) as usize].clone();
            let action = match next() % 4 {
                0 => json!({"action": "sign_for"}),
                1 => json!({"action": "progress", "note": "进展"}),
                2 => json!({"action": "route", "window": "police"}),
                _ => json!({"action": "add_helpers", "windows": ["health"]}),
            };
            (format!("/api/cases/{id}/actions"), action)
        };
        match api.try_post(&path, &body) {
            Some((status, v)) if status == 200 || status == 201 => {
                let case = v["id"].as_str().unwrap().to_string();
                let event = v["timeline"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string();
                if status == 201 {
                    open.push(case.clone());
                }
                acked.lock().unwrap().events.push((case, event));
            }
            Some(_) => {}                                         // a rule refused it (e.g. sign_for twice): nothing to check
            None => std::thread::sleep(Duration::from_millis(5)), // node down
        }
    }
}

#[test]
fn acknowledged_steps_survive_sigkill() {
    let kills: u64 = std::env::var("ZONGZHI_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut node = TestNode::init("330102001001", "某村社会治安综合治理工作站");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut checked = 0usize;
    let started = Instant::now();
    for round in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (api, acked, stop) = (api.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || driver(api, acked, stop, round * 31 + t + 1))
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 130));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        node.start();
        // Every step acknowledged before the kill is there.
        let events = acked.lock().unwrap().events.clone();
        let mut by_case: std::collections::HashMap<&str, HashSet<String>> = Default::default();
        for (case, _) in &events[checked..] {
            by_case.entry(case.as_str()).or_default();
        }
        for case in by_case.keys() {
            let d = api.case(case);
            let have: HashSet<String> = d["timeline"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
            for (c, e) in &events {
                if c == case {
                    assert!(have.contains(e), "round {round}: acknowledged event {e} of case {case} lost");
                }
            }
        }
        checked = events.len();
        // The author chain has no gap.
        let (_, v) = admin.get("/api/integrity");
        assert_eq!(v["ok"], true, "round {round}: {v}");
    }
    let events = acked.lock().unwrap().events.len();
    let (_, v) = admin.get("/api/integrity");
    let chain = v["report"]["own_chain_length"].as_u64().unwrap() as usize;
    assert!(chain >= events, "chain {chain} shorter than {events} acknowledged steps");
    assert!(events > kills as usize, "the driver acknowledged too little to mean anything ({events})");
    // Every acknowledged event id is distinct (nothing applied twice).
    let ids: HashSet<String> = acked.lock().unwrap().events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(ids.len(), events);
    eprintln!("{kills} kills, {events} acknowledged steps, chain {chain}, {:?}", started.elapsed());
    node.stop();
}

#[test]
fn a_flipped_byte_in_a_stored_record_is_detected() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    let c = api.file_case(&sample_case("篡改检测"));
    let id = c["id"].as_str().unwrap().to_string();
    api.act(&id, json!({"action": "sign_for"}));
    node.stop();
    let ok = node.node_cmd(&["verify"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));

    // Flip one byte inside the filing record's payload (the title text).
    {
        let store = Store::open(&node.db_path()).unwrap();
        let rid = RecordId::from_hex(&id).unwrap();
        let mut bytes = store.record_bytes(&rid).unwrap().unwrap();
        let pos = bytes.windows("篡改检测".len()).position(|w| w == "篡改检测".as_bytes()).unwrap();
        bytes[pos + 1] ^= 0x01;
        store.overwrite_record_unchecked(&rid, &bytes).unwrap();
    }
    let out = node.node_cmd(&["verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("PROBLEM") && text.contains(&id), "{text}");

    node.start();
    let d = api.case(&id);
    assert_eq!(d["timeline"][0]["signature_valid"], false, "{d}");
    assert_eq!(d["timeline"][1]["signature_valid"], true);
    assert!(!d["integrity_errors"].as_array().unwrap().is_empty());
    let admin = node.login("admin", ADMIN_PASSWORD);
    let (_, v) = admin.get("/api/integrity");
    assert_eq!(v["ok"], false, "{v}");
    node.stop();
}
