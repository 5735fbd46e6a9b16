//! `zongzhi key` and `zongzhi cert`: local key and certificate tooling.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn zz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zongzhi")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn key_generate_show_and_refuse_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    let p = path.to_str().unwrap();
    let o = zz(&["key", "generate", "--out", p]);
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(id.len(), 64);
    let o = zz(&["key", "show", p]);
    assert!(text(&o).starts_with(&id), "{}", text(&o));
    let o = zz(&["key", "generate", "--out", p]);
    assert!(!o.status.success(), "must not overwrite a key");
    std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let o = zz(&["key", "show", p]);
    assert!(!o.status.success() && text(&o).contains("cannot read key"), "{}", text(&o));
}

#[test]
fn enrollment_request_shows_and_forgery_is_refused() {
    let key = zongzhi_protocol::NodeKey::generate(&mut rand_core::OsRng);
    let req = zongzhi_protocol::cert::EnrollmentRequest::new(&key, "330102001001".parse().unwrap(), "某村工作站", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("req.txt");
    std::fs::write(&path, req.to_armored()).unwrap();
    let o = zz(&["cert", "show", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("330102001001") && text(&o).contains("某村工作站"));
    // Change one hex digit inside the armored block: the signature fails.
    let armored = req.to_armored();
    let lines: Vec<&str> = armored.lines().collect();
    let mut line = lines[2].to_string();
    let c = if line.starts_with('0') { "1" } else { "0" };
    line.replace_range(0..1, c);
    let forged = [lines[..2].join("\n"), line, lines[3..].join("\n")].join("\n");
    std::fs::write(&path, forged).unwrap();
    let o = zz(&["cert", "show", path.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn commands_without_login_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zongzhi")).args(["queue"]).env("ZONGZHI_SESSION", dir.path().join("none.json")).output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("not logged in"), "{}", text(&o));
}
