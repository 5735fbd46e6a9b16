//! Received records: chain and equivocation checks, the author's
//! certificate, parents, and the fold in causal order.

use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::{Trust, TrustError};
use zongzhi_protocol::workflow::EventRef;
use zongzhi_protocol::{BlobHash, Body, CaseEvent, CaseState, DivisionCode, NodeId, Policy, Record, RecordId};

use super::*;

impl Writer {
    /// Received records and blobs, and the cursor they advance, in one batch.
    pub(super) fn ingest(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, records: Vec<Record>, blobs: Vec<(BlobHash, Vec<u8>)>, cursor: Option<Cursor>) -> Result<Outcome> {
        let mut report = IngestReport::default();
        for (hash, bytes) in blobs {
            if BlobHash::of(&bytes) == hash && bytes.len() <= 16 * 1024 * 1024 {
                p.put_blob(&hash, &bytes)?;
            }
        }
        let peer = cursor.map(|c| c.peer);
        // A child's own records come in its chain order in a batch that
        // continues its feed; anything else may come in any order (the
        // urgent cases first, answers to `Want`, and records of deeper
        // authors, which the child's feed holds in the order they reached
        // it), so only those are checked for gaps.
        let chain_checked = cursor.filter(|c| c.direction == crate::ledger::DIRECTION_UP && c.in_order).map(|c| c.peer);
        // An empty ingest asks for the waiting records to be tried
        // again (at start-up: a store written by a build that did
        // not retry within a batch may hold some whose parents it has).
        let retry = records.is_empty();
        for record in records {
            if chain_checked == Some(record.author) {
                self.check_chain(now, p, &record, peer)?;
            }
            self.ingest_one(policy, now, p, record, peer, &mut report)?;
        }
        if report.applied > 0 || retry {
            self.retry_pending(policy, now, p, peer, &mut report)?;
        }
        if let Some(c) = cursor {
            p.batch.put_cursor(&c.peer, c.direction, &c.epoch, c.upto);
        }
        if self.shared.recovery.restoring() {
            self.recover_own(now, p)?;
        }
        Ok(Outcome::Ingested(report))
    }

    pub(super) fn raise(&self, p: &mut Draft<'_>, alarm: Alarm) {
        tracing::warn!(kind = %alarm.kind, author = %alarm.author, seq = alarm.seq, "integrity alarm: {}", alarm.detail);
        p.heads.alarms += 1;
        p.batch.put_alarm(p.heads.alarms, &alarm);
    }

    /// A parent receives every record its child signs, in the child's chain
    /// order: each must continue where the chain left off. A gap (other
    /// than records waiting here for their parents) or a broken link is
    /// raised as an alarm with proof (the record is still stored: it is
    /// validly signed, and the alarm is what people must act on). Deeper
    /// authors' chains are checked by their own parents.
    pub(super) fn check_chain(&self, now: u64, p: &mut Draft<'_>, record: &Record, peer: Option<NodeId>) -> Result<()> {
        // A record already held sits at or below its author's head, so it
        // passes the `seq <= last_seq` test below without a look-up here.
        if record.author == self.shared.key.id() {
            return Ok(());
        }
        let (last_seq, last_id) = match self.chain_head(p, &record.author)? {
            Some((s, id)) => (s, Some(id)),
            None => (0, None),
        };
        let seq = record.header.seq;
        if seq <= last_seq {
            return Ok(()); // an older record arriving late, or an equivocation (checked on ingest)
        }
        let detail = if seq > last_seq + 1 {
            if self.all_parked(p, &record.author, last_seq + 1..seq)? {
                return Ok(());
            }
            format!("records {}..{} of this author never arrived before seq {seq}", last_seq + 1, seq - 1)
        } else if record.header.prev != last_id {
            format!("seq {seq} does not follow the record held at seq {last_seq}")
        } else {
            return Ok(());
        };
        let mut proof = vec![hex::encode(record.bytes())];
        p.settle_if(|f| last_id.is_some_and(|id| f.w.added.contains(&id)))?;
        if let Some(id) = last_id
            && let Some(b) = self.shared.store.record_bytes(&id)?
        {
            proof.push(hex::encode(b));
        }
        self.raise(p, Alarm { kind: "chain_gap".into(), author: record.author.to_string(), seq, detail, proof, detected_ms: now, peer: peer.map(|k| k.fmt_short()) });
        Ok(())
    }

    /// Whether every seq of `range` of the author's chain is a record waiting
    /// here for its parents (in this group or stored): not a gap.
    fn all_parked(&self, p: &mut Draft<'_>, author: &NodeId, range: std::ops::Range<u64>) -> Result<bool> {
        let mut parked: std::collections::BTreeSet<u64> = p.parked.iter().filter(|r| r.author == *author).map(|r| r.header.seq).collect();
        p.settle_if(|f| f.w.pending)?;
        for (_, bytes) in self.shared.store.pending()? {
            if let Ok(r) = Record::decode_unverified(&bytes)
                && r.author == *author
            {
                parked.insert(r.header.seq);
            }
        }
        Ok(range.into_iter().all(|s| parked.contains(&s)))
    }

    /// The author's chain head as stored plus this batch (cached per batch).
    pub(super) fn chain_head(&self, p: &mut Draft<'_>, author: &NodeId) -> Result<Option<(u64, RecordId)>> {
        if let Some(h) = p.chain_heads.get(author) {
            return Ok(*h);
        }
        p.settle_if(|f| f.w.authors.contains(author))?;
        let h = self.shared.store.chain_last(author)?;
        p.chain_heads.insert(*author, h);
        Ok(h)
    }

    /// The record an author's chain holds at `seq`, in this batch or stored.
    pub(super) fn chain_entry(&self, p: &Draft<'_>, author: &NodeId, seq: u64) -> Result<Option<RecordId>> {
        match p.w.chain_at.get(&(*author, seq)).or_else(|| p.prev.as_ref().and_then(|f| f.w.chain_at.get(&(*author, seq)))) {
            Some(id) => Ok(Some(*id)),
            None => Ok(self.shared.store.chain_entry(author, seq)?),
        }
    }

    pub(super) fn has(&self, p: &Draft<'_>, id: &RecordId) -> Result<bool> {
        Ok(p.w.added.contains(id) || p.prev.as_ref().is_some_and(|f| f.w.added.contains(id)) || self.shared.store.has_record(id)?)
    }

    pub(super) fn ingest_one(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, record: Record, peer: Option<NodeId>, report: &mut IngestReport) -> Result<()> {
        // Every held record has its (author, seq) chain entry, so a record
        // above its author's head is neither held nor an equivocation: the
        // common case of a catch-up needs no look-up per record.
        let above_head = self.chain_head(p, &record.author)?.is_none_or(|(seq, _)| record.header.seq > seq);
        if p.w.added.contains(&record.id) || (!above_head && self.has(p, &record.id)?) {
            report.duplicates += 1;
            return Ok(());
        }
        let refused = match self.conflict(now, p, &record, above_head, peer)? {
            Some(reason) => Err(reason),
            None => self.author_division(p, &record, report),
        };
        let applied = match refused {
            Err(reason) => Err(reason),
            Ok(division) => self.apply_record(policy, p, &record, division, None, report)?,
        };
        match applied {
            Ok(true) => report.applied += 1,
            Ok(false) => {}
            Err(reason) => report.rejected.push((record.id, reason)),
        }
        Ok(())
    }

    /// Takes a checked record in: stores it (unless `stored` gives its
    /// feed position: a record held aside, taken in after an upgrade) and
    /// applies what it says. `Ok(false)`: waiting or held aside.
    fn apply_record(
        &self,
        policy: &PolicySet,
        p: &mut Draft<'_>,
        record: &Record,
        division: Option<DivisionCode>,
        stored: Option<u64>,
        report: &mut IngestReport,
    ) -> Result<std::result::Result<bool, String>> {
        if !self.reads(record) {
            return self.hold_unreadable(p, record, division, None, report);
        }
        Ok(match &record.body {
            Body::NodeCert(_) | Body::Revocation(_) => self.ingest_trust(p, record, stored),
            Body::Policy(policy) => self.ingest_policy(p, record, policy, stored),
            Body::Report(r) => {
                if Some(r.unit) != division {
                    Err(format!("report for unit {} but its author is certified for another", r.unit))
                } else {
                    let at = place(p, record, stored);
                    let _ = at;
                    p.batch.index_report(r.month, r.unit.as_u64(), record.header.seq, &record.id);
                    Ok(true)
                }
            }
            Body::CaseEvent(event) => return self.ingest_event(policy, p, record, event, division, stored, report),
            Body::Unreadable(_) => return self.hold_unreadable(p, record, division, None, report),
        })
    }

    /// A record this node must not take, with the alarm it raises: one
    /// signed with this node's own key that it does not hold, or an
    /// equivocation (the author already has a different record at its seq).
    fn conflict(&self, now: u64, p: &mut Draft<'_>, record: &Record, above_head: bool, peer: Option<NodeId>) -> Result<Option<String>> {
        let peer_name = peer.map(|k| k.fmt_short());
        // Restored from a backup: our own records coming back are what we
        // wait for ([`crate::recovery`]), in any order (an urgent batch, an
        // answer to `Want`); only another record at a seq already taken
        // is a conflict.
        if record.author == self.shared.key.id() && self.shared.recovery.restoring() {
            if above_head {
                return Ok(None);
            }
            match self.chain_entry(p, &record.author, record.header.seq)? {
                None => return Ok(None),
                Some(held) if held == record.id => return Ok(None),
                Some(_) => {}
            }
        }
        if record.author == self.shared.key.id() {
            self.raise(
                p,
                Alarm {
                    kind: "own_record_unknown".into(),
                    author: record.author.to_string(),
                    seq: record.header.seq,
                    detail: "a peer sent a record signed with this node's key that this node does not hold (restored from an old backup, or the key leaked)".into(),
                    proof: vec![hex::encode(record.bytes())],
                    detected_ms: now,
                    peer: peer_name,
                },
            );
            return Ok(Some("record signed with this node's own key".into()));
        }
        if above_head {
            return Ok(None);
        }
        let Some(existing) = self.chain_entry(p, &record.author, record.header.seq)?.filter(|e| *e != record.id) else {
            return Ok(None);
        };
        let mut proof = vec![hex::encode(record.bytes())];
        p.settle_if(|f| f.w.added.contains(&existing))?;
        if let Some(b) = self.shared.store.record_bytes(&existing)? {
            proof.push(hex::encode(b));
        }
        self.raise(
            p,
            Alarm {
                kind: "equivocation".into(),
                author: record.author.to_string(),
                seq: record.header.seq,
                detail: format!("two different records with seq {}: {} and {}", record.header.seq, existing.fmt_short(), record.id.fmt_short()),
                proof,
                detected_ms: now,
                peer: peer_name,
            },
        );
        Ok(Some("equivocation: the author signed another record with this seq".into()))
    }

    /// The division the author is certified for (`None` for the root's own
    /// certificate), or why the record is refused.
    fn author_division(&self, p: &Draft<'_>, record: &Record, report: &mut IngestReport) -> std::result::Result<Option<DivisionCode>, String> {
        // Read the trust store in place; clone it only to change it.
        let trust_now: &Trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let root = trust_now.root();
        if matches!(&record.body, Body::NodeCert(c) if c.key == c.issuer && c.key == root) {
            return Ok(None);
        }
        match trust_now.check_author(&record.author, record.header.seq) {
            Ok(d) => Ok(Some(d)),
            // A case event signed after its author's cut-off is stored
            // and void: the fold rejects it ("author-revoked") on every
            // node, so events of others that name it still apply the
            // same way everywhere. Anything else from that key is refused.
            Err(TrustError::Revoked { .. }) if matches!(record.body, Body::CaseEvent(_)) => {
                report.void += 1;
                Ok(trust_now.member(&record.author).map(|m| m.cert.division))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// A certificate or a revocation: the trust store changes with it.
    fn ingest_trust(&self, p: &mut Draft<'_>, record: &Record, stored: Option<u64>) -> std::result::Result<bool, String> {
        let mut trust = p.trust.clone().unwrap_or_else(|| (*p.base_trust).clone());
        match &record.body {
            Body::NodeCert(_) => trust.add_cert(record),
            _ => trust.add_revocation(record),
        }
        .map_err(|e| e.to_string())?;
        p.revoked |= matches!(record.body, Body::Revocation(_));
        let at = place(p, record, stored);
        p.batch.index_trust(at, &record.id);
        p.trust = Some(trust);
        Ok(true)
    }

    /// A policy version: only the city root signs one.
    fn ingest_policy(&self, p: &mut Draft<'_>, record: &Record, policy: &Policy, stored: Option<u64>) -> std::result::Result<bool, String> {
        let root = p.trust.as_ref().unwrap_or(&p.base_trust).root();
        if record.author != root {
            return Err("policies are signed by the city root".into());
        }
        let at = place(p, record, stored);
        p.batch.index_trust(at, &record.id);
        p.note_policy(policy);
        Ok(true)
    }

    /// Whether this node reads the record's format (a record of a newer
    /// format, or one a simulated older release would not read, is held
    /// aside).
    pub(super) fn reads(&self, record: &Record) -> bool {
        !record.is_unreadable() && self.shared.caps.reads(record.format)
    }

    /// Whether a record is parked here (in this group, the one in flight,
    /// or stored).
    pub(super) fn is_parked(&self, p: &Draft<'_>, id: &RecordId) -> Result<Option<u8>> {
        if p.w.unparked.contains(id) {
            return Ok(None);
        }
        if let Some(n) = p.w.parked.get(id).or_else(|| p.prev.as_ref().and_then(|f| f.w.parked.get(id))) {
            return Ok(Some(*n));
        }
        Ok(self.shared.store.parked_entry(id)?.map(|e| e.needs))
    }

    /// The newest format a held-aside step of `case` needs, if the case has
    /// one: the case takes no step here until then.
    pub(super) fn case_parked(&self, p: &Draft<'_>, case: &RecordId) -> Result<Option<u8>> {
        if let Some(n) = p.w.parked_cases.get(case).or_else(|| p.prev.as_ref().and_then(|f| f.w.parked_cases.get(case))) {
            return Ok(Some(*n));
        }
        let mut needs = None;
        for id in self.shared.store.parked_in_case(case)? {
            if let Some(e) = self.shared.store.parked_entry(&id)? {
                needs = needs.max(Some(e.needs));
            }
        }
        Ok(needs)
    }

    /// A record this release cannot read (UPGRADES.md §5), or a case event
    /// that follows one (`follows`: the format it waits for): stored like
    /// any other — held, chained, sent on up — and marked parked, with its
    /// reason, so the fold leaves it out until an upgrade.
    pub(super) fn hold_unreadable(
        &self,
        p: &mut Draft<'_>,
        record: &Record,
        division: Option<DivisionCode>,
        follows: Option<u8>,
        report: &mut IngestReport,
    ) -> Result<std::result::Result<bool, String>> {
        let prefix = record.case_prefix();
        if let Some(pre) = &prefix
            && Some(pre.unit) != division
        {
            return Ok(Err(format!("event claims unit {} but its author is certified for another", pre.unit)));
        }
        if follows.is_none()
            && let Some(pre) = &prefix
        {
            // Held aside only once what it follows is here, so that taking
            // it in after the upgrade finds its parents.
            let mut missing = false;
            for dep in pre.parents.iter().chain(pre.case.iter()) {
                if !self.has(p, dep)? {
                    missing = true;
                    report.missing.push(*dep);
                }
            }
            if missing {
                return self.park(p, record, report);
            }
        }
        put_record(p, record);
        let entry = parked_entry(record, p.heads.feed_seq, follows, record.header.hlc.wall_ms);
        let needs = entry.needs;
        p.batch.put_parked(&record.id, &entry);
        p.w.parked.insert(record.id, needs);
        if let Some(c) = entry.case {
            p.w.parked_cases.insert(c, needs);
        }
        report.parked += 1;
        report.parked_needs = report.parked_needs.max(needs);
        Ok(Ok(false))
    }

    /// A case event: parked until its parents and case are held, then
    /// folded into the case in causal order. `Ok(false)`: parked.
    #[allow(clippy::too_many_arguments)] // the record's checks, as ingest_one made them
    fn ingest_event(
        &self,
        policy: &PolicySet,
        p: &mut Draft<'_>,
        record: &Record,
        event: &CaseEvent,
        division: Option<DivisionCode>,
        stored: Option<u64>,
        report: &mut IngestReport,
    ) -> Result<std::result::Result<bool, String>> {
        let id = record.id;
        if Some(event.unit) != division {
            return Ok(Err(format!("event claims unit {} but its author is certified for another", event.unit)));
        }
        let mut missing = false;
        for parent in &event.parents {
            if !self.has(p, parent)? {
                missing = true;
                report.missing.push(*parent);
            }
        }
        let case = event.case_id(id);
        if event.case.is_some() && !self.has(p, &case)? {
            missing = true;
            report.missing.push(case);
        }
        if missing {
            return self.park(p, record, report);
        }
        // A step that follows one held aside waits with it: a step needs
        // the full view of its case.
        for dep in event.parents.iter().chain(event.case.iter()) {
            if let Some(needs) = self.is_parked(p, dep)? {
                return self.hold_unreadable(p, record, division, Some(needs), report);
            }
        }
        p.heads.clock.observe(record.header.hlc);
        let eref = EventRef { id, author: record.author, seq: record.header.seq, hlc: record.header.hlc, format: record.format, event };
        if event.case.is_none() {
            match CaseState::file(policy, p.trust.as_ref().unwrap_or(&p.base_trust), eref) {
                Ok(state) => {
                    p.w.touched.insert(id, Touched { before: None, state, records: vec![record.clone()] });
                }
                Err(e) => return Ok(Err(e.message.to_string())),
            }
        } else {
            let trust = p.trust.as_ref().unwrap_or(&p.base_trust);
            let t = self.load(policy, trust, &mut p.w.touched, &mut p.prev, case)?;
            // The fold's order is causal, ties by (HLC, id): an event
            // that sorts before one already applied (a concurrent
            // step that took longer to arrive, e.g. a 督办 signed
            // before a village's escalation it crossed) is folded in
            // its place, so every node ends in the same state
            // whatever order the records came in.
            let late = eref.hlc <= t.state.last_hlc;
            t.records.push(record.clone());
            if late {
                t.state = fold_records(&self.shared.store, policy, trust, &t.records)?;
            } else {
                t.state.apply(policy, trust, eref);
            }
        }
        let at = place(p, record, stored);
        p.batch.index_case_event(&case, at, &id);
        Ok(Ok(true))
    }

    /// Keeps a case event waiting for its parents (bounded).
    fn park(&self, p: &mut Draft<'_>, record: &Record, report: &mut IngestReport) -> Result<std::result::Result<bool, String>> {
        p.settle_if(|f| f.w.pending)?;
        if self.shared.store.pending_count(MAX_PENDING)? + p.parked.len() >= MAX_PENDING {
            return Ok(Err("too many records waiting for their parents".into()));
        }
        if !p.parked.iter().any(|r| r.id == record.id) {
            p.w.pending = true;
            p.batch.put_pending(&record.id, record.bytes());
            p.released.remove(&record.id);
            p.parked.push(record.clone());
            report.pending += 1;
        }
        Ok(Ok(false))
    }

    /// Applies waiting records whose parents have arrived.
    pub(super) fn retry_pending(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, peer: Option<NodeId>, report: &mut IngestReport) -> Result<()> {
        // Those waiting in the store, and those this batch set waiting
        // (a 督办 parked before the dispatch it follows, in the same batch).
        let mut waiting: Vec<Record> = p.parked.clone();
        p.settle_if(|f| f.w.pending)?;
        for (id, bytes) in self.shared.store.pending()? {
            if p.released.contains(&id) || waiting.iter().any(|r| r.id == id) {
                continue;
            }
            if let Ok(mut r) = Record::decode_unverified(&bytes) {
                r.id = id;
                waiting.push(r);
            }
        }
        loop {
            let mut progressed = false;
            let mut still = Vec::new();
            for r in waiting {
                let ready = match r.case_prefix() {
                    Some(e) => {
                        let mut ok = match e.case {
                            Some(c) => self.has(p, &c)?,
                            None => true,
                        };
                        for parent in &e.parents {
                            ok = ok && self.has(p, parent)?;
                        }
                        ok
                    }
                    None => true,
                };
                if ready {
                    p.w.pending = true;
                    p.batch.delete_pending(&r.id);
                    p.released.insert(r.id);
                    p.parked.retain(|x| x.id != r.id);
                    report.pending = report.pending.saturating_sub(1);
                    self.ingest_one(policy, now, p, r, peer, report)?;
                    progressed = true;
                } else {
                    still.push(r);
                }
            }
            waiting = still;
            if !progressed || waiting.is_empty() {
                return Ok(());
            }
        }
    }
}

impl Writer {
    /// After an upgrade: takes in, in feed order (parents first), the
    /// records held aside that this release reads now, and the steps that
    /// followed them (UPGRADES.md §5.5). A record still unreadable, and
    /// what follows it, stay held.
    pub(super) fn unpark(&self, policy: &PolicySet, p: &mut Draft<'_>) -> Result<Outcome> {
        let mut report = IngestReport::default();
        p.settle_if(|_| true)?;
        for (id, entry) in self.shared.store.parked()? {
            let Some(bytes) = self.shared.store.record_bytes(&id)? else { continue };
            let record = match Record::decode_unverified(&bytes) {
                Ok(r) if self.reads(&r) => r,
                _ => continue,
            };
            if let Some(pre) = record.case_prefix() {
                let mut blocked = false;
                for dep in pre.parents.iter().chain(pre.case.iter()) {
                    blocked |= dep != &id && self.is_parked(p, dep)?.is_some();
                }
                if blocked {
                    continue;
                }
            }
            let division = match self.author_division(p, &record, &mut report) {
                Ok(d) => d,
                Err(reason) => {
                    report.rejected.push((id, reason));
                    continue;
                }
            };
            p.batch.delete_parked(&id, entry.case.as_ref());
            p.w.unparked.insert(id);
            match self.apply_record(policy, p, &record, division, Some(entry.feed), &mut report)? {
                Ok(true) => report.applied += 1,
                Ok(false) => {}
                Err(reason) => report.rejected.push((id, reason)),
            }
        }
        if report.applied > 0 {
            tracing::info!(applied = report.applied, "took in records held aside, now readable after the upgrade");
        }
        Ok(Outcome::Ingested(report))
    }

    /// Restored from a backup ([`crate::recovery`]): our own records that
    /// came back move our chain head and case-number serials to where they
    /// were; once a peer confirmed and none of ours waits for parents, the
    /// restore ends in this batch.
    fn recover_own(&self, now: u64, p: &mut Draft<'_>) -> Result<()> {
        let own = self.shared.key.id();
        if let Some((seq, id)) = self.chain_head(p, &own)?
            && seq > p.heads.own_seq
        {
            p.heads.own_seq = seq;
            p.heads.own_head = Some(id);
        }
        let mut serials: Vec<(i16, u64)> = Vec::new();
        for t in p.w.touched.values() {
            // Filed by this node's key, or by a key that held this division
            // before (a center re-keyed after losing its machine continues
            // its predecessor's numbers).
            let filed_here = t.before.is_none() && t.records.first().is_some_and(|r| r.author == own || r.case_event().is_some_and(|e| e.unit == self.shared.unit));
            if let Some((year, serial)) = filed_here.then(|| case_serial(&t.state.filing.number)).flatten() {
                serials.push((year, serial));
            }
        }
        for (year, serial) in serials {
            let key = format!("{}{year}", crate::store::meta::SERIAL_PREFIX);
            let known = match p.heads.serials.get(&year) {
                Some(s) => *s,
                None => {
                    p.settle_if(|f| f.w.meta)?;
                    self.shared.store.meta_u64(&key)?.unwrap_or(0)
                }
            };
            if serial > known {
                p.heads.serials.insert(year, serial);
                p.put_meta(&key, &serial.to_be_bytes());
            }
        }
        let mut waiting = p.parked.iter().filter(|r| r.author == own).count();
        for (_, bytes) in self.shared.store.pending()? {
            if Record::decode_unverified(&bytes).is_ok_and(|r| r.author == own) {
                waiting += 1;
            }
        }
        if self.shared.recovery.may_confirm(waiting) {
            p.batch.delete_meta(crate::store::meta::RESTORED);
            p.batch.delete_meta(crate::store::meta::SUCCESSION);
            self.shared.recovery.confirmed(now);
        }
        Ok(())
    }
}

/// The year and serial of a case number `<unit>-<year>-<serial>`.
fn case_serial(number: &str) -> Option<(i16, u64)> {
    let mut parts = number.rsplitn(3, '-');
    let serial = parts.next()?.parse().ok()?;
    let year = parts.next()?.parse().ok()?;
    Some((year, serial))
}

/// Why a record at feed position `feed` is held aside: its own format, or
/// (`follows`) the format of the record it follows in its case.
pub(super) fn parked_entry(record: &Record, feed: u64, follows: Option<u8>, at_ms: u64) -> crate::store::ParkedEntry {
    let needs = follows.unwrap_or(record.format);
    let install = crate::release::reading_format(needs);
    let reason = match follows {
        None => format!("记录格式 {} 本版本无法读取，需要升级到 {install} (record format {}: install {install})", record.format, record.format),
        Some(f) => format!("所依据的记录为格式 {f}，需要升级到 {install} (follows a record of format {f}: install {install})"),
    };
    crate::store::ParkedEntry {
        format: record.format,
        kind: record.kind_byte(),
        case: record.case_prefix().map(|pre| pre.case_id(record.id)),
        feed,
        needs,
        reason,
        author: record.author.fmt_short(),
        at_ms,
    }
}

/// A record's feed position: stored now, or (taken in after an upgrade)
/// where it was stored when it was held aside.
fn place(p: &mut Draft<'_>, record: &Record, stored: Option<u64>) -> u64 {
    match stored {
        Some(at) => at,
        None => {
            put_record(p, record);
            p.heads.feed_seq
        }
    }
}
