//! Replication decisions without I/O: what a node sends a peer (batches of
//! its feed after the peer's cursor, the urgent-first batch, answers to
//! `Want`), each record asked of [`protocol::sync::scope`]; and what a
//! received batch becomes (records decoded and batch-verified, then one
//! `Op::Ingest` with the cursor; the parents to ask for). `net` moves these
//! over QUIC; the simulator (`zongzhi-sim`) moves them between in-process
//! nodes.
//!
//! [`protocol::sync::scope`]: zongzhi_protocol::sync::scope

use zongzhi_protocol::record::{verify_batch, RecordError};
use zongzhi_protocol::sync::{self, scope, Direction};
use zongzhi_protocol::{Body, DivisionCode, Record, RecordId};

use crate::ledger::{IngestReport};
use crate::context::Context;
use crate::store::StoreError;

/// Why a batch could not be built or a received one was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// Our own store failed (the link retries later).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode (the integrity check names it).
    #[error("stored record does not decode: {0}")]
    Stored(RecordError),
    /// The peer sent a record that does not decode.
    #[error("received record does not decode: {0}")]
    Malformed(RecordError),
    /// The peer sent a record whose signature is wrong: the batch is refused.
    #[error("record {0} has a bad signature")]
    BadSignature(String),
}

fn stored(e: RecordError) -> ReplicationError {
    ReplicationError::Stored(e)
}

/// What the sender puts in one batch.
pub struct Outgoing {
    pub records: Vec<Vec<u8>>,
    pub blobs: Vec<([u8; 32], Vec<u8>)>,
    /// The feed position the batch covers up to (the receiver's next cursor).
    pub upto: u64,
}

/// Builds the next batch of our feed after `cursor` for a peer (blocking: reads the store).
pub fn build_batch(shared: &Context, peer_division: DivisionCode, dir: Direction, cursor: u64) -> Result<Outgoing, ReplicationError> {
    let store = &shared.store;
    let mut out = Outgoing { records: Vec::new(), blobs: Vec::new(), upto: cursor };
    let mut size = 0usize;
    let mut included: std::collections::HashSet<RecordId> = std::collections::HashSet::new();
    let mut blob_seen: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
    let trust = shared.trust().clone();
    let mut add_blob = |hash: &zongzhi_protocol::BlobHash, out: &mut Outgoing, size: &mut usize| -> Result<(), ReplicationError> {
        if blob_seen.insert(hash.0)
            && let Some(b) = store.blob(&hash.0)?
        {
            *size += b.len();
            out.blobs.push((hash.0, b));
        }
        Ok(())
    };
    // One forward scan of the feed (it holds the records' bytes).
    for (seq, id, bytes) in store.feed_records(cursor + 1, sync::BATCH_RECORDS)? {
        if size >= sync::BATCH_BYTES || out.records.len() >= sync::BATCH_RECORDS {
            break;
        }
        out.upto = seq;
        let record = Record::decode_unverified(&bytes).map_err(stored)?;
        // The case's summary, read at most once per record.
        let mut summary: Option<Option<crate::summary::CaseSummary>> = None;
        let send = match &record.body {
            Body::CaseEvent(ev) if dir == Direction::Down => {
                if scope::came_from(peer_division, &facts(&trust, &record, &[])) {
                    false
                } else {
                    let case = ev.case_id(id);
                    let s = store.case_summary(&case)?;
                    let units = s.as_ref().map(|s| s.units.as_slice()).unwrap_or_default();
                    let send = scope::sends(dir, shared.unit, peer_division, &facts(&trust, &record, units));
                    if send && sync::enters_subtree(&ev.action, peer_division) {
                        // The case enters the child's subtree: its history
                        // up to here first, in feed order (what follows comes
                        // in its place, so every step arrives after its
                        // parents), except what the child's subtree wrote.
                        for (hseq, hid) in store.case_events_with_seq(&case)? {
                            if hseq < seq && hid != id
                                && !included.contains(&hid)
                                && let Some((_, hb)) = store.record_at(hseq)?
                            {
                                let h = Record::decode_unverified(&hb).map_err(stored)?;
                                if scope::sends(dir, shared.unit, peer_division, &facts(&trust, &h, units)) {
                                    included.insert(hid);
                                    size += hb.len();
                                    out.records.push(hb);
                                }
                            }
                        }
                    }
                    summary = Some(s);
                    send
                }
            }
            _ => scope::sends(dir, shared.unit, peer_division, &facts(&trust, &record, &[])),
        };
        if !send || !included.insert(id) {
            continue;
        }
        // Personal data and attachments travel with the case where it is
        // handled. Going up, a filing's case has been handled only by its
        // filer, inside this subtree: nothing to look up.
        if let Body::CaseEvent(ev) = &record.body
            && !(dir == Direction::Up && matches!(ev.action, zongzhi_protocol::Action::File(_)))
        {
            let case = ev.case_id(id);
            let s = match summary {
                Some(s) => s,
                None => store.case_summary(&case)?,
            };
            if let Some(s) = s {
                let wanted = match dir {
                    Direction::Down => peer_division.contains(s.owner),
                    Direction::Up => s.units.iter().any(|u| !shared.unit.contains(*u)),
                };
                if wanted {
                    for h in &s.blobs {
                        add_blob(h, &mut out, &mut size)?;
                    }
                }
            }
        }
        size += bytes.len();
        out.records.push(bytes);
    }
    Ok(out)
}

/// The facts [`scope::sends`] decides a record by; `units` are the units of
/// its case as this node holds it (case events going down).
fn facts<'a>(trust: &zongzhi_protocol::trust::Trust, record: &Record, units: &'a [DivisionCode]) -> scope::Facts<'a> {
    scope::Facts {
        author: trust.member(&record.author).map(|m| m.cert.division),
        author_revoked: trust.revocation(&record.author).is_some(),
        kind: match &record.body {
            Body::NodeCert(_) | Body::Revocation(_) | Body::Policy(_) => scope::Kind::Trust,
            Body::Report(_) => scope::Kind::Report,
            Body::CaseEvent(_) => scope::Kind::CaseEvent { units },
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
pub fn wanted(shared: &Context, peer_division: DivisionCode, dir: Direction, ids: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, ReplicationError> {
    let trust = shared.trust().clone();
    let mut out = Vec::new();
    for id in ids {
        let Some(bytes) = shared.store.record_bytes(&RecordId(*id))? else { continue };
        let record = Record::decode_unverified(&bytes).map_err(stored)?;
        let summary = match &record.body {
            Body::CaseEvent(ev) if dir == Direction::Down => shared.store.case_summary(&ev.case_id(record.id))?,
            _ => None,
        };
        let units = summary.as_ref().map(|s| s.units.as_slice()).unwrap_or_default();
        if scope::sends(dir, shared.unit, peer_division, &facts(&trust, &record, units)) {
            out.push(bytes);
        }
    }
    Ok(out)
}

/// Decodes a received batch and checks every signature (batch
/// verification); one forged record refuses the whole batch.
pub fn decode_verified(records: Vec<Vec<u8>>) -> Result<Vec<Record>, ReplicationError> {
    let recs: Vec<Record> = records.into_iter().map(Record::decode_unverified_owned).collect::<Result<_, _>>().map_err(ReplicationError::Malformed)?;
    let refs: Vec<&Record> = recs.iter().collect();
    for (r, v) in recs.iter().zip(verify_batch(&refs)) {
        v.map_err(|_| ReplicationError::BadSignature(r.id.fmt_short()))?;
    }
    Ok(recs)
}

/// The parents an ingest lacked, to ask the sender for (`Want`), at most
/// [`sync::MAX_WANT`].
pub fn wants(report: &IngestReport) -> Vec<[u8; 32]> {
    let mut want: Vec<[u8; 32]> = report.missing.iter().map(|m| m.0).collect();
    want.sort_unstable();
    want.dedup();
    want.truncate(sync::MAX_WANT);
    want
}
