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

use serde_json::{Value, json};
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{Api, OPERATOR_PASSWORD, TestNode, sample_case, wait_for};

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
    let r = http.post(format!("{}/api/cases", node.url())).bearer_auth(api.token.as_ref().unwrap()).json(&sample_case("磁盘已满时登记")).send().unwrap();
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

/// Fills `dir` with 1 MiB files (`chunk-N`) until the disk is full, then
/// the last bytes; returns the chunks' paths (free space by removing some).
fn fill_in_chunks(dir: &Path) -> Vec<PathBuf> {
    let mut chunks = Vec::new();
    let mb = vec![7u8; 1 << 20];
    loop {
        let p = dir.join(format!("chunk-{}", chunks.len()));
        let mut f = std::fs::File::create(&p).unwrap();
        let full = f.write_all(&mb).and_then(|()| f.sync_all()).is_err();
        if full {
            drop(f);
            std::fs::remove_file(&p).unwrap();
            break;
        }
        chunks.push(p);
    }
    let mut rest = std::fs::File::create(dir.join("rest.bin")).unwrap();
    let small = [7u8; 512];
    while rest.write_all(&small).is_ok() {}
    let _ = rest.sync_all();
    chunks
}

/// Writes resume as soon as there is room to write, even while the node
/// still holds a reserve larger than what was freed (the first write after
/// the space came back included).
#[test]
fn writes_resume_as_soon_as_there_is_room_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "48m");
    let mut node = TestNode::init_in(dir, "330106001000", "留下街道综治中心", "storage_reserve_mb = 8\n");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    let mut acknowledged = vec![api.file_case(&sample_case("装修噪音"))["id"].as_str().unwrap().to_string()];
    let chunks = fill_in_chunks(&disk.0);
    let (status, v) = api.post("/api/cases", &sample_case("磁盘已满时登记"));
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("storage_unavailable")), "{v}");
    wait_for("the storage alarm", 20, || (health(&api)["storage"]["status"] == "unavailable").then_some(()));
    assert_eq!(health(&api)["storage"]["reserve_bytes"], 8 << 20, "the reserve is still held");
    // 6 MiB freed: less than the reserve the node holds, room enough to write.
    std::fs::remove_file(disk.0.join("rest.bin")).unwrap();
    for c in &chunks[..6] {
        std::fs::remove_file(c).unwrap();
    }
    let h = wait_for("writes to resume", 30, || {
        let h = health(&api);
        (h["storage"]["status"] != "unavailable").then_some(h)
    });
    assert_eq!(h["storage"]["status"], "low", "below the reserve's worth free: low, not failing: {h}");
    acknowledged.push(api.file_case(&sample_case("腾出少量空间后登记"))["id"].as_str().unwrap().to_string());

    // Full again, and the node dies; freed again: it starts.
    let more = fill_in_chunks(&disk.0);
    node.kill9();
    std::fs::remove_file(disk.0.join("rest.bin")).unwrap();
    for c in more.iter().take(6) {
        std::fs::remove_file(c).unwrap();
    }
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    acknowledged.push(api.file_case(&sample_case("重启后登记"))["id"].as_str().unwrap().to_string());
    acknowledged.sort();
    let mut held = case_ids(&api);
    held.retain(|id| acknowledged.contains(id));
    assert_eq!(held, acknowledged, "nothing acknowledged is lost");
}

/// A stopped node whose disk filled up starts again once a little more
/// than its (small) reserve is freed, though opening its store needs more
/// than that (it flushes what its log holds): the reserve goes to start.
#[test]
fn a_stopped_node_starts_again_once_a_little_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "64m");
    let mut node = TestNode::init_in(dir, "330106001000", "留下街道综治中心", "storage_reserve_mb = 4\n");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    let id = api.file_case(&sample_case("带大附件的案件"))["id"].as_str().unwrap().to_string();
    // 7 MiB that do not compress, in the store's log until a flush.
    let mut photo = vec![0u8; 7 << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in photo.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let (status, v) = api.post_raw(&format!("/api/cases/{id}/attachments?name=photo.jpg"), "image/jpeg", photo.clone());
    assert_eq!(status, 201, "{v}");
    let chunks = fill_in_chunks(&disk.0);
    node.kill9();
    // Five MiB and the last bytes freed: more than the reserve, less than
    // opening the store takes.
    std::fs::remove_file(disk.0.join("rest.bin")).unwrap();
    for c in chunks.iter().take(5) {
        std::fs::remove_file(c).unwrap();
    }
    node.start();
    assert!(node.log().contains("released the 4 MiB storage reserve"), "{}", node.log());
    let api = node.login("operator", OPERATOR_PASSWORD);
    let case = api.case(&id);
    let blob = case["attachments"][0]["blob"].as_str().unwrap().to_string();
    let (status, _, bytes) = api.get_raw(&format!("/api/cases/{id}/attachments/{blob}"));
    assert_eq!((status, bytes == photo), (200, true), "the attachment acknowledged before is there");
}
