//! `zongzhi-node` command line: init, user add, verify, reindex, bad configs.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

fn node(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zongzhi-node")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn init_user_verify_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("city.toml");
    std::fs::write(&cfg, "data_dir = \"data\"\ndivision = \"330100000000\"\nname = \"杭州市社会治安综合治理中心\"\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = node(&["init", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("trust root"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.path().join("data/node.key")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "node key must be private");
    // A second init refuses to overwrite the key.
    let o = node(&["init", "--config", cfg]);
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    // The password from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_zongzhi-node"))
        .args(["user", "add", "--config", cfg, "--username", "admin", "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cret-pass\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let o = node(&["user", "add", "--config", cfg, "--username", "admin", "--role", "admin"]);
    assert!(!o.status.success() && text(&o).contains("already exists"), "{}", text(&o));
    let o = node(&["user", "add", "--config", cfg, "--username", "ops", "--role", "boss"]);
    assert!(!o.status.success() && text(&o).contains("role must be"), "{}", text(&o));
    // Generated password is printed once.
    let o = node(&["user", "add", "--config", cfg, "--username", "ops", "--role", "operator"]);
    assert!(o.status.success() && text(&o).contains("password: "), "{}", text(&o));
    // The root cert and the policy are the city's first two records.
    let o = node(&["verify", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("own chain length: 2"), "{}", text(&o));
    let o = node(&["reindex", "--config", cfg]);
    assert!(o.status.success(), "{}", text(&o));
    // While the node runs, a command that needs the store says so plainly.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(cfg, format!("{config}http_listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let mut running = Command::new(env!("CARGO_BIN_EXE_zongzhi-node")).args(["run", "--config", cfg]).stderr(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the node did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = node(&["reindex", "--config", cfg]);
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(!o.status.success() && text(&o).contains("is in use by another zongzhi-node process"), "{}", text(&o));
    assert!(!text(&o).contains("LOCK"), "{}", text(&o));
    // A root key that is not this city's: verify says so and fails.
    let config = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(cfg, format!("{config}root_key = \"{}\"\n", "ab".repeat(32))).unwrap();
    let o = node(&["verify", "--config", cfg]);
    assert!(!o.status.success() && text(&o).contains("no certificate chain to the root key"), "{}", text(&o));
}

#[test]
fn lower_levels_write_an_enrollment_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("v.toml");
    std::fs::write(&cfg, "data_dir = \"data\"\ndivision = \"330102001001\"\nname = \"某村工作站\"\nhttp_listen = \"127.0.0.1:7999\"\n").unwrap();
    let o = node(&["init", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let req = std::fs::read_to_string(dir.path().join("data/enrollment-request.txt")).unwrap();
    let parsed = zongzhi_protocol::cert::EnrollmentRequest::from_armored(&req).unwrap();
    assert_eq!(parsed.division.to_string(), "330102001001");
}

#[test]
fn bad_configs_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    for (body, needle) in [
        ("data_dir = \"d\"\ndivision = \"12\"\nname = \"x\"\n", "division code"),
        ("data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"x\"\ncolour = 1\n", "unknown field"),
        ("data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"\"\n", "name must be"),
    ] {
        std::fs::write(&cfg, body).unwrap();
        let o = node(&["init", "--config", cfg.to_str().unwrap()]);
        assert!(!o.status.success());
        assert!(text(&o).contains(needle), "{needle}: {}", text(&o));
    }
    let o = node(&["run", "--config", dir.path().join("missing.toml").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("cannot read config"), "{}", text(&o));
    // Running before init says what to do.
    std::fs::write(&cfg, "data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"x\"\n").unwrap();
    let o = node(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("zongzhi-node init"), "{}", text(&o));
}
