//! Benchmarks that print figures (not tests): `zongzhi bench intake` and
//! `zongzhi bench verify`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};
use zongzhi_protocol::record::verify_batch;
use zongzhi_protocol::{Action, Body, CaseEvent, Filing, Header, Hlc, NodeKey, Record};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The `zongzhi-node` binary next to this one, unless given.
fn node_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let p = me.parent().context("no parent dir")?.join("zongzhi-node");
    if !p.exists() {
        bail!("{} not found; build it or pass --node-bin", p.display());
    }
    Ok(p)
}

struct RunningNode {
    child: Child,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(bin: &Path, dir: &Path) -> anyhow::Result<(RunningNode, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let cfg = dir.join("node.toml");
    std::fs::write(&cfg, format!("data_dir = \"data\"\ndivision = \"330102001000\"\nname = \"基准测试中心\"\nhttp_listen = \"127.0.0.1:{port}\"\n"))?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let o = Command::new(bin).args(args).arg("--config").arg(&cfg).output()?;
        if !o.status.success() {
            bail!("zongzhi-node {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    };
    run(&["init"])?;
    run(&["user", "add", "--username", "bench", "--role", "operator", "--password", "bench-password"])?;
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let node = RunningNode { child };
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{url}/api/health")).send().is_err() {
        if Instant::now() > deadline {
            bail!("node did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((node, url))
}

/// Files `cases` cases through the HTTP API from `clients` concurrent
/// clients, against a fresh node whose every acknowledgement follows an fsync.
pub fn intake(cases: usize, clients: usize, node_bin: Option<PathBuf>) -> anyhow::Result<()> {
    let bin = node_binary(node_bin)?;
    let dir = tempfile::tempdir()?;
    let (_node, url) = start_node(&bin, dir.path())?;
    let http = reqwest::blocking::Client::new();
    let login: serde_json::Value = http
        .post(format!("{url}/api/login"))
        .json(&json!({"username": "bench", "password": "bench-password"}))
        .send()?
        .json()?;
    let token = login["token"].as_str().context("login failed")?.to_string();
    let body = json!({
        "title": "邻居装修噪音扰民", "content": "楼上住户装修，每天早上七点开始施工，噪音很大，协商无果，请求协调。",
        "category": "0202", "request_type": "complaint", "channel": "phone",
        "place": {"address": "留下街道某小区3幢"},
        "contact": {"name": "张三", "phone": "13812341234", "address": "某小区3幢502"}
    });
    // Warm up connections and the node.
    for _ in 0..20 {
        http.post(format!("{url}/api/cases")).bearer_auth(&token).json(&body).send()?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (url, token, body, next) = (url.clone(), token.clone(), body.clone(), next.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let http = reqwest::blocking::Client::new();
                let mut lat = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < cases {
                    let t = Instant::now();
                    let r = http.post(format!("{url}/api/cases")).bearer_auth(&token).json(&body).send()?;
                    if r.status().as_u16() != 201 {
                        bail!("filing failed: {}", r.status());
                    }
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(cases);
    for w in workers {
        lat.extend(w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let rate = cases as f64 / elapsed.as_secs_f64();
    println!("intake: {cases} cases via HTTP API, {clients} concurrent clients, synced RocksDB writes");
    println!("  elapsed        {:.2} s", elapsed.as_secs_f64());
    println!("  throughput     {rate:.0} cases/s   (target ≥ 1000)");
    println!("  latency p50    {}", ms(percentile(&lat, 0.50)));
    println!("  latency p99    {}", ms(percentile(&lat, 0.99)));
    let h: serde_json::Value = http.get(format!("{url}/api/health")).send()?.json()?;
    println!("  records stored {}", h["records"]);
    Ok(())
}

fn sample_records(n: usize) -> Vec<Record> {
    let key = NodeKey::from_seed([5; 32]);
    let mut prev = None;
    (0..n)
        .map(|i| {
            let event = CaseEvent {
                case: None,
                parents: vec![],
                unit: "330102001001".parse().expect("valid code"),
                operator: "wang.xiaoming".into(),
                action: Action::File(Box::new(Filing {
                    number: format!("330102001001-2026-{i:06}"),
                    title: "邻居装修噪音扰民，多次协商无果".into(),
                    content: "楼上住户装修，每天早上七点开始施工，持续到晚上九点，噪音很大，影响老人和孩子休息。多次上门协商无果，物业也无法处理，请求村工作站协调解决。".into(),
                    category: "0202".into(),
                    request_type: RequestType::Complaint,
                    channel: Channel::OnSite,
                    urgency: Urgency::Normal,
                    complexity: Complexity::General,
                    place: Place { address: "留下街道某小区3幢502室".into(), lat_e6: Some(30_250_000), lon_e6: Some(120_050_000) },
                    occurred_at_ms: Some(1_790_000_000_000),
                    received_at_ms: 1_790_000_000_000 + i as u64,
                    people_involved: 2,
                    amount_fen: None,
                    contact: Some(zongzhi_protocol::BlobHash([7; 32])),
                })),
            };
            let header = Header { seq: i as u64 + 1, prev, hlc: Hlc { wall_ms: 1_790_000_000_000 + i as u64, counter: 0 } };
            let r = Record::sign(&key, header, Body::CaseEvent(event));
            prev = Some(r.id);
            r
        })
        .collect()
}

/// Record signing and verification against raw ed25519 in the same run.
pub fn verify(n: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    let records = sample_records(n);
    let sign_rate = n as f64 / t.elapsed().as_secs_f64();
    let avg = records.iter().map(|r| r.bytes().len()).sum::<usize>() / n;
    let bytes: Vec<Vec<u8>> = records.iter().map(|r| r.bytes().to_vec()).collect();

    // Raw: verify_strict over the same messages with keys and signatures already parsed.
    let key = records[0].author.verifying_key()?;
    let raw: Vec<(Vec<u8>, ed25519_dalek::Signature)> =
        records.iter().map(|r| (r.signed_message(), ed25519_dalek::Signature::from_bytes(r.signature()))).collect();
    let t = Instant::now();
    for (msg, sig) in &raw {
        key.verify_strict(msg, sig).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();

    // The record path: decode untrusted bytes, hash, verify strictly.
    let t = Instant::now();
    for b in &bytes {
        Record::decode(b)?;
    }
    let path_rate = n as f64 / t.elapsed().as_secs_f64();

    // Batch path: decode, then batch-verify 256 at a time.
    let t = Instant::now();
    for chunk in bytes.chunks(256) {
        let decoded: Vec<Record> = chunk.iter().map(|b| Record::decode_unverified(b)).collect::<Result<_, _>>()?;
        let refs: Vec<&Record> = decoded.iter().collect();
        if verify_batch(&refs).iter().any(|v| v.is_err()) {
            bail!("batch verification failed");
        }
    }
    let batch_rate = n as f64 / t.elapsed().as_secs_f64();

    println!("records: {n} signed case events, {avg} bytes each on average, one core");
    println!("  sign (build + encode + sign)          {sign_rate:>9.0} records/s");
    println!("  raw ed25519 verify_strict             {raw_rate:>9.0} verifies/s");
    println!("  record decode + hash + verify_strict  {path_rate:>9.0} records/s  ({:.0} % of raw; target ≥ 80 %)", 100.0 * path_rate / raw_rate);
    println!("  record decode + batch verify (256)    {batch_rate:>9.0} records/s  ({:.0} % of raw)", 100.0 * batch_rate / raw_rate);
    Ok(())
}
