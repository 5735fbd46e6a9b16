//! The QUIC side of a link: the endpoint, frames on streams, and the
//! driver that carries out what the link's state machine
//! ([`replication::link::Link`]) asks: write a frame, build a batch from the
//! store on a blocking thread, decode and verify a received batch on
//! another and hand it to the writer. Every replication decision is the
//! machine's; this file only moves bytes and waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use zongzhi_protocol::sync::{self, Frame};
use zongzhi_protocol::{BlobHash, DivisionCode, NodeId, Record};

use super::tls::{negotiated, peer_key};
use super::{LinkError, Links, Result, peer_error};
use crate::context::Context;
use crate::ledger::{self, Cursor, Ledger, Op, Outcome};
use crate::replication::link::{Action, Build, Built, IN_FLIGHT, Incoming, Link, Setup, Side, Stream, WRITE_AHEAD};
use crate::replication::{self, ReplicationError};

pub(super) fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(3)));
    if let Ok(idle) = Duration::from_secs(15).try_into() {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// The endpoint's stateless-reset key is derived from the node key, so a
/// node that restarts (after a crash, say) answers its peers' packets for the
/// old connection with a valid reset and they reconnect at once instead of
/// waiting for the idle timeout.
pub(super) fn endpoint(shared: &Context, addr: SocketAddr, server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint> {
    let secret = shared.key.derive_secret("zongzhi 2026 quic stateless reset key");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    // Connection ids keyed from the node key too: a restarted node must
    // recognise the ids its previous process issued, or it drops its
    // peers' packets ("invalid CID") instead of answering with the reset
    // above, and they wait out the idle timeout (15 s) before reconnecting.
    let cid = shared.key.derive_secret("zongzhi 2026 quic connection id key");
    let cid_key = u64::from_le_bytes(cid[..8].try_into().unwrap_or_default());
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    let socket = std::net::UdpSocket::bind(addr).map_err(|source| LinkError::Io { what: format!("binding QUIC {addr}"), source })?;
    let runtime = quinn::default_runtime().ok_or(LinkError::Setup("no async runtime for QUIC".into()))?;
    quinn::Endpoint::new(config, server, socket, runtime).map_err(|source| LinkError::Io { what: format!("QUIC endpoint on {addr}"), source })
}

pub(super) async fn write_frame(send: &mut quinn::SendStream, frame: &Frame) -> Result<usize> {
    let wire = frame.to_wire();
    send.write_all(&wire).await?;
    Ok(wire.len())
}

pub(super) async fn read_frame(recv: &mut quinn::RecvStream) -> Result<(Frame, usize)> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    let n = Frame::check_len(u32::from_be_bytes(len))?;
    let mut body = vec![0u8; n];
    recv.read_exact(&mut body).await?;
    Ok((Frame::decode(&body)?, n + 4))
}

pub(super) fn epoch(shared: &Context) -> [u8; 16] {
    replication::feed_epoch(shared)
}

pub(super) fn own_chain(shared: &Context) -> Result<Vec<Vec<u8>>> {
    Ok(replication::own_chain(shared)?)
}

pub(super) async fn run_link(shared: Context, ledger: Ledger, conn: quinn::Connection, side: Side, links: Links) -> Result<()> {
    let peer = peer_key(&conn)?;
    let (peer_division, peer_name) = {
        let trust = shared.trust();
        let m = trust.member(&peer).ok_or_else(|| LinkError::Peer(format!("peer {} has no certificate", peer.fmt_short())))?;
        (m.cert.division, m.cert.name.clone())
    };
    let expected = match side {
        Side::Parent => peer_division.parent() == Some(shared.unit),
        Side::Child => shared.unit.parent() == Some(peer_division),
    };
    if !expected {
        shared.sync.refused("not parent or child");
        let why = match side {
            Side::Child => {
                let trust = shared.trust();
                let parent = trust.member(&shared.key.id()).and_then(|m| trust.member(&m.cert.issuer)).map(|m| format!("{} {}", m.cert.division, m.cert.name));
                format!(
                    "the center at this node's `parent` address is {peer_division} {peer_name}, not its parent{}: set `parent` in the config to the QUIC address of {}",
                    parent.as_deref().map(|p| format!(" {p}")).unwrap_or_default(),
                    parent.as_deref().unwrap_or("the center that issued this node's certificate")
                )
            }
            Side::Parent => format!("{peer_division} {peer_name} connected here but is not a child of this center: its `parent` setting points here by mistake"),
        };
        conn.close(1u32.into(), why.as_bytes());
        return peer_error(why);
    }
    let span = tracing::info_span!("link", peer = %peer.fmt_short(), division = %peer_division);
    let replaced = match links.lock() {
        Ok(mut l) => l.insert(peer, conn.clone()),
        Err(p) => p.into_inner().insert(peer, conn.clone()),
    };
    if let Some(old) = replaced {
        old.close(2u32.into(), b"replaced by a new connection");
    }
    shared.sync.update(&peer, |s| {
        s.division = peer_division.to_string();
        s.name = peer_name.clone();
        s.role = if side == Side::Parent { "child".into() } else { "parent".into() };
        s.links += 1;
        s.connected = true;
        s.connects += 1;
        s.incompatible = None;
        s.last_contact_ms = Some(shared.clock.now_ms());
    });
    tracing::info!(parent: &span, "link up");
    let result = tracing::Instrument::instrument(link_streams(&shared, &ledger, &conn, side, peer, peer_division), span.clone()).await;
    if let Ok(mut l) = links.lock()
        && l.get(&peer).is_some_and(|c| c.stable_id() == conn.stable_id())
    {
        l.remove(&peer);
    }
    let now = shared.clock.now_ms();
    shared.sync.update(&peer, |s| {
        s.links = s.links.saturating_sub(1);
        s.connected = s.links > 0;
        if let Err(e) = &result {
            s.errors += 1;
            s.last_error = Some(format!("{e:#}"));
            s.last_error_ms = Some(now);
        }
    });
    close_with(&conn, &result);
    result
}

/// Closes a connection with the link's outcome as the reason the peer sees
/// (a connection already closed keeps its first reason).
fn close_with(conn: &quinn::Connection, result: &Result<()>) {
    match result {
        Ok(()) => conn.close(0u32.into(), b"bye"),
        Err(e) => {
            let reason: String = format!("{e:#}").chars().take(200).collect();
            conn.close(1u32.into(), reason.as_bytes());
        }
    }
}

/// Frames read off one stream, in order (a task per stream: reading a
/// frame is not cancel-safe, so it never races in a `select!`).
type Frames = mpsc::Receiver<Result<(Frame, usize)>>;

fn spawn_reader(mut recv: quinn::RecvStream, room: usize) -> Frames {
    let (tx, rx) = mpsc::channel(room);
    tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut recv).await;
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Encoded frames to write on one stream, in order, by a task of their own
/// (a slow peer never stalls the driver; what waits here is bounded by the
/// link's window). The task ends when the sender is dropped.
type Outbox = mpsc::UnboundedSender<Vec<u8>>;

fn spawn_writer(mut send: quinn::SendStream) -> Outbox {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(wire) = rx.recv().await {
            if let Err(e) = send.write_all(&wire).await {
                tracing::debug!("writing a frame: {e}");
                return;
            }
        }
    });
    tx
}

/// The handshake's streams: the child opens the control stream and each
/// side opens the stream of its own subscription; each side's first frames
/// (`Hello`, `Subscribe`) go out at once, one round trip after TLS.
async fn link_streams(shared: &Context, ledger: &Ledger, conn: &quinn::Connection, side: Side, peer: NodeId, peer_division: DivisionCode) -> Result<()> {
    let stored = shared.store.cursor(&peer, side.direction_in() as u8)?;
    let protocol = negotiated(conn)?;
    shared.sync.update(&peer, |s| s.protocol = Some(protocol));
    let setup = Setup {
        side,
        protocol,
        peer,
        peer_division,
        root: shared.trust().root(),
        chain: own_chain(shared)?,
        epoch: epoch(shared),
        head: *shared.feed.borrow(),
        stored,
        window: IN_FLIGHT,
        recovering: shared.recovery.restoring(),
    };
    let mut driver = Driver::new(shared, ledger, Link::new(setup), peer);
    let (csend, mut crecv) = match side {
        Side::Child => conn.open_bi().await?,
        Side::Parent => conn.accept_bi().await?,
    };
    driver.outbox.control = Some(spawn_writer(csend));
    let (tsend, trecv) = conn.open_bi().await?;
    driver.outbox.theirs = Some(spawn_writer(tsend));
    driver.act()?;
    let (hello, n) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut crecv)).await.map_err(|_| LinkError::Peer("no Hello".into()))??;
    driver.handle(Stream::Control, hello, n)?;
    let (osend, mut orecv) = conn.accept_bi().await?;
    driver.outbox.ours = Some(spawn_writer(osend));
    let (subscribe, n) = read_frame(&mut orecv).await?;
    driver.handle(Stream::Ours, subscribe, n)?;
    // After `Hello` the control stream carries `Status` frames (protocol 3).
    driver.run(conn, spawn_reader(crecv, 2), spawn_reader(trecv, 2), spawn_reader(orecv, 8)).await
}

/// A received batch being decoded and verified off the async threads.
struct Decoding {
    records: JoinHandle<Result<Vec<Record>, ReplicationError>>,
    blobs: Vec<(BlobHash, Vec<u8>)>,
    cursor: Cursor,
}

/// A received batch at the writer, waiting to be stored with its cursor.
struct AtWriter {
    reply: oneshot::Receiver<ledger::Result<Outcome>>,
    n: usize,
}

/// Carries out a [`Link`]'s actions over one QUIC connection.
struct Driver {
    shared: Context,
    ledger: Ledger,
    link: Link,
    peer: NodeId,
    outbox: Outboxes,
    building: Option<JoinHandle<Result<Built, ReplicationError>>>,
    decoding: VecDeque<Decoding>,
    at_writer: VecDeque<AtWriter>,
}

#[derive(Default)]
struct Outboxes {
    control: Option<Outbox>,
    theirs: Option<Outbox>,
    ours: Option<Outbox>,
}

impl Driver {
    fn new(shared: &Context, ledger: &Ledger, link: Link, peer: NodeId) -> Driver {
        Driver { shared: shared.clone(), ledger: ledger.clone(), link, peer, outbox: Outboxes::default(), building: None, decoding: VecDeque::new(), at_writer: VecDeque::new() }
    }

    /// Until the link fails or the connection closes. What was read off the
    /// peer's feed stream before that is still verified and stored (with
    /// its cursor, not acknowledged), so a cut costs at most the batch that
    /// was on the wire.
    async fn run(mut self, conn: &quinn::Connection, mut control: Frames, mut theirs: Frames, mut ours: Frames) -> Result<()> {
        let mut control_open = true;
        let mut watch = self.shared.feed.subscribe();
        // Our Status again now and then (protocol 3): the parent's view of
        // this node and its subtree stays fresh, and its age says when it
        // was last heard from.
        let mut status_tick = tokio::time::interval(crate::replication::STATUS_EVERY);
        status_tick.tick().await;
        // Going up, news from below goes on at once (a short pause gathers
        // the reports of several children into one Status).
        let mut fleet = self.shared.fleet_changed.subscribe();
        fleet.mark_unchanged();
        let mut up = self.link.direction_out() == sync::Direction::Up;
        let mut status_due: Option<tokio::time::Instant> = None;
        // What the handshake left to do (the first batch, or the urgent
        // one) goes out before anything else happens.
        let mut started = self.act();
        let result = loop {
            if let Err(e) = std::mem::replace(&mut started, Ok(())) {
                break Err(e);
            }
            let step = tokio::select! {
                biased;
                done = front_reply(&mut self.at_writer), if !self.at_writer.is_empty() => self.stored(done),
                decoded = front_decoded(&mut self.decoding), if !self.decoding.is_empty() => self.hand_to_writer(decoded).await,
                built = running(&mut self.building), if self.building.is_some() => {
                    self.building = None;
                    built.map(|b| self.link.built(b))
                }
                frame = theirs.recv(), if self.link.takes_batches() && self.decoding.len() < WRITE_AHEAD => self.received(Stream::Theirs, frame),
                frame = ours.recv() => self.received(Stream::Ours, frame),
                frame = control.recv(), if control_open => match frame {
                    Some(frame) => self.received(Stream::Control, Some(frame)),
                    // The peer never writes more on it (protocol 2).
                    None => {
                        control_open = false;
                        Ok(())
                    }
                },
                changed = watch.changed() => match changed {
                    Ok(()) => {
                        self.link.feed_grew(*watch.borrow_and_update());
                        Ok(())
                    }
                    Err(_) => Err(LinkError::Stopping("node stopping")),
                },
                _ = status_tick.tick() => {
                    self.link.refresh_status();
                    Ok(())
                }
                changed = fleet.changed(), if up && status_due.is_none() => {
                    match changed {
                        Ok(()) => status_due = Some(tokio::time::Instant::now() + Duration::from_millis(200)),
                        Err(_) => up = false,
                    }
                    Ok(())
                }
                _ = tokio::time::sleep_until(status_due.unwrap_or_else(tokio::time::Instant::now)), if status_due.is_some() => {
                    status_due = None;
                    fleet.mark_unchanged();
                    self.link.refresh_status();
                    Ok(())
                }
                e = conn.closed() => Err(LinkError::Connection(e)),
            };
            if let Err(e) = step.and_then(|()| self.act()) {
                break Err(e);
            }
        };
        close_with(conn, &result);
        self.drain(theirs).await;
        result
    }

    /// The link is over: store what was already read, without acks.
    async fn drain(mut self, mut theirs: Frames) {
        self.outbox = Outboxes::default();
        theirs.close();
        while let Some(Ok((frame, n))) = theirs.recv().await {
            if self.handle(Stream::Theirs, frame, n).is_err() {
                break;
            }
        }
        // Batches from the queue only; nothing else is sent or built.
        while let Some(action) = self.link.poll() {
            if let Action::Ingest(incoming) = action {
                self.decode(incoming);
            }
        }
        while !self.decoding.is_empty() {
            let decoded = front_decoded(&mut self.decoding).await;
            if let Err(e) = self.hand_to_writer(decoded).await {
                tracing::debug!("receiving side after the link ended: {e:#}");
                return;
            }
        }
        while let Some(w) = self.at_writer.pop_front() {
            let _ = w.reply.await;
        }
    }

    fn received(&mut self, stream: Stream, frame: Option<Result<(Frame, usize)>>) -> Result<()> {
        match frame {
            Some(Ok((frame, n))) => self.handle(stream, frame, n),
            Some(Err(e)) => Err(e),
            None => Err(LinkError::Stopping("the stream reader stopped")),
        }
    }

    fn handle(&mut self, stream: Stream, frame: Frame, bytes: usize) -> Result<()> {
        self.shared.sync.update(&self.peer, |s| s.bytes_received += bytes as u64);
        self.link.handle(stream, frame, self.shared.clock.now_ms())?;
        Ok(())
    }

    /// Carries out what the link asks until it asks nothing more.
    fn act(&mut self) -> Result<()> {
        while let Some(action) = self.link.poll() {
            match action {
                Action::Send(stream, frame) => self.send(stream, &frame),
                Action::Build(build) => {
                    let (shared, peer, dir) = (self.shared.clone(), self.link.peer_division(), self.link.direction_out());
                    self.building = Some(tokio::task::spawn_blocking(move || build_for(&shared, peer, dir, build)));
                }
                Action::Ingest(incoming) => self.decode(incoming),
                Action::PeerStatus(reports) => {
                    let (shared, via, side) = (self.shared.clone(), self.link.peer_division(), self.link.direction_in());
                    tokio::task::spawn_blocking(move || replication::keep_status(&shared, via, side, reports));
                }
            }
        }
        self.shared.sync.update(&self.peer, |s| {
            s.behind_to_peer = self.link.behind_to_peer();
            if let Some(acked) = self.link.acked_by_peer() {
                s.acked_by_peer = Some(acked);
            }
        });
        Ok(())
    }

    fn send(&mut self, stream: Stream, frame: &Frame) {
        let outbox = match stream {
            Stream::Control => &self.outbox.control,
            Stream::Theirs => &self.outbox.theirs,
            Stream::Ours => &self.outbox.ours,
        };
        let wire = frame.to_wire();
        let bytes = wire.len() as u64;
        if outbox.as_ref().is_some_and(|o| o.send(wire).is_ok()) {
            let records = match frame {
                Frame::Batch { records, .. } => Some((records.len() as u64, records.iter().map(|r| r.len() as u64).sum::<u64>())),
                _ => None,
            };
            let now = self.shared.clock.now_ms();
            self.shared.sync.update(&self.peer, |s| {
                s.bytes_sent += bytes;
                if let Some((n, record_bytes)) = records {
                    s.records_sent += n;
                    s.record_bytes_sent += record_bytes;
                    s.last_contact_ms = Some(now);
                }
            });
        }
    }

    /// Decodes and batch-verifies a received batch off the async threads
    /// (one forged record refuses the batch).
    fn decode(&mut self, incoming: Incoming) {
        let Incoming { records, blobs, cursor } = incoming;
        let records = tokio::task::spawn_blocking(move || replication::decode_verified(records));
        let blobs = blobs.into_iter().map(|(h, b)| (BlobHash(h), b)).collect();
        self.decoding.push_back(Decoding { records, blobs, cursor });
    }

    /// The oldest batch is decoded: hand it to the writer (batches reach the
    /// writer in the order they came).
    async fn hand_to_writer(&mut self, decoded: Result<Vec<Record>>) -> Result<()> {
        let Some(Decoding { blobs, cursor, .. }) = self.decoding.pop_front() else { return Ok(()) };
        let records = decoded?;
        let n = records.len();
        let reply = self.ledger.enqueue(Op::Ingest { records, blobs, cursor: Some(cursor) }).await?;
        self.at_writer.push_back(AtWriter { reply, n });
        Ok(())
    }

    /// The oldest batch at the writer is stored: the link acknowledges it.
    fn stored(&mut self, outcome: Result<Outcome>) -> Result<()> {
        let Some(AtWriter { n, .. }) = self.at_writer.pop_front() else { return Ok(()) };
        let report = match outcome? {
            Outcome::Ingested(report) => report,
            _ => ledger::IngestReport::default(),
        };
        for (id, why) in &report.rejected {
            tracing::warn!(record = %id.fmt_short(), "record refused: {why}");
        }
        if !report.missing.is_empty() {
            tracing::info!(records = report.missing.len(), "asking for missing parents");
        }
        self.link.stored(&report);
        if crate::replication::note_recovery(&self.shared, &mut self.link) {
            let ledger = self.ledger.clone();
            tokio::spawn(async move {
                let _ = ledger.submit(Op::Ingest { records: vec![], blobs: vec![], cursor: None }).await;
            });
        }
        let (rejected, now, behind) = (report.rejected.len(), self.shared.clock.now_ms(), self.link.behind_from_peer());
        self.shared.sync.update(&self.peer, |s| {
            s.records_received += n as u64;
            s.duplicates_received += report.duplicates as u64;
            s.behind_from_peer = behind;
            s.last_contact_ms = Some(now);
            if rejected > 0 {
                s.errors += rejected as u64;
                s.last_error = Some(format!("{rejected} records refused"));
            }
        });
        Ok(())
    }
}

/// The writer's answer for the oldest batch at the writer.
async fn front_reply(queue: &mut VecDeque<AtWriter>) -> Result<Outcome> {
    let Some(w) = queue.front_mut() else { return Err(LinkError::Stopping("nothing at the writer")) };
    Ok((&mut w.reply).await.map_err(|_| LinkError::Stopping("the writer stopped"))??)
}

/// The oldest received batch, decoded and verified.
async fn front_decoded(queue: &mut VecDeque<Decoding>) -> Result<Vec<Record>> {
    let Some(d) = queue.front_mut() else { return Err(LinkError::Stopping("nothing being decoded")) };
    Ok((&mut d.records).await??)
}

/// What the store built for the link.
async fn running(build: &mut Option<JoinHandle<Result<Built, ReplicationError>>>) -> Result<Built> {
    let Some(b) = build.as_mut() else { return Err(LinkError::Stopping("nothing being built")) };
    Ok(b.await??)
}

/// Builds what the link asked for (blocking: reads the store).
fn build_for(shared: &Context, peer: DivisionCode, dir: sync::Direction, build: Build) -> Result<Built, ReplicationError> {
    let built = replication::build(shared, peer, dir, build)?;
    if let Built::Urgent(Some(b)) = &built {
        tracing::info!(records = b.records.len(), "sending urgent cases ahead of the catch-up");
    }
    Ok(built)
}
