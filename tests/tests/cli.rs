//! The `zongzhi` command line against a real node: the operator's daily path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use zongzhi_tests::{bin, TestNode, ADMIN_PASSWORD, OPERATOR_PASSWORD, VIEWER_PASSWORD};

struct Cli {
    node: String,
    session: std::path::PathBuf,
}

impl Cli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("zongzhi"));
        c.args(args).env("ZONGZHI_NODE", &self.node).env("ZONGZHI_SESSION", &self.session);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "zongzhi {args:?}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "zongzhi {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn login(&self, user: &str, password: &str) {
        let mut child = self.cmd(&["login", "--user", user]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.as_mut().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "login: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn operator_takes_a_case_through_the_cli() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: node.url(), session: dir.path().join("session.json") };

    assert!(cli.fails(&["queue"]).contains("not logged in"));
    let wrong = cli.cmd(&["login", "--user", "operator", "--password", "nope"]).output().unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong user name or password"));

    cli.login("operator", OPERATOR_PASSWORD);
    assert!(cli.ok(&["whoami"]).contains("operator"));
    assert!(cli.ok(&["policy"]).contains("噪音扰民"));
    let out = cli.ok(&[
        "file", "--title", "邻居装修噪音扰民", "--content", "每天早上七点开始施工", "--category", "0202",
        "--channel", "phone", "--contact-name", "张三", "--contact-phone", "13812341234",
    ]);
    assert!(out.starts_with("filed 330102001000-"), "{out}");
    let number = out.split_whitespace().nth(1).unwrap().to_string();

    let queue = cli.ok(&["queue"]);
    assert!(queue.contains(&number) && queue.contains("待签收") && queue.contains("噪音扰民"), "{queue}");
    assert!(cli.ok(&["sign-for", &number]).contains("已签收"));
    // A refused step names the rule and exits non-zero.
    let err = cli.fails(&["archive", &number]);
    assert!(err.contains("rule: status"), "{err}");
    assert!(cli.ok(&["route", &number, "--window", "justice", "--requirements", "调解"]).contains("办理中"));
    cli.ok(&["progress", &number, "--note", "已约谈双方"]);
    cli.ok(&["extension", "request", &number, "--days", "2", "--reason", "等待鉴定"]);
    assert!(cli.fails(&["extension", "approve", &number]).contains("403"));
    let file = dir.path().join("evidence.txt");
    std::fs::write(&file, "现场照片说明").unwrap();
    assert!(cli.ok(&["attach", &number, "--file", file.to_str().unwrap(), "--mime", "text/plain"]).contains("attached evidence.txt"));
    cli.ok(&["resolve", &number, "--reply", "已调解，双方达成协议"]);
    cli.ok(&["feedback", &number, "--note", "已电话告知"]);
    cli.ok(&["rate", &number, "--rating", "satisfied"]);
    assert!(cli.ok(&["archive", &number]).contains("已归档"));
    let show = cli.ok(&["show", &number]);
    for needle in ["已归档", "受理", "签收", "分流", "延期申请", "办结", "反馈", "评价", "归档", "✓", "13812341234"] {
        assert!(show.contains(needle), "show lacks {needle}:\n{show}");
    }
    let json = cli.ok(&["show", &number, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"]["code"], "archived");

    // Admin creates a viewer account through the CLI; the viewer sees masked data.
    cli.ok(&["logout"]);
    cli.login("admin", ADMIN_PASSWORD);
    let mut add = cli.cmd(&["user", "add", "--username", "auditor", "--role", "viewer"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    add.stdin.as_mut().unwrap().write_all(b"auditor-pass\n").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());
    assert!(cli.ok(&["user", "list"]).contains("auditor"));
    assert!(cli.ok(&["integrity"]).contains("ok"));
    cli.login("viewer", VIEWER_PASSWORD);
    assert!(cli.ok(&["show", &number]).contains("138****1234"));

    // Statistics of this month: one case received, resolved on time, rated 满意.
    let stats = cli.ok(&["stats", "--by", "unit", "--kpi", "satisfaction,resolution_on_time,local_resolution"]);
    for needle in ["330102001000", "满意率", "100.0% ✓", "就地化解率", "合计"] {
        assert!(stats.contains(needle), "stats lack {needle}:\n{stats}");
    }
    let v: serde_json::Value = serde_json::from_str(&cli.ok(&["stats", "--by", "category", "--json"])).unwrap();
    let row = &v["rows"][0];
    assert_eq!((row["group"].as_str(), row["name"].as_str()), (Some("0202"), Some("噪音扰民")), "{v}");
    assert_eq!((row["counts"]["received"].as_i64(), row["counts"]["resolved"].as_i64(), row["counts"]["satisfied"].as_i64()), (Some(1), Some(1), Some(1)));
    assert_eq!(v["total"]["kpis"]["satisfaction"]["target"]["value"], 0.9);
    let csv = cli.ok(&["stats", "--by", "channel", "--csv", "-"]);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("group,name,rank,received,"), "{csv}");
    assert!(lines.next().unwrap().starts_with("phone,电话,"), "{csv}");
    assert!(cli.fails(&["stats", "--period", "2026-13"]).contains("period"));
    assert!(cli.fails(&["stats", "--kpi", "happiness"]).contains("unknown KPI"));
    assert!(cli.fails(&["stats", "--scope", "330106000000"]).contains("not in this center's subtree"));
    // The same complainant again in the same category: a repeat complaint.
    cli.login("operator", OPERATOR_PASSWORD);
    cli.ok(&["file", "--title", "装修噪音又起", "--content", "又开始施工", "--category", "0202", "--channel", "phone", "--contact-name", "张三", "--contact-phone", "13812341234"]);
    cli.ok(&["file", "--title", "另一位居民", "--content", "噪音", "--category", "0202", "--channel", "phone", "--contact-name", "李四", "--contact-phone", "13900001111"]);
    let v: serde_json::Value = serde_json::from_str(&cli.ok(&["stats", "--kpi", "repeat_rate", "--json"])).unwrap();
    assert_eq!(v["total"]["counts"]["repeats"], 1, "{v}");
    assert_eq!(v["total"]["kpis"]["repeat_rate"]["value"].as_f64().unwrap(), 1.0 / 3.0);
    node.stop();
}
