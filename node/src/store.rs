//! The node's RocksDB store. The only module that imports `rocksdb`.
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
//!
//! Every acknowledged change is one [`Batch`] written with `sync = true`:
//! records and the derived state they imply land together or not at all.
//! Derived column families can be dropped and rebuilt from the records in
//! feed order (`zongzhi-node reindex`).

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};
use zongzhi_protocol::case::Urgency;
use zongzhi_protocol::{DivisionCode, NodeId, RecordId, Status};

use crate::summary::CaseSummary;

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
pub const SCHEMA_VERSION: u32 = 7;

const CF_RECORDS: &str = "records";
const CF_FEED: &str = "feed";
const CF_CHAIN: &str = "chain";
const CF_CASE_INDEX: &str = "case_index";
const CF_PENDING: &str = "pending";
const CF_CURSORS: &str = "cursors";
const CF_CASE_STATE: &str = "case_state";
const CF_CASE_NUMBERS: &str = "case_numbers";
pub(crate) const CF_QUEUE: &str = "queue";
const CF_STATS: &str = "stats";
const CF_META: &str = "meta";
const CF_ACCOUNTS: &str = "accounts";
const CF_SESSIONS: &str = "sessions";
const CF_BLOBS: &str = "blobs";
const CF_TRUST: &str = "trust";
const CF_ALARMS: &str = "alarms";
/// Signed monthly reports: month (u32 BE) ‖ unit (u64 BE) ‖ author seq (u64 BE) → record id.
const CF_REPORTS: &str = "reports";
/// Case id → (): cases to fold again when a policy version arrives
/// (derived: see `CaseSummary::needs_policy`).
const CF_WAITING: &str = "waiting";
pub(crate) const CF_QUEUE_CAT: &str = "queue_cat";
pub(crate) const CF_COUNTS: &str = "counts";
pub(crate) const CF_CLOCKS: &str = "clocks";
pub(crate) const CF_URGENT: &str = "urgent";
pub(crate) const CF_REPEATS: &str = "repeats";
pub(crate) const CF_REPEAT_MARKS: &str = "repeat_marks";
pub(crate) const CF_REPEAT_DIRTY: &str = "repeat_dirty";
pub(crate) const CF_CONTACTS: &str = "contacts";
pub(crate) const CF_WORDS: &str = "words";

const ALL_CFS: &[&str] = &[
    CF_RECORDS, CF_FEED, CF_CHAIN, CF_CASE_INDEX, CF_PENDING, CF_CURSORS, CF_CASE_STATE, CF_CASE_NUMBERS,
    CF_QUEUE, CF_STATS, CF_META, CF_ACCOUNTS, CF_SESSIONS, CF_BLOBS, CF_TRUST, CF_ALARMS, CF_REPORTS, CF_WAITING,
    CF_QUEUE_CAT, CF_COUNTS, CF_CLOCKS, CF_URGENT, CF_REPEATS, CF_REPEAT_MARKS, CF_REPEAT_DIRTY, CF_CONTACTS, CF_WORDS,
];

/// Column families rebuilt by `reindex`.
const DERIVED_CFS: &[&str] = &[
    CF_CASE_INDEX, CF_CASE_STATE, CF_CASE_NUMBERS, CF_QUEUE, CF_STATS, CF_TRUST, CF_REPORTS, CF_WAITING, CF_QUEUE_CAT, CF_COUNTS, CF_CLOCKS,
    CF_URGENT, CF_REPEATS, CF_REPEAT_MARKS, CF_REPEAT_DIRTY, CF_CONTACTS, CF_WORDS,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("stored value under {cf} is corrupt: {detail}")]
    Corrupt { cf: &'static str, detail: String },
    #[error("data directory was written by schema {found}, this build reads {SCHEMA_VERSION} (schemas before 4 hold records of format 1, which this build does not read: start from a new data directory)")]
    Schema { found: u32 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A range of an index: key prefix, lower and upper bound of the rest.
pub(crate) type IndexRange = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Case ids and, when more follow, the key to continue after.
pub(crate) type IdPage = (Vec<RecordId>, Option<Vec<u8>>);

/// A raw key/value pair.
type Entry = (Box<[u8]>, Box<[u8]>);

/// One derived entry: column family, key, value.
pub type DerivedEntry = (String, Vec<u8>, Vec<u8>);

/// Well-known keys in `meta`.
pub mod meta {
    /// This node's public key (32 bytes).
    pub const NODE_ID: &str = "node_id";
    pub const SCHEMA: &str = "schema_version";
    /// Random id of this store's feed; changes if the feed is ever reset.
    pub const FEED_EPOCH: &str = "feed_epoch";
    /// Last local feed sequence number (u64 BE).
    pub const FEED_SEQ: &str = "feed_seq";
    /// This node's own author chain head: seq (u64 BE) ‖ record id.
    pub const OWN_HEAD: &str = "own_head";
    /// Last hybrid-clock timestamp issued: wall (u64 BE) ‖ counter (u32 BE).
    pub const HLC: &str = "hlc";
    /// Case number serial per year: prefix + year.
    pub const SERIAL_PREFIX: &str = "case_serial/";
    /// Automatic supervision issued: prefix + case/clock/started/grade → notice id.
    pub const SUPERVISED_PREFIX: &str = "supervised/";
    /// This node's secret for the keyed hashes of the contact index (32 bytes).
    pub const SEARCH_KEY: &str = "search_key";
    /// The repeat window (days, u32 BE) the repeat marks were settled with.
    pub const REPEAT_WINDOW: &str = "repeat_window_days";
}

pub struct Store {
    db: DB,
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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish()
    }
}

fn u64_be(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn id_from(bytes: &[u8]) -> Option<RecordId> {
    Some(RecordId(bytes.get(..32)?.try_into().ok()?))
}

/// A `feed` entry's value: the record's id, then its bytes.
fn feed_value(id: &RecordId, bytes: &[u8]) -> Vec<u8> {
    [id.0.as_slice(), bytes].concat()
}

fn split_feed_value(v: &[u8]) -> Option<(RecordId, &[u8])> {
    Some((id_from(v)?, v.get(32..)?))
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

    /// Opens the store; a new one takes its search key from `fresh_key`
    /// (the node's random source, so a seeded simulation replays).
    pub fn open_with(path: &Path, fresh_key: impl FnOnce() -> [u8; 32]) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
        opts.set_keep_log_file_num(4);
        // Memory with many column families: memtables of all of them
        // together stay under one budget (RocksDB flushes the largest when
        // it is reached), and a family written rarely does not keep old WAL
        // files alive.
        opts.set_db_write_buffer_size(192 << 20);
        opts.set_max_total_wal_size(256 << 20);
        // Most look-ups on the receive path are for records not yet held:
        // bloom filters answer those without reading data blocks.
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(64 * 1024 * 1024));
        table.set_cache_index_and_filter_blocks(true);
        opts.set_block_based_table_factory(&table);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = opts.clone();
            // The same for keys still in the memtable, where a miss otherwise
            // walks the skip list: only where look-ups miss often (a record
            // or blob not held yet, a chain position not taken), since every
            // insert pays for the filter.
            if [CF_RECORDS, CF_CHAIN, CF_BLOBS].contains(name) {
                o.set_memtable_whole_key_filtering(true);
                o.set_memtable_prefix_bloom_ratio(0.05);
            }
            if *name == CF_STATS || *name == CF_COUNTS {
                o.set_merge_operator_associative("zongzhi-stats-add", |_key: &[u8], existing: Option<&[u8]>, ops: &rocksdb::MergeOperands| {
                    crate::stats::merge(existing, ops)
                });
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            batch_hint: std::sync::atomic::AtomicUsize::new(0),
            needs_reindex: std::sync::atomic::AtomicBool::new(false),
            repeat_window_days: std::sync::atomic::AtomicU32::new(180),
            repeat_lock: std::sync::Mutex::new(()),
            search_key: [0; 32],
        };
        match store.meta_get(meta::SCHEMA)? {
            None => {
                let mut b = store.batch();
                b.put_meta(meta::SCHEMA, &SCHEMA_VERSION.to_be_bytes());
                store.commit(b)?;
            }
            Some(v) => {
                let found = v.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).unwrap_or(0);
                match found {
                    SCHEMA_VERSION => {}
                    // Same records, fewer indexes (4), statistics without
                    // the unit totals (5) or overruled steps (6): rebuilt
                    // before use.
                    4..=6 => store.needs_reindex.store(true, std::sync::atomic::Ordering::Relaxed),
                    _ => return Err(StoreError::Schema { found }),
                }
            }
        }
        let search_key = match store.meta_get(meta::SEARCH_KEY)? {
            Some(k) if k.len() == 32 => k.as_slice().try_into().unwrap_or([0; 32]),
            _ => {
                let k = fresh_key();
                let mut b = store.batch();
                b.put_meta(meta::SEARCH_KEY, &k);
                store.commit(b)?;
                k
            }
        };
        Ok(Store { search_key, ..store })
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            // Every name in ALL_CFS is opened in `open`.
            None => panic!("column family {name} not opened"),
        }
    }

    pub fn batch(&self) -> Batch<'_> {
        // Capped: one unusually large batch (a reindex) does not make every
        // later one reserve as much.
        let hint = self.batch_hint.load(std::sync::atomic::Ordering::Relaxed).min(64 << 20);
        Batch {
            store: self,
            inner: WriteBatch::default(),
            ops: Vec::with_capacity(hint / 256),
            buf: Vec::with_capacity(hint),
            stats: std::collections::HashMap::new(),
            counts: std::collections::HashMap::new(),
            blobs: std::collections::HashMap::new(),
            repeat_groups: std::collections::BTreeMap::new(),
        }
    }

    /// Writes a batch atomically and durably (fsync of the WAL), then
    /// settles the repeat marks of the complainant groups it changed.
    pub fn commit(&self, mut batch: Batch<'_>) -> Result<()> {
        batch.seal();
        let groups = std::mem::take(&mut batch.repeat_groups);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch.inner, &wo)?;
        // The batch is durable whatever happens next: a failure here leaves
        // the groups marked in `repeat_dirty` for start-up to settle.
        if !groups.is_empty()
            && let Err(e) = self.settle_repeats(groups.into_iter().map(|(g, t)| (g, Some(t))).collect())
        {
            tracing::error!("settling repeat marks failed (retried at start-up): {e}");
        }
        Ok(())
    }

    /// Was opened over the previous schema's directory: the caller rebuilds
    /// the derived data (`ledger::reindex`) and then calls [`Store::reindexed`].
    pub fn needs_reindex(&self) -> bool {
        self.needs_reindex.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the derived data follows this schema.
    pub fn reindexed(&self) -> Result<()> {
        let mut b = self.batch();
        b.put_meta(meta::SCHEMA, &SCHEMA_VERSION.to_be_bytes());
        self.commit(b)?;
        self.needs_reindex.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
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

    /// Recomputes the repeat marks of complainant groups from the committed
    /// `repeats` index: a case repeats when the same complainant filed in
    /// the same category within the window before it. A group with filing
    /// times is settled only around them (a filing at `t` decides the marks
    /// of the filings at `t` and at the next later time, nothing else);
    /// without, the whole group. The statistics' repeat counters change by
    /// the marks added and removed.
    fn settle_repeats(&self, groups: Vec<(Vec<u8>, Option<std::collections::BTreeSet<u64>>)>) -> Result<()> {
        let _guard = self.repeat_lock.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.repeat_window_ms();
        let mut b = self.batch();
        for (g, times) in &groups {
            // Keys already decided in this pass: spans of nearby times
            // overlap, and each mark may move the counters once.
            let mut decided = std::collections::HashSet::new();
            match times {
                None => self.settle_span(&mut b, g, None, window, &mut decided)?,
                Some(ts) => {
                    for t in ts {
                        self.settle_span(&mut b, g, Some(*t), window, &mut decided)?;
                    }
                }
            }
            b.delete(CF_REPEAT_DIRTY, g);
        }
        b.seal();
        // Derived and recomputable: a crash before the next synced write
        // loses this batch and the dirty markers it deletes together.
        self.db.write(std::mem::take(&mut b.inner))?;
        Ok(())
    }

    /// Settles the marks of group `g` from filing time `from` (the whole
    /// group when `None`) through the next later filing time.
    fn settle_span(
        &self,
        b: &mut Batch<'_>,
        g: &[u8],
        from: Option<u64>,
        window: u64,
        decided: &mut std::collections::HashSet<Vec<u8>>,
    ) -> Result<()> {
        let at = crate::index::REPEAT_GROUP;
        let start = match from {
            Some(t) => [g, t.to_be_bytes().as_slice()].concat(),
            None => g.to_vec(),
        };
        // The latest filing strictly before the span.
        let mut current: Option<u64> = None;
        if from.is_some() {
            let mut rev = self.db.iterator_cf(self.cf(CF_REPEATS), IteratorMode::From(&start, Direction::Reverse));
            if let Some(item) = rev.next() {
                let (k, _) = item?;
                if k.starts_with(g) {
                    current = crate::index::u64_at(&k, at);
                }
            }
        }
        // Entries of the span: all at `from`, then all at the next later time.
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut next: Option<u64> = None;
        self.scan_from(CF_REPEATS, &start, g, |k, v| {
            if !k.starts_with(g) {
                return false;
            }
            if let Some(t0) = from {
                let t = crate::index::u64_at(k, at).unwrap_or(0);
                if t > t0 && next.is_none() {
                    next = Some(t);
                }
                if next.is_some_and(|n| t > n) {
                    return false;
                }
            }
            entries.push((k.to_vec(), v.to_vec()));
            true
        })?;
        let end = match (from, next) {
            (Some(_), Some(n)) => Some([g, n.saturating_add(1).to_be_bytes().as_slice()].concat()),
            _ => None,
        };
        let mut marked: std::collections::HashMap<Vec<u8>, Vec<u8>> = std::collections::HashMap::new();
        self.scan_from(CF_REPEAT_MARKS, &start, g, |k, v| {
            if !k.starts_with(g) || end.as_ref().is_some_and(|e| k >= e.as_slice()) {
                return false;
            }
            marked.insert(k.to_vec(), v.to_vec());
            true
        })?;
        // Sorted by filing time: a case repeats when the latest filing
        // strictly before it lies within the window.
        let mut before: Option<u64> = None;
        for (k, v) in &entries {
            let t = crate::index::u64_at(k, at).unwrap_or(0);
            if current.is_none_or(|c| t > c) {
                before = current;
                current = Some(t);
            }
            let repeats = before.is_some_and(|p| t - p <= window);
            let was = marked.remove(k).is_some();
            if decided.insert(k.clone()) && repeats != was {
                b.repeat_mark(k, v, repeats);
            }
        }
        // Marks of cases no longer in the group (voided).
        for (k, v) in marked {
            if decided.insert(k.clone()) {
                b.repeat_mark(&k, &v, false);
            }
        }
        Ok(())
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Calls `f` on every key/value whose key starts with `prefix`, in key
    /// order, until `f` returns false.
    fn scan_prefix(&self, cf: &'static str, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        self.scan_from(cf, prefix, prefix, f)
    }

    /// Like [`Store::scan_prefix`] from key `from` on (which starts with
    /// `prefix`): a span of a group, not just the keys that extend `from`.
    fn scan_from(&self, cf: &'static str, from: &[u8], prefix: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let iter = self.db.iterator_cf(self.cf(cf), IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
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

    /// A derived index's value under `key` ([`crate::index`]).
    pub(crate) fn index_get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(cf, key)
    }

    /// Calls `f` on the entries of an index with keys in `[from, to)`, in
    /// key order, until it returns false.
    pub(crate) fn index_scan(&self, cf: &'static str, from: &[u8], to: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !f(k, v) {
                return Ok(());
            }
            it.next();
        }
        Ok(it.status()?)
    }

    /// Case counts of list streams ([`crate::index`], `counts`), read from
    /// one snapshot so that a case moving between streams meanwhile is
    /// counted once.
    pub(crate) fn index_counts(&self, keys: &[Vec<u8>]) -> Result<Vec<i64>> {
        let snap = self.db.snapshot();
        let cf = self.cf(CF_COUNTS);
        keys.iter().map(|k| Ok(snap.get_cf(cf, k)?.map(|v| crate::stats::decode(&v)[0]).unwrap_or(0))).collect()
    }

    /// Merges several key ranges of one index into one scan ordered by the
    /// part of each key after its range's prefix: `ranges` holds (prefix,
    /// lower bound of the rest, upper bound of the rest, exclusive).
    /// Calls `f(range, rest of key, value)` in that order until it returns
    /// false. Costs one seek per range plus one step per entry visited.
    pub(crate) fn index_merge(&self, cf: &'static str, ranges: &[IndexRange], mut f: impl FnMut(usize, &[u8], &[u8]) -> bool) -> Result<()> {
        use std::cmp::Reverse;
        // One snapshot for every range: a case that moves from one stream
        // to another during the scan is seen in exactly one of them.
        let snap = self.db.snapshot();
        let mut iters = Vec::with_capacity(ranges.len());
        let mut heap = std::collections::BinaryHeap::with_capacity(ranges.len());
        for (i, (prefix, lo, hi)) in ranges.iter().enumerate() {
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_iterate_upper_bound([prefix.as_slice(), hi].concat());
            let mut it = snap.raw_iterator_cf_opt(self.cf(cf), ro);
            it.seek([prefix.as_slice(), lo].concat());
            if let Some(k) = it.key() {
                heap.push(Reverse((k[prefix.len()..].to_vec(), i)));
            }
            it.status()?;
            iters.push(it);
        }
        while let Some(Reverse((rest, i))) = heap.pop() {
            let it = &mut iters[i];
            if !f(i, &rest, it.value().unwrap_or_default()) {
                return Ok(());
            }
            it.next();
            if let Some(k) = it.key() {
                heap.push(Reverse((k[ranges[i].0.len()..].to_vec(), i)));
            }
            it.status()?;
        }
        Ok(())
    }

    /// Compacts the statistics column family (benchmarks).
    pub fn compact_stats(&self) {
        self.db.compact_range_cf(self.cf(CF_STATS), None::<&[u8]>, None::<&[u8]>);
    }

    /// Statistics entries with keys in `[from, to)`.
    pub fn scan_stats(&self, from: &[u8], to: &[u8], f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.scan_range(CF_STATS, from, to, f)
    }

    /// Calls `f` on every entry of `cf` with a key in `[from, to)`.
    fn scan_range(&self, cf: &'static str, from: &[u8], to: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let iter = self.db.iterator_cf_opt(self.cf(cf), ro, IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(())
    }

    fn last_key(&self, cf: &'static str) -> Result<Option<Entry>> {
        let mut iter = self.db.iterator_cf(self.cf(cf), IteratorMode::End);
        Ok(iter.next().transpose()?)
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

    pub fn has_record(&self, id: &RecordId) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(CF_RECORDS), id.0)?.is_some())
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

    fn scan_feed(&self, from: u64, limit: usize, mut f: impl FnMut(u64, RecordId, &[u8])) -> Result<()> {
        let iter = self.db.iterator_cf(self.cf(CF_FEED), IteratorMode::From(&from.to_be_bytes(), Direction::Forward));
        for (n, item) in iter.enumerate() {
            if n >= limit {
                break;
            }
            let (k, v) = item?;
            let (Some(seq), Some((id, bytes))) = (u64_be(&k), split_feed_value(&v)) else {
                return Err(StoreError::Corrupt { cf: CF_FEED, detail: "bad feed entry".into() });
            };
            f(seq, id, bytes);
        }
        Ok(())
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

    /// The last (seq, record) of an author's chain held here.
    pub fn chain_last(&self, author: &NodeId) -> Result<Option<(u64, RecordId)>> {
        let mut from = author.as_bytes().to_vec();
        from.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut iter = self.db.iterator_cf(self.cf(CF_CHAIN), IteratorMode::From(&from, Direction::Reverse));
        match iter.next().transpose()? {
            Some((k, v)) if k.starts_with(author.as_bytes()) => Ok(u64_be(&k[32..]).zip(id_from(&v))),
            _ => Ok(None),
        }
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

    /// The cases the waiting index names.
    pub fn waiting_cases(&self) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_WAITING), IteratorMode::Start) {
            let (k, _) = item?;
            let id: [u8; 32] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt { cf: CF_WAITING, detail: format!("key of {} bytes", k.len()) })?;
            out.push(RecordId(id));
        }
        Ok(out)
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
    fn scan_decoded<T, E: std::fmt::Display>(
        &self,
        cf: &'static str,
        decode: impl Fn(&[u8]) -> std::result::Result<T, E>,
        mut f: impl FnMut(T) -> bool,
    ) -> Result<()> {
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

    pub fn has_blob(&self, hash: &[u8; 32]) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(CF_BLOBS), hash)?.is_some())
    }

    /// (filed, case) of the stored cases whose complainant's contact is the
    /// blob `hash` (from the repeat index, keyed by the contact's hash).
    fn cases_with_contact(&self, hash: &[u8; 32]) -> Result<Vec<(u64, RecordId)>> {
        let mut out = Vec::new();
        let g = crate::index::REPEAT_GROUP;
        self.scan_prefix(CF_REPEATS, hash, |k, _| {
            if let (Some(filed), Some(id)) = (crate::index::u64_at(k, g), k.get(g + 8..g + 40).and_then(|b| <[u8; 32]>::try_from(b).ok())) {
                out.push((filed, RecordId(id)));
            }
            true
        })?;
        Ok(out)
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

    fn get_json<T: DeserializeOwned>(&self, cf: &'static str, key: &[u8]) -> Result<Option<T>> {
        match self.get(cf, key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { cf, detail: e.to_string() }),
        }
    }

    /// Deletes every derived column family's contents (before a rebuild).
    pub fn clear_derived(&self) -> Result<()> {
        let mut b = self.batch();
        for cf in DERIVED_CFS {
            b.inner.delete_range_cf(self.cf(cf), [0u8].as_slice(), [0xFFu8; 80].as_slice());
        }
        self.commit(b)
    }

    /// A dump of the derived state (for tests that compare states).
    pub fn derived_dump(&self) -> Result<Vec<DerivedEntry>> {
        let mut out = Vec::new();
        for cf in DERIVED_CFS {
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

    /// Overwrites a stored record's bytes without any check. Exists to test
    /// tamper detection; nothing in the node calls it.
    #[doc(hidden)]
    pub fn overwrite_record_unchecked(&self, id: &RecordId, bytes: &[u8]) -> Result<()> {
        let seq = self.record_seq(id)?.ok_or_else(|| StoreError::Corrupt { cf: CF_RECORDS, detail: format!("record {id} not held") })?;
        let mut b = self.batch();
        b.inner.put_cf(self.cf(CF_FEED), seq.to_be_bytes(), feed_value(id, bytes));
        self.commit(b)
    }
}

/// A put (with its value's place in the batch's buffer) or a delete.
#[derive(Debug)]
struct Op {
    cf: &'static str,
    key: (usize, usize),
    value: Option<(usize, usize)>,
}

/// One atomic change. Typed: callers never see keys.
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
    /// Puts and deletes in the order made, their keys and values in `buf`;
    /// written sorted by column family and key at commit (see
    /// [`Batch::seal`]).
    ops: Vec<Op>,
    buf: Vec<u8>,
    /// Statistics deltas, summed per key until the batch is written.
    stats: std::collections::HashMap<Vec<u8>, zongzhi_protocol::kpi::Counts>,
    /// Case count deltas of the list streams, summed per key.
    counts: std::collections::HashMap<Vec<u8>, zongzhi_protocol::kpi::Counts>,
    /// Blobs put in this batch: hash → place of the bytes in `buf`.
    blobs: std::collections::HashMap<[u8; 32], (usize, usize)>,
    /// Complainant groups whose repeat marks to settle after the write.
    repeat_groups: std::collections::BTreeMap<Vec<u8>, std::collections::BTreeSet<u64>>,
}

impl Batch<'_> {
    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.push(cf, key, Some(value));
    }

    fn delete(&mut self, cf: &'static str, key: &[u8]) {
        self.push(cf, key, None);
    }

    fn push(&mut self, cf: &'static str, key: &[u8], value: Option<&[u8]>) {
        let key_at = self.buf.len();
        self.buf.extend_from_slice(key);
        let value = value.map(|v| {
            let at = self.buf.len();
            self.buf.extend_from_slice(v);
            (at, v.len())
        });
        self.ops.push(Op { cf, key: (key_at, key.len()), value });
    }

    /// Moves the puts and deletes into the write batch, per column family
    /// sorted by key (a family whose keys came in order, like feed
    /// positions, is not sorted again), keeping only the last operation on
    /// each key (the state a sequential application would leave); then one
    /// merge per statistics key. RocksDB inserts a batch's entries into
    /// each memtable's skip list in batch order and starts each search from
    /// the previous insert's position, so ascending keys cost far fewer
    /// comparisons (and cache misses) than the random order of record ids,
    /// case ids and queue keys. [`Store::commit`] seals a batch not sealed
    /// before (the writer seals on its own thread, so the commit thread
    /// only writes).
    pub fn seal(&mut self) {
        if self.ops.is_empty() && self.stats.is_empty() && self.counts.is_empty() {
            return;
        }
        self.store.batch_hint.store(self.buf.len(), std::sync::atomic::Ordering::Relaxed);
        let ops = std::mem::take(&mut self.ops);
        let buf = std::mem::take(&mut self.buf);
        self.blobs.clear();
        let key = |at: usize| {
            let (k, n) = ops[at].key;
            &buf[k..k + n]
        };
        // Grouped by column family (a batch uses a few), in the order made.
        let mut groups: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match groups.iter_mut().find(|(cf, _)| *cf == op.cf) {
                Some((_, v)) => v.push(i),
                None => groups.push((op.cf, vec![i])),
            }
        }
        groups.sort_unstable_by_key(|(cf, _)| *cf);
        if self.inner.is_empty() {
            // Room for every entry (key, value and a few bytes of framing
            // each), so the batch is not copied as it grows.
            self.inner = WriteBatch::with_capacity_bytes(buf.len() + 16 * ops.len() + 64);
        }
        for (cf, mut order) in groups {
            if !order.windows(2).all(|w| key(w[0]) <= key(w[1])) {
                // Stable: of equal keys the newest stays last.
                order.sort_by(|&a, &b| key(a).cmp(key(b)));
            }
            let h = self.store.cf(cf);
            for (i, &at) in order.iter().enumerate() {
                if order.get(i + 1).is_some_and(|&next| key(next) == key(at)) {
                    continue;
                }
                match ops[at].value {
                    Some((v, n)) => self.inner.put_cf(h, key(at), &buf[v..v + n]),
                    None => self.inner.delete_cf(h, key(at)),
                }
            }
        }
        // Statistics changes of the whole batch, one merge per key: many
        // events of a batch touch the same (month, unit, category) counters.
        for (cf, map) in [(CF_STATS, std::mem::take(&mut self.stats)), (CF_COUNTS, std::mem::take(&mut self.counts))] {
            for (k, d) in map {
                if d.iter().any(|x| *x != 0) {
                    self.inner.merge_cf(self.store.cf(cf), &k, crate::stats::encode(&d));
                }
            }
        }
    }

    pub fn put_meta(&mut self, key: &str, value: &[u8]) {
        self.put(CF_META, key.as_bytes(), value);
    }

    /// Stores a record: its bytes, its feed position and its chain entry.
    /// The feed head in `meta` is the caller's to write, once per batch.
    pub fn put_record(&mut self, id: &RecordId, bytes: &[u8], feed_seq: u64, author: &NodeId, author_seq: u64) {
        self.put(CF_RECORDS, &id.0, &feed_seq.to_be_bytes());
        self.put(CF_FEED, &feed_seq.to_be_bytes(), &feed_value(id, bytes));
        let mut ck = author.as_bytes().to_vec();
        ck.extend_from_slice(&author_seq.to_be_bytes());
        self.put(CF_CHAIN, &ck, &id.0);
    }

    pub fn index_case_event(&mut self, case: &RecordId, feed_seq: u64, event: &RecordId) {
        let mut k = case.0.to_vec();
        k.extend_from_slice(&feed_seq.to_be_bytes());
        self.put(CF_CASE_INDEX, &k, &event.0);
    }

    /// Replaces a case's summary and moves its queue entry.
    pub fn put_summary(&mut self, old: Option<&CaseSummary>, new: &CaseSummary) {
        self.put_indexes(old, new);
        self.put(CF_CASE_STATE, &new.id.0, &new.encode());
        if new.needs_policy() {
            self.put(CF_WAITING, &new.id.0, &[]);
        } else if old.is_some_and(CaseSummary::needs_policy) {
            self.delete(CF_WAITING, &new.id.0);
        }
        // The statistics change by what the case now contributes minus what
        // it contributed before, in this same batch.
        let old_facts = old.map(|o| o.facts()).unwrap_or_default();
        let new_facts = new.facts();
        if old_facts != new_facts {
            for (k, d) in crate::stats::deltas(&new.category, new.channel, &old_facts, &new_facts) {
                let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
                for (a, b) in acc.iter_mut().zip(d) {
                    *a += b;
                }
            }
        }
        // A case's number is fixed at filing.
        if old.is_none_or(|o| o.number != new.number) {
            self.put(CF_CASE_NUMBERS, new.number.as_bytes(), &new.id.0);
        }
        // A filing voided by a revocation learned later leaves the
        // complainant's phone and ID number (void cases are not filed
        // there, as they are not in the repeat index).
        if new.status == Status::Void
            && let Some(o) = old.filter(|o| o.status != Status::Void)
            && let Some(hash) = o.contact
            && let Some(bytes) = self.blob(&hash.0, true)
        {
            for key in self.contact_keys(&bytes) {
                self.delete(CF_CONTACTS, &[key.as_slice(), &crate::index::search_suffix(o.filed_ms, &o.id)].concat());
            }
        }
    }

    /// Moves a case's entries in the list, clock and repeat indexes.
    fn put_indexes(&mut self, old: Option<&CaseSummary>, new: &CaseSummary) {
        use crate::index;
        let queue_keys = |s: &CaseSummary| {
            let pos = index::position(s);
            let c8 = index::cat8(&s.category);
            [index::EVERY, s.owner.as_u64()].map(|o| {
                ([index::queue_prefix(o, s.status, s.urgency), pos.clone()].concat(), [index::queue_cat_prefix(o, &c8, s.status, s.urgency), pos.clone()].concat())
            })
        };
        let new_keys = queue_keys(new);
        let entry = index::Entry::of(new).encode();
        if let Some(old) = old {
            let old_keys = queue_keys(old);
            for ((q, c), (nq, nc)) in old_keys.iter().zip(&new_keys) {
                if q != nq {
                    self.delete(CF_QUEUE, q);
                }
                if c != nc {
                    self.delete(CF_QUEUE_CAT, c);
                }
            }
            if (old.owner, old.status, old.urgency, &old.category) != (new.owner, new.status, new.urgency, &new.category) {
                self.count(old, -1);
                self.count(new, 1);
            }
            for e in index::clock_entries(old) {
                self.delete(CF_CLOCKS, &e.key());
            }
        } else {
            self.count(new, 1);
        }
        for (q, c) in &new_keys {
            self.put(CF_QUEUE, q, &entry);
            self.put(CF_QUEUE_CAT, c, &entry);
        }
        for e in index::clock_entries(new) {
            self.put(CF_CLOCKS, &e.key(), &e.value());
        }
        let urgent_open = |s: &CaseSummary| s.urgency == Urgency::Urgent && s.status.is_open();
        if urgent_open(new) {
            self.put(CF_URGENT, &new.id.0, &[]);
        } else if old.is_some_and(urgent_open) {
            self.delete(CF_URGENT, &new.id.0);
        }
        let (old_r, new_r) = (old.and_then(index::repeat_key), index::repeat_key(new));
        if old_r != new_r {
            if let Some(k) = &old_r {
                self.delete(CF_REPEATS, k);
                self.mark_dirty(k);
            }
            if let Some(k) = &new_r {
                self.put(CF_REPEATS, k, &index::repeat_value(new));
                self.mark_dirty(k);
            }
        }
    }

    /// Marks the group of repeat key `key` for settling around its filing time.
    fn mark_dirty(&mut self, key: &[u8]) {
        let g = &key[..crate::index::REPEAT_GROUP];
        self.put(CF_REPEAT_DIRTY, g, &[]);
        let t = crate::index::u64_at(key, crate::index::REPEAT_GROUP).unwrap_or(0);
        self.repeat_groups.entry(g.to_vec()).or_default().insert(t);
    }

    /// Adds `n` to the case counts of the streams a case is listed in.
    fn count(&mut self, s: &CaseSummary, n: i64) {
        let c8 = crate::index::cat8(&s.category);
        for o in [crate::index::EVERY, s.owner.as_u64()] {
            let mut c = [0i64; zongzhi_protocol::kpi::COUNTERS];
            c[0] = n;
            let q = [b"q".as_slice(), &crate::index::queue_prefix(o, s.status, s.urgency)].concat();
            let k = [b"c".as_slice(), &crate::index::queue_cat_prefix(o, &c8, s.status, s.urgency)].concat();
            for key in [q, k] {
                let acc = self.counts.entry(key).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
                acc[0] += c[0];
            }
        }
    }

    /// Sets or clears a repeat mark and moves the repeat counters: the
    /// filing month, the filing unit (its own key and its subtrees'), the
    /// channel and the category, as the statistics key them.
    fn repeat_mark(&mut self, key: &[u8], value: &[u8], on: bool) {
        if on {
            self.put(CF_REPEAT_MARKS, key, value);
        } else {
            self.delete(CF_REPEAT_MARKS, key);
        }
        let g = crate::index::REPEAT_GROUP;
        let (Some(filed), Some(unit), Some(&channel)) = (crate::index::u64_at(key, g), crate::index::u64_at(value, 0), value.get(8)) else { return };
        let (Some(month), Ok(unit)) = (zongzhi_protocol::kpi::month_of(filed), DivisionCode::new(unit)) else { return };
        let category = crate::index::cat_of(&key[32..40]);
        let mut d = [0i64; zongzhi_protocol::kpi::COUNTERS];
        d[0] = if on { 1 } else { -1 };
        let mut add = |tag: u8, u: DivisionCode| {
            let k = crate::stats::key(month, crate::stats::REPEAT_TAGS + tag, u.as_u64(), channel, &category);
            let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
            acc[0] += d[0];
            let k = crate::stats::key(month, crate::stats::TOTAL_TAGS + crate::stats::REPEAT_TAGS + tag, u.as_u64(), 0, "");
            let acc = self.stats.entry(k).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
            acc[0] += d[0];
        };
        add(crate::stats::OWN, unit);
        for a in unit.lineage() {
            add(crate::stats::subtree_tag(a.level()), a);
        }
    }

    /// Adds `counts` to a statistics key (merge operator).
    pub fn merge_stats(&mut self, key: &[u8], counts: &zongzhi_protocol::kpi::Counts) {
        self.inner.merge_cf(self.store.cf(CF_STATS), key, crate::stats::encode(counts));
    }

    pub fn len(&self) -> usize {
        self.inner.len() + self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty() && self.ops.is_empty()
    }

    pub fn index_report(&mut self, month: u32, unit: u64, author_seq: u64, id: &RecordId) {
        let mut k = month.to_be_bytes().to_vec();
        k.extend_from_slice(&unit.to_be_bytes());
        k.extend_from_slice(&author_seq.to_be_bytes());
        self.put(CF_REPORTS, &k, &id.0);
    }

    pub fn index_trust(&mut self, feed_seq: u64, id: &RecordId) {
        self.put(CF_TRUST, &feed_seq.to_be_bytes(), &id.0);
    }

    pub fn put_pending(&mut self, id: &RecordId, bytes: &[u8]) {
        self.put(CF_PENDING, &id.0, bytes);
    }

    pub fn delete_pending(&mut self, id: &RecordId) {
        self.delete(CF_PENDING, &id.0);
    }

    pub fn put_cursor(&mut self, peer: &NodeId, direction: u8, epoch: &[u8; 16], upto: u64) {
        let mut k = peer.as_bytes().to_vec();
        k.push(direction);
        let mut v = epoch.to_vec();
        v.extend_from_slice(&upto.to_be_bytes());
        self.put(CF_CURSORS, &k, &v);
    }

    pub fn put_alarm<T: Serialize>(&mut self, seq: u64, alarm: &T) {
        let json = serde_json::to_vec(alarm).unwrap_or_default();
        self.put(CF_ALARMS, &seq.to_be_bytes(), &json);
    }

    pub fn put_blob(&mut self, hash: &[u8; 32], bytes: &[u8]) {
        self.put(CF_BLOBS, hash, bytes);
        if let Some(op) = self.ops.last()
            && let Some(v) = op.value
        {
            self.blobs.insert(*hash, v);
        }
    }

    /// Whether a blob is put in this batch or held in the store already.
    pub fn holds_blob(&self, hash: &[u8; 32]) -> Result<bool> {
        Ok(self.blobs.contains_key(hash) || self.store.has_blob(hash)?)
    }

    /// A blob put in this batch or held in the store.
    fn blob(&self, hash: &[u8; 32], stored: bool) -> Option<Vec<u8>> {
        if let Some((at, n)) = self.blobs.get(hash) {
            return Some(self.buf[*at..*at + *n].to_vec());
        }
        if stored { self.store.blob(hash).ok().flatten() } else { None }
    }

    /// Files a new case under the words of its title and content.
    pub fn index_words(&mut self, case: &RecordId, filed_ms: u64, text: &str) {
        let suffix = crate::index::search_suffix(filed_ms, case);
        for t in crate::index::tokens(text) {
            self.put(CF_WORDS, &crate::index::word_key(&t, &suffix), &[]);
        }
    }

    /// Files a case under the keyed hashes of its complainant's phone and ID
    /// number, when the contact is in this batch or (`stored`) held already.
    pub fn index_contact(&mut self, s: &CaseSummary, stored: bool) {
        if s.status == Status::Void {
            return;
        }
        let Some(hash) = s.contact else { return };
        let Some(bytes) = self.blob(&hash.0, stored) else { return };
        if zongzhi_protocol::BlobHash::of(&bytes) != hash {
            return;
        }
        self.index_contact_of(&bytes, &[(s.filed_ms, s.id)]);
    }

    /// A contact blob that arrives after its cases (a later batch than
    /// their events): files the stored cases naming it under its phone and
    /// ID number. Cases changed in this batch file themselves.
    pub fn index_late_contact(&mut self, hash: &[u8; 32], bytes: &[u8]) -> Result<()> {
        let cases = self.store.cases_with_contact(hash)?;
        if !cases.is_empty() {
            self.index_contact_of(bytes, &cases);
        }
        Ok(())
    }

    /// The keyed hashes a contact is filed under (phone, ID number).
    fn contact_keys(&self, bytes: &[u8]) -> Vec<[u8; 16]> {
        let Ok(c) = zongzhi_protocol::case::Contact::from_bytes(bytes) else { return Vec::new() };
        [crate::index::normalize_phone(&c.phone), crate::index::normalize_id_number(&c.id_number)]
            .into_iter()
            .flatten()
            .map(|n| self.store.contact_key(&n))
            .collect()
    }

    fn index_contact_of(&mut self, bytes: &[u8], cases: &[(u64, RecordId)]) {
        let keys = self.contact_keys(bytes);
        for (filed, id) in cases {
            let suffix = crate::index::search_suffix(*filed, id);
            for key in &keys {
                self.put(CF_CONTACTS, &[key.as_slice(), &suffix].concat(), &[]);
            }
        }
    }

    pub fn put_account<T: Serialize>(&mut self, name: &str, account: &T) {
        let json = serde_json::to_vec(account).unwrap_or_default();
        self.put(CF_ACCOUNTS, name.as_bytes(), &json);
    }

    pub fn put_session<T: Serialize>(&mut self, token_hash: &[u8; 32], session: &T) {
        let json = serde_json::to_vec(session).unwrap_or_default();
        self.put(CF_SESSIONS, token_hash, &json);
    }

    pub fn delete_session(&mut self, token_hash: &[u8; 32]) {
        self.delete(CF_SESSIONS, token_hash);
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
