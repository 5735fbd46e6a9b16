//! Enrollment checks, through the API and the CLI an admin uses: a
//! request is shown before it is signed; names must be an official name
//! of the level (no spreadsheet formula), not the parent's or another
//! center's; a division with a valid certificate is not enrolled twice;
//! division codes need a real province; revoked certificates are hidden
//! unless asked for. Each refusal signs nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use zongzhi_protocol::NodeKey;
use zongzhi_protocol::cert::EnrollmentRequest;
use zongzhi_tests::{ADMIN_PASSWORD, Api, Hierarchy, bin};

fn request(seed: u8, division: &str, name: &str) -> String {
    EnrollmentRequest::new(&NodeKey::from_seed([seed; 32]), division.parse().unwrap(), name, zongzhi_node::context::now_ms()).to_armored()
}

fn cert_count(api: &Api) -> usize {
    api.get("/api/certs?revoked=include").1["certs"].as_array().unwrap().len()
}

#[test]
fn enrollment_requests_are_checked_and_shown_before_signing() {
    let h = Hierarchy::start(0);
    let town = h.township.login("admin", ADMIN_PASSWORD);
    let before = cert_count(&town);
    let refuse = |req: String, code: &str| {
        let (status, v) = town.post("/api/certs/issue", &json!({"request": req}));
        assert_eq!((status, v["error"]["code"].as_str()), (422, Some(code)), "{v}");
    };
    // A village named exactly like its township; a formula; a township's name at a village.
    refuse(request(1, "330106010001", "示例街道社会治安综合治理中心"), "bad_name");
    refuse(request(2, "330106010001", "=HYPERLINK(\"http://x\",\"点我\")村工作站"), "bad_name");
    refuse(request(3, "330106010001", "工作站"), "bad_name");
    // The dry run shows what would be signed, and signs nothing.
    let (status, p) = town.post("/api/certs/issue", &json!({"request": request(4, "330106010001", "示例社区一工作站"), "dry_run": true}));
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["division"].as_str(), p["level_zh"].as_str(), p["name"].as_str()), (Some("330106010001"), Some("村（社区）"), Some("示例社区一工作站")));
    assert_eq!(cert_count(&town), before);
    let (status, _) = town.post("/api/certs/issue", &json!({"request": request(4, "330106010001", "示例社区一工作站")}));
    assert_eq!(status, 201);
    // The same division again with another key, or the same name elsewhere.
    refuse(request(5, "330106010001", "示例社区二工作站"), "division_taken");
    refuse(request(6, "330106010002", "示例社区一工作站"), "name_taken");
    assert_eq!(cert_count(&town), before + 1);

    // The CLI shows the request and, without a terminal, signs only with --yes.
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("req.txt");
    std::fs::write(&req, request(7, "330106010002", "示例社区二工作站")).unwrap();
    let session = dir.path().join("session.json");
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin("zongzhi"));
        c.arg("--node").arg(h.township.url()).arg("--session").arg(&session).args(args).env_remove("ZONGZHI_NODE");
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(format!("{ADMIN_PASSWORD}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(cli(&["login", "--user", "admin"]).status.success());
    let chain = dir.path().join("chain.txt");
    let out = cli(&["cert", "issue", "--request", req.to_str().unwrap(), "--out", chain.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && stdout.contains("示例社区二工作站") && stdout.contains("330106010002") && stderr.contains("--yes"), "{stdout}{stderr}");
    assert!(!chain.exists());
    assert_eq!(cert_count(&town), before + 1);
    let out = cli(&["cert", "issue", "--request", req.to_str().unwrap(), "--out", chain.to_str().unwrap(), "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(chain.exists());

    // Revoked certificates are hidden from `cert list` unless asked for.
    let key7 = NodeKey::from_seed([7; 32]).id().to_string();
    let (status, v) = town.post("/api/certs/revoke", &json!({"key": key7, "cutoff_seq": 0, "reason": "登记错误"}));
    assert_eq!(status, 201, "{v}");
    let out = cli(&["cert", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!listed.contains("示例社区二工作站") && listed.contains("1 revoked certificates not shown"), "{listed}");
    let out = cli(&["cert", "list", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("示例社区二工作站"));
}

#[test]
fn a_division_code_needs_a_real_province() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "data_dir = \"data\"\ndivision = \"990100000000\"\nname = \"某市社会治安综合治理中心\"\n").unwrap();
    let out = Command::new(bin("zongzhi-node")).args(["init", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a province code"), "{}", String::from_utf8_lossy(&out.stderr));
}
