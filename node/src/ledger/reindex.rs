//! Rebuilding derived state from the records: folds, crossing merges and
//! the whole-store reindex.

use std::collections::{HashMap, HashSet};

use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::workflow::{EventRef, FoldContext, FoldError, fold};
use zongzhi_protocol::{Action, Body, CaseEvent, CaseState, Hlc, NodeId, Record, RecordId};

use crate::store::Store;
use crate::summary::CaseSummary;

use super::*;

/// Loads a case's records as stored (decoded, not re-verified).
pub fn load_case_records(store: &Store, case: &RecordId) -> Result<Vec<Record>> {
    let held = store.case_records(case)?;
    let mut out = Vec::with_capacity(held.len());
    for (id, bytes) in held {
        let mut record = Record::decode_unverified_owned(bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
        // Known by the id it is stored and referenced under (see `integrity`).
        record.id = id;
        out.push(record);
    }
    Ok(out)
}

/// Folds a case's records with every policy version held, the trust store,
/// and the stored merges of the cases its own merges name.
pub fn fold_records(store: &Store, policy: &PolicySet, trust: &Trust, records: &[Record]) -> Result<CaseState> {
    let mut merges = HashMap::new();
    for r in records {
        if let Body::CaseEvent(CaseEvent { action: Action::Merge { into }, .. }) = &r.body
            && let Some((hlc, id, _)) = store.case_summary(into)?.and_then(|s| s.merged)
        {
            merges.insert(*into, (hlc, id));
        }
    }
    let refs: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).collect();
    fold(policy, &Ctx { trust, merges }, &refs).map_err(|e: FoldError| LedgerError::Integrity(e.to_string()))
}

/// What a node's folds learn from outside a case: its trust store and the
/// accepted merges of the cases a case merges into.
pub(super) struct Ctx<'a> {
    trust: &'a Trust,
    merges: HashMap<RecordId, (Hlc, RecordId)>,
}

impl FoldContext for Ctx<'_> {
    fn cutoff(&self, author: &NodeId) -> Option<u64> {
        self.trust.cutoff(author)
    }

    fn merge_of(&self, case: &RecordId) -> Option<(Hlc, RecordId)> {
        self.merges.get(case).copied()
    }
}

/// Of two crossing merges (A into B, B into A) the earlier stands: where a
/// merged case's target took an accepted merge too, the case of the later
/// merge folds again (and its merge is now rejected). Runs after each group that merged a
/// case and at the end of `reindex`. Returns the cases changed.
pub fn fix_crossing_merges(store: &Store, policy: &PolicySet, trust: &Trust, cases: &[RecordId]) -> Result<usize> {
    let mut batch = store.batch();
    let mut changed = 0;
    let mut done = HashSet::new();
    for a in cases {
        let Some(sa) = store.case_summary(a)? else { continue };
        let Some((m_hlc, m_id, into)) = sa.merged else { continue };
        let Some(sb) = store.case_summary(&into)? else { continue };
        let Some((b_hlc, b_id, _)) = sb.merged else { continue };
        // The later of the two merges folds again, and is now rejected.
        let before = if (b_hlc, b_id) > (m_hlc, m_id) { sb } else { sa };
        // Both cases of a crossing pair may be named: change the later once
        // (the batch is not read back before it is written).
        if !done.insert(before.id) {
            continue;
        }
        let after = CaseSummary::of(&fold_records(store, policy, trust, &load_case_records(store, &before.id)?)?);
        if after != before {
            tracing::warn!(case = %after.number, "a merge crossed an earlier one and is rejected");
            batch.put_summary(Some(&before), &after);
            changed += 1;
        }
    }
    if changed > 0 {
        store.commit(batch)?;
    }
    Ok(changed)
}

/// Files a case in the search indexes: its words when it is new, its
/// complainant's phone and ID number once the contact is held (in this
/// batch, or already stored for a new case).
pub(super) fn index_search(batch: &mut crate::store::Batch<'_>, state: &CaseState, summary: &CaseSummary, new: bool) {
    if new {
        batch.index_words(&summary.id, summary.filed_ms, &format!("{} {}", state.filing.title, state.filing.content));
    }
    batch.index_contact(summary, new);
}

/// Rebuilds every derived column family from the records, in feed order.
pub fn reindex(store: &Store, policy: &PolicySet, trust: &Trust) -> Result<usize> {
    reindex_reading(store, policy, trust, zongzhi_protocol::format::LATEST)
}

/// [`reindex`] for a node that reads record formats up to `newest` (the
/// simulator's older release profiles): records of a newer format, and
/// the case events that follow them, are marked parked again.
pub fn reindex_reading(store: &Store, policy: &PolicySet, trust: &Trust, newest: u8) -> Result<usize> {
    store.clear_derived()?;
    let mut parked: HashMap<RecordId, u8> = HashMap::new();
    let mut cases: HashMap<RecordId, Vec<(u64, RecordId)>> = HashMap::new();
    let mut order: Vec<RecordId> = Vec::new();
    let mut merged = Vec::new();
    let mut from = 1;
    let mut batch = store.batch();
    crate::progress::phase("records", store.feed_len()?);
    loop {
        let chunk = store.feed_records(from, 4096)?;
        let Some(&(last, _, _)) = chunk.last() else { break };
        for (seq, id, bytes) in chunk {
            let mut record = Record::decode_unverified_owned(bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
            record.id = id;
            let follows = record.case_prefix().map(|pre| pre.parents.iter().chain(pre.case.iter()).filter_map(|d| parked.get(d).copied()).max()).unwrap_or(None);
            if record.is_unreadable() || record.format > newest || follows.is_some() {
                let entry = super::ingest::parked_entry(&record, seq, follows, record.header.hlc.wall_ms);
                parked.insert(id, entry.needs);
                batch.put_parked(&id, &entry);
                continue;
            }
            match &record.body {
                Body::Unreadable(_) => {}
                Body::CaseEvent(ev) => {
                    let case = ev.case_id(id);
                    let entry = cases.entry(case).or_default();
                    if entry.is_empty() {
                        order.push(case);
                    }
                    entry.push((seq, id));
                }
                Body::NodeCert(_) | Body::Revocation(_) | Body::Policy(_) => batch.index_trust(seq, &id),
                Body::Report(r) => batch.index_report(r.month, r.unit.as_u64(), record.header.seq, &id),
            }
        }
        from = last + 1;
        crate::progress::set(last);
    }
    store.commit(batch)?;
    crate::failpoint::hit("reindex:cleared");
    crate::progress::phase("cases", order.len() as u64);
    for chunk in order.chunks(1000) {
        let mut batch = store.batch();
        for case in chunk {
            let events = &cases[case];
            for (seq, id) in events {
                batch.index_case_event(case, *seq, id);
            }
            let mut records = Vec::with_capacity(events.len());
            for (seq, id) in events {
                let (_, bytes) = store.record_at(*seq)?.ok_or_else(|| LedgerError::Integrity(format!("missing record {id}")))?;
                let mut r = Record::decode_unverified_owned(bytes).map_err(|e| LedgerError::Integrity(e.to_string()))?;
                r.id = *id;
                records.push(r);
            }
            let state = fold_records(store, policy, trust, &records)?;
            if state.merge_event.is_some() {
                merged.push(state.id);
            }
            let summary = CaseSummary::of(&state);
            batch.put_summary(None, &summary);
            index_search(&mut batch, &state, &summary, true);
        }
        store.commit(batch)?;
        crate::failpoint::hit("reindex:cases");
        crate::progress::inc(chunk.len() as u64);
    }
    // Folded in feed order, a case saw the merges of cases folded before it
    // only: settle crossing merges (each pass can only reject later ones).
    while fix_crossing_merges(store, policy, trust, &merged)? > 0 {}
    Ok(order.len())
}
