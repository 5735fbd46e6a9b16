//! Loading the city: every county's subtree signs its certificates and
//! case events (one thread per county at a time, each author's chain in
//! order), the batches are decoded and batch-verified as the QUIC
//! receiver does, and handed to the city's ledger as `Op::Ingest` with
//! the link's cursor (direction up), at most three batches queued at the
//! writer: the receive path of `node::net` without the sockets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use zongzhi_node::ledger::{self, Cursor, DIRECTION_UP, Ledger, Op, Outcome, Writer};
use zongzhi_node::store::Store;
use zongzhi_protocol::case::{Channel, Complexity, Place, Rating, RequestType, RouteTarget, SuperviseGrade, Urgency};
use zongzhi_protocol::cert::NodeCert;
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::record::verify_batch;
use zongzhi_protocol::workflow::{EventRef, NoRevocations, fold};
use zongzhi_protocol::{Action, BlobHash, Body, CaseEvent, Contact, Filing, Header, HlcClock, Level, NodeKey, Record, RecordId};

use super::data;
use super::plan::{self, CasePlan, County, Leaves, Planned, Rng, Step, Unit};

/// Records per batch, as the sender batches its feed.
const BATCH: usize = zongzhi_protocol::sync::BATCH_RECORDS;
/// Batches queued at the writer before the oldest is acknowledged (as `net`).
const WRITE_AHEAD: usize = 3;
/// Every this many cases, one is folded on its own after signing and each
/// of its steps must be accepted (the planner follows the workflow rules).
const CHECK_EVERY: usize = 37;
/// Days of filings.
const DAYS: u64 = 365;

pub const PASSWORD: &str = "bench-city-password";

/// A case the measurement asks for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub id: String,
    pub number: String,
    pub phone: Option<String>,
    pub open: bool,
}

/// A blob with its hash, as a batch carries it.
type Blob = (BlobHash, Vec<u8>);

/// A signed batch of one county's link.
struct Signed {
    county: usize,
    records: Vec<Vec<u8>>,
    blobs: Vec<(BlobHash, Vec<u8>)>,
    filings: usize,
}

/// A decoded and verified batch.
struct Verified {
    county: usize,
    records: Vec<Record>,
    blobs: Vec<(BlobHash, Vec<u8>)>,
    filings: usize,
}

/// What one county's signer found.
#[derive(Default)]
struct CountyDone {
    records: u64,
    cases: u64,
    samples: Vec<Sample>,
    checked: usize,
    problems: Vec<String>,
    /// In `Record::sign` (building, encoding, signing).
    sign_s: f64,
    /// The signer's whole run, waiting for the feeder included.
    signer_s: f64,
    plan_s: f64,
    /// How the cases were planned: paths, repeats, stuck, urgent.
    planned: HashMap<String, u64>,
}

struct Author {
    key_index: u16,
    seq: u64,
    head: Option<RecordId>,
    clock: HlcClock,
}

fn contact_of(seed: u64) -> Contact {
    let mut r = Rng::new(seed);
    let prefixes = ["135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "187", "188", "189", "177", "199"];
    let phone = format!("{}{:08}", r.pick(&prefixes), r.below(100_000_000));
    let name = format!("{}{}", r.pick(data::SURNAMES), r.pick(data::GIVEN));
    let birth = 1950 + r.below(55);
    let id_number = format!("330106{birth}{:02}{:02}{:04}", 1 + r.below(12), 1 + r.below(28), r.below(10_000));
    let address = format!("{}{}号{}幢{}室", r.pick(data::STREETS), 1 + r.below(400), 1 + r.below(30), 101 + r.below(1800));
    Contact { name, phone, id_number, address }
}

fn filing(p: &CasePlan, leaves: &Leaves, number: String, contact: Option<BlobHash>) -> Filing {
    let code = &leaves.codes[p.leaf as usize];
    let titles = data::TITLES.iter().find(|(c, _)| c == code).map(|(_, t)| *t).unwrap_or(&["群众诉求"]);
    let mut r = Rng::new(p.text as u64);
    let title = titles[r.below(titles.len() as u64) as usize].to_string();
    let place = format!("{}{}号", r.pick(data::STREETS), 1 + r.below(400));
    let content = format!("{}地点：{place}。{}", title, r.pick(data::CONTENTS));
    let channel = match p.channel {
        0..=44 => Channel::OnSite,
        45..=84 => Channel::Phone,
        _ => Channel::Online,
    };
    let request_type = match p.request_type {
        0..=44 => RequestType::Complaint,
        45..=64 => RequestType::Help,
        65..=79 => RequestType::Inquiry,
        80..=87 => RequestType::Report,
        88..=97 => RequestType::Suggestion,
        _ => RequestType::Praise,
    };
    let money = code.starts_with("04") || code.starts_with("06");
    Filing {
        number,
        title,
        content,
        category: code.clone(),
        request_type,
        channel,
        urgency: if p.urgent { Urgency::Urgent } else { Urgency::Normal },
        complexity: if p.complex { Complexity::Complex } else { Complexity::General },
        place: Place { address: place, lat_e6: None, lon_e6: None },
        occurred_at_ms: Some(p.received_ms.saturating_sub(r.minutes(60.0, 4320.0))),
        received_at_ms: p.received_ms,
        people_involved: 1 + r.below(5) as u32,
        amount_fen: money.then(|| 100 * (1000 + r.below(200_000))),
        contact,
        intake: Default::default(),
    }
}

fn action_of(step: Step, county: &County, leaves: &Leaves) -> Action {
    let w = |i: u8| leaves.windows[i as usize % leaves.windows.len()].clone();
    match step {
        Step::File => Action::SignFor, // filings are built by `filing`
        Step::SignFor => Action::SignFor,
        Step::Route { window } => Action::Route { window: w(window), requirements: data::ROUTE.into(), due_ms: None },
        Step::Progress { public } => Action::Progress { note: data::PROGRESS.into(), public },
        Step::Escalate => Action::Escalate { reason: data::ESCALATE.into() },
        Step::Dispatch { to } => Action::Dispatch { to: county.units[to as usize].code, requirements: data::DISPATCH.into(), due_ms: None },
        Step::Return => Action::Return { reason: data::RETURN.into() },
        Step::Reroute { window } => Action::Reroute { target: RouteTarget::Window(w(window)), reason: data::REROUTE.into() },
        Step::AddHelper { window } => Action::AddHelpers { helpers: vec![RouteTarget::Window(w(window))] },
        Step::RequestExtension { days } => Action::RequestExtension { working_days: days as u32, reason: data::EXTEND.into() },
        Step::DecideExtension { approve } => Action::DecideExtension { approve, note: data::DECIDE.into() },
        Step::Supervise { grade } => Action::Supervise { grade: SuperviseGrade::ALL[grade as usize % 4], note: data::SUPERVISE.into() },
        Step::Resolve => Action::Resolve { public_reply: data::REPLY.into(), internal_note: String::new() },
        Step::Feedback => Action::Feedback { method: "phone".into(), note: data::FEEDBACK.into(), invite: None },
        Step::Rate { rating } => Action::Rate { rating: Rating::ALL[rating as usize % 3], comment: String::new(), result_rating: None },
        Step::Reopen => Action::Reopen { reason: data::REOPEN.into() },
        Step::Archive => Action::Archive,
    }
}

/// What every county's signer shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    leaves: &'a Leaves,
    policy: &'a PolicySet,
    now: u64,
    seed: u64,
    sample_every: usize,
    /// The city's complainant fingerprint key (from its root key), as
    /// every filing center computes it.
    fingerprint_key: [u8; 32],
}

/// Plans and signs one county's subtree and sends its link's batches.
fn sign_county(county: &County, cases: usize, ctx: &Ctx<'_>, tx: &mpsc::SyncSender<Signed>) -> anyhow::Result<CountyDone> {
    let mut done = CountyDone::default();
    let t_plan = Instant::now();
    let plans = plan::plan_county(county, ctx.leaves, cases, ctx.now, DAYS, ctx.seed)?;
    let order = step_order(&plans);
    done.plan_s = t_plan.elapsed().as_secs_f64();
    done.planned = tally_plans(&plans);
    let t_sign = Instant::now();

    let mut link = LinkSigner::new(county, *ctx, tx);
    link.sign_certificates(&mut done)?;
    let checked = link.sign_cases(&plans, order, &mut done)?;
    link.flush(true)?;
    done.sign_s = link.signing.as_secs_f64();
    done.signer_s = t_sign.elapsed().as_secs_f64();

    check_cases(ctx.policy, &plans, checked, &mut done);
    Ok(done)
}

/// Every step of the county's subtree in time order, as (time, case,
/// step): each author's chain in order, and every event after its parents.
fn step_order(plans: &[CasePlan]) -> Vec<(u64, u32, u16)> {
    let mut order: Vec<(u64, u32, u16)> = Vec::with_capacity(plans.iter().map(|p| p.steps.len()).sum());
    for (ci, p) in plans.iter().enumerate() {
        for (si, s) in p.steps.iter().enumerate() {
            order.push((s.at, ci as u32, si as u16));
        }
    }
    order.sort_unstable();
    order
}

/// How the cases were planned: counts by path, repeats, stuck, urgent.
fn tally_plans(plans: &[CasePlan]) -> HashMap<String, u64> {
    let mut planned: HashMap<String, u64> = HashMap::new();
    for p in plans {
        let path = match p.path {
            plan::Path::Local => "resolved where filed".to_string(),
            plan::Path::Escalated(n) => format!("escalated {n} level{}", if n > 1 { "s" } else { "" }),
            plan::Path::Dispatched => "dispatched down".to_string(),
        };
        *planned.entry(path).or_default() += 1;
        for (flag, name) in [(p.repeat, "repeat complaints"), (p.stuck, "stuck before resolution"), (p.urgent, "urgent")] {
            if flag {
                *planned.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    planned
}

/// The case number a unit gives a case it files.
fn case_number(unit: &Unit, p: &CasePlan) -> String {
    format!("{}-{}-{:06}", unit.code, p.year, p.serial)
}

/// Signs a county's records in order, each unit's chain after its own
/// head, and sends the county link's batches as they fill.
struct LinkSigner<'a> {
    county: &'a County,
    ctx: Ctx<'a>,
    tx: &'a mpsc::SyncSender<Signed>,
    /// One per unit of the county, in the county's unit order.
    authors: Vec<Author>,
    batch: Signed,
    /// Time spent building and signing records (not waiting for the feeder).
    signing: Duration,
}

impl<'a> LinkSigner<'a> {
    /// A signer for `county` with every unit's chain still empty.
    fn new(county: &'a County, ctx: Ctx<'a>, tx: &'a mpsc::SyncSender<Signed>) -> LinkSigner<'a> {
        let authors = (0..county.units.len()).map(|i| Author { key_index: i as u16, seq: 0, head: None, clock: HlcClock::default() }).collect();
        LinkSigner { county, ctx, tx, authors, batch: Self::empty_batch(county), signing: Duration::ZERO }
    }

    /// An empty batch of the county's link.
    fn empty_batch(county: &County) -> Signed {
        Signed { county: county.index, records: Vec::with_capacity(BATCH), blobs: Vec::new(), filings: 0 }
    }

    /// Sends the batch when it is full, or (`force`) whenever it holds records.
    fn flush(&mut self, force: bool) -> anyhow::Result<()> {
        if self.batch.records.len() >= BATCH || (force && !self.batch.records.is_empty()) {
            let full = std::mem::replace(&mut self.batch, Self::empty_batch(self.county));
            self.tx.send(full).map_err(|_| anyhow::anyhow!("the feeder stopped"))?;
        }
        Ok(())
    }

    /// Signs `body` as unit `unit` at `at`, next in that unit's chain.
    fn sign(&mut self, unit: usize, at: u64, body: Body) -> Record {
        let t = Instant::now();
        let a = &mut self.authors[unit];
        let hlc = a.clock.tick(at);
        let header = Header { seq: a.seq + 1, prev: a.head, hlc };
        let r = Record::sign(&self.county.units[a.key_index as usize].key, header, body);
        self.signing += t.elapsed();
        a.seq += 1;
        a.head = Some(r.id);
        r
    }

    /// Adds a signed record to the batch and sends the batch when it is full.
    fn push(&mut self, record: Record, done: &mut CountyDone) -> anyhow::Result<()> {
        self.batch.records.push(record.into_bytes());
        done.records += 1;
        self.flush(false)
    }

    /// Signs the certificates of the subtree, each by the parent center
    /// (enrollment a year before): they travel up first.
    fn sign_certificates(&mut self, done: &mut CountyDone) -> anyhow::Result<()> {
        let (county, now) = (self.county, self.ctx.now);
        let enrolled = now - (DAYS + 35) * 86_400_000;
        for (i, u) in county.units.iter().enumerate() {
            let Some(parent) = u.parent else { continue };
            let issuer = &county.units[parent as usize];
            let serial = issuer.children.iter().position(|c| *c as usize == i).unwrap_or(0) as u64 + 2;
            let cert = NodeCert {
                key: u.key.id(),
                division: u.code,
                level: u.level(),
                name: u.name.clone(),
                issuer: issuer.key.id(),
                not_before_ms: enrolled - 3_600_000,
                not_after_ms: now + 5 * 365 * 86_400_000,
                serial,
            };
            let r = self.sign(parent as usize, enrolled + i as u64, Body::NodeCert(cert));
            self.push(r, done)?;
        }
        Ok(())
    }

    /// Signs every planned step in `order`, counting cases and keeping
    /// samples; returns the records of the cases kept to be folded as a check.
    fn sign_cases(&mut self, plans: &[CasePlan], order: Vec<(u64, u32, u16)>, done: &mut CountyDone) -> anyhow::Result<HashMap<u32, Vec<Record>>> {
        // Case id and head per case.
        let mut state: Vec<Option<(RecordId, RecordId)>> = vec![None; plans.len()];
        let mut checked: HashMap<u32, Vec<Record>> = HashMap::new();
        let policy_version = self.ctx.policy.current().version;
        for (at, ci, si) in order {
            let p = &plans[ci as usize];
            let step: Planned = p.steps[si as usize];
            let (event, blob) = self.case_event(p, ci, step, state[ci as usize], policy_version)?;
            let record = self.sign(step.unit as usize, at, Body::CaseEvent(event));
            let case = match state[ci as usize] {
                Some((case, _)) => case,
                None => {
                    done.cases += 1;
                    self.batch.filings += 1;
                    record.id
                }
            };
            state[ci as usize] = Some((case, record.id));
            if (ci as usize).is_multiple_of(CHECK_EVERY) {
                checked.entry(ci).or_default().push(record.clone());
            }
            if si == 0 && (ci as usize).is_multiple_of(self.ctx.sample_every) {
                done.samples.push(sample_of(p, &self.county.units[step.unit as usize], case));
            }
            if let Some((hash, bytes)) = blob {
                self.batch.blobs.push((hash, bytes));
            }
            self.push(record, done)?;
        }
        Ok(checked)
    }

    /// The event of case `ci`'s planned `step` after `state` (its id and
    /// head), with the complainant's contact as a blob for a filing.
    fn case_event(&self, p: &CasePlan, ci: u32, step: Planned, state: Option<(RecordId, RecordId)>, policy_version: u32) -> anyhow::Result<(CaseEvent, Option<Blob>)> {
        let (county, leaves) = (self.county, self.ctx.leaves);
        let unit = &county.units[step.unit as usize];
        let operator = if step.admin { "admin" } else { "operator" };
        if step.step == Step::File {
            let contact = p.contact.map(contact_of);
            let bytes = contact.as_ref().map(|c| c.to_bytes());
            let hash = bytes.as_deref().map(BlobHash::of);
            let mut f = filing(p, leaves, case_number(unit, p), hash);
            f.intake.complainant = contact.as_ref().and_then(|c| zongzhi_protocol::case::Fingerprint::of(&self.ctx.fingerprint_key, c));
            let ev = CaseEvent { case: None, parents: vec![], unit: unit.code, operator: operator.into(), action: Action::File(Box::new(f)), policy: policy_version };
            Ok((ev, hash.zip(bytes)))
        } else {
            let Some((case, head)) = state else { bail!("case {ci} has a step before its filing") };
            let ev = CaseEvent { case: Some(case), parents: vec![head], unit: unit.code, operator: operator.into(), action: action_of(step.step, county, leaves), policy: policy_version };
            Ok((ev, None))
        }
    }
}

/// The sample the measurement asks for of a case `unit` filed as `case`
/// (still open unless its last planned step resolved or closed it).
fn sample_of(p: &CasePlan, unit: &Unit, case: RecordId) -> Sample {
    let last = p.steps.last().map(|s| s.step);
    let open = !matches!(last, Some(Step::Archive | Step::Rate { .. } | Step::Feedback | Step::Resolve));
    Sample { id: case.to_string(), number: case_number(unit, p), phone: p.contact.map(|c| contact_of(c).phone), open }
}

/// The planner's steps are legal: folds the sampled cases on their own
/// and notes in `done` the refused steps (the first ten) and failed folds.
fn check_cases(policy: &PolicySet, plans: &[CasePlan], checked: HashMap<u32, Vec<Record>>, done: &mut CountyDone) {
    for (ci, records) in checked {
        done.checked += 1;
        let refs: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).collect();
        match fold(policy, &NoRevocations, &refs) {
            Ok(state) => {
                for t in &state.timeline {
                    if let Err(r) = &t.outcome
                        && done.problems.len() < 10
                    {
                        done.problems.push(format!("case {ci} ({:?}): {} refused: {} ({})", plans[ci as usize].path, t.action.as_str(), r.rule, r.message));
                    }
                }
            }
            Err(e) => done.problems.push(format!("case {ci}: {e}")),
        }
    }
}

/// The progress line.
struct Progress {
    started: Instant,
    last: Instant,
    last_records: u64,
    cases: u64,
    records: u64,
    /// Cases filed of all, with the record rates (a terminal only).
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(started: Instant, total_cases: u64) -> Progress {
        Progress { started, last: started, last_records: 0, cases: 0, records: 0, bar: zongzhi_tools::progress::items(total_cases, "loading: cases filed") }
    }

    fn tick(&mut self, records: usize, filings: usize) {
        self.records += records as u64;
        self.cases += filings as u64;
        self.bar.set_position(self.cases);
        if self.last.elapsed() >= Duration::from_secs(1) {
            let all = self.records as f64 / self.started.elapsed().as_secs_f64();
            let now = (self.records - self.last_records) as f64 / self.last.elapsed().as_secs_f64();
            self.bar.set_message(format!("loading: {} records stored, {all:.0} records/s ({now:.0}/s in the last second); cases filed", self.records));
            self.last = Instant::now();
            self.last_records = self.records;
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The node configuration of the benchmark city (HTTP port set when run).
pub fn write_config(dir: &Path, port: u16) -> anyhow::Result<std::path::PathBuf> {
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"data\"\ndivision = \"{}\"\nname = \"{}\"\nhttp_listen = \"127.0.0.1:{port}\"\n# The measurement times the supervision scan on its own (see BENCHMARKS.md).\nsupervision_interval_secs = 0\n",
            plan::CITY,
            plan::CITY_NAME
        ),
    )?;
    Ok(cfg)
}

/// The city's own node, opened in the benchmark directory.
struct CityNode {
    shared: zongzhi_node::context::Context,
    store: Arc<Store>,
    key: Arc<NodeKey>,
}

/// Creates the city's node in `dir` (which must not hold one yet) with
/// the benchmark's accounts; returns it and the time they were created.
fn init_city(dir: &Path) -> anyhow::Result<(CityNode, u64)> {
    std::fs::create_dir_all(dir)?;
    if dir.join("data").exists() {
        bail!("{} already holds a node; use --reuse to measure it, or choose an empty --dir", dir.display());
    }
    let cfg_path = write_config(dir, 0)?;
    let cfg = zongzhi_node::config::Config::load(&cfg_path)?;
    zongzhi_node::node::init(&cfg)?;
    let key = Arc::new(zongzhi_node::node::load_key(&cfg)?);
    let store = zongzhi_node::node::open_store(&cfg, &key)?;
    let now = zongzhi_node::context::now_ms();
    for (user, role, name) in [
        ("admin", zongzhi_node::accounts::Role::Admin, "基准测试管理员"),
        ("operator", zongzhi_node::accounts::Role::Operator, "基准测试操作员"),
        ("viewer", zongzhi_node::accounts::Role::Viewer, "基准测试查看员"),
    ] {
        zongzhi_node::accounts::create(&store, user, PASSWORD, role, name, now)?;
    }
    let shared = zongzhi_node::node::shared_state(&cfg, store.clone(), key.clone())?;
    Ok((CityNode { shared, store, key }, now))
}

/// Builds the city in `dir` (which must not hold a node yet) and returns
/// the description the measurement reads (also written to
/// `dir/bench-city.json`).
pub fn load(dir: &Path, cases: usize, seed: u64, threads: usize) -> anyhow::Result<Value> {
    let (city, now) = init_city(dir)?;
    let policy = city.shared.policies();
    let leaves = Leaves::of(policy.current());

    let villages = 2867;
    let counties = plan::tree(seed, villages)?;
    let units = 1 + counties.iter().map(|c| c.units.len()).sum::<usize>();
    let ledger = certify_counties(&city, &counties, now)?;

    // Cases per county: the share of its villages (all counties alike here).
    let per_county: Vec<usize> = (0..counties.len()).map(|i| cases / counties.len() + usize::from(i < cases % counties.len())).collect();
    let sample_every = (cases / 400).max(1);
    print_city_shape(units, &counties, cases, threads);

    let fingerprint_key = zongzhi_protocol::case::fingerprint_key(city.key.id().as_bytes());
    let ctx = Ctx { leaves: &leaves, policy: &policy, now, seed, sample_every, fingerprint_key };
    let started = Instant::now();
    let result = sign_and_feed(&ledger, &counties, &per_county, &ctx, threads, cases as u64);
    let elapsed = started.elapsed().as_secs_f64();
    ledger.shutdown();
    let (done, fed, verify_s) = result?;
    refuse_planner_problems(&done)?;
    let totals = Totals::of(&done);

    // What the city holds now.
    let now = zongzhi_node::context::now_ms();
    let held = Held::scan(&city.store, now)?;
    drop(city);

    let mut samples: Vec<Sample> = done.iter().flat_map(|d| d.samples.iter().cloned()).collect();
    samples.sort_by(|a, b| a.number.cmp(&b.number));
    let rate = totals.records as f64 / elapsed;
    let description = json!({
        "cases": cases,
        "seed": seed,
        "units": units,
        "records": totals.records,
        "records_held": held.feed_len,
        "planned": totals.planned,
        "load": {
            "seconds": elapsed,
            "records_per_s": rate,
            "cases_per_s": cases as f64 / elapsed,
            "sign_thread_s": totals.sign_s,
            "signer_threads_wall_s": totals.signer_s,
            "plan_thread_s": totals.plan_s,
            "verify_thread_s": verify_s,
            "threads": threads,
            "loadavg_at_end": super::loadavg(),
            "ingest": fed,
        },
        "composition": held.composition,
        "composition_scan_s": held.scan_s,
        "alarms": held.alarms,
        "pending": held.pending,
        "checked_cases": totals.checked,
        "password": PASSWORD,
        "loaded_at_ms": now,
        "samples": samples,
        "words": data::WORDS,
    });
    std::fs::write(dir.join("bench-city.json"), serde_json::to_string_pretty(&description)?)?;
    print_load_summary(cases, elapsed, verify_s, &totals, &held);
    Ok(description)
}

/// The city certifies its counties (as `zongzhi cert issue` does); returns
/// the city's ledger, started on the writer that appended them.
fn certify_counties(city: &CityNode, counties: &[County], now: u64) -> anyhow::Result<Ledger> {
    let mut writer = Writer::new(city.shared.clone())?;
    for (i, c) in counties.iter().enumerate() {
        let u = &c.units[0];
        let cert = NodeCert {
            key: u.key.id(),
            division: u.code,
            level: Level::County,
            name: u.name.clone(),
            issuer: city.key.id(),
            not_before_ms: now - (DAYS + 35) * 86_400_000,
            not_after_ms: now + 5 * 365 * 86_400_000,
            serial: i as u64 + 2,
        };
        match writer.run(Op::AppendOwn { body: Body::NodeCert(cert) })? {
            Outcome::Appended(_) => {}
            other => bail!("certifying {}: {other:?}", u.code),
        }
    }
    Ok(Ledger::start(writer))
}

/// Prints the size of the city: units, counties, townships, villages and cases.
fn print_city_shape(units: usize, counties: &[County], cases: usize, threads: usize) {
    eprintln!(
        "city of {units} units (1 city, {} counties, {} townships, {} villages), {cases} cases filed over {DAYS} days, signed on {threads} threads",
        counties.len(),
        counties.iter().map(|c| c.units[0].children.len()).sum::<usize>(),
        counties.iter().map(|c| c.units.iter().filter(|u| u.level() == Level::Village).count()).sum::<usize>()
    );
}

/// Signs the counties on `threads` threads, decodes and batch-verifies
/// their batches on another and feeds them to the ledger on this one;
/// returns what each county's signer found, the ingest totals and the
/// verifier's busy seconds.
fn sign_and_feed(ledger: &Ledger, counties: &[County], per_county: &[usize], ctx: &Ctx<'_>, threads: usize, total_cases: u64) -> anyhow::Result<(Vec<CountyDone>, Value, f64)> {
    let (signed_tx, signed_rx) = mpsc::sync_channel::<Signed>(2 * threads + 2);
    let (verified_tx, verified_rx) = mpsc::sync_channel::<Verified>(4);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> anyhow::Result<(Vec<CountyDone>, Value, f64)> {
        let mut signers = Vec::new();
        for _ in 0..threads {
            let tx = signed_tx.clone();
            let next = &next;
            signers.push(scope.spawn(move || sign_counties(counties, per_county, ctx, next, &tx)));
        }
        drop(signed_tx);
        let verifier = scope.spawn(move || verify_batches(signed_rx, verified_tx));
        let fed = feed(ledger, counties, verified_rx, total_cases)?;
        let verify_s = verifier.join().map_err(|_| anyhow::anyhow!("verifier panicked"))??;
        let mut done = Vec::new();
        for s in signers {
            done.extend(s.join().map_err(|_| anyhow::anyhow!("signer panicked"))??);
        }
        Ok((done, fed, verify_s))
    })
}

/// One signer thread: takes the next county not yet taken until none is
/// left, and signs each.
fn sign_counties(counties: &[County], per_county: &[usize], ctx: &Ctx<'_>, next: &AtomicUsize, tx: &mpsc::SyncSender<Signed>) -> anyhow::Result<Vec<CountyDone>> {
    let mut out = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(c) = counties.get(i) else { break };
        out.push(sign_county(c, per_county[i], ctx, tx)?);
    }
    Ok(out)
}

/// Decodes and batch-verifies the signed batches, as the receiver does off
/// its async threads, and passes them on; returns the seconds spent on it.
fn verify_batches(rx: mpsc::Receiver<Signed>, tx: mpsc::SyncSender<Verified>) -> anyhow::Result<f64> {
    let mut busy = 0.0;
    for b in rx {
        let t = Instant::now();
        let records: Vec<Record> = b.records.into_iter().map(Record::decode_unverified_owned).collect::<Result<_, _>>()?;
        let refs: Vec<&Record> = records.iter().collect();
        for (r, v) in records.iter().zip(verify_batch(&refs)) {
            v.with_context(|| format!("record {} has a bad signature", r.id.fmt_short()))?;
        }
        busy += t.elapsed().as_secs_f64();
        if tx.send(Verified { county: b.county, records, blobs: b.blobs, filings: b.filings }).is_err() {
            break;
        }
    }
    Ok(busy)
}

/// Fails, listing them, when the workflow rules refused planned steps.
fn refuse_planner_problems(done: &[CountyDone]) -> anyhow::Result<()> {
    let problems: Vec<&String> = done.iter().flat_map(|d| d.problems.iter()).collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  planner problem: {p}");
        }
        bail!("{} planned steps were refused by the workflow rules", problems.len());
    }
    Ok(())
}

/// What the counties' signers found, summed over the counties.
struct Totals {
    records: u64,
    checked: usize,
    sign_s: f64,
    plan_s: f64,
    signer_s: f64,
    planned: BTreeMap<String, u64>,
}

impl Totals {
    /// Sums what every county's signer found.
    fn of(done: &[CountyDone]) -> Totals {
        let mut planned: BTreeMap<String, u64> = BTreeMap::new();
        for d in done {
            for (k, v) in &d.planned {
                *planned.entry(k.clone()).or_default() += v;
            }
        }
        Totals {
            records: done.iter().map(|d| d.records).sum(),
            checked: done.iter().map(|d| d.checked).sum(),
            sign_s: done.iter().map(|d| d.sign_s).sum(),
            plan_s: done.iter().map(|d| d.plan_s).sum(),
            signer_s: done.iter().map(|d| d.signer_s).sum(),
            planned,
        }
    }
}

/// What the city holds after the load.
struct Held {
    /// Cases by status, and open, overdue, at the city, urgent, escalated, supervised.
    composition: HashMap<&'static str, u64>,
    /// Seconds the composition scan took.
    scan_s: f64,
    feed_len: u64,
    alarms: u64,
    pending: usize,
}

impl Held {
    /// Scans every case summary of the city's store (overdue as of `now`)
    /// and counts its feed, alarms and records waiting for parents.
    fn scan(store: &Store, now: u64) -> anyhow::Result<Held> {
        let mut composition: HashMap<&'static str, u64> = HashMap::new();
        let t = Instant::now();
        store.all_summaries(|s| {
            *composition.entry(s.status.as_str()).or_default() += 1;
            if s.status.is_open() {
                *composition.entry("open").or_default() += 1;
                if s.is_overdue(now) {
                    *composition.entry("open_overdue").or_default() += 1;
                }
                if s.owner.level() == Level::City {
                    *composition.entry("open_at_city").or_default() += 1;
                }
            }
            if s.urgency == Urgency::Urgent {
                *composition.entry("urgent").or_default() += 1;
            }
            if s.escalations > 0 {
                *composition.entry("escalated").or_default() += 1;
            }
            if s.supervision.is_some() {
                *composition.entry("supervised").or_default() += 1;
            }
            true
        })?;
        let scan_s = t.elapsed().as_secs_f64();
        Ok(Held { composition, scan_s, feed_len: store.feed_len()?, alarms: store.alarm_count()?, pending: store.pending_count(usize::MAX)? })
    }
}

/// Prints the load's rates, the time 1,000,000 cases would take at that
/// rate, and a warning when the city holds alarms or records waiting.
fn print_load_summary(cases: usize, elapsed: f64, verify_s: f64, totals: &Totals, held: &Held) {
    let Totals { records, checked, sign_s, .. } = *totals;
    let rate = records as f64 / elapsed;
    eprintln!(
        "loaded {cases} cases = {records} records in {elapsed:.1} s: {rate:.0} records/s, {:.0} cases/s (thread time in Record::sign {sign_s:.1} s, in decode + batch verify {verify_s:.1} s); {checked} cases folded on their own as a check",
        cases as f64 / elapsed
    );
    let per_case = records as f64 / cases.max(1) as f64;
    eprintln!("  at this rate 1,000,000 cases (≈ {:.1} M records) would load in ≈ {:.0} min; load average {:.2} (2 cores)", per_case, per_case * 1e6 / rate / 60.0, super::loadavg());
    let (alarms, pending) = (held.alarms, held.pending);
    if alarms > 0 || pending > 0 {
        eprintln!("  warning: {alarms} integrity alarms and {pending} records waiting for parents after the load");
    }
}

/// Hands verified batches to the ledger, per county link with its cursor,
/// keeping at most [`WRITE_AHEAD`] queued; returns the ingest totals.
fn feed(ledger: &Ledger, counties: &[County], rx: mpsc::Receiver<Verified>, total_cases: u64) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let peers: Vec<(zongzhi_protocol::NodeId, [u8; 16])> = counties.iter().map(|c| (c.units[0].key.id(), [c.index as u8 + 1; 16])).collect();
    rt.block_on(async move {
        let mut upto = vec![0u64; peers.len()];
        let mut queued: VecDeque<(tokio::sync::oneshot::Receiver<ledger::Result<Outcome>>, usize, usize)> = VecDeque::new();
        let (mut applied, mut duplicates, mut pending, mut rejected, mut void) = (0usize, 0usize, 0usize, 0usize, 0usize);
        let mut first_rejections: Vec<String> = Vec::new();
        let started = Instant::now();
        let mut progress = Progress::new(started, total_cases);
        let mut open = true;
        while open || !queued.is_empty() {
            if open && queued.len() < WRITE_AHEAD {
                let next = match rx.try_recv() {
                    Ok(v) => Some(v),
                    Err(mpsc::TryRecvError::Empty) if queued.is_empty() => rx.recv().ok(),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                };
                if let Some(v) = next {
                    let (peer, epoch) = peers[v.county];
                    upto[v.county] += v.records.len() as u64;
                    let cursor = Cursor { peer, direction: DIRECTION_UP, epoch, upto: upto[v.county], in_order: true };
                    let n = v.records.len();
                    let reply = ledger.enqueue(Op::Ingest { records: v.records, blobs: v.blobs, cursor: Some(cursor) }).await?;
                    queued.push_back((reply, n, v.filings));
                    continue;
                } else if open && queued.is_empty() {
                    open = false;
                    continue;
                }
            }
            let Some((reply, n, filings)) = queued.pop_front() else { continue };
            match reply.await.map_err(|_| anyhow::anyhow!("the writer stopped"))?? {
                Outcome::Ingested(r) => {
                    applied += r.applied;
                    duplicates += r.duplicates;
                    pending += r.pending;
                    void += r.void;
                    rejected += r.rejected.len();
                    for (id, why) in r.rejected.iter().take(5usize.saturating_sub(first_rejections.len())) {
                        first_rejections.push(format!("{}: {why}", id.fmt_short()));
                    }
                }
                other => bail!("unexpected outcome {other:?}"),
            }
            progress.tick(n, filings);
        }
        progress.finish();
        if rejected > 0 {
            for r in &first_rejections {
                eprintln!("  refused: {r}");
            }
            bail!("{rejected} records were refused by the city's ingest");
        }
        Ok(json!({"applied": applied, "duplicates": duplicates, "pending": pending, "void": void, "rejected": rejected}))
    })
}
