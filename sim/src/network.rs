//! The simulated network: each parent–child connection is a pair of the
//! node's own link state machines ([`zongzhi_node::replication::link`]),
//! one per end, joined by two wires of encoded frames.
//!
//! A wire delivers frames in order, as a QUIC stream does, but late: each
//! pump delivers a number of frames the seed picks and the rest wait for a
//! later step (delay). A cut drops the connection with whatever is on the
//! wire (the lost batches); the ends start again from their stored cursors
//! at the next connection. Received batches wait at the writer as they do
//! in the node (up to `WRITE_AHEAD`) and several may be written in one
//! group. On a faulty link a batch's case events may be handed to the
//! writer reordered and with a record twice (what a resend or the
//! out-of-order urgent and `Want` batches bring).

use std::collections::VecDeque;

use anyhow::{Context as _, bail};
use zongzhi_node::ledger::{Op, Outcome};
use zongzhi_node::replication;
use zongzhi_node::replication::link::{self, Action, Build, Built, Incoming, Link, Setup, Side, Stream};
use zongzhi_protocol::sync::Frame;
use zongzhi_protocol::{BlobHash, Body, Record};

use crate::rng::Rng;
use crate::world::{World, debug};

/// Bytes on a wire toward one end: (the stream as the receiving end names
/// it, the frame's length-prefixed encoding).
type Wire = VecDeque<(Stream, Vec<u8>)>;

/// One end of a connection.
pub struct End {
    pub node: usize,
    link: Link,
    /// Frames on the wire toward this end.
    inbox: Wire,
    /// Received batches at this end's writer, in order.
    at_writer: Vec<Incoming>,
}

/// A live connection: `ends[0]` is the parent's side, `ends[1]` the child's.
pub struct Conn {
    pub ends: [End; 2],
}

impl Conn {
    /// Frames on either wire.
    pub fn in_flight(&self) -> usize {
        self.ends.iter().map(|e| e.inbox.len()).sum()
    }

    /// Batches on the wire (lost when the connection drops).
    pub fn batches_in_flight(&self) -> u64 {
        self.ends.iter().flat_map(|e| e.inbox.iter()).filter(|(s, _)| *s == Stream::Theirs).count() as u64
    }

    /// The child end sends its `Status` again (protocol 3 only).
    pub fn refresh_child_status(&mut self) {
        self.ends[1].link.refresh_status();
    }

    fn idle(&self) -> bool {
        self.in_flight() == 0 && self.ends.iter().all(|e| e.at_writer.is_empty() && e.link.is_idle())
    }
}

/// The name of a stream at the other end: our subscription is the peer's
/// feed going out, and the other way round.
fn at_peer(stream: Stream) -> Stream {
    match stream {
        Stream::Control => Stream::Control,
        Stream::Theirs => Stream::Ours,
        Stream::Ours => Stream::Theirs,
    }
}

impl World {
    /// Opens edge `e`: each end's link from its store (feed epoch and head,
    /// the cursor it stored for the other's feed, its certificate chain).
    pub(crate) fn connect(&self, e: usize, window: u64) -> anyhow::Result<Conn> {
        let edge = &self.edges[e];
        // The handshake's choice: the parent's most preferred version the
        // child offers.
        let Some(protocol) = zongzhi_protocol::sync::choose(&self.nodes[edge.parent].shared().caps.protocols, &self.nodes[edge.child].shared().caps.protocols) else {
            bail!("{} and {} speak no common protocol", self.nodes[edge.parent].division, self.nodes[edge.child].division);
        };
        let end = |me: usize, peer: usize, side: Side| -> anyhow::Result<End> {
            let ctx = self.nodes[me].shared();
            let peer_id = self.nodes[peer].id;
            let setup = Setup {
                side,
                protocol,
                peer: peer_id,
                peer_division: self.nodes[peer].division,
                root: ctx.trust().root(),
                chain: replication::own_chain(ctx)?,
                epoch: replication::feed_epoch(ctx),
                head: *ctx.feed.borrow(),
                stored: ctx.store.cursor(&peer_id, side.direction_in() as u8)?,
                window,
                recovering: ctx.recovery.restoring(),
            };
            Ok(End { node: me, link: Link::new(setup), inbox: VecDeque::new(), at_writer: Vec::new() })
        };
        Ok(Conn { ends: [end(edge.parent, edge.child, Side::Parent)?, end(edge.child, edge.parent, Side::Child)?] })
    }

    /// Runs a connection for up to `rounds` rounds: each end learns its
    /// feed head and carries out its link's actions, each wire delivers
    /// some frames, each writer stores what waits. Returns how much
    /// happened (0: the connection is idle).
    pub(crate) fn pump(&mut self, conn: &mut Conn, rounds: usize, rng: &mut Rng, faulty: bool) -> anyhow::Result<u64> {
        let mut moved = 0;
        for _ in 0..rounds {
            let before = moved;
            for i in 0..2 {
                let head = *self.nodes[conn.ends[i].node].shared().feed.borrow();
                conn.ends[i].link.feed_grew(head);
                moved += self.act(conn, i)?;
            }
            for i in 0..2 {
                let n = if faulty { 1 + rng.below(4) } else { usize::MAX };
                moved += self.deliver(conn, i, n)?;
                moved += self.act(conn, i)?;
            }
            for i in 0..2 {
                moved += self.write(conn, i, rng, faulty)?;
                moved += self.act(conn, i)?;
            }
            if moved == before && conn.idle() {
                break;
            }
        }
        Ok(moved)
    }

    /// Carries out end `i`'s actions: frames onto the wire, batches built
    /// from its store, received batches queued at its writer.
    fn act(&mut self, conn: &mut Conn, i: usize) -> anyhow::Result<u64> {
        let mut n = 0;
        while let Some(action) = conn.ends[i].link.poll() {
            n += 1;
            match action {
                Action::Send(stream, frame) => {
                    if let Frame::Batch { records, .. } = &frame {
                        self.stats.batches += 1;
                        self.stats.records_moved += records.len() as u64;
                    }
                    conn.ends[1 - i].inbox.push_back((at_peer(stream), frame.to_wire()));
                }
                Action::Build(build) => {
                    let built = self.build_for(conn, i, build)?;
                    conn.ends[i].link.built(built);
                }
                Action::Ingest(incoming) => conn.ends[i].at_writer.push(incoming),
                Action::PeerStatus(reports) => {
                    let (me, peer) = (conn.ends[i].node, conn.ends[1 - i].node);
                    replication::keep_status(self.nodes[me].shared(), self.nodes[peer].division, conn.ends[i].link.direction_in(), reports);
                }
            }
        }
        Ok(n)
    }

    /// What end `i`'s store builds for the other end (the node's own batch
    /// building), checked for records going back to where they came from.
    fn build_for(&mut self, conn: &Conn, i: usize, build: Build) -> anyhow::Result<Built> {
        let (me, peer) = (conn.ends[i].node, conn.ends[1 - i].node);
        let (ctx, peer_division, dir) = (self.nodes[me].shared(), self.nodes[peer].division, conn.ends[i].link.direction_out());
        if matches!(build, Build::Wanted { .. }) {
            self.stats.wants += 1;
        }
        // A restored peer asked for its own records back: those are not echoes.
        let own = match &build {
            Build::Feed { own, .. } | Build::Wanted { own, .. } => *own,
            Build::Urgent { .. } | Build::Status => None,
        };
        let built = replication::build(ctx, peer_division, dir, build)?;
        let records = match &built {
            Built::Urgent(Some(out)) | Built::Feed(out) => &out.records,
            Built::Wanted(records) => records,
            Built::Urgent(None) | Built::Status(_) => return Ok(built),
        };
        self.check_no_echo(me, peer, dir, records, own)?;
        Ok(built)
    }

    /// Delivers up to `n` frames from the wire to end `i` (a batch only
    /// while its writer takes more).
    fn deliver(&mut self, conn: &mut Conn, i: usize, n: usize) -> anyhow::Result<u64> {
        let mut delivered = 0;
        let now = self.nodes[conn.ends[i].node].shared().clock.now_ms();
        while delivered < n as u64 {
            let end = &mut conn.ends[i];
            let Some((stream, wire)) = end.inbox.front() else { break };
            if *stream == Stream::Theirs && !end.link.takes_batches() {
                break;
            }
            let (stream, wire) = (*stream, wire.clone());
            end.inbox.pop_front();
            let len = Frame::check_len(u32::from_be_bytes(wire[..4].try_into()?))?;
            let frame = Frame::decode(&wire[4..4 + len])?;
            if debug() {
                describe(self, end, stream, &frame);
            }
            if let Err(v) = end.link.handle(stream, frame, now) {
                bail!("{} refused an honest peer's frame: {v}", self.nodes[end.node].division);
            }
            delivered += 1;
        }
        Ok(delivered)
    }

    /// End `i`'s writer stores the batches waiting for it: decoded and
    /// batch-verified, then one group for all or one each (the seed picks),
    /// each acknowledged in order.
    fn write(&mut self, conn: &mut Conn, i: usize, rng: &mut Rng, faulty: bool) -> anyhow::Result<u64> {
        let waiting = std::mem::take(&mut conn.ends[i].at_writer);
        if waiting.is_empty() {
            return Ok(0);
        }
        let n = waiting.len() as u64;
        let node = conn.ends[i].node;
        let mut ops = Vec::new();
        for incoming in waiting {
            ops.push(ingest_op(incoming, rng, faulty)?);
        }
        let groups: Vec<Vec<Op>> = if rng.chance(50) { vec![ops] } else { ops.into_iter().map(|o| vec![o]).collect() };
        for group in groups {
            for r in self.nodes[node].process(group) {
                let report = match r {
                    Ok(Outcome::Ingested(report)) => report,
                    other => bail!("{} ingesting from {}: {other:?}", self.nodes[node].division, self.nodes[conn.ends[1 - i].node].division),
                };
                if debug() && !report.rejected.is_empty() {
                    eprintln!("{} refused: {:?}", self.nodes[node].division, report.rejected.iter().map(|(id, why)| format!("{} {why}", id.fmt_short())).collect::<Vec<_>>());
                }
                conn.ends[i].link.stored(&report);
                if replication::note_recovery(self.nodes[node].shared(), &mut conn.ends[i].link) {
                    for r in self.nodes[node].process(vec![Op::Ingest { records: vec![], blobs: vec![], cursor: None }]) {
                        r.context("the ingest that ends a restore")?;
                    }
                }
            }
        }
        Ok(n)
    }
}

/// The writer's `Op::Ingest` for a received batch. On a faulty link the
/// records may be handed over reordered (a step before its parents, a 督办
/// before the dispatch it follows) and one twice: the receiver must park
/// what lacks a parent, release it when the parent lands (in the same write
/// group too) and store each record once.
fn ingest_op(incoming: Incoming, rng: &mut Rng, faulty: bool) -> anyhow::Result<Op> {
    let Incoming { records, blobs, mut cursor, .. } = incoming;
    let mut records = replication::decode_verified(records).context("an honest sender's batch")?;
    if faulty && records.len() > 1 && rng.chance(30) {
        // Case events in any order (parking puts them right); certificates,
        // revocations and policies keep their feed order and go first, as
        // the ordered feed guarantees (a sender holds an author's
        // certificate before anything it signed; shuffling those too
        // refused records of a not-yet-known author for good, seed 119). A
        // shuffled batch stands for what does arrive out of feed order (the
        // urgent cases, answers to `Want`): not a continuing batch, so the
        // sender's chain is not checked on it.
        let (mut trust, mut events): (Vec<Record>, Vec<Record>) = records.into_iter().partition(|r| !matches!(r.body, Body::CaseEvent(_)));
        for i in (1..events.len()).rev() {
            events.swap(i, rng.below(i + 1));
        }
        trust.append(&mut events);
        records = trust;
        cursor.in_order = false;
    }
    if faulty && !records.is_empty() && rng.chance(10) {
        // A record again, after its first copy (a resend after a cut).
        let i = rng.below(records.len());
        let again = records[i].clone();
        records.insert(i + 1 + rng.below(records.len() - i), again);
    }
    let blobs = blobs.into_iter().map(|(h, b)| (BlobHash(h), b)).collect();
    Ok(Op::Ingest { records, blobs, cursor: Some(cursor) })
}

/// `ZONGZHI_SIM_DEBUG`: one line per delivered frame.
fn describe(world: &World, end: &End, stream: Stream, frame: &Frame) {
    let to = world.nodes[end.node].division;
    match frame {
        Frame::Batch { upto, records, .. } => {
            let ids: Vec<String> = records.iter().filter_map(|b| Record::decode_unverified(b).ok()).map(|r| r.id.fmt_short()[..4].to_string()).collect();
            eprintln!("→{to} {stream:?} batch upto {upto}: {}", ids.join(" "));
        }
        other => eprintln!("→{to} {stream:?} {other:?}"),
    }
}

/// The send window a seed gives its connections: mostly the node's, some
/// small enough that a catch-up fills it and waits for acks.
pub fn window(rng: &mut Rng) -> u64 {
    if rng.chance(30) { 1 + rng.below(64) as u64 } else { link::IN_FLIGHT }
}
