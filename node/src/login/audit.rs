//! The login audit: every login attempt (and every check of a current
//! password) with its time, user name as typed, client address and
//! outcome, kept in the node's `login_audit` column family (local: never
//! replicated, not derived). Bounded: the newest [`KEEP`] entries of at
//! most [`MAX_AGE_MS`].
//!
//! Entries are written in groups: an attempt that was checked (a password
//! hashed) waits until its entry is durable before it is answered; an
//! attempt refused before hashing (429, 503) is written by the next group
//! and not waited for, so a flood of refusals costs one synced write per
//! group rather than one per request. At most [`MAX_PENDING`] entries wait
//! for a group; beyond that refusals are counted, not kept.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Entries kept at most.
pub const KEEP: usize = 10_000;
/// Entries older than this are dropped (90 days).
pub const MAX_AGE_MS: u64 = 90 * 24 * 3600 * 1000;
/// Entries waiting for a group at most.
pub const MAX_PENDING: usize = 4_096;
/// Entries written between two prunings.
const PRUNE_EVERY: usize = 500;

/// One login attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: u64,
    /// As typed (at most 64 characters).
    pub username: String,
    pub address: String,
    /// `login` or `password_change` (the current password checked).
    pub kind: String,
    /// `ok`, `wrong_password`, `unknown_user`, `disabled`, `locked`,
    /// `account_throttled`, `address_throttled`, `busy`.
    pub outcome: String,
}

impl Entry {
    pub fn new(at_ms: u64, username: &str, address: std::net::IpAddr, kind: &str, outcome: &str) -> Entry {
        Entry {
            at_ms,
            username: username.chars().take(64).collect(),
            address: address.to_canonical().to_string(),
            kind: kind.into(),
            outcome: outcome.into(),
        }
    }
}

#[derive(Debug)]
pub struct AuditLog {
    store: Arc<Store>,
    pending: Mutex<Vec<Entry>>,
    /// One group at a time; a waiter that gets it after its entry was
    /// taken by the group before knows that group is durable.
    writing: tokio::sync::Mutex<()>,
    scheduled: AtomicBool,
    seq: AtomicU32,
    since_prune: AtomicUsize,
    dropped: AtomicU64,
}

impl AuditLog {
    pub fn new(store: Arc<Store>) -> Arc<AuditLog> {
        Arc::new(AuditLog {
            store,
            pending: Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
            scheduled: AtomicBool::new(false),
            seq: AtomicU32::new(0),
            // Prune with the first group after a start.
            since_prune: AtomicUsize::new(PRUNE_EVERY),
            dropped: AtomicU64::new(0),
        })
    }

    fn push(&self, e: Entry) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            p.push(e);
        }
    }

    /// Records an attempt and returns once it is durable.
    pub async fn record(&self, e: Entry) -> Result<(), StoreError> {
        self.push(e);
        self.flush().await
    }

    /// Records an attempt; a group writes it soon.
    pub fn record_later(self: &Arc<Self>, e: Entry) {
        self.push(e);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                me.scheduled.store(false, Ordering::Release);
                if let Err(e) = me.flush().await {
                    tracing::error!("login audit: {e}");
                }
            });
        }
    }

    /// Writes every waiting entry (one synced batch) and prunes now and then.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one = self.writing.lock().await;
        let entries = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len();
        let prune = self.since_prune.fetch_add(n, Ordering::Relaxed) + n >= PRUNE_EVERY;
        if prune {
            self.since_prune.store(0, Ordering::Relaxed);
        }
        let seqs: Vec<u32> = entries.iter().map(|_| self.seq.fetch_add(1, Ordering::Relaxed)).collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut b = store.batch();
            for (e, seq) in entries.iter().zip(seqs) {
                b.put_login_audit(e.at_ms, seq, e);
            }
            store.commit(b)?;
            if prune {
                let newest = entries.iter().map(|e| e.at_ms).max().unwrap_or(0);
                store.prune_login_audit(KEEP, newest.saturating_sub(MAX_AGE_MS))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Engine(format!("login audit task: {e}")))?
    }

    /// The newest `limit` entries, newest first (after writing those waiting).
    pub async fn newest(&self, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.flush().await?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.login_audit(limit.min(KEEP)))
            .await
            .map_err(|e| StoreError::Engine(format!("login audit task: {e}")))?
    }

    /// Refused attempts not recorded because too many were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let log = AuditLog::new(store.clone());
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let day = 24 * 3600 * 1000;
        log.record(Entry::new(1_000, "old", ip, "login", "ok")).await.unwrap();
        for i in 0..5u64 {
            log.record_later(Entry::new(MAX_AGE_MS + 2 * day + i, &format!("u{i}"), ip, "login", "wrong_password"));
        }
        log.record(Entry::new(MAX_AGE_MS + 2 * day + 5, "same-ms", ip, "login", "ok")).await.unwrap();
        log.record(Entry::new(MAX_AGE_MS + 2 * day + 5, "same-ms-later", ip, "login", "ok")).await.unwrap();
        let all = log.newest(100).await.unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(names, ["same-ms-later", "same-ms", "u4", "u3", "u2", "u1", "u0", "old"]);
        // Pruning: the 90-day-old entry goes, then all but the newest three.
        assert_eq!(store.prune_login_audit(KEEP, 2 * day).unwrap(), 1);
        assert_eq!(store.prune_login_audit(3, 0).unwrap(), 4);
        assert_eq!(log.newest(2).await.unwrap().len(), 2);
        assert_eq!(log.newest(100).await.unwrap()[2].username, "u4");
    }
}
