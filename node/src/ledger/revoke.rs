//! Re-folds after the trust store changed: records voided by a revocation,
//! waiting records a new certificate makes checkable, crossing merges.

use zongzhi_protocol::workflow::FoldContext;
use zongzhi_protocol::{Body, Record, RecordId};

use crate::summary::CaseSummary;

use super::*;

impl Writer {
    /// After a write that changed the trust store: re-fold what a
    /// revocation voided, and the cases waiting for a policy version.
    pub(super) fn after_trust_change(&mut self, revoked: bool, policy_added: bool) {
        if revoked && let Err(e) = self.void_revoked() {
            // The records are stored; the pass runs again at start-up.
            tracing::error!("re-folding cases after a revocation failed: {e}");
        }
        if policy_added && let Err(e) = self.refold_waiting() {
            // The policy is stored; the pass runs again at start-up.
            tracing::error!("re-folding cases after a new policy version failed: {e}");
        }
        if policy_added && let Err(e) = self.shared.store.set_repeat_window(self.shared.policy().repeat_window_days) {
            tracing::error!("settling repeat marks after a new policy version failed: {e}");
        }
        if policy_added {
            self.after_finalization();
        }
    }

    /// Once the city's gate reaches the newest format this release writes,
    /// going back to the previous release is over (it cannot read what is
    /// signed now): the checkpoints kept for a rollback go, and binaries of
    /// older schemas may no longer open the directory. Idempotent; also
    /// run at start-up.
    pub fn after_finalization(&self) {
        if self.shared.policy().gate.write_format < self.shared.caps.write_max {
            return;
        }
        match crate::store::migrate::finalized(&self.shared.store) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "the city finalized this release: the checkpoint kept for a rollback was removed");
                }
            }
            Err(e) => tracing::error!("after finalization: {e}"),
        }
    }

    /// Settles crossing merges after a group that merged `cases`.
    pub(super) fn after_merges(&mut self, cases: &[RecordId]) {
        if cases.is_empty() {
            return;
        }
        let (store, policies, trust) = (self.shared.store.clone(), self.shared.policies(), self.shared.trust());
        if let Err(e) = fix_crossing_merges(&store, &policies, &trust, cases) {
            tracing::error!("settling crossing merges failed: {e}");
        }
    }

    /// Re-folds every case the waiting index names (a clock waiting for a
    /// year's calendar, or an event naming a policy version not held then)
    /// with every version now held, in one synced batch: due times,
    /// queue order, statistics and the index follow, exactly as a
    /// `reindex` would compute them. Idempotent: runs after each batch that
    /// added a policy version and at start-up (a crash between the two
    /// writes loses nothing). Returns how many cases changed.
    pub fn refold_waiting(&mut self) -> Result<usize> {
        self.settle()?;
        let trust = self.shared.trust();
        let policies = self.shared.policies();
        let store = self.shared.store.clone();
        let mut batch = store.batch();
        let mut changed = 0usize;
        for case in store.waiting_cases()? {
            let Some(before) = store.case_summary(&case)? else { continue };
            let records = load_case_records(&store, &case)?;
            let after = CaseSummary::of(&fold_records(&store, &policies, &trust, &records)?);
            if after != before {
                batch.put_summary(Some(&before), &after);
                changed += 1;
            }
        }
        if changed > 0 {
            store.commit(batch)?;
            tracing::info!(cases = changed, version = policies.current().version, "clocks computed with the policy versions now held");
        }
        Ok(changed)
    }

    /// Re-folds every stored case that holds a record signed by a revoked
    /// key after its cut-off (or by a key whose certificate turned out
    /// void), so a revocation learned late voids the same events as one
    /// known from the start. Idempotent: runs after each batch that added a
    /// revocation and at start-up (a crash between the two writes loses
    /// nothing). Raises one alarm per pass that changed cases.
    pub fn void_revoked(&mut self) -> Result<usize> {
        self.settle()?;
        let trust = self.shared.trust();
        let policies = self.shared.policies();
        let store = self.shared.store.clone();
        let mut affected: Vec<RecordId> = Vec::new();
        let mut authors = Vec::new();
        for key in trust.members().map(|m| m.cert.key).chain(trust.dropped().copied()).collect::<Vec<_>>() {
            let Some(cutoff) = trust.cutoff(&key) else { continue };
            let mut any = false;
            for (seq, id) in store.author_chain(&key)? {
                if seq <= cutoff {
                    continue;
                }
                let Some(bytes) = store.record_bytes(&id)? else { continue };
                let record = Record::decode_unverified(&bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
                if let Body::CaseEvent(ev) = &record.body {
                    let case = ev.case_id(id);
                    if !affected.contains(&case) {
                        affected.push(case);
                    }
                    any = true;
                }
            }
            if any {
                authors.push((key, cutoff));
            }
        }
        let mut batch = store.batch();
        let mut changed = Vec::new();
        for case in &affected {
            let Some(before) = store.case_summary(case)? else { continue };
            let records = load_case_records(&store, case)?;
            let after = CaseSummary::of(&fold_records(&store, &policies, &trust, &records)?);
            if after != before {
                batch.put_summary(Some(&before), &after);
                changed.push(after.number.clone());
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let mut heads = self.heads.clone();
        heads.alarms += 1;
        let alarm = Alarm {
            kind: "revoked_records".into(),
            author: authors.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>().join(","),
            seq: authors.first().map(|(_, c)| *c).unwrap_or(0),
            detail: format!("records signed after a revocation cut-off were voided; cases re-evaluated: {}", changed.join(", ")),
            proof: Vec::new(),
            detected_ms: self.shared.clock.now_ms(),
            peer: None,
        };
        tracing::warn!(cases = changed.len(), "{}", alarm.detail);
        batch.put_alarm(heads.alarms, &alarm);
        store.commit(batch)?;
        self.committed = heads.clone();
        self.heads = heads;
        Ok(changed.len())
    }
}
