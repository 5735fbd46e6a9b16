//! The signed record envelope.
//!
//! Wire form (bincode, see [`crate::codec`]), frozen for every format:
//! `format: u8 | kind: u8 | author: [u8; 32] | payload: bytes | signature: [u8; 64]`.
//!
//! The signature covers, for format 3, `zongzhi/record/v1\0 ‖ kind ‖ author ‖
//! payload`, and from format 4 on `zongzhi/record/v2\0 ‖ format ‖ kind ‖
//! author ‖ payload` ([`crate::format`]). The record id is the BLAKE3 hash
//! of the whole encoding. Nothing is ever re-encoded to verify: a record
//! keeps the bytes it arrived as.
//!
//! Every payload starts with a [`Header`] (author chain `seq`/`prev` and a
//! hybrid logical clock), followed by the body of its kind, decoded by the
//! module of its format and upcast to the current model. A record of a
//! format newer than this build reads decodes to [`Body::Unreadable`].

use crate::case::CaseEvent;
use crate::cert::{CertError, NodeCert, Revocation};
use crate::codec::{self, CodecError, Decode, Encode};
use crate::format;
use crate::hlc::Hlc;
use crate::identity::{KeyError, NodeId, NodeKey};
use crate::policy::Policy;
use crate::report::MonthlyReport;

pub use crate::id::RecordId;

/// The newest record format this build reads and writes (see
/// [`crate::format`] for every format it reads). Version 2: a case event
/// names the policy version its author held. Version 3: the citizen's side.
/// Version 4: the signed format byte, the upgrade gate, 督办回复.
pub const FORMAT_VERSION: u8 = crate::format::LATEST;

/// Prefix of the signed message of format 3 (see [`crate::format`]), so a
/// record signature can never be mistaken for a signature over anything
/// else.
pub const SIGNING_DOMAIN: &[u8] = crate::format::SIGNING_DOMAIN_V1;

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
    #[error("unsupported record format version {0} (this node reads versions {oldest}–{latest})", oldest = crate::format::OLDEST, latest = crate::format::LATEST)]
    UnsupportedVersion(u8),
    #[error(transparent)]
    NotInFormat(#[from] crate::format::NotInFormat),
    #[error("unreadable record: {0}")]
    Unreadable(String),
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
    /// A body of a format newer than this build reads: kept, verified and
    /// passed on, read after an upgrade.
    Unreadable(crate::format::Unreadable),
}

impl Body {
    /// The kind; `None` for an unreadable body of a kind this build does
    /// not know.
    pub fn kind(&self) -> Option<RecordKind> {
        Some(match self {
            Body::CaseEvent(_) => RecordKind::CaseEvent,
            Body::NodeCert(_) => RecordKind::NodeCert,
            Body::Revocation(_) => RecordKind::Revocation,
            Body::Policy(_) => RecordKind::Policy,
            Body::Report(_) => RecordKind::Report,
            Body::Unreadable(u) => return RecordKind::from_u8(u.kind).ok(),
        })
    }

    fn kind_byte(&self) -> u8 {
        match self {
            Body::Unreadable(u) => u.kind,
            other => other.kind().map_or(0, |k| k as u8),
        }
    }

    fn encode_payload(&self, format: u8, header: &Header) -> Result<Vec<u8>, RecordError> {
        let mut out = codec::encode(header);
        encode_body(format, self, &mut out)?;
        Ok(out)
    }

    fn decode_payload(format: u8, kind: u8, payload: &[u8]) -> Result<(Header, Body), RecordError> {
        let (header, used) = codec::decode_prefix::<Header>(payload, MAX_RECORD_BYTES)?;
        let rest = &payload[used..];
        if format > crate::format::LATEST {
            let u = unreadable(format, kind, rest);
            if u.kind == RecordKind::CaseEvent as u8 && u.case.is_none() {
                return Err(RecordError::Codec(CodecError::Malformed("a case event's first fields (case, parents, unit, operator) do not decode".into())));
            }
            return Ok((header, Body::Unreadable(u)));
        }
        if format < crate::format::OLDEST {
            return Err(RecordError::UnsupportedVersion(format));
        }
        let body = decode_body(format, RecordKind::from_u8(kind)?, rest)?;
        Ok((header, body))
    }
}

/// Decodes a body of `kind` in `format` (which this build reads) into the
/// current model.
fn decode_body(format: u8, kind: RecordKind, rest: &[u8]) -> Result<Body, RecordError> {
    let limit = MAX_RECORD_BYTES;
    Ok(match (format, kind) {
        (3, RecordKind::CaseEvent) => Body::CaseEvent(codec::decode::<format::v3::CaseEvent>(rest, limit)?.into()),
        (3, RecordKind::Policy) => Body::Policy(Box::new(codec::decode::<format::v3::Policy>(rest, limit)?.into())),
        (4, RecordKind::CaseEvent) => Body::CaseEvent(codec::decode::<format::v4::CaseEvent>(rest, limit)?),
        (4, RecordKind::Policy) => Body::Policy(Box::new(codec::decode::<format::v4::Policy>(rest, limit)?)),
        // Certificates, revocations and reports did not change in format 4.
        (3 | 4, RecordKind::NodeCert) => Body::NodeCert(codec::decode(rest, limit)?),
        (3 | 4, RecordKind::Revocation) => Body::Revocation(codec::decode(rest, limit)?),
        (3 | 4, RecordKind::Report) => Body::Report(codec::decode(rest, limit)?),
        (other, _) => return Err(RecordError::UnsupportedVersion(other)),
    })
}

/// Appends `body` encoded in `format` to `out`; fails when the body uses
/// something `format` does not have.
fn encode_body(format: u8, body: &Body, out: &mut Vec<u8>) -> Result<(), RecordError> {
    match (format, body) {
        (_, Body::Unreadable(u)) => return Err(RecordError::Unreadable(u.reason())),
        (3, Body::CaseEvent(e)) => codec::encode_into(&format::v4::case_event_to_v3(e)?, out),
        (3, Body::Policy(p)) => codec::encode_into(&format::v4::policy_to_v3(p)?, out),
        (4, Body::CaseEvent(e)) => codec::encode_into(e, out),
        (4, Body::Policy(p)) => codec::encode_into(p.as_ref(), out),
        (3 | 4, Body::NodeCert(c)) => codec::encode_into(c, out),
        (3 | 4, Body::Revocation(r)) => codec::encode_into(r, out),
        (3 | 4, Body::Report(r)) => codec::encode_into(r, out),
        (other, _) => return Err(RecordError::UnsupportedVersion(other)),
    }
    Ok(())
}

/// The lowest format that can carry `body` (what a writer needs the gate at).
pub fn needed_for(body: &Body) -> u8 {
    match body {
        Body::CaseEvent(e) => e.action.format_needed(),
        Body::Policy(p) => {
            if format::v4::policy_to_v3(p).is_ok() {
                3
            } else {
                4
            }
        }
        Body::NodeCert(_) | Body::Revocation(_) | Body::Report(_) => format::OLDEST,
        Body::Unreadable(u) => u.format,
    }
}

/// The frozen parts of a body of a format this build cannot read.
fn unreadable(format: u8, kind: u8, rest: &[u8]) -> format::Unreadable {
    let case = (kind == RecordKind::CaseEvent as u8).then(|| codec::decode_prefix::<format::CasePrefix>(rest, MAX_RECORD_BYTES).ok().map(|(p, _)| p)).flatten();
    format::Unreadable { format, kind, case }
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

fn signed_message(format: u8, kind: u8, author: &NodeId, payload: &[u8]) -> Vec<u8> {
    let mut msg = crate::format::signed_prefix(format, kind, author);
    msg.extend_from_slice(payload);
    msg
}

/// A decoded record. It keeps its original bytes; its id is their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    /// The format the record was signed in (the envelope's first byte).
    pub format: u8,
    pub author: NodeId,
    pub header: Header,
    pub body: Body,
    bytes: Vec<u8>,
    signature: [u8; 64],
    payload_range: (usize, usize),
    kind: u8,
}

impl Record {
    /// Builds and signs a new record in the newest format (tests and tools;
    /// a node signs in the format the tree's gate allows, [`Record::sign_as`]).
    pub fn sign(key: &NodeKey, header: Header, body: Body) -> Record {
        match Record::sign_as(key, FORMAT_VERSION, header, body) {
            Ok(r) => r,
            Err(e) => panic!("signing in the newest format: {e}"),
        }
    }

    /// Builds and signs a new record in `format`; fails when the body uses
    /// something that format does not have, or the format is not one this
    /// build writes.
    pub fn sign_as(key: &NodeKey, format: u8, header: Header, body: Body) -> Result<Record, RecordError> {
        if !crate::format::reads(format) {
            return Err(RecordError::UnsupportedVersion(format));
        }
        let kind = body.kind_byte();
        let author = key.id();
        let payload = body.encode_payload(format, &header)?;
        let signature = key.sign(&signed_message(format, kind, &author, &payload));
        let env = Envelope { version: format, kind, author, payload, signature };
        let bytes = codec::encode(&env);
        // Decoding what we just encoded cannot fail; go through the same path
        // as received records so the payload range is computed in one place.
        match Record::decode_unverified(&bytes) {
            Ok(r) => Ok(r),
            Err(e) => panic!("self-encoded record does not decode: {e}"),
        }
    }

    /// Signs raw payload bytes under any format from 4 on, as a future
    /// release would (tests and simulations of releases that do not exist
    /// yet: a format this build cannot read must be held aside, not
    /// refused). The payload must start with a [`Header`], and a case
    /// event's body with the frozen [`crate::format::CasePrefix`].
    #[doc(hidden)]
    pub fn sign_raw(key: &NodeKey, format: u8, kind: u8, payload: Vec<u8>) -> Result<Record, RecordError> {
        if format < 4 {
            return Err(RecordError::UnsupportedVersion(format));
        }
        let author = key.id();
        let signature = key.sign(&signed_message(format, kind, &author, &payload));
        let bytes = codec::encode(&Envelope { version: format, kind, author, payload, signature });
        Record::decode_unverified_owned(bytes)
    }

    /// Decodes without checking the signature (for stored records whose
    /// signature was checked on the way in, and for batch verification).
    pub fn decode_unverified(bytes: &[u8]) -> Result<Record, RecordError> {
        Record::decode_unverified_owned(bytes.to_vec())
    }

    /// [`Record::decode_unverified`] keeping the given buffer (no copy).
    pub fn decode_unverified_owned(bytes: Vec<u8>) -> Result<Record, RecordError> {
        let env: Envelope = codec::decode_canonical(&bytes, MAX_RECORD_BYTES)?;
        let (header, body) = Body::decode_payload(env.version, env.kind, &env.payload)?;
        if (header.seq == 1) != header.prev.is_none() || header.seq == 0 {
            return Err(RecordError::BadChainHeader);
        }
        // The payload is the last variable field before the fixed 64-byte
        // signature, so its bytes end 64 bytes before the end.
        let end = bytes.len() - 64;
        let start = end - env.payload.len();
        Ok(Record { id: RecordId::of(&bytes), format: env.version, kind: env.kind, author: env.author, header, body, bytes, signature: env.signature, payload_range: (start, end) })
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
        signed_message(self.format, self.kind, &self.author, self.payload())
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The kind; `None` only for an unreadable record of an unknown kind.
    pub fn kind(&self) -> Option<RecordKind> {
        self.body.kind()
    }

    /// The envelope's kind byte.
    pub fn kind_byte(&self) -> u8 {
        self.kind
    }

    /// Whether this build could not read the body (a newer format).
    pub fn is_unreadable(&self) -> bool {
        matches!(self.body, Body::Unreadable(_))
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

    /// The payload encoded again from the decoded values, in the record's
    /// own format (through its format's frozen types): equal to
    /// [`Record::payload`] for every record whose author encoded it
    /// minimally. An unreadable record cannot be encoded again.
    pub fn encode_again(&self) -> Result<Vec<u8>, RecordError> {
        self.body.encode_payload(self.format, &self.header)
    }

    /// The case-event prefix (case, parents, unit, operator) of a case
    /// event, readable or not.
    pub fn case_prefix(&self) -> Option<crate::format::CasePrefix> {
        match &self.body {
            Body::CaseEvent(e) => Some(crate::format::CasePrefix { case: e.case, parents: e.parents.clone(), unit: e.unit, operator: e.operator.clone() }),
            Body::Unreadable(u) => u.case.clone(),
            _ => None,
        }
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
    let (a_scalars, a_points): (Vec<Scalar>, Vec<EdwardsPoint>) = authors.iter().filter_map(|(_, k)| k.as_ref().ok()).map(|(p, zh)| (*zh, *p)).unzip();
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
    let h = Scalar::from_hash(Sha512::new().chain_update(r_bytes).chain_update(r.author.as_bytes()).chain_update(crate::format::signed_prefix(r.format, r.kind, &r.author)).chain_update(r.payload()));
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
            return Err(CertError::LevelMismatch { division: cert.division, stated: cert.level, actual: cert.division.level() });
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
