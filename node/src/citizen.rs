//! The citizen's side of a case: the receipt given at filing (case number,
//! query code, signed token, QR code), the one-time rating token given at
//! feedback, and the gate in front of the public progress page (per-number
//! lockout after wrong query codes, a per-address request rate).
//!
//! The query code and the rating token are shown once and stored nowhere
//! but as hashes inside the signed records (`case::Intake::query_code_hash`,
//! `case::RatingInvite::token_hash`), so a stolen store or backup does not
//! give them away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use data_encoding::BASE32_NOPAD;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};
use zongzhi_protocol::receipt::Receipt;
use zongzhi_protocol::{NodeKey, RecordId};

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

fn default_lock_minutes() -> u64 {
    15
}

fn default_per_minute() -> u32 {
    30
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
    /// Wrong query codes or rating tokens for one case number before the
    /// number is locked.
    #[serde(default = "default_max_wrong")]
    pub max_wrong_codes: u32,
    #[serde(default = "default_lock_minutes")]
    pub lock_minutes: u64,
    /// Public requests per client address and minute.
    #[serde(default = "default_per_minute")]
    pub requests_per_minute: u32,
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            enabled: false,
            url: None,
            max_wrong_codes: default_max_wrong(),
            lock_minutes: default_lock_minutes(),
            requests_per_minute: default_per_minute(),
        }
    }
}

/// Most numbers and addresses the gate tracks; beyond, the oldest entries go.
const MAX_TRACKED: usize = 100_000;

/// Why the gate turned a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests from this address; seconds to wait.
    RateLimited(u64),
    /// The number is locked after wrong codes; seconds to wait.
    Locked(u64),
}

#[derive(Debug, Default)]
struct State {
    /// Per number: wrong attempts, and until when it is locked.
    wrong: HashMap<String, (u32, Option<Instant>)>,
    /// Per address: the minute's start and its requests.
    rate: HashMap<IpAddr, (Instant, u32)>,
}

/// The gate in front of the public routes.
#[derive(Debug)]
pub struct PublicGate {
    pub config: PublicConfig,
    state: Mutex<State>,
}

impl PublicGate {
    pub fn new(config: PublicConfig) -> PublicGate {
        PublicGate { config, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one request from `addr` for `number` (checked before the
    /// code is: a locked number answers nothing about its code).
    pub fn admit(&self, addr: IpAddr, number: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.rate.len() > MAX_TRACKED {
            st.rate.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = st.rate.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > self.config.requests_per_minute {
            let wait = 60u64.saturating_sub(now.duration_since(entry.0).as_secs());
            return Err(Refusal::RateLimited(wait.max(1)));
        }
        if let Some((_, Some(until))) = st.wrong.get(number)
            && *until > now
        {
            return Err(Refusal::Locked(until.duration_since(now).as_secs().max(1)));
        }
        Ok(())
    }

    /// Counts a wrong code or token for `number`; `Some(seconds)` when the
    /// number is now locked, else the attempts left.
    pub fn wrong(&self, number: &str) -> Result<u32, u64> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.wrong.len() > MAX_TRACKED {
            st.wrong.retain(|_, (_, until)| until.is_some_and(|u| u > now));
        }
        let entry = st.wrong.entry(number.to_string()).or_insert((0, None));
        if entry.1.is_some_and(|u| u <= now) {
            *entry = (0, None);
        }
        entry.0 += 1;
        if entry.0 >= self.config.max_wrong_codes {
            let secs = self.config.lock_minutes * 60;
            entry.1 = Some(now + Duration::from_secs(secs));
            return Err(secs);
        }
        Ok(self.config.max_wrong_codes - entry.0)
    }

    /// A right code clears the number's count.
    pub fn right(&self, number: &str) {
        self.lock().wrong.remove(number);
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
    fn a_number_locks_after_wrong_codes_and_addresses_are_rate_limited() {
        let gate = PublicGate::new(PublicConfig { enabled: true, max_wrong_codes: 3, requests_per_minute: 5, ..PublicConfig::default() });
        let a = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(gate.wrong("N1"), Ok(2));
        assert_eq!(gate.wrong("N1"), Ok(1));
        assert!(gate.wrong("N1").is_err());
        assert!(matches!(gate.admit(a, "N1"), Err(Refusal::Locked(_))));
        assert_eq!(gate.admit(a, "N2"), Ok(()));
        for _ in 0..3 {
            assert_eq!(gate.admit(a, "N2"), Ok(()));
        }
        assert!(matches!(gate.admit(a, "N2"), Err(Refusal::RateLimited(_))));
        assert_eq!(gate.admit(IpAddr::from([10, 0, 0, 2]), "N2"), Ok(()));
    }
}
