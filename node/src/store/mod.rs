//! The node's RocksDB store. Only `store/rocks.rs` names `rocksdb`.
//!
//! Column families (DESIGN.md §6):
//!
//! | cf | key | value |
//! |---|---|---|
//! | `records` | record id | local seq (u64 BE) |
//! | `feed` | local seq (u64 BE) | record id ‖ record bytes |
//! | `chain` | author ‖ seq (u64 BE) | record id |
//! | `case_index` | case id ‖ local seq (BE) | event record id |
//! | `pending` | record id | bytes of a record waiting for its parents |
//! | `cursors` | peer ‖ direction | epoch ‖ seq |
//! | `case_state` | case id | [`CaseSummary`] (binary codec) — derived |
//! | `case_numbers` | case number | case id — derived |
//! | `queue`, `queue_cat`, `counts`, `clocks`, `urgent`, `repeats`, `repeat_marks`, `repeat_dirty`, `contacts`, `words` | see [`crate::index`] | derived |
//! | `stats` | month ‖ tag ‖ unit ‖ channel ‖ category | counters (merge operator) — derived |
//! | `meta` | name | value |
//! | `accounts` | user name | account (JSON) |
//! | `sessions` | BLAKE3(token) | session (JSON) |
//! | `blobs` | BLAKE3(bytes) | bytes (contact details, attachments) |
//! | `trust` | local seq (BE) | id of a cert or revocation record — derived |
//! | `alarms` | alarm seq (BE) | integrity alarm with its proof (JSON) |
//! | `reports` | month ‖ unit ‖ author seq (BE) | id of a monthly report record — derived |
//! | `login_audit` | !time ‖ !seq (BE) | successful login, lockout, admin action (JSON) — local, bounded, newest first |
//! | `login_refusals` | !time ‖ !seq (BE) | refused login attempts aggregated per client address (JSON) — local, bounded apart |
//! | `locks` | kind ‖ key | login throttle and public-page lock state (JSON) — local, kept across restarts |
//! | `notify_outbox` | state ‖ feed position (BE) | citizen notification (JSON) — local ([`crate::notify`]) |
//! | `notify_secrets` | event id ‖ name | a value for the event's notification (query code …) — local, short-lived |
//!
//! Every acknowledged change is one [`Batch`] written with `sync = true`:
//! records and the derived state they imply land together or not at all.
//! Derived column families can be dropped and rebuilt from the records in
//! feed order (`zongzhi-node reindex`).
//!
//! Files: `keys.rs` (column family names, `meta` keys, key helpers),
//! `batch.rs` ([`Batch`] and its typed puts), `rocks.rs` (the engine: the
//! only file that names `rocksdb`); the typed read API is here.

mod batch;
mod keys;
pub mod migrate;
mod notify;
mod parked;
mod rocks;

use std::path::Path;

use serde::de::DeserializeOwned;
use zongzhi_protocol::{DivisionCode, NodeId, RecordId};

use crate::summary::CaseSummary;
pub use batch::Batch;
pub use keys::meta;
use keys::*;
pub(crate) use keys::{CF_CLOCKS, CF_CONTACTS, CF_COUNTS, CF_QUEUE, CF_QUEUE_CAT, CF_REPEAT_DIRTY, CF_REPEATS, CF_URGENT, CF_WORDS};
pub use notify::OutboxState;
pub use parked::{FleetEntry, ParkedEntry};

/// Layout version of what this module stores.
/// 2: a record's bytes are kept in `feed` (position → id ‖ bytes), so a
/// sender reads its feed in one forward scan; `records` maps id → position.
/// 3: case summaries in `case_state` are binary (the codec of signed
/// records), not JSON; a schema-2 directory is converted when opened.
/// Schema 4: records of format 2 (case events name their policy version),
/// the waiting index. Older directories hold format-1 records, which cannot
/// be re-signed: they are refused, not converted.
/// Schema 5: the list, clock, repeat and search indexes ([`crate::index`]);
/// a schema-4 directory is opened and its derived data rebuilt
/// ([`Store::needs_reindex`]).
/// Schema 6: statistics keep per-unit totals over channels and categories
/// ([`crate::stats::TOTAL_TAGS`]); a schema-5 directory is rebuilt likewise.
/// Schema 7: statistics count overruled steps (被覆盖, `kpi::Counter::Overruled`);
/// a schema-6 directory is rebuilt likewise.
/// Schema 8: cases with an overruled step, by the unit that took it (the
/// `overruled` list filter); void cases out of the contact index. A
/// schema-7 directory is rebuilt likewise.
/// Schema 9: record format 3 (the citizen's side); repeats keyed by the
/// complainant's fingerprint. Older directories hold format-2 records and
/// are refused.
/// Schema 10 (release 0.2.0): `parked` and `fleet`, `oldest_reader`; from
/// here on every schema migrates forward in place ([`migrate`]).
pub const SCHEMA_VERSION: u32 = 10;

/// The oldest schema this build opens (and migrates).
pub const OLDEST_SCHEMA: u32 = 9;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (a full disk, an I/O error): its own
    /// words, so nothing outside `rocks.rs` holds the engine's types.
    #[error("storage: {0}")]
    Engine(String),
    /// The data directory is open in another process.
    #[error(
        "the data directory {0} is in use by another zongzhi-node process: stop that node first (user add, reindex, export, verify and import-cert need it stopped; while it runs, use the API or the zongzhi CLI)"
    )]
    InUse(String),
    #[error("stored value under {cf} is corrupt: {detail}")]
    Corrupt { cf: &'static str, detail: String },
    #[error("data directory was written by schema {found}, which holds records of a format no release reads (before release 0.1.0): start from a new data directory")]
    Schema { found: u32 },
    #[error("{}", too_new(*found, *oldest_reader))]
    TooNew { found: u32, oldest_reader: u32 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn too_new(found: u32, oldest_reader: u32) -> String {
    let install = match crate::release::for_schema(oldest_reader) {
        Some(r) => format!("release {} or later", r.version),
        None => format!("a release newer than {}", crate::release::version()),
    };
    format!(
        "this data directory (schema {found}) was written by a newer release and needs a binary of schema {oldest_reader} or later; \
         this is release {} (schema {SCHEMA_VERSION}): install {install}",
        crate::release::version()
    )
}

/// A range of an index: key prefix, lower and upper bound of the rest.
pub(crate) type IndexRange = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Case ids and, when more follow, the key to continue after.
pub(crate) type IdPage = (Vec<RecordId>, Option<Vec<u8>>);

/// One derived entry: column family, key, value.
pub type DerivedEntry = (String, Vec<u8>, Vec<u8>);

/// Told how long each synced write took (the node's metrics; the store
/// does not know them). Set with [`Store::time_writes`].
pub type WriteTimer = std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// The two logs of the login audit: what must never be evicted by a
/// flood (successful logins, lockouts, admins' actions) and the refused
/// attempts, aggregated per client address, bounded apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Events,
    Refusals,
}

impl AuditKind {
    fn cf(self) -> &'static str {
        match self {
            AuditKind::Events => CF_LOGIN_AUDIT,
            AuditKind::Refusals => CF_LOGIN_REFUSALS,
        }
    }
}

/// The engine's size, from its own estimates (summed over column families).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineSize {
    /// Bytes of all SST files (`rocksdb.total-sst-files-size`).
    pub sst_bytes: u64,
    /// Estimate of the live data (`rocksdb.estimate-live-data-size`).
    pub live_data_bytes: u64,
    /// Memtables: active, immutable and pinned (`rocksdb.size-all-mem-tables`).
    pub memtable_bytes: u64,
}

pub struct Store {
    /// The database; `None` only while [`Store::reopen`] replaces it.
    db: std::sync::RwLock<Option<std::sync::Arc<rocks::DB>>>,
    path: std::path::PathBuf,
    /// The error of the last failed write, until a reopen.
    write_fault: std::sync::Mutex<Option<String>>,
    /// Opened over a directory of the previous schema: derived data must be rebuilt.
    needs_reindex: std::sync::atomic::AtomicBool,
    /// The repeat window in days the repeat marks follow (the policy's).
    repeat_window_days: std::sync::atomic::AtomicU32,
    /// Serializes repeat-mark settling (read, compare, write).
    repeat_lock: std::sync::Mutex<()>,
    /// Keyed-hash secret of the contact index.
    search_key: [u8; 32],
    /// Size of the last committed batch's buffer: the next batch reserves
    /// as much, so a large one is not copied over and over as it grows.
    batch_hint: std::sync::atomic::AtomicUsize,
    /// Told the duration of each synced write, if set.
    write_timer: std::sync::RwLock<Option<WriteTimer>>,
    /// What opening migrated.
    migration: migrate::Migration,
}

impl Store {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, || {
            let mut k = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut k);
            k
        })
    }

    /// A migration step asked for the derived data to be rebuilt and the
    /// rebuild has not finished: the caller rebuilds it
    /// (`ledger::reindex`) and then calls [`Store::reindexed`].
    pub fn needs_reindex(&self) -> bool {
        self.needs_reindex.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the derived data for a rebuild (done by the next open if this
    /// process stops before [`Store::reindexed`]).
    pub fn request_reindex(&self) -> Result<()> {
        let mut b = self.batch();
        b.put_meta(meta::REINDEX_PENDING, &[1]);
        self.commit(b)?;
        self.needs_reindex.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Records that the derived data follows this schema.
    pub fn reindexed(&self) -> Result<()> {
        let mut b = self.batch();
        b.delete_meta(meta::REINDEX_PENDING);
        self.commit(b)?;
        self.needs_reindex.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// What opening this store migrated (nothing for a current or new
    /// directory).
    pub fn migration(&self) -> &migrate::Migration {
        &self.migration
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed hash under which the contact index files a phone or ID number.
    pub fn contact_key(&self, normalized: &str) -> [u8; 16] {
        let h = blake3::keyed_hash(&self.search_key, normalized.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&h.as_bytes()[..16]);
        k
    }

    pub(crate) fn repeat_window_ms(&self) -> u64 {
        self.repeat_window_days.load(std::sync::atomic::Ordering::Relaxed) as u64 * 86_400_000
    }

    /// Sets the repeat window (from the current policy). When it differs
    /// from the one the stored marks were settled with, every group is
    /// settled again; groups a crash left unsettled are settled in any case.
    pub fn set_repeat_window(&self, days: u32) -> Result<()> {
        self.repeat_window_days.store(days, std::sync::atomic::Ordering::Relaxed);
        let stored = self.meta_get(meta::REPEAT_WINDOW)?.and_then(|v| v.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes));
        let mut groups: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        let cf = if stored == Some(days) { CF_REPEAT_DIRTY } else { CF_REPEATS };
        self.scan_prefix(cf, &[], |k, _| {
            if let Some(g) = k.get(..crate::index::REPEAT_GROUP) {
                groups.insert(g.to_vec());
            }
            true
        })?;
        for chunk in groups.into_iter().map(|g| (g, None)).collect::<Vec<_>>().chunks(4096) {
            self.settle_repeats(chunk.to_vec())?;
        }
        if stored != Some(days) {
            let mut b = self.batch();
            b.put_meta(meta::REPEAT_WINDOW, &days.to_be_bytes());
            self.commit(b)?;
        }
        Ok(())
    }

    /// Report record ids of `month` for units in `units`, oldest first per unit.
    pub fn reports(&self, month: u32, units: std::ops::RangeInclusive<u64>) -> Result<Vec<(u64, RecordId)>> {
        let bound = |unit: u64| [month.to_be_bytes().as_slice(), unit.to_be_bytes().as_slice()].concat();
        let mut out = Vec::new();
        self.scan_range(CF_REPORTS, &bound(*units.start()), &bound(units.end().saturating_add(1)), |k, v| {
            if let (Some(unit), Some(id)) = (u64_be(&k[4..]), id_from(v)) {
                out.push((unit, id));
            }
        })?;
        Ok(out)
    }

    /// Statistics entries with keys in `[from, to)`.
    pub fn scan_stats(&self, from: &[u8], to: &[u8], f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.scan_range(CF_STATS, from, to, f)
    }

    // --- meta ---

    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get(CF_META, key.as_bytes())
    }

    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.meta_get(key)?.and_then(|v| u64_be(&v)))
    }

    // --- records ---

    pub fn record_bytes(&self, id: &RecordId) -> Result<Option<Vec<u8>>> {
        match self.record_seq(id)? {
            Some(seq) => Ok(self.record_at(seq)?.map(|(_, bytes)| bytes)),
            None => Ok(None),
        }
    }

    /// A held record's position in this node's feed.
    pub fn record_seq(&self, id: &RecordId) -> Result<Option<u64>> {
        Ok(self.get(CF_RECORDS, &id.0)?.and_then(|v| u64_be(&v)))
    }

    /// The record at feed position `seq`: its id and bytes.
    pub fn record_at(&self, seq: u64) -> Result<Option<(RecordId, Vec<u8>)>> {
        match self.get(CF_FEED, &seq.to_be_bytes())? {
            Some(v) => {
                let (id, bytes) = split_feed_value(&v).ok_or_else(|| StoreError::Corrupt { cf: CF_FEED, detail: format!("bad feed entry {seq}") })?;
                Ok(Some((id, bytes.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Number of records in the feed (its last sequence number).
    pub fn feed_len(&self) -> Result<u64> {
        Ok(self.last_key(CF_FEED)?.and_then(|(k, _)| u64_be(&k)).unwrap_or(0))
    }

    /// Record ids in feed order starting at `from` (1-based), at most `limit`.
    pub fn feed_range(&self, from: u64, limit: usize) -> Result<Vec<(u64, RecordId)>> {
        let mut out = Vec::new();
        self.scan_feed(from, limit, |seq, id, _| out.push((seq, id)))?;
        Ok(out)
    }

    /// Records in feed order starting at `from` (1-based), at most `limit`:
    /// (position, id, bytes), read in one forward scan.
    pub fn feed_records(&self, from: u64, limit: usize) -> Result<Vec<(u64, RecordId, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_feed(from, limit, |seq, id, bytes| out.push((seq, id, bytes.to_vec())))?;
        Ok(out)
    }

    /// An author's chain as stored: (seq, record id) in seq order.
    pub fn author_chain(&self, author: &NodeId) -> Result<Vec<(u64, RecordId)>> {
        let mut out = Vec::new();
        let mut bad = false;
        self.scan_prefix(CF_CHAIN, author.as_bytes(), |k, v| {
            match (u64_be(&k[32..]), id_from(v)) {
                (Some(seq), Some(id)) => out.push((seq, id)),
                _ => bad = true,
            }
            !bad
        })?;
        if bad {
            return Err(StoreError::Corrupt { cf: CF_CHAIN, detail: "bad chain entry".into() });
        }
        Ok(out)
    }

    /// The record an author's chain holds at `seq`, if any.
    pub fn chain_entry(&self, author: &NodeId, seq: u64) -> Result<Option<RecordId>> {
        let mut k = author.as_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        Ok(self.get(CF_CHAIN, &k)?.and_then(|v| id_from(&v)))
    }

    /// Ids of certificate and revocation records, in the order stored.
    pub fn trust_records(&self) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_TRUST, &[], |_, v| {
            if let Some(id) = id_from(v) {
                out.push(id);
            }
            true
        })?;
        Ok(out)
    }

    /// How many records wait for their parents, counting at most `cap`.
    pub fn pending_count(&self, cap: usize) -> Result<usize> {
        let mut n = 0;
        self.scan_prefix(CF_PENDING, &[], |_, _| {
            n += 1;
            n < cap
        })?;
        Ok(n)
    }

    /// Records waiting for their parents.
    pub fn pending(&self) -> Result<Vec<(RecordId, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_PENDING, &[], |k, v| {
            if let Some(id) = id_from(k) {
                out.push((id, v.to_vec()));
            }
            true
        })?;
        Ok(out)
    }

    /// Where the feed of `peer` in `direction` was acknowledged up to.
    pub fn cursor(&self, peer: &NodeId, direction: u8) -> Result<Option<([u8; 16], u64)>> {
        let mut k = peer.as_bytes().to_vec();
        k.push(direction);
        Ok(self.get(CF_CURSORS, &k)?.and_then(|v| {
            let epoch: [u8; 16] = v.get(..16)?.try_into().ok()?;
            Some((epoch, u64_be(v.get(16..)?)?))
        }))
    }

    /// Integrity alarms, oldest first.
    pub fn alarms<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.scan_json(CF_ALARMS, |a| {
            out.push(a);
            true
        })?;
        Ok(out)
    }

    pub fn alarm_count(&self) -> Result<u64> {
        Ok(self.last_key(CF_ALARMS)?.and_then(|(k, _)| u64_be(&k)).unwrap_or(0))
    }

    // --- cases ---

    /// Event ids of a case, in the order this node stored them.
    pub fn case_events(&self, case: &RecordId) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_CASE_INDEX, &case.0, |_, v| {
            if let Some(id) = id_from(v) {
                out.push(id);
            }
            true
        })?;
        Ok(out)
    }

    /// A case's events as stored (id, bytes), in the order this node
    /// stored them (read by their feed positions, no id look-ups).
    pub fn case_records(&self, case: &RecordId) -> Result<Vec<(RecordId, Vec<u8>)>> {
        let mut out = Vec::new();
        for (seq, id) in self.case_events_with_seq(case)? {
            match self.record_at(seq)? {
                Some((held, bytes)) if held == id => out.push((id, bytes)),
                _ => return Err(StoreError::Corrupt { cf: CF_CASE_INDEX, detail: format!("event {id} of case {case} is indexed at {seq} but not held there") }),
            }
        }
        Ok(out)
    }

    /// Event ids of a case with their local feed positions.
    pub fn case_events_with_seq(&self, case: &RecordId) -> Result<Vec<(u64, RecordId)>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_CASE_INDEX, &case.0, |k, v| {
            if let (Some(seq), Some(id)) = (u64_be(&k[32..]), id_from(v)) {
                out.push((seq, id));
            }
            true
        })?;
        Ok(out)
    }

    pub fn case_summary(&self, case: &RecordId) -> Result<Option<CaseSummary>> {
        match self.get(CF_CASE_STATE, &case.0)? {
            None => Ok(None),
            Some(v) => CaseSummary::decode(&v).map(Some).map_err(|e| StoreError::Corrupt { cf: CF_CASE_STATE, detail: e.to_string() }),
        }
    }

    /// Cases whose number starts with `prefix`, in number order, after the
    /// number `after`, at most `limit`; with the last number when more follow.
    pub(crate) fn numbers_after(&self, prefix: &str, after: Option<&[u8]>, limit: usize) -> Result<IdPage> {
        let from = after.map(<[u8]>::to_vec).unwrap_or_else(|| prefix.as_bytes().to_vec());
        let to = [prefix.as_bytes(), &[0xFF]].concat();
        let mut out: Vec<(RecordId, Vec<u8>)> = Vec::new();
        let mut more = false;
        self.index_scan(CF_CASE_NUMBERS, &from, &to, |k, v| {
            if after.is_some_and(|a| k <= a) {
                return true;
            }
            if out.len() == limit {
                more = true;
                return false;
            }
            if let Some(id) = id_from(v) {
                out.push((id, k.to_vec()));
            }
            true
        })?;
        let next = if more { out.last().map(|(_, k)| k.clone()) } else { None };
        Ok((out.into_iter().map(|(id, _)| id).collect(), next))
    }

    pub fn case_by_number(&self, number: &str) -> Result<Option<RecordId>> {
        Ok(self.get(CF_CASE_NUMBERS, number.as_bytes())?.and_then(|v| id_from(&v)))
    }

    /// Case ids owned by `owner` with `status`, earliest due first.
    pub fn queue(&self, owner: u64, status: u8, mut f: impl FnMut(RecordId) -> bool) -> Result<()> {
        let mut prefix = owner.to_be_bytes().to_vec();
        prefix.push(status);
        self.scan_prefix(CF_QUEUE, &prefix, |k, _| match id_from(&k[17..]) {
            Some(id) => f(id),
            None => true,
        })
    }

    /// Open urgent cases (the `urgent` index).
    pub fn urgent_open_cases(&self) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_URGENT, &[], |k, _| {
            if let Some(id) = id_from(k) {
                out.push(id);
            }
            true
        })?;
        Ok(out)
    }

    /// Every case summary, in case id order (tests, integrity checks and
    /// exports of everything; no request path or worker).
    pub fn all_summaries(&self, f: impl FnMut(CaseSummary) -> bool) -> Result<()> {
        self.scan_decoded(CF_CASE_STATE, CaseSummary::decode, f)
    }

    /// Calls `f` on every JSON value of `cf` in key order until it returns
    /// false; a value that does not parse is reported as corruption.
    fn scan_json<T: DeserializeOwned>(&self, cf: &'static str, f: impl FnMut(T) -> bool) -> Result<()> {
        self.scan_decoded(cf, |v| serde_json::from_slice(v), f)
    }

    /// Calls `f` on every value of `cf`, decoded, in key order until it
    /// returns false; a value that does not decode is reported as corruption.
    fn scan_decoded<T, E: std::fmt::Display>(&self, cf: &'static str, decode: impl Fn(&[u8]) -> std::result::Result<T, E>, mut f: impl FnMut(T) -> bool) -> Result<()> {
        let mut err = None;
        self.scan_prefix(cf, &[], |_, v| match decode(v) {
            Ok(x) => f(x),
            Err(e) => {
                err = Some(e.to_string());
                false
            }
        })?;
        match err {
            Some(detail) => Err(StoreError::Corrupt { cf, detail }),
            None => Ok(()),
        }
    }

    // --- blobs ---

    pub fn blob(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        self.get(CF_BLOBS, hash)
    }

    /// (filed, case) of the stored cases whose complainant's contact is the
    /// blob `hash`: found in the repeat index under the complainant
    /// (`person`, [`crate::index::person_key`]), then checked one by one
    /// (a fingerprint bucket holds other people too).
    fn cases_with_contact(&self, person: &[u8; 32], hash: &[u8; 32]) -> Result<Vec<(u64, RecordId)>> {
        let mut out = Vec::new();
        for (filed, id, _) in self.cases_of_person(person, None)? {
            if self.case_summary(&id)?.is_some_and(|s| s.contact.is_some_and(|c| c.0 == *hash)) {
                out.push((filed, id));
            }
        }
        Ok(out)
    }

    /// The repeat groups (person ‖ category) holding a case that repeats
    /// an earlier one within the policy's window (`repeat_marks`), each
    /// once, in key order; `f` returns false to stop. A group's marks are
    /// adjacent, so one step back is enough to skip repeats.
    pub fn scan_repeat_groups(&self, mut f: impl FnMut(&[u8]) -> bool) -> Result<()> {
        let g = crate::index::REPEAT_GROUP;
        let mut last: Vec<u8> = Vec::new();
        self.scan_prefix(CF_REPEAT_MARKS, &[], |k, _| {
            let Some(group) = k.get(..g) else { return true };
            if group == last.as_slice() {
                return true;
            }
            last = group.to_vec();
            f(group)
        })
    }

    /// (filed, case, filing unit) of the cases under a repeat-index prefix
    /// (a group, or a person's every group), oldest first per group.
    pub fn cases_of_group(&self, group: &[u8]) -> Result<Vec<(u64, RecordId, DivisionCode)>> {
        let mut out = Vec::new();
        let g = crate::index::REPEAT_GROUP;
        self.scan_prefix(CF_REPEATS, group, |k, v| {
            let unit = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).and_then(|b| DivisionCode::new(u64::from_be_bytes(b)).ok());
            if let (Some(filed), Some(id), Some(unit)) = (crate::index::u64_at(k, g), k.get(g + 8..g + 40).and_then(|b| <[u8; 32]>::try_from(b).ok()), unit) {
                out.push((filed, RecordId(id), unit));
            }
            true
        })?;
        Ok(out)
    }

    /// (filed, case, filing unit) of the cases of a complainant
    /// ([`crate::index::person_key`]), in one category or all, oldest first
    /// per category.
    pub fn cases_of_person(&self, person: &[u8; 32], category: Option<&str>) -> Result<Vec<(u64, RecordId, DivisionCode)>> {
        match category {
            Some(c) => self.cases_of_group(&crate::index::repeat_group(person, c)),
            None => self.cases_of_group(person),
        }
    }

    // --- accounts and sessions ---

    pub fn account<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.get_json(CF_ACCOUNTS, name.as_bytes())
    }

    pub fn accounts<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.scan_json(CF_ACCOUNTS, |a| {
            out.push(a);
            true
        })?;
        Ok(out)
    }

    pub fn session<T: DeserializeOwned>(&self, token_hash: &[u8; 32]) -> Result<Option<T>> {
        self.get_json(CF_SESSIONS, token_hash)
    }

    /// Every stored session with its token hash (expired ones included).
    pub fn sessions<T: DeserializeOwned>(&self) -> Result<Vec<([u8; 32], T)>> {
        let mut out = Vec::new();
        let mut err = None;
        self.scan_prefix(CF_SESSIONS, &[], |k, v| {
            match (<[u8; 32]>::try_from(k), serde_json::from_slice(v)) {
                (Ok(h), Ok(s)) => out.push((h, s)),
                (_, Err(e)) => {
                    err = Some(e.to_string());
                    return false;
                }
                // A key of another length is not a session of this build.
                (Err(_), Ok(_)) => {}
            }
            true
        })?;
        match err {
            Some(detail) => Err(StoreError::Corrupt { cf: CF_SESSIONS, detail }),
            None => Ok(out),
        }
    }

    // --- login audit ---

    /// The newest `limit` entries of `log`, newest first, with each one's
    /// time and sequence (its key).
    pub fn login_audit<T: DeserializeOwned>(&self, log: AuditKind, limit: usize) -> Result<Vec<(u64, u32, T)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut err = None;
        self.scan_prefix(log.cf(), &[], |k, v| {
            match (login_audit_time(k), k.get(8..12).and_then(|s| s.try_into().ok()).map(|s| !u32::from_be_bytes(s)), serde_json::from_slice(v)) {
                (Some(t), Some(seq), Ok(e)) => out.push((t, seq, e)),
                (_, _, Err(e)) => {
                    err = Some(e.to_string());
                    return false;
                }
                // A key of another layout is not an entry of this build.
                _ => {}
            }
            out.len() < limit
        })?;
        match err {
            Some(detail) => Err(StoreError::Corrupt { cf: log.cf(), detail }),
            None => Ok(out),
        }
    }

    /// Deletes every entry of `log` after the newest `keep` and every one
    /// before `cutoff_ms`; returns how many it deleted.
    pub fn prune_login_audit(&self, log: AuditKind, keep: usize, cutoff_ms: u64) -> Result<usize> {
        let mut doomed = Vec::new();
        let mut seen = 0usize;
        self.scan_prefix(log.cf(), &[], |k, _| {
            seen += 1;
            if seen > keep || login_audit_time(k).is_none_or(|t| t < cutoff_ms) {
                doomed.push(k.to_vec());
            }
            true
        })?;
        if !doomed.is_empty() {
            let mut b = self.batch();
            for k in &doomed {
                b.delete_login_audit(log, k);
            }
            self.commit(b)?;
        }
        Ok(doomed.len())
    }

    // --- lock state ---

    /// Every kept lock state of the kind `tag`: (key text, state).
    pub fn locks<T: DeserializeOwned>(&self, tag: u8) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        let mut err = None;
        self.scan_prefix(CF_LOCKS, &[tag], |k, v| {
            match serde_json::from_slice(v) {
                Ok(state) => out.push((String::from_utf8_lossy(&k[1..]).into_owned(), state)),
                Err(e) => {
                    err = Some(e.to_string());
                    return false;
                }
            }
            true
        })?;
        match err {
            Some(detail) => Err(StoreError::Corrupt { cf: CF_LOCKS, detail }),
            None => Ok(out),
        }
    }

    fn get_json<T: DeserializeOwned>(&self, cf: &'static str, key: &[u8]) -> Result<Option<T>> {
        match self.get(cf, key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt { cf, detail: e.to_string() }),
        }
    }

    /// A dump of the derived state (for tests that compare states). The
    /// search postings are listed as what they mean, one (token ‖ 0 ‖
    /// suffix) entry per token and case in order: how they are grouped in
    /// segments follows the write batches, which a rebuild does not repeat.
    pub fn derived_dump(&self) -> Result<Vec<DerivedEntry>> {
        let mut out = Vec::new();
        for cf in DERIVED_CFS {
            if *cf == CF_WORDS {
                let mut postings = std::collections::BTreeSet::new();
                self.scan_prefix(cf, &[], |k, v| {
                    let prefix = &k[..k.len().saturating_sub(44)];
                    for suffix in v.chunks(40) {
                        postings.insert([prefix, suffix].concat());
                    }
                    true
                })?;
                out.extend(postings.into_iter().map(|k| (cf.to_string(), k, Vec::new())));
                continue;
            }
            self.scan_prefix(cf, &[], |k, v| {
                // A counter merged back to zero is the same as none.
                let zero = [CF_STATS, CF_COUNTS].contains(cf) && crate::stats::decode(v).iter().all(|x| *x == 0);
                if !zero {
                    out.push((cf.to_string(), k.to_vec(), v.to_vec()));
                }
                true
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_atomic_and_readable_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = RecordId([7; 32]);
        let author = NodeId([1; 32]);
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = store.batch();
            b.put_record(&id, b"bytes", 1, &author, 1);
            store.commit(b).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.record_bytes(&id).unwrap().as_deref(), Some(&b"bytes"[..]));
        assert_eq!(store.feed_len().unwrap(), 1);
        assert_eq!(store.author_chain(&author).unwrap(), vec![(1, id)]);
        assert_eq!(store.feed_range(1, 10).unwrap(), vec![(1, id)]);
    }

    #[test]
    fn older_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.meta_get(meta::SCHEMA).unwrap().as_deref(), Some(&SCHEMA_VERSION.to_be_bytes()[..]));
            let mut b = store.batch();
            b.put_meta(meta::SCHEMA, &3u32.to_be_bytes());
            store.commit(b).unwrap();
        }
        let e = Store::open(dir.path()).err().unwrap();
        assert!(matches!(e, StoreError::Schema { found: 3 }));
        assert!(e.to_string().contains("start from a new data directory"), "{e}");
    }
}
