//! `zongzhi-lab demo`: a whole hierarchy of real nodes on this machine.
//!
//! 1 city, 2 counties, 2 townships per county, 2 villages per township: 15
//! `zongzhi-node` processes, each with its own data directory and RocksDB,
//! enrolled automatically (each parent's admin approves its children's
//! requests through the HTTP API), linked over QUIC, and seeded with cases
//! that went every way a real case goes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::client::Client;

pub const DEMO_PASSWORD: &str = "zongzhi-demo";

struct Unit {
    division: &'static str,
    name: &'static str,
}

const UNITS: &[Unit] = &[
    Unit { division: "330100000000", name: "示例市社会治安综合治理中心" },
    Unit { division: "330102000000", name: "上城区社会治安综合治理中心" },
    Unit { division: "330102001000", name: "清波街道社会治安综合治理中心" },
    Unit { division: "330102001001", name: "清波门社区社会治安综合治理工作站" },
    Unit { division: "330102001002", name: "劳动路社区社会治安综合治理工作站" },
    Unit { division: "330102002000", name: "湖滨街道社会治安综合治理中心" },
    Unit { division: "330102002001", name: "东坡路社区社会治安综合治理工作站" },
    Unit { division: "330102002002", name: "青年路社区社会治安综合治理工作站" },
    Unit { division: "330106000000", name: "西湖区社会治安综合治理中心" },
    Unit { division: "330106001000", name: "北山街道社会治安综合治理中心" },
    Unit { division: "330106001001", name: "宝石社区社会治安综合治理工作站" },
    Unit { division: "330106001002", name: "葛岭社区社会治安综合治理工作站" },
    Unit { division: "330106002000", name: "留下街道社会治安综合治理中心" },
    Unit { division: "330106002001", name: "留下村社会治安综合治理工作站" },
    Unit { division: "330106002002", name: "杨家牌楼村社会治安综合治理工作站" },
];

pub struct DemoNode {
    pub division: String,
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub http: u16,
    pub quic: u16,
    pub child: Option<Child>,
}

impl DemoNode {
    pub fn new(dir: &Path, division: &str, name: &str, http: u16, quic: u16) -> DemoNode {
        let ndir = dir.join(division);
        DemoNode { division: division.into(), name: name.into(), config: ndir.join("node.toml"), dir: ndir, http, quic, child: None }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// Starts the node process and waits until it answers.
    pub fn start(&mut self, bin: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("node.log"))?;
        let mut child = Command::new(bin).args(["run", "--config"]).arg(&self.config).stdout(Stdio::null()).stderr(log).spawn()?;
        if let Err(e) = wait_health(&self.url(), &mut child) {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{e}; the end of {}:\n{}", self.dir.join("node.log").display(), tail.join("\n"));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops the node: SIGTERM, or SIGKILL when `hard`.
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut c) = self.child.take() {
            if hard {
                let _ = c.kill();
            } else {
                let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// `n` distinct ports, each free for UDP and TCP, chosen by the system.
/// Every pick stays bound until all are picked, so none is handed out twice.
/// Free ports for the nodes' listeners (below the system's ephemeral range:
/// see [`zongzhi_node::ports`]).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    Ok(zongzhi_node::ports::unused_ports(n)?)
}

/// Initialises node `i` (its parent, if any, must be running): key, store,
/// enrollment approved by the parent's admin, accounts.
pub fn setup_node(bin: &Path, nodes: &[DemoNode], i: usize, root_key: &mut String) -> anyhow::Result<()> {
    let division: zongzhi_protocol::DivisionCode = nodes[i].division.parse()?;
    let parent = division.parent().and_then(|p| nodes.iter().position(|n| n.division == p.to_string()));
    std::fs::create_dir_all(&nodes[i].dir)?;
    let mut cfg = format!("data_dir = \"data\"\ndivision = \"{}\"\nname = \"{}\"\nhttp_listen = \"127.0.0.1:{}\"\n", nodes[i].division, nodes[i].name, nodes[i].http);
    if division.level() != zongzhi_protocol::Level::Village {
        cfg.push_str(&format!("quic_listen = \"127.0.0.1:{}\"\n", nodes[i].quic));
    }
    if let Some(p) = parent {
        cfg.push_str(&format!("root_key = \"{root_key}\"\nparent = \"127.0.0.1:{}\"\n", nodes[p].quic));
    }
    // The city serves the citizens' public progress page; every center
    // prints its address on receipts and rating invitations.
    let city_url = nodes.iter().find(|n| n.division.ends_with("00000000")).map(|n| n.url()).unwrap_or_default();
    cfg.push_str(&format!("[public]\nenabled = {}\nurl = \"{city_url}/public/\"\n", parent.is_none()));
    std::fs::write(&nodes[i].config, cfg)?;
    let out = run(bin, &["init"], &nodes[i].config, None)?;
    if parent.is_none() {
        *root_key = out.lines().find_map(|l| l.strip_prefix("node key: ")).context("no root key printed")?.trim().to_string();
    }
    if let Some(p) = parent {
        // The parent's admin approves the enrollment request.
        let request = std::fs::read_to_string(nodes[i].dir.join("data").join("enrollment-request.txt"))?;
        let admin = login(&nodes[p].url(), "admin")?;
        let v = admin.post("/api/certs/issue", &json!({"request": request}))?;
        let chain = nodes[i].dir.join("chain.txt");
        std::fs::write(&chain, v["chain"].as_str().context("no chain")?)?;
        run(bin, &["import-cert", "--file", chain.to_str().context("path")?], &nodes[i].config, None)?;
    }
    for (user, role) in [("admin", "admin"), ("operator", "operator"), ("viewer", "viewer")] {
        run(bin, &["user", "add", "--username", user, "--role", role, "--password-stdin"], &nodes[i].config, Some(DEMO_PASSWORD))?;
    }
    Ok(())
}

pub fn node_bin() -> anyhow::Result<PathBuf> {
    let p = std::env::current_exe()?.parent().context("no parent dir")?.join("zongzhi-node");
    if !p.exists() {
        bail!("{} not found: build the workspace first (cargo build --workspace --bins)", p.display());
    }
    Ok(p)
}

pub fn run(bin: &Path, args: &[&str], config: &Path, stdin: Option<&str>) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).arg("--config").arg(config).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn()?;
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("zongzhi-node {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn login(url: &str, user: &str) -> anyhow::Result<Client> {
    let anon = Client::new(url, None)?;
    let v = anon.post("/api/login", &json!({"username": user, "password": DEMO_PASSWORD}))?;
    let token = v["token"].as_str().context("no token")?.to_string();
    Client::new(url, Some(token))
}

fn wait_health(url: &str, child: &mut Child) -> anyhow::Result<()> {
    let anon = Client::new(url, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if anon.get("/api/health").is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("node at {url} exited with {status}");
        }
        if Instant::now() > deadline {
            bail!("node at {url} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// Starts the hierarchy, seeds it, prints the summary, and (unless
/// `exit_after_seed`) runs until Ctrl-C.
pub fn demo(dir: &Path, http_base: u16, quic_base: u16, exit_after_seed: bool) -> anyhow::Result<()> {
    let bin = node_bin()?;
    let marker = dir.join(".zongzhi-demo");
    if dir.exists() {
        if !marker.exists() {
            bail!("{} exists and is not a demo directory: pass another --dir (the demo starts from empty stores)", dir.display());
        }
        eprintln!("removing the previous demo in {}", dir.display());
        std::fs::remove_dir_all(dir)?;
    }
    // Port 0: free ports are chosen.
    let n = UNITS.len();
    let auto = free_ports(2 * n)?;
    let mut ports = Vec::new();
    for i in 0..n {
        let h = if http_base == 0 { auto[i] } else { http_base + i as u16 };
        let q = if quic_base == 0 { auto[n + i] } else { quic_base + i as u16 };
        if !port_free(h) || !port_free(q) {
            bail!("port {h} or {q} is taken; pass --http-port/--quic-port (0 picks free ports)");
        }
        ports.push((h, q));
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, "created by zongzhi-lab demo; removed by the next run\n")?;
    let mut nodes: Vec<DemoNode> = UNITS.iter().enumerate().map(|(i, u)| DemoNode::new(dir, u.division, u.name, ports[i].0, ports[i].1)).collect();
    let result = start_and_seed(&bin, &mut nodes);
    if result.is_ok() && !exit_after_seed {
        outln!("Ctrl-C stops every node (their data stays in {}).", dir.display())?;
        // Ctrl-C reaches the nodes too (same process group); wait for them.
        for n in nodes.iter_mut() {
            if let Some(c) = n.child.as_mut() {
                let _ = c.wait();
            }
        }
    }
    for n in nodes.iter_mut() {
        n.stop(false);
    }
    result
}

fn start_and_seed(bin: &Path, nodes: &mut [DemoNode]) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut root_key = String::new();
    for i in 0..nodes.len() {
        setup_node(bin, nodes, i, &mut root_key)?;
        // The messages complainants would get by SMS go to the node's log.
        let mut cfg = std::fs::read_to_string(&nodes[i].config)?;
        cfg.push_str("[notify]\nadapter = \"log\"\n");
        std::fs::write(&nodes[i].config, cfg)?;
        nodes[i].start(bin)?;
    }
    eprintln!("15 nodes enrolled and running in {:.1} s; seeding cases…", t0.elapsed().as_secs_f64());
    seed(nodes)?;
    summary(nodes)
}

fn case(title: &str, content: &str, category: &str, urgent: bool, received_hours_ago: u64, contact: (&str, &str)) -> Value {
    let received = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(received_hours_ago as i64);
    json!({
        "title": title, "content": content, "category": category,
        "request_type": "complaint", "channel": if urgent { "phone" } else { "on_site" },
        "urgency": if urgent { "urgent" } else { "normal" },
        "received_at": received.to_string(),
        "place": {"address": "示例市"}, "people_involved": 2,
        "contact": {"name": contact.0, "phone": contact.1},
    })
}

fn act(c: &Client, id: &str, body: Value) -> anyhow::Result<Value> {
    c.post(&format!("/api/cases/{id}/actions"), &body)
}

fn wait_owner(c: &Client, id: &str, owner: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(v) = c.get(&format!("/api/cases/{id}"))
            && v["owner"] == owner
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("case {id} did not reach {owner}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Logs in as `user` at the demo node of `division`.
fn login_at(nodes: &[DemoNode], division: &str, user: &str) -> anyhow::Result<Client> {
    let n = nodes.iter().find(|n| n.division == division).context("unit")?;
    login(&n.url(), user)
}

/// Files a case through `c` and returns its id.
fn file(c: &Client, case: &Value) -> anyhow::Result<String> {
    Ok(c.post("/api/cases", case)?["id"].as_str().context("id")?.to_string())
}

/// Seeds the demo: four cases at every village, escalations to every
/// level, a dispatch down from the city and the county's supervision.
fn seed(nodes: &[DemoNode]) -> anyhow::Result<()> {
    let villages: Vec<&DemoNode> = nodes.iter().filter(|n| !n.division.ends_with("000")).collect();
    let people = [("张三", "13812341234"), ("李四", "13998765432"), ("王五", "13700001111"), ("赵六", "13655556666")];
    for (i, v) in villages.iter().enumerate() {
        let c = login_at(nodes, &v.division, "operator")?;
        seed_village(&c, people[i % people.len()])?;
    }
    let escalated = seed_escalations(nodes)?;
    // The city resolves the one that reached it; the village gives feedback.
    let city = login_at(nodes, "330100000000", "operator")?;
    act(&city, &escalated[2], json!({"action": "route", "window": "environment"}))?;
    act(&city, &escalated[2], json!({"action": "resolve", "public_reply": "市生态环境局已责令企业整改"}))?;
    // Dispatch down: the city sends a hotline case to a village.
    let id = file(&city, &case("12345转办：违建占道", "沿街商铺违建占用人行道", "0503", false, 5, ("周八", "13322223333")))?;
    act(&city, &id, json!({"action": "sign_for"}))?;
    act(&city, &id, json!({"action": "dispatch", "to": "330102001001", "requirements": "三日内拆除并反馈"}))?;
    let q = login_at(nodes, "330102001001", "operator")?;
    wait_owner(&q, &id, "330102001001")?;
    act(&q, &id, json!({"action": "sign_for"}))?;
    seed_citizens(nodes)?;
    // Supervision from the county on an overdue village case.
    let county = login_at(nodes, "330106000000", "admin")?;
    let overdue = county.get_query("/api/cases", &[("owner", "330106001001".into()), ("status", "accepted".into())])?;
    if let Some(c) = overdue["cases"].as_array().and_then(|a| a.first()) {
        act(&county, c["id"].as_str().context("id")?, json!({"action": "supervise", "grade": "yellow", "note": "已超期，请加快办理"}))?;
    }
    Ok(())
}

/// The citizen's side: a case whose citizen rates it on the city's public
/// page (the rating travels down to the village), and a 越级 filing at the
/// county about a matter in a village.
fn seed_citizens(nodes: &[DemoNode]) -> anyhow::Result<()> {
    let v = login_at(nodes, "330106001002", "operator")?;
    // A complainant without a phone: the operator hands the rating token
    // over on paper (with a phone it would go by message, unseen by staff).
    let mut lamp = case("小区路灯损坏", "小区东门路灯损坏一个月无人修", "0801", false, 20, ("钱九", ""));
    lamp["contact"] = json!({"name": "钱九"});
    let filed = v.post("/api/cases", &lamp)?;
    let id = filed["id"].as_str().context("id")?.to_string();
    let number = filed["number"].as_str().context("number")?.to_string();
    act(&v, &id, json!({"action": "sign_for"}))?;
    act(&v, &id, json!({"action": "progress", "note": "已报物业维修", "public": true}))?;
    act(&v, &id, json!({"action": "resolve", "public_reply": "路灯已更换"}))?;
    let fed = act(&v, &id, json!({"action": "feedback", "note": "短信告知"}))?;
    let token = fed["rating_invitation"]["token"].as_str().context("no rating invitation")?.to_string();
    // The citizen rates on the city's public page once the city holds the case.
    let city = login_at(nodes, "330100000000", "viewer")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while city.get(&format!("/api/cases/{id}")).map(|c| c["status"]["code"] != "fed_back").unwrap_or(true) {
        if Instant::now() > deadline {
            bail!("the city did not receive case {number} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let public = Client::new(&nodes[0].url(), None)?;
    public.post(&format!("/api/public/cases/{number}/rating"), &json!({"token": token, "rating": "satisfied", "result_rating": "basic", "comment": "修得很快"}))?;
    // 越级: a villager of 330106001001 goes straight to the county.
    let county = login_at(nodes, "330106000000", "operator")?;
    let mut skip = case("宅基地纠纷（越级）", "村里调解未果，直接到区里反映", "0301", false, 3, ("吴十", "13900001234"));
    skip["arose_in"] = json!("330106001001");
    county.post("/api/cases", &skip)?;
    Ok(())
}

/// A village's four cases, complained of by `who`: resolved locally and
/// archived, rated 不满意 and reopened, overdue, and urgent.
fn seed_village(c: &Client, who: (&str, &str)) -> anyhow::Result<()> {
    // Resolved locally and archived (小事不出村).
    let id = file(c, &case("邻里噪音纠纷", "楼上夜间噪音，经调解双方达成一致", "0202", false, 30, who))?;
    for step in [
        json!({"action": "sign_for"}),
        json!({"action": "resolve", "public_reply": "经村调委会调解，双方签订调解协议"}),
        json!({"action": "feedback", "note": "当面告知", "invite_rating": false}),
        json!({"action": "rate", "rating": "satisfied"}),
        json!({"action": "archive"}),
    ] {
        act(c, &id, step)?;
    }
    // Resolved but rated 不满意 and re-handled.
    let id = file(c, &case("物业收费争议", "物业公司多收停车费", "0501", false, 50, who))?;
    for step in [
        json!({"action": "sign_for"}),
        json!({"action": "route", "window": "housing"}),
        json!({"action": "resolve", "public_reply": "已协调物业退还多收费用"}),
        json!({"action": "feedback", "note": "电话告知", "invite_rating": false}),
        json!({"action": "rate", "rating": "unsatisfied", "comment": "只退了一部分"}),
        json!({"action": "reopen", "reason": "复核收费明细"}),
    ] {
        act(c, &id, step)?;
    }
    // Overdue: received two days ago, still not routed.
    let id = file(c, &case("拖欠工资", "装修队拖欠农民工工资三个月", "0401", false, 50, who))?;
    act(c, &id, json!({"action": "sign_for"}))?;
    // Urgent, open.
    c.post("/api/cases", &case("疑似燃气泄漏", "楼道内有明显燃气味", "0702", true, 0, who))?;
    Ok(())
}

/// Escalations: one village's case goes to each level (township, county,
/// city), signed for at every level on the way; returns their ids.
fn seed_escalations(nodes: &[DemoNode]) -> anyhow::Result<Vec<String>> {
    let chain = [("330106002001", "330106002000"), ("330106002000", "330106000000"), ("330106000000", "330100000000")];
    let v = login_at(nodes, "330106002001", "operator")?;
    let mut escalated = Vec::new();
    for (n, title) in ["山林权属纠纷", "征地补偿争议", "跨区环境污染"].iter().enumerate() {
        let id = file(&v, &case(title, "涉及多方，村级无法调处", ["0303", "0302", "0801"][n], false, 10, ("孙七", "13511112222")))?;
        act(&v, &id, json!({"action": "sign_for"}))?;
        act(&v, &id, json!({"action": "escalate", "reason": "村级无法调处"}))?;
        // Carry it up `n + 1` levels.
        for (k, (_, to)) in chain.iter().enumerate().take(n + 1) {
            let at = login_at(nodes, to, "operator")?;
            wait_owner(&at, &id, to)?;
            act(&at, &id, json!({"action": "sign_for"}))?;
            if k < n {
                act(&at, &id, json!({"action": "escalate", "reason": "需上级协调"}))?;
            }
        }
        escalated.push(id);
    }
    Ok(escalated)
}

fn summary(nodes: &[DemoNode]) -> anyhow::Result<()> {
    // Let the last records settle.
    std::thread::sleep(Duration::from_millis(500));
    outln!()?;
    outln!("zongzhi-lab demo: 15 centers, each its own zongzhi-node process and RocksDB store")?;
    outln!("logins on every node: admin / operator / viewer, password {DEMO_PASSWORD}")?;
    outln!()?;
    let mut rows = Vec::new();
    for n in nodes {
        let c = login(&n.url(), "viewer")?;
        let held = c.get_query("/api/cases", &[("owner", "all".into()), ("status", "all".into())])?;
        let open = c.get_query("/api/cases", &[])?;
        let overdue = c.get_query("/api/cases", &[("overdue", "true".into())])?;
        let sync = c.get("/api/sync")?;
        let peers = sync["peers"].as_array().map(|p| p.iter().filter(|x| x["connected"] == json!(true)).count()).unwrap_or(0);
        let division: zongzhi_protocol::DivisionCode = n.division.parse()?;
        let indent = match division.level() {
            zongzhi_protocol::Level::City => "",
            zongzhi_protocol::Level::County => "  ",
            zongzhi_protocol::Level::Township => "    ",
            zongzhi_protocol::Level::Village => "      ",
        };
        rows.push(vec![format!("{indent}{}", n.name), n.division.clone(), n.url(), held["total"].to_string(), open["total"].to_string(), overdue["total"].to_string(), peers.to_string()]);
    }
    out!("{}", crate::table::render(&["中心", "区划代码", "控制台 / API", "持有案件", "本级待办", "超期", "在线链路"], &rows))?;
    outln!()?;
    outln!("open: {}/  in a browser (the web console; users operator, admin, viewer; password {DEMO_PASSWORD})", nodes[0].url())?;
    outln!("      {}/public/  the citizens' progress page (number + query code from a receipt; file a case to get one)", nodes[0].url())?;
    outln!("try:  zongzhi --node {} login --user operator   (password {DEMO_PASSWORD})", nodes[0].url())?;
    outln!("      zongzhi stats --by county; zongzhi reports check")?;
    outln!("      zongzhi queue --owner all --status all; zongzhi sync status; zongzhi show <case number>")?;
    Ok(())
}
