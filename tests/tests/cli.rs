//! The `zongzhi` command line against a real node: the operator's daily path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use zongzhi_tests::{ADMIN_PASSWORD, OPERATOR_PASSWORD, TestNode, VIEWER_PASSWORD, bin};

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
    let out =
        cli.ok(&["file", "--title", "邻居装修噪音扰民", "--content", "每天早上七点开始施工", "--category", "0202", "--channel", "phone", "--contact-name", "张三", "--contact-phone", "13812341234"]);
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
    // No public page here: the feedback says why nobody was invited to rate.
    let fed = cli.ok(&["feedback", &number, "--note", "已电话告知"]);
    assert!(fed.contains("未邀请群众评价") && fed.contains("[public]"), "{fed}");
    cli.ok(&["rate", &number, "--rating", "satisfied"]);
    assert!(cli.ok(&["archive", &number]).contains("已归档"));
    let show = cli.ok(&["show", &number]);
    for needle in ["已归档", "受理", "签收", "分流", "延期申请", "办结", "反馈", "评价", "归档", "✓", "13812341234"] {
        assert!(show.contains(needle), "show lacks {needle}:\n{show}");
    }
    let json = cli.ok(&["show", &number, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"]["code"], "archived");

    // `-` is standard output (or input) wherever a file is named: no file
    // called `-` appears.
    let here = tempfile::tempdir().unwrap();
    let run_here = |args: &[&str]| {
        let o = cli.cmd(args).current_dir(here.path()).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let csv = String::from_utf8(run_here(&["export", "cases", "--out", "-", "--status", "all"])).unwrap();
    let mut rows = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let row: Vec<String> = rows.records().next().unwrap().unwrap().iter().map(String::from).collect();
    let col = |name: &str| row[header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} in {header:?}"))].clone();
    // The 台账 names units and shows 受理时间 beside 登记时间.
    assert_eq!((col("承办单位").as_str(), col("承办单位代码").as_str()), ("留下街道社会治安综合治理中心", "330102001000"), "{csv}");
    assert_eq!(col("受理时间"), v["received_at"].as_str().unwrap(), "{csv}");
    let blob = v["attachments"][0]["blob"].as_str().unwrap();
    assert_eq!(run_here(&["download", &number, blob, "--out", "-"]), "现场照片说明".as_bytes());
    let pem = String::from_utf8(run_here(&["key", "generate", "--out", "-"])).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let mut show = cli.cmd(&["key", "show", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    show.stdin.as_mut().unwrap().write_all(pem.as_bytes()).unwrap();
    assert!(show.wait_with_output().unwrap().status.success(), "the key read back from standard input");
    assert!(std::fs::read_dir(here.path()).unwrap().next().is_none(), "nothing written in the working directory");

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
    for needle in ["330102001000", "满意率", "100.0% ✓", "就地化解率", "合计", "越级"] {
        assert!(stats.contains(needle), "stats lack {needle}:\n{stats}");
    }
    // The plain table fits a terminal, shows 越级, and states its
    // definitions in Chinese.
    let stats = cli.ok(&["stats"]);
    assert!(stats.lines().all(|l| display_width(l) <= 120), "wider than 120 columns:\n{stats}");
    assert!(stats.contains("越级(较基期)") && stats.contains("越级：在发生地以上的中心受理"), "{stats}");
    let definitions: Vec<&str> = stats.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(definitions.len() >= 5, "{stats}");
    for l in &definitions {
        assert!(!l.split(|c: char| !c.is_ascii_alphabetic()).any(|w| w.len() > 3), "a definition in English: {l}");
    }
    assert!(cli.ok(&["stats", "--kpi", "all"]).contains("平均办理时长"), "every KPI on request");
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
    // 受理时间 dated back: within the node's bound (72 hours), or refused.
    let back = |hours: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours)).to_string();
    let err = cli.fails(&["file", "--title", "补录", "--content", "上周收到", "--category", "0202", "--received-at", &back(100)]);
    assert!(err.contains("more than 72 hours back"), "{err}");
    cli.ok(&["file", "--title", "周末收到", "--content", "周六收到的来信", "--category", "0202", "--received-at", &back(60)]);
    node.stop();
}

/// A calendar file for `year` shaped like cn-2026.json; `make_up` is its one
/// make-up workday.
fn calendar_file(path: &std::path::Path, year: i64, make_up: &str) {
    let v = serde_json::json!({
        "year": year,
        "source": format!("测试用{year}年节假日安排"),
        "rule": "A day is a working day if it is listed in make_up_workdays, or if it is Monday to Friday and not listed in holidays.",
        "holidays": [{"date": format!("{year}-01-01"), "name": "元旦"}, {"date": format!("{year}-10-01"), "name": "国庆节"}],
        "make_up_workdays": [make_up],
    });
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The first Saturday (weekend) or Monday (not) on or after September 20th of `year`.
fn september_day(year: i64, weekend: bool) -> String {
    use jiff::civil::Weekday;
    let mut d = jiff::civil::date(i16::try_from(year).unwrap(), 9, 20);
    while d.weekday() != if weekend { Weekday::Saturday } else { Weekday::Monday } {
        d = d.tomorrow().unwrap();
    }
    d.to_string()
}

#[test]
fn city_admin_keeps_the_policy_through_the_cli() {
    let mut node = TestNode::init("330100000000", "示例市社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: node.url(), session: dir.path().join("session.json") };
    let version = |cli: &Cli| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&cli.ok(&["policy", "show", "--json"])).unwrap();
        v["version"].as_u64().unwrap()
    };

    // A case whose resolution deadline reaches past the last calendar (complex, plus the longest extension).
    cli.login("operator", OPERATOR_PASSWORD);
    let p0: serde_json::Value = serde_json::from_str(&cli.ok(&["policy", "--json"])).unwrap();
    let v0 = p0["version"].as_u64().unwrap();
    // The shipped calendars cite the State Council's notices.
    for (year, cal) in p0["calendars"].as_object().unwrap() {
        let source = cal["source"].as_str().unwrap();
        assert!(source.starts_with(&format!("国务院办公厅关于{year}年部分节假日安排的通知")), "{year}: {source}");
    }
    let year = p0["calendars"].as_object().unwrap().keys().map(|y| y.parse::<i64>().unwrap()).max().unwrap() + 1;
    let out = cli.ok(&["file", "--title", "跨年的复杂纠纷", "--content", "涉及多户", "--category", "0202", "--complex"]);
    let number = out.split_whitespace().nth(1).unwrap().to_string();
    cli.ok(&["sign-for", &number]);
    cli.ok(&["route", &number, "--window", "justice"]);
    let max_ext = p0["deadlines"]["max_extension_working_days"].as_u64().unwrap_or(15).to_string();
    cli.ok(&["extension", "request", &number, "--days", &max_ext, "--reason", "等待鉴定"]);
    // Only the city's admin signs the policy.
    let err = cli.fails(&["policy", "set", "deadlines.resolution_working_days=10"]);
    assert!(err.contains("403"), "{err}");

    cli.login("admin", ADMIN_PASSWORD);
    cli.ok(&["extension", "approve", &number, "--note", "同意"]);
    let case: serde_json::Value = serde_json::from_str(&cli.ok(&["show", &number, "--json"])).unwrap();
    let waiting_year = case["deadlines"].as_array().unwrap().iter().find(|d| d["clock"] == "waiting_for_calendar").map(|d| d["waiting_year"].as_i64().unwrap());
    let waiting = cli.ok(&["queue", "--waiting-calendar"]);
    match waiting_year {
        Some(wy) => {
            assert!(waiting.contains(&number) && waiting.contains(&format!("缺{wy}年日历")), "{waiting}");
            assert!(cli.ok(&["show", &number]).contains(&format!("待定:缺{wy}年日历")));
        }
        None => assert!(!waiting.contains(&number), "{waiting}"),
    }

    // The file's year must be --year: refused before any request.
    let wrong = dir.path().join("wrong.json");
    calendar_file(&wrong, year + 1, &september_day(year + 1, true));
    let err = cli.fails(&["policy", "calendar", "--year", &year.to_string(), "--file", wrong.to_str().unwrap()]);
    assert!(err.contains(&format!("is the calendar for {}, but --year is {year}", year + 1)), "{err}");
    // A make-up workday on a Monday: the node's reason, non-zero exit.
    let bad = dir.path().join("bad.json");
    calendar_file(&bad, year, &september_day(year, false));
    let err = cli.fails(&["policy", "calendar", "--year", &year.to_string(), "--file", bad.to_str().unwrap()]);
    assert!(err.contains("invalid_policy") && err.contains("422"), "{err}");
    assert_eq!(version(&cli), v0, "nothing was signed");

    // Preview, then sign.
    let file = dir.path().join(format!("cn-{year}.json"));
    calendar_file(&file, year, &september_day(year, true));
    let args = ["policy", "calendar", "--year", &year.to_string(), "--file", file.to_str().unwrap()];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = cli.ok(&dry);
    assert!(out.contains(&format!("calendars/{year}")) && out.contains(&format!("新增{year}年工作日历")) && out.contains("nothing signed"), "{out}");
    assert_eq!(version(&cli), v0, "a dry run signs nothing");
    let out = cli.ok(&args);
    assert!(out.contains(&format!("signed policy version {}", v0 + 1)), "{out}");
    // The same file again changes nothing.
    let err = cli.fails(&args);
    assert!(err.contains("no_change"), "{err}");

    let show = cli.ok(&["policy", "show"]);
    assert!(show.contains(&format!("第 {} 版", v0 + 1)) && show.contains(&year.to_string()) && show.contains("噪音扰民") && show.contains("resolution_working_days"), "{show}");
    let diff = cli.ok(&["policy", "diff"]);
    assert!(diff.contains(&format!("第 {v0} 版 → 第 {} 版", v0 + 1)) && diff.contains(&format!("calendars/{year}")), "{diff}");
    let old: serde_json::Value = serde_json::from_str(&cli.ok(&["policy", "show", "--version", &v0.to_string(), "--json"])).unwrap();
    assert_eq!(old["version"].as_u64(), Some(v0));
    assert!(old["calendars"][year.to_string()].is_null());
    if waiting_year == Some(year) {
        let waiting = cli.ok(&["queue", "--waiting-calendar"]);
        assert!(!waiting.contains(&number), "the deadline has its due time now: {waiting}");
    }

    // KEY=VALUE pairs as one merge patch; a patch file.
    let out = cli.ok(&["policy", "set", "deadlines.resolution_working_days=10", "--dry-run"]);
    assert!(out.contains("deadlines/resolution_working_days") && out.contains("nothing signed"), "{out}");
    let out = cli.ok(&["policy", "set", "windows.fire.name=消防", "categories.02.children.0299.name=高空抛物", "categories.02.children.0299.default_window=police"]);
    assert!(out.contains("新增窗口 fire（消防）") && out.contains(&format!("signed policy version {}", v0 + 2)), "{out}");
    let patch = dir.path().join("patch.json");
    std::fs::write(&patch, r#"{"windows": {"fire": {"retired": true}}}"#).unwrap();
    let out = cli.ok(&["policy", "set", "--patch", patch.to_str().unwrap()]);
    assert!(out.contains("窗口 fire 停用"), "{out}");
    let show = cli.ok(&["policy", "show"]);
    assert!(show.contains("消防") && show.contains("高空抛物") && show.contains("已停用"), "{show}");
    let err = cli.fails(&["policy", "set", "deadlines.coffee_minutes=5"]);
    assert!(err.contains("unknown_key") || err.contains("400"), "{err}");
    assert!(cli.fails(&["policy", "set"]).contains("nothing to set"));
    node.stop();
}

/// Display width of `s` in a terminal (CJK and full-width characters take two columns).
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// The text of one column of a table `zongzhi` printed: the part of every
/// line below the header that lies between the display columns where the
/// header names `from` and `to` start, lines joined.
fn column_text(table: &str, from: &str, to: &str) -> String {
    let mut lines = table.lines().skip_while(|l| !(l.contains(from) && l.contains(to)));
    let header = lines.next().expect("the header line");
    let col = |needle: &str| display_width(&header[..header.find(needle).unwrap()]);
    let (a, b) = (col(from), col(to));
    let mut out = String::new();
    for line in lines.skip(1) {
        let mut w = 0;
        for c in line.chars() {
            if w >= a && w < b {
                out.push(c);
            }
            w += display_width(&c.to_string());
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
    }
    out
}

/// A village's own work on a case another center owns: after it escalated
/// and the township resolved, `zongzhi queue --clock feedback` lists the case,
/// and so does the plain `queue`, below the village's own; paging with `--after`;
/// `zongzhi search` by number and by words; `zongzhi show` names the units
/// and prints the whole reply.
#[test]
fn village_finds_its_feedback_work_and_searches_through_the_cli() {
    let h = zongzhi_tests::Hierarchy::start(1);
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: h.villages[0].url(), session: dir.path().join("session.json") };
    let vop = h.villages[0].login("operator", OPERATOR_PASSWORD);
    let top = h.township.login("operator", OPERATOR_PASSWORD);
    let case = vop.file_case(&zongzhi_tests::sample_case("围墙漏水影响邻居"));
    let (id, number) = (case["id"].as_str().unwrap().to_string(), case["number"].as_str().unwrap().to_string());
    vop.act(&id, serde_json::json!({"action": "sign_for"}));
    vop.act(&id, serde_json::json!({"action": "escalate", "reason": "涉及公共管网"}));
    zongzhi_tests::wait_case(&h.township, &top, &id, "the escalation at the township", |v| v["owner"] == "330106010000");
    top.act(&id, serde_json::json!({"action": "sign_for"}));
    // Every clock names the unit that must act: the 办结 clock the village
    // started runs against the township that owns the case now, in the
    // case view, the list and the "my work" view alike.
    let view = top.case(&id);
    let running: Vec<serde_json::Value> = view["deadlines"].as_array().unwrap().iter().filter(|d| d["running"] == true).cloned().collect();
    assert!(!running.is_empty() && running.iter().all(|d| d["unit"] == "330106010000"), "{running:?}");
    let resolution = running.iter().find(|d| d["kind"] == "resolution").unwrap_or_else(|| panic!("{running:?}"));
    assert_eq!(resolution["started_with"], "330106010001", "{resolution}");
    let row = |api: &zongzhi_tests::Api, query: &str| {
        let (status, v) = api.get(&format!("/api/cases{query}"));
        assert_eq!(status, 200, "{v}");
        v["cases"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).cloned()
    };
    let listed = row(&top, "").expect("the township's queue");
    let mine = row(&top, "?clock=any").expect("the township's clocks");
    let earliest = mine["clocks"].as_array().unwrap().iter().filter(|k| k["unit"] == "330106010000").filter_map(|k| k["due_at"].as_str()).min().map(String::from);
    assert_eq!(listed["next_due_at"].as_str().map(String::from), earliest, "one due time in both views: {listed} {mine}");
    assert!(row(&vop, "?clock=any").is_none(), "no clock of the village runs on the case the township handles");
    top.act(&id, serde_json::json!({"action": "route", "window": "housing"}));
    let reply = "街道已协调物业公司更换小区3幢至5幢之间破损的排水管道，受损墙体已由施工方修复并重新粉刷，双方确认无异议，后续如有渗漏可直接联系物业。";
    top.act(&id, serde_json::json!({"action": "resolve", "public_reply": reply}));
    zongzhi_tests::wait_case(&h.villages[0], &vop, &id, "the decision at the village", |v| v["status"]["code"] == "resolved");
    // Two more cases of the village's own, for paging.
    let own: Vec<String> = ["楼道堆物", "路灯不亮"].iter().map(|t| vop.file_case(&zongzhi_tests::sample_case(t))["number"].as_str().unwrap().to_string()).collect();

    cli.login("operator", OPERATOR_PASSWORD);
    // Search by number and by a word of the title.
    let found = cli.ok(&["search", &number]);
    assert!(found.contains(&number) && found.contains("按编号"), "{found}");
    let found = cli.ok(&["search", "漏水"]);
    assert!(found.contains(&number) && found.contains("按关键词") && !found.contains(&own[0]), "{found}");
    let v: serde_json::Value = serde_json::from_str(&cli.ok(&["search", "漏水", "--json"])).unwrap();
    assert_eq!(v["kind"], "words", "{v}");
    let err = cli.fails(&["search", "x"]);
    assert!(err.contains("query_too_short") || err.contains("400"), "{err}");

    // The timeline: units by short name, the whole reply wrapped.
    let show = cli.ok(&["show", &number]);
    assert!(show.contains("承办 330106010000 示例街道社会治安综合治理中心"), "the full name in the detail:\n{show}");
    let units = column_text(&show, "单位", "经办人");
    assert!(units.contains("示例街道") && !units.contains("示例街道社会"), "short names in the timeline: {units}\n{show}");
    let content = column_text(&show, "内容", "结果");
    assert!(content.contains(&format!("public_reply={reply}")), "the whole reply:\n{content}\n{show}");
    assert!(show.lines().all(|l| display_width(l) < 160), "the reply is wrapped:\n{show}");

    // Paging: one case a page, each page names the next cursor (the
    // escalated case is the township's).
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["queue", "--limit", "1"];
        if let Some(a) = after.as_deref() {
            args.extend(["--after", a]);
        }
        let page = cli.ok(&args);
        // (The first page of the plain queue also lists this center's
        // clocks on cases others own, below the page itself.)
        let page = page.split("本中心的时限").next().unwrap().to_string();
        seen.extend([&number, &own[0], &own[1]].into_iter().filter(|n| page.contains(n.as_str())).cloned());
        assert!(page.contains("1 of 2 cases"), "{page}");
        after = page.lines().find_map(|l| l.strip_prefix("next page: --after ")).map(|c| c.trim().to_string());
        if after.is_none() {
            break;
        }
        assert!(seen.len() <= 2, "paging does not end:\n{page}");
    }
    seen.sort();
    let mut all = own.clone();
    all.sort();
    assert_eq!(seen, all, "every case once over the pages");

    // The plain queue: the village's own cases, then its 反馈 on the case
    // the township owns (the console's 待反馈 tab).
    let queue = cli.ok(&["queue"]);
    let (mine, elsewhere) = queue.split_once("本中心的时限").unwrap_or_else(|| panic!("no section for the work on others' cases:\n{queue}"));
    assert!(!mine.contains(&number) && own.iter().all(|n| mine.contains(n)), "{queue}");
    assert!(elsewhere.contains(&number) && elsewhere.contains("反馈") && elsewhere.contains("示例街道"), "the feedback due on the township's case:\n{queue}");
    let feedback = cli.ok(&["queue", "--clock", "feedback"]);
    assert!(feedback.contains(&number) && feedback.contains("已办结") && feedback.contains("示例街道"), "{feedback}\nthe case's clocks: {}", vop.case(&id)["deadlines"]);
    assert!(!feedback.contains("示例街道社会治安综合治理中心"), "the owner by its short name:\n{feedback}");
    assert!(!own.iter().any(|n| feedback.contains(n)), "no feedback due on fresh cases:\n{feedback}");
    let any = cli.ok(&["queue", "--clock", "any"]);
    assert!(any.contains(&number) && own.iter().all(|n| any.contains(n)), "{any}");
    let sign_for = cli.ok(&["queue", "--clock", "sign_for"]);
    assert!(!sign_for.contains(&number), "{sign_for}");
    // A fixed value is checked before the node is asked: clap names the words it takes.
    let err = cli.fails(&["queue", "--clock", "coffee"]);
    assert!(err.contains("invalid value 'coffee'") && err.contains("supervision_reply"), "{err}");

    // At the county, which holds no complainant's contact of these cases, a
    // phone number finds nothing, and says why.
    let county = Cli { node: h.county.url(), session: dir.path().join("county.json") };
    county.login("operator", OPERATOR_PASSWORD);
    let found = county.ok(&["search", "13812341234"]);
    assert!(found.contains("按电话") && found.contains("0 cases") && found.contains("受理中心"), "{found}");
    // Where the contact is held it is found, and no hint is given.
    let found = cli.ok(&["search", "13812341234"]);
    assert!(found.contains(&own[0]) && !found.contains("受理中心查找"), "{found}");
}

/// Runs `cmd` with its standard output a pipe whose reading end is already
/// closed (as after `zongzhi … | head -1` has read its line): every write to
/// standard output fails with EPIPE.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped()).stdin(Stdio::null()).output().unwrap()
}

/// `zongzhi … | head` ends quietly, for every kind of output: tables, JSON,
/// CSV, one-line answers and the commands that need no node.
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: node.url(), session: dir.path().join("session.json") };
    cli.login("admin", ADMIN_PASSWORD);
    let out = cli.ok(&["file", "--title", "邻居装修噪音扰民", "--content", "每天早上七点开始施工", "--category", "0202"]);
    let number = out.split_whitespace().nth(1).unwrap().to_string();
    let key = dir.path().join("node.key");
    cli.ok(&["key", "generate", "--out", key.to_str().unwrap()]);
    let key = key.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["show", &number],
        vec!["show", &number, "--json"],
        vec!["queue"],
        vec!["queue", "--json"],
        vec!["search", &number],
        vec!["policy"],
        vec!["stats", "--by", "channel"],
        vec!["stats", "--by", "channel", "--csv", "-"],
        vec!["cert", "list"],
        vec!["user", "list"],
        vec!["whoami"],
        vec!["health"],
        vec!["sync", "status"],
        vec!["reports", "check"],
        vec!["integrity"],
        vec!["progress", &number, "--note", "已联系"],
        vec!["key", "show", key],
    ];
    for args in commands {
        // The command works with an open standard output.
        cli.ok(&args);
        let o = with_closed_stdout(cli.cmd(&args));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "zongzhi {args:?} panicked on a closed pipe:\n{stderr}");
        assert!(stderr.is_empty(), "zongzhi {args:?} says nothing on a closed pipe:\n{stderr}");
        let code = o.status.code();
        assert!(code.is_some_and(|c| c != 0 && c != 101), "zongzhi {args:?}: a normal non-zero exit, not {:?}", o.status);
    }
    node.stop();
}

/// `--node` (and ZONGZHI_NODE) take `host:port` and `[v6]:port` as well as
/// full URLs; a malformed value gets one line naming the option.
#[test]
fn node_addresses_without_a_scheme() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let bare = format!("127.0.0.1:{}", node.port);
    let cli = Cli { node: bare.clone(), session: dir.path().join("session.json") };
    let health = cli.ok(&["health"]);
    assert!(health.contains("330102001000"), "{health}");
    // Logged in by host:port, the session serves the same node named either way.
    cli.login("operator", OPERATOR_PASSWORD);
    assert!(cli.ok(&["whoami"]).contains("operator"));
    assert!(cli.ok(&["--node", &node.url(), "whoami"]).contains("operator"));
    assert!(cli.ok(&["--node", &format!("{}/", node.url()), "whoami"]).contains("operator"));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("session.json")).unwrap()).unwrap();
    assert_eq!(saved["node"], node.url());
    // An IPv6 address in brackets is an address too (nothing listens there: the error is about reaching it).
    let err = cli.fails(&["--node", &format!("[::1]:{}", node.port), "health"]);
    assert!(err.contains(&format!("http://[::1]:{}", node.port)) && err.contains("cannot reach"), "{err}");
    for bad in ["127.0.0.1:78o0", "ftp://127.0.0.1:7800", "http://", "127.0.0.1", "7800", "a b:7800"] {
        let err = cli.fails(&["--node", bad, "health"]);
        assert_eq!(err.trim_end().lines().count(), 1, "one line for {bad:?}: {err}");
        assert!(err.contains("--node") && err.contains("127.0.0.1:7800") && !err.contains("relative URL"), "{bad:?}: {err}");
    }
    // The same for the environment variable.
    let err = Cli { node: "localhost:http".into(), session: dir.path().join("session.json") }.fails(&["health"]);
    assert!(err.contains("--node") && err.contains("ZONGZHI_NODE"), "{err}");
    node.stop();
}

/// Without a terminal the password comes from a pipe, with or without its
/// newline, or from --password; an empty pipe is a clear error. (On a
/// terminal it is read without echo.)
#[test]
fn passwords_from_a_pipe_or_the_command_line() {
    let mut node = TestNode::init("330102001000", "留下街道社会治安综合治理中心");
    node.start();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: node.url(), session: dir.path().join("session.json") };
    let piped = |args: &[&str], input: &[u8]| -> Output {
        let mut child = cli.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = piped(&["login", "--user", "admin"], ADMIN_PASSWORD.as_bytes());
    assert!(o.status.success(), "no newline: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("logged in"));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("password:"), "no prompt when standard input is not a terminal");
    let o = piped(&["user", "add", "--username", "clerk", "--role", "operator"], b"clerk-pass-1\r\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = piped(&["login", "--user", "clerk"], b"clerk-pass-1\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(cli.ok(&["whoami"]).contains("clerk"));
    assert!(cli.ok(&["login", "--user", "operator", "--password", OPERATOR_PASSWORD]).contains("logged in"));
    let o = piped(&["login", "--user", "operator"], b"");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no password") && err.contains("--password"), "{err}");
    node.stop();
}

/// `cert revoke` (and `cert verify --root`) take a key as `cert list` shows
/// it, or any unique prefix of eight hex digits or more; other values get a
/// clear message, and the node's refusals are its own words.
#[test]
fn certificates_by_the_short_keys_cert_list_shows() {
    let mut city = TestNode::init("330100000000", "示例市社会治安综合治理中心");
    city.start();
    let root = city.node_id();
    let county = TestNode::init_with("330106000000", "示例区社会治安综合治理中心", &format!("root_key = \"{root}\"\nparent = \"127.0.0.1:9\"\n"));
    county.enroll_under(&city);
    let county_key = county.node_id();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { node: city.url(), session: dir.path().join("session.json") };
    cli.login("admin", ADMIN_PASSWORD);

    let list = cli.ok(&["cert", "list"]);
    let line = list.lines().find(|l| l.starts_with("330106000000")).unwrap_or_else(|| panic!("{list}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (short, issuer) = (fields[2], fields[3]);
    assert!(county_key.starts_with(short) && root.starts_with(issuer), "{list}");

    // The chain file checks against the root named by the issuer column.
    let chain = county.dir.path().join("chain.txt");
    let out = cli.ok(&["cert", "verify", chain.to_str().unwrap(), "--root", issuer]);
    assert!(out.contains("valid") && out.contains("330106000000"), "{out}");

    let revoke = |key: &str, reason: &str| cli.run(&["cert", "revoke", "--key", key, "--cutoff-seq", "0", "--reason", reason]);
    let refused = |o: Output| -> String {
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "should fail: {}", String::from_utf8_lossy(&o.stdout));
        assert!(!err.contains("invalid JSON body") && !err.contains("line 1 column") && !err.contains("Invalid string length"), "parser text: {err}");
        err
    };
    let err = refused(revoke(&short[..6], "密钥泄露"));
    assert!(err.contains("8"), "too short: {err}");
    let err = refused(revoke("zzzzzzzzzz", "密钥泄露"));
    assert!(err.contains("hex"), "not hex: {err}");
    let unknown = if county_key.starts_with("00000000") { "ffffffff" } else { "00000000" };
    let err = refused(revoke(unknown, "密钥泄露"));
    assert!(err.contains("no certificate") && err.contains(unknown), "unknown: {err}");
    // The node's own refusal, as its message.
    let err = refused(revoke(short, " "));
    assert!(err.contains("give a reason"), "{err}");

    let o = revoke(&short[..8], "密钥泄露");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains(&county_key) && out.contains("330106000000"), "{out}{}", String::from_utf8_lossy(&o.stderr));
    // Revoked: hidden from `cert list`, shown with --all.
    let list = cli.ok(&["cert", "list"]);
    assert!(!list.lines().any(|l| l.starts_with("330106000000")) && list.contains("1 revoked certificates not shown"), "{list}");
    let list = cli.ok(&["cert", "list", "--all"]);
    assert!(list.lines().any(|l| l.starts_with("330106000000") && l.contains("已吊销")), "{list}");
    // The full key, in either case, needs no look-up; whatever the node answers is in its own words.
    let o = revoke(&county_key.to_uppercase(), "密钥泄露");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("invalid JSON body") && !err.contains("no certificate whose key"), "{err}");
    city.stop();
}

/// The help of every command (and subcommand) of `bin`, by the command path.
fn helps(bin: &std::path::Path, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
    let o = Command::new(bin).args(path.iter()).arg("--help").output().unwrap();
    assert!(o.status.success(), "{path:?} --help");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let subs: Vec<String> = text
        .split("Commands:")
        .nth(1)
        .map(|c| c.split("\n\n").next().unwrap_or_default().lines().filter_map(|l| l.split_whitespace().next().map(String::from)).filter(|c| c != "help").collect())
        .unwrap_or_default();
    out.push((path.join(" "), text));
    for s in subs {
        path.push(s);
        helps(bin, path, out);
        path.pop();
    }
}

/// The options and arguments in a help text that say nothing about themselves.
fn bare_entries(help: &str) -> Vec<String> {
    let mut bare = Vec::new();
    for section in ["Options:", "Arguments:"] {
        let Some(body) = help.split(section).nth(1) else { continue };
        // The section runs to the next unindented line (the next header).
        let lines: Vec<&str> = body.lines().skip(1).take_while(|l| l.is_empty() || l.starts_with(' ')).collect();
        let indent = |l: &str| l.len() - l.trim_start().len();
        let note = |l: &str| ["[env:", "[default:", "[possible", "[aliases"].iter().any(|n| l.trim_start().starts_with(n));
        let is_entry = |l: &str| indent(l) <= 6 && !note(l) && matches!(l.trim_start().chars().next(), Some('-' | '<' | '['));
        for (i, l) in lines.iter().enumerate() {
            if !is_entry(l) || l.trim_start() == "-h, --help" || l.trim_start() == "-V, --version" {
                continue;
            }
            let same_line = l.trim_start().split_once("  ").is_some_and(|(_, d)| !d.trim().is_empty() && !note(d));
            let next_line = lines.get(i + 1).is_some_and(|n| !is_entry(n) && !note(n) && indent(n) > indent(l) && !n.trim().is_empty());
            if !same_line && !next_line {
                bare.push(l.trim().to_string());
            }
        }
    }
    bare
}

/// Every option and argument of `zongzhi` and `zongzhi-node` says what it is.
#[test]
fn every_option_says_what_it_is() {
    for name in ["zongzhi", "zongzhi-node"] {
        let mut all = Vec::new();
        helps(&bin(name), &mut Vec::new(), &mut all);
        assert!(all.len() > 10, "{name}: {} commands", all.len());
        let bare: Vec<String> = all.iter().flat_map(|(cmd, help)| bare_entries(help).into_iter().map(move |e| format!("{name} {cmd}: {e}"))).collect();
        assert!(bare.is_empty(), "options without a description:\n{}", bare.join("\n"));
    }
}
