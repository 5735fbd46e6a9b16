//! The one place that calls bincode.
//!
//! Every signed structure is encoded with bincode 2's own derives (no serde,
//! no maps, no floats), little-endian with variable-length integers. Decoding
//! untrusted bytes always goes through [`decode`], which enforces a size limit
//! before and during decoding and rejects trailing bytes.

use bincode::config::{self, Configuration, LittleEndian, Varint};

/// Hard ceiling on anything decoded from untrusted bytes (16 MiB). Individual
/// callers pass a tighter limit.
pub const MAX_DECODE_BYTES: usize = 16 * 1024 * 1024;

type Config = Configuration<LittleEndian, Varint, config::Limit<MAX_DECODE_BYTES>>;

fn config() -> Config {
    config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_DECODE_BYTES>()
}

pub use bincode::{Decode, Encode};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CodecError {
    #[error("input is {len} bytes, more than the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("not the canonical encoding (a length or number is written in more bytes than needed)")]
    NotCanonical,
}

/// Encodes a value. Encoding into a `Vec` cannot fail for our types except
/// when a value exceeds the decode ceiling, which would make it undecodable.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    match bincode::encode_to_vec(value, config()) {
        Ok(bytes) => bytes,
        // Only reachable with a value larger than MAX_DECODE_BYTES; callers
        // bound their inputs well below that.
        Err(e) => panic!("encoding failed: {e}"),
    }
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    out.extend_from_slice(&encode(value));
}

/// Decodes exactly one value from `bytes`, which must be at most `limit`
/// bytes long and must contain nothing after the value.
pub fn decode<T: Decode<()>>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let (value, used) = decode_prefix(bytes, limit)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// [`decode`], and refuses bytes that are not the one encoding of the
/// value (bincode accepts non-minimal varints). Use it for anything whose
/// identity is a hash of its bytes but whose bytes are not all signed: a
/// record's envelope carries the payload length outside the signature, so
/// without this check one signed record could be given several ids.
pub fn decode_canonical<T: Decode<()> + Encode>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let value: T = decode(bytes, limit)?;
    if encode(&value) != bytes {
        return Err(CodecError::NotCanonical);
    }
    Ok(value)
}

/// Decodes one value from the start of `bytes` and returns it with the
/// number of bytes it used.
pub fn decode_prefix<T: Decode<()>>(bytes: &[u8], limit: usize) -> Result<(T, usize), CodecError> {
    let limit = limit.min(MAX_DECODE_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge { len: bytes.len(), limit });
    }
    bincode::decode_from_slice(bytes, config()).map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&(7u32, String::from("x")));
        bytes.push(0);
        assert_eq!(decode::<(u32, String)>(&bytes, 100), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn rejects_oversized_input_before_decoding() {
        let bytes = vec![0u8; 101];
        assert!(matches!(decode::<u8>(&bytes, 100), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming 2^40 elements in a 10-byte input.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(decode::<Vec<u8>>(&bytes, 100), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn byte_vectors_encode_as_byte_strings() {
        let v = vec![0xABu8; 300];
        let bytes = encode(&v);
        // varint length (3 bytes for 300) + raw bytes
        assert_eq!(bytes.len(), 303);
    }
}
