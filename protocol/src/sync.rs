//! The replication protocol between a child and its parent: frames and the
//! scope rules that decide what travels on each link. No I/O: `node::net`
//! moves these frames over QUIC streams.
//!
//! Each direction of a link is a feed subscription. The receiver sends
//! `Subscribe` with the sender's feed epoch and the cursor it persisted; the
//! sender answers with `Batch`es of records from its feed after the cursor
//! (filtered by scope); the receiver stores each batch together with the new
//! cursor in one synced write and then sends `Ack`. A sender whose epoch
//! differs (restored from a backup) starts again from the beginning; the
//! receiver drops what it already holds.

use crate::case::{Action, RouteTarget};
use crate::codec::{self, CodecError, Decode, Encode};
use crate::division::DivisionCode;

/// ALPN of the replication protocol.
pub const ALPN: &[u8] = b"zongzhi/1";

/// Protocol version carried in `Hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frames larger than this are refused before any allocation.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// A batch is closed once its records reach this size.
pub const BATCH_BYTES: usize = 512 * 1024;

/// Most records in one batch.
pub const BATCH_RECORDS: usize = 512;

/// Which way a feed flows on a link, from the receiver's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Child → parent.
    Up = 0,
    /// Parent → child.
    Down = 1,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Frame {
    /// First frame each way on the control stream: who I am.
    Hello {
        version: u32,
        /// Certificate records from the root down to the sender.
        chain: Vec<Vec<u8>>,
        /// The sender's feed epoch.
        epoch: [u8; 16],
    },
    /// "Send me your feed after `cursor`" (cursor in the sender's feed).
    Subscribe { epoch: [u8; 16], cursor: u64 },
    /// Records from the sender's feed up to position `upto` (some positions
    /// may have been filtered out), and the sender's current feed head.
    Batch { epoch: [u8; 16], upto: u64, head: u64, records: Vec<Vec<u8>>, blobs: Vec<([u8; 32], Vec<u8>)> },
    /// The receiver stored everything up to `upto`.
    Ack { upto: u64 },
    /// Refusal with a reason, before closing.
    Refuse { reason: String },
}

impl Frame {
    /// Length-prefixed encoding: u32 big-endian length, then the frame.
    pub fn to_wire(&self) -> Vec<u8> {
        let body = codec::encode(self);
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Checks a length prefix before the body is read.
    pub fn check_len(len: u32) -> Result<usize, CodecError> {
        let len = len as usize;
        if len > MAX_FRAME {
            return Err(CodecError::TooLarge { len, limit: MAX_FRAME });
        }
        Ok(len)
    }

    pub fn decode(body: &[u8]) -> Result<Frame, CodecError> {
        codec::decode(body, MAX_FRAME)
    }
}

/// Up: a child sends what was authored in its subtree.
pub fn up_in_scope(author_division: DivisionCode, child: DivisionCode) -> bool {
    child.contains(author_division)
}

/// Down: a parent sends a case's events to a child once the case's
/// ownership (or a helper role) has entered the child's subtree.
pub fn down_case_in_scope(units: &[DivisionCode], child: DivisionCode) -> bool {
    units.iter().any(|u| child.contains(*u))
}

/// Whether this action brings its case into `child`'s subtree, so the whole
/// history must be sent before it.
pub fn enters_subtree(action: &Action, child: DivisionCode) -> bool {
    match action {
        Action::Dispatch { to, .. } => child.contains(*to),
        Action::Reroute { target: RouteTarget::Unit(u), .. } => child.contains(*u),
        Action::AddHelpers { helpers } => helpers.iter().any(|h| matches!(h, RouteTarget::Unit(u) if child.contains(*u))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oversized_frames_are_refused_by_their_prefix() {
        assert!(Frame::check_len(MAX_FRAME as u32).is_ok());
        assert!(Frame::check_len(MAX_FRAME as u32 + 1).is_err());
        assert!(Frame::check_len(u32::MAX).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Frame::decode(&[0xFF, 0xFF, 0xFF]).is_err());
        assert!(Frame::decode(&[]).is_err());
    }

    #[test]
    fn scopes() {
        let town: DivisionCode = "330102001000".parse().unwrap();
        let v1: DivisionCode = "330102001001".parse().unwrap();
        let v2: DivisionCode = "330102002001".parse().unwrap();
        assert!(up_in_scope(v1, town) && up_in_scope(town, town) && !up_in_scope(v2, town));
        assert!(down_case_in_scope(&[v2, v1], town));
        assert!(!down_case_in_scope(&[v2], town));
        let d = Action::Dispatch { to: v1, requirements: String::new(), due_ms: None };
        assert!(enters_subtree(&d, town) && enters_subtree(&d, v1) && !enters_subtree(&d, v2));
    }

    proptest! {
        #[test]
        fn batch_frames_round_trip(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..20), upto in any::<u64>()) {
            let f = Frame::Batch { epoch: [3; 16], upto, head: upto, records, blobs: vec![([1; 32], vec![9; 10])] };
            let wire = f.to_wire();
            let len = u32::from_be_bytes(wire[..4].try_into().unwrap());
            prop_assert_eq!(Frame::check_len(len).unwrap(), wire.len() - 4);
            prop_assert_eq!(Frame::decode(&wire[4..]).unwrap(), f);
        }
    }
}
