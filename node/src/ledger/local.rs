//! Steps this node takes: checked against the case's rules and the
//! targets only this node can check, then signed as its next record.

use zongzhi_protocol::case::Contact;
use zongzhi_protocol::case::RouteTarget;
use zongzhi_protocol::case::SuperviseGrade;
use zongzhi_protocol::policy::{PolicySet, china_date};
use zongzhi_protocol::workflow::{DeadlineKind, EventRef, FoldContext, Rejection};
use zongzhi_protocol::{Action, BlobHash, Body, CaseEvent, CaseState, DivisionCode, Filing, Header, NodeKey, Policy, Record, RecordId};

use crate::store::meta;

use super::*;

/// What `Op::File` asks for.
pub(super) struct NewCase {
    pub filing: Box<Filing>,
    pub contact: Option<Contact>,
    pub query_code: Option<QueryCode>,
    pub operator: String,
}

impl Writer {
    /// A workflow step (`Op::Act`), with secrets for the citizen's
    /// messages stored beside it in the same batch.
    #[allow(clippy::too_many_arguments)] // the step's parts, as `Op` carries them
    pub(super) fn act_with_secrets(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, case: RecordId, action: Action, operator: String, secrets: Vec<(&'static str, String)>) -> Result<Outcome> {
        check_operator(&operator)?;
        if matches!(action, Action::File(_)) {
            return Err(LedgerError::Invalid("use the filing endpoint to file a case".into()));
        }
        let ack = self.act(policy, now, p, case, action, operator, None)?;
        for (name, value) in secrets {
            p.batch.put_notify_secret(&ack.event, name, &value);
        }
        Ok(Outcome::Step(ack))
    }

    /// Files a new case: its number is the next serial of the filing year.
    pub(super) fn file(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, new: NewCase) -> Result<Outcome> {
        let NewCase { mut filing, contact, query_code, operator } = new;
        check_operator(&operator)?;
        zongzhi_protocol::workflow::validate_filing(policy.current(), &filing).map_err(LedgerError::Rejected)?;
        let year = china_date(now).map_err(|e| LedgerError::Invalid(e.to_string()))?.year();
        let serial = match p.heads.serials.get(&year) {
            Some(s) => *s,
            None => {
                p.settle_if(|f| f.w.meta)?;
                self.shared.store.meta_u64(&format!("{}{year}", meta::SERIAL_PREFIX))?.unwrap_or(0)
            }
        } + 1;
        // Never a number a case already holds here (one a predecessor key
        // of this division issued, learnt after the serial was stored).
        let mut serial = serial;
        p.settle_if(|f| !f.w.touched.is_empty())?;
        while self.shared.store.case_by_number(&format!("{}-{year}-{serial:06}", self.shared.unit))?.is_some() {
            serial += 1;
        }
        filing.number = format!("{}-{year}-{serial:06}", self.shared.unit);
        let contact_bytes = contact.as_ref().map(|c| c.to_bytes());
        filing.contact = contact_bytes.as_deref().map(BlobHash::of);
        // The citizen's side: the fingerprint from the contact (never the
        // contact itself), the query code only hashed.
        let fp_key = zongzhi_protocol::case::fingerprint_key(p.base_trust.root().as_bytes());
        filing.intake.complainant = contact.as_ref().and_then(|c| zongzhi_protocol::case::Fingerprint::of(&fp_key, c));
        filing.intake.query_code_hash = query_code.as_ref().map(|q| zongzhi_protocol::case::query_code_hash(&filing.number, &q.code));
        if let Some(arose) = filing.intake.arose_in
            && !self.shared.unit.contains(arose)
        {
            return Err(LedgerError::Invalid(format!("发生地 {arose} is not within this center's area ({})", self.shared.unit)));
        }
        // 发生地 is a unit 越级 is counted against: an enrolled center, not
        // any code below this one.
        if let Some(arose) = filing.intake.arose_in
            && arose != self.shared.unit
            && p.trust.as_ref().unwrap_or(&p.base_trust).key_of(arose).is_none()
        {
            return Err(LedgerError::Rejected(Rejection {
                rule: "unknown-unit",
                message: format!("发生地 {arose} is not a center enrolled below this one ({}): name an enrolled unit (`zongzhi cert list`), or leave 发生地 out for this center", self.shared.unit),
            }));
        }
        if filing.intake.arose_in == Some(self.shared.unit) {
            filing.intake.arose_in = None;
        }
        if filing.intake.arose_in.is_none() {
            filing.intake.skip_level = false;
        }
        let event = CaseEvent { case: None, parents: vec![], unit: self.shared.unit, operator, action: Action::File(filing), policy: policy.current().version };
        let mut trial = p.heads.clone();
        let body = Body::CaseEvent(event);
        let record = sign_next(&self.shared.key, &mut trial, now, self.format_for(policy, &body), body)?;
        let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
        let state = CaseState::file(policy, p.trust.as_ref().unwrap_or(&p.base_trust), eref).map_err(LedgerError::Rejected)?;
        p.heads = trial;
        p.heads.serials.insert(year, serial);
        p.put_meta(&format!("{}{year}", meta::SERIAL_PREFIX), &serial.to_be_bytes());
        if let (Some(bytes), Some(hash)) = (contact_bytes, state.filing.contact) {
            p.put_blob(&hash, &bytes)?;
        }
        put_record(p, &record);
        if let Some(q) = query_code.filter(|q| q.notify) {
            p.batch.put_notify_secret(&record.id, "query_code", &q.code);
        }
        p.batch.index_case_event(&record.id, p.heads.feed_seq, &record.id);
        p.w.touched.insert(record.id, Touched { before: None, state, records: vec![record.clone()] });
        Ok(Outcome::Step(Ack { case: record.id, event: record.id }))
    }

    /// An automatic supervision notice, at most once per (case, clock,
    /// grade): `clock` is (kind, started_ms, grade, raised).
    /// `assist`: a late 协办 helper (the request and the helper): the
    /// notice is a 协办督办 to it.
    #[allow(clippy::too_many_arguments)] // the clock's parts, as `Op` carries them
    pub(super) fn auto_supervise(
        &self,
        policy: &PolicySet,
        now: u64,
        p: &mut Draft<'_>,
        case: RecordId,
        clock: (DeadlineKind, u64, SuperviseGrade, bool),
        note: String,
        assist: Option<(RecordId, RouteTarget)>,
    ) -> Result<Outcome> {
        let (kind, started_ms, grade, raised) = clock;
        let helper = assist.as_ref().map(|(_, h)| crate::supervisor::helper_key(h));
        let marker = |g: SuperviseGrade| crate::supervisor::marker_for(&case, kind, started_ms, g, raised, helper.as_deref());
        p.settle_if(|f| f.w.meta)?;
        if self.shared.store.meta_get(&marker(grade))?.is_some() {
            return Err(LedgerError::AlreadyDone);
        }
        let action = match assist {
            Some((request, helper)) => Action::SuperviseAssistance { request, helper, grade, note },
            None => Action::Supervise { grade, note },
        };
        let ack = self.act(policy, now, p, case, action, AUTO_OPERATOR.into(), None)?;
        // Lower grades are implied: a clock found far overdue earns
        // its grade at once, not the whole ladder.
        for g in SuperviseGrade::ALL.iter().filter(|g| **g <= grade) {
            p.put_meta(&marker(*g), &ack.event.0);
        }
        Ok(Outcome::Step(ack))
    }

    /// Signs a record of this node that is not a case event (certificate,
    /// revocation, policy, monthly report).
    pub(super) fn append_own(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, body: Body) -> Result<Outcome> {
        if matches!(body, Body::CaseEvent(_)) {
            return Err(LedgerError::Invalid("case events go through the workflow".into()));
        }
        if let Body::Policy(next) = &body {
            // One version after the newest held (two admins signing
            // at once must not make two different version N+1s).
            let newest = p.policy.iter().map(|x| x.version).chain([policy.current().version]).max().unwrap_or(0);
            let first = newest == 1 && next.version == 1 && **policy.current() == **next;
            if next.version != newest + 1 && !first {
                return Err(LedgerError::Conflict(format!("policy version {} does not follow the newest held ({newest}); reload and try again", next.version)));
            }
            let prev = p.policy.iter().find(|x| x.version + 1 == next.version).or(policy.get(next.version.wrapping_sub(1)).map(|x| &**x));
            next.validate(prev.filter(|_| !first)).map_err(|e| LedgerError::Invalid(format!("policy: {e}")))?;
        }
        let mut trial = p.heads.clone();
        let record = sign_next(&self.shared.key, &mut trial, now, self.format_for(policy, &body), body)?;
        let mut trust = p.trust.clone().unwrap_or_else(|| (*p.base_trust).clone());
        match &record.body {
            Body::NodeCert(_) => trust.add_cert(&record).map_err(|e| LedgerError::Invalid(e.to_string()))?,
            Body::Revocation(_) => {
                trust.add_revocation(&record).map_err(|e| LedgerError::Invalid(e.to_string()))?;
                p.revoked = true;
            }
            _ => {}
        }
        p.heads = trial;
        put_record(p, &record);
        match &record.body {
            Body::NodeCert(_) | Body::Revocation(_) => {
                p.batch.index_trust(p.heads.feed_seq, &record.id);
                p.trust = Some(trust);
            }
            Body::Policy(policy) => {
                p.batch.index_trust(p.heads.feed_seq, &record.id);
                p.note_policy(policy);
            }
            Body::Report(r) => {
                if r.unit != self.shared.unit {
                    return Err(LedgerError::Invalid("a center reports its own unit only".into()));
                }
                p.batch.index_report(r.month, r.unit.as_u64(), record.header.seq, &record.id);
                p.put_meta(&crate::report::signed_marker(r.month), &record.id.0);
            }
            Body::CaseEvent(_) | Body::Unreadable(_) => {}
        }
        Ok(Outcome::Appended(record.id))
    }

    /// What only the acting node can check before it signs a step, since
    /// it depends on what this node holds now rather than on the case's
    /// events: units named as targets exist (enrolled, not revoked), a
    /// deadline set by hand lies ahead and within the policy's bound, a
    /// merge target is a case this node holds that still takes steps.
    pub(super) fn check_targets(&self, policy: &Policy, now: u64, p: &Draft<'_>, action: &Action) -> Result<()> {
        let rejected = |rule: &'static str, message: String| Err(LedgerError::Rejected(Rejection { rule, message }));
        let trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let enrolled = |unit: &DivisionCode| -> Result<()> {
            match trust.key_of(*unit) {
                Some(key) if trust.revocation(&key).is_none() => Ok(()),
                Some(_) => rejected("unit-revoked", format!("the center {unit} has been revoked and takes no cases")),
                None => rejected("unknown-unit", format!("no center {unit} is enrolled in the trust store")),
            }
        };
        let due_ok = |due: &Option<u64>| -> Result<()> {
            let Some(due) = *due else { return Ok(()) };
            let max = now.saturating_add(policy.deadlines.max_due_days as u64 * 86_400_000);
            if due <= now {
                return rejected("due-in-future", "a deadline set by hand (due_at) must lie in the future".into());
            }
            if due > max {
                return rejected("due-within-bound", format!("a deadline set by hand lies at most {} days ahead (policy max_due_days)", policy.deadlines.max_due_days));
            }
            Ok(())
        };
        match action {
            Action::RequestAssistance { helpers, .. } => {
                for h in helpers {
                    if let RouteTarget::Unit(u) = &h.helper {
                        enrolled(u)?;
                    }
                }
                Ok(())
            }
            Action::Route { due_ms, .. } => due_ok(due_ms),
            Action::Dispatch { to, due_ms, .. } => {
                enrolled(to)?;
                due_ok(due_ms)
            }
            Action::Reroute { target: RouteTarget::Unit(u), .. } => enrolled(u),
            Action::AddHelpers { helpers } => {
                for h in helpers {
                    if let RouteTarget::Unit(u) = h {
                        enrolled(u)?;
                    }
                }
                Ok(())
            }
            Action::Merge { into } => {
                let target = match p.w.touched.get(into).or_else(|| p.prev.as_ref().and_then(|f| f.w.touched.get(into))) {
                    Some(t) => Some((t.state.status, t.state.merged_into)),
                    None => self.shared.store.case_summary(into)?.map(|s| (s.status, None)),
                };
                match target {
                    None => Err(LedgerError::NoSuchCase(into.to_string())),
                    Some((status, _)) if status.is_final() => rejected("merge-target-open", format!("the target case is {} and takes no merge (并单 into a case that still takes steps)", status.zh())),
                    Some(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn act(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, case: RecordId, action: Action, operator: String, blob: Option<(BlobHash, Vec<u8>)>) -> Result<Ack> {
        if let Some(format) = self.case_parked(p, &case)? {
            return Err(LedgerError::NeedsUpgrade { format, install: crate::release::reading_format(format) });
        }
        let trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let t = self.load(policy, trust, &mut p.w.touched, &mut p.prev, case)?;
        let event = CaseEvent { case: Some(case), parents: t.state.heads.clone(), unit: self.shared.unit, operator, action, policy: policy.current().version };
        let mut trial = p.heads.clone();
        let body = Body::CaseEvent(event);
        let record = sign_next(&self.shared.key, &mut trial, now, self.format_for(policy, &body), body)?;
        let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
        t.state.check(policy.current(), &eref).map_err(LedgerError::Rejected)?;
        // The rules of the case first, then what only this node can check.
        let action = match &eref.event.action {
            a @ (Action::Route { .. } | Action::Dispatch { .. } | Action::Reroute { .. } | Action::AddHelpers { .. } | Action::RequestAssistance { .. } | Action::Merge { .. }) => Some(a.clone()),
            _ => None,
        };
        if let Some(a) = action {
            self.check_targets(policy.current(), now, p, &a)?;
        }
        let trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let t = p.w.touched.get_mut(&case).ok_or_else(|| LedgerError::NoSuchCase(case.to_string()))?;
        if trust.is_void(&eref) {
            return Err(LedgerError::Invalid("this node's key has been revoked; it can no longer sign workflow steps".into()));
        }
        t.state.apply(policy, trust, eref);
        t.records.push(record.clone());
        p.heads = trial;
        if let Some((hash, bytes)) = blob {
            p.put_blob(&hash, &bytes)?;
        }
        put_record(p, &record);
        p.batch.index_case_event(&case, p.heads.feed_seq, &record.id);
        Ok(Ack { case, event: record.id })
    }
}

pub(super) fn check_operator(operator: &str) -> Result<()> {
    if operator.is_empty() || operator.len() > 64 {
        return Err(LedgerError::Invalid("operator name must be 1 to 64 bytes".into()));
    }
    Ok(())
}

/// Signs `body` as the next record of this node's chain, in `format`
/// (the format the gate allows, [`Writer::format_for`]); a body that
/// needs a newer format is refused and nothing moves.
pub(super) fn sign_next(key: &NodeKey, heads: &mut Heads, now: u64, format: u8, body: Body) -> Result<Record> {
    let mut clock = heads.clock;
    let hlc = clock.tick(now);
    let header = Header { seq: heads.own_seq + 1, prev: heads.own_head, hlc };
    let record = Record::sign_as(key, format, header, body).map_err(|e| match e {
        zongzhi_protocol::record::RecordError::NotInFormat(n) => LedgerError::NeedsFormat(n),
        other => LedgerError::Invalid(other.to_string()),
    })?;
    heads.clock = clock;
    heads.own_seq += 1;
    heads.own_head = Some(record.id);
    Ok(record)
}

impl Writer {
    /// The format this node signs `body` in: the gate's (its own newest if
    /// lower). A policy that raises the gate is itself signed in the format
    /// it opens (the city finalizes only once every center reads it).
    pub(super) fn format_for(&self, policy: &PolicySet, body: &Body) -> u8 {
        let gate = self.shared.caps.write_format(policy.current().gate.write_format);
        match body {
            Body::Policy(next) if next.gate.write_format > gate => {
                let needed = zongzhi_protocol::record::needed_for(body);
                if needed <= next.gate.write_format && needed <= self.shared.caps.write_max { needed.max(gate) } else { gate }
            }
            _ => gate,
        }
    }
}
