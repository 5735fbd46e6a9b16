//! The login audit: every login attempt (and every check of a current
//! password), every lockout and every admin's action on accounts and
//! locks, with its time, user name as typed, client address and outcome.
//! Local to the node (never replicated, not derived), in two logs bounded
//! apart ([`AuditKind`]):
//!
//! - **events**: successful logins, lockouts (a failure that locked a
//!   client, an address or an account) and admins' actions, in
//!   `login_audit`; the newest [`KEEP`] of at most [`MAX_AGE_MS`].
//! - **refusals**: refused attempts (a wrong password, an unknown name, a
//!   throttled or locked attempt, a busy node), aggregated per client
//!   address, kind and outcome over [`AGGREGATE_MS`] (one entry with its
//!   count, first and last time and the names tried), in
//!   `login_refusals`, bounded on their own. A flood of refusals, however
//!   many addresses it comes from, never evicts an event.
//!
//! Entries are written in groups: an attempt that was checked (a password
//! hashed) waits until its entry is durable before it is answered; an
//! attempt refused before hashing (429, 503) is written by the next group
//! and not waited for, so a flood of refusals costs one synced write per
//! group rather than one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::store::{AuditKind, Store, StoreError};

/// Entries kept at most, in each log.
pub const KEEP: usize = 10_000;
/// Entries older than this are dropped (90 days).
pub const MAX_AGE_MS: u64 = 90 * 24 * 3600 * 1000;
/// Events waiting for a group at most (refusals are aggregated instead).
pub const MAX_PENDING: usize = 4_096;
/// Refusals of one client address, kind and outcome within this span
/// from the first are one entry.
pub const AGGREGATE_MS: u64 = 15 * 60 * 1000;
/// Open aggregates at most (client addresses refused within the span);
/// beyond, refusals are counted, not kept.
const MAX_AGGREGATES: usize = 4_096;
/// Distinct user names an aggregate lists.
const MAX_NAMES: usize = 10;
/// Entries written between two prunings.
const PRUNE_EVERY: usize = 500;

fn one() -> u32 {
    1
}

/// One entry: an attempt, a lockout, an admin's action, or refused
/// attempts aggregated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The (latest) time.
    pub at_ms: u64,
    /// As typed (at most 64 characters); the latest of an aggregate.
    pub username: String,
    pub address: String,
    /// `login`, `password_change` (the current password checked) or
    /// `admin` (an admin's action; `username` is the account acted on).
    pub kind: String,
    /// `ok`, `wrong_password`, `unknown_user`, `disabled`, `locked`,
    /// `account_throttled`, `address_throttled`, `busy`; `lockout`; for
    /// admins' actions the action (`unlock`, `password_reset`, …).
    pub outcome: String,
    /// Attempts this entry stands for (refusals aggregated).
    #[serde(default = "one")]
    pub count: u32,
    /// The first attempt of an aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<u64>,
    /// The distinct names an aggregate's attempts tried (at most ten).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usernames: Vec<String>,
    /// The admin who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What a lockout locked, or what an admin did, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Entry {
    pub fn new(at_ms: u64, username: &str, address: std::net::IpAddr, kind: &str, outcome: &str) -> Entry {
        Entry {
            at_ms,
            username: username.chars().take(64).collect(),
            address: address.to_canonical().to_string(),
            kind: kind.into(),
            outcome: outcome.into(),
            count: 1,
            first_ms: None,
            usernames: Vec::new(),
            by: None,
            detail: None,
        }
    }

    /// An admin's action on `username` (an account, or a case number for
    /// the public page's locks).
    pub fn admin(at_ms: u64, by: &str, username: &str, address: std::net::IpAddr, action: &str, detail: String) -> Entry {
        Entry { by: Some(by.into()), detail: Some(detail), ..Entry::new(at_ms, username, address, "admin", action) }
    }

    /// A failure that locked something.
    pub fn lockout(at_ms: u64, username: &str, address: std::net::IpAddr, kind: &str, detail: String) -> Entry {
        Entry { detail: Some(detail), ..Entry::new(at_ms, username, address, kind, "lockout") }
    }

    /// Which log keeps it.
    pub fn log(&self) -> AuditKind {
        if self.outcome == "ok" || self.outcome == "lockout" || self.kind == "admin" { AuditKind::Events } else { AuditKind::Refusals }
    }
}

/// An aggregate to write: its old key (time, seq) if written before, its
/// new time and seq, and the entry.
type Moved = (Option<(u64, u32)>, u64, u32, Entry);

/// A refusals entry being added to, and where it is stored.
#[derive(Debug)]
struct Aggregate {
    entry: Entry,
    /// Its key once written: (time, seq).
    written: Option<(u64, u32)>,
    dirty: bool,
}

#[derive(Debug)]
pub struct AuditLog {
    store: Arc<Store>,
    pending: Mutex<Vec<Entry>>,
    /// Open aggregates by (address, kind, outcome).
    aggregates: Mutex<HashMap<(String, String, String), Aggregate>>,
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
            aggregates: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
            scheduled: AtomicBool::new(false),
            // Keys of this run after those of the runs before.
            seq: AtomicU32::new(0),
            // Prune with the first group after a start.
            since_prune: AtomicUsize::new(PRUNE_EVERY),
            dropped: AtomicU64::new(0),
        })
    }

    fn push(&self, e: Entry) {
        match e.log() {
            AuditKind::Events => {
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                if p.len() >= MAX_PENDING {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    p.push(e);
                }
            }
            AuditKind::Refusals => self.aggregate(e),
        }
    }

    /// Adds a refusal to its address's open aggregate, or opens one.
    fn aggregate(&self, e: Entry) {
        let mut map = self.aggregates.lock().unwrap_or_else(|p| p.into_inner());
        let key = (e.address.clone(), e.kind.clone(), e.outcome.clone());
        let open = map.get(&key).is_some_and(|a| e.at_ms < a.entry.first_ms.unwrap_or(a.entry.at_ms).saturating_add(AGGREGATE_MS));
        if !open {
            if map.len() >= MAX_AGGREGATES {
                // Those written already go (a later refusal from one of
                // their addresses opens a new entry).
                map.retain(|_, a| a.dirty);
            }
            if map.len() >= MAX_AGGREGATES && !map.contains_key(&key) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let first = Entry { first_ms: Some(e.at_ms), usernames: vec![e.username.clone()], ..e };
            map.insert(key, Aggregate { entry: first, written: None, dirty: true });
            return;
        }
        if let Some(a) = map.get_mut(&key) {
            a.entry.count = a.entry.count.saturating_add(1);
            a.entry.at_ms = a.entry.at_ms.max(e.at_ms);
            if !a.entry.usernames.contains(&e.username) && a.entry.usernames.len() < MAX_NAMES {
                a.entry.usernames.push(e.username.clone());
            }
            a.entry.username = e.username;
            a.dirty = true;
        }
    }

    /// Records an entry and returns once it is durable.
    pub async fn record(&self, e: Entry) -> Result<(), StoreError> {
        self.push(e);
        self.flush().await
    }

    /// Records an entry; a group writes it soon.
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

    /// Writes every waiting event and every changed aggregate (one synced
    /// batch) and prunes now and then.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one = self.writing.lock().await;
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        // Each changed aggregate: its old key to delete, its new key and entry.
        let mut moved: Vec<Moved> = Vec::new();
        {
            let mut map = self.aggregates.lock().unwrap_or_else(|p| p.into_inner());
            for a in map.values_mut().filter(|a| a.dirty) {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                moved.push((a.written, a.entry.at_ms, seq, a.entry.clone()));
                a.written = Some((a.entry.at_ms, seq));
                a.dirty = false;
            }
        }
        if events.is_empty() && moved.is_empty() {
            return Ok(());
        }
        let n = events.len() + moved.len();
        let prune = self.since_prune.fetch_add(n, Ordering::Relaxed) + n >= PRUNE_EVERY;
        if prune {
            self.since_prune.store(0, Ordering::Relaxed);
        }
        let seqs: Vec<u32> = events.iter().map(|_| self.seq.fetch_add(1, Ordering::Relaxed)).collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut b = store.batch();
            for (e, seq) in events.iter().zip(seqs) {
                b.put_login_audit(AuditKind::Events, e.at_ms, seq, e);
            }
            for (old, at, seq, e) in &moved {
                if let Some((t, s)) = old {
                    b.delete_login_audit_at(AuditKind::Refusals, *t, *s);
                }
                b.put_login_audit(AuditKind::Refusals, *at, *seq, e);
            }
            store.commit(b)?;
            if prune {
                let newest = events.iter().chain(moved.iter().map(|m| &m.3)).map(|e| e.at_ms).max().unwrap_or(0);
                for log in [AuditKind::Events, AuditKind::Refusals] {
                    store.prune_login_audit(log, KEEP, newest.saturating_sub(MAX_AGE_MS))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Engine(format!("login audit task: {e}")))?
    }

    /// The newest `limit` entries of both logs, newest first (after
    /// writing those waiting); only one log with `only`.
    pub async fn newest(&self, limit: usize, only: Option<AuditKind>) -> Result<Vec<Entry>, StoreError> {
        self.flush().await?;
        let store = self.store.clone();
        let limit = limit.min(KEEP);
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<(u64, u32, Entry)> = Vec::new();
            for log in [AuditKind::Events, AuditKind::Refusals] {
                if only.is_none_or(|o| o == log) {
                    all.extend(store.login_audit::<Entry>(log, limit)?);
                }
            }
            all.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
            all.truncate(limit);
            Ok(all.into_iter().map(|(_, _, e)| e).collect())
        })
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
            log.record_later(Entry::new(MAX_AGE_MS + 2 * day + i, &format!("u{i}"), std::net::IpAddr::from([10, 0, 0, i as u8]), "login", "wrong_password"));
        }
        log.record(Entry::new(MAX_AGE_MS + 2 * day + 5, "same-ms", ip, "login", "ok")).await.unwrap();
        log.record(Entry::new(MAX_AGE_MS + 2 * day + 5, "same-ms-later", ip, "login", "ok")).await.unwrap();
        let all = log.newest(100, None).await.unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(names, ["same-ms-later", "same-ms", "u4", "u3", "u2", "u1", "u0", "old"]);
        // Pruning: the 90-day-old entry goes, then all but the newest three.
        assert_eq!(store.prune_login_audit(AuditKind::Events, KEEP, 2 * day).unwrap(), 1);
        assert_eq!(store.prune_login_audit(AuditKind::Refusals, 3, 0).unwrap(), 2);
        assert_eq!(log.newest(2, None).await.unwrap().len(), 2);
        assert_eq!(log.newest(100, None).await.unwrap()[2].username, "u4");
    }

    #[tokio::test]
    async fn refusals_from_one_address_are_one_entry_and_never_evict_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let log = AuditLog::new(store.clone());
        let me = std::net::IpAddr::from([127, 0, 0, 1]);
        log.record(Entry::new(1_000, "admin", me, "login", "ok")).await.unwrap();
        let attacker = std::net::IpAddr::from([10, 9, 9, 9]);
        for i in 0..11_000u64 {
            log.record_later(Entry::new(2_000 + i, if i % 2 == 0 { "admin" } else { "root" }, attacker, "login", "wrong_password"));
        }
        let all = log.newest(KEEP, None).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].count, all[0].first_ms, all[0].at_ms), (11_000, Some(2_000), 12_999));
        assert_eq!(all[0].usernames, ["admin", "root"]);
        assert_eq!((all[1].username.as_str(), all[1].outcome.as_str()), ("admin", "ok"));
        // Refusals from more addresses than either log keeps: the event stays.
        for i in 0..(KEEP as u64 + 10) {
            log.record_later(Entry::new(20_000 + i, "admin", std::net::IpAddr::from((0x0a00_0000u32 + i as u32).to_be_bytes()), "login", "wrong_password"));
            if i % 1000 == 0 {
                log.flush().await.unwrap();
            }
        }
        log.flush().await.unwrap();
        store.prune_login_audit(AuditKind::Refusals, KEEP, 0).unwrap();
        store.prune_login_audit(AuditKind::Events, KEEP, 0).unwrap();
        let events = log.newest(KEEP, Some(AuditKind::Events)).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, "ok");
    }
}
