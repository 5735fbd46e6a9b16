//! Crash points: a township and its village run as real node processes,
//! linked over QUIC through a relay that can cut the link, with clients
//! writing on both. One of the two is killed with SIGKILL again and again:
//! during intake, during live replication right after a burst (records
//! flowing both ways), and during a catch-up (after the link comes back
//! from a cut, or right after a restart). After every restart every step
//! the node acknowledged is still in its case's timeline, its own chain has
//! no gap and no timeline holds an event twice; at the end, with the links
//! up, village, township and county agree on every shared case and nothing
//! is left waiting.
//!
//! `cargo test` runs 200 kills; `ZONGZHI_CRASH_POINTS=1000` (and
//! `ZONGZHI_CRASH_SEED=N`) runs more on demand, with the same checks:
//!
//! ```sh
//! cargo build --workspace --bins
//! ZONGZHI_CRASH_POINTS=1000 ZONGZHI_CRASH_SEED=7 cargo test --workspace --test crash_points -- --nocapture
//! ```
//!
//! A seed replays the choices (victims, phases, sleeps, driver steps), not
//! the interleavings of real processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zongzhi_tests::{ADMIN_PASSWORD, Hierarchy, TestNode, UdpRelay, sample_case};

const VILLAGE: &str = "330106010001";
const TOWNSHIP: &str = "330106010000";
/// Indices of the two nodes that are killed.
const V: usize = 0;
const T: usize = 1;
const DRIVER_PASSWORD: &str = "driver-pass-1";
/// Pause between a driver's steps outside a burst.
const SLOW: Duration = Duration::from_millis(100);

/// splitmix64: consecutive draws are independent enough to pick a phase
/// and a victim from two of them.
fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small blocking client that answers `None` when the node is down. A
/// session the node no longer knows is opened again (and counted: sessions
/// are stored, so after a kill there should be none).
#[derive(Clone)]
struct Http {
    base: String,
    user: String,
    password: String,
    token: Arc<Mutex<String>>,
    relogins: Arc<AtomicU64>,
    http: reqwest::blocking::Client,
}

static RELOGINS: std::sync::LazyLock<Arc<AtomicU64>> = std::sync::LazyLock::new(Arc::default);

impl Http {
    fn login(node: &TestNode, user: &str, password: &str) -> Http {
        let api = node.login(user, password);
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Http { base: api.base, user: user.into(), password: password.into(), token: Arc::new(Mutex::new(api.token.unwrap())), relogins: RELOGINS.clone(), http }
    }

    fn send(&self, req: impl Fn() -> reqwest::blocking::RequestBuilder) -> Option<(u16, Value)> {
        for attempt in 0..2 {
            let token = self.token.lock().unwrap().clone();
            let resp = req().bearer_auth(token).send().ok()?;
            let status = resp.status().as_u16();
            let text = resp.text().ok()?;
            if status == 401 && attempt == 0 {
                let login = self.http.post(format!("{}/api/login", self.base)).json(&json!({"username": self.user, "password": self.password}));
                let (s, v) = login.send().ok().and_then(|r| Some((r.status().as_u16(), r.json::<Value>().ok()?)))?;
                if s == 200 {
                    *self.token.lock().unwrap() = v["token"].as_str().unwrap().to_string();
                    self.relogins.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            return Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))));
        }
        None
    }

    fn get(&self, path: &str) -> Option<(u16, Value)> {
        self.send(|| self.http.get(format!("{}{path}", self.base)))
    }

    fn post(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        self.send(|| self.http.post(format!("{}{path}", self.base)).json(body))
    }

    /// A GET on a node that is up: retried over a stale pooled connection.
    fn read(&self, path: &str) -> (u16, Value) {
        for _ in 0..50 {
            if let Some(r) = self.get(path) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{}{path} does not answer", self.base);
    }

    /// The event ids of a case's timeline, or `None` if the node does not hold it.
    fn timeline(&self, case: &str) -> Option<Vec<String>> {
        let (status, v) = self.read(&format!("/api/cases/{case}"));
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "case {case} at {}: {v}", self.base);
        Some(v["timeline"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect())
    }

    /// Every case the node holds.
    fn all_cases(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let (status, page) = self.read(&format!("/api/cases?owner=all&status=all&limit=1000{after}"));
            assert_eq!(status, 200, "{page}");
            out.extend(page["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
            match page["next"].as_str() {
                Some(c) => after = format!("&after={c}"),
                None => return out,
            }
        }
    }

    /// The link status this node reports for the peer `division`.
    fn peer(&self, division: &str) -> Option<Value> {
        let (status, s) = self.get("/api/sync")?;
        if status != 200 {
            return None;
        }
        s["peers"].as_array()?.iter().find(|p| p["division"] == division).cloned()
    }

    fn metric(&self, name: &str) -> Option<u64> {
        let resp = self.http.get(format!("{}/metrics", self.base)).send().ok()?;
        let text = resp.text().ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// A step a node acknowledged (2xx): the case and the event it added.
#[derive(Clone, Debug)]
struct Ack {
    node: usize,
    case: String,
    event: String,
}

/// State shared by the drivers and the killer.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Drivers post without pausing.
    burst: AtomicBool,
    /// Drivers wait while the killer checks (so a long check does not pile
    /// up records that make the next one longer).
    hold: AtomicBool,
    acks: Mutex<Vec<Ack>>,
}

/// One client thread on one node, acting as its own user so the event a
/// step added is found in the answer by its operator.
struct Driver {
    node: usize,
    unit: &'static str,
    op: Http,
    user: String,
    /// The township's 督办 (supervision needs an admin).
    admin: Option<(Http, String)>,
    /// Acts only on cases whose id falls in this part (`k` of `n`), so two
    /// drivers never act on one case.
    part: (u64, u64),
    rng: u64,
}

fn mine(case: &str, (k, n): (u64, u64)) -> bool {
    u64::from_str_radix(&case[case.len() - 4..], 16).unwrap() % n == k
}

/// The newest event `user` added to the case in an answer (its own chain
/// position is the highest, and one driver's steps are sequential).
fn own_event(v: &Value, user: &str) -> Option<String> {
    v["timeline"].as_array()?.iter().filter(|t| t["operator"] == user).max_by_key(|t| t["author_seq"].as_u64().unwrap_or(0)).map(|t| t["id"].as_str().unwrap().to_string())
}

const OPEN: &str = "awaiting_receipt,accepted,handling,returned,resolved,fed_back,rated";

impl Driver {
    fn refresh(&self, owned: &mut HashMap<String, String>, others: &mut Vec<String>) {
        let list = |owner: &str| self.op.get(&format!("/api/cases?owner={owner}&status={OPEN}&limit=1000")).filter(|(s, _)| *s == 200).map(|(_, v)| v);
        if let Some(v) = list(self.unit) {
            owned.clear();
            for c in v["cases"].as_array().unwrap() {
                let id = c["id"].as_str().unwrap();
                if mine(id, self.part) {
                    owned.insert(id.to_string(), c["status"]["code"].as_str().unwrap().to_string());
                }
            }
        }
        let other = if self.unit == VILLAGE { TOWNSHIP } else { VILLAGE };
        if let Some(v) = list(other) {
            *others = v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).filter(|id| mine(id, self.part)).collect();
        }
    }

    /// The next request: (path, body, as admin).
    fn choose(&mut self, owned: &HashMap<String, String>, others: &[String]) -> (String, Value, bool) {
        let r = next(&mut self.rng);
        let village = self.unit == VILLAGE;
        if owned.is_empty() || r.is_multiple_of(5) {
            let title = if village { "村里受理的纠纷" } else { "街道受理、下派村里的案件" };
            return ("/api/cases".into(), sample_case(title), false);
        }
        if !others.is_empty() && r % 7 == 1 {
            let case = &others[((r >> 8) % others.len() as u64) as usize];
            return if village {
                // The filing center adds to a case it escalated (goes up).
                (format!("/api/cases/{case}/actions"), json!({"action": "progress", "note": "村里补充情况"}), false)
            } else {
                // 督办 of a case the village holds (goes down).
                let grade = if r.is_multiple_of(3) { "red" } else { "yellow" };
                (format!("/api/cases/{case}/actions"), json!({"action": "supervise", "grade": grade, "note": "请尽快办理"}), true)
            };
        }
        let mut ids: Vec<&String> = owned.keys().collect();
        ids.sort();
        let case = ids[((r >> 8) % ids.len() as u64) as usize];
        let a = ((r >> 24) % 6) as usize;
        let sign_for = json!({"action": "sign_for"});
        let route = |w: &str| json!({"action": "route", "window": w});
        let escalate = json!({"action": "escalate", "reason": "村里无法调处"});
        let progress = json!({"action": "progress", "note": "进展"});
        let resolve = json!({"action": "resolve", "public_reply": "已调解"});
        let helpers = json!({"action": "add_helpers", "windows": ["health"]});
        let give_back = json!({"action": "return", "reason": "不属于本级"});
        let dispatch = json!({"action": "dispatch", "to": VILLAGE, "requirements": "属地处置"});
        let body = match (village, owned[case].as_str()) {
            (_, "awaiting_receipt") => sign_for,
            (_, "resolved") => json!({"action": "feedback", "note": "已告知当事人"}),
            (_, "fed_back") => json!({"action": "rate", "rating": "satisfied"}),
            (_, "rated") => json!({"action": "archive"}),
            (true, "accepted") => [route("justice"), escalate.clone(), helpers, progress, resolve, escalate][a].clone(),
            (true, "handling") => [progress.clone(), resolve.clone(), give_back, escalate, progress, resolve][a].clone(),
            (true, _) => [route("police"), escalate.clone(), route("justice"), escalate][a % 4].clone(),
            (false, "returned") => [dispatch.clone(), route("justice"), dispatch][a % 3].clone(),
            (false, _) => [dispatch.clone(), dispatch, give_back, resolve, progress, route("police")][a].clone(),
        };
        (format!("/api/cases/{case}/actions"), body, false)
    }

    fn run(mut self, shared: Arc<Shared>) {
        let mut owned: HashMap<String, String> = HashMap::new();
        let mut others: Vec<String> = Vec::new();
        let mut step = 0u64;
        while !shared.stop.load(Ordering::Relaxed) {
            while shared.hold.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Outside a burst, pause (in slices, so a burst starts at once).
            let paused = Instant::now();
            while paused.elapsed() < SLOW && !shared.burst.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if step.is_multiple_of(12) {
                self.refresh(&mut owned, &mut others);
            }
            step += 1;
            let (path, body, as_admin) = self.choose(&owned, &others);
            let (http, user) = match (&self.admin, as_admin) {
                (Some((h, u)), true) => (h, u),
                _ => (&self.op, &self.user),
            };
            match http.post(&path, &body) {
                Some((status, v)) if status == 200 || status == 201 => {
                    let case = v["id"].as_str().unwrap().to_string();
                    let event = own_event(&v, user).unwrap_or_else(|| panic!("{body} acknowledged without its event: {v}"));
                    shared.acks.lock().unwrap().push(Ack { node: self.node, case: case.clone(), event });
                    let st = v["status"]["code"].as_str().unwrap_or_default().to_string();
                    if v["owner"] == self.unit && mine(&case, self.part) && OPEN.split(',').any(|s| s == st) {
                        owned.insert(case, st);
                    } else {
                        owned.remove(&case);
                    }
                }
                // A rule refused it (the case moved on meanwhile): look again later.
                Some(_) => {
                    if let Some(case) = path.strip_prefix("/api/cases/").and_then(|p| p.strip_suffix("/actions")) {
                        owned.remove(case);
                    }
                }
                // The node is down.
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Clients writing on the victim, killed in the middle of a burst.
    Intake,
    /// Killed just after a burst, while its records are replicated both ways.
    Live,
    /// Killed once records move again after a cut of the link.
    CatchUpCut,
    /// Killed once records move after the previous victim's restart.
    CatchUpRestart,
}

#[derive(Debug, Default)]
struct Figures {
    kills: u64,
    /// Kills by phase and victim.
    by_phase: BTreeMap<Phase, [u64; 2]>,
    /// Kills whose phase was observed as it happened: acknowledged steps on
    /// the victim during the burst (intake), records stored across the link
    /// during the window (live), records moving on the link before the kill
    /// (catch-up).
    confirmed: BTreeMap<Phase, u64>,
    acked: [usize; 2],
    cases: usize,
    restart_ms_max: u128,
    elapsed: Duration,
}

impl Figures {
    fn phase(&self, p: Phase) -> u64 {
        self.by_phase.get(&p).map(|v| v[0] + v[1]).unwrap_or(0)
    }

    fn print(&self, seed: u64) {
        eprintln!(
            "crash points (seed {seed}): {} kills in {:.1?}; acknowledged steps: village {}, township {}; {} cases; slowest restart {} ms",
            self.kills, self.elapsed, self.acked[V], self.acked[T], self.cases, self.restart_ms_max
        );
        for (p, [v, t]) in &self.by_phase {
            eprintln!("  {p:?}: {} kills (village {v}, township {t}), {} observed in that phase", v + t, self.confirmed.get(p).unwrap_or(&0));
        }
    }
}

/// The two nodes under fire, their admin sessions, and what has been checked.
struct Rig {
    h: Hierarchy,
    relay: UdpRelay,
    admin: [Http; 2],
    county: Http,
    shared: Arc<Shared>,
    /// Acknowledged events per node and case, and how much of the ack log was indexed.
    by_case: [HashMap<String, Vec<String>>; 2],
    indexed: usize,
    /// Cases touched on each node since it was last checked.
    touched: [HashSet<String>; 2],
}

impl Rig {
    fn node(&mut self, i: usize) -> &mut TestNode {
        if i == V { &mut self.h.villages[0] } else { &mut self.h.township }
    }

    fn log_tail(&self, i: usize) -> String {
        let log = if i == V { self.h.villages[0].log() } else { self.h.township.log() };
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn index_acks(&mut self) {
        let acks = self.shared.acks.lock().unwrap();
        for a in &acks[self.indexed..] {
            self.by_case[a.node].entry(a.case.clone()).or_default().push(a.event.clone());
            self.touched[a.node].insert(a.case.clone());
        }
        self.indexed = acks.len();
    }

    fn acks_of(&self, node: usize) -> usize {
        self.shared.acks.lock().unwrap().iter().filter(|a| a.node == node).count()
    }

    /// Records stored across the village–township link so far (both directions).
    fn flow(&self) -> Option<u64> {
        let got = |i: usize, peer: &str| self.admin[i].peer(peer).and_then(|p| p["records_received"].as_u64());
        Some(got(V, TOWNSHIP)? + got(T, VILLAGE)?)
    }

    /// Records this node's current process moved on the link (0 just after a start).
    fn moved(&self, i: usize) -> u64 {
        let peer = if i == V { TOWNSHIP } else { VILLAGE };
        self.admin[i].peer(peer).map(|p| p["records_received"].as_u64().unwrap_or(0) + p["records_sent"].as_u64().unwrap_or(0)).unwrap_or(0)
    }

    /// Polls `f` every 2 ms for up to `secs`; whether it held.
    fn poll(secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    fn linked(&self) -> bool {
        let up = |i: usize, peer: &str| self.admin[i].peer(peer).is_some_and(|p| p["connected"] == true);
        up(V, TOWNSHIP) && up(T, VILLAGE)
    }

    /// Every step `i` acknowledged on the cases touched since its last
    /// check is in the timeline, no timeline holds an event twice, and the
    /// integrity check (own chain without gap, every record stored once
    /// under its id) passes.
    fn check(&mut self, i: usize, round: u64) {
        self.index_acks();
        let touched: Vec<String> = self.touched[i].drain().collect();
        for case in touched {
            let have = self.admin[i].timeline(&case).unwrap_or_else(|| panic!("round {round}: case {case} lost on node {i}"));
            let set: HashSet<&String> = have.iter().collect();
            assert_eq!(set.len(), have.len(), "round {round}: an event twice in case {case} on node {i}: {have:?}");
            for e in &self.by_case[i][&case] {
                assert!(set.contains(e), "round {round}: acknowledged event {e} of case {case} lost on node {i}; its log ends:\n{}", self.log_tail(i));
            }
        }
        let (status, v) = self.admin[i].read("/api/integrity");
        assert!(status == 200 && v["ok"] == true, "round {round}: integrity on node {i}: {v}; its log ends:\n{}", self.log_tail(i));
    }

    fn restart(&mut self, i: usize, fig: &mut Figures) {
        let t0 = Instant::now();
        self.node(i).start();
        fig.restart_ms_max = fig.restart_ms_max.max(t0.elapsed().as_millis());
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Sets up the tree, kills `kills` times, checks after every restart and at the end.
fn crash_points(kills: u64, seed: u64) -> Figures {
    let started = Instant::now();
    let mut h = Hierarchy::start(1);
    // The village reaches its township through a relay that can cut the link.
    let config = std::fs::read_to_string(&h.township.config).unwrap();
    let town_q: u16 = config.lines().find_map(|l| l.strip_prefix("quic_listen = \"127.0.0.1:")).unwrap().trim_end_matches('"').parse().unwrap();
    let relay = UdpRelay::start(town_q, u64::MAX).unwrap();
    h.villages[0].stop();
    let config = std::fs::read_to_string(&h.villages[0].config).unwrap();
    std::fs::write(&h.villages[0].config, config.replace(&format!("127.0.0.1:{town_q}"), &format!("127.0.0.1:{}", relay.port))).unwrap();
    h.villages[0].start();

    let add_user = |node: &TestNode, name: &str, role: &str| {
        let (status, v) = node.login("admin", ADMIN_PASSWORD).post("/api/users", &json!({"username": name, "password": DRIVER_PASSWORD, "role": role}));
        assert_eq!(status, 201, "{v}");
        Http::login(node, name, DRIVER_PASSWORD)
    };
    let shared = Arc::new(Shared::default());
    let mut rng = seed;
    let mut drivers = Vec::new();
    for k in 0..2 {
        let user = format!("drv-v{k}");
        drivers.push(Driver { node: V, unit: VILLAGE, op: add_user(&h.villages[0], &user, "operator"), user, admin: None, part: (k, 2), rng: next(&mut rng) });
    }
    let supervisor = ("drv-t-admin".to_string(), add_user(&h.township, "drv-t-admin", "admin"));
    drivers.push(Driver {
        node: T,
        unit: TOWNSHIP,
        op: add_user(&h.township, "drv-t", "operator"),
        user: "drv-t".into(),
        admin: Some((supervisor.1, supervisor.0)),
        part: (0, 1),
        rng: next(&mut rng),
    });
    let threads: Vec<_> = drivers
        .into_iter()
        .map(|d| {
            let shared = shared.clone();
            std::thread::spawn(move || d.run(shared))
        })
        .collect();

    let admin = [Http::login(&h.villages[0], "admin", ADMIN_PASSWORD), Http::login(&h.township, "admin", ADMIN_PASSWORD)];
    let county = Http::login(&h.county, "admin", ADMIN_PASSWORD);
    let mut rig = Rig { h, relay, admin, county, shared: shared.clone(), by_case: Default::default(), indexed: 0, touched: Default::default() };
    let mut fig = Figures::default();
    // The village restarted last, while a catch-up kill is chained to its restart.
    let mut chained = false;
    // (A restarted township used to leave the village on its old
    // connection until QUIC's idle timeout, so the kill after a township's
    // restart was forced to be the village's. Connection ids are now keyed
    // from the node key and a restarted node resets its peers' old
    // connections, so the next victim is drawn like any other.)
    let mut unchecked: [bool; 2] = [false; 2];
    while fig.kills < kills {
        let round = fig.kills;
        let round_start = Instant::now();
        let (phase, victim) = if std::mem::take(&mut chained) {
            // The restarted village or its township.
            (Phase::CatchUpRestart, if next(&mut rng).is_multiple_of(2) { V } else { T })
        } else {
            let phase = match next(&mut rng) % 100 {
                0..24 => Phase::Intake,
                24..60 => Phase::Live,
                _ => Phase::CatchUpCut,
            };
            (phase, if next(&mut rng) % 100 < 62 { T } else { V })
        };
        let observed = match phase {
            Phase::Intake => {
                let before = rig.acks_of(victim);
                shared.burst.store(true, Ordering::Relaxed);
                sleep_ms(20 + next(&mut rng) % 130);
                rig.node(victim).kill9();
                shared.burst.store(false, Ordering::Relaxed);
                rig.acks_of(victim) > before
            }
            Phase::Live => {
                assert!(Rig::poll(30, || rig.linked()), "round {round}: the link did not come back");
                let before = rig.flow().unwrap_or(0);
                shared.burst.store(true, Ordering::Relaxed);
                sleep_ms(20 + next(&mut rng) % 80);
                shared.burst.store(false, Ordering::Relaxed);
                sleep_ms(next(&mut rng) % 30);
                let moved = rig.flow().is_some_and(|f| f > before);
                rig.node(victim).kill9();
                moved
            }
            Phase::CatchUpCut => {
                assert!(Rig::poll(30, || rig.linked()), "round {round}: the link did not come back");
                // Both sides write while the link is cut, then it returns.
                rig.relay.cut.store(true, Ordering::SeqCst);
                shared.burst.store(true, Ordering::Relaxed);
                sleep_ms(150 + next(&mut rng) % 250);
                shared.burst.store(false, Ordering::Relaxed);
                let before = rig.flow().unwrap_or(0);
                rig.relay.cut.store(false, Ordering::SeqCst);
                let moving = Rig::poll(20, || rig.flow().is_some_and(|f| f > before));
                sleep_ms(next(&mut rng) % 20);
                rig.node(victim).kill9();
                moving
            }
            Phase::CatchUpRestart => {
                let moving = Rig::poll(20, || rig.moved(V) > 0);
                sleep_ms(next(&mut rng) % 20);
                rig.node(victim).kill9();
                moving
            }
        };
        let killed_at = round_start.elapsed();
        fig.kills += 1;
        fig.by_phase.entry(phase).or_default()[victim] += 1;
        *fig.confirmed.entry(phase).or_default() += observed as u64;
        // The survivor keeps taking steps while the victim is down.
        sleep_ms(next(&mut rng) % 60);
        rig.restart(victim, &mut fig);
        let restarted_at = round_start.elapsed();
        unchecked[victim] = true;
        // Sometimes the next kill comes in the catch-up this restart starts,
        // before anything is checked.
        if victim == V && fig.kills < kills && next(&mut rng) % 100 < 30 {
            chained = true;
            continue;
        }
        shared.hold.store(true, Ordering::Relaxed);
        for i in [V, T] {
            if std::mem::take(&mut unchecked[i]) {
                rig.check(i, round);
            }
        }
        shared.hold.store(false, Ordering::Relaxed);
        if std::env::var_os("ZONGZHI_CRASH_TRACE").is_some() {
            eprintln!("round {round} {phase:?} victim {victim}: killed {killed_at:?} restarted {restarted_at:?} checked {:?}", round_start.elapsed());
        }
        if round % 20 == 0 {
            eprintln!("round {round}: {:?} elapsed, {} acknowledged steps", started.elapsed(), shared.acks.lock().unwrap().len());
        }
    }

    // Quiesce: clients stop, the link is up, everything settles.
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    rig.relay.cut.store(false, Ordering::SeqCst);
    fig.acked = [rig.acks_of(V), rig.acks_of(T)];
    // Every acknowledged step of the whole run, on its own node.
    rig.index_acks();
    for i in [V, T] {
        rig.touched[i] = rig.by_case[i].keys().cloned().collect();
        rig.check(i, kills);
    }
    let t0 = Instant::now();
    fig.cases = settle_and_compare(&rig);
    eprintln!("settled and compared in {:?}", t0.elapsed());
    for i in [V, T] {
        let (_, v) = rig.admin[i].read("/api/integrity");
        assert_eq!(v["ok"], true, "final integrity on node {i}: {v}");
        let chain = v["report"]["own_chain_length"].as_u64().unwrap() as usize;
        assert!(chain >= fig.acked[i], "node {i}: own chain {chain} shorter than its {} acknowledged steps", fig.acked[i]);
    }
    fig.elapsed = started.elapsed();
    fig
}

/// Waits until the tree has settled, then checks that the village,
/// township and county agree on every case they share, every acknowledged
/// step reached every node whose scope it is in, and nothing waits for
/// parents. Returns the number of cases at the township.
fn settle_and_compare(rig: &Rig) -> usize {
    let nodes = [&rig.admin[V], &rig.admin[T], &rig.county];
    // Cheap first: the feeds stop growing and nothing is pending.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = Vec::new();
    let mut stable_since = Instant::now();
    loop {
        let now: Vec<Option<u64>> = nodes.iter().flat_map(|n| [n.metric("zongzhi_records"), n.metric("zongzhi_pending_records")]).collect();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(3) && last.iter().skip(1).step_by(2).all(|p| *p == Some(0)) {
            break;
        } else if stable_since.elapsed() > Duration::from_secs(20) {
            // Stuck (records waiting for parents that never come, say): the
            // comparison below names what is missing.
            eprintln!("no change for 20 s with records and pending per node {last:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the tree did not settle: records and pending per node {last:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let acks = rig.shared.acks.lock().unwrap().clone();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match compare(rig, &acks) {
            Ok(n) => return n,
            Err(e) if attempt < 5 => {
                eprintln!("not yet settled: {e}");
                std::thread::sleep(Duration::from_secs(3));
            }
            Err(e) => panic!("after the run: {e}"),
        }
    }
}

fn compare(rig: &Rig, acks: &[Ack]) -> Result<usize, String> {
    let (village, town, county) = (&rig.admin[V], &rig.admin[T], &rig.county);
    let at_village: HashSet<String> = village.all_cases().into_iter().collect();
    let town_cases = town.all_cases();
    let mut in_scope = HashSet::new();
    let mut town_timelines: HashMap<String, HashSet<String>> = HashMap::new();
    for case in &town_cases {
        let (_, v) = town.read(&format!("/api/cases/{case}"));
        let tl = v["timeline"].as_array().unwrap();
        let ids: HashSet<String> = tl.iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), tl.len(), "an event twice in case {case} at the township");
        // Down goes every case that was ever the village's.
        if tl.iter().any(|t| t["unit"] == VILLAGE || (t["action"] == "dispatch" && t["accepted"] == true)) {
            in_scope.insert(case.clone());
            let there = village.timeline(case).ok_or(format!("case {case} never reached the village"))?;
            let set: HashSet<String> = there.iter().cloned().collect();
            assert_eq!(set.len(), there.len(), "an event twice in case {case} at the village");
            if set != ids {
                return Err(format!("village and township disagree on case {case}: {} vs {} events", set.len(), ids.len()));
            }
        }
        // Up goes everything the township's subtree wrote.
        let above: HashSet<String> = county.timeline(case).ok_or(format!("case {case} never reached the county"))?.into_iter().collect();
        if above != ids {
            return Err(format!("county and township disagree on case {case}: {} vs {} events", above.len(), ids.len()));
        }
        town_timelines.insert(case.clone(), ids);
    }
    if let Some(c) = at_village.iter().find(|c| !in_scope.contains(*c)) {
        return Err(format!("the village holds case {c}, which the township does not count as the village's"));
    }
    for a in acks {
        let reached = town_timelines.get(&a.case).is_some_and(|t| t.contains(&a.event));
        if !reached {
            return Err(format!("acknowledged event {} of case {} (node {}) is not at the township", a.event, a.case, a.node));
        }
    }
    for n in [village, town, county] {
        if n.metric("zongzhi_pending_records") != Some(0) {
            return Err(format!("{} still has pending records", n.base));
        }
    }
    Ok(town_cases.len())
}

#[test]
fn sigkill_at_crash_points_over_intake_and_replication() {
    let kills: u64 = std::env::var("ZONGZHI_CRASH_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("ZONGZHI_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_2026);
    eprintln!("crash points: {kills} kills, seed {seed} (ZONGZHI_CRASH_POINTS, ZONGZHI_CRASH_SEED)");
    let fig = crash_points(kills, seed);
    fig.print(seed);
    assert!(fig.kills >= kills);
    // Every phase and both victims got a meaningful share, and the phases
    // were what they claim to be most of the time.
    let share = |n: u64| n * 100 / fig.kills;
    let catch_up = fig.phase(Phase::CatchUpCut) + fig.phase(Phase::CatchUpRestart);
    for (what, n) in [("intake", fig.phase(Phase::Intake)), ("live", fig.phase(Phase::Live)), ("catch-up", catch_up)] {
        assert!(share(n) >= 15 || kills < 100, "only {n} of {} kills during {what}", fig.kills);
    }
    for (victim, name) in [(V, "village"), (T, "township")] {
        let n: u64 = fig.by_phase.values().map(|v| v[victim]).sum();
        assert!(share(n) >= 30 || kills < 100, "only {n} of {} kills of the {name}", fig.kills);
        for (p, v) in &fig.by_phase {
            assert!(v[victim] > 0 || kills < 100, "no {p:?} kill of the {name}");
        }
    }
    for (p, n) in &fig.confirmed {
        let all = fig.phase(*p);
        assert!(*n * 100 >= all * 60, "{p:?}: only {n} of {all} kills observed in that phase");
    }
    let relogins = RELOGINS.load(Ordering::Relaxed);
    assert_eq!(relogins, 0, "sessions were lost across kills ({relogins} logins again)");
    let acked = fig.acked[V] + fig.acked[T];
    assert!(acked as u64 >= 5 * kills, "the clients acknowledged too little to mean anything ({acked})");
}
