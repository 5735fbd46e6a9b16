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

use crate::codec::{self, CodecError, Decode, Encode};

/// ALPN of protocol 2, the baseline's (release 0.1.0). Its name stays.
pub const ALPN: &[u8] = b"zongzhi/1";

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 3;

/// Every protocol this build speaks, most preferred first, with its ALPN
/// name. The TLS handshake picks the first of the accepting side's list
/// that the dialling side offers, before any frame is decoded; a link is
/// refused only when no version is common. A shipped protocol's frames are
/// frozen: new information goes in new frames on newer protocols.
///
/// - 2 (`zongzhi/1`): `Hello`, `Subscribe`, `Batch`, `Received`, `Ack`,
///   `Want`, `Refuse`.
/// - 3 (`zongzhi/3`): the same, and `Status` (each side's release, formats,
///   schema, parked records and alarms, and a child's subtree) after
///   `Hello` and whenever it changes.
pub const PROTOCOLS: &[(u32, &[u8])] = &[(3, b"zongzhi/3"), (2, ALPN)];

/// The oldest protocol this build speaks.
pub const OLDEST_PROTOCOL: u32 = 2;

/// The ALPN name of a protocol version this build speaks.
pub fn alpn_of(version: u32) -> Option<&'static [u8]> {
    PROTOCOLS.iter().find(|(v, _)| *v == version).map(|(_, a)| *a)
}

/// The protocol version of an ALPN name this build speaks.
pub fn version_of_alpn(alpn: &[u8]) -> Option<u32> {
    PROTOCOLS.iter().find(|(_, a)| *a == alpn).map(|(v, _)| *v)
}

/// The protocol a link between `accepting` (the parent, which chose in
/// the TLS handshake) and `dialling` (the child) speaks: the first of the
/// accepting side's versions, in its order, that the dialling side offers.
/// `None`: nothing in common, no link.
pub fn choose(accepting: &[u32], dialling: &[u32]) -> Option<u32> {
    accepting.iter().copied().find(|v| dialling.contains(v))
}

/// Most reports in one `Status` (a node and its subtree: a city of about
/// 3,000 centers, with room to spare).
pub const MAX_STATUS_REPORTS: usize = 20_000;

/// What one center says of itself, passed up the tree in `Status` frames
/// (protocol 3): which release it runs, what it reads, what it holds aside
/// and what is wrong. Parents keep the last report of every center below
/// them; the city's fleet view and its finalization check read them.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    pub key: [u8; 32],
    pub division: crate::division::DivisionCode,
    /// The release, e.g. `0.2.0`.
    pub release: String,
    /// The oldest and newest record formats it reads.
    pub formats: (u8, u8),
    /// The format it signs now (its gate).
    pub write_format: u8,
    pub schema: u32,
    /// The protocol versions it speaks.
    pub protocols: Vec<u32>,
    /// Records it holds aside because it cannot read them, and the newest
    /// format among them (0 when none).
    pub parked: u64,
    pub parked_needs: u8,
    /// Open integrity alarms, and the newest one in words.
    pub alarms: u64,
    pub last_alarm: String,
    /// Its feed head, and the records its parent has not acknowledged.
    pub feed_head: u64,
    pub behind_up: u64,
    /// When it made this report (its own clock, Unix ms).
    pub at_ms: u64,
}

impl NodeReport {
    /// Whether the node reads `format`.
    pub fn reads(&self, format: u8) -> bool {
        self.formats.0 <= format && format <= self.formats.1
    }
}

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
    /// `own`: also the records signed with my own key, which scope keeps
    /// from going back to where they came from — asked for by a node
    /// restored from a backup, to learn its own chain back before it signs
    /// anything (the sender then answers at once, with an empty batch if
    /// nothing follows the cursor, so the receiver learns the head).
    Subscribe { epoch: [u8; 16], cursor: u64, own: bool },
    /// Records from the sender's feed up to position `upto` (some positions
    /// may have been filtered out), and the sender's current feed head.
    Batch { epoch: [u8; 16], upto: u64, head: u64, records: Vec<Vec<u8>>, blobs: Vec<([u8; 32], Vec<u8>)> },
    /// The receiver stored everything up to `upto`.
    Ack { upto: u64 },
    /// Refusal with a reason, before closing.
    Refuse { reason: String },
    /// "I hold records whose parents I lack: send me these" (receiver →
    /// sender, on the feed stream). The sender answers with a `Batch` that
    /// leaves the cursor where it is.
    Want { ids: Vec<[u8; 32]> },
    /// The receiver has read the batch up to `upto` off the stream (not yet
    /// stored). The sender keeps at most one batch on the wire that the
    /// receiver has not read, so a cut link loses at most that batch: what
    /// was read is stored even when the link is gone.
    Received { upto: u64 },
    /// Protocol 3, on the control stream after `Hello` and whenever it
    /// changes: the sender's own report first, then (from a child) the last
    /// report of every center below it.
    Status { reports: Vec<NodeReport> },
}

/// Most ids in one `Want`.
pub const MAX_WANT: usize = 256;

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

/// A protocol violation by the peer on a feed stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SyncError {
    #[error("acknowledgement for position {ack} beyond what was sent ({sent})")]
    AckBeyondSent { ack: u64, sent: u64 },
    #[error("acknowledgement went back from {from} to {to}")]
    AckWentBack { from: u64, to: u64 },
    #[error("batch goes back from position {from} to {to} within one feed epoch")]
    CursorWentBack { from: u64, to: u64 },
}

/// What a feed sender should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderPoll {
    /// Nothing new: wait for the feed to grow.
    CaughtUp,
    /// Too much unacknowledged: wait for an ack.
    WindowFull,
    /// The last batch sent has not reached the receiver yet: wait for its
    /// `Received` (or its ack).
    InTransit,
    /// Build and send a batch of the feed after this position.
    SendAfter(u64),
}

/// The sending side of one feed subscription, without I/O: it decides where
/// to resume, when to send and how much may be unacknowledged.
#[derive(Debug, Clone)]
pub struct FeedSender {
    epoch: [u8; 16],
    cursor: u64,
    acked: u64,
    /// What the receiver has read (at least `acked`).
    received: u64,
    window: u64,
}

impl FeedSender {
    /// `window`: feed positions that may be sent beyond the last ack.
    pub fn new(epoch: [u8; 16], window: u64) -> FeedSender {
        FeedSender { epoch, cursor: 0, acked: 0, received: 0, window }
    }

    /// The receiver's `Subscribe`: resume after its cursor if it is from this
    /// feed epoch and not beyond our head (else the feed was restored or
    /// replaced: start over; the receiver drops what it holds). Returns the
    /// position resumed after.
    pub fn on_subscribe(&mut self, epoch: [u8; 16], cursor: u64, head: u64) -> u64 {
        let from = if epoch == self.epoch && cursor <= head { cursor } else { 0 };
        self.cursor = from;
        self.acked = from;
        self.received = from;
        from
    }

    pub fn poll(&self, head: u64) -> SenderPoll {
        if self.cursor >= head {
            SenderPoll::CaughtUp
        } else if self.cursor - self.acked > self.window {
            SenderPoll::WindowFull
        } else if self.received < self.cursor {
            SenderPoll::InTransit
        } else {
            SenderPoll::SendAfter(self.cursor)
        }
    }

    /// A batch covering feed positions up to `upto` was sent.
    pub fn sent(&mut self, upto: u64) {
        self.cursor = self.cursor.max(upto);
    }

    pub fn on_ack(&mut self, upto: u64) -> Result<(), SyncError> {
        if upto > self.cursor {
            return Err(SyncError::AckBeyondSent { ack: upto, sent: self.cursor });
        }
        if upto < self.acked {
            return Err(SyncError::AckWentBack { from: self.acked, to: upto });
        }
        self.acked = upto;
        self.received = self.received.max(upto);
        Ok(())
    }

    /// The receiver has read everything up to `upto` off the stream.
    pub fn on_received(&mut self, upto: u64) -> Result<(), SyncError> {
        if upto > self.cursor {
            return Err(SyncError::AckBeyondSent { ack: upto, sent: self.cursor });
        }
        self.received = self.received.max(upto);
        Ok(())
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    pub fn epoch(&self) -> [u8; 16] {
        self.epoch
    }
}

/// The receiving side of one feed subscription, without I/O. Its state is
/// exactly the cursor the receiver stores with the records it acknowledges.
#[derive(Debug, Clone)]
pub struct FeedReceiver {
    epoch: [u8; 16],
    cursor: u64,
    /// The furthest position a batch of this subscription has reached
    /// (queued for writing, maybe not stored yet).
    reached: ([u8; 16], u64),
}

impl FeedReceiver {
    /// From the cursor stored with the last acknowledged batch, if any.
    pub fn new(stored: Option<([u8; 16], u64)>) -> FeedReceiver {
        let (epoch, cursor) = stored.unwrap_or(([0; 16], 0));
        FeedReceiver { epoch, cursor, reached: (epoch, cursor) }
    }

    /// `own`: see [`Frame::Subscribe`].
    pub fn subscribe(&self, own: bool) -> Frame {
        Frame::Subscribe { epoch: self.epoch, cursor: self.cursor, own }
    }

    /// Checks a batch header. Returns the cursor to store with its records.
    pub fn on_batch(&mut self, epoch: [u8; 16], upto: u64) -> Result<u64, SyncError> {
        if epoch == self.epoch && upto < self.cursor {
            return Err(SyncError::CursorWentBack { from: self.cursor, to: upto });
        }
        Ok(upto)
    }

    /// Whether a batch continues the sender's feed past every earlier batch
    /// (its records are the feed's next positions, in feed order), as
    /// opposed to records sent out of feed order: the urgent cases ahead of
    /// a catch-up and the answers to `Want`, which leave the position where
    /// it is. Only a continuing batch carries the sender's own chain in
    /// order, so only it may be checked for chain gaps. Call once per batch.
    pub fn continues_feed(&mut self, epoch: [u8; 16], upto: u64) -> bool {
        let (e, at) = self.reached;
        let continues = if epoch == e { upto > at } else { upto > 0 };
        if continues || epoch != e {
            self.reached = (epoch, upto);
        }
        continues
    }

    /// The batch's records and cursor are stored: the ack to send.
    pub fn stored(&mut self, epoch: [u8; 16], upto: u64) -> Frame {
        self.epoch = epoch;
        self.cursor = upto;
        Frame::Ack { upto }
    }

    pub fn cursor(&self) -> ([u8; 16], u64) {
        (self.epoch, self.cursor)
    }
}

pub mod scope;

pub use scope::{case_in_subtree, enters_subtree};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sender_resumes_windows_and_checks_acks() {
        let mut s = FeedSender::new([1; 16], 10);
        assert_eq!(s.on_subscribe([1; 16], 5, 100), 5);
        assert_eq!(s.poll(100), SenderPoll::SendAfter(5));
        s.sent(20);
        assert_eq!(s.poll(100), SenderPoll::WindowFull);
        assert!(s.on_ack(21).is_err());
        s.on_ack(15).unwrap();
        // Within the window, but the batch up to 20 is still on the wire.
        assert_eq!(s.poll(100), SenderPoll::InTransit);
        assert!(s.on_received(21).is_err());
        s.on_received(20).unwrap();
        assert_eq!(s.poll(100), SenderPoll::SendAfter(20));
        assert!(s.on_ack(14).is_err());
        s.sent(100);
        s.on_ack(100).unwrap();
        assert_eq!(s.poll(100), SenderPoll::CaughtUp);
        // Another epoch, or a cursor beyond our head: start over.
        assert_eq!(s.on_subscribe([2; 16], 50, 100), 0);
        assert_eq!(s.on_subscribe([1; 16], 150, 100), 0);
    }

    #[test]
    fn only_batches_past_every_earlier_one_continue_the_feed() {
        let mut r = FeedReceiver::new(Some(([1; 16], 40)));
        assert!(!r.continues_feed([1; 16], 40), "the urgent batch ahead of a catch-up leaves the cursor");
        assert!(r.continues_feed([1; 16], 60));
        assert!(r.continues_feed([1; 16], 80), "pipelined: past the last queued batch, not the stored cursor");
        assert!(!r.continues_feed([1; 16], 80), "an answer to Want repeats the position");
        assert!(!r.continues_feed([2; 16], 0), "a reset feed's urgent batch");
        assert!(r.continues_feed([2; 16], 10));
    }

    #[test]
    fn receiver_refuses_a_cursor_going_back() {
        let mut r = FeedReceiver::new(Some(([1; 16], 40)));
        assert_eq!(r.subscribe(false), Frame::Subscribe { epoch: [1; 16], cursor: 40, own: false });
        assert!(r.on_batch([1; 16], 39).is_err());
        assert_eq!(r.on_batch([1; 16], 40), Ok(40), "a batch that leaves the cursor (urgent first) is fine");
        assert_eq!(r.on_batch([2; 16], 3), Ok(3), "a new epoch starts over");
        assert_eq!(r.stored([2; 16], 3), Frame::Ack { upto: 3 });
        assert_eq!(r.cursor(), ([2; 16], 3));
    }

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
