//! The QUIC side of a link: the endpoint, frames on streams, the
//! handshake (`Hello`, `Subscribe`) and the two feed loops, receiving
//! (verify, store with the cursor, acknowledge) and sending (the
//! [`sync::FeedSender`]'s window, live push, answers to `Want`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use zongzhi_protocol::sync::{self, Direction, Frame};
use zongzhi_protocol::{DivisionCode, NodeId, Record};

use crate::ledger::{self, Cursor, Ledger, Op, Outcome};
use crate::context::Context;
use crate::replication;
use crate::store::meta;
use super::tls::peer_key;
use super::{LinkError, Links, Result, Role, peer_error};

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
    shared.store.meta_get(meta::FEED_EPOCH).ok().flatten().and_then(|v| v.try_into().ok()).unwrap_or([0; 16])
}

pub(super) fn own_chain(shared: &Context) -> Result<Vec<Vec<u8>>> {
    let ids = shared.trust().chain(&shared.key.id()).ok_or_else(|| LinkError::Setup("this node has no certificate chain (import one with zongzhi-node import-cert)".into()))?;
    ids.iter()
        .map(|id| shared.store.record_bytes(id)?.ok_or_else(|| LinkError::Setup(format!("certificate record {id} missing"))))
        .collect()
}

pub(super) async fn run_link(shared: Context, ledger: Ledger, conn: quinn::Connection, role: Role, links: Links) -> Result<()> {
    let peer = peer_key(&conn)?;
    let (peer_division, peer_name) = {
        let trust = shared.trust();
        let m = trust.member(&peer).ok_or_else(|| LinkError::Peer(format!("peer {} has no certificate", peer.fmt_short())))?;
        (m.cert.division, m.cert.name.clone())
    };
    let expected = match role {
        Role::Parent => peer_division.parent() == Some(shared.unit),
        Role::Child => shared.unit.parent() == Some(peer_division),
    };
    if !expected {
        shared.sync.refused("not parent or child");
        let why = format!("{peer_division} is not this node's {}", if role == Role::Parent { "child" } else { "parent" });
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
        s.role = if role == Role::Parent { "child".into() } else { "parent".into() };
        s.links += 1;
        s.connected = true;
        s.connects += 1;
        s.last_contact_ms = Some(crate::context::now_ms());
    });
    tracing::info!(parent: &span, "link up");
    let result = tracing::Instrument::instrument(link_streams(&shared, &ledger, &conn, role, peer, peer_division), span.clone()).await;
    if let Ok(mut l) = links.lock()
        && l.get(&peer).is_some_and(|c| c.stable_id() == conn.stable_id())
    {
        l.remove(&peer);
    }
    shared.sync.update(&peer, |s| {
        s.links = s.links.saturating_sub(1);
        s.connected = s.links > 0;
        if let Err(e) = &result {
            s.errors += 1;
            s.last_error = Some(format!("{e:#}"));
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

async fn link_streams(shared: &Context, ledger: &Ledger, conn: &quinn::Connection, role: Role, peer: NodeId, peer_division: DivisionCode) -> Result<()> {
    // Control stream: the child opens it; both say Hello.
    let (mut csend, mut crecv) = match role {
        Role::Child => conn.open_bi().await?,
        Role::Parent => conn.accept_bi().await?,
    };
    let my_epoch = epoch(shared);
    let (dir_in, dir_out) = match role {
        Role::Child => (Direction::Down, Direction::Up),
        Role::Parent => (Direction::Up, Direction::Down),
    };
    // Say Hello and subscribe at once (one round trip after the TLS
    // handshake): the sender decides whether our stored cursor still holds
    // for its feed epoch.
    let mut sent = write_frame(&mut csend, &Frame::Hello { version: sync::PROTOCOL_VERSION, chain: own_chain(shared)?, epoch: my_epoch }).await?;
    let (mut rsend, rrecv) = conn.open_bi().await?;
    let feed_receiver = sync::FeedReceiver::new(shared.store.cursor(&peer, dir_in as u8)?);
    sent += write_frame(&mut rsend, &feed_receiver.subscribe()).await?;
    let (hello, mut received) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut crecv)).await.map_err(|_| LinkError::Peer("no Hello".into()))??;
    let Frame::Hello { version, chain, epoch: _ } = hello else {
        return peer_error("expected Hello");
    };
    if version != sync::PROTOCOL_VERSION {
        return peer_error(format!("peer speaks protocol version {version}, this node {}", sync::PROTOCOL_VERSION));
    }
    // The peer's chain must verify to our root and end in the peer's key.
    let records: Vec<Record> = chain.iter().map(|b| Record::decode(b)).collect::<Result<_, _>>().map_err(|e| LinkError::Peer(format!("peer's certificate chain: {e}")))?;
    let root = shared.trust().root();
    let cert = zongzhi_protocol::trust::verify_chain(&records, &root, crate::context::now_ms()).map_err(|e| LinkError::Peer(format!("peer's certificate chain: {e}")))?;
    if cert.key != peer || cert.division != peer_division {
        return peer_error("peer's certificate chain is not for its TLS key");
    }
    let (ssend, mut srecv) = conn.accept_bi().await?;
    let (sub, n) = read_frame(&mut srecv).await?;
    received += n;
    let Frame::Subscribe { epoch: sub_epoch, cursor: sub_cursor } = sub else {
        return peer_error("expected Subscribe");
    };
    let mut feed_sender = sync::FeedSender::new(my_epoch, IN_FLIGHT);
    feed_sender.on_subscribe(sub_epoch, sub_cursor, *shared.feed.borrow());
    shared.sync.update(&peer, |s| {
        s.bytes_sent += sent as u64;
        s.bytes_received += received as u64;
    });
    let receiver = receive_feed(shared.clone(), ledger.clone(), peer, dir_in, feed_receiver, rsend, rrecv);
    let sender = send_feed(shared.clone(), peer, peer_division, dir_out, feed_sender, ssend, srecv);
    tokio::pin!(receiver);
    let result = tokio::select! {
        r = &mut receiver => return r,
        r = sender => r,
        e = conn.closed() => Err(LinkError::Connection(e)),
    };
    // The link is over: close it (so the receiver's reads end once the
    // data already here is read) and let the receiver store what arrived.
    close_with(conn, &result);
    if let Err(e) = receiver.await {
        tracing::debug!("receiving side after the link ended: {e:#}");
    }
    result
}

/// A received batch on its way from the reader to the writer.
struct Verified {
    records: tokio::task::JoinHandle<Result<Vec<Record>, replication::ReplicationError>>,
    blobs: Vec<(zongzhi_protocol::BlobHash, Vec<u8>)>,
    epoch: [u8; 16],
    upto: u64,
    head: u64,
    bytes: usize,
}

/// Receives batches of the peer's feed, verifies them, stores them with the
/// cursor in one synced write, and acknowledges. Pipelined: while one batch
/// is being written, the next is already read and being verified on another
/// thread.
/// Received batches queued at the writer before the oldest is acknowledged.
const WRITE_AHEAD: usize = 3;

/// A received batch queued at the writer, waiting to be acknowledged.
struct Queued {
    reply: tokio::sync::oneshot::Receiver<ledger::Result<Outcome>>,
    epoch: [u8; 16],
    upto: u64,
    n: usize,
    head: u64,
    bytes: usize,
}

async fn receive_feed(
    shared: Context,
    ledger: Ledger,
    peer: NodeId,
    dir: Direction,
    mut feed: sync::FeedReceiver,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Verified>(2);
    // Frames back to the sender (Received, Ack, Want), written in order by
    // one task; once the link is gone they are dropped.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
    let out = async move {
        while let Some(frame) = out_rx.recv().await {
            write_frame(&mut send, &frame).await?;
        }
        Ok::<(), LinkError>(())
    };
    let received = out_tx.clone();
    let reader = async move {
        loop {
            let (frame, bytes) = read_frame(&mut recv).await?;
            let Frame::Batch { epoch, upto, head, records, blobs } = frame else {
                return peer_error("expected Batch");
            };
            // Off the wire: the sender may send the next batch now.
            let _ = received.send(Frame::Received { upto });
            // Decode and verify off the async threads; one forged record refuses the batch.
            let records = tokio::task::spawn_blocking(move || replication::decode_verified(records));
            let blobs = blobs.into_iter().map(|(h, b)| (zongzhi_protocol::BlobHash(h), b)).collect();
            if tx.send(Verified { records, blobs, epoch, upto, head, bytes }).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        // Up to WRITE_AHEAD batches queued at the writer: the next one is
        // applied (and shares the fsync) while the previous one is written.
        // Acks still go out in order, each after its batch is durable.
        let mut queued: std::collections::VecDeque<Queued> = std::collections::VecDeque::new();
        let mut open = true;
        while open || !queued.is_empty() {
            tokio::select! {
                biased;
                done = async { (&mut queued.front_mut().expect("checked non-empty").reply).await }, if !queued.is_empty() => {
                    let Some(Queued { epoch, upto, n, head, bytes, .. }) = queued.pop_front() else { continue };
                    let outcome = done.map_err(|_| LinkError::Stopping("the writer stopped"))??;
                    let (mut rejected, mut duplicates, mut want) = (0, 0, Vec::new());
                    if let Outcome::Ingested(report) = &outcome {
                        rejected = report.rejected.len();
                        duplicates = report.duplicates;
                        for (id, why) in &report.rejected {
                            tracing::warn!(record = %id.fmt_short(), "record refused: {why}");
                        }
                        want = replication::wants(report);
                    }
                    // Once the link is gone, what was received is still
                    // stored (the cursor with it), just not acknowledged.
                    let _ = out_tx.send(feed.stored(epoch, upto));
                    if !want.is_empty() {
                        tracing::info!(records = want.len(), "asking for missing parents");
                        let _ = out_tx.send(Frame::Want { ids: want });
                    }
                    shared.sync.update(&peer, |s| {
                        s.records_received += n as u64;
                        s.duplicates_received += duplicates as u64;
                        s.bytes_received += bytes as u64;
                        s.behind_from_peer = head.saturating_sub(upto);
                        s.last_contact_ms = Some(crate::context::now_ms());
                        if rejected > 0 {
                            s.errors += rejected as u64;
                            s.last_error = Some(format!("{rejected} records refused"));
                        }
                    });
                }
                next = rx.recv(), if open && queued.len() < WRITE_AHEAD => {
                    let Some(v) = next else {
                        open = false;
                        continue;
                    };
                    let upto = feed.on_batch(v.epoch, v.upto)?;
                    let in_order = feed.continues_feed(v.epoch, v.upto);
                    let decoded = v.records.await??;
                    let n = decoded.len();
                    let cursor = Cursor { peer, direction: dir as u8, epoch: v.epoch, upto, in_order };
                    let reply = ledger.enqueue(Op::Ingest { records: decoded, blobs: v.blobs, cursor: Some(cursor) }).await?;
                    queued.push_back(Queued { reply, epoch: v.epoch, upto, n, head: v.head, bytes: v.bytes });
                }
            }
        }
        Ok::<(), LinkError>(())
    };
    // When the stream fails (the link dropped), the batches already read
    // are still verified and stored, so the next connection resumes after
    // them: a cut costs at most the batch that was on the wire.
    tokio::pin!(writer);
    let result = tokio::select! {
        r = reader => r,
        r = out => r,
        r = &mut writer => return r,
    };
    writer.await.and(result)
}

/// Feed positions that may be sent beyond the last ack: eight batches keep
/// the receiver's verify/write pipeline busy. A cut re-sends what was in
/// flight; nothing stored is sent again (the cursor is stored with the
/// records). With one batch a cut re-sends ≤ 2 batches but cold catch-up is
/// about a fifth slower (BENCHMARKS.md).
const IN_FLIGHT: u64 = 8 * sync::BATCH_RECORDS as u64;

/// Runs `f` on the sender state shared by a link's two tasks (a task that
/// panicked holding the lock left it consistent: every change is one call).
fn with_feed<T>(feed: &std::sync::Mutex<sync::FeedSender>, f: impl FnOnce(&mut sync::FeedSender) -> T) -> T {
    f(&mut feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Streams our feed to a peer as the [`sync::FeedSender`] decides, then
/// pushes new records live.
async fn send_feed(
    shared: Context,
    peer: NodeId,
    peer_division: DivisionCode,
    dir: Direction,
    feed: sync::FeedSender,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<()> {
    let my_epoch = feed.epoch();
    let feed = Arc::new(std::sync::Mutex::new(feed));
    let lock = |f: &Arc<std::sync::Mutex<sync::FeedSender>>| with_feed(f, |f| f.clone());
    let mut watch = shared.feed.subscribe();
    let (want_tx, mut want_rx) = tokio::sync::mpsc::channel::<Vec<[u8; 32]>>(4);
    // Wakes the pump when an ack opens the window (a permit is kept if it
    // is not waiting yet).
    let acked = Arc::new(tokio::sync::Notify::new());
    let acks = {
        let feed = feed.clone();
        let acked = acked.clone();
        async move {
            loop {
                let (frame, _) = read_frame(&mut recv).await?;
                match frame {
                    Frame::Ack { upto } => {
                        with_feed(&feed, |f| f.on_ack(upto))?;
                        acked.notify_one();
                    }
                    Frame::Received { upto } => {
                        with_feed(&feed, |f| f.on_received(upto))?;
                        acked.notify_one();
                    }
                    Frame::Want { ids } if ids.len() <= sync::MAX_WANT => {
                        // Drop the request if one is already queued: the
                        // receiver asks again after its next batch.
                        let _ = want_tx.try_send(ids);
                    }
                    other => return peer_error(format!("unexpected frame on a feed stream: {other:?}")),
                }
            }
        }
    };
    let pump = async {
        // A long catch-up starts with the urgent cases.
        let head = *watch.borrow();
        let cursor = lock(&feed).cursor();
        if head.saturating_sub(cursor) > sync::BATCH_RECORDS as u64 {
            let sh = shared.clone();
            let urgent = tokio::task::spawn_blocking(move || replication::build_urgent(&sh, peer_division, dir, cursor)).await??;
            if let Some(batch) = urgent {
                let n = batch.records.len();
                tracing::info!(records = n, "sending urgent cases ahead of the catch-up");
                let frame = Frame::Batch { epoch: my_epoch, upto: cursor, head, records: batch.records, blobs: batch.blobs };
                let bytes = write_frame(&mut send, &frame).await?;
                shared.sync.update(&peer, |s| {
                    s.records_sent += n as u64;
                    s.bytes_sent += bytes as u64;
                });
            }
        }
        loop {
            let head = *watch.borrow_and_update();
            let state = lock(&feed);
            shared.sync.update(&peer, |s| s.behind_to_peer = head.saturating_sub(state.acked()));
            if let Ok(ids) = want_rx.try_recv() {
                send_wanted(&shared, peer, peer_division, dir, my_epoch, state.cursor(), head, ids, &mut send).await?;
                continue;
            }
            let after = match state.poll(head) {
                sync::SenderPoll::CaughtUp => {
                    tokio::select! {
                        changed = watch.changed() => changed.map_err(|_| LinkError::Stopping("node stopping"))?,
                        Some(ids) = want_rx.recv() => {
                            send_wanted(&shared, peer, peer_division, dir, my_epoch, state.cursor(), head, ids, &mut send).await?;
                        }
                    }
                    continue;
                }
                sync::SenderPoll::WindowFull | sync::SenderPoll::InTransit => {
                    tokio::select! {
                        _ = acked.notified() => {}
                        Some(ids) = want_rx.recv() => {
                            send_wanted(&shared, peer, peer_division, dir, my_epoch, state.cursor(), head, ids, &mut send).await?;
                        }
                    }
                    continue;
                }
                sync::SenderPoll::SendAfter(after) => after,
            };
            let sh = shared.clone();
            let batch = tokio::task::spawn_blocking(move || replication::build_batch(&sh, peer_division, dir, after)).await??;
            let n = batch.records.len();
            let record_bytes: usize = batch.records.iter().map(Vec::len).sum();
            let upto = batch.upto;
            let frame = Frame::Batch { epoch: my_epoch, upto, head, records: batch.records, blobs: batch.blobs };
            let bytes = write_frame(&mut send, &frame).await?;
            with_feed(&feed, |f| f.sent(upto));
            shared.sync.update(&peer, |s| {
                s.records_sent += n as u64;
                s.bytes_sent += bytes as u64;
                s.record_bytes_sent += record_bytes as u64;
                s.last_contact_ms = Some(crate::context::now_ms());
            });
        }
    };
    tokio::select! {
        r = acks => r,
        r = pump => r,
    }
}

/// Answers a `Want`: the requested records this node holds and the peer's
/// scope allows, in one batch that leaves the cursor where it is.
#[allow(clippy::too_many_arguments)]
async fn send_wanted(
    shared: &Context,
    peer: NodeId,
    peer_division: DivisionCode,
    dir: Direction,
    epoch: [u8; 16],
    cursor: u64,
    head: u64,
    ids: Vec<[u8; 32]>,
    send: &mut quinn::SendStream,
) -> Result<()> {
    let sh = shared.clone();
    let records = tokio::task::spawn_blocking(move || replication::wanted(&sh, peer_division, dir, &ids)).await??;
    if records.is_empty() {
        return Ok(());
    }
    let n = records.len();
    let bytes = write_frame(send, &Frame::Batch { epoch, upto: cursor, head, records, blobs: vec![] }).await?;
    shared.sync.update(&peer, |s| {
        s.records_sent += n as u64;
        s.bytes_sent += bytes as u64;
    });
    Ok(())
}
