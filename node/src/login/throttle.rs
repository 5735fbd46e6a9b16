//! Login backoff and lockout, by the attacker rather than by the target,
//! without I/O: every function takes "now".
//!
//! Three kinds of key, each keeping the times of its failed attempts
//! within a window, the attempts admitted and not yet decided
//! (`in_flight`) and a lock:
//! - the **pair** of a client address (IPv4, IPv6 /64) and an account
//!   (the user name as typed, also for names that do not exist, so a lock
//!   does not reveal which do): growing delays, then a lock. Guessing from
//!   one address is stopped here, and the real user at another address is
//!   not held up by it.
//! - the **address**, across names: a higher limit (an office behind one
//!   NAT), growing delays, then a block.
//! - the **account** across every address: only a lock, at a higher
//!   count (guessing spread over many addresses), and only for attempts
//!   from unknown clients: a client that logged in as the account before
//!   (a known device) or that gives the account's recovery code (a second
//!   factor the admin holds) is judged by its own pair alone.
//!
//! An attempt is admitted, before any password is hashed, only if none of
//! its keys refuses it; admitted attempts count as failures until they are
//! decided, so parallel guesses cannot slip past the limit together.
//!
//! With `n` failures (and undecided attempts) in the window:
//! - `n < delay_after`: admitted at once;
//! - `n ≥ delay_after`: admitted only `first_delay · 2^(n − delay_after)`
//!   (at most `max_delay`) after the last failure, and never beside an
//!   undecided attempt;
//! - the failure that makes `n = lock_after`: locked for `lock` (every
//!   attempt refused, also with the right password) until the lock ends or
//!   an admin unlocks. A success clears its pair (not the address: one
//!   good account must not reset an address's count; not the account: an
//!   attack from elsewhere goes on).
//!
//! Every change to a key's failures or lock is noted, so the caller can
//! keep them in the store ([`Throttle::take_changes`], [`Throttle::load`]):
//! a restart does not lift a lock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

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
    /// The account is locked for this client (its pair), or for every
    /// unknown client (`everywhere`: failures from many addresses).
    Locked { until_ms: u64, everywhere: bool },
    /// The account must wait before its next attempt from this client.
    AccountWait { until_ms: u64 },
    /// The client address must wait (or is blocked) before its next attempt.
    AddressWait { until_ms: u64, locked: bool },
}

impl Refusal {
    pub fn until_ms(&self) -> u64 {
        match *self {
            Refusal::Locked { until_ms, .. } | Refusal::AccountWait { until_ms } | Refusal::AddressWait { until_ms, .. } => until_ms,
        }
    }
}

/// One key's failures and lock.
#[derive(Debug, Default, Clone)]
pub struct Entry {
    failures: VecDeque<u64>,
    in_flight: u32,
    locked_until: u64,
}

/// What is kept of an [`Entry`] across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub failures: Vec<u64>,
    pub locked_until: u64,
}

impl Entry {
    /// Forgets failures out of the window; a lock keeps those that made it
    /// (for admins to see) until it ends, and then forgets them all.
    pub fn prune(&mut self, rule: &Rule, now: u64) {
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
    pub fn check(&self, rule: &Rule, now: u64) -> Result<(), (u64, bool)> {
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

    /// Counts a failure; `Some(until)` when it locked the key.
    pub fn failed(&mut self, rule: &Rule, now: u64) -> Option<u64> {
        self.failures.push_back(now);
        while self.failures.len() > rule.lock_after as usize {
            self.failures.pop_front();
        }
        if self.failures.len() >= rule.lock_after as usize && self.locked_until <= now {
            self.locked_until = now.saturating_add(rule.lock_ms);
            return Some(self.locked_until);
        }
        None
    }

    pub fn idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0 && self.locked_until == 0
    }

    fn last_activity(&self) -> u64 {
        self.failures.back().copied().unwrap_or(0).max(self.locked_until)
    }

    pub fn failures(&self) -> usize {
        self.failures.len()
    }

    pub fn locked_until(&self, now: u64) -> Option<u64> {
        (self.locked_until > now).then_some(self.locked_until)
    }

    pub fn persisted(&self) -> Persisted {
        Persisted { failures: self.failures.iter().copied().collect(), locked_until: self.locked_until }
    }

    pub fn from_persisted(p: Persisted) -> Entry {
        Entry { failures: p.failures.into(), in_flight: 0, locked_until: p.locked_until }
    }
}

/// How many keys of each kind are tracked at most (an attacker spraying
/// names or addresses evicts the idlest entries, not memory).
pub const MAX_TRACKED: usize = 10_000;

/// Where an attempt comes from, for its pair: the client address, or a
/// device that logged in as the account before (its token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Address(IpAddr),
    Device([u8; 8]),
}

impl Source {
    fn text(&self) -> String {
        match self {
            Source::Address(a) => a.to_string(),
            Source::Device(d) => format!("device:{}", hex::encode(d)),
        }
    }

    fn parse(text: &str) -> Option<Source> {
        match text.strip_prefix("device:") {
            Some(h) => Some(Source::Device(hex::decode(h).ok()?.try_into().ok()?)),
            None => text.parse().ok().map(Source::Address),
        }
    }
}

/// The kinds of key, as the store keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Address,
    Pair,
    Account,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Address, Kind::Pair, Kind::Account];

    /// The prefix of its keys in the store's `locks` column family.
    pub fn tag(self) -> u8 {
        match self {
            Kind::Address => 1,
            Kind::Pair => 2,
            Kind::Account => 3,
        }
    }
}

/// A key whose state changed: kind, key text, and its state (`None`: gone).
pub type Change = (Kind, String, Option<Persisted>);

#[derive(Debug, Default)]
struct Maps {
    pairs: HashMap<(Source, String), Entry>,
    addresses: HashMap<IpAddr, Entry>,
    accounts: HashMap<String, Entry>,
    /// Keys changed since the last [`Throttle::take_changes`].
    dirty: Vec<(Kind, String)>,
}

/// The limits of the three kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// One account from one client.
    pub pair: Rule,
    /// One client address, across names.
    pub address: Rule,
    /// One account from every unknown client together (a lock only).
    pub account: Rule,
}

/// The throttle of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub rules: Rules,
    maps: Arc<Mutex<Maps>>,
}

/// An account's state as an admin sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Failures from every client within the window.
    pub failures: u32,
    /// The latest lock on the account (everywhere, or for some client).
    pub locked_until_ms: Option<u64>,
    /// Locked for every unknown client.
    pub locked_everywhere: bool,
    /// Clients (addresses or devices) locked out of it now, with until when.
    pub locked_for: Vec<(String, u64)>,
    /// When the next attempt from a client held up is admitted, if later than now.
    pub retry_at_ms: Option<u64>,
}

/// What a lock that a failure set covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    /// This account from this client.
    Pair { until_ms: u64 },
    /// This client address, across names.
    Address { until_ms: u64 },
    /// This account for every unknown client.
    Account { until_ms: u64 },
}

/// An admitted attempt: decide it with [`Ticket::finish`]; dropped
/// undecided (the request went away), it counts as nothing.
#[derive(Debug)]
pub struct Ticket {
    throttle: Throttle,
    user: String,
    address: IpAddr,
    source: Source,
    /// A known device or the recovery code: the account-wide lock does
    /// not apply and its failures do not count there.
    trusted: bool,
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

fn pair_text(source: &Source, user: &str) -> String {
    format!("{}\u{0}{user}", source.text())
}

/// The entry of `key`, made room for: at [`MAX_TRACKED`] the idlest entry
/// not in flight goes (and is noted as gone).
fn entry_mut<'a, K: std::hash::Hash + Eq + Clone>(map: &'a mut HashMap<K, Entry>, key: &K, dirty: &mut Vec<(Kind, String)>, kind: Kind, text: impl Fn(&K) -> String) -> &'a mut Entry {
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        let victim = map.iter().filter(|(_, e)| e.in_flight == 0).min_by_key(|(_, e)| (!e.idle(), e.locked_until != 0, e.last_activity())).map(|(k, _)| k.clone());
        if let Some(v) = victim {
            map.remove(&v);
            dirty.push((kind, text(&v)));
        }
    }
    map.entry(key.clone()).or_default()
}

impl Throttle {
    pub fn new(rules: Rules) -> Throttle {
        Throttle { rules, maps: Arc::new(Mutex::new(Maps::default())) }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes back the state kept in the store (at start-up).
    pub fn load(&self, entries: impl IntoIterator<Item = (Kind, String, Persisted)>, now: u64) {
        let mut maps = self.maps();
        for (kind, key, p) in entries {
            let mut e = Entry::from_persisted(p);
            let rule = match kind {
                Kind::Address => &self.rules.address,
                Kind::Pair => &self.rules.pair,
                Kind::Account => &self.rules.account,
            };
            e.prune(rule, now);
            if e.idle() {
                maps.dirty.push((kind, key));
                continue;
            }
            match kind {
                Kind::Address => {
                    if let Ok(a) = key.parse() {
                        maps.addresses.insert(a, e);
                    }
                }
                Kind::Account => {
                    maps.accounts.insert(key, e);
                }
                Kind::Pair => {
                    if let Some((s, u)) = key.split_once('\u{0}')
                        && let Some(source) = Source::parse(s)
                    {
                        maps.pairs.insert((source, u.to_string()), e);
                    }
                }
            }
        }
    }

    /// The keys changed since the last call, with their state now (`None`:
    /// gone): what the caller writes to the store.
    pub fn take_changes(&self) -> Vec<Change> {
        let mut maps = self.maps();
        let dirty = std::mem::take(&mut maps.dirty);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (kind, key) in dirty {
            if !seen.insert((kind.tag(), key.clone())) {
                continue;
            }
            let state = match kind {
                Kind::Address => key.parse().ok().and_then(|a: IpAddr| maps.addresses.get(&a)).map(Entry::persisted),
                Kind::Account => maps.accounts.get(&key).map(Entry::persisted),
                Kind::Pair => key.split_once('\u{0}').and_then(|(s, u)| Some((Source::parse(s)?, u.to_string()))).and_then(|k| maps.pairs.get(&k)).map(Entry::persisted),
            };
            out.push((kind, key, state.filter(|p| !p.failures.is_empty() || p.locked_until != 0)));
        }
        out
    }

    /// Admits an attempt for `user` from `address`, or says why not.
    /// `device`: the hash of a known device's token the client gave (it
    /// logged in as this account before); `trusted`: that device is known
    /// for the account, or the attempt carries the account's recovery code.
    pub fn admit(&self, user: &str, address: IpAddr, device: Option<[u8; 8]>, trusted: bool, now: u64) -> Result<Ticket, Refusal> {
        let (user, address) = (user_key(user), address_key(address));
        let source = match device.filter(|_| trusted) {
            Some(d) => Source::Device(d),
            None => Source::Address(address),
        };
        let rules = self.rules;
        let mut maps = self.maps();
        let maps = &mut *maps;
        let pair_key = (source.clone(), user.clone());
        let pair = entry_mut(&mut maps.pairs, &pair_key, &mut maps.dirty, Kind::Pair, |(s, u)| pair_text(s, u));
        pair.prune(&rules.pair, now);
        let pair_check = pair.check(&rules.pair, now);
        if !trusted {
            let addr = entry_mut(&mut maps.addresses, &address, &mut maps.dirty, Kind::Address, IpAddr::to_string);
            addr.prune(&rules.address, now);
            if let Err((until_ms, locked)) = addr.check(&rules.address, now) {
                return Err(Refusal::AddressWait { until_ms, locked });
            }
            let acc = entry_mut(&mut maps.accounts, &user, &mut maps.dirty, Kind::Account, String::clone);
            acc.prune(&rules.account, now);
            if let Some(until_ms) = acc.locked_until(now) {
                return Err(Refusal::Locked { until_ms, everywhere: true });
            }
        }
        match pair_check {
            Err((until_ms, true)) => return Err(Refusal::Locked { until_ms, everywhere: false }),
            Err((until_ms, false)) => return Err(Refusal::AccountWait { until_ms }),
            Ok(()) => {}
        }
        if let Some(e) = maps.pairs.get_mut(&pair_key) {
            e.in_flight += 1;
        }
        if !trusted && let Some(e) = maps.addresses.get_mut(&address) {
            e.in_flight += 1;
        }
        Ok(Ticket { throttle: self.clone(), user, address, source, trusted, done: false })
    }

    /// An account's failures and locks (for admins).
    pub fn account_state(&self, user: &str, now: u64) -> AccountState {
        let user = user_key(user);
        let rules = self.rules;
        let mut maps = self.maps();
        let mut state = AccountState::default();
        if let Some(e) = maps.accounts.get_mut(&user) {
            e.prune(&rules.account, now);
            state.failures = e.failures() as u32;
            state.locked_until_ms = e.locked_until(now);
            state.locked_everywhere = state.locked_until_ms.is_some();
        }
        for ((source, u), e) in maps.pairs.iter_mut().filter(|((_, u), _)| *u == user) {
            e.prune(&rules.pair, now);
            let _ = u;
            match e.check(&rules.pair, now) {
                Err((until, true)) => {
                    state.locked_for.push((source.text(), until));
                    state.locked_until_ms = state.locked_until_ms.max(Some(until));
                }
                Err((until, false)) => state.retry_at_ms = state.retry_at_ms.max(Some(until)),
                Ok(()) => {}
            }
            if state.failures == 0 {
                state.failures = state.failures.max(e.failures() as u32);
            }
        }
        state.locked_for.sort();
        state
    }

    /// Clears an account's failures and locks, everywhere (an admin's
    /// unlock, a new password).
    pub fn unlock(&self, user: &str) {
        let user = user_key(user);
        let mut maps = self.maps();
        let maps = &mut *maps;
        if maps.accounts.remove(&user).is_some() {
            maps.dirty.push((Kind::Account, user.clone()));
        }
        let pairs: Vec<(Source, String)> = maps.pairs.keys().filter(|(_, u)| *u == user).cloned().collect();
        for k in pairs {
            maps.pairs.remove(&k);
            maps.dirty.push((Kind::Pair, pair_text(&k.0, &k.1)));
        }
    }

    /// Client addresses that must wait or are blocked now: (address, failures, until).
    pub fn blocked_addresses(&self, now: u64) -> Vec<(IpAddr, u32, u64)> {
        let rule = self.rules.address;
        let mut maps = self.maps();
        let mut out: Vec<(IpAddr, u32, u64)> = maps
            .addresses
            .iter_mut()
            .filter_map(|(a, e)| {
                e.prune(&rule, now);
                e.check(&rule, now).err().map(|(until, _)| (*a, e.failures() as u32, until))
            })
            .collect();
        out.sort();
        out
    }

    fn decide(&self, t: &Ticket, outcome: Option<Outcome>, now: u64) -> Vec<Lockout> {
        let rules = self.rules;
        let mut maps = self.maps();
        let maps = &mut *maps;
        let mut locks = Vec::new();
        let failed = outcome == Some(Outcome::Failure);
        let pair_key = (t.source.clone(), t.user.clone());
        if let Some(e) = maps.pairs.get_mut(&pair_key) {
            e.in_flight = e.in_flight.saturating_sub(1);
            match outcome {
                Some(Outcome::Failure) => {
                    if let Some(until_ms) = e.failed(&rules.pair, now) {
                        locks.push(Lockout::Pair { until_ms });
                    }
                }
                Some(Outcome::Success) => {
                    e.failures.clear();
                    e.locked_until = 0;
                }
                None => {}
            }
            if outcome.is_some() {
                maps.dirty.push((Kind::Pair, pair_text(&pair_key.0, &pair_key.1)));
            }
            if e.idle() {
                maps.pairs.remove(&pair_key);
            }
        }
        if !t.trusted {
            if let Some(e) = maps.addresses.get_mut(&t.address) {
                e.in_flight = e.in_flight.saturating_sub(1);
                if failed {
                    if let Some(until_ms) = e.failed(&rules.address, now) {
                        locks.push(Lockout::Address { until_ms });
                    }
                    maps.dirty.push((Kind::Address, t.address.to_string()));
                }
                if e.idle() {
                    maps.addresses.remove(&t.address);
                }
            }
            if failed {
                let acc = entry_mut(&mut maps.accounts, &t.user, &mut maps.dirty, Kind::Account, String::clone);
                acc.prune(&rules.account, now);
                if let Some(until_ms) = acc.failed(&rules.account, now) {
                    locks.push(Lockout::Account { until_ms });
                }
                maps.dirty.push((Kind::Account, t.user.clone()));
            } else if maps.accounts.get(&t.user).is_some_and(Entry::idle) {
                maps.accounts.remove(&t.user);
            }
        }
        locks
    }
}

impl Ticket {
    /// Records how the attempt ended; returns the locks this failure set.
    pub fn finish(mut self, outcome: Outcome, now: u64) -> Vec<Lockout> {
        self.done = true;
        let throttle = self.throttle.clone();
        throttle.decide(&self, Some(outcome), now)
    }

    /// The attempt came from a known device or with the recovery code.
    pub fn trusted(&self) -> bool {
        self.trusted
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            let throttle = self.throttle.clone();
            throttle.decide(self, None, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: Rule = Rule { delay_after: 5, lock_after: 10, window_ms: 900_000, lock_ms: 900_000, first_delay_ms: 5_000, max_delay_ms: 80_000 };
    const ADDRESS: Rule = Rule { delay_after: 20, lock_after: 100, window_ms: 900_000, lock_ms: 900_000, first_delay_ms: 1_000, max_delay_ms: 10_000 };
    const ACCOUNT: Rule = Rule { delay_after: u32::MAX, lock_after: 30, window_ms: 900_000, lock_ms: 900_000, first_delay_ms: 0, max_delay_ms: 0 };
    const RULES: Rules = Rules { pair: PAIR, address: ADDRESS, account: ACCOUNT };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn fail(t: &Throttle, user: &str, from: u8, now: u64) -> Vec<Lockout> {
        t.admit(user, ip(from), None, false, now).unwrap().finish(Outcome::Failure, now)
    }

    #[test]
    fn one_client_is_delayed_then_locked_out_of_one_account_and_no_one_else_is() {
        let t = Throttle::new(RULES);
        let mut now = 1_000_000;
        for _ in 0..5 {
            fail(&t, "li", 1, now);
        }
        assert_eq!(t.admit("li", ip(1), None, false, now).err(), Some(Refusal::AccountWait { until_ms: now + 5_000 }));
        // The real user at another address is not held up.
        assert!(t.admit("li", ip(2), None, false, now).is_ok());
        for delay in [5_000, 10_000, 20_000, 40_000] {
            assert!(t.admit("li", ip(1), None, false, now + delay - 1).is_err());
            now += delay;
            fail(&t, "li", 1, now);
        }
        now += 80_000;
        assert_eq!(fail(&t, "li", 1, now), vec![Lockout::Pair { until_ms: now + 900_000 }]);
        let s = t.account_state("li", now);
        assert_eq!((s.failures, s.locked_for.len()), (10, 1));
        assert_eq!(t.admit("li", ip(1), None, false, now + 899_999).err(), Some(Refusal::Locked { until_ms: now + 900_000, everywhere: false }));
        assert!(t.admit("li", ip(2), None, false, now).is_ok(), "the lock is this client's");
        assert!(t.admit("wang", ip(1), None, false, now).is_ok(), "another name from the same address");
        // The lock ends with everything it counted.
        assert!(t.admit("li", ip(1), None, false, now + 900_000).is_ok());
    }

    #[test]
    fn guesses_from_many_addresses_lock_the_account_for_unknown_clients_only() {
        let t = Throttle::new(RULES);
        let device = [7u8; 8];
        let mut locks = Vec::new();
        for i in 0..30u8 {
            locks = fail(&t, "admin", 100 + i % 10, 1_000 + i as u64);
        }
        assert_eq!(locks, vec![Lockout::Account { until_ms: 1_029 + 900_000 }]);
        assert!(matches!(t.admit("admin", ip(1), None, false, 2_000), Err(Refusal::Locked { everywhere: true, .. })));
        // The real admin: from a known device, or with the recovery code.
        t.admit("admin", ip(1), Some(device), true, 2_000).unwrap().finish(Outcome::Success, 2_000);
        assert!(t.admit("admin", ip(1), None, true, 2_000).is_ok());
        // A device not known for the account is an unknown client.
        assert!(t.admit("admin", ip(1), Some(device), false, 2_000).is_err());
        t.unlock("admin");
        assert!(t.admit("admin", ip(1), None, false, 2_000).is_ok());
    }

    #[test]
    fn parallel_attempts_count_before_they_are_decided() {
        let t = Throttle::new(RULES);
        let tickets: Vec<_> = (0..8).filter_map(|_| t.admit("li", ip(1), None, false, 1).ok()).collect();
        assert_eq!(tickets.len(), 5);
        drop(tickets);
        assert_eq!(t.account_state("li", 1), AccountState::default(), "undecided attempts count as nothing");
    }

    #[test]
    fn an_address_has_its_own_higher_limit_across_names() {
        let t = Throttle::new(RULES);
        for i in 0..20 {
            fail(&t, &format!("user{i}"), 9, 1);
        }
        assert!(matches!(t.admit("user99", ip(9), None, false, 1), Err(Refusal::AddressWait { until_ms: 1_001, locked: false })));
        assert!(t.admit("user99", ip(8), None, false, 1).is_ok(), "another address is not held up");
        assert_eq!(t.blocked_addresses(1).len(), 1);
        // A success does not reset an address: the next failure waits longer.
        t.admit("ok", ip(9), None, false, 2_000).unwrap().finish(Outcome::Success, 2_000);
        fail(&t, "user98", 9, 2_001);
        assert!(matches!(t.admit("user99", ip(9), None, false, 2_002), Err(Refusal::AddressWait { until_ms: 4_001, .. })));
    }

    #[test]
    fn locks_survive_through_their_changes() {
        let t = Throttle::new(RULES);
        // Ten failures from one address, each after the wait it was told.
        let mut now = 1_000;
        for _ in 0..10 {
            now += 85_000;
            fail(&t, "li", 1, now);
        }
        let changes = t.take_changes();
        assert!(t.take_changes().is_empty());
        let again = Throttle::new(RULES);
        again.load(changes.into_iter().filter_map(|(k, key, p)| Some((k, key, p?))), now + 1);
        assert!(matches!(again.admit("li", ip(1), None, false, now + 1), Err(Refusal::Locked { everywhere: false, .. })));
        assert_eq!(again.account_state("li", now + 1).failures, 10);
        // An unlock is a change too: the keys go.
        again.unlock("li");
        assert!(again.take_changes().iter().all(|(_, _, p)| p.is_none()));
    }

    #[test]
    fn the_maps_are_bounded() {
        let t = Throttle::new(RULES);
        for i in 0..(MAX_TRACKED + 50) {
            if let Ok(k) = t.admit(&format!("u{i}"), IpAddr::from([10, 1, (i >> 8) as u8, i as u8]), None, false, 1) {
                k.finish(Outcome::Failure, 1);
            }
        }
        let maps = t.maps();
        assert!(maps.accounts.len() <= MAX_TRACKED && maps.addresses.len() <= MAX_TRACKED && maps.pairs.len() <= MAX_TRACKED);
    }
}
