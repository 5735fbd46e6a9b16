//! The README's walkthrough, run as written: the shell block between the
//! `walkthrough:start` and `walkthrough:end` markers, with the built
//! binaries on PATH and its fixed ports moved to free ones (the only
//! change). If the README's commands stop working, this fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zongzhi_tests::{bin, free_port};

fn script() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme.split("<!-- walkthrough:start -->").nth(1).and_then(|r| r.split("<!-- walkthrough:end -->").next()).expect("walkthrough markers in README.md");
    let body = block.trim().strip_prefix("```sh").and_then(|b| b.strip_suffix("```")).expect("one ```sh block between the markers");
    body.to_string()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let mut text = script();
    for port in ["7800", "7801", "7802", "7803", "7900", "7901", "7902"] {
        assert!(text.contains(port), "the walkthrough no longer uses port {port}");
        text = text.replace(port, &free_port().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("walkthrough.sh"), &text).unwrap();
    let bins = bin("zongzhi").parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("walkthrough.sh")
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path())
        .env_remove("ZONGZHI_NODE")
        .env_remove("ZONGZHI_SESSION")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the nodes it starts in the background
        // are stopped with it.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pgid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let logs: String =
        ["city", "county", "township", "village"].iter().map(|n| format!("--- {n}.log\n{}\n", std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default())).collect();
    assert!(status.is_some(), "the walkthrough did not finish in 180 s\n{stdout}\n{stderr}\n{logs}");
    assert!(status.unwrap().success() && stdout.contains("walkthrough: ok"), "the walkthrough failed\n{stdout}\n{stderr}\n{logs}");
}
