//! Another system (a 12345 platform) files cases with its own reference
//! and hears back: its API key from `zongzhi-node integration add`, the
//! filing idempotent on the reference (across a restart too), signed
//! status callbacks through the notification outbox with retries, the
//! status by reference; Open311 GeoReport v2 through a Python client that
//! speaks it (`georeport`, PyPI) plus the spec's form-encoded POST.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, OPERATOR_PASSWORD, TestNode, bin, free_port, sample_case, wait_for};

/// A callback receiver: every request's headers and body; answers 500 to
/// the first `fail` requests, then 200.
#[derive(Default)]
struct Seen {
    requests: Vec<(u16, String, Vec<u8>)>,
    fail: usize,
}

fn receiver(port: u16, seen: Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
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
                    break (String::new(), Vec::new());
                }
            };
            let mut seen = seen.lock().unwrap();
            let status = if seen.fail > 0 {
                seen.fail -= 1;
                500
            } else {
                200
            };
            seen.requests.push((status, head, body));
            drop(seen);
            let _ = s.write_all(format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
        }
    });
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The key and the config table `zongzhi-node integration add` printed.
fn add_integration(name: &str, callback: &str) -> (String, String) {
    let o = std::process::Command::new(bin("zongzhi-node")).args(["integration", "add", "--name", name, "--display-name", "市12345热线平台", "--callback-url", callback]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let key = out.lines().map(str::trim).find(|l| l.starts_with("zzk_")).unwrap().to_string();
    let table = out[out.find("[[integration]]").unwrap()..].to_string();
    (key, table)
}

fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new().post(format!("{url}/api/intake/cases")).json(body);
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn a_hotline_files_by_its_reference_and_hears_every_step_signed() {
    let port = free_port();
    let seen = Arc::new(Mutex::new(Seen { fail: 1, ..Default::default() }));
    receiver(port, seen.clone());
    let (key, table) = add_integration("hotline12345", &format!("http://127.0.0.1:{port}/zongzhi/callback"));
    let secret = table.lines().find_map(|l| l.strip_prefix("callback_secret = ")).unwrap().trim_matches('"').to_string();
    let mut node = TestNode::init_with("330102001000", "留下街道社会治安综合治理中心", &format!("[notify]\nadapter = \"log\"\nretry_initial_secs = 1\nretry_max_secs = 1\n{table}"));
    node.start();
    let url = node.url();
    let admin = node.login("admin", ADMIN_PASSWORD);
    let records = || admin.get("/api/health").1["records"].as_u64().unwrap();

    // No key, a wrong key, no reference: refused, nothing stored.
    let mut filing = sample_case("12345来电：楼上噪音");
    filing["external_ref"] = json!("GD-2026-000123");
    let before = records();
    assert_eq!(post(&url, None, &filing).0, 401);
    assert_eq!(post(&url, Some("zzk_not-the-key"), &filing).0, 401);
    let mut no_ref = filing.clone();
    no_ref.as_object_mut().unwrap().remove("external_ref");
    let (status, v) = post(&url, Some(&key), &no_ref);
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert_eq!(records(), before);

    // Filed once; the same reference again answers the same case.
    let (status, first) = post(&url, Some(&key), &filing);
    assert_eq!(status, 201, "{first}");
    assert_eq!((first["external_ref"].as_str(), first["status"].as_str()), (Some("GD-2026-000123"), Some("awaiting_receipt")));
    assert!(first["receipt"]["query_code"].is_string(), "{first}");
    let after = records();
    let (status, again) = post(&url, Some(&key), &filing);
    assert_eq!((status, &again["case_id"]), (200, &first["case_id"]), "{}", again["error"]);
    assert_eq!(records(), after, "a repeat stored something");
    let case = first["case_id"].as_str().unwrap().to_string();
    let number = first["number"].as_str().unwrap().to_string();
    // Recorded under the system's name, on the system's channel when it gives none.
    let op = node.login("operator", OPERATOR_PASSWORD);
    let detail = op.case(&case);
    assert_eq!(detail["timeline"][0]["operator"], "接口:hotline12345", "{detail}");

    // Steps: each one is called back, signed; the first attempt (500) is retried.
    op.act(&case, json!({"action": "sign_for"}));
    op.act(&case, json!({"action": "route", "window": "justice"}));
    op.act(&case, json!({"action": "resolve", "public_reply": "已协调楼上住户调整施工时间"}));
    let delivered = wait_for("the callbacks of filing, 签收, 分流 and 办结", 60, || {
        let s = seen.lock().unwrap();
        let ok: Vec<(String, Vec<u8>)> = s.requests.iter().filter(|r| r.0 == 200).map(|r| (r.1.clone(), r.2.clone())).collect();
        (ok.len() >= 4).then_some(ok)
    });
    assert_eq!(seen.lock().unwrap().requests[0].0, 500);
    let mut actions = Vec::new();
    for (head, body) in &delivered {
        let t = header(head, "x-zongzhi-timestamp").unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        assert_eq!(header(head, "x-zongzhi-signature").unwrap(), format!("sha256={}", hex::encode(mac.finalize().into_bytes())), "bad signature on {head}");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!((v["external_ref"].as_str(), v["number"].as_str()), (Some("GD-2026-000123"), Some(number.as_str())), "{v}");
        assert_eq!(header(head, "x-zongzhi-event"), v["id"].as_str());
        actions.push(v["action"].as_str().unwrap().to_string());
        if v["action"] == "resolve" {
            assert_eq!(v["public_reply"], "已协调楼上住户调整施工时间");
        }
    }
    assert_eq!(actions, ["file", "sign_for", "route", "resolve"], "each step once, in order");
    // No SMS for a system's case (the system speaks to its citizen): the
    // outbox held callbacks only.
    let (_, outbox) = admin.get("/api/notifications?state=delivered");
    let templates: Vec<&str> = outbox["notifications"].as_array().unwrap().iter().map(|e| e["template"].as_str().unwrap()).collect();
    assert!(templates.len() >= 4 && templates.iter().all(|t| *t == "callback"), "{outbox}");

    // The status by reference; another system's or an unknown reference is not found.
    let r = reqwest::blocking::Client::new().get(format!("{url}/api/intake/cases/GD-2026-000123")).header("X-Api-Key", &key).send().unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!((v["status"].as_str(), v["public_reply"].as_str()), (Some("resolved"), Some("已协调楼上住户调整施工时间")), "{v}");
    let r = reqwest::blocking::Client::new().get(format!("{url}/api/intake/cases/GD-none")).header("X-Api-Key", &key).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // After a restart the reference still finds its case.
    node.stop();
    node.start();
    let (status, again) = post(&url, Some(&key), &filing);
    assert_eq!((status, &again["case_id"]), (200, &first["case_id"]), "{}", again["error"]);
}

#[test]
fn open311_clients_list_services_post_and_follow_requests() {
    let (key, table) = add_integration("grid_app", "http://127.0.0.1:9/unused");
    let mut node = TestNode::init_with("330102001000", "留下街道社会治安综合治理中心", &table);
    node.start();
    let url = node.url();
    let script = r#"
import json, sys, requests
from georeport import GeoReport
root, key = sys.argv[1], sys.argv[2]
client = GeoReport(root)
services = client.get_service_list()
noise = [s for s in services if s["service_code"] == "0202"]
assert noise and noise[0]["service_name"] and noise[0]["group"], services
# The spec's POST: form-encoded, api_key among the fields.
form = {"api_key": key, "service_code": "0202", "description": "网格员上报：小区夜间施工噪音扰民",
        "lat": "30.27", "long": "120.15", "address_string": "留下街道某小区", "first_name": "李", "last_name": "四",
        "phone": "13900001111", "attribute[external_ref]": "WG-77"}
r = requests.post(root + "/requests.json", data=form)
assert r.status_code == 201, r.text
created = r.json()[0]
again = requests.post(root + "/requests.json", data=form).json()[0]
assert again["service_request_id"] == created["service_request_id"], (created, again)
bad = requests.post(root + "/requests.json", data=dict(form, api_key="zzk_wrong"))
assert bad.status_code == 401 and bad.json()[0]["code"] == 401, bad.text
# Reading requests needs the key: sent as a header on every GET.
plain_get = requests.get
requests.get = lambda url, **kw: plain_get(url, headers={"X-Api-Key": key}, **kw)
one = client.get_service_request(created["service_request_id"])
many = client.get_service_requests(service_request_id=created["service_request_id"])
print(json.dumps({"created": created, "one": one, "many": many}))
"#;
    let run = || {
        let o = std::process::Command::new("python3").args(["-c", script, &format!("{url}/open311/v2"), &key]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let v = run();
    let number = v["created"]["service_request_id"].as_str().unwrap().to_string();
    assert_eq!((v["one"]["service_request_id"].as_str(), v["one"]["status"].as_str()), (Some(number.as_str()), Some("open")), "{v}");
    assert_eq!(v["one"]["service_code"], "0202");
    assert_eq!(v["one"]["lat"], 30.27);
    assert_eq!(v["many"].as_array().unwrap().len(), 1);
    // Closed once resolved, with the public reply as the status notes.
    let op = node.login("operator", OPERATOR_PASSWORD);
    let case = op.case(&number)["id"].as_str().unwrap().to_string();
    op.act(&case, json!({"action": "sign_for"}));
    op.act(&case, json!({"action": "resolve", "public_reply": "已约谈施工单位"}));
    let v = run();
    assert_eq!((v["one"]["status"].as_str(), v["one"]["status_notes"].as_str()), (Some("closed"), Some("已约谈施工单位")), "{v}");
    // A case filed at the console is not another system's to read.
    let other = op.file_case(&sample_case("窗口受理"));
    let r = reqwest::blocking::Client::new().get(format!("{url}/open311/v2/requests/{}.json", other["number"].as_str().unwrap())).header("X-Api-Key", &key).send().unwrap();
    assert_eq!(r.json::<Value>().unwrap(), json!([]));
}
