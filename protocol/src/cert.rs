//! Node certificates, enrollment requests and revocations.
//!
//! The city's cert is self-signed and is the trust root; every node is
//! configured with the root key. Every other cert is issued (signed) by the
//! parent center. Certs and revocations are records, so they travel and are
//! checked like everything else.

use crate::codec::{self, CodecError, Decode, Encode};
use crate::division::{DivisionCode, Level};
use crate::identity::{KeyError, NodeId, NodeKey};

/// Binds a key to a center.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NodeCert {
    pub key: NodeId,
    pub division: DivisionCode,
    pub level: Level,
    /// Official name, e.g. 西湖区社会治安综合治理中心.
    pub name: String,
    pub issuer: NodeId,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    pub serial: u64,
}

/// Withdraws a key: records it authored with `seq > cutoff_seq` are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Revocation {
    pub key: NodeId,
    pub division: DivisionCode,
    pub cutoff_seq: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CertError {
    #[error("record is not a node certificate")]
    NotACert,
    #[error("certificate level {stated:?} does not match division code {division} ({actual:?})")]
    LevelMismatch { division: DivisionCode, stated: Level, actual: Level },
    #[error("certificate was signed by {author}, but names {issuer} as issuer")]
    IssuerMismatch { author: String, issuer: String },
    #[error("root certificate must be self-signed by the configured root key for a city division")]
    BadRoot,
    #[error("issuer {issuer_division} is not the parent of {division}")]
    NotParent { issuer_division: DivisionCode, division: DivisionCode },
    #[error("certificate chain is empty")]
    EmptyChain,
    #[error("certificate is not valid at this time")]
    Expired,
    #[error("signature: {0}")]
    Signature(#[from] KeyError),
    #[error("certificate name must be 1 to 100 characters")]
    BadName,
}

impl NodeCert {
    pub fn valid_at(&self, now_ms: u64) -> bool {
        self.not_before_ms <= now_ms && now_ms < self.not_after_ms
    }
}

/// A child's request to be enrolled, signed by the child's own key (proof of
/// possession). It is a file the parent's operator approves, not a record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct EnrollmentRequest {
    pub key: NodeId,
    pub division: DivisionCode,
    pub name: String,
    pub created_ms: u64,
    pub signature: [u8; 64],
}

const ENROLL_DOMAIN: &[u8] = b"zongzhi/enroll/v1\0";
const ENROLL_ARMOR: &str = "ZONGZHI ENROLLMENT REQUEST";

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum EnrollError {
    #[error("not an enrollment request file")]
    Armor,
    #[error("enrollment request encoding: {0}")]
    Codec(#[from] CodecError),
    #[error("enrollment request signature: {0}")]
    Signature(#[from] KeyError),
}

impl EnrollmentRequest {
    fn message(key: &NodeId, division: DivisionCode, name: &str, created_ms: u64) -> Vec<u8> {
        let mut msg = ENROLL_DOMAIN.to_vec();
        msg.extend_from_slice(&codec::encode(&(key, division, name.to_string(), created_ms)));
        msg
    }

    pub fn new(key: &NodeKey, division: DivisionCode, name: &str, created_ms: u64) -> Self {
        let id = key.id();
        let signature = key.sign(&Self::message(&id, division, name, created_ms));
        EnrollmentRequest { key: id, division, name: name.to_string(), created_ms, signature }
    }

    pub fn verify(&self) -> Result<(), KeyError> {
        self.key.verify(&Self::message(&self.key, self.division, &self.name, self.created_ms), &self.signature)
    }

    /// Text form: an armored hex block, safe to mail or copy on a USB stick.
    pub fn to_armored(&self) -> String {
        armor(ENROLL_ARMOR, &codec::encode(self))
    }

    pub fn from_armored(text: &str) -> Result<Self, EnrollError> {
        let bytes = dearmor(ENROLL_ARMOR, text).ok_or(EnrollError::Armor)?;
        let req: EnrollmentRequest = codec::decode(&bytes, 4096)?;
        req.verify()?;
        Ok(req)
    }
}

/// Armored text form of records (a cert chain file holds several).
pub const RECORDS_ARMOR: &str = "ZONGZHI RECORD";

/// Wraps bytes as `-----BEGIN LABEL-----` / hex lines / `-----END LABEL-----`.
pub fn armor(label: &str, bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in hex.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads the first armored block with `label`.
pub fn dearmor(label: &str, text: &str) -> Option<Vec<u8>> {
    dearmor_all(label, text).into_iter().next()
}

/// Reads every armored block with `label`, in order.
pub fn dearmor_all(label: &str, text: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == begin {
            current = Some(String::new());
        } else if line == end {
            if let Some(hex) = current.take()
                && let Ok(bytes) = hex::decode(hex)
            {
                out.push(bytes);
            }
        } else if let Some(hex) = current.as_mut() {
            hex.push_str(line);
        }
    }
    out
}

/// Whether `name` is an acceptable official name for a center at `level`
/// (DOMAIN.md: X市/X县（市、区）/X乡（镇、街道）社会治安综合治理中心,
/// X村（社区）社会治安综合治理工作站; the short forms 综治中心 and
/// (综治)工作站 too). Names travel into statistics, CSV and XLSX: no
/// control characters, and no leading `=`, `+`, `-`, `@` (a spreadsheet
/// formula).
pub fn check_name(level: Level, name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if name.trim() != name || !(2..=100).contains(&n) {
        return Err("the name must be 2 to 100 characters, without leading or trailing spaces".into());
    }
    if name.chars().any(char::is_control) || name.starts_with(['=', '+', '-', '@']) {
        return Err("the name holds control characters or starts like a spreadsheet formula (=, +, -, @)".into());
    }
    let (markers, suffixes): (&[&str], &[&str]) = match level {
        Level::City => (&["市", "州", "盟", "地区"], &["社会治安综合治理中心", "综治中心"]),
        Level::County => (&["县", "市", "区", "旗"], &["社会治安综合治理中心", "综治中心"]),
        Level::Township => (&["乡", "镇", "街道", "苏木"], &["社会治安综合治理中心", "综治中心"]),
        Level::Village => (&["村", "社区", "嘎查"], &["社会治安综合治理工作站", "综治工作站", "工作站", "综治中心"]),
    };
    let Some(suffix) = suffixes.iter().find(|s| name.ends_with(**s)) else {
        return Err(format!("a {} center's name ends with {}", level.zh(), suffixes.join(" or ")));
    };
    let place = &name[..name.len() - suffix.len()];
    if place.is_empty() || !markers.iter().any(|m| place.contains(m)) {
        return Err(format!("a {} center's name names its place with {} before {suffix}, e.g. 示例{}{}", level.zh(), markers.join("/"), markers[0], suffixes[0]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_request_round_trip_and_tamper() {
        let key = NodeKey::from_seed([3; 32]);
        let req = EnrollmentRequest::new(&key, "330102001000".parse().unwrap(), "留下街道综治中心", 42);
        let text = req.to_armored();
        assert_eq!(EnrollmentRequest::from_armored(&text).unwrap(), req);
        let mut forged = req.clone();
        forged.division = "330102002000".parse().unwrap();
        assert!(matches!(EnrollmentRequest::from_armored(&forged.to_armored()), Err(EnrollError::Signature(_))));
        assert_eq!(EnrollmentRequest::from_armored("nonsense").err(), Some(EnrollError::Armor));
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn official_names_by_level() {
        assert!(check_name(Level::Village, "清波门社区社会治安综合治理工作站").is_ok());
        assert!(check_name(Level::Village, "示例社区1工作站").is_ok());
        assert!(check_name(Level::Township, "留下街道综治中心").is_ok());
        assert!(check_name(Level::County, "西湖区社会治安综合治理中心").is_ok());
        assert!(check_name(Level::City, "杭州市社会治安综合治理中心").is_ok());
        // A township's name at a village, a formula, no place, spaces.
        assert!(check_name(Level::Village, "留下街道社会治安综合治理中心").is_err());
        assert!(check_name(Level::Village, "=HYPERLINK(\"x\")村工作站").is_err());
        assert!(check_name(Level::Village, "工作站").is_err());
        assert!(check_name(Level::Township, " 留下街道综治中心").is_err());
        assert!(check_name(Level::County, "留下街道综治中心").is_err());
    }

    #[test]
    fn provinces_are_checked() {
        assert!("990100000000".parse::<DivisionCode>().is_err());
        assert!("330100000000".parse::<DivisionCode>().is_ok());
        assert!("820100000000".parse::<DivisionCode>().is_ok());
    }
}
