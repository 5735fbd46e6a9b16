//! Login backoff and lockout, per account and per client address, without
//! I/O: every function takes "now".
//!
//! Each key (a user name as typed, or a client address) keeps the times of
//! its failed attempts within a window, the attempts admitted and not yet
//! decided (`in_flight`) and a lock. An attempt is admitted, before any
//! password is hashed, only if neither its account nor its address refuses
//! it; admitted attempts count as failures until they are decided, so
//! parallel guesses cannot slip past the limit together.
//!
//! With `n` failures (and undecided attempts) in the window:
//! - `n < delay_after`: admitted at once;
//! - `n ≥ delay_after`: admitted only `first_delay · 2^(n − delay_after)`
//!   (at most `max_delay`) after the last failure, and never beside an
//!   undecided attempt;
//! - the failure that makes `n = lock_after`: locked for `lock` (every
//!   attempt refused, also with the right password) until the lock ends or
//!   an admin unlocks. A success clears an account's failures (not an
//!   address's: one good account must not reset an address's count).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits of one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub delay_after: u32,
    pub lock_after: u32,
    pub window_ms: u64,
    pub lock_ms: u64,
    pub first_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Rule {
    fn delay(&self, n: usize) -> u64 {
        let over = (n as u64).saturating_sub(self.delay_after as u64).min(30);
        self.first_delay_ms.saturating_mul(1 << over).min(self.max_delay_ms)
    }
}

/// What an attempt was refused for, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked.
    Locked { until_ms: u64 },
    /// The account must wait before its next attempt.
    AccountWait { until_ms: u64 },
    /// The client address must wait (or is blocked) before its next attempt.
    AddressWait { until_ms: u64, locked: bool },
}

impl Refusal {
    pub fn until_ms(&self) -> u64 {
        match *self {
            Refusal::Locked { until_ms } | Refusal::AccountWait { until_ms } | Refusal::AddressWait { until_ms, .. } => until_ms,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Entry {
    failures: VecDeque<u64>,
    in_flight: u32,
    locked_until: u64,
}

impl Entry {
    /// Forgets failures out of the window; a lock keeps those that made it
    /// (for admins to see) until it ends, and then forgets them all.
    fn prune(&mut self, rule: &Rule, now: u64) {
        if self.locked_until > now {
            return;
        }
        if self.locked_until != 0 {
            self.locked_until = 0;
            self.failures.clear();
        }
        while self.failures.front().is_some_and(|t| t.saturating_add(rule.window_ms) <= now) {
            self.failures.pop_front();
        }
    }

    /// `Err(until, locked)` when an attempt now is refused.
    fn check(&self, rule: &Rule, now: u64) -> Result<(), (u64, bool)> {
        if self.locked_until > now {
            return Err((self.locked_until, true));
        }
        let n = self.failures.len() + self.in_flight as usize;
        if n >= rule.delay_after as usize {
            let from = if self.in_flight > 0 { now } else { self.failures.back().copied().unwrap_or(now) };
            let until = from.saturating_add(rule.delay(n));
            if self.in_flight > 0 || now < until {
                return Err((until, false));
            }
        }
        Ok(())
    }

    fn failed(&mut self, rule: &Rule, now: u64) {
        self.failures.push_back(now);
        while self.failures.len() > rule.lock_after as usize {
            self.failures.pop_front();
        }
        if self.failures.len() >= rule.lock_after as usize && self.locked_until <= now {
            self.locked_until = now.saturating_add(rule.lock_ms);
        }
    }

    fn idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0 && self.locked_until == 0
    }

    fn last_activity(&self) -> u64 {
        self.failures.back().copied().unwrap_or(0).max(self.locked_until)
    }
}

/// How many keys of each kind are tracked at most (an attacker spraying
/// names or addresses evicts the idlest entries, not memory).
pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
struct Maps {
    accounts: HashMap<String, Entry>,
    addresses: HashMap<IpAddr, Entry>,
}

/// The throttle of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub account: Rule,
    pub address: Rule,
    maps: Arc<Mutex<Maps>>,
}

/// An account's state as an admin sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountState {
    pub failures: u32,
    pub locked_until_ms: Option<u64>,
    /// When the next attempt is admitted, if later than now.
    pub retry_at_ms: Option<u64>,
}

/// An admitted attempt: decide it with [`Ticket::finish`]; dropped
/// undecided (the request went away), it counts as nothing.
#[derive(Debug)]
pub struct Ticket {
    throttle: Throttle,
    user: String,
    address: IpAddr,
    done: bool,
}

/// How an admitted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The key of a client address: an IPv4 address, or the /64 of an IPv6
/// one (one host usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The key of a user name as typed: lower case, at most 64 characters.
pub fn user_key(name: &str) -> String {
    name.trim().to_lowercase().chars().take(64).collect()
}

fn entry_mut<'a, K: std::hash::Hash + Eq + Clone>(map: &'a mut HashMap<K, Entry>, key: &K) -> &'a mut Entry {
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        let victim = map
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .min_by_key(|(_, e)| (!e.idle(), e.locked_until != 0, e.last_activity()))
            .map(|(k, _)| k.clone());
        if let Some(v) = victim {
            map.remove(&v);
        }
    }
    map.entry(key.clone()).or_default()
}

impl Throttle {
    pub fn new(account: Rule, address: Rule) -> Throttle {
        Throttle { account, address, maps: Arc::new(Mutex::new(Maps::default())) }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits an attempt for `user` from `address`, or says why not.
    pub fn admit(&self, user: &str, address: IpAddr, now: u64) -> Result<Ticket, Refusal> {
        let (user, address) = (user_key(user), address_key(address));
        let mut maps = self.maps();
        let maps = &mut *maps;
        let acc = entry_mut(&mut maps.accounts, &user);
        acc.prune(&self.account, now);
        let acc_check = acc.check(&self.account, now);
        let addr = entry_mut(&mut maps.addresses, &address);
        addr.prune(&self.address, now);
        if let Err((until_ms, locked)) = addr.check(&self.address, now) {
            return Err(Refusal::AddressWait { until_ms, locked });
        }
        match acc_check {
            Err((until_ms, true)) => return Err(Refusal::Locked { until_ms }),
            Err((until_ms, false)) => return Err(Refusal::AccountWait { until_ms }),
            Ok(()) => {}
        }
        addr.in_flight += 1;
        if let Some(acc) = maps.accounts.get_mut(&user) {
            acc.in_flight += 1;
        }
        Ok(Ticket { throttle: self.clone(), user, address, done: false })
    }

    /// An account's failures and lock (for admins).
    pub fn account_state(&self, user: &str, now: u64) -> AccountState {
        let mut maps = self.maps();
        let Some(e) = maps.accounts.get_mut(&user_key(user)) else { return AccountState::default() };
        e.prune(&self.account, now);
        AccountState {
            failures: e.failures.len() as u32,
            locked_until_ms: (e.locked_until > now).then_some(e.locked_until),
            retry_at_ms: e.check(&self.account, now).err().map(|(t, _)| t),
        }
    }

    /// Clears an account's failures and lock (an admin's unlock, a new password).
    pub fn unlock(&self, user: &str) {
        let mut maps = self.maps();
        if let Some(e) = maps.accounts.get_mut(&user_key(user)) {
            e.failures.clear();
            e.locked_until = 0;
        }
    }

    /// Client addresses that must wait or are blocked now: (address, failures, until).
    pub fn blocked_addresses(&self, now: u64) -> Vec<(IpAddr, u32, u64)> {
        let mut maps = self.maps();
        let mut out: Vec<(IpAddr, u32, u64)> = maps
            .addresses
            .iter_mut()
            .filter_map(|(a, e)| {
                e.prune(&self.address, now);
                e.check(&self.address, now).err().map(|(until, _)| (*a, e.failures.len() as u32, until))
            })
            .collect();
        out.sort();
        out
    }

    fn decide(&self, user: &str, address: IpAddr, outcome: Option<Outcome>, now: u64) {
        let mut maps = self.maps();
        if let Some(e) = maps.addresses.get_mut(&address) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if outcome == Some(Outcome::Failure) {
                e.failed(&self.address, now);
            }
            if e.idle() {
                maps.addresses.remove(&address);
            }
        }
        if let Some(e) = maps.accounts.get_mut(user) {
            e.in_flight = e.in_flight.saturating_sub(1);
            match outcome {
                Some(Outcome::Failure) => e.failed(&self.account, now),
                Some(Outcome::Success) => {
                    e.failures.clear();
                    e.locked_until = 0;
                }
                None => {}
            }
            if e.idle() {
                maps.accounts.remove(user);
            }
        }
    }
}

impl Ticket {
    /// Records how the attempt ended; returns the account's lock end if
    /// this failure locked it.
    pub fn finish(mut self, outcome: Outcome, now: u64) -> Option<u64> {
        self.done = true;
        self.throttle.decide(&self.user, self.address, Some(outcome), now);
        let state = self.throttle.account_state(&self.user, now);
        state.locked_until_ms.filter(|_| outcome == Outcome::Failure)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.decide(&self.user, self.address, None, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: Rule = Rule { delay_after: 5, lock_after: 10, window_ms: 900_000, lock_ms: 900_000, first_delay_ms: 5_000, max_delay_ms: 300_000 };
    const ADDRESS: Rule = Rule { delay_after: 20, lock_after: 100, window_ms: 900_000, lock_ms: 900_000, first_delay_ms: 1_000, max_delay_ms: 10_000 };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn failures_delay_then_lock_and_a_lock_refuses_everything() {
        let t = Throttle::new(ACCOUNT, ADDRESS);
        let mut now = 1_000_000;
        for _ in 0..5 {
            t.admit("li", ip(1), now).unwrap().finish(Outcome::Failure, now);
        }
        assert_eq!(t.admit("li", ip(1), now).err(), Some(Refusal::AccountWait { until_ms: now + 5_000 }));
        // Growing delays: 5, 10, 20, 40 s after the fifth to ninth failure.
        for delay in [5_000, 10_000, 20_000, 40_000] {
            assert!(t.admit("li", ip(2), now + delay - 1).is_err());
            now += delay;
            t.admit("li", ip(2), now).unwrap().finish(Outcome::Failure, now);
        }
        now += 80_000;
        let lock = t.admit("li", ip(3), now).unwrap().finish(Outcome::Failure, now);
        assert_eq!(lock, Some(now + 900_000));
        assert_eq!(t.admit("li", ip(4), now + 899_999).err(), Some(Refusal::Locked { until_ms: now + 900_000 }));
        assert_eq!(t.account_state("li", now).failures, 10);
        // Another name from the same address is not held up by the account.
        assert!(t.admit("wang", ip(1), now).is_ok());
        // The lock ends with everything it counted.
        let later = now + 900_000;
        assert_eq!(t.account_state("li", later), AccountState::default());
        assert!(t.admit("li", ip(4), later).is_ok());
    }

    #[test]
    fn parallel_attempts_count_before_they_are_decided() {
        let t = Throttle::new(ACCOUNT, ADDRESS);
        let tickets: Vec<_> = (0..8).filter_map(|i| t.admit("li", ip(i), 1).ok()).collect();
        assert_eq!(tickets.len(), 5);
        drop(tickets);
        assert_eq!(t.account_state("li", 1), AccountState::default(), "undecided attempts count as nothing");
    }

    #[test]
    fn an_address_has_its_own_higher_limit_across_names() {
        let t = Throttle::new(ACCOUNT, ADDRESS);
        for i in 0..20 {
            t.admit(&format!("user{i}"), ip(9), 1).unwrap().finish(Outcome::Failure, 1);
        }
        assert!(matches!(t.admit("user99", ip(9), 1), Err(Refusal::AddressWait { until_ms: 1_001, locked: false })));
        assert!(t.admit("user99", ip(8), 1).is_ok(), "another address is not held up");
        assert_eq!(t.blocked_addresses(1).len(), 1);
        // A success does not reset an address: the next failure waits longer.
        t.admit("ok", ip(9), 2_000).unwrap().finish(Outcome::Success, 2_000);
        t.admit("user98", ip(9), 2_001).unwrap().finish(Outcome::Failure, 2_001);
        assert!(matches!(t.admit("user99", ip(9), 2_002), Err(Refusal::AddressWait { until_ms: 4_001, .. })));
    }

    #[test]
    fn success_and_unlock_clear_an_account() {
        let t = Throttle::new(ACCOUNT, ADDRESS);
        for _ in 0..3 {
            t.admit("li", ip(1), 1).unwrap().finish(Outcome::Failure, 1);
        }
        t.admit("LI ", ip(1), 2).unwrap().finish(Outcome::Success, 2);
        assert_eq!(t.account_state("li", 2).failures, 0);
        let at = |i: u8| 1_000_000 + 90_000 * i as u64;
        for i in 0..10 {
            t.admit("li", ip(i), at(i)).unwrap().finish(Outcome::Failure, at(i));
        }
        assert!(t.account_state("li", at(9)).locked_until_ms.is_some());
        t.unlock("li");
        assert!(t.admit("li", ip(1), at(9)).is_ok());
    }

    #[test]
    fn the_maps_are_bounded() {
        let t = Throttle::new(ACCOUNT, ADDRESS);
        for i in 0..(MAX_TRACKED + 50) {
            if let Ok(k) = t.admit(&format!("u{i}"), IpAddr::from([10, 1, (i >> 8) as u8, i as u8]), 1) {
                k.finish(Outcome::Failure, 1);
            }
        }
        let maps = t.maps();
        assert!(maps.accounts.len() <= MAX_TRACKED && maps.addresses.len() <= MAX_TRACKED);
    }
}
