//! Integrity checks over stored records: every record's bytes hash to its
//! id and carry a valid signature, and this node's own author chain has no
//! gap and no broken link.

use serde::Serialize;
use zongzhi_protocol::{NodeId, Record, RecordId};

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub record: Option<RecordId>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub records_checked: u64,
    pub own_chain_length: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks one stored record: hash, decoding and signature.
pub fn check_record(id: &RecordId, bytes: &[u8]) -> Result<Record, String> {
    if RecordId::of(bytes) != *id {
        return Err("stored bytes do not hash to the record id (altered on disk)".into());
    }
    Record::decode(bytes).map_err(|e| e.to_string())
}

/// Checks every record in the feed and the author chain of `own`.
pub fn check(store: &Store, own: &NodeId) -> Result<Report, StoreError> {
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut from = 1;
    crate::progress::phase("records", store.feed_len()?);
    loop {
        let chunk = store.feed_records(from, 4096)?;
        let Some(&(last, _, _)) = chunk.last() else { break };
        for (seq, id, bytes) in chunk {
            checked += 1;
            if store.record_seq(&id)? != Some(seq) {
                problems.push(Problem { record: Some(id), detail: format!("feed entry {seq} is not indexed under its record id") });
            }
            if let Err(detail) = check_record(&id, &bytes) {
                problems.push(Problem { record: Some(id), detail });
            }
        }
        from = last + 1;
        crate::progress::set(last);
    }
    let chain = store.author_chain(own)?;
    let mut prev: Option<RecordId> = None;
    for (i, (seq, id)) in chain.iter().enumerate() {
        let expected = i as u64 + 1;
        if *seq != expected {
            problems.push(Problem { record: Some(*id), detail: format!("own chain gap: expected seq {expected}, found {seq}") });
            break;
        }
        if let Some(bytes) = store.record_bytes(id)?
            && let Ok(r) = Record::decode_unverified(&bytes)
            && (r.header.seq != *seq || r.header.prev != prev || r.author != *own)
        {
            problems.push(Problem { record: Some(*id), detail: format!("own chain link broken at seq {seq}") });
        }
        prev = Some(*id);
    }
    Ok(Report { records_checked: checked, own_chain_length: chain.len() as u64, problems })
}
