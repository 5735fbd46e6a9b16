//! Guarding the password check: the backoff and lockout by client, by
//! client address and (for unknown clients) by account ([`throttle`]),
//! the bound on concurrent password hashes ([`hashing`]) and the login
//! audit ([`audit`]). The API asks the throttle first, then hashes through
//! the gate, then records the attempt; a refused attempt is never hashed.
//!
//! Defaults (`[login]` in the node's config changes them):
//!
//! | | one account from one client address | one client address, any names | one account, every unknown client |
//! |---|---|---|---|
//! | failures in the window before delays | 5 | 20 | — |
//! | delay before the next attempt | 5 s, doubling (10, 20, 40, 80 s) | 1 s, doubling, at most 10 s | — |
//! | failures in the window that lock | 10 | 100 | 50 |
//! | window / lock | 15 min / 15 min | 15 min / 15 min | 15 min / 15 min |
//!
//! An account locked for every unknown client still lets in a client that
//! logged in as it before (the device token of that login) and a login
//! with the account's recovery code (the second factor its admin keeps).
//! The locks are kept in the store (`locks`): a restart does not lift them.
//! An admin sees an account's failures and locks in `GET /api/users` and
//! clears them with `POST /api/users/{username}/unlock`; a new password
//! clears them too.

pub mod audit;
pub mod hashing;
pub mod throttle;

use std::sync::Arc;

use serde::Deserialize;

use std::sync::Mutex;

use crate::store::{Store, StoreError};
pub use audit::AuditLog;
pub use hashing::HashGate;
pub use throttle::Throttle;

/// `[login]` in the node's config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failed logins of one account from one client address within the
    /// window before each next attempt from there waits.
    pub account_failures_before_delay: u32,
    /// Failed logins of one account from one client address within the
    /// window that lock the account for that address.
    pub account_failures_to_lock: u32,
    /// The first wait (doubling with each failure after).
    pub account_first_delay_ms: u64,
    /// Failed logins of one account from every unknown client together
    /// within the window that lock it for unknown clients (a known device
    /// or the recovery code still gets in).
    pub account_failures_to_lock_everywhere: u32,
    /// Failed logins from one client address within the window before each
    /// next attempt from it waits (higher: an office behind one NAT).
    pub address_failures_before_delay: u32,
    /// Failed logins from one client address within the window that block it.
    pub address_failures_to_lock: u32,
    /// The first wait of an address (doubling, at most ten times as long).
    pub address_first_delay_ms: u64,
    /// How long a failure counts.
    pub window_secs: u64,
    /// How long a lock lasts.
    pub lock_secs: u64,
    /// Password hashes computed at once.
    pub hash_permits: usize,
    /// Password checks waiting for a hash at most; more are answered 503.
    pub hash_queue: usize,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            account_failures_before_delay: 5,
            account_failures_to_lock: 10,
            account_first_delay_ms: 5_000,
            account_failures_to_lock_everywhere: 50,
            address_failures_before_delay: 20,
            address_failures_to_lock: 100,
            address_first_delay_ms: 1_000,
            window_secs: 900,
            lock_secs: 900,
            hash_permits: 2,
            hash_queue: 32,
        }
    }
}

/// The guard of one node's password checks.
#[derive(Debug)]
pub struct Login {
    pub throttle: Throttle,
    pub gate: HashGate,
    pub audit: Arc<AuditLog>,
    store: Arc<Store>,
    /// One [`Login::save_locks`] at a time.
    saving: Mutex<()>,
}

impl Login {
    /// The guard over `store`, with the lock state it kept.
    pub fn new(cfg: &LoginConfig, store: Arc<Store>, now_ms: u64) -> Result<Arc<Login>, StoreError> {
        let (window_ms, lock_ms) = (cfg.window_secs.saturating_mul(1000), cfg.lock_secs.saturating_mul(1000));
        let pair = throttle::Rule {
            delay_after: cfg.account_failures_before_delay,
            lock_after: cfg.account_failures_to_lock.max(1),
            window_ms,
            lock_ms,
            first_delay_ms: cfg.account_first_delay_ms,
            max_delay_ms: cfg.account_first_delay_ms.saturating_mul(16),
        };
        let address = throttle::Rule {
            delay_after: cfg.address_failures_before_delay,
            lock_after: cfg.address_failures_to_lock.max(1),
            window_ms,
            lock_ms,
            first_delay_ms: cfg.address_first_delay_ms,
            max_delay_ms: cfg.address_first_delay_ms.saturating_mul(10),
        };
        let account = throttle::Rule { delay_after: u32::MAX, lock_after: cfg.account_failures_to_lock_everywhere.max(1), window_ms, lock_ms, first_delay_ms: 0, max_delay_ms: 0 };
        let throttle = Throttle::new(throttle::Rules { pair, address, account });
        let mut kept = Vec::new();
        for kind in throttle::Kind::ALL {
            kept.extend(store.locks::<throttle::Persisted>(kind.tag())?.into_iter().map(|(k, p)| (kind, k, p)));
        }
        throttle.load(kept, now_ms);
        let login = Arc::new(Login { throttle, gate: HashGate::new(cfg.hash_permits, cfg.hash_queue), audit: AuditLog::new(store.clone()), store, saving: Mutex::new(()) });
        login.save_locks()?;
        Ok(login)
    }

    /// Writes the throttle's changed keys to the store (one at a time, so
    /// a later state is never overwritten by an earlier one).
    pub fn save_locks(&self) -> Result<(), StoreError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let changes = self.throttle.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let mut b = self.store.batch();
        for (kind, key, state) in &changes {
            match state {
                Some(p) => b.put_lock(kind.tag(), key, p),
                None => b.delete_lock(kind.tag(), key),
            }
        }
        self.store.commit(b)
    }
}
