//! What an orchestrator or a load balancer asks the node (liveness and
//! readiness, `GET /api/health/live` and `/api/health/ready`), and what
//! `/metrics` adds about the process and the cases: the build, CPU, memory,
//! descriptors and start time (read from `/proc/self`, which the packaged
//! unit's `ProcSubset=pid` still shows), and the cases by status and
//! supervision grade (from the store's `counts`, a few point reads per
//! scrape whatever the number of cases).
//!
//! Ready means "can take writes": not while a write fault stands (a full
//! disk), while a restored backup is unconfirmed ([`crate::recovery`]), or
//! while the store is being migrated ([`Readiness::set_migrating`], for the
//! schema migrations to set). Live means the process can still do its job
//! without a restart: its writer thread runs. A storage fault or a restore
//! is not a reason to restart (the node recovers from both by itself), so
//! they make the node unready, never dead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use zongzhi_protocol::case::{SuperviseGrade, Urgency};
use zongzhi_protocol::workflow::Status;

use crate::context::Context;
use crate::metrics::Scrape;

/// Flags other parts of the node raise to take it out of service while
/// it keeps answering reads.
#[derive(Debug, Default)]
pub struct Readiness {
    migrating: AtomicBool,
}

impl Readiness {
    /// Set while the store is being migrated to a new schema (writes are
    /// refused meanwhile); cleared when done.
    pub fn set_migrating(&self, on: bool) {
        self.migrating.store(on, Ordering::SeqCst);
    }

    pub fn migrating(&self) -> bool {
        self.migrating.load(Ordering::SeqCst)
    }
}

/// Why the node cannot take writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Writes fail (a full disk, an I/O error); the fault's words.
    StorageUnavailable(String),
    /// Running on a restored backup its peers have not confirmed yet.
    Restoring,
    /// The store is being migrated.
    Migrating,
}

impl NotReady {
    pub fn code(&self) -> &'static str {
        match self {
            NotReady::StorageUnavailable(_) => "storage_unavailable",
            NotReady::Restoring => "restoring",
            NotReady::Migrating => "migrating",
        }
    }

    pub fn message(&self) -> String {
        match self {
            NotReady::StorageUnavailable(fault) => format!("writes fail: {fault}; the node takes them again once the disk has room"),
            NotReady::Restoring => "running on a restored backup: new steps wait until the parent has given back this node's own records".into(),
            NotReady::Migrating => "the store is being migrated to a new schema".into(),
        }
    }
}

/// The reasons, from the three sources, in a fixed order (none: ready).
pub fn not_ready(write_fault: Option<String>, restoring: bool, migrating: bool) -> Vec<NotReady> {
    let mut why = Vec::new();
    if let Some(fault) = write_fault {
        why.push(NotReady::StorageUnavailable(fault));
    }
    if restoring {
        why.push(NotReady::Restoring);
    }
    if migrating {
        why.push(NotReady::Migrating);
    }
    why
}

/// Why this node cannot take writes now: the store's write fault (or the
/// storage watch's, which outlives a failed reopen), the restore, the
/// migration flag.
pub fn readiness(ctx: &Context) -> Vec<NotReady> {
    let watched = ctx.storage.lock().unwrap_or_else(|p| p.into_inner()).fault.clone();
    not_ready(ctx.store.write_fault().or(watched), ctx.recovery.restoring(), ctx.readiness.migrating())
}

/// When this process started (Unix seconds), noted by [`mark_start`].
static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes the process start time for `process_start_time_seconds`; the
/// first call counts. `zongzhi-node run` calls it first thing.
pub fn mark_start() {
    STARTED.get_or_init(|| crate::context::now_ms() as f64 / 1000.0);
}

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open files, when it has one.
    pub max_fds: Option<u64>,
}

/// Reads `/proc/self/stat`, `/proc/self/fd` and `/proc/self/limits`.
pub fn process_stats() -> std::io::Result<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let mut s = parse_stat(&stat).ok_or_else(|| std::io::Error::other("unreadable /proc/self/stat"))?;
    // The directory handle that lists /proc/self/fd is one of them.
    s.open_fds = std::fs::read_dir("/proc/self/fd")?.count().saturating_sub(1) as u64;
    s.max_fds = std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(parse_max_files);
    Ok(s)
}

/// Fields of `/proc/<pid>/stat` (proc(5)): utime and stime (14, 15) in
/// clock ticks, vsize (23) in bytes, rss (24) in pages. The command name
/// (2) is in parentheses and may hold spaces: fields are counted after
/// its last `)`.
fn parse_stat(text: &str) -> Option<ProcessStats> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)?.saturating_mul(rustix::param::page_size() as u64),
        open_fds: 0,
        max_fds: None,
    })
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn parse_max_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// `zongzhi_build_info`, readiness, the process and the cases, added to
/// a scrape (`writer_alive`: [`crate::ledger::Ledger::writer_alive`]). A
/// failed store read leaves the case gauges out (the store is being
/// reopened after a fault), the rest stays.
pub fn scrape(ctx: &Context, writer_alive: bool, m: &mut Scrape) {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    m.gauges(
        "zongzhi_build_info",
        "Always 1: the build this node runs (version, store schema, record format, profile).",
        [(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("schema", crate::store::SCHEMA_VERSION.to_string()),
                ("record_format", zongzhi_protocol::record::FORMAT_VERSION.to_string()),
                ("profile", profile.to_string()),
            ],
            1,
        )],
    );
    let why = readiness(ctx);
    m.gauge(
        "zongzhi_ready",
        "1 while the node takes writes (GET /api/health/ready answers 200); 0 during a storage fault, a restore or a migration, or once the writer has stopped.",
        (why.is_empty() && writer_alive) as u64,
    );
    m.gauge("zongzhi_migrating", "1 while the store is being migrated to a new schema.", ctx.readiness.migrating() as u64);
    process_metrics(m);
    if let Err(e) = case_metrics(ctx, m) {
        tracing::debug!("case gauges left out of this scrape: {e}");
    }
}

/// The standard `process_*` families (the names Prometheus' own client
/// libraries use, so ready-made dashboards read them).
fn process_metrics(m: &mut Scrape) {
    if let Some(started) = STARTED.get() {
        m.gauge_f64("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", *started);
    }
    match process_stats() {
        Ok(p) => {
            m.counter_f64("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", p.cpu_seconds);
            m.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_bytes);
            m.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_bytes);
            m.gauge("process_open_fds", "Open file descriptors.", p.open_fds);
            if let Some(max) = p.max_fds {
                m.gauge("process_max_fds", "Limit on open file descriptors (the soft limit).", max);
            }
        }
        Err(e) => tracing::debug!("process metrics left out: {e}"),
    }
}

/// Cases held by status, and open cases by supervision grade: 20 + 4
/// point reads of the `counts` the writer keeps ([`crate::index`]).
fn case_metrics(ctx: &Context, m: &mut Scrape) -> crate::store::Result<()> {
    let urgencies = [Urgency::Normal, Urgency::Urgent];
    let mut keys = Vec::with_capacity(Status::ALL.len() * urgencies.len());
    for st in Status::ALL {
        for u in urgencies {
            keys.push([b"q".as_slice(), &crate::index::queue_prefix(crate::index::EVERY, *st, u)].concat());
        }
    }
    let counts = ctx.store.index_counts(&keys)?;
    let by_status = Status::ALL.iter().zip(counts.chunks(urgencies.len())).map(|(st, c)| (vec![("status", st.as_str().to_string())], c.iter().sum::<i64>().max(0) as u64));
    m.gauges("zongzhi_cases", "Cases this node holds (its own and its subtree's), by status.", by_status.collect::<Vec<_>>());
    if ctx.store.meta_get(crate::index::GRADE_COUNTS)?.is_some() {
        let keys: Vec<Vec<u8>> = SuperviseGrade::ALL.iter().map(|g| crate::index::grade_count_key(*g)).collect();
        let counts = ctx.store.index_counts(&keys)?;
        let by_grade = SuperviseGrade::ALL.iter().zip(counts).map(|(g, n)| (vec![("grade", g.as_str().to_string())], n.max(0) as u64));
        m.gauges("zongzhi_cases_supervised", "Open cases this node holds by their supervision grade (normal 普通, yellow 黄牌, red 红牌, interview 约谈).", by_grade.collect::<Vec<_>>());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_every_reason_in_order() {
        assert!(not_ready(None, false, false).is_empty());
        let all = not_ready(Some("No space left on device".into()), true, true);
        assert_eq!(all.iter().map(NotReady::code).collect::<Vec<_>>(), ["storage_unavailable", "restoring", "migrating"]);
        assert!(all[0].message().contains("No space left on device"));
        assert_eq!(not_ready(None, false, true), [NotReady::Migrating]);
        let r = Readiness::default();
        r.set_migrating(true);
        assert!(r.migrating());
        r.set_migrating(false);
        assert!(!r.migrating());
    }

    #[test]
    fn liveness_follows_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: crate::config::Config = toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市\"\n", dir.path().join("data"))).unwrap();
        crate::node::init(&cfg).unwrap();
        let key = std::sync::Arc::new(crate::node::load_key(&cfg).unwrap());
        let store = crate::node::open_store(&cfg, &key).unwrap();
        let shared = crate::node::shared_state(&cfg, store, key).unwrap();
        let ledger = crate::ledger::Ledger::start(crate::node::start_writer(shared.clone()).unwrap());
        assert!(ledger.writer_alive());
        assert!(readiness(&shared).is_empty());
        shared.readiness.set_migrating(true);
        assert_eq!(readiness(&shared), [NotReady::Migrating]);
        ledger.shutdown();
        assert!(!ledger.writer_alive(), "a stopped writer is not alive");
    }

    #[test]
    fn proc_stat_and_limits_are_read_past_the_command_name() {
        // A command name with a space and a parenthesis, as proc(5) allows.
        let stat = "4242 (zongzhi (x) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615";
        let s = parse_stat(stat).unwrap();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        assert_eq!(s.cpu_seconds, 400.0 / ticks);
        assert_eq!(s.virtual_bytes, 104_857_600);
        assert_eq!(s.resident_bytes, 2560 * rustix::param::page_size() as u64);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            65536                524288               files     \n";
        assert_eq!(parse_max_files(limits), Some(65536));
        assert_eq!(parse_max_files("Max open files            unlimited            unlimited            files\n"), None);
        // This process: it has at least stdin/stdout/stderr open.
        let me = process_stats().unwrap();
        assert!(me.open_fds >= 3 && me.resident_bytes > 0 && me.cpu_seconds >= 0.0, "{me:?}");
    }
}
