//! A citizen's receipt of a filing (受理回执): the case number, the filing
//! record's id and the filing center's signature over both, as one short
//! text that also goes into a QR code. Anyone holding the city root key and
//! the tree's certificates checks it offline: the signature proves the
//! center registered exactly this case, which the citizen can show
//! whatever happens to the case later.
//!
//! Token: `<number>.<base32(record id ‖ signature)>` (RFC 4648 base32
//! without padding, upper case: the QR code's alphanumeric mode). The
//! signer is not in the token: it is the key certified for the division
//! the number starts with (any of them, when the division was re-keyed).

use data_encoding::BASE32_NOPAD;

use crate::division::DivisionCode;
use crate::identity::{NodeId, NodeKey};
use crate::record::{Body, Record, RecordId};
use crate::trust::Trust;

/// Prefix of the message a receipt signature covers: never a record's
/// (`record::SIGNING_DOMAIN`) or anything else's.
pub const RECEIPT_DOMAIN: &[u8] = b"zongzhi/receipt/v1\0";

/// Longest token accepted (a number is at most 40 characters).
pub const MAX_TOKEN_CHARS: usize = 240;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub number: String,
    pub record: RecordId,
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a receipt token: {0}")]
    Malformed(&'static str),
    #[error("the case number {0:?} does not start with a division code")]
    BadNumber(String),
    #[error("no certified center holds division {0} in the certificates given")]
    UnknownCenter(DivisionCode),
    #[error("the signature does not match any key certified for {0}: the receipt was altered or not issued by that center")]
    BadSignature(DivisionCode),
}

fn message(number: &str, record: &RecordId) -> Vec<u8> {
    let mut m = RECEIPT_DOMAIN.to_vec();
    m.extend_from_slice(&record.0);
    m.extend_from_slice(number.as_bytes());
    m
}

/// What a checked receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub division: DivisionCode,
    /// The official name of the center that signed it.
    pub center: String,
    pub signer: NodeId,
    /// The signer's key has since been revoked (the receipt was still
    /// signed by the center's key at the time).
    pub signer_revoked: bool,
}

impl Receipt {
    pub fn sign(key: &NodeKey, number: &str, record: RecordId) -> Receipt {
        Receipt { number: number.to_string(), record, signature: key.sign(&message(number, &record)) }
    }

    pub fn token(&self) -> String {
        let mut raw = self.record.0.to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{}.{}", self.number, BASE32_NOPAD.encode(&raw))
    }

    /// Parses a token as printed or scanned (surrounding spaces, lower
    /// case and line breaks inside the code are forgiven).
    pub fn parse(token: &str) -> Result<Receipt, ReceiptError> {
        let token: String = token.chars().filter(|c| !c.is_whitespace()).collect();
        if token.chars().count() > MAX_TOKEN_CHARS {
            return Err(ReceiptError::Malformed("too long"));
        }
        let (number, code) = token.rsplit_once('.').ok_or(ReceiptError::Malformed("expected <number>.<code>"))?;
        if number.is_empty() || number.len() > 40 || !number.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ReceiptError::Malformed("bad case number"));
        }
        let raw = BASE32_NOPAD.decode(code.to_ascii_uppercase().as_bytes()).map_err(|_| ReceiptError::Malformed("the code is not base32"))?;
        if raw.len() != 96 {
            return Err(ReceiptError::Malformed("the code has the wrong length"));
        }
        let mut record = [0u8; 32];
        record.copy_from_slice(&raw[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[32..]);
        Ok(Receipt { number: number.to_string(), record: RecordId(record), signature })
    }

    /// The division that filed the case, from its number.
    pub fn division(&self) -> Result<DivisionCode, ReceiptError> {
        self.number.split('-').next().and_then(|d| d.parse().ok()).ok_or_else(|| ReceiptError::BadNumber(self.number.clone()))
    }

    /// Checks the receipt against a trust store built from the city root
    /// key and the tree's certificates (and revocations).
    pub fn verify(&self, trust: &Trust) -> Result<Verified, ReceiptError> {
        let division = self.division()?;
        let msg = message(&self.number, &self.record);
        let mut any = false;
        for m in trust.members().filter(|m| m.cert.division == division) {
            any = true;
            if m.cert.key.verify(&msg, &self.signature).is_ok() {
                return Ok(Verified { division, center: m.cert.name.clone(), signer: m.cert.key, signer_revoked: trust.revocation(&m.cert.key).is_some() });
            }
        }
        Err(if any { ReceiptError::BadSignature(division) } else { ReceiptError::UnknownCenter(division) })
    }
}

/// Builds a trust store from the root key and certificate and revocation
/// records in any order (what `GET /api/public/trust` serves): each is
/// added once its issuer is known. Records that never fit are skipped.
pub fn trust_from_records(root: NodeId, records: &[Record]) -> Trust {
    let mut trust = Trust::new(root);
    let mut left: Vec<&Record> = records.iter().collect();
    loop {
        let before = left.len();
        left.retain(|r| match &r.body {
            Body::NodeCert(_) => trust.add_cert(r).is_err(),
            Body::Revocation(_) => trust.add_revocation(r).is_err(),
            _ => false,
        });
        if left.len() == before {
            return trust;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_any_change_is_caught() {
        let key = NodeKey::from_seed([3; 32]);
        let r = Receipt::sign(&key, "330106010001-2026-000001", RecordId([9; 32]));
        let token = r.token();
        assert!(token.len() < 200, "{}", token.len());
        assert_eq!(Receipt::parse(&token).unwrap(), r);
        // Spaces around and a lower-case code (as typed from the slip) parse the same.
        let (number, code) = token.split_once('.').unwrap();
        assert_eq!(Receipt::parse(&format!(" {number}.{} ", code.to_lowercase())).unwrap(), r);
        let msg = message(&r.number, &r.record);
        assert!(key.id().verify(&msg, &r.signature).is_ok());
        // Another number with the same code: the signature no longer fits.
        let other = Receipt::parse(&token.replace("000001", "000002")).unwrap();
        assert!(key.id().verify(&message(&other.number, &other.record), &other.signature).is_err());
        for bad in ["", "x", "330106010001-2026-000001.", "330106010001-2026-000001.AAAA", &"A".repeat(300)] {
            assert!(Receipt::parse(bad).is_err(), "{bad}");
        }
    }
}
