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

use std::fmt;

use crate::case::CaseEvent;
use crate::cert::{NodeCert, Revocation};
use crate::codec::{self, CodecError, Decode, Encode};
use crate::hlc::Hlc;
use crate::identity::{KeyError, NodeId, NodeKey};
use crate::policy::Policy;

/// The only record format version this code reads and writes.
pub const FORMAT_VERSION: u8 = 1;

/// Prefix of every signed message, so a record signature can never be
/// mistaken for a signature over anything else.
pub const SIGNING_DOMAIN: &[u8] = b"zongzhi/record/v1\0";

/// Largest accepted encoded record (1 MiB). Attachments are blobs, not records.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// BLAKE3 hash of a record's encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct RecordId(pub [u8; 32]);

impl RecordId {
    pub fn of(bytes: &[u8]) -> Self {
        RecordId(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(RecordId(out))
    }

    pub fn fmt_short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.fmt_short())
    }
}

impl serde::Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RecordId::from_hex(&s).ok_or_else(|| serde::de::Error::custom("record id must be 64 hex digits"))
    }
}

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    CaseEvent = 1,
    NodeCert = 2,
    Revocation = 3,
    Policy = 4,
}

impl RecordKind {
    pub fn from_u8(b: u8) -> Result<Self, RecordError> {
        Ok(match b {
            1 => RecordKind::CaseEvent,
            2 => RecordKind::NodeCert,
            3 => RecordKind::Revocation,
            4 => RecordKind::Policy,
            other => return Err(RecordError::UnknownKind(other)),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::CaseEvent => "case_event",
            RecordKind::NodeCert => "node_cert",
            RecordKind::Revocation => "revocation",
            RecordKind::Policy => "policy",
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
}

impl Body {
    pub fn kind(&self) -> RecordKind {
        match self {
            Body::CaseEvent(_) => RecordKind::CaseEvent,
            Body::NodeCert(_) => RecordKind::NodeCert,
            Body::Revocation(_) => RecordKind::Revocation,
            Body::Policy(_) => RecordKind::Policy,
        }
    }

    fn encode_payload(&self, header: &Header) -> Vec<u8> {
        let mut out = codec::encode(header);
        match self {
            Body::CaseEvent(b) => codec::encode_into(b, &mut out),
            Body::NodeCert(b) => codec::encode_into(b, &mut out),
            Body::Revocation(b) => codec::encode_into(b, &mut out),
            Body::Policy(b) => codec::encode_into(b.as_ref(), &mut out),
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
        let env: Envelope = codec::decode(bytes, MAX_RECORD_BYTES)?;
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
            id: RecordId::of(bytes),
            author: env.author,
            header,
            body,
            bytes: bytes.to_vec(),
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

/// Verifies many records at once with ed25519 batch verification, falling
/// back to one `verify_strict` per record when the batch fails, so the
/// verdicts are exactly those of [`Record::verify`].
///
/// Batch verification skips the weak-key and small-order checks, so keys are
/// checked first (invalid or weak keys fail at once).
pub fn verify_batch(records: &[&Record]) -> Vec<Result<(), KeyError>> {
    let mut results: Vec<Result<(), KeyError>> = Vec::with_capacity(records.len());
    let mut keys = Vec::with_capacity(records.len());
    let mut sigs = Vec::with_capacity(records.len());
    let mut msgs = Vec::with_capacity(records.len());
    let mut idx = Vec::with_capacity(records.len());
    // Decompressing a key costs about as much as a quarter of a batch
    // verification; a batch usually has few authors.
    let mut keys_seen: std::collections::HashMap<NodeId, Result<ed25519_dalek::VerifyingKey, KeyError>> =
        std::collections::HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let key = keys_seen.entry(r.author).or_insert_with(|| r.author.verifying_key()).clone();
        match key {
            Ok(k) => {
                let sig = ed25519_dalek::Signature::from_bytes(r.signature());
                // Strict verification also refuses a non-canonical or
                // small-order R; batch verification does not, so check it here.
                if !r_is_canonical_and_large_order(r.signature()) {
                    results.push(Err(KeyError::BadSignature));
                    continue;
                }
                keys.push(k);
                sigs.push(sig);
                msgs.push(r.signed_message());
                idx.push(i);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if idx.is_empty() {
        return results;
    }
    let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    if ed25519_dalek::verify_batch(&msg_refs, &sigs, &keys).is_err() {
        for &i in &idx {
            results[i] = records[i].verify();
        }
    }
    results
}

/// `verify_strict` refuses a signature whose R is small-order or not
/// canonically encoded; batch verification checks neither, so do it first.
fn r_is_canonical_and_large_order(sig: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    match ed25519_dalek::VerifyingKey::from_bytes(&r) {
        Ok(p) => p.to_bytes() == r && !p.is_weak(),
        Err(_) => false,
    }
}
