//! The signed record envelope.
//!
//! Wire form (bincode, see [`crate::codec`]):
//! `format version: u8 | kind: u8 | author: [u8; 32] | payload: bytes | signature: [u8; 64]`.
//!
//! The signature covers [`SIGNING_DOMAIN`] ‖ kind ‖ author ‖ the exact payload
//! bytes. The record id is the BLAKE3 hash of the whole encoding. Nothing is
//! ever re-encoded to verify: a record keeps the bytes it arrived as.
//!
//! Every payload starts with a [`Header`] (author chain `seq`/`prev` and a
//! hybrid logical clock), followed by the body of its kind.

use crate::case::CaseEvent;
use crate::cert::{CertError, NodeCert, Revocation};
use crate::codec::{self, CodecError, Decode, Encode};
use crate::hlc::Hlc;
use crate::identity::{KeyError, NodeId, NodeKey};
use crate::report::MonthlyReport;
use crate::policy::Policy;

pub use crate::id::RecordId;

/// The only record format version this code reads and writes. Version 2:
/// a case event names the policy version its author held. Version 3: the
/// citizen's side (a filing's [`crate::case::Intake`], rating invitations,
/// citizens' ratings, 差评申诉).
pub const FORMAT_VERSION: u8 = 3;

/// Prefix of every signed message, so a record signature can never be
/// mistaken for a signature over anything else.
pub const SIGNING_DOMAIN: &[u8] = b"zongzhi/record/v1\0";

/// Largest accepted encoded record (1 MiB). Attachments are blobs, not records.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    CaseEvent = 1,
    NodeCert = 2,
    Revocation = 3,
    Policy = 4,
    Report = 5,
}

impl RecordKind {
    pub fn from_u8(b: u8) -> Result<Self, RecordError> {
        Ok(match b {
            1 => RecordKind::CaseEvent,
            2 => RecordKind::NodeCert,
            3 => RecordKind::Revocation,
            4 => RecordKind::Policy,
            5 => RecordKind::Report,
            other => return Err(RecordError::UnknownKind(other)),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::CaseEvent => "case_event",
            RecordKind::NodeCert => "node_cert",
            RecordKind::Revocation => "revocation",
            RecordKind::Policy => "policy",
            RecordKind::Report => "report",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RecordError {
    #[error("record encoding: {0}")]
    Codec(#[from] CodecError),
    #[error("unsupported record format version {0} (this node reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("record signature: {0}")]
    Signature(#[from] KeyError),
    #[error("author chain: seq must start at 1 and prev must be absent exactly for seq 1")]
    BadChainHeader,
}

/// Common header of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Header {
    /// Position in the author's chain: 1, 2, 3 …
    pub seq: u64,
    /// Id of the author's previous record; `None` only for `seq == 1`.
    pub prev: Option<RecordId>,
    pub hlc: Hlc,
}

/// The body of a record, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    CaseEvent(CaseEvent),
    NodeCert(NodeCert),
    Revocation(Revocation),
    Policy(Box<Policy>),
    /// A center's signed monthly figures.
    Report(MonthlyReport),
}

impl Body {
    pub fn kind(&self) -> RecordKind {
        match self {
            Body::CaseEvent(_) => RecordKind::CaseEvent,
            Body::NodeCert(_) => RecordKind::NodeCert,
            Body::Revocation(_) => RecordKind::Revocation,
            Body::Policy(_) => RecordKind::Policy,
            Body::Report(_) => RecordKind::Report,
        }
    }

    fn encode_payload(&self, header: &Header) -> Vec<u8> {
        let mut out = codec::encode(header);
        match self {
            Body::CaseEvent(b) => codec::encode_into(b, &mut out),
            Body::NodeCert(b) => codec::encode_into(b, &mut out),
            Body::Revocation(b) => codec::encode_into(b, &mut out),
            Body::Policy(b) => codec::encode_into(b.as_ref(), &mut out),
            Body::Report(b) => codec::encode_into(b, &mut out),
        }
        out
    }

    fn decode_payload(kind: RecordKind, payload: &[u8]) -> Result<(Header, Body), RecordError> {
        let (header, used) = codec::decode_prefix::<Header>(payload, MAX_RECORD_BYTES)?;
        let rest = &payload[used..];
        let body = match kind {
            RecordKind::CaseEvent => Body::CaseEvent(codec::decode(rest, MAX_RECORD_BYTES)?),
            RecordKind::NodeCert => Body::NodeCert(codec::decode(rest, MAX_RECORD_BYTES)?),
            RecordKind::Revocation => Body::Revocation(codec::decode(rest, MAX_RECORD_BYTES)?),
            RecordKind::Policy => Body::Policy(Box::new(codec::decode(rest, MAX_RECORD_BYTES)?)),
            RecordKind::Report => Body::Report(codec::decode(rest, MAX_RECORD_BYTES)?),
        };
        Ok((header, body))
    }
}

/// The envelope exactly as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
struct Envelope {
    version: u8,
    kind: u8,
    author: NodeId,
    payload: Vec<u8>,
    signature: [u8; 64],
}

fn signed_message(kind: u8, author: &NodeId, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + 33 + payload.len());
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.push(kind);
    msg.extend_from_slice(author.as_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// A decoded record. It keeps its original bytes; its id is their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub author: NodeId,
    pub header: Header,
    pub body: Body,
    bytes: Vec<u8>,
    signature: [u8; 64],
    payload_range: (usize, usize),
}

impl Record {
    /// Builds and signs a new record.
    pub fn sign(key: &NodeKey, header: Header, body: Body) -> Record {
        let kind = body.kind() as u8;
        let author = key.id();
        let payload = body.encode_payload(&header);
        let signature = key.sign(&signed_message(kind, &author, &payload));
        let env = Envelope { version: FORMAT_VERSION, kind, author, payload, signature };
        let bytes = codec::encode(&env);
        // Decoding what we just encoded cannot fail; go through the same path
        // as received records so the payload range is computed in one place.
        match Record::decode_unverified(&bytes) {
            Ok(r) => r,
            Err(e) => panic!("self-encoded record does not decode: {e}"),
        }
    }

    /// Decodes without checking the signature (for stored records whose
    /// signature was checked on the way in, and for batch verification).
    pub fn decode_unverified(bytes: &[u8]) -> Result<Record, RecordError> {
        Record::decode_unverified_owned(bytes.to_vec())
    }

    /// [`Record::decode_unverified`] keeping the given buffer (no copy).
    pub fn decode_unverified_owned(bytes: Vec<u8>) -> Result<Record, RecordError> {
        let env: Envelope = codec::decode_canonical(&bytes, MAX_RECORD_BYTES)?;
        if env.version != FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion(env.version));
        }
        let kind = RecordKind::from_u8(env.kind)?;
        let (header, body) = Body::decode_payload(kind, &env.payload)?;
        if (header.seq == 1) != header.prev.is_none() || header.seq == 0 {
            return Err(RecordError::BadChainHeader);
        }
        // The payload is the last variable field before the fixed 64-byte
        // signature, so its bytes end 64 bytes before the end.
        let end = bytes.len() - 64;
        let start = end - env.payload.len();
        Ok(Record {
            id: RecordId::of(&bytes),
            author: env.author,
            header,
            body,
            bytes,
            signature: env.signature,
            payload_range: (start, end),
        })
    }

    /// Decodes untrusted bytes and checks the signature strictly.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let record = Record::decode_unverified(bytes)?;
        record.verify()?;
        Ok(record)
    }

    /// Checks the signature (weak keys refused, `verify_strict`).
    pub fn verify(&self) -> Result<(), KeyError> {
        self.author.verify(&self.signed_message(), &self.signature)
    }

    /// The exact message the author signed.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.kind() as u8, &self.author, self.payload())
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_range.0..self.payload_range.1]
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn case_event(&self) -> Option<&CaseEvent> {
        match &self.body {
            Body::CaseEvent(e) => Some(e),
            _ => None,
        }
    }
}

/// Verifies many records at once: one multiscalar multiplication checks the
/// random linear combination of all their signature equations (cofactored,
/// as ed25519 batch verification is), with each author's key appearing once
/// however many of its records the batch holds. When the batch fails, each
/// record is checked on its own with `verify_strict`, so a bad record is
/// named and good ones pass.
///
/// What `verify_strict` refuses beyond the equation is checked per record
/// first: weak or invalid keys, non-canonical or small-order R, non-canonical
/// s. (A signature whose R has a torsion component can pass the cofactored
/// equation and fail `verify_strict`'s cofactorless one; only the key's
/// holder can make one, and it changes no signed content.)
/// Whether a compressed Edwards point encodes its y-coordinate canonically:
/// the low 255 bits (little-endian) are below p = 2^255 − 19.
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    // y ≥ p only for 2^255 − 19 ..= 2^255 − 1: bytes 1..=30 all 0xFF, the
    // top byte's low seven bits set, the lowest byte ≥ 0xED.
    !(bytes[31] & 0x7F == 0x7F && bytes[1..31].iter().all(|b| *b == 0xFF) && bytes[0] >= 0xED)
}

pub fn verify_batch(records: &[&Record]) -> Vec<Result<(), KeyError>> {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

    let mut results: Vec<Result<(), KeyError>> = Vec::with_capacity(records.len());
    // Per author: its key (decompressed once) and the sum of z·h over its
    // records in the batch. A batch usually has one or a few authors, so
    // the multiscalar multiplication has about one point per record (its R)
    // instead of two.
    /// An author's key point and its Σ z·h, or why its key is unusable.
    type AuthorTerm = Result<(EdwardsPoint, Scalar), KeyError>;
    let mut authors: Vec<(NodeId, AuthorTerm)> = Vec::new();
    let mut r_points: Vec<EdwardsPoint> = Vec::with_capacity(records.len());
    let mut r_scalars: Vec<Scalar> = Vec::with_capacity(records.len());
    let mut s_sum = Scalar::ZERO;
    let mut idx = Vec::with_capacity(records.len());
    // The random weights z_i must be unpredictable to whoever chose the
    // signatures: derive them from a hash of the whole batch (every record
    // id commits to its signature and message).
    let mut seed = blake3::Hasher::new_derive_key("zongzhi/verify_batch/v1");
    for r in records {
        seed.update(&r.id.0);
    }
    let seed = seed.finalize();
    for (i, r) in records.iter().enumerate() {
        let a = match authors.iter().position(|(k, _)| *k == r.author) {
            Some(a) => a,
            None => {
                let key = r.author.verifying_key().map(|k| (k.to_edwards(), Scalar::ZERO));
                authors.push((r.author, key));
                authors.len() - 1
            }
        };
        if let Err(e) = &authors[a].1 {
            results.push(Err(e.clone()));
            continue;
        }
        let Some((big_r, s, h)) = signature_terms(r) else {
            results.push(Err(KeyError::BadSignature));
            continue;
        };
        let mut z = [0u8; 32];
        z[..16].copy_from_slice(&blake3::keyed_hash(seed.as_bytes(), &(i as u64).to_le_bytes()).as_bytes()[..16]);
        let z = Scalar::from_bytes_mod_order(z);
        s_sum += z * s;
        if let Ok((_, zh)) = &mut authors[a].1 {
            *zh += z * h;
        }
        r_points.push(big_r);
        r_scalars.push(z);
        idx.push(i);
        results.push(Ok(()));
    }
    if idx.is_empty() {
        return results;
    }
    // 8·( −(Σ z·s)·B + Σ z·R + Σ_authors (Σ z·h)·A ) = 0
    let (a_scalars, a_points): (Vec<Scalar>, Vec<EdwardsPoint>) =
        authors.iter().filter_map(|(_, k)| k.as_ref().ok()).map(|(p, zh)| (*zh, *p)).unzip();
    let scalars = std::iter::once(-s_sum).chain(r_scalars).chain(a_scalars);
    let points = std::iter::once(ED25519_BASEPOINT_POINT).chain(r_points).chain(a_points);
    let ok = EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity();
    if !ok {
        for &i in &idx {
            results[i] = records[i].verify();
        }
    }
    results
}


/// A record's signature as the terms of the batch equation: its R point,
/// its s and the challenge h; `None` for what `verify_strict` refuses and a
/// batch equation would not catch (a non-canonical or small-order R, a
/// non-canonical s).
fn signature_terms(r: &Record) -> Option<(curve25519_dalek::edwards::EdwardsPoint, curve25519_dalek::scalar::Scalar, curve25519_dalek::scalar::Scalar)> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};
    let sig = r.signature();
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    // Canonical means y < p: decompressing accepts y ≥ p (reduced), and
    // the other non-canonical form (x = 0 with the sign bit set) is a
    // small-order point. A byte test instead of compressing the point
    // again, which costs a field inversion per record.
    let big_r = Some(r_bytes).filter(is_canonical_y).and_then(|b| CompressedEdwardsY(b).decompress()).filter(|p| !p.is_small_order())?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let h = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(r.author.as_bytes())
            .chain_update(SIGNING_DOMAIN)
            .chain_update([r.kind() as u8])
            .chain_update(r.author.as_bytes())
            .chain_update(r.payload()),
    );
    Some((big_r, s, h))
}


impl NodeCert {
    /// Extracts and checks the self-consistency of a cert record (signature,
    /// level, issuer field), without any chain.
    pub fn from_record(record: &Record) -> Result<&NodeCert, CertError> {
        let Body::NodeCert(cert) = &record.body else {
            return Err(CertError::NotACert);
        };
        record.verify()?;
        if cert.level != cert.division.level() {
            return Err(CertError::LevelMismatch {
                division: cert.division,
                stated: cert.level,
                actual: cert.division.level(),
            });
        }
        if record.author != cert.issuer {
            return Err(CertError::IssuerMismatch { author: record.author.to_string(), issuer: cert.issuer.to_string() });
        }
        let chars = cert.name.chars().count();
        if chars == 0 || chars > 100 {
            return Err(CertError::BadName);
        }
        Ok(cert)
    }

}

#[cfg(test)]
mod tests {
    use super::is_canonical_y;

    /// y as 32 little-endian bytes from 2^255 − k (top bit clear).
    fn below_2_255(k: u8) -> [u8; 32] {
        let mut b = [0xFF; 32];
        b[0] = 0u8.wrapping_sub(k);
        b[31] = 0x7F;
        b
    }

    #[test]
    fn canonical_y_is_below_p() {
        assert!(is_canonical_y(&[0; 32]));
        assert!(is_canonical_y(&below_2_255(20))); // p − 1
        assert!(!is_canonical_y(&below_2_255(19))); // p
        assert!(!is_canonical_y(&below_2_255(1))); // 2^255 − 1
        // The sign bit is not part of y.
        let mut b = below_2_255(20);
        b[31] |= 0x80;
        assert!(is_canonical_y(&b));
        b = below_2_255(19);
        b[31] |= 0x80;
        assert!(!is_canonical_y(&b));
        // One lower byte not 0xFF: far below p.
        b = below_2_255(1);
        b[17] = 0xFE;
        assert!(is_canonical_y(&b));
        // Agrees with compressing the decompressed point again, for every
        // small y and every y in 2^255 − 256 .. 2^255 (around p).
        use curve25519_dalek::edwards::CompressedEdwardsY;
        for low in 0u8..=255 {
            let small = {
                let mut b = [0u8; 32];
                b[0] = low;
                b
            };
            let high = {
                let mut b = below_2_255(1);
                b[0] = low;
                b
            };
            for b in [small, high] {
                if let Some(p) = CompressedEdwardsY(b).decompress()
                    && !p.is_small_order()
                {
                    assert_eq!(is_canonical_y(&b), p.compress().0 == b, "{b:?}");
                }
            }
        }
    }
}
