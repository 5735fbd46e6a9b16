//! Guarding the password check: the backoff and lockout per account and
//! per client address ([`throttle`]), the bound on concurrent password
//! hashes ([`hashing`]) and the login audit ([`audit`]). The API asks the
//! throttle first, then hashes through the gate, then records the attempt;
//! a refused attempt is never hashed.
//!
//! Defaults (`[login]` in the node's config changes them):
//!
//! | | account (user name as typed) | client address (IPv4, IPv6 /64) |
//! |---|---|---|
//! | failures in the window before delays | 5 | 20 |
//! | delay before the next attempt | 5 s, doubling (10, 20, 40, 80 s) | 1 s, doubling, at most 10 s |
//! | failures in the window that lock | 10 | 100 |
//! | window / lock | 15 min / 15 min | 15 min / 15 min |
//!
//! Lockouts live in the node's memory: a restart clears them (the audit
//! stays). An admin sees an account's failures and lock in `GET
//! /api/users` and clears them with `POST /api/users/{username}/unlock`;
//! a new password clears them too.

pub mod audit;
pub mod hashing;
pub mod throttle;

use std::sync::Arc;

use serde::Deserialize;

use crate::store::Store;
pub use audit::AuditLog;
pub use hashing::HashGate;
pub use throttle::Throttle;

/// `[login]` in the node's config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failed logins of one account within the window before each next
    /// attempt waits.
    pub account_failures_before_delay: u32,
    /// Failed logins of one account within the window that lock it.
    pub account_failures_to_lock: u32,
    /// The first wait of an account (doubling with each failure after).
    pub account_first_delay_ms: u64,
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
}

impl Login {
    pub fn new(cfg: &LoginConfig, store: Arc<Store>) -> Arc<Login> {
        let (window_ms, lock_ms) = (cfg.window_secs.saturating_mul(1000), cfg.lock_secs.saturating_mul(1000));
        let account = throttle::Rule {
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
        Arc::new(Login {
            throttle: Throttle::new(account, address),
            gate: HashGate::new(cfg.hash_permits, cfg.hash_queue),
            audit: AuditLog::new(store),
        })
    }
}
