//! Other systems that file cases here — a 12345 hotline platform, a 网格
//! (grid) app — and hear back: `[[integration]]` in the node's config, one
//! table per system.
//!
//! - **Identity**: an API key per system. The config keeps only the key's
//!   BLAKE3 hash (`key_blake3`); `zongzhi-node integration add` makes a key
//!   and prints the lines to add. Requests carry it as `X-Api-Key` (or
//!   Open311's `api_key` parameter).
//! - **Filing** (`POST /api/intake/cases`, `api/intake.rs`): the system's
//!   own reference (`external_ref`) is kept with the case, in the batch
//!   that files it (meta keys [`ref_key`], [`case_key`]): a repeat of the
//!   reference answers the case already filed, after a crash too.
//! - **Callbacks**: every step of a case a system filed is queued in the
//!   notification outbox (`crate::notify`, the same cursor, retries and
//!   give-up as the citizens' messages) for the system's `callback_url`,
//!   a JSON body signed with HMAC-SHA256 under its `callback_secret`.
//! - **Open311** GeoReport v2 (`api/open311.rs`): the service list and the
//!   request routes, a thin mapping over the same filing.

use std::time::Duration;

use axum::http::{HeaderName, Method, Uri};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use zongzhi_protocol::RecordId;

/// One `[[integration]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// The system's name in records and callbacks: letters, digits, `_`, `-` (at most 32).
    pub name: String,
    /// What operators see, e.g. 市12345热线平台.
    #[serde(default)]
    pub display_name: String,
    /// BLAKE3 (hex) of the system's API key.
    pub key_blake3: String,
    /// Where status callbacks go (`http://host[:port]/path`); none: the system polls.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The HMAC-SHA256 key of the callbacks (needed with `callback_url`, at least 16 characters).
    #[serde(default)]
    pub callback_secret: Option<crate::notify::Token>,
    /// The channel its filings are recorded under (default `phone`: 12345 is a hotline).
    #[serde(default = "default_channel")]
    pub channel: zongzhi_protocol::case::Channel,
}

fn default_channel() -> zongzhi_protocol::case::Channel {
    zongzhi_protocol::case::Channel::Phone
}

/// A system, checked.
#[derive(Debug, Clone)]
pub struct Integration {
    pub name: String,
    pub display_name: String,
    key_hash: [u8; 32],
    pub callback: Option<Callback>,
    pub channel: zongzhi_protocol::case::Channel,
}

/// Where and how a system's callbacks go.
#[derive(Clone)]
pub struct Callback {
    uri: Uri,
    address: String,
    secret: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("uri", &self.uri).field("secret", &"…").finish()
    }
}

/// Every system of the config.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    pub systems: Vec<Integration>,
}

/// The callback headers.
pub const SIGNATURE_HEADER: &str = "x-zongzhi-signature";
pub const TIMESTAMP_HEADER: &str = "x-zongzhi-timestamp";
pub const EVENT_HEADER: &str = "x-zongzhi-event";

impl Integrations {
    /// Checks the `[[integration]]` tables; the message says what to fix.
    pub fn from_config(tables: &[IntegrationConfig]) -> Result<Integrations, String> {
        let mut systems: Vec<Integration> = Vec::new();
        for t in tables {
            let name = t.name.trim();
            if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("[[integration]] name = \"{}\": 1 to 32 letters, digits, '_' or '-'", t.name));
            }
            if systems.iter().any(|s| s.name == name) {
                return Err(format!("[[integration]] name = \"{name}\" appears twice"));
            }
            let key_hash: [u8; 32] = hex::decode(t.key_blake3.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("[[integration]] {name}: key_blake3 must be 64 hex digits (`zongzhi-node integration add` prints it)"))?;
            let callback = match &t.callback_url {
                None => None,
                Some(url) => {
                    let secret = t
                        .callback_secret
                        .as_ref()
                        .map(|s| s.0.clone())
                        .filter(|s| s.len() >= 16)
                        .ok_or_else(|| format!("[[integration]] {name}: callback_url needs callback_secret (at least 16 characters) to sign the callbacks"))?;
                    let w = crate::notify::Webhook::new(url, None, Duration::from_secs(10)).map_err(|e| e.replace("[notify] url", &format!("[[integration]] {name}: callback_url")))?;
                    Some(Callback { uri: w.uri().clone(), address: w.address().to_string(), secret })
                }
            };
            systems.push(Integration { name: name.to_string(), display_name: t.display_name.clone(), key_hash, callback, channel: t.channel });
        }
        Ok(Integrations { systems })
    }

    /// The system whose API key this is.
    pub fn by_key(&self, key: &str) -> Option<&Integration> {
        let hash = blake3::hash(key.trim().as_bytes());
        self.systems.iter().find(|s| blake3::Hash::from(s.key_hash) == hash)
    }

    pub fn by_name(&self, name: &str) -> Option<&Integration> {
        self.systems.iter().find(|s| s.name == name)
    }

    /// Whether any system wants callbacks (the notification worker runs then).
    pub fn callbacks(&self) -> bool {
        self.systems.iter().any(|s| s.callback.is_some())
    }
}

/// A new API key (printed once by `zongzhi-node integration add`) and its hash for the config.
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let key = format!("zzk_{}", hex::encode(bytes));
    let hash = blake3::hash(key.as_bytes()).to_hex().to_string();
    (key, hash)
}

/// A new callback secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// The meta key of a system's reference → case id.
pub fn ref_key(system: &str, reference: &str) -> String {
    format!("intake_ref/{system}/{reference}")
}

/// The meta key of a case → `{"system", "ref"}`.
pub fn case_key(case: &RecordId) -> String {
    format!("intake_case/{case}")
}

/// Which system filed `case`, under which reference.
pub fn source_of(store: &crate::store::Store, case: &RecordId) -> crate::store::Result<Option<(String, String)>> {
    let Some(bytes) = store.meta_get(&case_key(case))? else { return Ok(None) };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(match (v["system"].as_str(), v["ref"].as_str()) {
        (Some(s), Some(r)) => Some((s.to_string(), r.to_string())),
        _ => None,
    })
}

/// The meta entries that tie `case` to the system's reference (written in the filing's batch).
pub fn source_entries(system: &str, reference: &str, case: &RecordId) -> [(String, Vec<u8>); 2] {
    [(ref_key(system, reference), case.0.to_vec()), (case_key(case), json!({"system": system, "ref": reference}).to_string().into_bytes())]
}

/// The signature of a callback body at `timestamp` (Unix seconds):
/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Callback {
    /// POSTs one callback (its JSON `body`); `Ok` on a 2xx answer.
    pub async fn deliver(&self, event: &str, body: &[u8], now_ms: u64, timeout: Duration) -> Result<(), String> {
        let t = now_ms / 1000;
        let headers = vec![
            (HeaderName::from_static(TIMESTAMP_HEADER), t.to_string()),
            (HeaderName::from_static(SIGNATURE_HEADER), sign(&self.secret, t, body)),
            (HeaderName::from_static(EVENT_HEADER), event.to_string()),
        ];
        let call = crate::http_client::Call {
            method: Method::POST,
            address: &self.address,
            host: self.uri.authority().map_or("", |a| a.as_str()),
            path: self.uri.path_and_query().map_or("/", |p| p.as_str()),
            headers,
            content_type: "application/json; charset=utf-8",
            body: body.to_vec(),
            timeout,
            max_body: 16 * 1024,
        };
        let answer = call.send().await?;
        if answer.success() {
            Ok(())
        } else {
            let text = answer.text(200);
            Err(if text.is_empty() { format!("HTTP {}", answer.status) } else { format!("HTTP {}: {text}", answer.status) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_to_their_system_and_bad_tables_are_refused() {
        let (key, hash) = new_key();
        let table = |extra: &str| -> Result<Integrations, String> {
            let t: IntegrationConfig = toml::from_str(&format!("name = \"h12345\"\nkey_blake3 = \"{hash}\"\n{extra}")).map_err(|e| e.to_string())?;
            Integrations::from_config(&[t])
        };
        let i = table("").unwrap();
        assert_eq!(i.by_key(&key).map(|s| s.name.as_str()), Some("h12345"));
        assert!(i.by_key("zzk_wrong").is_none());
        assert!(table("callback_url = \"http://127.0.0.1:9/cb\"\n").unwrap_err().contains("callback_secret"));
        assert!(table("callback_url = \"http://127.0.0.1:9/cb\"\ncallback_secret = \"short\"\n").is_err());
        assert!(table("callback_url = \"http://127.0.0.1:9/cb\"\ncallback_secret = \"0123456789abcdef\"\n").unwrap().callbacks());
        assert!(table("callback_url = \"ftp://x/\"\ncallback_secret = \"0123456789abcdef\"\n").is_err());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // What Python's hmac.new(b"Jefe", b'1700000000.{"a":1}', hashlib.sha256) gives.
        assert_eq!(sign("Jefe", 1_700_000_000, br#"{"a":1}"#), "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a");
    }
}
