//! Exports.
//!
//! - `GET /api/cases/export?format=csv|xlsx&<filters>`: the case list (台账)
//!   with the filters of `GET /api/cases`, in list order, personal data
//!   masked below the operator role. CSV streams: rows are produced on a
//!   blocking thread into a bounded channel, so memory does not grow with
//!   the list. XLSX is written in the spreadsheet library's constant-memory
//!   mode to a temporary file, then streamed back.
//! - [`parquet`] (`zongzhi-node export parquet`, the node running or
//!   stopped): analytics tables without personal data — case facts, one
//!   row per case event, the places of filings (发生地 and coordinates),
//!   the statistics counters, and the dimensions (units with names and
//!   levels, categories, windows) — for DuckDB, DataFusion, Spark or Trino,
//!   in hive partitions `<table>/city=<division>/month=<YYYY-MM>/` under
//!   one prefix that many cities share (each writes only its own `city=`
//!   and its own file names). Incremental: a manifest per exporting node
//!   (`_zongzhi/<division>.json`) records the feed position exported up
//!   to; the next run writes only the new events and places as new part
//!   files and replaces the (derived, changing) case, statistics and
//!   dimension snapshots. The counters by window and by person
//!   (`actors/`, [`crate::stats::rollup_actors`]'s figures by month) are a
//!   snapshot too, folded from the cases.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use zongzhi_protocol::case::Contact;
use zongzhi_protocol::{BlobHash, Body as RecordBody, DivisionCode, Level, NodeId, Policy, Record, RecordId};

use crate::accounts::Role;
use crate::api::{ApiError, ApiResult, AppState, authenticate, time};
use crate::queue::{self, Filter};
use crate::store::{Store, StoreError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target directory holds a different export: pick another one.
    #[error("{0}")]
    Directory(String),
    #[error("--since {0:?}: expected a date YYYY-MM-DD from 1970 on")]
    Since(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data or the export's own manifest could not be read, or a row
    /// did not fit its table (a defect).
    #[error("{0}")]
    Data(String),
}

impl From<std::io::Error> for ExportError {
    fn from(source: std::io::Error) -> Self {
        ExportError::Io { what: "writing the export".into(), source }
    }
}

/// Names the file an I/O error happened on.
fn io_at(what: String) -> impl FnOnce(std::io::Error) -> ExportError {
    move |source| ExportError::Io { what, source }
}
use crate::summary::CaseSummary;

// ---------- the case list: CSV and XLSX ----------

/// Column headers of the case list export (zh-CN, as the centers name them).
/// Units by name first (the code beside it, for filtering); 受理时间 is
/// when the center received the matter (a filing may be dated back a
/// little), 登记时间 when it was entered.
pub const HEADERS: &[&str] = &[
    "编号",
    "标题",
    "大类",
    "小类",
    "类型",
    "渠道",
    "紧急程度",
    "状态",
    "承办单位",
    "承办单位代码",
    "登记单位",
    "登记单位代码",
    "受理时间",
    "登记时间",
    "下一时限",
    "是否超期",
    "督办",
    "退回次数",
    "上报次数",
    "姓名",
    "电话",
    "证件号",
];

/// Indexes of the numeric columns (written as numbers in XLSX).
const NUMERIC: &[usize] = &[17, 18];

/// Bytes per streamed chunk.
const CHUNK: usize = 64 * 1024;
/// Chunks queued between the producing thread and the connection.
const CHANNEL_CHUNKS: usize = 4;

/// The UTF-8 byte order mark: Excel reads a CSV as UTF-8 only with it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Data rows an XLSX sheet holds (1,048,576 rows, one is the header).
const XLSX_MAX_ROWS: u32 = 1_048_575;

pub const CSV_MIME: &str = "text/csv; charset=utf-8";
pub const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Xlsx,
}

type Chunk = Result<Bytes, std::io::Error>;

/// `GET /api/cases/export`.
pub async fn cases(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let session = authenticate(&s, &headers, Role::Viewer).await?;
    let format = match q.get("format").map(String::as_str) {
        None | Some("") | Some("csv") => Format::Csv,
        Some("xlsx") => Format::Xlsx,
        Some(f) => return Err(ApiError::bad_request(format!("format must be csv or xlsx, not {f:?}"))),
    };
    let filter = Filter::from_query(&q, s.node.division).map_err(ApiError::bad_request)?;
    let masked = session.role < Role::Operator;
    let now = crate::context::now_ms();
    let mut names = crate::api::unit_names(&s.shared.trust());
    // This node's own name even before it holds a certificate.
    names.entry(s.node.division).or_insert_with(|| s.node.name.clone());
    let job = Job { store: s.store.clone(), policy: s.policy(), names, filter, masked, now };
    let date = jiff::Timestamp::from_millisecond(now as i64).map(|t| t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().to_string()).unwrap_or_default();
    let name = format!("cases-{}-{date}.{}", s.node.division, if format == Format::Csv { "csv" } else { "xlsx" });
    tracing::info!(user = %session.username, format = ?format, masked, "case list export");
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let (mime, length) = match format {
        Format::Csv => {
            tokio::task::spawn_blocking(move || job.csv(tx));
            (CSV_MIME, None)
        }
        Format::Xlsx => {
            // The whole sheet is written before the answer starts, so its
            // errors are still proper JSON errors.
            let mut file = tokio::task::spawn_blocking(move || job.xlsx()).await.map_err(|e| ApiError::internal(format!("export task failed: {e}")))??;
            let length = file.metadata().map(|m| m.len()).ok();
            tokio::task::spawn_blocking(move || send_file(&mut file, &tx));
            (XLSX_MIME, length)
        }
    };
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// One export: what to select and how to show it.
struct Job {
    store: Arc<Store>,
    policy: Arc<Policy>,
    /// Units' names from the trust store's certificates.
    names: std::collections::HashMap<zongzhi_protocol::DivisionCode, String>,
    filter: Filter,
    masked: bool,
    now: u64,
}

impl Job {
    /// Calls `f` with each selected case's cells, in list order, until it
    /// returns false. The first error (the store's or `f`'s) is returned.
    fn rows(&self, mut f: impl FnMut(&[String]) -> Result<bool, String>) -> Result<(), String> {
        let mut failed: Option<String> = None;
        queue::scan(&self.store, &self.filter, &self.policy, self.now, |c| {
            let cells = match row(&self.store, &self.policy, &self.names, &c, self.masked, self.now) {
                Ok(cells) => cells,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            match f(&cells) {
                Ok(more) => more,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })
        .map_err(|e| e.to_string())?;
        failed.map_or(Ok(()), Err)
    }

    /// Writes the CSV into the channel in chunks; stops when the client
    /// goes away.
    fn csv(self, tx: mpsc::Sender<Chunk>) {
        let mut sink = ChannelWriter { buf: Vec::with_capacity(CHUNK), tx };
        sink.buf.extend_from_slice(BOM);
        let mut w = csv::WriterBuilder::new().from_writer(sink);
        let result = (|| -> Result<(), String> {
            w.write_record(HEADERS).map_err(|e| e.to_string())?;
            self.rows(|cells| {
                let safe: Vec<std::borrow::Cow<'_, str>> = cells.iter().map(|c| csv_cell(c.as_str())).collect();
                w.write_record(safe.iter().map(|c| c.as_bytes())).map_err(|e| e.to_string())?;
                Ok(true)
            })?;
            w.flush().map_err(|e| e.to_string())
        })();
        let mut sink = match w.into_inner() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("case list export: {}", e.error());
                return;
            }
        };
        match result.and_then(|()| sink.send().map_err(|e| e.to_string())) {
            Ok(()) => {}
            Err(e) if sink.tx.is_closed() => tracing::debug!("case list export: the client went away ({e})"),
            Err(e) => {
                tracing::error!("case list export failed: {e}");
                // The body ends with an error: the client sees a broken
                // download rather than a list that looks complete.
                let _ = sink.tx.blocking_send(Err(std::io::Error::other(e)));
            }
        }
    }

    /// Writes the XLSX to an anonymous temporary file, positioned at its start.
    fn xlsx(self) -> Result<std::fs::File, ApiError> {
        use rust_xlsxwriter::{Format as CellFormat, Workbook};
        let xerr = |e: rust_xlsxwriter::XlsxError| ApiError::internal(format!("writing the spreadsheet: {e}"));
        let tmp = tempfile::tempdir().map_err(|e| ApiError::internal(format!("temporary directory: {e}")))?;
        let mut wb = Workbook::new();
        wb.set_tempdir(tmp.path()).map_err(xerr)?;
        let ws = wb.add_worksheet_with_constant_memory().map_err(xerr)?;
        ws.set_name("台账").map_err(xerr)?;
        let widths = [22.0, 30.0, 12.0, 14.0, 8.0, 8.0, 10.0, 10.0, 28.0, 14.0, 28.0, 14.0, 26.0, 26.0, 26.0, 10.0, 8.0, 10.0, 10.0, 10.0, 14.0, 20.0];
        for (col, w) in widths.iter().enumerate() {
            ws.set_column_width(col as u16, *w).map_err(xerr)?;
        }
        let bold = CellFormat::new().set_bold();
        for (col, h) in HEADERS.iter().enumerate() {
            ws.write_string_with_format(0, col as u16, *h, &bold).map_err(xerr)?;
        }
        ws.set_freeze_panes(1, 0).map_err(xerr)?;
        let mut r: u32 = 0;
        let mut too_many = false;
        self.rows(|cells| {
            if r >= XLSX_MAX_ROWS {
                too_many = true;
                return Ok(false);
            }
            r += 1;
            for (col, v) in cells.iter().enumerate() {
                let col16 = col as u16;
                let number = if NUMERIC.contains(&col) { v.parse::<f64>().ok() } else { None };
                match number {
                    Some(n) => ws.write_number(r, col16, n).map(|_| ()),
                    None if v.is_empty() => Ok(()),
                    // Strings are never formulas in XLSX: no apostrophe needed.
                    None => ws.write_string(r, col16, v).map(|_| ()),
                }
                .map_err(|e| e.to_string())?;
            }
            Ok(true)
        })
        .map_err(ApiError::internal)?;
        if too_many {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_rows", format!("more than {XLSX_MAX_ROWS} cases: narrow the filters or export CSV")));
        }
        let mut out = tempfile::tempfile_in(tmp.path()).map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
        wb.save_to_writer(&mut out).map_err(xerr)?;
        out.flush().and_then(|()| out.rewind()).map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
        // The directory goes now; the open file lives on until it is sent.
        drop(tmp);
        Ok(out)
    }
}

/// Streams a file into the channel.
fn send_file(file: &mut std::fs::File, tx: &mpsc::Sender<Chunk>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

/// An `io::Write` that sends what it is given down the channel in chunks.
struct ChannelWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Chunks go out when full and at the end, not on every flush.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A CSV cell safe from formula injection: one starting with `=`, `+`,
/// `-`, `@`, TAB or CR gets a leading apostrophe, so a spreadsheet shows
/// it as text instead of evaluating it.
pub fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}").into() } else { s.into() }
}

/// The complainant as this export may show them; `None` when the node does
/// not hold the contact blob (or it does not match the hash the filing signed).
fn contact(store: &Store, hash: Option<BlobHash>, masked: bool) -> Result<Option<Contact>, String> {
    let Some(hash) = hash else { return Ok(None) };
    let Some(bytes) = store.blob(&hash.0).map_err(|e| e.to_string())? else { return Ok(None) };
    if BlobHash::of(&bytes) != hash {
        tracing::warn!(blob = %hash, "stored contact does not match the hash the filing signed; left out of the export");
        return Ok(None);
    }
    let Ok(c) = Contact::from_bytes(&bytes) else { return Ok(None) };
    Ok(Some(if masked { c.masked() } else { c }))
}

/// The cells of one case, in [`HEADERS`] order (not yet CSV-escaped).
fn row(store: &Store, policy: &Policy, names: &std::collections::HashMap<zongzhi_protocol::DivisionCode, String>, c: &CaseSummary, masked: bool, now: u64) -> Result<Vec<String>, String> {
    let (major, minor) = match policy.subcategory(&c.category) {
        Some((parent, leaf)) => (parent.name.clone(), leaf.name.clone()),
        None => (String::new(), c.category.clone()),
    };
    let next_due = match c.next_due_ms {
        Some(ms) => time(ms),
        None if !c.waiting.is_empty() => "待定".to_string(),
        None => String::new(),
    };
    let person = contact(store, c.contact, masked)?.unwrap_or_default();
    let name = |u: &zongzhi_protocol::DivisionCode| names.get(u).cloned().unwrap_or_default();
    // 受理时间 is in the filing (the case's id is its record's).
    let received = store.record_bytes(&c.id).map_err(|e| e.to_string())?.and_then(|b| zongzhi_protocol::Record::decode(&b).ok()).and_then(|r| match r.body {
        zongzhi_protocol::Body::CaseEvent(zongzhi_protocol::CaseEvent { action: zongzhi_protocol::Action::File(f), .. }) => Some(f.received_at_ms),
        _ => None,
    });
    Ok(vec![
        c.number.clone(),
        c.title.clone(),
        major,
        minor,
        c.request_type.zh().to_string(),
        c.channel.zh().to_string(),
        c.urgency.zh().to_string(),
        c.status.zh().to_string(),
        name(&c.owner),
        c.owner.to_string(),
        name(&c.filed_by),
        c.filed_by.to_string(),
        received.map(time).unwrap_or_default(),
        time(c.filed_ms),
        next_due,
        if c.is_overdue(now) { "是" } else { "否" }.to_string(),
        c.supervision.map(|g| g.zh().to_string()).unwrap_or_default(),
        c.returns.to_string(),
        c.escalations.to_string(),
        person.name,
        person.phone,
        person.id_number,
    ])
}

// ---------- Parquet for analytics ----------

/// Where an export keeps its state, under the output prefix: one manifest
/// per exporting node (`_zongzhi/<division>.json`; readers skip `_` paths).
pub const STATE_DIR: &str = "_zongzhi";
/// Version of the manifest and table layout (2: hive partitions by city
/// and month, dimension tables, places).
const LAYOUT_VERSION: u32 = 2;
/// Rows per Parquet row group (collected in memory before it is written).
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Records read from the feed at a time.
const FEED_PAGE: usize = 1024;

/// What this node's part of the output prefix holds: written after the
/// data files, so a run that dies leaves the previous manifest (and its
/// files) standing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The node whose store was exported (hex key).
    pub node: String,
    pub division: String,
    /// The `city=` partition this node writes.
    pub city: String,
    /// Feed positions `1..=feed_to` have been exported as events and places.
    pub feed_to: u64,
    /// `--since` of the first run (`YYYY-MM-DD`, China time), kept for all.
    pub since: Option<String>,
    /// The event and place part files, oldest first (relative to the prefix).
    pub part_files: Vec<String>,
    /// The snapshot files of the last run (cases, statistics, dimensions).
    pub snapshot_files: Vec<String>,
    /// When the last run finished (RFC 3339, +08:00).
    pub exported_at: String,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOutcome {
    pub cases: usize,
    pub events: usize,
    pub stats: usize,
    pub units: usize,
    /// Rows of the table by window and by person.
    pub actors: usize,
    /// Feed positions read this run (`from..=to`; empty when nothing new).
    pub feed_from: u64,
    pub feed_to: u64,
    /// Files written this run, relative to the prefix.
    pub files: Vec<String>,
}

impl std::fmt::Display for ParquetOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let feed = if self.feed_from <= self.feed_to { format!("feed {}..={}", self.feed_from, self.feed_to) } else { format!("nothing new in the feed after {}", self.feed_to) };
        write!(
            f,
            "exported cases: {} rows, events: {} rows ({feed}), stats: {} rows, by window and person: {} rows, units: {} rows; files written: {}",
            self.cases,
            self.events,
            self.stats,
            self.actors,
            self.units,
            if self.files.is_empty() { "none".to_string() } else { self.files.join(", ") }
        )
    }
}

/// Parses `--since YYYY-MM-DD` as the start of that day in China time (ms).
pub fn since_ms(date: &str) -> Result<u64, ExportError> {
    let bad = || ExportError::Since(date.to_string());
    let d: jiff::civil::Date = date.parse().map_err(|_| bad())?;
    let ts = d.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).map_err(|_| bad())?.timestamp();
    u64::try_from(ts.as_millisecond()).map_err(|_| bad())
}

/// The names behind the codes: units (from the certificates), categories
/// and windows (from the policy in force).
#[derive(Debug, Clone, Default)]
pub struct Dimensions {
    /// division, name, level, parent (none at the city).
    pub units: Vec<(DivisionCode, String)>,
    /// code, name, parent code (大类, none for a 大类 itself), retired.
    pub categories: Vec<(String, String, Option<String>, bool)>,
    /// code, name, retired.
    pub windows: Vec<(String, String, bool)>,
}

impl Dimensions {
    /// Every unit holding a certificate (the latest name per division) and the policy's tables.
    pub fn of(trust: &zongzhi_protocol::trust::Trust, policy: &Policy) -> Dimensions {
        let mut units: std::collections::BTreeMap<DivisionCode, (u64, String)> = Default::default();
        for m in trust.members() {
            let e = units.entry(m.cert.division).or_insert((0, String::new()));
            if m.cert.not_before_ms >= e.0 {
                *e = (m.cert.not_before_ms, m.cert.name.clone());
            }
        }
        let mut categories = Vec::new();
        for c in &policy.categories {
            categories.push((c.code.clone(), c.name.clone(), None, c.retired));
            categories.extend(c.children.iter().map(|l| (l.code.clone(), l.name.clone(), Some(c.code.clone()), l.retired)));
        }
        Dimensions { units: units.into_iter().map(|(d, (_, name))| (d, name)).collect(), categories, windows: policy.windows.iter().map(|w| (w.code.clone(), w.name.clone(), w.retired)).collect() }
    }
}

/// `2026-05` for a time (China time).
fn month_of(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).map(|t| t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m").to_string()).unwrap_or_else(|_| "0000-00".into())
}

/// Tables written by partition: one file per partition, opened when its first row comes.
struct Parts {
    dir: PathBuf,
    name: &'static str,
    schema: fn() -> Vec<ColumnDef>,
    open: std::collections::BTreeMap<String, Table>,
}

impl Parts {
    fn new(dir: &Path, name: &'static str, schema: fn() -> Vec<ColumnDef>) -> Parts {
        Parts { dir: dir.to_path_buf(), name, schema, open: Default::default() }
    }

    fn table(&mut self, rel: String) -> Result<&mut Table, ExportError> {
        if !self.open.contains_key(&rel) {
            let path = self.dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_at(format!("creating {}", parent.display())))?;
            }
            let t = Table::create(&self.dir, &rel, self.name, (self.schema)())?;
            self.open.insert(rel.clone(), t);
        }
        self.open.get_mut(&rel).ok_or_else(|| ExportError::Data("a partition vanished".into()))
    }

    fn rows(&self) -> usize {
        self.open.values().map(|t| t.rows).sum()
    }

    /// Finishes every file with rows (and drops the empty ones); their names.
    fn finish(self) -> Result<Vec<String>, ExportError> {
        let mut names = Vec::new();
        for (rel, t) in self.open {
            if t.rows > 0 {
                t.finish()?;
                names.push(rel);
            } else {
                t.abandon();
            }
        }
        Ok(names)
    }
}

/// Exports the store's analytics tables under the prefix `dir`, into this
/// city's partitions (see the module docs and README "Analytics across
/// cities"). `since`: the `--since` date; events and cases before it are
/// left out.
/// `trust` and `policies` fold the cases for the table by window and person.
#[allow(clippy::too_many_arguments)]
pub fn parquet(
    store: &Store,
    node: &NodeId,
    division: DivisionCode,
    dims: &Dimensions,
    trust: &zongzhi_protocol::trust::Trust,
    policies: &zongzhi_protocol::policy::PolicySet,
    dir: &Path,
    since: Option<&str>,
) -> Result<ParquetOutcome, ExportError> {
    let since_ms = since.map(since_ms).transpose()?;
    let city = division.lineage().into_iter().find(|u| u.level() == Level::City).unwrap_or(division).to_string();
    let state = dir.join(STATE_DIR);
    std::fs::create_dir_all(&state).map_err(io_at(format!("creating {}", state.display())))?;
    let manifest_path = state.join(format!("{division}.json"));
    let previous = read_manifest(&manifest_path)?;
    let head = store.feed_len()?;
    if let Some(m) = &previous {
        check_continues(m, node, dir, &manifest_path, head, since)?;
    }
    let mut part_files = previous.as_ref().map(|m| m.part_files.clone()).unwrap_or_default();
    remove_unlisted_parts(dir, &city, &division.to_string(), &part_files)?;
    let from = previous.as_ref().map_or(1, |m| m.feed_to + 1);
    let mut files = Vec::new();

    // Events and places: the feed from where the last run stopped, a part file per month.
    crate::progress::phase("events", head.saturating_sub(from - 1));
    let (events, written) = write_events(store, dir, &city, division, from, head, since_ms)?;
    part_files.extend(written.iter().cloned());
    files.extend(written);

    // Snapshots: cases by filing month, statistics by month, the dimensions.
    let now = crate::context::now_ms();
    let (cases, case_files) = write_cases(store, dir, &city, division, since_ms, now)?;
    let (stats, stats_files) = write_stats(store, dir, &city, division)?;
    let (units, dim_files) = write_dimensions(dims, dir, &city, division)?;
    let (actors, actor_files) = write_actors(store, trust, policies, dir, &city, division)?;
    let snapshot_files: Vec<String> = case_files.into_iter().chain(stats_files).chain(dim_files).chain(actor_files).collect();
    // A snapshot file of the last run not written now (a month with no row left) goes.
    for old in previous.iter().flat_map(|m| m.snapshot_files.iter()) {
        if !snapshot_files.contains(old) {
            let _ = std::fs::remove_file(dir.join(old));
        }
    }
    files.extend(snapshot_files.iter().cloned());

    let manifest = Manifest {
        version: LAYOUT_VERSION,
        node: node.to_string(),
        division: division.to_string(),
        city,
        feed_to: head,
        since: since.map(String::from),
        part_files,
        snapshot_files,
        exported_at: time(now),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Data(format!("manifest: {e}")))?;
    write_atomically(&manifest_path, &manifest)?;
    Ok(ParquetOutcome { cases, events, stats, units, actors, feed_from: from, feed_to: head, files })
}

/// The manifest a previous run left at `path`; `None` when there is none.
fn read_manifest(path: &Path) -> Result<Option<Manifest>, ExportError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| ExportError::Data(format!("reading {}: {e}", path.display())))?;
            if v["version"].as_u64() != Some(LAYOUT_VERSION as u64) {
                return Err(ExportError::Directory(format!("{} has layout version {}, this build writes {LAYOUT_VERSION}: export into a new directory", path.display(), v["version"])));
            }
            Ok(Some(serde_json::from_value(v).map_err(|e| ExportError::Data(format!("reading {}: {e}", path.display())))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(format!("reading {}", path.display()))(e)),
    }
}

/// Checks that this run may continue the previous export in `dir`: same node and `--since`, and a feed reaching its end.
fn check_continues(m: &Manifest, node: &NodeId, dir: &Path, manifest_path: &Path, head: u64, since: Option<&str>) -> Result<(), ExportError> {
    if m.node != node.to_string() {
        return Err(ExportError::Directory(format!("{} was written by another node ({}); export into a new directory", manifest_path.display(), m.node)));
    }
    if m.feed_to > head {
        return Err(ExportError::Directory(format!("{} holds events up to feed position {}, but this store's feed ends at {head}: export into a new directory", dir.display(), m.feed_to)));
    }
    if m.since.as_deref() != since {
        return Err(ExportError::Directory(format!(
            "{} was exported with --since {}; run with the same --since, or export into a new directory",
            dir.display(),
            m.since.as_deref().unwrap_or("(none)")
        )));
    }
    Ok(())
}

/// Removes this node's event and place part files that `listed` (the manifest's) does not name.
fn remove_unlisted_parts(dir: &Path, city: &str, division: &str, listed: &[String]) -> Result<(), ExportError> {
    // Part files the manifest does not list are left from a run that died
    // before its manifest: they would repeat events, so they go.
    for table in ["events", "places"] {
        let base = dir.join(table).join(format!("city={city}"));
        let Ok(months) = std::fs::read_dir(&base) else { continue };
        for month in months.flatten() {
            for entry in std::fs::read_dir(month.path()).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let rel = format!("{table}/city={city}/{}/{name}", month.file_name().to_string_lossy());
                if name.starts_with(&format!("part-{division}-")) && !listed.contains(&rel) {
                    std::fs::remove_file(entry.path()).map_err(io_at(format!("removing stale {}", entry.path().display())))?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the case events (and the places of filings) at feed positions
/// `from..=head` as new part files, one per month; returns the event rows
/// and the files.
fn write_events(store: &Store, dir: &Path, city: &str, division: DivisionCode, from: u64, head: u64, since_ms: Option<u64>) -> Result<(usize, Vec<String>), ExportError> {
    let mut events = Parts::new(dir, "events", event_schema);
    let mut places = Parts::new(dir, "places", place_schema);
    let mut pos = from;
    while pos <= head {
        let page = store.feed_records(pos, FEED_PAGE)?;
        let Some(last) = page.last().map(|(seq, _, _)| *seq) else { break };
        for (seq, id, bytes) in page {
            if seq > head {
                break;
            }
            event_row(&mut events, &mut places, (city, division, from, head), seq, id, bytes, since_ms)?;
        }
        pos = last + 1;
        crate::progress::set(last.saturating_sub(from - 1));
    }
    let rows = events.rows();
    let mut files = events.finish()?;
    files.extend(places.finish()?);
    Ok((rows, files))
}

/// Adds the record at feed position `seq` to the events table if it is a
/// case event from `since_ms` on (and a filing's place to the places table).
#[allow(clippy::too_many_arguments)] // the run's partition key and one record
fn event_row(events: &mut Parts, places: &mut Parts, run: (&str, DivisionCode, u64, u64), seq: u64, id: RecordId, bytes: Vec<u8>, since_ms: Option<u64>) -> Result<(), ExportError> {
    let (city, division, from, head) = run;
    let record = Record::decode_unverified_owned(bytes).map_err(|e| ExportError::Data(format!("record {id} at feed position {seq}: {e}")))?;
    let RecordBody::CaseEvent(ev) = &record.body else { return Ok(()) };
    let wall = record.header.hlc.wall_ms;
    if since_ms.is_some_and(|s| wall < s) {
        return Ok(());
    }
    let month = month_of(wall);
    let case = ev.case.unwrap_or(id);
    let part = |table: &str| format!("{table}/city={city}/month={month}/part-{division}-{from:012}-{head:012}.parquet");
    events.table(part("events"))?.row(&[
        Cell::I64(Some(seq as i64)),
        Cell::Str(Some(&id.to_string())),
        Cell::Str(Some(&case.to_string())),
        Cell::Str(Some(&record.author.to_string())),
        Cell::I64(Some(record.header.seq as i64)),
        Cell::Str(Some(&ev.unit.to_string())),
        Cell::Str(Some(ev.action.as_str())),
        Cell::Ts(Some(wall)),
        Cell::I64(Some(record.header.hlc.counter as i64)),
        Cell::I32(Some(ev.policy as i32)),
    ])?;
    if let zongzhi_protocol::Action::File(f) = &ev.action {
        let arose = f.intake.arose_in.unwrap_or(ev.unit).to_string();
        places.table(part("places"))?.row(&[
            Cell::Str(Some(&case.to_string())),
            Cell::Str(Some(&f.number)),
            Cell::Str(Some(&arose)),
            Cell::F64(f.place.lat_e6.map(|v| v as f64 / 1e6)),
            Cell::F64(f.place.lon_e6.map(|v| v as f64 / 1e6)),
        ])?;
    }
    Ok(())
}

/// Writes the cases afresh, one file per filing month, one row per case
/// filed from `since_ms` on; returns the rows and the files.
fn write_cases(store: &Store, dir: &Path, city: &str, division: DivisionCode, since_ms: Option<u64>, now: u64) -> Result<(usize, Vec<String>), ExportError> {
    let mut parts = Parts::new(dir, "cases", case_schema);
    let mut failed = None;
    store.all_summaries(|c| {
        if since_ms.is_some_and(|s| c.filed_ms < s) {
            return true;
        }
        let rel = format!("cases/city={city}/month={}/{division}.parquet", month_of(c.filed_ms));
        match parts.table(rel).and_then(|t| case_row(t, &c, now)) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let rows = parts.rows();
    Ok((rows, parts.finish()?))
}

/// Writes the statistics afresh, one file per month, one row per non-zero counter key; returns the rows and the files.
fn write_stats(store: &Store, dir: &Path, city: &str, division: DivisionCode) -> Result<(usize, Vec<String>), ExportError> {
    let mut parts = Parts::new(dir, "stats", stats_schema);
    let mut failed = None;
    store.scan_stats(&[], &[0xFF; 32], |k, v| {
        if failed.is_some() {
            return;
        }
        if let Err(e) = stats_row(&mut parts, city, division, k, v) {
            failed = Some(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let rows = parts.rows();
    Ok((rows, parts.finish()?))
}

/// Writes the table by window and by person afresh: one row per (month,
/// window or person) with its counters ([`kpi::attributed`] of every case,
/// folded), a file per month; returns its rows and files.
///
/// [`kpi::attributed`]: zongzhi_protocol::kpi::attributed
fn write_actors(
    store: &Store,
    trust: &zongzhi_protocol::trust::Trust,
    policies: &zongzhi_protocol::policy::PolicySet,
    dir: &Path,
    city: &str,
    division: DivisionCode,
) -> Result<(usize, Vec<String>), ExportError> {
    use std::collections::BTreeMap;
    use zongzhi_protocol::kpi::{self, Actor, COUNTERS};
    let mut ids = Vec::new();
    store.all_summaries(|c| {
        ids.push(c.id);
        true
    })?;
    let mut sums: BTreeMap<(u32, Actor), kpi::Counts> = BTreeMap::new();
    for id in ids {
        let records = crate::ledger::load_case_records(store, &id).map_err(|e| ExportError::Data(format!("case {id}: {e}")))?;
        let state = crate::ledger::fold_records(store, policies, trust, &records).map_err(|e| ExportError::Data(format!("case {id}: {e}")))?;
        for f in kpi::attributed(&state) {
            sums.entry((f.month, f.actor)).or_insert([0; COUNTERS])[f.counter as usize] += f.value;
        }
    }
    let mut parts = Parts::new(dir, "actors", actors_schema);
    for ((month, actor), counts) in &sums {
        let (kind, unit, window, operator) = match actor {
            Actor::Window { unit, window } => ("window", unit, Some(window.as_str()), None),
            Actor::Person { unit, operator } => ("person", unit, None, Some(operator.as_str())),
        };
        let unit = unit.to_string();
        let mut cells = vec![Cell::I32(Some(*month as i32)), Cell::Str(Some(kind)), Cell::Str(Some(&unit)), Cell::Str(window), Cell::Str(operator)];
        cells.extend(counts.iter().map(|x| Cell::I64(Some(*x))));
        let rel = format!("actors/city={city}/month={:04}-{:02}/{division}.parquet", month / 100, month % 100);
        parts.table(rel)?.row(&cells)?;
    }
    let rows = parts.rows();
    Ok((rows, parts.finish()?))
}

/// Adds one counter key to the statistics, unless it is a per-unit total or all zero.
fn stats_row(parts: &mut Parts, city: &str, division: DivisionCode, k: &[u8], v: &[u8]) -> Result<(), ExportError> {
    let Some(key) = crate::stats::parse_key(k) else { return Ok(()) };
    // The per-unit totals over channels and categories are sums of the
    // keys exported here.
    if key.tag & crate::stats::TOTAL_TAGS != 0 {
        return Ok(());
    }
    let counts = crate::stats::decode(v);
    if counts.iter().all(|x| *x == 0) {
        return Ok(());
    }
    let unit = DivisionCode::new(key.unit).map(|d| d.to_string()).unwrap_or_else(|_| key.unit.to_string());
    let channel = zongzhi_protocol::case::Channel::ALL.get(key.channel as usize).map(|c| c.as_str()).unwrap_or("");
    let month = format!("{:04}-{:02}", key.month / 100, key.month % 100);
    let mut cells = vec![Cell::I32(Some(key.tag as i32)), Cell::Str(Some(&unit)), Cell::Str(Some(channel)), Cell::Str(Some(&key.category))];
    cells.extend(counts.iter().map(|x| Cell::I64(Some(*x))));
    parts.table(format!("stats/city={city}/month={month}/{division}.parquet"))?.row(&cells)
}

/// Writes the units, categories and windows of this city; returns the unit rows and the files.
fn write_dimensions(dims: &Dimensions, dir: &Path, city: &str, division: DivisionCode) -> Result<(usize, Vec<String>), ExportError> {
    let rel = |table: &str| format!("{table}/city={city}/{division}.parquet");
    let mut units = Parts::new(dir, "units", unit_schema);
    let mut categories = Parts::new(dir, "categories", category_schema);
    let mut windows = Parts::new(dir, "windows", window_schema);
    for (d, name) in &dims.units {
        let lineage = d.lineage();
        let at = |level: Level| lineage.iter().find(|u| u.level() == level).map(|u| u.to_string());
        let parent = d.parent().map(|p| p.to_string());
        units.table(rel("units"))?.row(&[
            Cell::Str(Some(&d.to_string())),
            Cell::Str(Some(name)),
            Cell::Str(Some(d.level().as_str())),
            Cell::Str(Some(d.level().zh())),
            Cell::Str(parent.as_deref()),
            Cell::Str(at(Level::County).as_deref()),
            Cell::Str(at(Level::Township).as_deref()),
        ])?;
    }
    for (code, name, parent, retired) in &dims.categories {
        categories.table(rel("categories"))?.row(&[Cell::Str(Some(code)), Cell::Str(Some(name)), Cell::Str(parent.as_deref()), Cell::Bool(Some(*retired))])?;
    }
    for (code, name, retired) in &dims.windows {
        windows.table(rel("windows"))?.row(&[Cell::Str(Some(code)), Cell::Str(Some(name)), Cell::Bool(Some(*retired))])?;
    }
    let n = units.rows();
    let mut files = units.finish()?;
    files.extend(categories.finish()?);
    files.extend(windows.finish()?);
    Ok((n, files))
}

fn case_row(t: &mut Table, c: &CaseSummary, now: u64) -> Result<(), ExportError> {
    let lineage = c.owner.lineage();
    let at = |level: Level| lineage.iter().find(|u| u.level() == level).map(|u| u.to_string());
    let (county, township) = (at(Level::County), at(Level::Township));
    t.row(&[
        Cell::Str(Some(&c.id.to_string())),
        Cell::Str(Some(&c.number)),
        Cell::Str(Some(&c.category)),
        Cell::Str(Some(c.request_type.as_str())),
        Cell::Str(Some(c.channel.as_str())),
        Cell::Str(Some(c.urgency.as_str())),
        Cell::Str(Some(c.complexity.as_str())),
        Cell::Str(Some(c.status.as_str())),
        Cell::Str(Some(&c.owner.to_string())),
        Cell::Str(Some(c.owner.level().as_str())),
        Cell::Str(c.window.as_deref()),
        Cell::Str(Some(&c.filed_by.to_string())),
        Cell::Str(county.as_deref()),
        Cell::Str(township.as_deref()),
        Cell::Ts(Some(c.filed_ms)),
        Cell::Ts(Some(c.updated_ms)),
        Cell::Ts(c.next_due_ms),
        Cell::Bool(Some(c.is_overdue(now))),
        Cell::I32(Some(c.returns as i32)),
        Cell::I32(Some(c.escalations as i32)),
        Cell::I32(Some(c.units_handled as i32)),
        Cell::Str(c.supervision.map(|g| g.as_str())),
        Cell::I32(Some(c.events as i32)),
    ])
}

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// UTF-8 text.
    Str,
    I32,
    I64,
    /// Milliseconds since the epoch, UTC.
    Ts,
    Bool,
    F64,
}

/// A column: name, type, whether it may be null.
type ColumnDef = (String, Kind, bool);

fn col(name: &str, kind: Kind) -> ColumnDef {
    (name.to_string(), kind, false)
}

fn nullable(name: &str, kind: Kind) -> ColumnDef {
    (name.to_string(), kind, true)
}

fn case_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![
        col("case_id", Str),
        col("number", Str),
        col("category", Str),
        col("request_type", Str),
        col("channel", Str),
        col("urgency", Str),
        col("complexity", Str),
        col("status", Str),
        col("owner", Str),
        col("owner_level", Str),
        nullable("window", Str),
        col("filed_by", Str),
        nullable("county", Str),
        nullable("township", Str),
        col("filed_at", Ts),
        col("updated_at", Ts),
        nullable("next_due_at", Ts),
        // At the time of the export (it depends on the clock).
        col("overdue", Bool),
        col("returns", I32),
        col("escalations", I32),
        col("units_handled", I32),
        nullable("supervision", Str),
        col("event_count", I32),
    ]
}

fn event_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![
        // This node's feed position (the manifest's unit of progress).
        col("feed_seq", I64),
        col("record_id", Str),
        col("case_id", Str),
        col("author", Str),
        col("author_seq", I64),
        col("unit", Str),
        col("action", Str),
        col("hlc_wall", Ts),
        col("hlc_counter", I64),
        col("policy_version", I32),
    ]
}

fn stats_schema() -> Vec<ColumnDef> {
    use Kind::*;
    let mut cols = vec![col("tag", I32), col("unit", Str), col("channel", Str), col("category", Str)];
    cols.extend(zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| col(c.as_str(), I64)));
    cols
}

fn actors_schema() -> Vec<ColumnDef> {
    use Kind::*;
    let mut cols = vec![col("month", I32), col("kind", Str), col("unit", Str), nullable("window", Str), nullable("operator", Str)];
    cols.extend(zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| col(c.as_str(), I64)));
    cols
}

fn place_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![col("case_id", Str), col("number", Str), col("arose_in", Str), nullable("lat", F64), nullable("lon", F64)]
}

fn unit_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![col("unit", Str), col("name", Str), col("level", Str), col("level_zh", Str), nullable("parent", Str), nullable("county", Str), nullable("township", Str)]
}

fn category_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![col("code", Str), col("name", Str), nullable("parent", Str), col("retired", Bool)]
}

fn window_schema() -> Vec<ColumnDef> {
    use Kind::*;
    vec![col("code", Str), col("name", Str), col("retired", Bool)]
}

/// The Parquet schema of the columns, in the message-type notation.
fn message_type(name: &str, cols: &[ColumnDef]) -> String {
    let mut m = format!("message {name} {{\n");
    for (col, kind, null) in cols {
        let rep = if *null { "optional" } else { "required" };
        let t = match kind {
            Kind::Str => "binary",
            Kind::I32 => "int32",
            Kind::I64 | Kind::Ts => "int64",
            Kind::Bool => "boolean",
            Kind::F64 => "double",
        };
        let logical = match kind {
            Kind::Str => " (STRING)",
            Kind::Ts => " (TIMESTAMP(MILLIS,true))",
            _ => "",
        };
        m.push_str(&format!("  {rep} {t} {col}{logical};\n"));
    }
    m.push('}');
    m
}

/// One value of a row, matching its column's type.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Str(Option<&'a str>),
    I32(Option<i32>),
    I64(Option<i64>),
    /// Milliseconds since the epoch, UTC.
    Ts(Option<u64>),
    Bool(Option<bool>),
    F64(Option<f64>),
}

/// The values of one column in the row group being collected.
enum Values {
    Bytes(Vec<parquet::data_type::ByteArray>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    F64(Vec<f64>),
}

struct Column {
    name: String,
    kind: Kind,
    nullable: bool,
    /// Definition levels (1 present, 0 null) of a nullable column.
    defs: Vec<i16>,
    values: Values,
}

impl Column {
    fn new((name, kind, nullable): &ColumnDef) -> Column {
        let values = match kind {
            Kind::Str => Values::Bytes(Vec::new()),
            Kind::I32 => Values::I32(Vec::new()),
            Kind::I64 | Kind::Ts => Values::I64(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::F64 => Values::F64(Vec::new()),
        };
        Column { name: name.clone(), kind: *kind, nullable: *nullable, defs: Vec::new(), values }
    }

    fn push(&mut self, v: &Cell<'_>) -> Result<(), ExportError> {
        let present = match (&mut self.values, self.kind, *v) {
            (Values::Bytes(b), Kind::Str, Cell::Str(x)) => x.map(|s| b.push(s.as_bytes().to_vec().into())).is_some(),
            (Values::I32(b), Kind::I32, Cell::I32(x)) => x.map(|n| b.push(n)).is_some(),
            (Values::I64(b), Kind::I64, Cell::I64(x)) => x.map(|n| b.push(n)).is_some(),
            (Values::I64(b), Kind::Ts, Cell::Ts(x)) => x.map(|ms| b.push(ms as i64)).is_some(),
            (Values::Bool(b), Kind::Bool, Cell::Bool(x)) => x.map(|n| b.push(n)).is_some(),
            (Values::F64(b), Kind::F64, Cell::F64(x)) => x.map(|n| b.push(n)).is_some(),
            (_, kind, v) => return Err(ExportError::Data(format!("value {v:?} does not fit column {} ({kind:?})", self.name))),
        };
        if self.nullable {
            self.defs.push(present as i16);
        } else {
            if !present {
                return Err(ExportError::Data(format!("column {} may not be null", self.name)));
            }
        }
        Ok(())
    }

    /// Writes the collected values as this column's chunk and clears them.
    fn write(&mut self, w: &mut parquet::file::writer::SerializedColumnWriter<'_>) -> Result<(), ExportError> {
        use parquet::data_type::{BoolType, ByteArrayType, DoubleType, Int32Type, Int64Type};
        let defs = self.nullable.then_some(self.defs.as_slice());
        match &mut self.values {
            Values::Bytes(v) => {
                w.typed::<ByteArrayType>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::I32(v) => {
                w.typed::<Int32Type>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::I64(v) => {
                w.typed::<Int64Type>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::Bool(v) => {
                w.typed::<BoolType>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::F64(v) => {
                w.typed::<DoubleType>().write_batch(v, defs, None)?;
                v.clear();
            }
        }
        self.defs.clear();
        Ok(())
    }
}

/// A Parquet file being written: to `<name>.tmp` first, renamed into place
/// by [`Table::finish`]. Rows are collected column by column and written
/// as a row group every [`ROW_GROUP_ROWS`] rows.
struct Table {
    columns: Vec<Column>,
    pending: usize,
    rows: usize,
    writer: Option<parquet::file::writer::SerializedFileWriter<std::fs::File>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Table {
    fn create(dir: &Path, rel: &str, name: &str, cols: Vec<ColumnDef>) -> Result<Table, ExportError> {
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;
        let path = dir.join(rel);
        let tmp = path.with_extension("parquet.tmp");
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&message_type(name, &cols))?);
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).set_created_by(format!("zongzhi-node {}", env!("CARGO_PKG_VERSION"))).build();
        let file = std::fs::File::create(&tmp).map_err(io_at(format!("creating {}", tmp.display())))?;
        let writer = parquet::file::writer::SerializedFileWriter::new(file, schema, Arc::new(props))?;
        let columns = cols.iter().map(Column::new).collect();
        Ok(Table { columns, pending: 0, rows: 0, writer: Some(writer), tmp, path })
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), ExportError> {
        if cells.len() != self.columns.len() {
            return Err(ExportError::Data(format!("a row of {} values for {} columns", cells.len(), self.columns.len())));
        }
        for (c, v) in self.columns.iter_mut().zip(cells) {
            c.push(v)?;
        }
        self.pending += 1;
        self.rows += 1;
        if self.pending >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the collected rows as one row group.
    fn flush(&mut self) -> Result<(), ExportError> {
        if self.pending == 0 {
            return Ok(());
        }
        let Some(w) = self.writer.as_mut() else { return Err(ExportError::Data("table already finished".into())) };
        let mut group = w.next_row_group()?;
        for c in &mut self.columns {
            let Some(mut cw) = group.next_column()? else { return Err(ExportError::Data("the schema has fewer columns than the table".into())) };
            c.write(&mut cw)?;
            cw.close()?;
        }
        group.close()?;
        self.pending = 0;
        Ok(())
    }

    /// Writes the footer, syncs and renames the file into place.
    fn finish(mut self) -> Result<(), ExportError> {
        self.flush()?;
        let Some(w) = self.writer.take() else { return Err(ExportError::Data("table already finished".into())) };
        let file = w.into_inner()?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)?;
        sync_dir(&self.path);
        Ok(())
    }

    /// Drops the unfinished file.
    fn abandon(mut self) {
        self.writer.take();
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Syncs the directory holding `path` (a rename is durable only then).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_an_apostrophe() {
        for s in ["=1+1", "+8613800000000", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(s), format!("'{s}"));
        }
        for s in ["", "张三", "13812341234", "a=b"] {
            assert_eq!(csv_cell(s), s);
        }
    }

    #[test]
    fn since_is_the_start_of_the_day_in_china() {
        // 2026-05-01T00:00:00+08:00 = 2026-04-30T16:00:00Z.
        assert_eq!(since_ms("2026-05-01").ok(), Some(1_777_564_800_000));
        assert!(since_ms("2026-13-01").is_err());
        assert!(since_ms("yesterday").is_err());
    }

    #[test]
    fn headers_match_rows() {
        assert_eq!(HEADERS.len(), 22);
        assert_eq!(HEADERS[NUMERIC[0]], "退回次数");
        assert_eq!(HEADERS[NUMERIC[1]], "上报次数");
    }
}
