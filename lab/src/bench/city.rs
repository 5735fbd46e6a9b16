//! `zongzhi-lab bench city`: a city node of 3,000 units fed through the
//! replication path, then timed on every interactive read the console
//! makes, against a real release `zongzhi-node` process.
//!
//! Load (see `load`): every unit has its own ed25519 key and a
//! certificate from its parent; case events are real records signed by
//! the village, township and county keys with a workflow mix planned in
//! `plan`; they reach the city's store through `Op::Ingest` on its
//! ledger, batch by batch with each county link's cursor, after the same
//! decode and batch verification the QUIC receiver does.
//!
//! Measure: the node's start until `/api/health` answers, p50/p99 of the
//! work queue, deep pages, filters, search, case detail, statistics and
//! the supervision board over HTTP, the process's RSS, disk bytes per
//! case, and the supervision scan timed in-process on the same store.

mod data;
mod load;
mod plan;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{RunningNode, node_binary, percentile};

/// Targets (BENCHMARKS.md, city issue).
const TARGET_P99_MS: f64 = 50.0;
const TARGET_RSS_MIB: f64 = 512.0;
const TARGET_HEALTHY_S: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct Options {
    pub cases: usize,
    /// Where the city is built (default: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Keep `dir` after the run.
    pub keep: bool,
    /// Measure an existing city directory instead of loading one.
    pub reuse: Option<PathBuf>,
    /// Only load (with `--dir --keep`).
    pub load_only: bool,
    /// Requests per read (fewer when a read is slow: see `budget_s`).
    pub requests: usize,
    /// Seconds spent on one read at most (at least 5 requests).
    pub budget_s: f64,
    /// An earlier result (file or city directory) to compare with.
    pub compare: Option<PathBuf>,
    pub seed: u64,
    /// Signing threads (default: the cores).
    pub threads: Option<usize>,
    pub node_bin: Option<PathBuf>,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let temp;
    let (dir, loaded) = match (&opts.reuse, &opts.dir) {
        (Some(d), _) => {
            if !d.join("bench-city.json").exists() {
                bail!("{} holds no benchmark city (bench-city.json); load one with --dir {} --keep", d.display(), d.display());
            }
            (d.clone(), false)
        }
        (None, Some(d)) => (d.clone(), true),
        (None, None) => {
            temp = tempfile::Builder::new().prefix("zongzhi-bench-city").tempdir_in(std::env::temp_dir())?;
            (temp.path().to_path_buf(), true)
        }
    };
    let result = (|| -> anyhow::Result<()> {
        if loaded {
            let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
            load::load(&dir, opts.cases, opts.seed, threads)?;
        }
        if opts.load_only {
            return Ok(());
        }
        measure(&dir, &opts)
    })();
    if loaded && opts.dir.is_some() && !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// One timed read.
struct Read {
    name: &'static str,
    label: String,
    paths: Vec<String>,
}

#[derive(Default, Clone)]
struct Timing {
    n: usize,
    status: u16,
    first_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    bytes: usize,
    note: String,
}

impl Timing {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn json(&self) -> Value {
        if !self.ok() {
            return json!({"status": self.status, "missing": self.status == 404, "note": self.note});
        }
        json!({"n": self.n, "first_ms": round(self.first_ms), "p50_ms": round(self.p50_ms), "p99_ms": round(self.p99_ms), "max_ms": round(self.max_ms), "bytes": self.bytes, "note": self.note})
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Percent-encodes a query value (non-ASCII and reserved bytes).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Api {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Api {
    /// Logs in as the city's admin with the password the load recorded.
    fn login(url: &str, desc: &Value) -> anyhow::Result<Api> {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build()?;
        let login: Value = http.post(format!("{url}/api/login")).json(&json!({"username": "admin", "password": desc["password"].as_str().unwrap_or(load::PASSWORD)})).send()?.json()?;
        let token = login["token"].as_str().context("login failed")?.to_string();
        Ok(Api { http, url: url.to_string(), token })
    }

    /// GET with the session: status, time until the whole body was read, body.
    fn get(&self, path: &str) -> anyhow::Result<(u16, Duration, String)> {
        let t = Instant::now();
        let r = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send()?;
        let status = r.status().as_u16();
        let body = r.text()?;
        Ok((status, t.elapsed(), body))
    }

    fn json(&self, path: &str) -> anyhow::Result<Value> {
        let (status, _, body) = self.get(path)?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }
}

fn time_read(api: &Api, read: &Read, requests: usize, budget: Duration) -> anyhow::Result<Timing> {
    let mut t = Timing::default();
    let (status, first, body) = api.get(&read.paths[0])?;
    t.status = status;
    t.first_ms = ms(first);
    t.bytes = body.len();
    if !(200..300).contains(&status) {
        t.note = match status {
            404 => "missing: the route answers 404".into(),
            _ => format!("answered {status}: {}", body.chars().take(160).collect::<String>()),
        };
        return Ok(t);
    }
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        let shown = v.get("cases").and_then(|c| c.as_array()).map(|c| c.len());
        match (shown, v.get("total").and_then(|x| x.as_u64())) {
            (Some(shown), Some(total)) => t.note = format!("{shown} of {total}{}", if v["total_exact"] == json!(false) { "+" } else { "" }),
            (Some(shown), None) => t.note = format!("{shown}{}", if v["next"].is_string() { " (more follow)" } else { "" }),
            _ => {}
        }
    }
    // Two warm-up requests, then up to `requests` timed ones within the budget.
    for i in 0..2 {
        api.get(&read.paths[(i + 1) % read.paths.len()])?;
    }
    let started = Instant::now();
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests {
        let (status, d, _) = api.get(&read.paths[i % read.paths.len()])?;
        if !(200..300).contains(&status) {
            bail!("{}: answered {status} on request {i}", read.label);
        }
        times.push(d);
        if started.elapsed() > budget && times.len() >= 5 {
            break;
        }
    }
    times.sort();
    t.n = times.len();
    t.p50_ms = ms(percentile(&times, 0.5));
    t.p99_ms = ms(percentile(&times, 0.99));
    t.max_ms = times.last().map(|d| ms(*d)).unwrap_or(0.0);
    Ok(t)
}

/// Disk use (allocated blocks, as `du`) of everything under `dir`.
fn disk_bytes(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut blocks, mut apparent) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                blocks += m.blocks() * 512;
                apparent += m.len();
            }
        }
    }
    Ok((blocks, apparent))
}

/// The 1-minute load average (other work on this machine's two cores
/// skews every figure: it is printed beside them).
pub(crate) fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok())).unwrap_or(0.0)
}

/// VmRSS and VmHWM of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 { status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0) };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The last complete month and quarter before `now` (China time).
fn periods(now_ms: u64) -> anyhow::Result<(String, String)> {
    let d = zongzhi_protocol::policy::china_date(now_ms).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (y, m) = (d.year() as i32, d.month() as i32);
    let (my, mm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let q = (m - 1) / 3 + 1;
    let (qy, qq) = if q == 1 { (y - 1, 4) } else { (y, q - 1) };
    Ok((format!("{my}-{mm:02}"), format!("{qy}-Q{qq}")))
}

/// What the measurement found besides the reads' timings.
struct Figures {
    cases: u64,
    /// Start until `/api/health` answered.
    healthy: Duration,
    deep: DeepPage,
    rss_kib: u64,
    hwm_kib: u64,
    /// Allocated disk bytes of the data directory (as `du`).
    disk: u64,
    /// Apparent size of the data directory's files.
    apparent: u64,
    load_before: f64,
    load_after: f64,
    /// SIGTERM until the node exited.
    stop_s: f64,
    supervision: Value,
}

impl Figures {
    /// Allocated disk bytes per case.
    fn disk_per_case(&self) -> f64 {
        self.disk as f64 / self.cases.max(1) as f64
    }
}

/// The deep page of every case and how it was reached.
struct DeepPage {
    /// The path of the last page reached.
    path: String,
    pages: usize,
    /// Time spent following the `next` cursors.
    walk: Duration,
}

impl DeepPage {
    /// Follows `next` 49 times through every case (fewer when they end).
    fn walk(api: &Api) -> anyhow::Result<DeepPage> {
        let deep_base = "/api/cases?owner=all&status=all&limit=100".to_string();
        let t = Instant::now();
        let mut deep = deep_base.clone();
        let mut pages = 1;
        while pages < 50 {
            let v = api.json(&deep)?;
            match v["next"].as_str() {
                Some(next) => {
                    deep = format!("{deep_base}&after={next}");
                    pages += 1;
                }
                None => break,
            }
        }
        Ok(DeepPage { path: deep, pages, walk: t.elapsed() })
    }
}

/// Starts the node on the city in `dir`, times every read over HTTP and
/// the supervision scan in-process, prints the table and writes the result.
fn measure(dir: &Path, opts: &Options) -> anyhow::Result<()> {
    let desc: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("bench-city.json"))?).context("bench-city.json")?;
    let cases = desc["cases"].as_u64().unwrap_or(0);
    let bin = node_binary(opts.node_bin.clone())?;
    let port = crate::demo::free_ports(1)?[0];
    let cfg = load::write_config(dir, port)?;
    let (disk, apparent) = disk_bytes(&dir.join("data"))?;
    let load_before = loadavg();

    // Start until healthy.
    let t0 = Instant::now();
    let mut node = RunningNode::spawn(&bin, &cfg)?;
    let pid = node.child.id();
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&mut node, &url, t0)?;
    let healthy = t0.elapsed();
    eprintln!("node healthy {:.2} s after start ({cases} cases, {} records)", healthy.as_secs_f64(), desc["records_held"]);

    let api = Api::login(&url, &desc)?;
    let deep = DeepPage::walk(&api)?;
    let reads = console_reads(&desc, &deep)?;
    let timings = time_reads(&api, &reads, opts)?;
    let (rss, hwm) = rss_kib(pid);
    let load_after = loadavg();
    // Stop the node (SIGTERM) before the scan opens the store.
    let stop_s = stop_node(node, pid);

    let supervision = supervision_scan(&cfg)?;
    let figures = Figures { cases, healthy, deep, rss_kib: rss, hwm_kib: hwm, disk, apparent, load_before, load_after, stop_s, supervision };

    // The table.
    let compare = earlier_result(opts.compare.as_deref())?;
    let reads_json = print_reads(&desc, &reads, &timings, compare.as_ref())?;
    print_figures(&figures, compare.as_ref())?;
    write_result(dir, &desc, &figures, reads_json, compare.as_ref())
}

/// Polls `/api/health` until it answers `ok`; fails when the node exits
/// first or is not healthy within 600 s of `t0`.
fn wait_healthy(node: &mut RunningNode, url: &str, t0: Instant) -> anyhow::Result<()> {
    let probe = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    loop {
        if let Ok(r) = probe.get(format!("{url}/api/health")).send()
            && r.status().is_success()
            && r.json::<Value>().is_ok_and(|v| v["status"] == "ok")
        {
            return Ok(());
        }
        if let Some(status) = node.child.try_wait()? {
            bail!("the node exited with {status} before it was healthy");
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("the node was not healthy within 600 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every read the console makes, with the sample cases, words and
/// periods the load recorded (the month and quarter before now).
fn console_reads(desc: &Value, deep: &DeepPage) -> anyhow::Result<Vec<Read>> {
    let samples: Vec<load::Sample> = serde_json::from_value(desc["samples"].clone()).unwrap_or_default();
    if samples.is_empty() {
        bail!("bench-city.json lists no sample cases");
    }
    let words: Vec<String> = serde_json::from_value(desc["words"].clone()).unwrap_or_default();
    let (month, quarter) = periods(zongzhi_node::context::now_ms())?;
    let pages = deep.pages;
    let one = |p: &str| vec![p.to_string()];
    Ok(vec![
        Read { name: "queue", label: "work queue, first page (GET /api/cases?limit=100)".into(), paths: one("/api/cases?limit=100") },
        Read { name: "queue_console", label: "work queue as the console asks (status=open&limit=100)".into(), paths: one("/api/cases?limit=100&status=open") },
        Read { name: "queue_500", label: "work queue, 500 rows (status=open&limit=500)".into(), paths: one("/api/cases?limit=500&status=open") },
        Read { name: "queue_all", label: "all open cases of the city, first page (owner=all)".into(), paths: one("/api/cases?owner=all&limit=100") },
        Read { name: "deep_page", label: format!("page {pages} of every case (owner=all&status=all, after=<next>)"), paths: vec![deep.path.clone()] },
        Read { name: "overdue", label: "overdue filter (owner=all&overdue=true)".into(), paths: one("/api/cases?owner=all&overdue=true&limit=100") },
        Read { name: "category", label: "category filter (owner=all&category=02)".into(), paths: one("/api/cases?owner=all&category=02&limit=100") },
        Read { name: "urgent", label: "urgent filter (owner=all&urgency=urgent)".into(), paths: one("/api/cases?owner=all&urgency=urgent&limit=100") },
        Read { name: "clock_any", label: "my running clocks (clock=any)".into(), paths: one("/api/cases?clock=any&limit=100") },
        Read { name: "search_number", label: "search by case number (GET /api/search?q=<number>)".into(), paths: samples.iter().map(|s| format!("/api/search?q={}", enc(&s.number))).collect() },
        Read { name: "search_phone", label: "search by phone (q=<11 digits>)".into(), paths: samples.iter().filter_map(|s| s.phone.as_ref()).map(|p| format!("/api/search?q={}", enc(p))).collect() },
        Read { name: "search_word", label: "search by word (q=<two characters of a title>)".into(), paths: words.iter().map(|w| format!("/api/search?q={}", enc(w))).collect() },
        Read { name: "case_detail", label: "case detail (GET /api/cases/{id})".into(), paths: samples.iter().map(|s| format!("/api/cases/{}", s.id)).collect() },
        Read {
            name: "similar",
            label: "the same complainant at intake (GET /api/cases/similar?phone=)".into(),
            paths: samples.iter().filter_map(|s| s.phone.as_ref()).map(|p| format!("/api/cases/similar?phone={}&category=0202", enc(p))).collect(),
        },
        Read { name: "repeats_month", label: format!("repeats across the city, {month} (GET /api/repeats)"), paths: one(&format!("/api/repeats?period={month}")) },
        Read {
            name: "stats_unit_month",
            label: format!("statistics by unit, {month}, as the console asks (first 200 ranked rows)"),
            paths: one(&format!("/api/stats?by=unit&period={month}&limit=200")),
        },
        Read { name: "stats_unit_month_all", label: format!("statistics by unit, {month}, every row (3,000)"), paths: one(&format!("/api/stats?by=unit&period={month}")) },
        Read { name: "stats_county_month", label: format!("statistics by county, {month}"), paths: one(&format!("/api/stats?by=county&period={month}")) },
        Read { name: "stats_category_month", label: format!("statistics by category, {month}"), paths: one(&format!("/api/stats?by=category&period={month}")) },
        Read { name: "stats_unit_quarter", label: format!("statistics by unit, {quarter}, first 200 ranked rows"), paths: one(&format!("/api/stats?by=unit&period={quarter}&limit=200")) },
        Read { name: "stats_unit_quarter_all", label: format!("statistics by unit, {quarter}, every row (3,000)"), paths: one(&format!("/api/stats?by=unit&period={quarter}")) },
        Read { name: "stats_county_quarter", label: format!("statistics by county, {quarter}"), paths: one(&format!("/api/stats?by=county&period={quarter}")) },
        Read { name: "stats_category_quarter", label: format!("statistics by category, {quarter}"), paths: one(&format!("/api/stats?by=category&period={quarter}")) },
        // By window and by person: the cases folded at query time.
        Read { name: "stats_window_month", label: format!("statistics by window, {month} (every center's windows)"), paths: one(&format!("/api/stats?by=window&period={month}")) },
        Read { name: "stats_person_quarter", label: format!("statistics by person, {quarter}"), paths: one(&format!("/api/stats?by=person&period={quarter}&limit=200")) },
        Read { name: "supervision_board", label: "supervision board (status=open&owner=all&overdue=true&limit=1000)".into(), paths: one("/api/cases?status=open&owner=all&overdue=true&limit=1000") },
    ])
}

/// Times every read that has paths (a read without any is skipped and
/// gets no timing), printing each as it is done.
fn time_reads(api: &Api, reads: &[Read], opts: &Options) -> anyhow::Result<Vec<Timing>> {
    let budget = Duration::from_secs_f64(opts.budget_s);
    let mut timings = Vec::new();
    for r in reads {
        if r.paths.is_empty() {
            continue;
        }
        let t = time_read(api, r, opts.requests, budget)?;
        eprintln!("  {:<62} {}", r.label, if t.ok() { format!("p50 {:.2} ms  p99 {:.2} ms  (n {})", t.p50_ms, t.p99_ms, t.n) } else { t.note.clone() });
        timings.push(t);
    }
    Ok(timings)
}

/// Stops the node with SIGTERM and returns the seconds until it exited.
fn stop_node(mut node: RunningNode, pid: u32) -> f64 {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let stop = Instant::now();
    let _ = node.child.wait();
    let stop_s = stop.elapsed().as_secs_f64();
    drop(node);
    stop_s
}

/// The earlier result to compare with (a file, or a city directory's
/// `bench-city-result.json`), if one was given.
fn earlier_result(compare: Option<&Path>) -> anyhow::Result<Option<Value>> {
    match compare {
        Some(p) => {
            let file = if p.is_dir() { p.join("bench-city-result.json") } else { p.to_path_buf() };
            Ok(Some(serde_json::from_str::<Value>(&std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?)?))
        }
        None => Ok(None),
    }
}

/// Prints the city's description and one row per read (with the p99
/// ratio against `compare`); returns the reads' figures as JSON.
fn print_reads(desc: &Value, reads: &[Read], timings: &[Timing], compare: Option<&Value>) -> anyhow::Result<serde_json::Map<String, Value>> {
    let ratio_head = match compare.and_then(|c| c["cases"].as_u64()) {
        Some(n) => format!("p99 vs {n}"),
        None => String::new(),
    };
    let load = &desc["load"];
    outln!(
        "city of {} units, {} cases, {} records (loaded at {:.0} records/s, {:.0} cases/s)",
        desc["units"],
        desc["cases"].as_u64().unwrap_or(0),
        desc["records_held"],
        load["records_per_s"].as_f64().unwrap_or(0.0),
        load["cases_per_s"].as_f64().unwrap_or(0.0)
    )?;
    outln!("planned: {}", desc["planned"])?;
    outln!("held at the city: {}", desc["composition"])?;
    outln!("{:<58} {:>4} {:>9} {:>9} {:>9} {:>9}  {:<16} {:>10}  rows", "read", "n", "first", "p50", "p99", "max", "target", ratio_head)?;
    let mut reads_json = serde_json::Map::new();
    for (r, t) in reads.iter().zip(timings) {
        reads_json.insert(r.name.to_string(), t.json());
        if !t.ok() {
            outln!("{:<58} {}", r.label, t.note)?;
            continue;
        }
        let ratio = compare.and_then(|c| c["reads"][r.name]["p99_ms"].as_f64()).map(|o| format!("{:.2}×", t.p99_ms / o.max(0.001))).unwrap_or_default();
        let met = if t.p99_ms <= TARGET_P99_MS { "p99 ≤ 50 ms" } else { "p99 ≤ 50 ms OVER" };
        outln!("{:<58} {:>4} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>6.2} ms  {met:<16} {ratio:>10}  {}", r.label, t.n, t.first_ms, t.p50_ms, t.p99_ms, t.max_ms, t.note)?;
    }
    Ok(reads_json)
}

/// Prints the figures below the reads: deep walk, start, RSS, disk,
/// supervision scan, stop, load average, and the ratios against `compare`.
fn print_figures(f: &Figures, compare: Option<&Value>) -> anyhow::Result<()> {
    let sup = &f.supervision;
    outln!("{:<58} {:.2} s for {} pages", "walking the `next` cursors to the deep page", f.deep.walk.as_secs_f64(), f.deep.pages)?;
    outln!("{:<58} {:.2} s   (target ≤ {TARGET_HEALTHY_S:.0} s)", "start until GET /api/health ok", f.healthy.as_secs_f64())?;
    outln!("{:<58} {:.0} MiB (peak {:.0} MiB)   (target ≤ {TARGET_RSS_MIB:.0} MiB)", "RSS of the node after the reads (VmRSS)", f.rss_kib as f64 / 1024.0, f.hwm_kib as f64 / 1024.0)?;
    outln!(
        "{:<58} {:.0} bytes/case ({:.1} MiB in all; {:.0} bytes/case apparent)",
        "disk (du of the data directory / cases)",
        f.disk_per_case(),
        f.disk as f64 / 1048576.0,
        f.apparent as f64 / f.cases.max(1) as f64
    )?;
    outln!(
        "{:<58} {:.2} ms (median of {}); the city holds {} cases, {} open, {} running clocks of open cases, {} overdue ({} of cases it supervises); {} notices due",
        "supervision scan in-process (supervisor::scan)",
        sup["scan_ms"].as_f64().unwrap_or(0.0),
        sup["runs"],
        sup["summaries"],
        sup["open"],
        sup["running_clocks"],
        sup["overdue_clocks"],
        sup["overdue_clocks_city_supervises"],
        sup["due"]
    )?;
    outln!("{:<58} {:.2} s", "stop (SIGTERM until exit)", f.stop_s)?;
    outln!("{:<58} {:.2} before the reads, {:.2} after (2 cores; above 1 means other work shared them)", "load average of the machine (1 min)", f.load_before, f.load_after)?;
    if let Some(c) = compare {
        let earlier = |k: &str| c[k].as_f64().unwrap_or(0.0);
        outln!(
            "against {} cases: healthy {:.2}× , RSS {:.2}×, disk per case {:.2}×, supervision scan {:.2}×",
            c["cases"],
            f.healthy.as_secs_f64() / earlier("healthy_s").max(1e-9),
            f.rss_kib as f64 / 1024.0 / earlier("rss_mib").max(1e-9),
            f.disk_per_case() / earlier("disk_bytes_per_case").max(1e-9),
            sup["scan_ms"].as_f64().unwrap_or(0.0) / c["supervision"]["scan_ms"].as_f64().unwrap_or(0.0).max(1e-9)
        )?;
    }
    Ok(())
}

/// Prints the result as one JSON line and writes it to the city
/// directory, as `bench-city-result.json` and under the time of the run.
fn write_result(dir: &Path, desc: &Value, f: &Figures, reads: serde_json::Map<String, Value>, compare: Option<&Value>) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let result = json!({
        "bench": "city",
        "at": now.to_string(),
        "cases": f.cases,
        "records": desc["records_held"],
        "units": desc["units"],
        "load": desc["load"],
        "planned": desc["planned"],
        "composition": desc["composition"],
        "healthy_s": round(f.healthy.as_secs_f64()),
        "rss_mib": round(f.rss_kib as f64 / 1024.0),
        "rss_peak_mib": round(f.hwm_kib as f64 / 1024.0),
        "disk_bytes": f.disk,
        "disk_bytes_per_case": round(f.disk_per_case()),
        "loadavg": [f.load_before, f.load_after],
        "deep_page": f.deep.pages,
        "deep_walk_s": round(f.deep.walk.as_secs_f64()),
        "reads": reads,
        "supervision": f.supervision,
        "targets": {"read_p99_ms": TARGET_P99_MS, "rss_mib": TARGET_RSS_MIB, "healthy_s": TARGET_HEALTHY_S},
        "compared_with_cases": compare.and_then(|c| c["cases"].as_u64()),
    });
    outln!("{}", serde_json::to_string(&result)?)?;
    let text = serde_json::to_string_pretty(&result)?;
    std::fs::write(dir.join("bench-city-result.json"), &text)?;
    std::fs::write(dir.join(format!("bench-city-result-{}.json", now.as_second())), &text)?;
    Ok(())
}

/// Times `supervisor::scan` on the stopped node's store (opened as the
/// node opens it) and counts what it had to look at.
fn supervision_scan(cfg_path: &Path) -> anyhow::Result<Value> {
    use zongzhi_protocol::supervision;
    let cfg = zongzhi_node::config::Config::load(cfg_path)?;
    let key = std::sync::Arc::new(zongzhi_node::node::load_key(&cfg)?);
    let store = zongzhi_node::node::open_store(&cfg, &key)?;
    let shared = zongzhi_node::node::shared_state(&cfg, store.clone(), key)?;
    let now = zongzhi_node::context::now_ms();
    let mut times = Vec::new();
    let mut due = 0;
    for _ in 0..5 {
        let t = Instant::now();
        due = zongzhi_node::supervisor::scan(&shared, now)?.len();
        times.push(t.elapsed());
    }
    times.sort();
    let (mut summaries, mut open, mut running, mut overdue, mut mine) = (0u64, 0u64, 0u64, 0u64, 0u64);
    store.all_summaries(|s| {
        summaries += 1;
        if s.status.is_open() {
            open += 1;
            running += s.running.len() as u64;
            let late = s.running.iter().filter(|r| now > r.due_ms).count() as u64;
            overdue += late;
            if supervision::supervisor(s.owner, s.returns, s.units_handled.max(1) as usize) == Some(shared.unit) {
                mine += late;
            }
        }
        true
    })?;
    Ok(json!({
        "scan_ms": round(ms(percentile(&times, 0.5))),
        "runs": times.len(),
        "summaries": summaries,
        "open": open,
        "running_clocks": running,
        "overdue_clocks": overdue,
        "overdue_clocks_city_supervises": mine,
        "due": due,
    }))
}
