//! A full disk, on a real node whose data directory is a 48 MiB tmpfs:
//! writes are refused with 503 `storage_unavailable` (JSON, Retry-After)
//! and change nothing, reads go on, the alarm shows in health, `/metrics`
//! and the console; writing resumes by itself once space is freed; the
//! node starts again on a full disk (its reserve goes); nothing
//! acknowledged is lost.
//!
//! Mounting needs root (CI runs as root on a fresh machine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{sample_case, wait_for, Api, TestNode, OPERATOR_PASSWORD};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output().unwrap();
        assert!(out.status.success(), "mounting a tmpfs needs root: {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(at.to_path_buf())
    }

    /// Fills the disk up with `fill.bin` until a write fails.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("fill.bin")).unwrap();
        let chunk = vec![7u8; 256 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let small = [7u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("fill.bin")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn health(api: &Api) -> Value {
    let (status, v) = api.get("/api/health");
    assert_eq!(status, 200, "{v}");
    v
}

fn metric(node: &TestNode, name: &str) -> Option<f64> {
    let text = reqwest::blocking::get(format!("{}/metrics", node.url())).unwrap().text().unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `GET /api/health/<probe>` without a login: the status and the JSON,
/// and whether the answer carries Retry-After.
fn probe(node: &TestNode, which: &str) -> (u16, Value, bool) {
    let r = reqwest::blocking::get(format!("{}/api/health/{which}", node.url())).unwrap();
    let (status, retry) = (r.status().as_u16(), r.headers().contains_key("retry-after"));
    (status, r.json().unwrap(), retry)
}

fn case_ids(api: &Api) -> Vec<String> {
    let (status, v) = api.get("/api/cases?limit=500");
    assert_eq!(status, 200, "{v}");
    let mut ids: Vec<String> = v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn a_full_disk_is_503_and_the_node_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "48m");
    let mut node = TestNode::init_in(dir, "330106001000", "留下街道综治中心", "storage_reserve_mb = 8\n");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    assert_eq!(health(&api)["storage"]["status"], "ok");
    assert_eq!(health(&api)["storage"]["reserve_bytes"], 8 << 20, "the reserve is taken at start");
    assert_eq!(probe(&node, "ready").0, 200);
    assert_eq!(probe(&node, "live").0, 200);
    let mut acknowledged = vec![api.file_case(&sample_case("装修噪音"))["id"].as_str().unwrap().to_string()];
    let first = acknowledged[0].clone();

    disk.fill();
    // A filing and a step are refused as the server's fault, change nothing.
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{}/api/cases", node.url()))
        .bearer_auth(api.token.as_ref().unwrap())
        .json(&sample_case("磁盘已满时登记"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some(), "503 carries Retry-After");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let (status, v) = api.post(&format!("/api/cases/{first}/actions"), &json!({"action": "sign_for"}));
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("storage_unavailable")), "{v}");
    // Reads go on, and show nothing of the refused writes.
    assert_eq!(case_ids(&api), acknowledged);
    assert_eq!(api.case(&first)["status"]["code"], "awaiting_receipt");
    // The alarm: health, metrics, the console's banner.
    let h = wait_for("the storage alarm in health", 10, || {
        let h = health(&api);
        (h["storage"]["status"] == "unavailable").then_some(h)
    });
    assert_eq!(h["status"], "degraded");
    assert!(h["storage"]["fault"].as_str().unwrap().contains("No space"), "{h}");
    assert_eq!(metric(&node, "zongzhi_storage_unavailable"), Some(1.0));
    // Not ready (a load balancer sends writes elsewhere), yet alive (a
    // restart would not help); /api/health itself stays 200.
    let (status, ready, retry) = probe(&node, "ready");
    assert_eq!((status, ready["status"].as_str(), retry), (503, Some("not_ready"), true), "{ready}");
    assert_eq!(ready["reasons"][0]["code"], "storage_unavailable", "{ready}");
    assert!(ready["reasons"][0]["message"].as_str().unwrap().contains("No space"), "{ready}");
    assert_eq!(probe(&node, "live").0, 200);
    assert_eq!(metric(&node, "zongzhi_ready"), Some(0.0));
    // Logging in still works on the full disk (to read, and to see why).
    let reader = node.login("viewer", zongzhi_tests::VIEWER_PASSWORD);
    assert_eq!(case_ids(&reader), acknowledged);
    let mut browser = Browser::launch();
    browser.login(&node.url(), "operator", OPERATOR_PASSWORD);
    let banner = browser.wait("the storage banner", 15, "document.querySelector('[data-test=storage-fault]')?.innerText");
    assert!(banner.as_str().unwrap().contains("存储故障"), "{banner}");
    browser.screenshot("storage-fault-banner");

    // Space returns: writes resume without a restart.
    disk.free();
    wait_for("writes to resume", 20, || (health(&api)["storage"]["status"] == "ok").then_some(()));
    assert_eq!(metric(&node, "zongzhi_storage_unavailable"), Some(0.0));
    assert!(health(&api)["storage"]["recovered_at"].is_string());
    let (status, ready, _) = probe(&node, "ready");
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    assert_eq!(metric(&node, "zongzhi_ready"), Some(1.0));
    acknowledged.push(api.file_case(&sample_case("恢复后登记"))["id"].as_str().unwrap().to_string());
    api.act(&first, json!({"action": "sign_for"}));

    // Full again, and the node dies: it starts on the full disk (the
    // reserve goes), with everything it acknowledged.
    disk.fill();
    node.kill9();
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    let h = health(&api);
    assert_eq!(h["storage"]["status"], "low", "{h}");
    assert_eq!(h["storage"]["reserve_bytes"], 0, "{h}");
    assert!(node.log().contains("released the 8 MiB storage reserve"), "{}", node.log());
    acknowledged.sort();
    assert_eq!(case_ids(&api), acknowledged);
    assert_eq!(api.case(&first)["status"]["code"], "accepted");
    // Space again: the reserve is taken back and the alarm clears.
    disk.free();
    wait_for("the reserve to come back", 20, || (health(&api)["storage"]["reserve_bytes"] == 8 << 20).then_some(()));
    assert_eq!(health(&api)["storage"]["status"], "ok");
    api.file_case(&sample_case("再次登记"));
}
