//! The operator CLI as a program: what it links, its exit codes, its
//! fixed-value options, completions and man pages, and progress bars that
//! show on a terminal only (the node's long commands too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use zongzhi_tests::{OPERATOR_PASSWORD, TestNode, bin};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[test]
fn the_cli_links_neither_the_node_nor_rocksdb() {
    let cli = std::fs::read(bin("zongzhi")).unwrap();
    let lab = std::fs::read(bin("zongzhi-lab")).unwrap();
    // RocksDB's own symbols and messages: in the lab binary (which links
    // the node), never in the operator's.
    assert!(contains(&lab, b"rocksdb"), "the check must be able to see RocksDB");
    assert!(!contains(&cli, b"rocksdb"), "zongzhi links RocksDB");
    // The node crate's mangled symbols (`_ZN12zongzhi_node…`), case as it is.
    let node_symbol = |b: &[u8]| b.windows(14).any(|w| w == b"12zongzhi_node");
    assert!(node_symbol(&lab) && !node_symbol(&cli), "zongzhi links the node crate");
    assert!(cli.len() * 2 < lab.len(), "zongzhi is {} bytes, zongzhi-lab {}", cli.len(), lab.len());
}

fn zongzhi(node: &str, session: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin("zongzhi")).args(args).env("ZONGZHI_NODE", node).env("ZONGZHI_SESSION", session).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.json");
    let url = node.url();
    let run = |args: &[&str]| zongzhi(&url, &session, args);

    // 3: nothing answers there.
    let port = zongzhi_tests::free_port();
    let o = zongzhi(&format!("127.0.0.1:{port}"), &session, &["health"]);
    assert_eq!(code(&o), 3, "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the node"), "{o:?}");
    // 4: no session, and a wrong password.
    let o = run(&["queue"]);
    assert_eq!(code(&o), 4, "{o:?}");
    let o = run(&["login", "--user", "operator", "--password", "wrong-one"]);
    assert_eq!(code(&o), 4, "{o:?}");
    // 2: a fixed-value option with a word it does not take; the node is not asked.
    let o = run(&["supervise", "330102001000-2026-000001", "--grade", "purple", "--note", "x"]);
    assert_eq!(code(&o), 2, "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("normal") && err.contains("yellow") && err.contains("interview"), "{err}");
    let o = run(&["queue", "--status", "open,handeling"]);
    assert_eq!(code(&o), 2, "{o:?}");

    let o = run(&["login", "--user", "operator", "--password", OPERATOR_PASSWORD]);
    assert_eq!(code(&o), 0, "{o:?}");
    // A list of statuses still reaches the node as its words.
    let o = run(&["queue", "--status", "handling,returned"]);
    assert_eq!(code(&o), 0, "{o:?}");
    // 1: the node refused (no such case).
    let o = run(&["show", "330102001000-2026-999999"]);
    assert_eq!(code(&o), 1, "{o:?}");
    // 4 again: an operator may not add accounts (403).
    let o = run(&["user", "add", "--username", "x", "--password", "long-enough-1", "--role", "viewer"]);
    assert_eq!(code(&o), 4, "{o:?}");
    // 0 for a ready node; the codes are in --help.
    assert_eq!(code(&run(&["ready"])), 0);
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    assert!(help.contains("Exit codes:") && help.contains("3    the node cannot be reached"), "{help}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    let o = Command::new(bin("zongzhi")).args(["completions", "bash"]).output().unwrap();
    assert!(o.status.success());
    let bash = String::from_utf8_lossy(&o.stdout);
    assert!(bash.contains("_zongzhi()") && bash.contains("reply-supervision"), "{bash}");
    // The fixed values complete too.
    assert!(bash.contains("satisfied basic unsatisfied"), "rating values are not completed");
    // bash accepts the script.
    let check = Command::new("bash").arg("-n").stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(bash.as_bytes())?;
        c.wait()
    });
    assert!(check.unwrap().success());
    let o = Command::new(bin("zongzhi")).args(["completions", "zsh"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("#compdef zongzhi"));

    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin("zongzhi")).args(["man", "--out"]).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let top = std::fs::read_to_string(dir.path().join("zongzhi.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH zongzhi"), "{top}");
    let supervise = std::fs::read_to_string(dir.path().join("zongzhi-supervise.1")).unwrap();
    assert!(supervise.contains("yellow") && supervise.contains("interview"), "{supervise}");
    // Nested subcommands get their pages too.
    assert!(dir.path().join("zongzhi-extension-request.1").exists());
}

/// Runs `cmd` under `script`, which gives it a terminal; returns what the terminal showed.
fn on_a_terminal(cmd: &str) -> String {
    let o = Command::new("script").args(["-qec", cmd, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    assert!(o.status.success(), "{cmd}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn long_node_commands_show_progress_on_a_terminal_only() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let api = node.login("operator", OPERATOR_PASSWORD);
    for i in 0..3 {
        api.file_case(&serde_json::json!({
            "title": format!("进度条{i}"), "content": "x", "category": "0202",
            "request_type": "complaint", "channel": "phone", "urgency": "normal"
        }));
    }
    node.stop();
    let config = node.dir.path().join("node.toml");
    // Piped: no bar, only the result line.
    let o = node.node_cmd(&["reindex"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("records [") && !err.contains("cases ["), "a bar on a pipe: {err}");
    // On a terminal: the bar with its phases.
    let shown = on_a_terminal(&format!("{} reindex --config {}", node.binary().display(), config.display()));
    assert!(shown.contains("records [") || shown.contains("cases ["), "no bar on a terminal: {shown:?}");
    let shown = on_a_terminal(&format!("{} verify --config {}", node.binary().display(), config.display()));
    assert!(shown.contains("records ["), "no bar on a terminal: {shown:?}");
}
