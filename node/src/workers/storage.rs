//! The storage watch: free space on the data directory's disk, a reserve
//! file that keeps room for a restart, and the way back after a failed
//! write.
//!
//! After a write fails on an I/O error (a full disk) RocksDB refuses every
//! later write until the database is reopened. The watch notices the fault
//! ([`Store::write_fault`]), shows it (health, `/metrics`, the console's
//! banner) and, once there is room again, reopens the store without a
//! restart ([`Store::reopen`]). Every write in between is answered 503
//! `storage_unavailable`; reads go on.
//!
//! RocksDB needs room to open (a new MANIFEST, a new log, a flush of the
//! old log), so a node whose disk filled up could not start again on the
//! few megabytes an operator frees. The node therefore keeps
//! `storage_reserve_mb` of its disk in `reserve.bin` beside the store and
//! releases it when the free space at start-up is below the reserve plus
//! the room an open needs, when an open at start-up fails anyway, or when
//! a reopen fails for lack of room; it takes the reserve back once twice
//! as much (and the room to write beside it) is free.
//!
//! The reserve is for starting, never a bar to writing: a running node
//! whose writes failed reopens its store as soon as there is room to write
//! ([`MIN_FREE_TO_REOPEN`]), whatever the reserve it still holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::context::Context;
use crate::store::Store;

/// The reserve file in the data directory (not in the store: a backup
/// does not copy it).
pub const RESERVE_FILE: &str = "reserve.bin";

/// Below this much free space a reopen is not attempted (it would fail
/// again), and the disk is called low.
pub const MIN_FREE_TO_REOPEN: u64 = 4 << 20;

/// The storage as operators see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorageStatus {
    /// `ok`; `low` (less free space than the reserve: writes may soon
    /// fail); `unavailable` (writes fail: see `fault`).
    pub status: &'static str,
    /// Free bytes on the data directory's file system.
    pub free_bytes: Option<u64>,
    /// Bytes held in the reserve file now (0 once released).
    pub reserve_bytes: u64,
    /// The reserve the node keeps (`storage_reserve_mb`).
    pub reserve_target_bytes: u64,
    /// Why writes fail.
    pub fault: Option<String>,
    /// Since when (node clock, Unix ms).
    pub fault_since_ms: Option<u64>,
    /// When writes last came back after a fault.
    pub recovered_ms: Option<u64>,
    /// Write faults since start.
    pub faults: u64,
}

impl StorageStatus {
    pub fn alarm(&self) -> bool {
        self.status != "ok"
    }
}

/// Shared between the watch, the API and `/metrics`.
pub type StorageBoard = Arc<Mutex<StorageStatus>>;

/// Where the watch looks and how much it keeps.
#[derive(Debug, Clone)]
pub struct Watch {
    pub data_dir: PathBuf,
    pub reserve_bytes: u64,
}

/// Free bytes for an unprivileged writer on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

impl Watch {
    fn reserve_path(&self) -> PathBuf {
        self.data_dir.join(RESERVE_FILE)
    }

    fn reserve_held(&self) -> u64 {
        std::fs::metadata(self.reserve_path()).map(|m| m.len()).unwrap_or(0)
    }

    /// Before the store opens: on a disk with less free space than the
    /// reserve and the room an open needs, the reserve is released so
    /// that the store can open.
    pub fn before_open(&self) {
        let held = self.reserve_held();
        if held > 0 && free_bytes(&self.data_dir).is_some_and(|f| f < self.reserve_bytes.saturating_add(MIN_FREE_TO_REOPEN)) {
            self.release("the disk is nearly full at start-up");
        }
    }

    /// Opens the store at start-up with `open`: the reserve goes first on
    /// a nearly full disk ([`Watch::before_open`]), and again if the open
    /// fails for want of room while it is still held; the open is then
    /// tried once more. A store that cannot open says how much is free.
    pub fn open<T>(&self, open: impl Fn() -> Result<T, crate::node::NodeError>) -> Result<T, crate::node::NodeError> {
        use crate::node::NodeError;
        self.before_open();
        let result = match open() {
            Err(e) if self.reserve_held() > 0 && !matches!(e, NodeError::Store(crate::store::StoreError::InUse(_))) => {
                self.release(&format!("opening the store failed ({e})"));
                open()
            }
            other => other,
        };
        result.map_err(|e| match free_bytes(&self.data_dir) {
            Some(f) if f < MIN_FREE_TO_REOPEN => NodeError::Setup(format!(
                "{e} (the data disk has {} KiB free: free at least {} MiB on it, never in {}, and start again)",
                f >> 10,
                MIN_FREE_TO_REOPEN >> 20,
                self.data_dir.join("db").display()
            )),
            _ => e,
        })
    }

    fn release(&self, why: &str) {
        let held = self.reserve_held();
        if held > 0 && std::fs::remove_file(self.reserve_path()).is_ok() {
            tracing::warn!("{why}: released the {} MiB storage reserve ({}); free space on the data disk", held >> 20, self.reserve_path().display());
        }
    }

    /// Takes the reserve (again) when twice its size is free, and the
    /// room to write stays free beside it.
    pub fn ensure_reserve(&self) {
        if self.reserve_bytes == 0 || self.reserve_held() >= self.reserve_bytes {
            return;
        }
        let needed = (2 * self.reserve_bytes).max(self.reserve_bytes + MIN_FREE_TO_REOPEN);
        if free_bytes(&self.data_dir).is_none_or(|f| f < needed) {
            return;
        }
        if let Err(e) = allocate(&self.reserve_path(), self.reserve_bytes) {
            let _ = std::fs::remove_file(self.reserve_path());
            tracing::warn!("could not allocate the storage reserve {}: {e}", self.reserve_path().display());
        }
    }

    /// One look: the fault, the free space, a reopen when there is room.
    pub fn check(&self, store: &Store, board: &StorageBoard, now_ms: u64) {
        let mut fault = store.write_fault();
        let free = free_bytes(&self.data_dir);
        // Room to write again: a reopen as soon as there is (the reserve
        // still held is for a restart, not a bar to writing).
        let room = free.is_some_and(|f| f >= MIN_FREE_TO_REOPEN);
        if fault.is_some() && room {
            fault = self.reopen(store).err();
        }
        // The disk is fine with the reserve's worth free besides it.
        let plenty = free.is_some_and(|f| f >= self.reserve_bytes.max(MIN_FREE_TO_REOPEN));
        if fault.is_none() {
            self.ensure_reserve();
        }
        let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
        match (&fault, &b.fault) {
            (Some(_), None) => {
                b.fault_since_ms = Some(now_ms);
                b.faults += 1;
            }
            (None, Some(_)) => {
                b.fault_since_ms = None;
                b.recovered_ms = Some(now_ms);
            }
            _ => {}
        }
        b.fault = fault;
        b.free_bytes = free;
        b.reserve_bytes = self.reserve_held();
        b.reserve_target_bytes = self.reserve_bytes;
        b.status = if b.fault.is_some() {
            "unavailable"
        } else if free.is_some() && !plenty {
            "low"
        } else {
            "ok"
        };
    }

    /// Reopens the store; when the open itself fails for lack of room, the
    /// reserve goes and the open is tried once more.
    fn reopen(&self, store: &Store) -> Result<(), String> {
        match store.reopen(Duration::from_secs(5)) {
            Ok(()) => Ok(()),
            Err(e) if self.reserve_held() > 0 => {
                self.release(&format!("reopening the storage failed ({e})"));
                store.reopen(Duration::from_secs(5)).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Writes `len` bytes of real blocks (not a sparse file) to `path`.
fn allocate(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    if rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len).is_err() {
        // A file system without fallocate: zeros, in 1 MiB writes.
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&file);
        let chunk = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        w.flush()?;
    }
    file.sync_all()
}

/// Looks every second until the process ends.
pub async fn run(shared: Context, watch: Watch, board: StorageBoard) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (store, watch, board, now) = (shared.store.clone(), watch.clone(), board.clone(), shared.clock.now_ms());
        if tokio::task::spawn_blocking(move || watch.check(&store, &board, now)).await.is_err() {
            tracing::error!("the storage watch failed");
        }
    }
}
