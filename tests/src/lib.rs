//! Test harness: real `zongzhi-node` processes on temporary data
//! directories, driven over real HTTP.
//!
//! The binaries are the ones cargo builds for this workspace (they sit next
//! to the test executables' `deps/` directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod relay;

pub use relay::UdpRelay;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-pass-1";
pub const OPERATOR_PASSWORD: &str = "operator-pass-1";
pub const VIEWER_PASSWORD: &str = "viewer-pass-1";

/// Path of a workspace binary built by cargo.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built; run `cargo build --workspace` (cargo test --workspace builds it)", path.display());
    assert_fresh(&path);
    path
}

/// This crate's directory, taken at run time first: cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test or binary, and a build reused
/// from a cached target dir may have been compiled in another checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Refuses to test a binary older than the sources it is built from (a
/// filtered `cargo test` does not rebuild the workspace's binaries).
fn assert_fresh(binary: &Path) {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).expect("binary mtime");
    let here = manifest_dir();
    let root = here.parent().expect("workspace root");
    let own_crates: &[&str] = if binary.ends_with("zongzhi-node") {
        &["node/src"]
    } else if binary.ends_with("zongzhi-lab") {
        &["lab/src", "tools/src", "node/src"]
    } else {
        &["tools/src"]
    };
    let mut stack: Vec<PathBuf> = std::iter::once(&"protocol/src").chain(own_crates).map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if entry.metadata().and_then(|m| m.modified()).is_ok_and(|m| m > built) {
                panic!("{} is older than {}; run `cargo build --workspace` first", binary.display(), p.display());
            }
        }
    }
}

/// A port free for TCP and UDP that this test process has not handed out
/// before, below the ephemeral range (see [`zongzhi_node::ports`]).
pub fn free_port() -> u16 {
    zongzhi_node::ports::unused_ports(1).unwrap()[0]
}

/// One node: its data dir, config and (when running) process.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// The `zongzhi-node` it runs (this build's unless a test chose
    /// another release's, [`TestNode::use_binary`]).
    binary: Option<PathBuf>,
}

impl TestNode {
    /// Initialises a node and creates `admin`, `operator` and `viewer` accounts.
    pub fn init(division: &str, name: &str) -> TestNode {
        Self::init_with(division, name, "")
    }

    /// Like [`TestNode::init`], with extra config lines.
    pub fn init_with(division: &str, name: &str, extra_config: &str) -> TestNode {
        Self::init_in(tempfile::tempdir().unwrap(), division, name, extra_config)
    }

    /// Like [`TestNode::init_with`], in a directory the test made (a small
    /// file system mounted there, say).
    pub fn init_in(dir: tempfile::TempDir, division: &str, name: &str, extra_config: &str) -> TestNode {
        Self::init_on(None, dir, division, name, extra_config)
    }

    /// Like [`TestNode::init_in`], with another release's `zongzhi-node`
    /// (`None`: this build's).
    pub fn init_on(binary: Option<PathBuf>, dir: tempfile::TempDir, division: &str, name: &str, extra_config: &str) -> TestNode {
        let port = free_port();
        let config = dir.path().join("node.toml");
        std::fs::write(&config, format!("data_dir = \"data\"\ndivision = \"{division}\"\nname = \"{name}\"\nhttp_listen = \"127.0.0.1:{port}\"\n{extra_config}")).unwrap();
        let node = TestNode { dir, config, port, child: None, binary };
        let out = node.node_cmd(&["init"]).output().unwrap();
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        for (user, role, pw) in [("admin", "admin", ADMIN_PASSWORD), ("operator", "operator", OPERATOR_PASSWORD), ("viewer", "viewer", VIEWER_PASSWORD)] {
            let out = node.node_cmd(&["user", "add", "--username", user, "--role", role, "--password", pw]).output().unwrap();
            assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        node
    }

    /// The `zongzhi-node` binary this node runs.
    pub fn binary(&self) -> PathBuf {
        self.binary.clone().unwrap_or_else(|| bin("zongzhi-node"))
    }

    /// Runs another `zongzhi-node` from the next start on (an upgrade, or
    /// a rollback); `None`: this build's.
    pub fn use_binary(&mut self, binary: Option<PathBuf>) {
        self.binary = binary;
    }

    /// `zongzhi-node <args> --config <this node's config>`.
    pub fn node_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.binary());
        c.args(args).arg("--config").arg(&self.config);
        c
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the node and waits until it answers.
    pub fn start(&mut self) {
        self.start_with(&[], &[("RUST_LOG", "warn")]);
    }

    /// Like [`TestNode::start`], with more arguments after `run` and the
    /// environment given (`RUST_LOG` is `warn` unless set here).
    pub fn start_with(&mut self, args: &[&str], env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("node.log")).unwrap();
        let child =
            Command::new(self.binary()).arg("run").args(args).arg("--config").arg(&self.config).env("RUST_LOG", "warn").envs(env.iter().copied()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::blocking::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/api/health", self.url())).timeout(Duration::from_millis(500)).send()
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default();
                panic!("node exited with {status} during start-up:\n{log}");
            }
            assert!(Instant::now() < deadline, "node did not start within 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(status.success(), "node exited with {status}:\n{}", self.log());
                    return;
                }
                if Instant::now() > deadline {
                    c.kill().unwrap();
                    panic!("node did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// This node's enrollment request (written by `init` below the city).
    pub fn enrollment_request(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data").join("enrollment-request.txt")).unwrap()
    }

    /// This node's public key, from `zongzhi-node`'s health answer or the key file.
    pub fn node_id(&self) -> String {
        let out = Command::new(bin("zongzhi")).args(["key", "show"]).arg(self.dir.path().join("data").join("node.key")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
    }

    /// Enrolls this (stopped) node under a running parent: the parent's
    /// admin issues the certificate, this node imports the chain.
    pub fn enroll_under(&self, parent: &TestNode) {
        let admin = parent.login("admin", ADMIN_PASSWORD);
        let (status, v) = admin.post("/api/certs/issue", &json!({"request": self.enrollment_request()}));
        assert_eq!(status, 201, "issue: {v}");
        let chain = self.dir.path().join("chain.txt");
        std::fs::write(&chain, v["chain"].as_str().unwrap()).unwrap();
        let out = self.node_cmd(&["import-cert", "--file", chain.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "import-cert: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("db")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// Logs in through the API from a client that logged in before (its
    /// device token).
    pub fn login_with_device(&self, user: &str, password: &str, device: &str) -> Api {
        let mut api = Api::new(&self.url(), None);
        let (status, v) = api.post("/api/login", &json!({"username": user, "password": password, "device": device}));
        assert_eq!(status, 200, "login failed: {v}");
        api.token = Some(v["token"].as_str().unwrap().to_string());
        api
    }

    /// Logs in through the API.
    pub fn login(&self, user: &str, password: &str) -> Api {
        let mut api = Api::new(&self.url(), None);
        let (status, v) = api.post("/api/login", &json!({"username": user, "password": password}));
        assert_eq!(status, 200, "login failed: {v}");
        api.token = Some(v["token"].as_str().unwrap().to_string());
        api
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A logged-in (or anonymous) HTTP client.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Api { base: base.to_string(), token, http }
    }

    /// A client whose connections come from `local` (another loopback
    /// address such as 127.0.0.2: a second client address for the node).
    pub fn from_address(base: &str, local: std::net::IpAddr) -> Api {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).local_address(local).build().unwrap();
        Api { base: base.to_string(), token: None, http }
    }

    /// POST returning the status, the response headers and the JSON body.
    pub fn post_full(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Logs in on this client (its address) and keeps the token.
    pub fn log_in(&mut self, user: &str, password: &str) {
        let (status, v) = self.post("/api/login", &json!({"username": user, "password": password}));
        assert_eq!(status, 200, "login failed: {v}");
        self.token = Some(v["token"].as_str().unwrap().to_string());
    }

    fn finish(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, v)
    }

    /// Like `finish`, but returns `None` when the connection fails (the node died).
    fn try_finish(&self, req: reqwest::blocking::RequestBuilder) -> Option<(u16, Value)> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().ok()?;
        let status = resp.status().as_u16();
        let v = resp.json().ok()?;
        Some((status, v))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.finish(self.http.get(format!("{}{path}", self.base)))
    }

    /// GET returning the status, the response headers and the raw body.
    pub fn get_raw(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let req = self.http.get(format!("{}{path}", self.base));
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.bytes().unwrap().to_vec())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.finish(self.http.post(format!("{}{path}", self.base)).json(body))
    }

    /// Posts raw bytes on a connection of its own: a server that refuses a
    /// body before reading it (413) closes the connection, and a request
    /// sent next on a pooled copy of it would fail.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        self.finish(self.http.post(format!("{}{path}", self.base)).header("content-type", content_type).header("connection", "close").body(body))
    }

    pub fn try_post(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        self.try_finish(self.http.post(format!("{}{path}", self.base)).json(body))
    }

    /// Files a case and returns its detail (panics unless 201).
    pub fn file_case(&self, body: &Value) -> Value {
        let (status, v) = self.post("/api/cases", body);
        assert_eq!(status, 201, "filing failed: {v}");
        v
    }

    /// Takes a step and returns the case detail (panics unless 200).
    pub fn act(&self, case: &str, body: Value) -> Value {
        let (status, v) = self.post(&format!("/api/cases/{case}/actions"), &body);
        assert_eq!(status, 200, "{body} failed: {v}");
        v
    }

    pub fn case(&self, case: &str) -> Value {
        let (status, v) = self.get(&format!("/api/cases/{case}"));
        assert_eq!(status, 200, "case {case}: {v}");
        v
    }
}

/// A typical neighbourhood dispute with contact details.
pub fn sample_case(title: &str) -> Value {
    json!({
        "title": title,
        "content": "楼上住户装修，每天早上七点开始施工，噪音很大，协商无果。",
        "category": "0202",
        "request_type": "complaint",
        "channel": "on_site",
        "urgency": "normal",
        "place": {"address": "留下街道某小区3幢", "lat": 30.25, "lon": 120.05},
        "people_involved": 2,
        "contact": {"name": "张三", "phone": "13812341234", "id_number": "330102199001011234", "address": "某小区3幢502"}
    })
}

/// A sample of `name` (a gauge or counter without labels) from the node's
/// `/metrics`; `NaN` when it is not there.
pub fn metric(node: &TestNode, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{}/metrics", node.url())).and_then(|r| r.text()).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(f64::NAN)
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A chain of enrolled, running nodes: city → county → township → village(s),
/// linked over QUIC on loopback.
pub struct Hierarchy {
    pub city: TestNode,
    pub county: TestNode,
    pub township: TestNode,
    pub villages: Vec<TestNode>,
}

impl Hierarchy {
    pub fn start(villages: usize) -> Hierarchy {
        Hierarchy::start_with(villages, "")
    }

    /// Like [`Hierarchy::start`], with `extra` config lines on every node.
    pub fn start_with(villages: usize, extra: &str) -> Hierarchy {
        Hierarchy::start_on(None, villages, extra)
    }

    /// Like [`Hierarchy::start_with`], every node on another release's
    /// `zongzhi-node` (`None`: this build's).
    pub fn start_on(binary: Option<PathBuf>, villages: usize, extra: &str) -> Hierarchy {
        let init = |division: &str, name: &str, extra: &str| TestNode::init_on(binary.clone(), tempfile::tempdir().unwrap(), division, name, extra);
        let city_q = free_port();
        let mut city = init("330100000000", "示例市社会治安综合治理中心", &format!("quic_listen = \"127.0.0.1:{city_q}\"\nsupervision_interval_secs = 1\n{extra}"));
        city.start();
        let root = city.node_id();
        let level = |division: &str, name: &str, parent_q: u16, listen: bool| -> (TestNode, u16) {
            let q = free_port();
            let mut extra = format!("root_key = \"{root}\"\nparent = \"127.0.0.1:{parent_q}\"\nsupervision_interval_secs = 1\n{extra}");
            if listen {
                extra.push_str(&format!("quic_listen = \"127.0.0.1:{q}\"\n"));
            }
            (init(division, name, &extra), q)
        };
        let (mut county, county_q) = level("330106000000", "示例区社会治安综合治理中心", city_q, true);
        county.enroll_under(&city);
        county.start();
        let (mut township, town_q) = level("330106010000", "示例街道社会治安综合治理中心", county_q, true);
        township.enroll_under(&county);
        township.start();
        let mut vs = Vec::new();
        for i in 0..villages {
            let (mut v, _) = level(&format!("33010601000{}", i + 1), &format!("示例社区{}工作站", i + 1), town_q, false);
            v.enroll_under(&township);
            v.start();
            vs.push(v);
        }
        Hierarchy { city, county, township, villages: vs }
    }

    pub fn all(&self) -> Vec<&TestNode> {
        let mut v = vec![&self.city, &self.county, &self.township];
        v.extend(self.villages.iter());
        v
    }
}

/// Waits until `node` holds case `id` and `pred` holds for its detail.
pub fn wait_case(node: &TestNode, api: &Api, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let _ = node;
    wait_for(what, 20, || {
        let (status, v) = api.get(&format!("/api/cases/{id}"));
        (status == 200 && pred(&v)).then_some(v)
    })
}

/// A child center enrolled under the county of a [`Hierarchy`] but not
/// running: the test speaks for it with its real key (see
/// `zongzhi_node::net::testing::RawLink`).
pub struct SpokenChild {
    pub node: TestNode,
    pub key: std::sync::Arc<zongzhi_protocol::NodeKey>,
    pub shared: zongzhi_node::context::Context,
    /// The county's QUIC address.
    pub parent: std::net::SocketAddr,
}

impl Hierarchy {
    /// Enrolls a township `division` under the county without starting it.
    pub fn spoken_child(&self, division: &str, name: &str) -> SpokenChild {
        let cfg_text = std::fs::read_to_string(&self.county.config).unwrap();
        let county_q = cfg_text.lines().find_map(|l| l.strip_prefix("quic_listen = ")).unwrap().trim_matches('"').to_string();
        let root = self.city.node_id();
        let node = TestNode::init_with(division, name, &format!("root_key = \"{root}\"\nparent = \"{county_q}\"\n"));
        node.enroll_under(&self.county);
        let cfg = zongzhi_node::config::Config::load(&node.config).unwrap();
        let key = std::sync::Arc::new(zongzhi_node::node::load_key(&cfg).unwrap());
        let store = zongzhi_node::node::open_store(&cfg, &key).unwrap();
        let shared = zongzhi_node::node::shared_state(&cfg, store, key.clone()).unwrap();
        SpokenChild { node, key, shared, parent: county_q.parse().unwrap() }
    }
}

/// A filing event signed by `key` for `unit`, at chain position `seq`.
pub fn signed_filing(key: &zongzhi_protocol::NodeKey, unit: &str, seq: u64, prev: Option<zongzhi_protocol::RecordId>, title: &str) -> zongzhi_protocol::Record {
    use zongzhi_protocol::case::{Channel, Complexity, RequestType, Urgency};
    use zongzhi_protocol::{Action, Body, CaseEvent, Filing, Header, Hlc, Record};
    let now = zongzhi_node::context::now_ms();
    let filing = Filing {
        number: format!("{unit}-2026-{seq:06}"),
        title: title.into(),
        content: "内容".into(),
        category: "0202".into(),
        request_type: RequestType::Complaint,
        channel: Channel::OnSite,
        urgency: Urgency::Normal,
        complexity: Complexity::General,
        place: Default::default(),
        occurred_at_ms: None,
        received_at_ms: now,
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    };
    let body = Body::CaseEvent(CaseEvent { case: None, parents: vec![], unit: unit.parse().unwrap(), operator: "op".into(), action: Action::File(Box::new(filing)), policy: 1 });
    Record::sign(key, Header { seq, prev, hlc: Hlc { wall_ms: now, counter: 0 } }, body)
}
