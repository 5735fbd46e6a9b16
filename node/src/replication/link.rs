//! One replication link as a state machine without I/O: frames in, actions
//! out (as `quinn-proto` is a connection without sockets).
//!
//! A link carries two feed subscriptions, one each way, over three streams:
//! the control stream (`Hello` both ways), the stream of our subscription to
//! the peer's feed ([`Stream::Theirs`]: we send `Subscribe`, `Received`,
//! `Ack` and `Want`; the peer sends `Batch`es) and the stream of the peer's
//! subscription to ours ([`Stream::Ours`]: the other way round).
//!
//! The driver (`net` over QUIC, the simulator over in-memory queues) feeds
//! the link what arrives ([`Link::handle`]), what its store built
//! ([`Link::built`]), what its writer stored ([`Link::stored`]) and its feed
//! head ([`Link::feed_grew`]), and carries out what [`Link::poll`] returns:
//! send a frame, build a batch from the store, or decode, verify and store a
//! received batch with its cursor. Every decision is here: the handshake's
//! checks, where a subscription resumes, the urgent batch ahead of a long
//! catch-up, the send window, when a received batch is acknowledged (only
//! after the writer stored it with its cursor, in order), which parents to
//! ask for, and what the peer may not do. The link never reads a clock: the
//! time to check the peer's certificates against is an argument.
//!
//! The protocol version is chosen before the link exists (the TLS
//! handshake's ALPN, [`zongzhi_protocol::sync::PROTOCOLS`]) and is an input
//! here: on protocol 3 each side also sends a `Status` (its release and
//! what it reads, holds aside and is alarmed about; from a child, its
//! subtree's last reports) after `Hello` and whenever the driver asks.

use std::collections::VecDeque;

use zongzhi_protocol::sync::{self, Direction, FeedReceiver, FeedSender, Frame, NodeReport, SenderPoll, SyncError};
use zongzhi_protocol::{DivisionCode, NodeId, Record};

use crate::ledger::{Cursor, IngestReport};

use super::Outgoing;

/// Feed positions that may be sent beyond the last ack: eight batches keep
/// the receiver's verify/write pipeline busy. A cut re-sends what was in
/// flight; nothing stored is sent again (the cursor is stored with the
/// records). With one batch a cut re-sends ≤ 2 batches but cold catch-up is
/// about a fifth slower (BENCHMARKS.md).
pub const IN_FLIGHT: u64 = 8 * sync::BATCH_RECORDS as u64;

/// Received batches handed to the writer before the oldest is
/// acknowledged: the next one is verified and applied (and shares the
/// fsync) while the previous one is written.
pub const WRITE_AHEAD: usize = 3;

/// This node's side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We are the parent (we accepted the connection).
    Parent,
    /// We are the child (we dialled).
    Child,
}

impl Side {
    /// The direction of the feed this side receives.
    pub fn direction_in(self) -> Direction {
        match self {
            Side::Child => Direction::Down,
            Side::Parent => Direction::Up,
        }
    }

    /// The direction of the feed this side sends.
    pub fn direction_out(self) -> Direction {
        match self {
            Side::Child => Direction::Up,
            Side::Parent => Direction::Down,
        }
    }
}

/// The stream a frame travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `Hello`, once each way.
    Control,
    /// Our subscription to the peer's feed: batches come in on it.
    Theirs,
    /// The peer's subscription to our feed: our batches go out on it.
    Ours,
}

impl Stream {
    /// As an operator reads it in a refusal.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Control => "control",
            Stream::Theirs => "our subscription's",
            Stream::Ours => "the peer's subscription's",
        }
    }
}

/// What the store is asked to build for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The urgent cases' records after `cursor`, ahead of a long catch-up.
    Urgent { cursor: u64 },
    /// The next batch of our feed after `after`; with `own` (the peer's
    /// key: it was restored from a backup), also the records that key
    /// signed and those of its subtree, which scope otherwise keeps from
    /// going back where they came from: it lost them with its disk.
    Feed { after: u64, own: Option<NodeId> },
    /// The records among `ids` the peer's scope allows (its `Want`); with
    /// `own`, as for `Feed`.
    Wanted { ids: Vec<[u8; 32]>, own: Option<NodeId> },
    /// Our `Status` (protocol 3): our own report, and as a child the last
    /// reports of our subtree.
    Status,
}

/// What the store built, handed back with [`Link::built`].
pub enum Built {
    Urgent(Option<Outgoing>),
    Feed(Outgoing),
    Wanted(Vec<Vec<u8>>),
    Status(Vec<NodeReport>),
}

/// A received batch for the writer: decode and verify its records, then
/// store them with `cursor` in one synced write, and report with
/// [`Link::stored`] (in the order the batches were handed out).
#[derive(Debug)]
pub struct Incoming {
    pub records: Vec<Vec<u8>>,
    pub blobs: Vec<([u8; 32], Vec<u8>)>,
    pub cursor: Cursor,
}

/// What the driver does next.
#[derive(Debug)]
pub enum Action {
    /// Write this frame on that stream.
    Send(Stream, Frame),
    /// Read the store (blocking) and hand the result to [`Link::built`].
    Build(Build),
    /// Hand a received batch to the writer.
    Ingest(Incoming),
    /// The peer's `Status` (protocol 3), checked: keep it (a child's
    /// reports go into the fleet table).
    PeerStatus(Vec<NodeReport>),
}

/// The peer broke the protocol: the link closes with this as its reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Violation {
    #[error("expected {expected} on the {} stream, got {got}", stream.name())]
    Unexpected { stream: Stream, expected: &'static str, got: &'static str },
    #[error("peer's Hello says protocol version {peer}, the handshake chose {ours}")]
    Version { peer: u32, ours: u32 },
    #[error("a Status of {0} reports (at most {max})", max = sync::MAX_STATUS_REPORTS)]
    StatusTooLong(usize),
    #[error("the Status does not start with the peer's own report")]
    StatusNotPeer,
    #[error("peer's certificate chain: {0}")]
    Chain(String),
    #[error("peer's certificate chain is not for its TLS key")]
    ChainNotForKey,
    #[error("a Want of {0} ids (at most {max})", max = sync::MAX_WANT)]
    WantTooLong(usize),
    #[error("feed: {0}")]
    Feed(#[from] SyncError),
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's `Hello`.
    Hello,
    /// The peer is who it must be; waiting for its `Subscribe`.
    Subscribe,
    /// Both feeds flow.
    Open,
}

/// Who the peer must be, and what we start from.
pub struct Setup {
    pub side: Side,
    /// The protocol version the handshake chose.
    pub protocol: u32,
    /// The peer's TLS key and the division its certificate names.
    pub peer: NodeId,
    pub peer_division: DivisionCode,
    /// The city's key every chain must start from.
    pub root: NodeId,
    /// Our certificate chain, root first, as record bytes.
    pub chain: Vec<Vec<u8>>,
    /// Our feed epoch and head.
    pub epoch: [u8; 16],
    pub head: u64,
    /// The cursor stored with the last batch of the peer's feed we stored.
    pub stored: Option<([u8; 16], u64)>,
    /// Feed positions we may send beyond the peer's last ack
    /// ([`IN_FLIGHT`]; the simulator also tries small windows).
    pub window: u64,
    /// We were restored from a backup and have not learnt our own chain
    /// back yet: ask the peer for our own records too.
    pub recovering: bool,
}

/// One link's replication state.
pub struct Link {
    side: Side,
    protocol: u32,
    /// A `Status` build is wanted (sent once the handshake is done).
    status_wanted: bool,
    /// The urgent batch is still to be built, from this cursor.
    urgent: Option<u64>,
    peer: NodeId,
    peer_division: DivisionCode,
    root: NodeId,
    phase: Phase,
    sender: FeedSender,
    receiver: FeedReceiver,
    head: u64,
    /// A `Build` is out (one at a time, as the store reads are sequential).
    building: bool,
    /// The peer's last `Want`, not answered yet (a newer one replaces it:
    /// the receiver asks again after its next batch).
    want: Option<Vec<[u8; 32]>>,
    /// Received batches at the writer, oldest first: (epoch, upto).
    at_writer: VecDeque<([u8; 16], u64)>,
    /// The peer's feed head as its latest batch gave it, with that feed's
    /// epoch.
    peer_head: ([u8; 16], u64),
    /// We asked for our own records too (see [`Setup::recovering`]), and
    /// whether a batch has told us the peer's head on this link yet.
    recovering: bool,
    heard_head: bool,
    /// The peer asked for its own records too: its key.
    peer_own: Option<NodeId>,
    actions: VecDeque<Action>,
}

impl Link {
    /// A new link; its first actions say `Hello` and subscribe to the
    /// peer's feed (one round trip after the TLS handshake: the sender
    /// decides whether our stored cursor holds for its feed epoch).
    pub fn new(setup: Setup) -> Link {
        let receiver = FeedReceiver::new(setup.stored);
        let mut actions = VecDeque::new();
        actions.push_back(Action::Send(Stream::Control, Frame::Hello { version: setup.protocol, chain: setup.chain, epoch: setup.epoch }));
        actions.push_back(Action::Send(Stream::Theirs, receiver.subscribe(setup.recovering)));
        Link {
            side: setup.side,
            protocol: setup.protocol,
            status_wanted: false,
            urgent: None,
            peer: setup.peer,
            peer_division: setup.peer_division,
            root: setup.root,
            phase: Phase::Hello,
            sender: FeedSender::new(setup.epoch, setup.window),
            receiver,
            head: setup.head,
            building: false,
            want: None,
            at_writer: VecDeque::new(),
            peer_head: setup.stored.unwrap_or_default(),
            recovering: setup.recovering,
            heard_head: false,
            peer_own: None,
            actions,
        }
    }

    /// The direction of the feed we receive on this link.
    pub fn direction_in(&self) -> Direction {
        self.side.direction_in()
    }

    /// The direction of the feed we send on this link.
    pub fn direction_out(&self) -> Direction {
        self.side.direction_out()
    }

    pub fn peer_division(&self) -> DivisionCode {
        self.peer_division
    }

    /// The protocol version of this link.
    pub fn protocol(&self) -> u32 {
        self.protocol
    }

    /// Sends our `Status` again (the driver's periodic refresh, or a change
    /// it noticed); nothing on protocol 2.
    pub fn refresh_status(&mut self) {
        if self.protocol >= 3 {
            self.status_wanted = true;
            self.next_send();
        }
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the driver should take the peer's next batch now: fewer than
    /// [`WRITE_AHEAD`] batches wait at the writer. A driver that reads on
    /// regardless only loses the back-pressure.
    pub fn takes_batches(&self) -> bool {
        self.at_writer.len() < WRITE_AHEAD
    }

    /// Nothing is left to do or to hear: no action queued, no build out, no
    /// batch at the writer, everything we sent acknowledged and our feed
    /// sent up to its head. (The peer's side may still be sending.)
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Open
            && self.actions.is_empty()
            && !self.building
            && self.want.is_none()
            && self.urgent.is_none()
            && !self.status_wanted
            && self.at_writer.is_empty()
            && self.sender.acked() >= self.sender.cursor()
            && self.sender.poll(self.head) == SenderPoll::CaughtUp
    }

    /// The position of our feed the peer acknowledged, once its
    /// subscription is open.
    pub fn acked_by_peer(&self) -> Option<u64> {
        (self.phase == Phase::Open).then(|| self.sender.acked())
    }

    /// Positions of our feed the peer has not acknowledged.
    pub fn behind_to_peer(&self) -> u64 {
        self.head.saturating_sub(self.sender.acked())
    }

    /// Positions of the peer's feed (as far as its latest batch told) that
    /// we have not stored: 0 once everything it sent is stored, however the
    /// batches came (an answer to `Want` or the urgent batch repeats an old
    /// position and must not show a lag).
    pub fn behind_from_peer(&self) -> u64 {
        let (epoch, stored) = self.receiver.cursor();
        let (head_epoch, head) = self.peer_head;
        if head_epoch == epoch { head.saturating_sub(stored) } else { head }
    }

    /// We asked for our own records (restored from a backup) and have now
    /// stored everything the peer's feed held when this link opened, and
    /// more: every record of ours the peer holds is here. Once true, the
    /// driver tells the ledger, which may sign again
    /// ([`Link::recovery_confirmed`] then stops asking).
    pub fn confirms_recovery(&self) -> bool {
        self.recovering && self.phase == Phase::Open && self.heard_head && self.at_writer.is_empty() && self.behind_from_peer() == 0
    }

    /// The ledger took the confirmation.
    pub fn recovery_confirmed(&mut self) {
        self.recovering = false;
    }

    /// Our feed grew to `head`.
    pub fn feed_grew(&mut self, head: u64) {
        self.head = self.head.max(head);
        self.next_send();
    }

    /// A frame from the peer on `stream`; `now_ms` is the time to check its
    /// certificates against. An error closes the link.
    pub fn handle(&mut self, stream: Stream, frame: Frame, now_ms: u64) -> Result<(), Violation> {
        match (self.phase, stream, frame) {
            (Phase::Hello, Stream::Control, Frame::Hello { version, chain, epoch: _ }) => self.on_hello(version, &chain, now_ms),
            (Phase::Subscribe, Stream::Ours, Frame::Subscribe { epoch, cursor, own }) => {
                let from = self.sender.on_subscribe(epoch, cursor, self.head);
                self.phase = Phase::Open;
                if own {
                    self.peer_own = Some(self.peer);
                    if from >= self.head {
                        // Nothing follows: tell the peer our head at once.
                        let (epoch, head) = (self.sender.epoch(), self.head);
                        self.actions.push_back(Action::Send(Stream::Ours, Frame::Batch { epoch, upto: from, head, records: vec![], blobs: vec![] }));
                    }
                }
                // A long catch-up starts with the urgent cases.
                if self.head.saturating_sub(from) > sync::BATCH_RECORDS as u64 {
                    self.urgent = Some(from);
                }
                self.next_send();
                Ok(())
            }
            (Phase::Open, Stream::Theirs, Frame::Batch { epoch, upto, head, records, blobs }) => {
                let upto = self.receiver.on_batch(epoch, upto)?;
                let in_order = self.receiver.continues_feed(epoch, upto);
                if epoch != self.peer_head.0 || head > self.peer_head.1 {
                    self.peer_head = (epoch, head);
                }
                self.heard_head = true;
                // Off the wire: the sender may send the next batch now.
                self.actions.push_back(Action::Send(Stream::Theirs, Frame::Received { upto }));
                let cursor = Cursor { peer: self.peer, direction: self.direction_in() as u8, epoch, upto, in_order };
                self.at_writer.push_back((epoch, upto));
                self.actions.push_back(Action::Ingest(Incoming { records, blobs, cursor }));
                Ok(())
            }
            (Phase::Open, Stream::Ours, Frame::Ack { upto }) => {
                self.sender.on_ack(upto)?;
                self.next_send();
                Ok(())
            }
            (Phase::Open, Stream::Ours, Frame::Received { upto }) => {
                self.sender.on_received(upto)?;
                self.next_send();
                Ok(())
            }
            (Phase::Subscribe | Phase::Open, Stream::Control, Frame::Status { reports }) if self.protocol >= 3 => {
                if reports.len() > sync::MAX_STATUS_REPORTS {
                    return Err(Violation::StatusTooLong(reports.len()));
                }
                let Some(own) = reports.first().filter(|r| r.key == self.peer.0 && r.division == self.peer_division) else {
                    return Err(Violation::StatusNotPeer);
                };
                let _ = own;
                // A child speaks for its subtree only; a parent only for itself.
                let keep: Vec<NodeReport> = match self.side {
                    Side::Parent => reports.into_iter().filter(|r| self.peer_division.contains(r.division)).collect(),
                    Side::Child => reports.into_iter().take(1).collect(),
                };
                self.actions.push_back(Action::PeerStatus(keep));
                Ok(())
            }
            (Phase::Open, Stream::Ours, Frame::Want { ids }) => {
                if ids.len() > sync::MAX_WANT {
                    return Err(Violation::WantTooLong(ids.len()));
                }
                self.want = Some(ids);
                self.next_send();
                Ok(())
            }
            (phase, stream, frame) => Err(Violation::Unexpected { stream, expected: expected(phase, stream), got: frame_name(&frame) }),
        }
    }

    /// The peer's chain must verify to our root and end in the peer's key
    /// and division.
    fn on_hello(&mut self, version: u32, chain: &[Vec<u8>], now_ms: u64) -> Result<(), Violation> {
        if version != self.protocol {
            return Err(Violation::Version { peer: version, ours: self.protocol });
        }
        let records: Vec<Record> = chain.iter().map(|b| Record::decode(b)).collect::<Result<_, _>>().map_err(|e| Violation::Chain(e.to_string()))?;
        let cert = zongzhi_protocol::trust::verify_chain(&records, &self.root, now_ms).map_err(|e| Violation::Chain(e.to_string()))?;
        if cert.key != self.peer || cert.division != self.peer_division {
            return Err(Violation::ChainNotForKey);
        }
        self.phase = Phase::Subscribe;
        if self.protocol >= 3 {
            // Nothing is being built before the peer subscribes.
            self.building = true;
            self.actions.push_back(Action::Build(Build::Status));
        }
        Ok(())
    }

    /// What the store built for the last [`Action::Build`].
    pub fn built(&mut self, built: Built) {
        self.building = false;
        let (epoch, head) = (self.sender.epoch(), self.head);
        match built {
            Built::Urgent(None) => {}
            Built::Urgent(Some(out)) => {
                // Leaves the cursor where it is.
                let upto = self.sender.cursor();
                self.actions.push_back(Action::Send(Stream::Ours, Frame::Batch { epoch, upto, head, records: out.records, blobs: out.blobs }));
            }
            Built::Feed(out) => {
                self.sender.sent(out.upto);
                self.actions.push_back(Action::Send(Stream::Ours, Frame::Batch { epoch, upto: out.upto, head, records: out.records, blobs: out.blobs }));
            }
            Built::Wanted(records) => {
                if !records.is_empty() {
                    let upto = self.sender.cursor();
                    self.actions.push_back(Action::Send(Stream::Ours, Frame::Batch { epoch, upto, head, records, blobs: vec![] }));
                }
            }
            Built::Status(reports) => self.actions.push_back(Action::Send(Stream::Control, Frame::Status { reports })),
        }
        self.next_send();
    }

    /// The writer stored the oldest batch at the writer (records and cursor
    /// in one synced write): acknowledge it, and ask for the parents its
    /// records wait for.
    pub fn stored(&mut self, report: &IngestReport) {
        let Some((epoch, upto)) = self.at_writer.pop_front() else { return };
        self.actions.push_back(Action::Send(Stream::Theirs, self.receiver.stored(epoch, upto)));
        let want = super::wants(report);
        if !want.is_empty() {
            self.actions.push_back(Action::Send(Stream::Theirs, Frame::Want { ids: want }));
        }
    }

    /// Asks the store for the next thing to send, if the window allows and
    /// nothing is being built.
    fn next_send(&mut self) {
        if self.phase == Phase::Hello || self.building {
            return;
        }
        if self.status_wanted {
            self.status_wanted = false;
            self.building = true;
            self.actions.push_back(Action::Build(Build::Status));
            return;
        }
        if self.phase != Phase::Open {
            return;
        }
        if let Some(cursor) = self.urgent.take() {
            self.building = true;
            self.actions.push_back(Action::Build(Build::Urgent { cursor }));
            return;
        }
        if let Some(ids) = self.want.take() {
            self.building = true;
            self.actions.push_back(Action::Build(Build::Wanted { ids, own: self.peer_own }));
            return;
        }
        if let SenderPoll::SendAfter(after) = self.sender.poll(self.head) {
            self.building = true;
            self.actions.push_back(Action::Build(Build::Feed { after, own: self.peer_own }));
        }
    }
}

/// What a phase expects on a stream, for the refusal's text.
fn expected(phase: Phase, stream: Stream) -> &'static str {
    match (phase, stream) {
        (Phase::Hello, _) => "Hello",
        (Phase::Subscribe, _) => "Subscribe",
        (Phase::Open, Stream::Theirs) => "Batch",
        (Phase::Open, Stream::Ours) => "Ack, Received or Want",
        (Phase::Open, Stream::Control) => "nothing",
    }
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Subscribe { .. } => "Subscribe",
        Frame::Batch { .. } => "Batch",
        Frame::Ack { .. } => "Ack",
        Frame::Refuse { .. } => "Refuse",
        Frame::Want { .. } => "Want",
        Frame::Received { .. } => "Received",
        Frame::Status { .. } => "Status",
    }
}

#[cfg(test)]
mod tests {
    //! Two links stepped against each other in memory, with a fake feed
    //! behind each (positions 1..=head, every position one record), as
    //! quinn-proto's tests step a pair of connections.

    use zongzhi_protocol::cert::NodeCert;
    use zongzhi_protocol::division::Level;
    use zongzhi_protocol::hlc::Hlc;
    use zongzhi_protocol::record::Header;
    use zongzhi_protocol::{Body, NodeKey};

    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn cert(issuer: &NodeKey, key: &NodeKey, division: &str, level: Level, seq: u64, prev: Option<&Record>) -> Record {
        let body = Body::NodeCert(NodeCert {
            key: key.id(),
            division: division.parse().unwrap(),
            level,
            name: "测试中心".into(),
            issuer: issuer.id(),
            not_before_ms: NOW - 3_600_000,
            not_after_ms: NOW + 3_600_000,
            serial: seq,
        });
        Record::sign(issuer, Header { seq, prev: prev.map(|p| p.id), hlc: Hlc::default() }, body)
    }

    /// A city and a county, each with a fake feed of `heads` positions.
    struct Pair {
        /// 0: the city (parent side), 1: the county (child side).
        links: [Link; 2],
        heads: [u64; 2],
        wire: [VecDeque<(Stream, Frame)>; 2],
        /// Feed positions each side stored from the other, in order.
        stored: [Vec<u64>; 2],
        /// Batch sizes each side built.
        batch: u64,
        acks_seen: usize,
        /// The `Status` reports each side kept.
        statuses: [Vec<Vec<NodeReport>>; 2],
        protocol: u32,
    }

    impl Pair {
        fn new(heads: [u64; 2], stored: [Option<([u8; 16], u64)>; 2], window: u64) -> Pair {
            let city = NodeKey::from_seed([1; 32]);
            let county = NodeKey::from_seed([2; 32]);
            let root = cert(&city, &city, "330100000000", Level::City, 1, None);
            let child = cert(&city, &county, "330106000000", Level::County, 2, Some(&root));
            let setup = |side, peer: &NodeKey, peer_division: &str, chain: Vec<Vec<u8>>, epoch, head, stored| Setup {
                side,
                protocol: sync::PROTOCOL_VERSION,
                peer: peer.id(),
                peer_division: peer_division.parse().unwrap(),
                root: city.id(),
                chain,
                epoch,
                head,
                stored,
                window,
                recovering: false,
            };
            let a = Link::new(setup(Side::Parent, &county, "330106000000", vec![root.bytes().to_vec()], [1; 16], heads[0], stored[0]));
            let b = Link::new(setup(Side::Child, &city, "330100000000", vec![root.bytes().to_vec(), child.bytes().to_vec()], [2; 16], heads[1], stored[1]));
            Pair { links: [a, b], heads, wire: Default::default(), stored: Default::default(), batch: 7, acks_seen: 0, statuses: Default::default(), protocol: sync::PROTOCOL_VERSION }
        }

        /// The same pair on protocol `v`.
        fn on_protocol(heads: [u64; 2], v: u32) -> Pair {
            let mut p = Pair::new(heads, [None, None], 10);
            for l in &mut p.links {
                l.protocol = v;
                l.actions.clear();
            }
            // Hello again with the chosen version.
            let city = NodeKey::from_seed([1; 32]);
            let county = NodeKey::from_seed([2; 32]);
            let root = cert(&city, &city, "330100000000", Level::City, 1, None);
            let child = cert(&city, &county, "330106000000", Level::County, 2, Some(&root));
            p.links[0].actions.push_back(Action::Send(Stream::Control, Frame::Hello { version: v, chain: vec![root.bytes().to_vec()], epoch: [1; 16] }));
            p.links[0].actions.push_back(Action::Send(Stream::Theirs, p.links[0].receiver.subscribe(false)));
            p.links[1].actions.push_back(Action::Send(Stream::Control, Frame::Hello { version: v, chain: vec![root.bytes().to_vec(), child.bytes().to_vec()], epoch: [2; 16] }));
            p.links[1].actions.push_back(Action::Send(Stream::Theirs, p.links[1].receiver.subscribe(false)));
            p.protocol = v;
            p
        }

        /// Side `i`'s own report (0: the city, 1: the county).
        fn report(&self, i: usize) -> NodeReport {
            let (seed, division) = if i == 0 { ([1; 32], "330100000000") } else { ([2; 32], "330106000000") };
            NodeReport {
                key: NodeKey::from_seed(seed).id().0,
                division: division.parse().unwrap(),
                release: "test".into(),
                formats: (3, 4),
                write_format: 3,
                schema: 10,
                protocols: vec![3, 2],
                parked: 0,
                parked_needs: 0,
                alarms: 0,
                last_alarm: String::new(),
                feed_head: self.heads[i],
                behind_up: 0,
                at_ms: NOW,
            }
        }

        /// Runs side `i`'s actions; returns whether there were any.
        fn act(&mut self, i: usize) -> bool {
            let mut any = false;
            while let Some(action) = self.links[i].poll() {
                any = true;
                match action {
                    Action::Send(stream, frame) => {
                        if matches!(frame, Frame::Ack { .. }) {
                            self.acks_seen += 1;
                        }
                        let to = match stream {
                            Stream::Control => Stream::Control,
                            Stream::Theirs => Stream::Ours,
                            Stream::Ours => Stream::Theirs,
                        };
                        self.wire[1 - i].push_back((to, frame));
                    }
                    Action::Build(Build::Feed { after, .. }) => {
                        let upto = (after + self.batch).min(self.heads[i]);
                        let records = (after + 1..=upto).map(|p| p.to_be_bytes().to_vec()).collect();
                        self.links[i].built(Built::Feed(Outgoing { records, blobs: vec![], upto }));
                    }
                    Action::Build(Build::Urgent { .. }) => self.links[i].built(Built::Urgent(None)),
                    Action::Build(Build::Wanted { ids, .. }) => self.links[i].built(Built::Wanted(ids.iter().map(|id| id.to_vec()).collect())),
                    Action::Build(Build::Status) => {
                        let report = self.report(i);
                        self.links[i].built(Built::Status(vec![report]));
                    }
                    Action::PeerStatus(reports) => self.statuses[i].push(reports),
                    Action::Ingest(incoming) => {
                        for r in &incoming.records {
                            self.stored[i].push(u64::from_be_bytes(r[..8].try_into().unwrap()));
                        }
                        self.links[i].stored(&IngestReport::default());
                    }
                }
            }
            any
        }

        /// Steps both sides until nothing moves.
        fn run(&mut self) {
            for _ in 0..10_000 {
                let mut moved = self.act(0) | self.act(1);
                for i in 0..2 {
                    if let Some((stream, frame)) = self.wire[i].pop_front() {
                        self.links[i].handle(stream, frame, NOW).unwrap();
                        moved = true;
                    }
                }
                if !moved {
                    return;
                }
            }
            panic!("the pair did not settle");
        }
    }

    #[test]
    fn both_feeds_flow_in_order_within_the_window_and_end_idle() {
        let mut p = Pair::new([100, 40], [None, None], 10);
        p.run();
        assert_eq!(p.stored[1], (1..=100).collect::<Vec<_>>(), "the county stored the city's feed in order");
        assert_eq!(p.stored[0], (1..=40).collect::<Vec<_>>());
        assert!(p.links.iter().all(Link::is_idle));
        // New records are pushed live.
        p.heads[0] = 103;
        p.links[0].feed_grew(103);
        p.run();
        assert_eq!(p.stored[1].len(), 103);
        assert_eq!((p.links[0].behind_to_peer(), p.links[1].behind_from_peer()), (0, 0));
    }

    #[test]
    fn protocol_3_exchanges_status_and_protocol_2_does_not() {
        let mut p = Pair::on_protocol([20, 5], 3);
        p.run();
        assert_eq!(p.stored[1].len(), 20);
        assert_eq!(p.statuses[0].len(), 1, "the city kept the county's status");
        assert_eq!(p.statuses[0][0][0].division.to_string(), "330106000000");
        assert_eq!(p.statuses[1].len(), 1, "the county kept the city's");
        // A refresh sends it again.
        p.links[1].refresh_status();
        p.run();
        assert_eq!(p.statuses[0].len(), 2);
        let mut p = Pair::on_protocol([20, 5], 2);
        p.run();
        assert_eq!(p.stored[1].len(), 20);
        p.links[1].refresh_status();
        p.run();
        assert!(p.statuses.iter().all(Vec::is_empty), "protocol 2 has no Status frame");
        assert_eq!(p.protocol, 2);
        // A Status on a protocol-2 link, or one that is not the peer's, is refused.
        let report = p.report(1);
        assert!(p.links[0].handle(Stream::Control, Frame::Status { reports: vec![report.clone()] }, NOW).is_err());
        let mut p = Pair::on_protocol([1, 1], 3);
        p.run();
        assert_eq!(p.links[0].handle(Stream::Control, Frame::Status { reports: vec![p.report(0)] }, NOW), Err(Violation::StatusNotPeer));
        // A child's report of a center outside its subtree is dropped.
        let mut stranger = report.clone();
        stranger.division = "330102000000".parse().unwrap();
        p.links[0].handle(Stream::Control, Frame::Status { reports: vec![report, stranger] }, NOW).unwrap();
        match p.links[0].poll() {
            Some(Action::PeerStatus(kept)) => assert_eq!(kept.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_subscription_resumes_after_the_stored_cursor() {
        let mut p = Pair::new([50, 0], [None, Some(([1; 16], 30))], 100);
        p.run();
        assert_eq!(p.stored[1], (31..=50).collect::<Vec<_>>(), "nothing stored is sent again");
        // From another feed epoch (a restored sender), everything again.
        let mut p = Pair::new([50, 0], [None, Some(([9; 16], 30))], 100);
        p.run();
        assert_eq!(p.stored[1].len(), 50);
    }

    #[test]
    fn a_batch_is_acknowledged_only_after_the_writer_stored_it() {
        let mut p = Pair::new([5, 0], [None, None], 100);
        // Handshake and the first batch, but the county's writer holds it.
        for _ in 0..6 {
            p.act(0);
            while let Some(action) = p.links[1].poll() {
                match action {
                    Action::Send(stream, frame) => {
                        let to = if stream == Stream::Theirs {
                            Stream::Ours
                        } else if stream == Stream::Ours {
                            Stream::Theirs
                        } else {
                            Stream::Control
                        };
                        p.wire[0].push_back((to, frame));
                    }
                    Action::Ingest(_) | Action::PeerStatus(_) => {}
                    Action::Build(Build::Status) => {
                        let r = p.report(1);
                        p.links[1].built(Built::Status(vec![r]));
                    }
                    Action::Build(_) => p.links[1].built(Built::Feed(Outgoing { records: vec![], blobs: vec![], upto: 0 })),
                }
            }
            for i in 0..2 {
                if let Some((s, f)) = p.wire[i].pop_front() {
                    p.links[i].handle(s, f, NOW).unwrap();
                }
            }
        }
        assert!(!p.links[1].takes_batches() || p.links[1].at_writer.len() == 1);
        assert_eq!(p.acks_seen, 0, "no ack before the write");
        p.links[1].stored(&IngestReport::default());
        assert!(matches!(p.links[1].poll(), Some(Action::Send(Stream::Theirs, Frame::Ack { upto: 5 }))));
    }

    #[test]
    fn a_long_catch_up_starts_with_the_urgent_cases() {
        let mut p = Pair::new([2000, 0], [None, None], IN_FLIGHT);
        p.act(0);
        p.act(1);
        while let Some((s, f)) = p.wire[0].pop_front() {
            p.links[0].handle(s, f, NOW).unwrap();
        }
        // The Status (protocol 3) is built first, then the urgent batch,
        // one build at a time.
        assert!(matches!(p.links[0].poll(), Some(Action::Build(Build::Status))));
        assert!(p.links[0].poll().is_none(), "one build at a time");
        let report = p.report(0);
        p.links[0].built(Built::Status(vec![report]));
        assert!(matches!(p.links[0].poll(), Some(Action::Send(Stream::Control, Frame::Status { .. }))));
        assert!(matches!(p.links[0].poll(), Some(Action::Build(Build::Urgent { cursor: 0 }))));
    }

    #[test]
    fn the_peer_is_refused_for_what_it_may_not_do() {
        let hello = |p: &mut Pair| {
            p.act(1);
            let (s, f) = p.wire[0].pop_front().unwrap();
            p.links[0].handle(s, f, NOW)
        };
        // A batch before the handshake.
        let mut p = Pair::new([1, 1], [None, None], 10);
        let batch = Frame::Batch { epoch: [2; 16], upto: 1, head: 1, records: vec![], blobs: vec![] };
        assert!(matches!(p.links[0].handle(Stream::Theirs, batch, NOW), Err(Violation::Unexpected { .. })));
        // Certificates that have expired, or that are not the peer's.
        let mut p = Pair::new([1, 1], [None, None], 10);
        p.act(1);
        let (s, f) = p.wire[0].pop_front().unwrap();
        assert!(matches!(p.links[0].handle(s, f, NOW + 7_200_000), Err(Violation::Chain(_))));
        let mut p = Pair::new([1, 1], [None, None], 10);
        p.links[0].peer = NodeKey::from_seed([3; 32]).id();
        assert_eq!(hello(&mut p), Err(Violation::ChainNotForKey));
        // Another protocol version.
        let mut p = Pair::new([1, 1], [None, None], 10);
        let v = Frame::Hello { version: sync::PROTOCOL_VERSION + 1, chain: vec![], epoch: [0; 16] };
        assert!(matches!(p.links[0].handle(Stream::Control, v, NOW), Err(Violation::Version { .. })));
        // An ack beyond what was sent, and an overlong Want.
        let mut p = Pair::new([1, 1], [None, None], 10);
        p.run();
        assert!(matches!(p.links[0].handle(Stream::Ours, Frame::Ack { upto: 99 }, NOW), Err(Violation::Feed(_))));
        let want = Frame::Want { ids: vec![[0; 32]; sync::MAX_WANT + 1] };
        assert!(matches!(p.links[0].handle(Stream::Ours, want, NOW), Err(Violation::WantTooLong(_))));
        // A batch whose cursor goes back within one epoch.
        let back = Frame::Batch { epoch: [2; 16], upto: 0, head: 1, records: vec![], blobs: vec![] };
        assert!(matches!(p.links[0].handle(Stream::Theirs, back, NOW), Err(Violation::Feed(_))));
    }

    #[test]
    fn a_want_is_answered_without_moving_the_cursor() {
        let mut p = Pair::new([3, 0], [None, None], 10);
        p.run();
        p.links[0].handle(Stream::Ours, Frame::Want { ids: vec![[7; 32]] }, NOW).unwrap();
        assert!(matches!(p.links[0].poll(), Some(Action::Build(Build::Wanted { .. }))));
        p.links[0].built(Built::Wanted(vec![vec![1, 2, 3]]));
        match p.links[0].poll() {
            Some(Action::Send(Stream::Ours, Frame::Batch { upto, records, .. })) => assert_eq!((upto, records.len()), (3, 1)),
            other => panic!("{other:?}"),
        }
    }
}
