//! The citizen's side of a case: the receipt given at filing (case number,
//! query code, signed token, QR code), the one-time rating token given at
//! feedback, and the gate in front of the public progress page (a
//! per-address request rate; locks by the guessing address, per number and
//! over all numbers, kept across restarts, that staff can lift).
//!
//! The query code and the rating token are shown once and stored nowhere
//! but as hashes inside the signed records (`case::Intake::query_code_hash`,
//! `case::RatingInvite::token_hash`), so a stolen store or backup does not
//! give them away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use data_encoding::BASE32_NOPAD;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::receipt::Receipt;
use zongzhi_protocol::{NodeKey, RecordId};

use crate::login::throttle::{Entry, Persisted, Rule, address_key};
use crate::store::{Store, StoreError};

/// The characters of a query code: digits and capitals without the ones
/// people confuse (0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters of a query code: 10 of 31 symbols, 49 bits.
const CODE_CHARS: usize = 10;

/// A new query code, `XXXXX-XXXXX`.
pub fn new_query_code() -> String {
    let mut out = String::with_capacity(CODE_CHARS + 1);
    let mut i = 0;
    while i < CODE_CHARS {
        let mut b = [0u8; 1];
        OsRng.fill_bytes(&mut b);
        // Rejection sampling: no symbol more likely than another.
        if (b[0] as usize) < 248 {
            if i == CODE_CHARS / 2 {
                out.push('-');
            }
            out.push(CODE_ALPHABET[b[0] as usize % CODE_ALPHABET.len()] as char);
            i += 1;
        }
    }
    out
}

/// A new rating token and its text (26 base32 characters).
pub fn new_rating_token() -> ([u8; 16], String) {
    let mut t = [0u8; 16];
    OsRng.fill_bytes(&mut t);
    (t, BASE32_NOPAD.encode(&t))
}

/// A rating token as the citizen brings it back (`None`: not one).
pub fn parse_rating_token(text: &str) -> Option<[u8; 16]> {
    let clean: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    BASE32_NOPAD.decode(clean.as_bytes()).ok()?.try_into().ok()
}

/// The receipt of a filing, as the API returns it and the console prints
/// it: the number, the query code (this once), the signed token, a link to
/// the public page and the QR code of that link (SVG).
pub fn receipt_json(key: &NodeKey, number: &str, record: RecordId, query_code: &str, public_url: Option<&str>) -> Value {
    let token = Receipt::sign(key, number, record).token();
    let link = public_url.map(|u| format!("{}#n={}&t={}", u.trim_end_matches('#'), number, token));
    // The QR code carries the link when there is a public page, else the
    // token alone; the query code stays off it (a photo of the slip should
    // not open the case), and is written beside it.
    let qr_text = link.clone().unwrap_or_else(|| token.clone());
    let qr_svg = qrcode::QrCode::with_error_correction_level(qr_text.as_bytes(), qrcode::EcLevel::M)
        .map(|q| q.render::<qrcode::render::svg::Color<'_>>().min_dimensions(180, 180).quiet_zone(true).build())
        .unwrap_or_default();
    json!({
        "number": number,
        "query_code": query_code,
        "token": token,
        "link": link,
        "qr_svg": qr_svg,
    })
}

fn default_max_wrong() -> u32 {
    5
}

fn default_max_wrong_per_address() -> u32 {
    20
}

fn default_lock_minutes() -> u64 {
    15
}

fn default_per_minute() -> u32 {
    30
}

fn default_wrong_answer_ms() -> u64 {
    200
}

/// `[public]` in the node's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Serve `/public/` and `/api/public/…` (typically at the city, which
    /// holds every case event of the tree).
    #[serde(default)]
    pub enabled: bool,
    /// The public page's address as citizens reach it (printed on
    /// receipts and in messages), e.g. `https://zz.example.gov.cn/public/`.
    #[serde(default)]
    pub url: Option<String>,
    /// Wrong query codes or rating tokens for one case number from one
    /// client address before that address is locked out of the number
    /// (other addresses, the citizen's among them, are not).
    #[serde(default = "default_max_wrong")]
    pub max_wrong_codes: u32,
    /// Wrong codes or tokens from one client address, over every number,
    /// before the address is locked out of the page's checks.
    #[serde(default = "default_max_wrong_per_address")]
    pub max_wrong_per_address: u32,
    /// How long a lock lasts, and the window wrong codes count in.
    #[serde(default = "default_lock_minutes")]
    pub lock_minutes: u64,
    /// Public requests per client address and minute.
    #[serde(default = "default_per_minute")]
    pub requests_per_minute: u32,
    /// A wrong code or token and an unknown number are answered this long
    /// after the request came (milliseconds), however long the check
    /// took: the time of the answer tells nothing either.
    #[serde(default = "default_wrong_answer_ms")]
    pub wrong_answer_ms: u64,
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            enabled: false,
            url: None,
            max_wrong_codes: default_max_wrong(),
            max_wrong_per_address: default_max_wrong_per_address(),
            lock_minutes: default_lock_minutes(),
            requests_per_minute: default_per_minute(),
            wrong_answer_ms: default_wrong_answer_ms(),
        }
    }
}

/// Most (address, number) pairs, addresses and rate counters the gate
/// tracks; beyond, the idlest entries go.
const MAX_TRACKED: usize = 100_000;

/// The tags of the gate's keys in the store's `locks` column family (the
/// login throttle's are 1–3).
const TAG_ADDRESS: u8 = 4;
const TAG_PAIR: u8 = 5;

/// Why the gate turned a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests from this address; seconds to wait.
    RateLimited(u64),
    /// This address is locked out of the number after wrong codes; seconds to wait.
    Locked(u64),
    /// This address is locked out of every number after wrong codes; seconds to wait.
    AddressLocked(u64),
}

/// A lock on a number, for staff: the client address and until when (Unix ms).
pub type NumberLock = (IpAddr, u64);

#[derive(Debug, Default)]
struct State {
    /// Per (address, number): wrong attempts and a lock.
    pairs: HashMap<(IpAddr, String), Entry>,
    /// Per address, over every number: wrong attempts and a lock.
    addresses: HashMap<IpAddr, Entry>,
    /// Per address: the minute's start (Unix ms) and its requests.
    rate: HashMap<IpAddr, (u64, u32)>,
    /// Keys changed since they were last written.
    dirty: Vec<(u8, String)>,
}

fn pair_text(addr: &IpAddr, number: &str) -> String {
    format!("{addr}\u{0}{number}")
}

/// The gate in front of the public routes: a request rate per client
/// address, and locks by the guesser, never by the case alone: an address
/// that gives wrong codes for a number is locked out of that number, one
/// that gives wrong codes for many numbers is locked out of all; the
/// citizen at another address is not held up. The locks are kept in the
/// store (a restart does not lift them); staff lift a number's
/// ([`PublicGate::unlock_number`]).
#[derive(Debug)]
pub struct PublicGate {
    pub config: PublicConfig,
    state: Mutex<State>,
    store: Arc<Store>,
    /// One [`PublicGate::save`] at a time.
    saving: Mutex<()>,
}

impl PublicGate {
    /// The gate over `store`, with the locks it kept.
    pub fn new(config: PublicConfig, store: Arc<Store>, now_ms: u64) -> Result<Arc<PublicGate>, StoreError> {
        let gate = PublicGate { config, state: Mutex::new(State::default()), store, saving: Mutex::new(()) };
        {
            let (pair_rule, address_rule) = (gate.pair_rule(), gate.address_rule());
            let mut st = gate.lock();
            for (key, p) in gate.store.locks::<Persisted>(TAG_PAIR)? {
                let mut e = Entry::from_persisted(p);
                e.prune(&pair_rule, now_ms);
                match key.split_once('\u{0}').and_then(|(a, n)| Some((a.parse::<IpAddr>().ok()?, n.to_string()))) {
                    Some(k) if !e.idle() => {
                        st.pairs.insert(k, e);
                    }
                    _ => st.dirty.push((TAG_PAIR, key)),
                }
            }
            for (key, p) in gate.store.locks::<Persisted>(TAG_ADDRESS)? {
                let mut e = Entry::from_persisted(p);
                e.prune(&address_rule, now_ms);
                match key.parse::<IpAddr>() {
                    Ok(a) if !e.idle() => {
                        st.addresses.insert(a, e);
                    }
                    _ => st.dirty.push((TAG_ADDRESS, key)),
                }
            }
        }
        gate.save()?;
        Ok(Arc::new(gate))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn window_ms(&self) -> u64 {
        self.config.lock_minutes.max(1).saturating_mul(60_000)
    }

    fn pair_rule(&self) -> Rule {
        let w = self.window_ms();
        Rule { delay_after: u32::MAX, lock_after: self.config.max_wrong_codes.max(1), window_ms: w, lock_ms: w, first_delay_ms: 0, max_delay_ms: 0 }
    }

    fn address_rule(&self) -> Rule {
        Rule { lock_after: self.config.max_wrong_per_address.max(1), ..self.pair_rule() }
    }

    /// Admits one request from `addr` for `number` (checked before the
    /// code is: a locked number answers nothing about its code).
    pub fn admit(&self, addr: IpAddr, number: &str, now: u64) -> Result<(), Refusal> {
        let addr = address_key(addr);
        let (pair_rule, address_rule) = (self.pair_rule(), self.address_rule());
        let mut st = self.lock();
        if st.rate.len() > MAX_TRACKED {
            st.rate.retain(|_, (start, _)| now.saturating_sub(*start) < 60_000);
        }
        let entry = st.rate.entry(addr).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= 60_000 {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > self.config.requests_per_minute {
            let wait = 60u64.saturating_sub(now.saturating_sub(entry.0) / 1000);
            return Err(Refusal::RateLimited(wait.max(1)));
        }
        if let Some(e) = st.addresses.get_mut(&addr) {
            e.prune(&address_rule, now);
            if let Some(until) = e.locked_until(now) {
                return Err(Refusal::AddressLocked(until.saturating_sub(now).div_ceil(1000).max(1)));
            }
        }
        if let Some(e) = st.pairs.get_mut(&(addr, number.to_string())) {
            e.prune(&pair_rule, now);
            if let Some(until) = e.locked_until(now) {
                return Err(Refusal::Locked(until.saturating_sub(now).div_ceil(1000).max(1)));
            }
        }
        Ok(())
    }

    /// Counts a wrong code or token for `number` from `addr`: the attempts
    /// `addr` has left on it, or why it is locked now.
    pub fn wrong(&self, addr: IpAddr, number: &str, now: u64) -> Result<u32, Refusal> {
        let addr = address_key(addr);
        let (pair_rule, address_rule) = (self.pair_rule(), self.address_rule());
        let secs = |until: u64| until.saturating_sub(now).div_ceil(1000).max(1);
        let mut st = self.lock();
        let st = &mut *st;
        if st.pairs.len() >= MAX_TRACKED {
            st.pairs.retain(|_, e| e.locked_until(now).is_some());
        }
        if st.addresses.len() >= MAX_TRACKED {
            st.addresses.retain(|_, e| e.locked_until(now).is_some());
        }
        let key = (addr, number.to_string());
        let pair = st.pairs.entry(key.clone()).or_default();
        pair.prune(&pair_rule, now);
        let pair_lock = pair.failed(&pair_rule, now);
        let left = self.config.max_wrong_codes.saturating_sub(pair.failures() as u32);
        st.dirty.push((TAG_PAIR, pair_text(&addr, number)));
        let address = st.addresses.entry(addr).or_default();
        address.prune(&address_rule, now);
        let address_lock = address.failed(&address_rule, now);
        st.dirty.push((TAG_ADDRESS, addr.to_string()));
        if let Some(until) = address_lock {
            tracing::warn!(%addr, "public page: address locked out after {} wrong codes", self.config.max_wrong_per_address);
            return Err(Refusal::AddressLocked(secs(until)));
        }
        match pair_lock {
            Some(until) => Err(Refusal::Locked(secs(until))),
            None => Ok(left),
        }
    }

    /// A right code clears its address's count for the number.
    pub fn right(&self, addr: IpAddr, number: &str) {
        let addr = address_key(addr);
        let mut st = self.lock();
        if st.pairs.remove(&(addr, number.to_string())).is_some() {
            st.dirty.push((TAG_PAIR, pair_text(&addr, number)));
        }
    }

    /// The addresses locked out of `number` now, with until when.
    pub fn locks_of(&self, number: &str, now: u64) -> Vec<NumberLock> {
        let st = self.lock();
        let mut out: Vec<NumberLock> = st.pairs.iter().filter(|((_, n), _)| n == number).filter_map(|((a, _), e)| Some((*a, e.locked_until(now)?))).collect();
        out.sort();
        out
    }

    /// Staff lift every lock and count on `number` (a citizen who could not
    /// get in, say behind the same address as someone guessing); returns
    /// how many addresses were locked out of it.
    pub fn unlock_number(&self, number: &str, now: u64) -> usize {
        let mut st = self.lock();
        let st = &mut *st;
        let keys: Vec<(IpAddr, String)> = st.pairs.keys().filter(|(_, n)| n == number).cloned().collect();
        let mut locked = 0;
        for k in keys {
            if st.pairs.remove(&k).is_some_and(|e| e.locked_until(now).is_some()) {
                locked += 1;
            }
            st.dirty.push((TAG_PAIR, pair_text(&k.0, &k.1)));
        }
        locked
    }

    /// Writes the changed locks and counts to the store.
    pub fn save(&self) -> Result<(), StoreError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let changes: Vec<(u8, String, Option<Persisted>)> = {
            let mut st = self.lock();
            let dirty = std::mem::take(&mut st.dirty);
            let mut seen = std::collections::HashSet::new();
            dirty
                .into_iter()
                .filter(|k| seen.insert(k.clone()))
                .map(|(tag, key)| {
                    let state = match tag {
                        TAG_PAIR => key.split_once('\u{0}').and_then(|(a, n)| st.pairs.get(&(a.parse().ok()?, n.to_string()))).map(Entry::persisted),
                        _ => key.parse().ok().and_then(|a: IpAddr| st.addresses.get(&a)).map(Entry::persisted),
                    };
                    (tag, key, state.filter(|p| !p.failures.is_empty() || p.locked_until != 0))
                })
                .collect()
        };
        if changes.is_empty() {
            return Ok(());
        }
        let mut b = self.store.batch();
        for (tag, key, state) in &changes {
            match state {
                Some(p) => b.put_lock(*tag, key, p),
                None => b.delete_lock(*tag, key),
            }
        }
        self.store.commit(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_tokens() {
        let c = new_query_code();
        assert_eq!(c.len(), 11);
        assert!(c.chars().all(|ch| ch == '-' || CODE_ALPHABET.contains(&(ch as u8))));
        assert_ne!(new_query_code(), c);
        let (t, text) = new_rating_token();
        assert_eq!(parse_rating_token(&text.to_lowercase()), Some(t));
        assert_eq!(parse_rating_token("ABC"), None);
    }

    #[test]
    fn a_guessing_address_is_locked_out_and_the_citizen_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let cfg = PublicConfig { enabled: true, max_wrong_codes: 3, max_wrong_per_address: 5, requests_per_minute: 100, ..PublicConfig::default() };
        let gate = PublicGate::new(cfg.clone(), store.clone(), 1_000).unwrap();
        let (guesser, citizen) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(gate.wrong(guesser, "N1", 1_000), Ok(2));
        assert_eq!(gate.wrong(guesser, "N1", 1_000), Ok(1));
        assert!(matches!(gate.wrong(guesser, "N1", 1_000), Err(Refusal::Locked(_))));
        assert!(matches!(gate.admit(guesser, "N1", 1_000), Err(Refusal::Locked(_))));
        assert_eq!(gate.admit(citizen, "N1", 1_000), Ok(()), "the citizen's address is not locked out");
        gate.save().unwrap();
        // Kept across a restart; lifted by staff.
        let again = PublicGate::new(cfg.clone(), store.clone(), 2_000).unwrap();
        assert!(matches!(again.admit(guesser, "N1", 2_000), Err(Refusal::Locked(_))));
        assert_eq!(again.locks_of("N1", 2_000).len(), 1);
        assert_eq!(again.unlock_number("N1", 2_000), 1);
        assert_eq!(again.admit(guesser, "N1", 2_000), Ok(()));
        // Many numbers from one address: the address goes.
        assert_eq!(again.wrong(guesser, "N2", 2_000), Ok(2));
        assert!(matches!(again.wrong(guesser, "N3", 2_000), Err(Refusal::AddressLocked(_))), "five wrong codes from this address in the window");
        assert!(matches!(again.admit(guesser, "N9", 2_000), Err(Refusal::AddressLocked(_))));
        again.save().unwrap();
        assert!(matches!(PublicGate::new(cfg, store, 3_000).unwrap().admit(guesser, "N9", 3_000), Err(Refusal::AddressLocked(_))));
    }

    #[test]
    fn addresses_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let gate = PublicGate::new(PublicConfig { enabled: true, requests_per_minute: 5, ..PublicConfig::default() }, store, 0).unwrap();
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..5 {
            assert_eq!(gate.admit(a, "N2", 1), Ok(()));
        }
        assert!(matches!(gate.admit(a, "N2", 1), Err(Refusal::RateLimited(_))));
        assert_eq!(gate.admit(IpAddr::from([10, 0, 0, 2]), "N2", 1), Ok(()));
        assert_eq!(gate.admit(a, "N2", 60_001), Ok(()), "a new minute");
    }
}
