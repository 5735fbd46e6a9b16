//! What a node sends a peer: batches of its feed after the peer's cursor,
//! the urgent-first batch and answers to `Want`, each record asked of
//! [`scope`]. Blocking: these read the store.

use std::collections::HashSet;
use zongzhi_protocol::sync::{self, Direction, scope};

use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::{Body, DivisionCode, NodeId, Record, RecordId};

use crate::context::Context;

use super::link::{Build, Built};

use super::{ReplicationError, stored};

/// What the sender puts in one batch.
pub struct Outgoing {
    pub records: Vec<Vec<u8>>,
    pub blobs: Vec<([u8; 32], Vec<u8>)>,
    /// The feed position the batch covers up to (the receiver's next cursor).
    pub upto: u64,
}

/// What a link asked its store for ([`super::link::Action::Build`]), built
/// for the peer at `peer_division` (blocking: reads the store). Every
/// driver calls this: the QUIC one and the simulator's.
pub fn build(ctx: &Context, peer_division: DivisionCode, dir: Direction, build: Build) -> Result<Built, ReplicationError> {
    Ok(match build {
        Build::Urgent { cursor } => Built::Urgent(build_urgent(ctx, peer_division, dir, cursor)?),
        Build::Feed { after, own } => Built::Feed(build_batch(ctx, peer_division, dir, after, own)?),
        Build::Wanted { ids, own } => Built::Wanted(wanted(ctx, peer_division, dir, &ids, own)?),
        Build::Status => Built::Status(super::fleet::status_reports(ctx, dir)?),
    })
}

/// Builds the next batch of our feed after `cursor` for a peer (blocking:
/// reads the store); with `own`, the records that key signed go too,
/// whatever the scope (a peer restored from a backup getting its own
/// chain back, see `crate::recovery`).
pub fn build_batch(shared: &Context, peer_division: DivisionCode, dir: Direction, cursor: u64, own: Option<NodeId>) -> Result<Outgoing, ReplicationError> {
    let mut batch = Batcher {
        shared,
        own,
        trust: shared.trust(),
        peer_division,
        dir,
        out: Outgoing { records: Vec::new(), blobs: Vec::new(), upto: cursor },
        size: 0,
        included: HashSet::new(),
        blobs_seen: HashSet::new(),
    };
    // One forward scan of the feed (it holds the records' bytes).
    for (seq, _, bytes) in shared.store.feed_records(cursor + 1, sync::BATCH_RECORDS)? {
        if batch.size >= sync::BATCH_BYTES || batch.out.records.len() >= sync::BATCH_RECORDS {
            break;
        }
        batch.out.upto = seq;
        let record = Record::decode_unverified(&bytes).map_err(stored)?;
        batch.offer(seq, &record, bytes)?;
    }
    Ok(batch.out)
}

/// How many records a peer at `peer_division` would be sent from our feed
/// after position `after` (what waits for it), counting batch by batch as
/// they would be built; stops at `cap` (returns `true` then).
pub fn waiting_for(shared: &Context, peer_division: DivisionCode, dir: Direction, after: u64, cap: u64) -> Result<(u64, bool), ReplicationError> {
    let head = shared.store.feed_len()?;
    let (mut cursor, mut count) = (after, 0u64);
    while cursor < head {
        let out = build_batch(shared, peer_division, dir, cursor, None)?;
        count += out.records.len() as u64;
        if count >= cap {
            return Ok((count, true));
        }
        if out.upto <= cursor {
            break;
        }
        cursor = out.upto;
    }
    Ok((count, false))
}

/// One batch being built: what is in it so far.
struct Batcher<'a> {
    shared: &'a Context,
    own: Option<NodeId>,
    trust: std::sync::Arc<Trust>,
    peer_division: DivisionCode,
    dir: Direction,
    out: Outgoing,
    size: usize,
    included: HashSet<RecordId>,
    blobs_seen: HashSet<[u8; 32]>,
}

impl Batcher<'_> {
    /// The record at feed position `seq`: in the batch if the peer's scope
    /// allows it (with its case's history first when the case enters the
    /// peer's subtree, and the case's blobs where it is handled).
    fn offer(&mut self, seq: u64, record: &Record, bytes: Vec<u8>) -> Result<(), ReplicationError> {
        let (shared, dir, peer) = (self.shared, self.dir, self.peer_division);
        if gives_back(self.own, dir, peer, record, &facts(&self.trust, record, &[])) {
            return self.give_back(record, bytes);
        }
        let Some(prefix) = record.case_prefix() else {
            if scope::sends(dir, shared.unit, peer, &facts(&self.trust, record, &[])) {
                self.push(record.id, bytes);
            }
            return Ok(());
        };
        if dir == Direction::Down && scope::came_from(peer, &facts(&self.trust, record, &[])) {
            return Ok(());
        }
        let case = prefix.case_id(record.id);
        // Down, the case's units decide (its summary is read first); up,
        // the author alone does.
        let down = dir == Direction::Down;
        let summary = if down { shared.store.case_summary(&case)? } else { None };
        let units = summary.as_ref().map(|s| s.units.as_slice()).unwrap_or_default();
        if !scope::sends(dir, shared.unit, peer, &facts(&self.trust, record, units)) {
            return Ok(());
        }
        // A record held aside (unreadable here) never brings its case in.
        if let Body::CaseEvent(ev) = &record.body
            && dir == Direction::Down
            && sync::enters_subtree(&ev.action, peer)
        {
            self.history_before(&case, seq, record.id, units)?;
        }
        if self.included.contains(&record.id) {
            return Ok(());
        }
        // Personal data and attachments travel with the case where it is
        // handled. Going up, a filing's case has been handled only by its
        // filer, inside this subtree: nothing to look up.
        let summary = match summary {
            Some(s) => Some(s),
            None if !down && prefix.case.is_some() => shared.store.case_summary(&case)?,
            None => None,
        };
        if let Some(s) = &summary {
            let wanted = match dir {
                Direction::Down => peer.contains(s.owner),
                Direction::Up => s.units.iter().any(|u| !shared.unit.contains(*u)),
            };
            if wanted {
                for h in &s.blobs {
                    self.add_blob(h)?;
                }
            }
        }
        self.push(record.id, bytes);
        Ok(())
    }

    /// The case enters the child's subtree at feed position `seq`: its
    /// history up to here first, in feed order (what follows comes in its
    /// place, so every step arrives after its parents), except what the
    /// child's subtree wrote.
    fn history_before(&mut self, case: &RecordId, seq: u64, id: RecordId, units: &[DivisionCode]) -> Result<(), ReplicationError> {
        let store = &self.shared.store;
        for (hseq, hid) in store.case_events_with_seq(case)? {
            if hseq < seq
                && hid != id
                && !self.included.contains(&hid)
                && let Some((_, hb)) = store.record_at(hseq)?
            {
                let h = Record::decode_unverified(&hb).map_err(stored)?;
                if scope::sends(self.dir, self.shared.unit, self.peer_division, &facts(&self.trust, &h, units)) {
                    self.push(hid, hb);
                }
            }
        }
        Ok(())
    }

    /// A record the peer signed, back to it with its case's attachments
    /// this node holds.
    fn give_back(&mut self, record: &Record, bytes: Vec<u8>) -> Result<(), ReplicationError> {
        if let Some(pre) = record.case_prefix()
            && let Some(s) = self.shared.store.case_summary(&pre.case_id(record.id))?
        {
            for h in &s.blobs {
                self.add_blob(h)?;
            }
        }
        self.push(record.id, bytes);
        Ok(())
    }

    fn push(&mut self, id: RecordId, bytes: Vec<u8>) {
        if self.included.insert(id) {
            self.size += bytes.len();
            self.out.records.push(bytes);
        }
    }

    fn add_blob(&mut self, hash: &zongzhi_protocol::BlobHash) -> Result<(), ReplicationError> {
        if self.blobs_seen.insert(hash.0)
            && let Some(b) = self.shared.store.blob(&hash.0)?
        {
            self.size += b.len();
            self.out.blobs.push((hash.0, b));
        }
        Ok(())
    }
}

/// A restored peer (`own`: its key) gets back what it signed and, going
/// down, what its subtree authored: what it lost with its disk, which
/// scope otherwise keeps from going back where it came from.
fn gives_back(own: Option<NodeId>, dir: Direction, peer: DivisionCode, record: &Record, f: &scope::Facts<'_>) -> bool {
    own.is_some_and(|k| record.author == k || (dir == Direction::Down && scope::came_from(peer, f)))
}

/// The facts [`scope::sends`] decides a record by; `units` are the units of
/// its case as this node holds it (case events going down).
fn facts<'a>(trust: &Trust, record: &Record, units: &'a [DivisionCode]) -> scope::Facts<'a> {
    scope::Facts {
        author: trust.member(&record.author).map(|m| m.cert.division),
        author_revoked: trust.revocation(&record.author).is_some(),
        kind: match &record.body {
            Body::NodeCert(_) | Body::Revocation(_) | Body::Policy(_) => scope::Kind::Trust,
            Body::Report(_) => scope::Kind::Report,
            Body::CaseEvent(_) => scope::Kind::CaseEvent { units },
            Body::Unreadable(u) if u.case.is_some() => scope::Kind::CaseEvent { units },
            Body::Unreadable(_) => scope::Kind::Unknown,
        },
    }
}

/// Urgent cases first: before a long catch-up, the records after `cursor`
/// of open urgent cases in the peer's scope go in one batch that leaves the
/// cursor where it is (the receiver drops them when the ordinary pass
/// brings them again).
pub fn build_urgent(shared: &Context, peer_division: DivisionCode, dir: Direction, cursor: u64) -> Result<Option<Outgoing>, ReplicationError> {
    let store = &shared.store;
    let trust = shared.trust().clone();
    let mut cases = Vec::new();
    for id in store.urgent_open_cases()? {
        if let Some(s) = store.case_summary(&id)? {
            cases.push(s);
        }
    }
    // (feed position, the case it belongs to)
    let mut picked: Vec<(u64, usize)> = Vec::new();
    let mut blobs = Vec::new();
    for (i, s) in cases.iter().enumerate() {
        if dir == Direction::Down && !sync::case_in_subtree(&s.units, peer_division) {
            continue;
        }
        for (seq, _) in store.case_events_with_seq(&s.id)? {
            if seq > cursor || dir == Direction::Down {
                picked.push((seq, i));
            }
        }
        let wanted = match dir {
            Direction::Down => peer_division.contains(s.owner),
            Direction::Up => s.units.iter().any(|u| !shared.unit.contains(*u)),
        };
        if wanted {
            for h in &s.blobs {
                if let Some(b) = store.blob(&h.0)? {
                    blobs.push((h.0, b));
                }
            }
        }
    }
    picked.sort();
    picked.dedup();
    let mut records = Vec::new();
    for (seq, units) in picked.into_iter().take(sync::BATCH_RECORDS) {
        let Some((_, bytes)) = store.record_at(seq)? else { continue };
        let record = Record::decode_unverified(&bytes).map_err(stored)?;
        if scope::sends(dir, shared.unit, peer_division, &facts(&trust, &record, &cases[units].units)) {
            records.push(bytes);
        }
    }
    if records.is_empty() {
        return Ok(None);
    }
    Ok(Some(Outgoing { records, blobs, upto: cursor }))
}

/// The records among `ids` this node holds that the peer's scope allows
/// (the answer to a `Want`; it leaves the cursor where it is).
pub fn wanted(shared: &Context, peer_division: DivisionCode, dir: Direction, ids: &[[u8; 32]], own: Option<NodeId>) -> Result<Vec<Vec<u8>>, ReplicationError> {
    let trust = shared.trust().clone();
    let mut out = Vec::new();
    for id in ids {
        let Some(bytes) = shared.store.record_bytes(&RecordId(*id))? else { continue };
        let record = Record::decode_unverified(&bytes).map_err(stored)?;
        let summary = match record.case_prefix() {
            Some(pre) if dir == Direction::Down => shared.store.case_summary(&pre.case_id(record.id))?,
            _ => None,
        };
        let units = summary.as_ref().map(|s| s.units.as_slice()).unwrap_or_default();
        let f = facts(&trust, &record, units);
        if scope::sends(dir, shared.unit, peer_division, &f) || gives_back(own, dir, peer_division, &record, &f) {
            out.push(bytes);
        }
    }
    Ok(out)
}
