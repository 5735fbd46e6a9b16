//! Node identity: ed25519 keys.
//!
//! A node's [`NodeId`] is its ed25519 public key. Keys are stored as PKCS#8
//! PEM. Weak (small-order) keys are refused and signatures are checked with
//! `verify_strict`, so every node reaches the same verdict on every record.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::codec::{Decode, Encode};

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("not a valid ed25519 public key")]
    InvalidKey,
    #[error("weak (small-order) ed25519 key refused")]
    WeakKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("cannot read key: {0}")]
    Pem(String),
    #[error("not a valid key id: {0}")]
    BadHex(String),
}

/// A node's public key, which is its identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 10 hex digits, for logs and tables.
    pub fn fmt_short(&self) -> String {
        hex::encode(&self.0[..5])
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|e| KeyError::BadHex(e.to_string()))?;
        Ok(NodeId(out))
    }

    /// The verifying key, refusing invalid and weak keys.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::InvalidKey)?;
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(key)
    }

    /// Checks `signature` over `message` with `verify_strict`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), KeyError> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.fmt_short())
    }
}

impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A node's secret signing key.
pub struct NodeKey {
    key: SigningKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id().fmt_short())
    }
}

impl NodeKey {
    /// Generates a fresh key from `rng` (the node passes the operating
    /// system's randomness; the protocol crate never reads it itself, so a
    /// seeded run can make its keys from its seed).
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        loop {
            let key = SigningKey::generate(rng);
            // A random key is weak with negligible probability; loop anyway
            // so the invariant "our own key is never weak" holds.
            if !key.verifying_key().is_weak() {
                return NodeKey { key };
            }
        }
    }

    /// A deterministic key for tests and golden vectors.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeKey { key: SigningKey::from_bytes(&seed) }
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// PKCS#8 PEM encoding of the secret key.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        self.key.to_pkcs8_pem(Default::default()).map(|s| s.to_string()).map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// A secret derived from the key for `context` (BLAKE3 key derivation):
    /// stable across restarts, useless for signing.
    pub fn derive_secret(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, self.key.as_bytes())
    }

    /// PKCS#8 DER encoding of the secret key (for TLS).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        self.key.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// Reads a PKCS#8 PEM secret key, refusing weak keys.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        if key.verifying_key().is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(NodeKey { key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let key = NodeKey::generate(&mut rand_core::OsRng);
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = NodeKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.id(), key.id());
    }

    #[test]
    fn sign_and_verify() {
        let key = NodeKey::from_seed([7; 32]);
        let sig = key.sign(b"hello");
        key.id().verify(b"hello", &sig).unwrap();
        assert_eq!(key.id().verify(b"hellp", &sig), Err(KeyError::BadSignature));
    }

    #[test]
    fn weak_key_refused() {
        // The identity point (a small-order point) encoded: y = 1.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert_eq!(NodeId(weak).verifying_key().err(), Some(KeyError::WeakKey));
    }

    #[test]
    fn hex_round_trip() {
        let id = NodeKey::from_seed([1; 32]).id();
        assert_eq!(NodeId::from_hex(&id.to_string()).unwrap(), id);
        assert_eq!(id.fmt_short().len(), 10);
        assert!(NodeId::from_hex("zz").is_err());
    }
}
