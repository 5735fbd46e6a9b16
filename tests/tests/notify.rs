//! Citizen notifications against a real node process: the webhook posts
//! to a receiver in this test (a plain TCP listener speaking just enough
//! HTTP/1.1), which can answer 500 or be down. The receipt, a public
//! progress note, the resolution and the rating invitation each arrive
//! once, with the case number; failures are retried until delivered, also
//! across a restart of the node; steps of cases without a phone, and steps
//! not meant for the citizen, send nothing. The log adapter writes the
//! message to the node's log. A template naming an unknown variable stops
//! the node at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Api, OPERATOR_PASSWORD, TestNode, free_port, sample_case, wait_for};

/// What the receiver saw: every request (with the status it answered) and
/// the messages it accepted.
#[derive(Default)]
struct Seen {
    requests: Vec<(u16, String, Value)>,
    accepted: Vec<Value>,
    /// Answer 500 to this many requests, then 200.
    fail_next: usize,
}

/// A webhook receiver on a fixed port that can be taken down and brought
/// back up.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn new(port: u16) -> Receiver {
        let mut r = Receiver { port, seen: Arc::default(), stop: Arc::default(), thread: None };
        r.up();
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/gateway/sms", self.port)
    }

    fn up(&mut self) {
        assert!(self.thread.is_none());
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (seen, stop) = (self.seen.clone(), self.stop.clone());
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => serve(s, &seen),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("accept: {e}"),
                }
            }
        }));
    }

    /// Stops listening: connections are refused.
    fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }

    fn fail_next(&self, n: usize) {
        self.seen.lock().unwrap().fail_next = n;
    }

    fn accepted(&self) -> Vec<Value> {
        self.seen.lock().unwrap().accepted.clone()
    }

    fn requests(&self) -> Vec<(u16, String, Value)> {
        self.seen.lock().unwrap().requests.clone()
    }

    /// The accepted messages for `case_number`, by template.
    fn for_case(&self, case_number: &str) -> Vec<Value> {
        self.accepted().into_iter().filter(|m| m["case_number"] == case_number).collect()
    }

    /// Waits for an accepted message of `template` for `case_number`.
    fn wait(&self, case_number: &str, template: &str) -> Value {
        wait_for(&format!("{template} of {case_number}"), 30, || self.for_case(case_number).into_iter().find(|m| m["template"] == template))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.down();
        }
    }
}

/// Reads one request (headers and a Content-Length body), records it and
/// answers 500 or 200.
fn serve(mut s: TcpStream, seen: &Mutex<Seen>) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body) = loop {
        let n = s.read(&mut buf).unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
            if got.len() >= end + 4 + len {
                break (head, got[end + 4..end + 4 + len].to_vec());
            }
        }
        if n == 0 {
            return;
        }
    };
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut seen = seen.lock().unwrap();
    let status = if seen.fail_next > 0 {
        seen.fail_next -= 1;
        500
    } else {
        seen.accepted.push(message.clone());
        200
    };
    seen.requests.push((status, head, message));
    drop(seen);
    let reason = if status == 200 { "OK" } else { "Internal Server Error" };
    let _ = s.write_all(format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}").as_bytes());
}

const PUBLIC: &str = "https://city.example/public/";

/// The outbox entries as the API lists them.
fn outbox(admin: &Api) -> Value {
    let (status, v) = admin.get("/api/notifications");
    assert_eq!(status, 200, "{v}");
    v
}

fn entry(admin: &Api, case_number: &str, template: &str) -> Option<Value> {
    outbox(admin)["notifications"].as_array().unwrap().iter().find(|e| e["case_number"] == case_number && e["template"] == template).cloned()
}

/// The id of the last step in a case detail.
fn last_step(case: &Value) -> String {
    case["timeline"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string()
}

#[test]
fn webhook_messages_are_retried_survive_a_restart_and_arrive_once() {
    let mut rx = Receiver::new(free_port());
    let mut node = TestNode::init_with(
        "330106010001",
        "示例社区工作站",
        &format!(
            "[notify]\nadapter = \"webhook\"\nurl = \"{}\"\ntoken = \"test-token\"\npublic_url = \"{PUBLIC}\"\nretry_initial_secs = 1\nretry_max_secs = 2\ntimeout_secs = 5\n[public]\nurl = \"{PUBLIC}\"\n",
            rx.url()
        ),
    );
    node.start();
    let op = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let v = outbox(&admin);
    assert_eq!((v["enabled"].as_bool(), v["adapter"].as_str()), (Some(true), Some("webhook")), "{v}");
    for who in ["operator", "viewer"] {
        let api = node.login(who, if who == "operator" { OPERATOR_PASSWORD } else { zongzhi_tests::VIEWER_PASSWORD });
        assert_eq!(api.get("/api/notifications").0, 403, "{who}");
    }

    // --- 受理: the receipt, with the case number, title and public page ---
    let c = op.file_case(&sample_case("楼道堆放杂物"));
    let (id, number) = (c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string());
    let receipt = rx.wait(&number, "receipt");
    // The query code the filing showed once reaches the citizen too.
    let code = c["receipt"]["query_code"].as_str().unwrap();
    assert_eq!(receipt["text"], format!("【综治中心】您反映的“楼道堆放杂物”已由示例社区工作站受理，编号{number}，查询码{code}。查询进度：{PUBLIC}"), "{receipt}");
    assert_eq!((receipt["to"].as_str(), receipt["id"].as_str()), (Some("13812341234"), Some(id.as_str())), "{receipt}");
    assert!(receipt["created_at"].as_str().unwrap().ends_with("+08:00"), "{receipt}");
    let (_, head, _) = rx.requests()[0].clone();
    assert!(head.starts_with("POST /gateway/sms HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\nauthorization: bearer test-token"), "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\ncontent-type: application/json"), "{head}");
    let e = wait_for("the receipt delivered", 10, || entry(&admin, &number, "receipt").filter(|e| e["state"] == "delivered"));
    assert_eq!((e["attempts"].as_u64(), e["to"].as_str(), e["last_error"].is_null()), (Some(1), Some("138****1234"), true), "{e}");

    // --- a public progress note while the gateway answers 500: retried, delivered later ---
    op.act(&id, json!({"action": "sign_for"}));
    op.act(&id, json!({"action": "progress", "note": "内部：物业电话未接通", "public": false}));
    rx.fail_next(2);
    op.act(&id, json!({"action": "progress", "note": "已约谈物业，三日内清理。", "public": true}));
    let failing = wait_for("a failed attempt listed", 20, || entry(&admin, &number, "progress").filter(|e| e["state"] == "pending" && e["attempts"].as_u64() >= Some(1)));
    assert!(failing["last_error"].as_str().unwrap().starts_with("HTTP 500"), "{failing}");
    assert!(failing["next_attempt_at"].is_string(), "{failing}");
    let progress = rx.wait(&number, "progress");
    assert_eq!(progress["text"], format!("【综治中心】您反映的事项（编号{number}）有新进展：已约谈物业，三日内清理。 查询进度：{PUBLIC}"));
    let e = wait_for("the progress note delivered", 10, || entry(&admin, &number, "progress").filter(|e| e["state"] == "delivered"));
    assert_eq!(e["attempts"].as_u64(), Some(3), "two 500s, then 200: {e}");
    assert_eq!(rx.requests().iter().filter(|(status, _, m)| *status == 500 && m["template"] == "progress").count(), 2);

    // --- the resolution while the receiver is down, across a restart of the node ---
    rx.down();
    let resolved = op.act(&id, json!({"action": "resolve", "public_reply": "杂物已清理完毕，楼道恢复通行。"}));
    let resolution_id = last_step(&resolved);
    let waiting = wait_for("a refused connection listed", 20, || entry(&admin, &number, "resolution").filter(|e| e["attempts"].as_u64() >= Some(1)));
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert!(waiting["last_error"].as_str().unwrap().starts_with("connecting to 127.0.0.1:"), "{waiting}");
    node.stop();
    node.start();
    let admin = node.login("admin", ADMIN_PASSWORD);
    let op = node.login("operator", OPERATOR_PASSWORD);
    let after = entry(&admin, &number, "resolution").unwrap();
    assert_eq!(after["state"], "pending", "still waiting after the restart: {after}");
    assert!(after["attempts"].as_u64() >= waiting["attempts"].as_u64(), "{after}");
    rx.up();
    let resolution = rx.wait(&number, "resolution");
    assert_eq!(resolution["text"], format!("【综治中心】您反映的事项（编号{number}）已由示例社区工作站办结：杂物已清理完毕，楼道恢复通行。"));
    assert_eq!(resolution["id"], resolution_id.as_str());
    wait_for("the resolution delivered", 10, || entry(&admin, &number, "resolution").filter(|e| e["state"] == "delivered"));

    // --- 反馈: the rating invitation ---
    let fed = op.act(&id, json!({"action": "feedback", "method": "phone", "note": "已电话告知处理结果"}));
    // The token goes to the citizen by message only: the operator never sees it.
    assert_eq!((fed["rating_invitation"]["sent_by_message"].as_bool(), fed["rating_invitation"]["token"].as_str()), (Some(true), None), "{fed}");
    let invitation = rx.wait(&number, "rating_invitation");
    let text = invitation["text"].as_str().unwrap();
    let prefix = format!("【综治中心】您反映的事项（编号{number}）已办结，请对办理结果作出评价：{PUBLIC}#n={number}&r=");
    let token = text.strip_prefix(&prefix).and_then(|t| t.strip_suffix("。感谢您的支持！")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(token.len(), 26, "a one-time token: {text}");

    // --- nothing for cases without a phone, nor for steps not told to citizens ---
    let mut no_phone = sample_case("无电话的事项");
    no_phone["contact"] = json!({"name": "王五"});
    let mut no_contact = sample_case("无联系方式的事项");
    no_contact.as_object_mut().unwrap().remove("contact");
    let mut silent = Vec::new();
    for body in [no_phone, no_contact] {
        let c = op.file_case(&body);
        let cid = c["id"].as_str().unwrap();
        op.act(cid, json!({"action": "sign_for"}));
        op.act(cid, json!({"action": "progress", "note": "已联系", "public": true}));
        op.act(cid, json!({"action": "resolve", "public_reply": "已处理"}));
        op.act(cid, json!({"action": "feedback", "method": "visit", "note": "已上门告知"}));
        silent.push(c["number"].as_str().unwrap().to_string());
    }
    // A later case's receipt arriving means everything before it was passed.
    let sentinel = op.file_case(&sample_case("哨兵事项"));
    let sentinel_number = sentinel["number"].as_str().unwrap().to_string();
    rx.wait(&sentinel_number, "receipt");
    for n in &silent {
        assert!(rx.for_case(n).is_empty(), "{n}: {:?}", rx.for_case(n));
        assert!(entry(&admin, n, "receipt").is_none());
    }

    // --- each message exactly once, the restart included ---
    let templates: Vec<String> = rx.for_case(&number).iter().map(|m| m["template"].as_str().unwrap().to_string()).collect();
    assert_eq!(templates, ["receipt", "progress", "resolution", "rating_invitation"]);
    let ids: std::collections::HashSet<String> = rx.accepted().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), rx.accepted().len(), "a message accepted twice: {:?}", rx.accepted());
    let v = outbox(&admin);
    assert_eq!((v["counts"]["pending"].as_u64(), v["counts"]["failed"].as_u64(), v["counts"]["delivered"].as_u64()), (Some(0), Some(0), Some(5)), "{v}");
    let (status, text) = {
        let (status, _, body) = admin.get_raw("/metrics");
        (status, String::from_utf8(body).unwrap())
    };
    assert_eq!(status, 200);
    assert!(text.contains("\nzongzhi_notify_queued 0\n"), "{text}");
    // Counted since the restart: the resolution, the invitation, the sentinel.
    assert!(text.contains("\nzongzhi_notify_delivered_total 3\n"), "{text}");
    assert!(text.contains("\nzongzhi_notify_failed_total 0\n"), "{text}");
    node.stop();
}

#[test]
fn the_log_adapter_writes_the_message_and_a_bad_template_stops_the_start() {
    let mut node = TestNode::init_with("330106010001", "示例社区工作站", "[notify]\nadapter = \"log\"\n[notify.templates]\nprogress = \"{number}进展：{note}\"\n");
    node.start_with(&[], &[("RUST_LOG", "warn,zongzhi::notify=info")]);
    let op = node.login("operator", OPERATOR_PASSWORD);
    let admin = node.login("admin", ADMIN_PASSWORD);
    let c = op.file_case(&sample_case("路灯不亮"));
    let (id, number) = (c["id"].as_str().unwrap().to_string(), c["number"].as_str().unwrap().to_string());
    op.act(&id, json!({"action": "sign_for"}));
    op.act(&id, json!({"action": "progress", "note": "已报修", "public": true}));
    let code = c["receipt"]["query_code"].as_str().unwrap();
    let receipt = format!("message: 【综治中心】您反映的“路灯不亮”已由示例社区工作站受理，编号{number}，查询码{code}。");
    wait_for("the receipt in the log", 20, || node.log().contains(&receipt).then_some(()));
    wait_for("the progress note in the log", 20, || node.log().contains(&format!("message: {number}进展：已报修")).then_some(()));
    let log = node.log();
    // Once: the progress note, a later step, came after it.
    assert_eq!(log.matches(&receipt).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(&receipt)).unwrap();
    assert!(line.contains("zongzhi::notify") && line.contains("to=138****1234") && !line.contains("13812341234"), "{line}");
    // The entry moves to delivered just after the line is written.
    let v = wait_for("both delivered", 10, || Some(outbox(&admin)).filter(|v| v["counts"]["delivered"] == 2));
    assert_eq!((v["adapter"].as_str(), v["counts"]["pending"].as_u64()), (Some("log"), Some(0)), "{v}");
    node.stop();

    // An unknown variable in a configured template: refused at start, saying which.
    let cfg = std::fs::read_to_string(&node.config).unwrap();
    std::fs::write(&node.config, cfg.replace("{number}进展：{note}", "{numbr}进展：{note}")).unwrap();
    let out = node.node_cmd(&["run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("[notify.templates] the progress template uses {numbr}, which is not a variable"), "{stderr}");
}
