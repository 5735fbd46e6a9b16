//! The RocksDB engine under the store: the only file that names `rocksdb`.
//! Opening the database with its column families and options, raw reads,
//! iterators and snapshots, the `WriteBatch` a [`Batch`] is sealed into and
//! the synced write of [`Store::commit`]. Every function that calls into
//! RocksDB is here, including the repeat-mark settling, which iterates an
//! index backwards; the typed API in [`super`] is built on these.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteOptions};
/// The types the store's structures hold.
pub(super) use rocksdb::{DB, Error, WriteBatch};
use zongzhi_protocol::{NodeId, RecordId};

use super::keys::*;
use super::{Batch, IndexRange, Result, Store, StoreError};

/// Why the store did not open: another process holding the directory's
/// lock is said plainly.
fn open_error(path: &Path, e: Error) -> StoreError {
    if e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("/LOCK") { StoreError::InUse(path.display().to_string()) } else { StoreError::from(e) }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        StoreError::Engine(e.into_string())
    }
}

/// The options every open uses (start-up and a reopen after a fault).
fn db_options() -> (Options, Vec<ColumnFamilyDescriptor>) {
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
    let cfs = cf_descriptors(&opts, ALL_CFS.iter().map(|s| s.to_string()).collect());
    (opts, cfs)
}

/// Descriptors for `names`: this build's options for its own column
/// families, the defaults for any other (a newer release's, present in the
/// directory: RocksDB opens a directory only with every family it has).
fn cf_descriptors(opts: &Options, names: Vec<String>) -> Vec<ColumnFamilyDescriptor> {
    names
        .into_iter()
        .map(|name| {
            let Some(name) = ALL_CFS.iter().find(|n| **n == name) else {
                return ColumnFamilyDescriptor::new(name, Options::default());
            };
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
                o.set_merge_operator_associative("zongzhi-stats-add", |_key: &[u8], existing: Option<&[u8]>, ops: &rocksdb::MergeOperands| crate::stats::merge(existing, ops));
            }
            ColumnFamilyDescriptor::new(*name, o)
        })
        .collect()
}

/// Opens the database with this build's column families and every other
/// one the directory has (UPGRADES.md §2.5: a newer release's additive
/// families do not keep an older binary out).
fn open_db(path: &Path) -> Result<DB> {
    let (opts, mut cfs) = db_options();
    if let Ok(present) = DB::list_cf(&opts, path) {
        let others: Vec<String> = present.into_iter().filter(|n| n != "default" && !ALL_CFS.contains(&n.as_str())).collect();
        if !others.is_empty() {
            tracing::info!(families = ?others, "opening column families a newer release added");
            cfs.extend(cf_descriptors(&opts, others));
        }
    }
    DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| open_error(path, e))
}

/// A column family's handle in `db`.
fn handle<'d>(db: &'d DB, name: &'static str) -> &'d rocksdb::ColumnFamily {
    match db.cf_handle(name) {
        Some(cf) => cf,
        // Every name in ALL_CFS is opened in `open_db`.
        None => panic!("column family {name} not opened"),
    }
}

/// A RocksDB error that stops every later write until the database is
/// reopened (its background error: a full disk, an I/O error).
fn is_io(e: &Error) -> bool {
    matches!(e.kind(), rocksdb::ErrorKind::IOError | rocksdb::ErrorKind::Corruption | rocksdb::ErrorKind::Incomplete)
}

/// A raw key/value pair.
type Entry = (Box<[u8]>, Box<[u8]>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store; a new one takes its search key from `fresh_key`
    /// (the node's random source, so a seeded simulation replays).
    pub fn open_with(path: &Path, fresh_key: impl FnOnce() -> [u8; 32]) -> Result<Store> {
        let db = open_db(path)?;
        let store = Store {
            db: std::sync::RwLock::new(Some(std::sync::Arc::new(db))),
            path: path.to_path_buf(),
            write_fault: std::sync::Mutex::new(None),
            batch_hint: std::sync::atomic::AtomicUsize::new(0),
            needs_reindex: std::sync::atomic::AtomicBool::new(false),
            repeat_window_days: std::sync::atomic::AtomicU32::new(180),
            repeat_lock: std::sync::Mutex::new(()),
            search_key: [0; 32],
            write_timer: std::sync::RwLock::new(None),
            migration: Default::default(),
        };
        let migration = super::migrate::run(&store)?;
        store.needs_reindex.store(store.meta_get(meta::REINDEX_PENDING)?.is_some(), std::sync::atomic::Ordering::Relaxed);
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
        Ok(Store { search_key, migration, ..store })
    }

    /// The open database (waits while [`Store::reopen`] replaces it; none
    /// when that failed to open it).
    fn db(&self) -> Result<std::sync::Arc<DB>> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner()).clone();
        db.ok_or_else(|| StoreError::Engine("the storage is being reopened after a fault; try again".into()))
    }

    /// Notes a failed write: after an I/O error (a full disk) RocksDB
    /// refuses every later write until it is reopened, which
    /// [`Store::reopen`] does once the cause is gone.
    fn write_failed(&self, e: Error) -> StoreError {
        if is_io(&e) {
            let mut fault = self.write_fault.lock().unwrap_or_else(|p| p.into_inner());
            if fault.is_none() {
                tracing::error!("the storage stopped accepting writes: {e}");
            }
            *fault = Some(e.as_ref().to_string());
        }
        StoreError::from(e)
    }

    /// Why writes fail since the last failed write, until a reopen.
    pub fn write_fault(&self) -> Option<String> {
        self.write_fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes the database and opens it again: the way out of the state
    /// RocksDB enters after a failed write (it refuses every later one),
    /// once the cause (a full disk) is gone. Reads in progress finish
    /// first (up to `wait`); reads that start meanwhile wait for the open.
    /// When the open fails the store stays closed (reads fail as
    /// unavailable) and the next call opens it.
    pub fn reopen(&self, wait: std::time::Duration) -> Result<()> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(mut db) = slot.take() {
            let step = std::time::Duration::from_millis(5);
            let mut waited = std::time::Duration::ZERO;
            loop {
                match std::sync::Arc::try_unwrap(db) {
                    Ok(db) => break drop(db),
                    Err(still_used) if waited >= wait => {
                        *slot = Some(still_used);
                        return Err(StoreError::Engine("reads in progress kept the storage from reopening; will try again".into()));
                    }
                    Err(still_used) => db = still_used,
                }
                std::thread::sleep(step);
                waited += step;
            }
        }
        *slot = Some(std::sync::Arc::new(open_db(&self.path)?));
        *self.write_fault.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("the storage was reopened and accepts writes again");
        Ok(())
    }

    /// Tells `timer` how long each synced write of [`Store::commit`] took
    /// (replacing the one set before).
    pub fn time_writes(&self, timer: super::WriteTimer) {
        *self.write_timer.write().unwrap_or_else(|p| p.into_inner()) = Some(timer);
    }

    /// The engine's size, summed over the column families: SST files, live
    /// data (RocksDB's estimate) and memtables.
    pub fn engine_size(&self) -> Result<super::EngineSize> {
        let db = self.db()?;
        let mut size = super::EngineSize::default();
        for name in ALL_CFS {
            let cf = handle(&db, name);
            let prop = |p: &rocksdb::properties::PropName| db.property_int_value_cf(cf, p).map(|v| v.unwrap_or(0));
            size.sst_bytes += prop(rocksdb::properties::TOTAL_SST_FILES_SIZE)?;
            size.live_data_bytes += prop(rocksdb::properties::ESTIMATE_LIVE_DATA_SIZE)?;
            size.memtable_bytes += prop(rocksdb::properties::SIZE_ALL_MEM_TABLES)?;
        }
        Ok(size)
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
            numbers: std::collections::HashMap::new(),
            number_clashes: Vec::new(),
            words: Default::default(),
        }
    }

    /// Writes a batch atomically and durably (fsync of the WAL), then
    /// settles the repeat marks of the complainant groups it changed.
    pub fn commit(&self, mut batch: Batch<'_>) -> Result<()> {
        let db = self.db()?;
        batch.seal_with(&db);
        let groups = std::mem::take(&mut batch.repeat_groups);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        // A duration, not a time of day: only the metrics read it.
        let started = std::time::Instant::now();
        if let Err(e) = db.write_opt(batch.inner, &wo) {
            return Err(self.write_failed(e));
        }
        if let Some(timer) = self.write_timer.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            timer(started.elapsed());
        }
        // The batch is durable whatever happens next: a failure here leaves
        // the groups marked in `repeat_dirty` for start-up to settle.
        if !groups.is_empty()
            && let Err(e) = self.settle_repeats(groups.into_iter().map(|(g, t)| (g, Some(t))).collect())
        {
            tracing::error!("settling repeat marks failed (retried at start-up): {e}");
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
    pub(super) fn settle_repeats(&self, groups: Vec<(Vec<u8>, Option<std::collections::BTreeSet<u64>>)>) -> Result<()> {
        let db = self.db()?;
        let _guard = self.repeat_lock.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.repeat_window_ms();
        let mut b = self.batch();
        for (g, times) in &groups {
            // Keys already decided in this pass: spans of nearby times
            // overlap, and each mark may move the counters once.
            let mut decided = std::collections::HashSet::new();
            match times {
                None => self.settle_span(&db, &mut b, g, None, window, &mut decided)?,
                Some(ts) => {
                    for t in ts {
                        self.settle_span(&db, &mut b, g, Some(*t), window, &mut decided)?;
                    }
                }
            }
            b.delete(CF_REPEAT_DIRTY, g);
        }
        b.seal_with(&db);
        // Derived and recomputable: a crash before the next synced write
        // loses this batch and the dirty markers it deletes together.
        if let Err(e) = db.write(std::mem::take(&mut b.inner)) {
            return Err(self.write_failed(e));
        }
        Ok(())
    }

    /// Settles the marks of group `g` from filing time `from` (the whole
    /// group when `None`) through the next later filing time.
    fn settle_span(&self, db: &DB, b: &mut Batch<'_>, g: &[u8], from: Option<u64>, window: u64, decided: &mut std::collections::HashSet<Vec<u8>>) -> Result<()> {
        let at = crate::index::REPEAT_GROUP;
        let start = match from {
            Some(t) => [g, t.to_be_bytes().as_slice()].concat(),
            None => g.to_vec(),
        };
        // The latest filing strictly before the span.
        let mut current: Option<u64> = None;
        if from.is_some() {
            let mut rev = db.iterator_cf(handle(db, CF_REPEATS), IteratorMode::From(&start, Direction::Reverse));
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

    pub(super) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.db()?;
        Ok(db.get_cf(handle(&db, cf), key)?)
    }

    /// Calls `f` on every key/value whose key starts with `prefix`, in key
    /// order, until `f` returns false.
    pub(super) fn scan_prefix(&self, cf: &'static str, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        self.scan_from(cf, prefix, prefix, f)
    }

    /// Like [`Store::scan_prefix`] from key `from` on (which starts with
    /// `prefix`): a span of a group, not just the keys that extend `from`.
    pub(super) fn scan_from(&self, cf: &'static str, from: &[u8], prefix: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let db = self.db()?;
        let iter = db.iterator_cf(handle(&db, cf), IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` on the entries of an index with keys in `[from, to)`, in
    /// key order, until it returns false.
    pub(crate) fn index_scan(&self, cf: &'static str, from: &[u8], to: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let db = self.db()?;
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = db.raw_iterator_cf_opt(handle(&db, cf), ro);
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
        let db = self.db()?;
        let snap = db.snapshot();
        let cf = handle(&db, CF_COUNTS);
        keys.iter().map(|k| Ok(snap.get_cf(cf, k)?.map(|v| crate::stats::decode(&v)[0]).unwrap_or(0))).collect()
    }

    /// Merges several key ranges of one index into one scan ordered by the
    /// part of each key after its range's prefix: `ranges` holds (prefix,
    /// lower bound of the rest, upper bound of the rest, exclusive).
    /// Calls `f(range, rest of key, value)` in that order until it returns
    /// false. Costs one seek per range plus one step per entry visited.
    pub(crate) fn index_merge(&self, cf: &'static str, ranges: &[IndexRange], mut f: impl FnMut(usize, &[u8], &[u8]) -> bool) -> Result<()> {
        let db = self.db()?;
        use std::cmp::Reverse;
        // One snapshot for every range: a case that moves from one stream
        // to another during the scan is seen in exactly one of them.
        let snap = db.snapshot();
        let mut iters = Vec::with_capacity(ranges.len());
        let mut heap = std::collections::BinaryHeap::with_capacity(ranges.len());
        for (i, (prefix, lo, hi)) in ranges.iter().enumerate() {
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_iterate_upper_bound([prefix.as_slice(), hi].concat());
            let mut it = snap.raw_iterator_cf_opt(handle(&db, cf), ro);
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

    /// A consistent copy of the whole store in `dir` (which must not
    /// exist): RocksDB's checkpoint, hard links where `dir` is on the same
    /// file system, copies elsewhere. Writes go on meanwhile.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        let db = self.db()?;
        let cp = rocksdb::checkpoint::Checkpoint::new(&db)?;
        cp.create_checkpoint(dir)?;
        Ok(())
    }

    /// Adds an empty column family this build does not know, as a newer
    /// release's additive schema step would (tests of opening such a
    /// directory with an older binary).
    #[doc(hidden)]
    pub fn add_foreign_family(path: &Path, name: &str) -> Result<()> {
        let mut db = open_db(path)?;
        db.create_cf(name, &Options::default())?;
        Ok(())
    }

    /// Compacts the statistics column family (benchmarks).
    pub fn compact_stats(&self) -> Result<()> {
        let db = self.db()?;
        db.compact_range_cf(handle(&db, CF_STATS), None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Calls `f` on every entry of `cf` with a key in `[from, to)`.
    pub(super) fn scan_range(&self, cf: &'static str, from: &[u8], to: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let db = self.db()?;
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let iter = db.iterator_cf_opt(handle(&db, cf), ro, IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(())
    }

    pub(super) fn last_key(&self, cf: &'static str) -> Result<Option<Entry>> {
        let db = self.db()?;
        let mut iter = db.iterator_cf(handle(&db, cf), IteratorMode::End);
        Ok(iter.next().transpose()?)
    }

    pub fn has_record(&self, id: &RecordId) -> Result<bool> {
        let db = self.db()?;
        Ok(db.get_pinned_cf(handle(&db, CF_RECORDS), id.0)?.is_some())
    }

    pub(super) fn scan_feed(&self, from: u64, limit: usize, mut f: impl FnMut(u64, RecordId, &[u8])) -> Result<()> {
        let db = self.db()?;
        let iter = db.iterator_cf(handle(&db, CF_FEED), IteratorMode::From(&from.to_be_bytes(), Direction::Forward));
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

    /// The last (seq, record) of an author's chain held here.
    pub fn chain_last(&self, author: &NodeId) -> Result<Option<(u64, RecordId)>> {
        let db = self.db()?;
        let mut from = author.as_bytes().to_vec();
        from.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut iter = db.iterator_cf(handle(&db, CF_CHAIN), IteratorMode::From(&from, Direction::Reverse));
        match iter.next().transpose()? {
            Some((k, v)) if k.starts_with(author.as_bytes()) => Ok(u64_be(&k[32..]).zip(id_from(&v))),
            _ => Ok(None),
        }
    }

    /// The cases in which a step `unit` took was overruled (被覆盖).
    pub fn overruled_cases(&self, unit: zongzhi_protocol::DivisionCode) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        self.scan_prefix(CF_OVERRULED, &unit.as_u64().to_be_bytes(), |k, _| {
            if let Some(id) = k.get(8..40).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                out.push(RecordId(id));
            }
            true
        })?;
        Ok(out)
    }

    /// The cases the waiting index names.
    pub fn waiting_cases(&self) -> Result<Vec<RecordId>> {
        let db = self.db()?;
        let mut out = Vec::new();
        for item in db.iterator_cf(handle(&db, CF_WAITING), IteratorMode::Start) {
            let (k, _) = item?;
            let id: [u8; 32] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt { cf: CF_WAITING, detail: format!("key of {} bytes", k.len()) })?;
            out.push(RecordId(id));
        }
        Ok(out)
    }

    pub fn has_blob(&self, hash: &[u8; 32]) -> Result<bool> {
        let db = self.db()?;
        Ok(db.get_pinned_cf(handle(&db, CF_BLOBS), hash)?.is_some())
    }

    /// Deletes every derived column family's contents (before a rebuild).
    pub fn clear_derived(&self) -> Result<()> {
        let db = self.db()?;
        let mut b = self.batch();
        for cf in DERIVED_CFS {
            b.inner.delete_range_cf(handle(&db, cf), [0u8].as_slice(), [0xFFu8; 80].as_slice());
        }
        self.commit(b)
    }

    /// Overwrites a stored record's bytes without any check. Exists to test
    /// tamper detection; nothing in the node calls it.
    #[doc(hidden)]
    pub fn overwrite_record_unchecked(&self, id: &RecordId, bytes: &[u8]) -> Result<()> {
        let db = self.db()?;
        let seq = self.record_seq(id)?.ok_or_else(|| StoreError::Corrupt { cf: CF_RECORDS, detail: format!("record {id} not held") })?;
        let mut b = self.batch();
        b.inner.put_cf(handle(&db, CF_FEED), seq.to_be_bytes(), feed_value(id, bytes));
        self.commit(b)
    }
}

impl Batch<'_> {
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
        // Without an open database the commit seals it (or fails).
        if let Ok(db) = self.store.db() {
            self.seal_with(&db);
        }
    }

    fn seal_with(&mut self, db: &DB) {
        if !self.words.is_empty() {
            self.flush_words();
        }
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
            let h = handle(db, cf);
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
                    self.inner.merge_cf(handle(db, cf), &k, crate::stats::encode(&d));
                }
            }
        }
    }

    /// Adds `counts` to a statistics key (merge operator).
    pub fn merge_stats(&mut self, key: &[u8], counts: &zongzhi_protocol::kpi::Counts) {
        let acc = self.stats.entry(key.to_vec()).or_insert([0; zongzhi_protocol::kpi::COUNTERS]);
        for (a, b) in acc.iter_mut().zip(counts) {
            *a += b;
        }
    }

    pub fn len(&self) -> usize {
        self.inner.len() + self.ops.len() + self.stats.len() + self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty() && self.ops.is_empty() && self.stats.is_empty() && self.counts.is_empty() && self.words.is_empty()
    }
}
