//! Exports.
//!
//! - `GET /api/cases/export?format=csv|xlsx&<filters>`: the case list (台账)
//!   with the filters of `GET /api/cases`, in list order, personal data
//!   masked below the operator role. CSV streams: rows are produced on a
//!   blocking thread into a bounded channel, so memory does not grow with
//!   the list. XLSX is written in the spreadsheet library's constant-memory
//!   mode to a temporary file, then streamed back.
//! - [`parquet`] (`zongzhi-node export parquet`, node stopped): analytics
//!   tables without personal data — case facts, one row per case event,
//!   the statistics counters, the counters by window and by person
//!   (`actors/`, [`crate::stats::rollup_actors`]'s figures by month) — for
//!   DuckDB, DataFusion, Spark or Trino.
//!   Incremental: a manifest in the output directory records the feed
//!   position exported up to; the next run writes only the new events as a
//!   new part file and replaces the (derived, changing) case and statistics
//!   snapshots.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use zongzhi_protocol::case::Contact;
use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::{Body as RecordBody, BlobHash, DivisionCode, Level, NodeId, Policy, Record, RecordId};

use crate::accounts::Role;
use crate::api::{authenticate, time, ApiError, ApiResult, AppState};
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
    "编号", "标题", "大类", "小类", "类型", "渠道", "紧急程度", "状态", "承办单位", "承办单位代码", "登记单位", "登记单位代码", "受理时间", "登记时间", "下一时限",
    "是否超期", "督办", "退回次数", "上报次数", "姓名", "电话", "证件号",
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
    let date = jiff::Timestamp::from_millisecond(now as i64)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date().to_string())
        .unwrap_or_default();
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
            let mut file = tokio::task::spawn_blocking(move || job.xlsx())
                .await
                .map_err(|e| ApiError::internal(format!("export task failed: {e}")))??;
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
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_rows",
                format!("more than {XLSX_MAX_ROWS} cases: narrow the filters or export CSV"),
            ));
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
    let received = store
        .record_bytes(&c.id)
        .map_err(|e| e.to_string())?
        .and_then(|b| zongzhi_protocol::Record::decode(&b).ok())
        .and_then(|r| match r.body {
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

/// The manifest's file name in the output directory.
pub const MANIFEST: &str = "manifest.json";
/// Version of the manifest and table layout.
const LAYOUT_VERSION: u32 = 1;
/// Rows per Parquet row group (collected in memory before it is written).
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Records read from the feed at a time.
const FEED_PAGE: usize = 1024;

/// What the output directory holds: written after the data files, so a
/// run that dies leaves the previous manifest (and its files) standing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The node whose store was exported (hex key).
    pub node: String,
    pub division: String,
    /// Feed positions `1..=feed_to` have been exported as events.
    pub feed_to: u64,
    /// `--since` of the first run (`YYYY-MM-DD`, China time), kept for all.
    pub since: Option<String>,
    /// The event part files, oldest first (relative to the directory).
    pub event_files: Vec<String>,
    pub cases_file: String,
    pub stats_file: String,
    /// The counters by window and by person (absent before they were exported).
    #[serde(default)]
    pub actors_file: String,
    /// When the last run finished (RFC 3339, +08:00).
    pub exported_at: String,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOutcome {
    pub cases: usize,
    pub events: usize,
    pub stats: usize,
    pub actors: usize,
    /// Feed positions read this run (`from..=to`; empty when nothing new).
    pub feed_from: u64,
    pub feed_to: u64,
    /// Files written this run, relative to the directory.
    pub files: Vec<String>,
}

impl std::fmt::Display for ParquetOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let feed = if self.feed_from <= self.feed_to {
            format!("feed {}..={}", self.feed_from, self.feed_to)
        } else {
            format!("nothing new in the feed after {}", self.feed_to)
        };
        write!(
            f,
            "exported cases: {} rows, events: {} rows ({feed}), stats: {} rows, by window and person: {} rows; files written: {}",
            self.cases,
            self.events,
            self.stats,
            self.actors,
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

/// Exports the store's analytics tables into `dir` (see the module docs).
/// `since`: the `--since` date; events and cases before it are left out.
/// `trust` and `policies` fold the cases for the table by window and person.
pub fn parquet(
    store: &Store,
    node: &NodeId,
    division: DivisionCode,
    trust: &Trust,
    policies: &PolicySet,
    dir: &Path,
    since: Option<&str>,
) -> Result<ParquetOutcome, ExportError> {
    let since_ms = since.map(since_ms).transpose()?;
    for sub in ["cases", "events", "stats", "actors"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io_at(format!("creating {}", dir.join(sub).display())))?;
    }
    let manifest_path = dir.join(MANIFEST);
    let previous = read_manifest(&manifest_path)?;
    let head = store.feed_len()?;
    if let Some(m) = &previous {
        check_continues(m, node, dir, &manifest_path, head, since)?;
    }
    let mut event_files = previous.as_ref().map(|m| m.event_files.clone()).unwrap_or_default();
    remove_unlisted_parts(dir, &event_files)?;
    let from = previous.as_ref().map_or(1, |m| m.feed_to + 1);
    let mut files = Vec::new();

    // Events: the feed from where the last run stopped.
    let (events, part) = write_events(store, dir, from, head, since_ms)?;
    if let Some(rel) = part {
        event_files.push(rel.clone());
        files.push(rel);
    }

    // Cases: a fresh snapshot.
    let cases_rel = "cases/cases.parquet".to_string();
    let now = crate::context::now_ms();
    let cases = write_cases(store, dir, &cases_rel, since_ms, now)?;
    files.push(cases_rel.clone());

    // Statistics: a fresh snapshot of every counter key.
    let stats_rel = "stats/stats.parquet".to_string();
    let stats = write_stats(store, dir, &stats_rel)?;
    files.push(stats_rel.clone());

    // By window and by person: a fresh snapshot.
    let actors_rel = "actors/actors.parquet".to_string();
    let actors = write_actors(store, trust, policies, dir, &actors_rel)?;
    files.push(actors_rel.clone());

    let manifest = Manifest {
        version: LAYOUT_VERSION,
        node: node.to_string(),
        division: division.to_string(),
        feed_to: head,
        since: since.map(String::from),
        event_files,
        cases_file: cases_rel,
        stats_file: stats_rel,
        actors_file: actors_rel,
        exported_at: time(now),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Data(format!("manifest: {e}")))?;
    write_atomically(&manifest_path, &manifest)?;
    Ok(ParquetOutcome { cases, events, stats, actors, feed_from: from, feed_to: head, files })
}

/// The manifest a previous run left at `path`; `None` when there is none.
fn read_manifest(path: &Path) -> Result<Option<Manifest>, ExportError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| ExportError::Data(format!("reading {}: {e}", path.display())))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(format!("reading {}", path.display()))(e)),
    }
}

/// Checks that this run may continue the previous export in `dir`: same layout, node and `--since`, and a feed reaching its end.
fn check_continues(m: &Manifest, node: &NodeId, dir: &Path, manifest_path: &Path, head: u64, since: Option<&str>) -> Result<(), ExportError> {
    if m.version != LAYOUT_VERSION {
        return Err(ExportError::Directory(format!("{} has layout version {}, this build writes {LAYOUT_VERSION}: export into a new directory", manifest_path.display(), m.version)));
    }
    if m.node != node.to_string() {
        return Err(ExportError::Directory(format!("{} was exported from another node ({}); export into a new directory", dir.display(), m.node)));
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

/// Removes the event part files that `listed` (the manifest's) does not name.
fn remove_unlisted_parts(dir: &Path, listed: &[String]) -> Result<(), ExportError> {
    // Part files the manifest does not list are left from a run that died
    // before its manifest: they would repeat events, so they go.
    for entry in std::fs::read_dir(dir.join("events"))? {
        let entry = entry?;
        let rel = format!("events/{}", entry.file_name().to_string_lossy());
        if !listed.contains(&rel) {
            std::fs::remove_file(entry.path()).map_err(io_at(format!("removing stale {}", entry.path().display())))?;
        }
    }
    Ok(())
}

/// Writes the case events at feed positions `from..=head` as a new part file; returns its rows and name (`None`: nothing written).
fn write_events(store: &Store, dir: &Path, from: u64, head: u64, since_ms: Option<u64>) -> Result<(usize, Option<String>), ExportError> {
    if from > head {
        return Ok((0, None));
    }
    let rel = format!("events/part-{from:012}-{head:012}.parquet");
    let mut t = Table::create(dir, &rel, "events", event_schema())?;
    let mut pos = from;
    while pos <= head {
        let page = store.feed_records(pos, FEED_PAGE)?;
        let Some(last) = page.last().map(|(seq, _, _)| *seq) else { break };
        for (seq, id, bytes) in page {
            if seq > head {
                break;
            }
            event_row(&mut t, seq, id, bytes, since_ms)?;
        }
        pos = last + 1;
    }
    let events = t.rows;
    if events > 0 {
        t.finish()?;
        Ok((events, Some(rel)))
    } else {
        t.abandon();
        Ok((events, None))
    }
}

/// Adds the record at feed position `seq` to the events table if it is a case event from `since_ms` on.
fn event_row(t: &mut Table, seq: u64, id: RecordId, bytes: Vec<u8>, since_ms: Option<u64>) -> Result<(), ExportError> {
    let record = Record::decode_unverified_owned(bytes).map_err(|e| ExportError::Data(format!("record {id} at feed position {seq}: {e}")))?;
    let RecordBody::CaseEvent(ev) = &record.body else { return Ok(()) };
    if since_ms.is_some_and(|s| record.header.hlc.wall_ms < s) {
        return Ok(());
    }
    let case = ev.case.unwrap_or(id);
    t.row(&[
        Cell::I64(Some(seq as i64)),
        Cell::Str(Some(&id.to_string())),
        Cell::Str(Some(&case.to_string())),
        Cell::Str(Some(&record.author.to_string())),
        Cell::I64(Some(record.header.seq as i64)),
        Cell::Str(Some(&ev.unit.to_string())),
        Cell::Str(Some(ev.action.as_str())),
        Cell::Ts(Some(record.header.hlc.wall_ms)),
        Cell::I64(Some(record.header.hlc.counter as i64)),
        Cell::I32(Some(ev.policy as i32)),
    ])
}

/// Writes the cases table at `rel` afresh, one row per case filed from `since_ms` on; returns its rows.
fn write_cases(store: &Store, dir: &Path, rel: &str, since_ms: Option<u64>, now: u64) -> Result<usize, ExportError> {
    let mut t = Table::create(dir, rel, "cases", case_schema())?;
    let mut failed = None;
    store.all_summaries(|c| {
        if since_ms.is_some_and(|s| c.filed_ms < s) {
            return true;
        }
        match case_row(&mut t, &c, now) {
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
    let cases = t.rows;
    t.finish()?;
    Ok(cases)
}

/// Writes the statistics table at `rel` afresh, one row per non-zero counter key; returns its rows.
fn write_stats(store: &Store, dir: &Path, rel: &str) -> Result<usize, ExportError> {
    let mut t = Table::create(dir, rel, "stats", stats_schema())?;
    let mut failed = None;
    store.scan_stats(&[], &[0xFF; 32], |k, v| {
        if failed.is_some() {
            return;
        }
        if let Err(e) = stats_row(&mut t, k, v) {
            failed = Some(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let stats = t.rows;
    t.finish()?;
    Ok(stats)
}

/// Writes the table by window and by person at `rel` afresh: one row per
/// (month, window or person) with its counters ([`kpi::attributed`] of every
/// case, folded); returns its rows.
fn write_actors(store: &Store, trust: &Trust, policies: &PolicySet, dir: &Path, rel: &str) -> Result<usize, ExportError> {
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
    let mut t = Table::create(dir, rel, "actors", actors_schema())?;
    for ((month, actor), counts) in &sums {
        let (kind, unit, window, operator) = match actor {
            Actor::Window { unit, window } => ("window", unit, Some(window.as_str()), None),
            Actor::Person { unit, operator } => ("person", unit, None, Some(operator.as_str())),
        };
        let unit = unit.to_string();
        let mut cells = vec![Cell::I32(Some(*month as i32)), Cell::Str(Some(kind)), Cell::Str(Some(&unit)), Cell::Str(window), Cell::Str(operator)];
        cells.extend(counts.iter().map(|x| Cell::I64(Some(*x))));
        t.row(&cells)?;
    }
    let rows = t.rows;
    t.finish()?;
    Ok(rows)
}

/// Adds one counter key to the statistics table, unless it is a per-unit total or all zero.
fn stats_row(t: &mut Table, k: &[u8], v: &[u8]) -> Result<(), ExportError> {
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
    let mut cells = vec![
        Cell::I32(Some(key.month as i32)),
        Cell::I32(Some(key.tag as i32)),
        Cell::Str(Some(&unit)),
        Cell::Str(Some(channel)),
        Cell::Str(Some(&key.category)),
    ];
    cells.extend(counts.iter().map(|x| Cell::I64(Some(*x))));
    t.row(&cells)
}

fn case_row(t: &mut Table, c: &CaseSummary, now: u64) -> Result<(), ExportError> {
    let lineage = c.owner.lineage();
    let at = |level: Level| lineage.iter().find(|u| u.level() == level).map(|u| u.to_string());
    let (city, county, township) = (at(Level::City), at(Level::County), at(Level::Township));
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
        Cell::Str(city.as_deref()),
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
        nullable("city", Str),
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
    let mut cols = vec![col("month", I32), col("tag", I32), col("unit", Str), col("channel", Str), col("category", Str)];
    cols.extend(zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| col(c.as_str(), I64)));
    cols
}

fn actors_schema() -> Vec<ColumnDef> {
    use Kind::*;
    let mut cols = vec![col("month", I32), col("kind", Str), col("unit", Str), nullable("window", Str), nullable("operator", Str)];
    cols.extend(zongzhi_protocol::kpi::Counter::ALL.iter().map(|c| col(c.as_str(), I64)));
    cols
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
}

/// The values of one column in the row group being collected.
enum Values {
    Bytes(Vec<parquet::data_type::ByteArray>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
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
        use parquet::data_type::{BoolType, ByteArrayType, Int32Type, Int64Type};
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
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("zongzhi-node {}", env!("CARGO_PKG_VERSION")))
            .build();
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
