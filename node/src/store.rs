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
//! | `queue` | owner ‖ status ‖ due (BE) ‖ case id | empty — derived |
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
use zongzhi_protocol::{NodeId, RecordId};

use crate::summary::CaseSummary;

/// Layout version of what this module stores.
/// 2: a record's bytes are kept in `feed` (position → id ‖ bytes), so a
/// sender reads its feed in one forward scan; `records` maps id → position.
/// 3: case summaries in `case_state` are binary (the codec of signed
/// records), not JSON; a schema-2 directory is converted when opened.
/// Schema 4: records of format 2 (case events name their policy version),
/// the waiting index. Older directories hold format-1 records, which cannot
/// be re-signed: they are refused, not converted.
pub const SCHEMA_VERSION: u32 = 4;

const CF_RECORDS: &str = "records";
const CF_FEED: &str = "feed";
const CF_CHAIN: &str = "chain";
const CF_CASE_INDEX: &str = "case_index";
const CF_PENDING: &str = "pending";
const CF_CURSORS: &str = "cursors";
const CF_CASE_STATE: &str = "case_state";
const CF_CASE_NUMBERS: &str = "case_numbers";
const CF_QUEUE: &str = "queue";
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

const ALL_CFS: &[&str] = &[
    CF_RECORDS, CF_FEED, CF_CHAIN, CF_CASE_INDEX, CF_PENDING, CF_CURSORS, CF_CASE_STATE, CF_CASE_NUMBERS,
    CF_QUEUE, CF_STATS, CF_META, CF_ACCOUNTS, CF_SESSIONS, CF_BLOBS, CF_TRUST, CF_ALARMS, CF_REPORTS, CF_WAITING,
];

/// Column families rebuilt by `reindex`.
const DERIVED_CFS: &[&str] = &[CF_CASE_INDEX, CF_CASE_STATE, CF_CASE_NUMBERS, CF_QUEUE, CF_STATS, CF_TRUST, CF_REPORTS, CF_WAITING];

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
}

pub struct Store {
    db: DB,
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

fn queue_key(s: &CaseSummary) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 1 + 8 + 32);
    k.extend_from_slice(&s.owner.as_u64().to_be_bytes());
    k.push(s.status as u8);
    k.extend_from_slice(&s.next_due_ms.unwrap_or(u64::MAX).to_be_bytes());
    k.extend_from_slice(&s.id.0);
    k
}

impl Store {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
        opts.set_keep_log_file_num(4);
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
            if *name == CF_STATS {
                o.set_merge_operator_associative("zongzhi-stats-add", crate::stats::merge);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store { db, batch_hint: std::sync::atomic::AtomicUsize::new(0) };
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
                    _ => return Err(StoreError::Schema { found }),
                }
            }
        }
        Ok(store)
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
        }
    }

    /// Writes a batch atomically and durably (fsync of the WAL).
    pub fn commit(&self, mut batch: Batch<'_>) -> Result<()> {
        batch.seal();
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch.inner, &wo)?;
        Ok(())
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Calls `f` on every key/value whose key starts with `prefix`, in key
    /// order, until `f` returns false.
    fn scan_prefix(&self, cf: &'static str, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let iter = self.db.iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward));
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

    /// Every case summary, in case id order.
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
                out.push((cf.to_string(), k.to_vec(), v.to_vec()));
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
        if self.ops.is_empty() && self.stats.is_empty() {
            return;
        }
        self.store.batch_hint.store(self.buf.len(), std::sync::atomic::Ordering::Relaxed);
        let ops = std::mem::take(&mut self.ops);
        let buf = std::mem::take(&mut self.buf);
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
        for (k, d) in std::mem::take(&mut self.stats) {
            if d.iter().any(|x| *x != 0) {
                self.inner.merge_cf(self.store.cf(CF_STATS), &k, crate::stats::encode(&d));
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
        if let Some(old) = old {
            self.delete(CF_QUEUE, &queue_key(old));
        }
        self.put(CF_QUEUE, &queue_key(new), &[]);
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
