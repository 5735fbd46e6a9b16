//! The writer: groups operations into batches, prepares each on top of the
//! one being written, and hands it to the commit thread.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;

use zongzhi_protocol::policy::PolicySet;
use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::{Action, BlobHash, CaseState, Hlc, HlcClock, NodeId, Policy, Record, RecordId};

use crate::store::{Batch, Store, meta};

use crate::summary::CaseSummary;

use super::*;

/// The node's own position: chain head, feed counter, clock.
#[derive(Debug, Clone)]
pub(super) struct Heads {
    pub(super) feed_seq: u64,
    pub(super) own_seq: u64,
    pub(super) own_head: Option<RecordId>,
    pub(super) clock: HlcClock,
    pub(super) serials: HashMap<i16, u64>,
    pub(super) alarms: u64,
}

/// Signs and stores records; used directly (init, tools) or from the writer thread.
pub struct Writer {
    pub(super) shared: Context,
    /// Position after the last prepared group (written or being written).
    pub(super) heads: Heads,
    /// Position after the last group known to be durable.
    pub(super) committed: Heads,
    /// Authors' chain heads (seq, record) as of `heads`, filled on first
    /// use and kept across groups; `None`: nothing of the author held.
    pub(super) chain_heads: HashMap<NodeId, Option<(u64, RecordId)>>,
    /// The group being written on the commit thread, if any.
    pub(super) inflight: Option<InFlight>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("unit", &self.shared.unit).field("heads", &self.heads).finish()
    }
}

/// A case being changed within one batch.
pub(super) struct Touched {
    pub(super) before: Option<CaseSummary>,
    pub(super) state: CaseState,
    /// Every record of the case (stored and added in this group), so that
    /// an event arriving out of order is folded in its place.
    pub(super) records: Vec<Record>,
}

/// What a group wrote that the next group, prepared while it is being
/// written, may need to read.
#[derive(Default)]
pub(super) struct Written {
    /// Records added (so later ones may name them as parents).
    pub(super) added: HashSet<RecordId>,
    /// (author, seq) of the records added.
    pub(super) chain_at: HashMap<(NodeId, u64), RecordId>,
    /// Authors whose chain was extended while their head was not in the
    /// chain-head cache (this node's own records).
    pub(super) authors: HashSet<NodeId>,
    /// The cases changed, with their state as written.
    pub(super) touched: HashMap<RecordId, Touched>,
    /// Meta keys the next group may read were written (serials, markers).
    pub(super) meta: bool,
    /// Records waiting for their parents were stored or released.
    pub(super) pending: bool,
    /// Records held aside in this group, with the format each needs, and
    /// their cases.
    pub(super) parked: HashMap<RecordId, u8>,
    pub(super) parked_cases: HashMap<RecordId, u8>,
    /// Records taken in after an upgrade in this group.
    pub(super) unparked: HashSet<RecordId>,
}

/// Everything one batch changes before it is written.
pub(super) struct Draft<'a> {
    pub(super) batch: Batch<'a>,
    pub(super) heads: Heads,
    pub(super) w: Written,
    /// The trust store as this batch started.
    pub(super) base_trust: Arc<Trust>,
    /// Trust changes to publish after the write.
    pub(super) trust: Option<Trust>,
    /// A revocation was added: stored records may have become void.
    pub(super) revoked: bool,
    /// City policy versions added by this batch (held after the write).
    pub(super) policy: Vec<Policy>,
    /// The writer's chain-head cache, moved here for the batch and updated
    /// with its records (see `Writer::chain_heads`).
    pub(super) chain_heads: HashMap<NodeId, Option<(u64, RecordId)>>,
    /// The previous group, still being committed on the commit thread.
    pub(super) prev: Option<InFlight>,
    /// Records this batch set waiting for their parents (not in the store
    /// yet, so a parent arriving later in the same batch must find them here).
    pub(super) parked: Vec<Record>,
    /// Waiting records this batch released (still in the store's view until
    /// the write).
    pub(super) released: HashSet<RecordId>,
}

/// What a group being committed on the commit thread changed, so that the
/// next group, prepared meanwhile on the writer thread, reads its own
/// writes: the records and chain entries it added and the cases it changed
/// (their state as written) answer from here; reads the overlay cannot
/// answer (markers, serials, waiting records, proofs) wait until the group
/// is durable. Reads of anything else go to the store, which is
/// authoritative for them because only the writer writes these column
/// families and records are never deleted.
pub(super) struct InFlight {
    pub(super) w: Written,
    /// The writer's position after this group.
    pub(super) heads: Heads,
    pub(super) done: mpsc::Receiver<std::result::Result<(), String>>,
    pub(super) outcome: Option<std::result::Result<(), String>>,
}

impl InFlight {
    /// Waits until the group is durable; an error if its write failed.
    pub(super) fn settle(&mut self) -> Result<()> {
        if self.outcome.is_none() {
            self.outcome = Some(self.done.recv().unwrap_or_else(|_| Err("the commit thread stopped".into())));
        }
        match &self.outcome {
            Some(Err(e)) => Err(LedgerError::WriteFailed(e.clone())),
            _ => Ok(()),
        }
    }

    pub(super) fn settled(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Draft<'_> {
    /// Keeps a policy version seen in this batch (held after the write).
    pub(super) fn note_policy(&mut self, policy: &Policy) {
        if !self.policy.iter().any(|p| p.version == policy.version) {
            self.policy.push(policy.clone());
        }
    }

    /// Waits for the previous group to be durable if `dirty` says it may
    /// have written what is about to be read from the store.
    pub(super) fn settle_if(&mut self, dirty: impl Fn(&InFlight) -> bool) -> Result<()> {
        match &mut self.prev {
            Some(prev) if !prev.settled() && dirty(prev) => prev.settle(),
            _ => Ok(()),
        }
    }

    /// Stores a blob. A contact that is new here also files the stored
    /// cases naming it under its phone and ID number: a case can arrive
    /// before its contact (replicated without it), and the contact can come
    /// later by any path (a batch, or a local filing by the same person).
    pub(super) fn put_blob(&mut self, hash: &BlobHash, bytes: &[u8]) -> Result<()> {
        let new = !self.batch.holds_blob(&hash.0)?;
        self.batch.put_blob(&hash.0, bytes);
        if new && let Ok(contact) = zongzhi_protocol::case::Contact::from_bytes(bytes) {
            // The cases are found in the store's repeat index, under the
            // complainant's fingerprint: the group in flight may be
            // writing some.
            self.settle_if(|prev| !prev.w.touched.is_empty())?;
            // Under its fingerprint as its filing center computed it, or
            // under the contact's hash (a filing without a fingerprint).
            let fingerprint = crate::index::person_of_contact(&self.base_trust.root(), &contact);
            for person in fingerprint.into_iter().chain([hash.0]) {
                self.batch.index_late_contact(&person, &hash.0, bytes)?;
            }
        }
        Ok(())
    }

    pub(super) fn put_meta(&mut self, key: &str, value: &[u8]) {
        self.w.meta = true;
        self.batch.put_meta(key, value);
    }
}

/// A group of operations turned into one write batch, not yet written.
pub(super) struct Group<'s> {
    /// `None` when no operation was accepted: nothing to write.
    pub(super) batch: Option<Batch<'s>>,
    pub(super) results: Vec<Result<Outcome>>,
    pub(super) heads: Heads,
    pub(super) trust: Option<Trust>,
    pub(super) policy: Vec<Policy>,
    pub(super) revoked: bool,
    /// Cases that took a merge in this group (crossing merges are settled
    /// after the write).
    pub(super) merges: Vec<RecordId>,
    pub(super) w: Written,
}

impl Group<'_> {
    /// Publishes what a written group changed: trust store, policy, feed head.
    pub(super) fn publish(shared: &Context, feed_seq: u64, trust: Option<Trust>, policy: Vec<Policy>) {
        if let Some(t) = trust {
            shared.set_trust(t);
        }
        if !policy.is_empty() {
            shared.add_policies(policy);
        }
        shared.feed.send_replace(feed_seq);
    }
}

/// Each accepted operation's result becomes the write's error if it failed.
pub(super) fn failed_write(results: Vec<Result<Outcome>>, msg: &str) -> Vec<Result<Outcome>> {
    results.into_iter().map(|r| r.and_then(|_| Err(LedgerError::WriteFailed(msg.to_string())))).collect()
}

impl Writer {
    pub fn new(shared: Context) -> Result<Writer> {
        let store = &shared.store;
        let feed_seq = store.meta_u64(meta::FEED_SEQ)?.unwrap_or(0);
        let (own_seq, own_head) = match store.meta_get(meta::OWN_HEAD)? {
            Some(v) if v.len() == 40 => {
                let seq = u64::from_be_bytes(v[..8].try_into().unwrap_or_default());
                let id = RecordId(v[8..40].try_into().unwrap_or_default());
                (seq, Some(id))
            }
            Some(_) => return Err(LedgerError::Integrity("meta own_head is malformed".into())),
            None => (0, None),
        };
        let clock = match store.meta_get(meta::HLC)? {
            Some(v) if v.len() == 12 => HlcClock::new(Hlc { wall_ms: u64::from_be_bytes(v[..8].try_into().unwrap_or_default()), counter: u32::from_be_bytes(v[8..12].try_into().unwrap_or_default()) }),
            _ => HlcClock::default(),
        };
        // The chain in the store must end where meta says it does.
        let chain = store.author_chain(&shared.key.id())?;
        if chain.last().map(|(s, id)| (*s, Some(*id))).unwrap_or((0, None)) != (own_seq, own_head) {
            return Err(LedgerError::Integrity(format!("own author chain ends at seq {} but meta records seq {own_seq}", chain.last().map(|(s, _)| *s).unwrap_or(0))));
        }
        let alarms = store.alarm_count()?;
        shared.feed.send_replace(feed_seq);
        let heads = Heads { feed_seq, own_seq, own_head, clock, serials: HashMap::new(), alarms };
        Ok(Writer { shared, committed: heads.clone(), heads, chain_heads: HashMap::new(), inflight: None })
    }

    pub fn shared(&self) -> &Context {
        &self.shared
    }

    /// Processes a group of operations: all accepted ones in one synced
    /// batch. Returns one result per operation, in order.
    pub fn process(&mut self, ops: Vec<Op>) -> Vec<Result<Outcome>> {
        if let Err(e) = self.settle() {
            return ops.iter().map(|_| Err(LedgerError::WriteFailed(e.to_string()))).collect();
        }
        let store = self.shared.store.clone();
        let group = self.prepare_group(&store, ops);
        let Some(batch) = group.batch else { return group.results };
        self.shared.metrics.write_group(group.results.len(), group.w.added.len());
        let result = store.commit(batch).map_err(|e| e.to_string());
        self.written(group.heads.clone(), result.clone());
        match result {
            Ok(()) => {
                let policy_added = !group.policy.is_empty();
                Group::publish(&self.shared, group.heads.feed_seq, group.trust, group.policy);
                self.after_trust_change(group.revoked, policy_added);
                self.after_merges(&group.merges);
                group.results
            }
            Err(msg) => failed_write(group.results, &msg),
        }
    }

    /// Prepares a group as [`Writer::process`] does and stops before its
    /// write, as a crash between the two does (simulations): nothing of the
    /// group reaches the store, and the writer's in-memory state goes with
    /// it. The node starts again through its start-up passes.
    #[doc(hidden)]
    pub fn prepare_then_crash(mut self, ops: Vec<Op>) {
        if self.settle().is_ok() {
            let store = self.shared.store.clone();
            drop(self.prepare_group(&store, ops));
        }
    }

    /// Checks a group of operations and builds its write batch (on top of
    /// the group in flight, if any). Returns one result per operation.
    pub(super) fn prepare_group<'s>(&mut self, store: &'s Store, ops: Vec<Op>) -> Group<'s> {
        let policy = self.shared.policies();
        let now = self.shared.clock.now_ms();
        // Sized up front: a case state moved on every rehash is not cheap.
        let records: usize = ops.iter().map(|op| if let Op::Ingest { records, .. } = op { records.len() } else { 1 }).sum();
        let mut p = Draft {
            batch: store.batch(),
            heads: self.heads.clone(),
            w: Written { touched: HashMap::with_capacity(records), added: HashSet::with_capacity(records), chain_at: HashMap::with_capacity(records), ..Written::default() },
            base_trust: self.shared.trust(),
            trust: None,
            revoked: false,
            policy: Vec::new(),
            chain_heads: std::mem::take(&mut self.chain_heads),
            prev: self.inflight.take(),
            parked: Vec::new(),
            released: HashSet::new(),
        };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(self.prepare(&policy, now, &mut p, op));
        }
        self.chain_heads = std::mem::take(&mut p.chain_heads);
        self.inflight = p.prev.take();
        let Draft { mut batch, heads, mut w, trust, revoked, policy: new_policy, .. } = p;
        if results.iter().all(|r| r.is_err()) {
            // Nothing is written. The chain-head cache may hold records of
            // this group, and case states may have moved here from the
            // group in flight: forget both (the store answers once that
            // group is durable).
            self.chain_heads.clear();
            let _ = self.settle();
            return Group { batch: None, results, heads: self.heads.clone(), trust: None, policy: Vec::new(), revoked: false, merges: Vec::new(), w: Written::default() };
        }
        let mut merges = Vec::new();
        for t in w.touched.values_mut() {
            let summary = CaseSummary::of(&t.state);
            if summary.merged.is_some() && t.before.as_ref().is_none_or(|b| b.merged != summary.merged) {
                merges.push(summary.id);
            }
            batch.put_summary(t.before.as_ref(), &summary);
            index_search(&mut batch, &t.state, &summary, t.before.is_none());
            // As the next group finds it, if it changes the case again.
            t.before = Some(summary);
        }
        let mut heads = heads;
        for (number, holder, other) in std::mem::take(&mut batch.number_clashes) {
            let author = w.touched.get(&other).and_then(|t| t.records.first()).map(|r| (r.author, r.header.seq));
            tracing::warn!(%number, "integrity alarm: two cases carry one case number");
            heads.alarms += 1;
            batch.put_alarm(
                heads.alarms,
                &Alarm {
                    kind: "duplicate_case_number".into(),
                    author: author.map(|(a, _)| a.to_string()).unwrap_or_default(),
                    seq: author.map_or(0, |(_, s)| s),
                    detail: format!("case {} carries the number {number} of case {}: a number is issued once in a division", other.fmt_short(), holder.fmt_short()),
                    proof: Vec::new(),
                    detected_ms: now,
                    peer: None,
                },
            );
        }
        write_heads(&mut batch, &heads);
        batch.seal();
        self.heads = heads.clone();
        Group { batch: Some(batch), results, heads, trust, policy: new_policy, revoked, merges, w }
    }

    /// One turn of the writer thread: prepares `ops` on top of the group in
    /// flight and hands them over (see [`Writer::hand_off`]).
    pub(super) fn turn<'s>(&mut self, store: &'s Store, ops: Vec<Op>, replies: Vec<Reply>) -> Option<Commit<'s>> {
        let group = self.prepare_group(store, ops);
        self.hand_off(group, replies)
    }

    /// Waits until the group in flight is durable, then returns `group`
    /// for the commit thread, which answers the callers once it is written.
    /// Answers them here instead when there is nothing to write or the
    /// previous write failed (this group was built on top of it).
    pub(super) fn hand_off<'s>(&mut self, group: Group<'s>, replies: Vec<Reply>) -> Option<Commit<'s>> {
        let results = match self.settle() {
            Err(e) => failed_write(group.results, &e.to_string()),
            Ok(()) if group.batch.is_none() => group.results,
            Ok(()) => {
                let (done_tx, done_rx) = mpsc::sync_channel(1);
                let batch = group.batch?;
                self.shared.metrics.write_group(group.results.len(), group.w.added.len());
                self.inflight = Some(InFlight { w: group.w, heads: group.heads.clone(), done: done_rx, outcome: None });
                return Some(Commit {
                    batch,
                    feed_seq: group.heads.feed_seq,
                    trust: group.trust,
                    policy: group.policy,
                    merges: group.merges,
                    revoked: group.revoked,
                    replies: replies.into_iter().zip(group.results).collect(),
                    done: done_tx,
                });
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        None
    }

    /// Settles the group in flight if its write has ended, without
    /// waiting: an idle writer goes back to the last durable position as
    /// soon as a write failed, so the first group after the cause is gone
    /// (space freed on a full disk) is not built on a group never stored.
    pub(super) fn settle_if_done(&mut self) {
        let ended = match &mut self.inflight {
            Some(f) if f.outcome.is_none() => match f.done.try_recv() {
                Ok(r) => {
                    f.outcome = Some(r);
                    true
                }
                Err(mpsc::TryRecvError::Empty) => false,
                Err(mpsc::TryRecvError::Disconnected) => true,
            },
            Some(_) => true,
            None => false,
        };
        if ended {
            let _ = self.settle();
        }
    }

    /// Waits for the group in flight, if any; after a failed write the
    /// writer goes back to the last durable position.
    pub(super) fn settle(&mut self) -> Result<()> {
        let Some(mut prev) = self.inflight.take() else { return Ok(()) };
        let result = prev.settle();
        self.written(prev.heads, prev.outcome.unwrap_or(Ok(())));
        result
    }

    /// Notes the outcome of writing the group that ends at `heads`.
    pub(super) fn written(&mut self, heads: Heads, outcome: std::result::Result<(), String>) {
        match outcome {
            Ok(()) => self.committed = heads,
            Err(_) => {
                self.heads = self.committed.clone();
                self.chain_heads.clear();
                self.inflight = None;
            }
        }
    }

    /// Runs one operation synchronously (init, import, tests).
    pub fn run(&mut self, op: Op) -> Result<Outcome> {
        self.process(vec![op]).pop().unwrap_or(Err(LedgerError::ShuttingDown))
    }

    /// A case's state in this batch: changed earlier in it, changed by the
    /// group in flight (its state as that group writes it), or as stored.
    pub(super) fn load<'t>(&self, policy: &PolicySet, trust: &Trust, touched: &'t mut HashMap<RecordId, Touched>, prev: &mut Option<InFlight>, case: RecordId) -> Result<&'t mut Touched> {
        match touched.entry(case) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                if let Some(t) = prev.as_mut().and_then(|f| f.w.touched.remove(&case)) {
                    return Ok(e.insert(t));
                }
                let Some(before) = self.shared.store.case_summary(&case)? else {
                    return Err(LedgerError::NoSuchCase(case.to_string()));
                };
                let records = load_case_records(&self.shared.store, &case)?;
                let state = fold_records(&self.shared.store, policy, trust, &records)?;
                Ok(e.insert(Touched { before: Some(before), state, records }))
            }
        }
    }

    /// Checks one operation and adds what it writes to the draft batch.
    pub(super) fn prepare(&self, policy: &PolicySet, now: u64, p: &mut Draft<'_>, op: Op) -> Result<Outcome> {
        if self.shared.recovery.restoring() && !matches!(op, Op::Ingest { .. } | Op::Unpark) {
            return Err(LedgerError::Restoring);
        }
        match op {
            Op::File { filing, contact, query_code, operator } => self.file(policy, now, p, super::local::NewCase { filing, contact, query_code, operator }),
            Op::FileFrom { system, reference, filing, contact, query_code, operator } => {
                let outcome = self.file(policy, now, p, super::local::NewCase { filing, contact, query_code, operator })?;
                if let Outcome::Step(ack) = &outcome {
                    for (key, value) in crate::integration::source_entries(&system, &reference, &ack.case) {
                        p.put_meta(&key, &value);
                    }
                }
                Ok(outcome)
            }
            Op::Act { case, action, operator } => self.act_with_secrets(policy, now, p, case, action, operator, Vec::new()),
            Op::ActWithSecrets { case, action, operator, secrets } => self.act_with_secrets(policy, now, p, case, action, operator, secrets),
            Op::Attach { case, bytes, name, mime, operator } => {
                check_operator(&operator)?;
                let blob = BlobHash::of(&bytes);
                let action = Action::Attach { blob, name, mime, size: bytes.len() as u64 };
                self.act(policy, now, p, case, action, operator, Some((blob, bytes))).map(Outcome::Step)
            }
            Op::ActWithBlob { case, action, operator, blob } => {
                check_operator(&operator)?;
                let hash = BlobHash::of(&blob);
                if !matches!(&action, Action::MediationAgreement { document, .. } if *document == hash) {
                    return Err(LedgerError::Invalid("the step does not sign the document stored with it".into()));
                }
                self.act(policy, now, p, case, action, operator, Some((hash, blob))).map(Outcome::Step)
            }
            Op::AutoSupervise { case, kind, started_ms, grade, raised, note, assist } => self.auto_supervise(policy, now, p, case, (kind, started_ms, grade, raised), note, assist),
            Op::AppendOwn { body } => self.append_own(policy, now, p, body),
            Op::Ingest { records, blobs, cursor } => self.ingest(policy, now, p, records, blobs, cursor),
            Op::Unpark => self.unpark(policy, p),
        }
    }
}

pub(super) fn put_record(p: &mut Draft<'_>, record: &Record) {
    p.heads.feed_seq += 1;
    p.w.added.insert(record.id);
    // An author not looked up yet (this node's own records) is looked up
    // from the store when first needed, once this group is durable; until
    // then the entry stays absent rather than wrong.
    match p.chain_heads.get_mut(&record.author) {
        Some(head) => {
            if head.is_none_or(|(seq, _)| record.header.seq > seq) {
                *head = Some((record.header.seq, record.id));
            }
        }
        None => {
            p.w.authors.insert(record.author);
        }
    }
    p.w.chain_at.insert((record.author, record.header.seq), record.id);
    p.batch.put_record(&record.id, record.bytes(), p.heads.feed_seq, &record.author, record.header.seq);
}

pub(super) fn write_heads(batch: &mut Batch<'_>, heads: &Heads) {
    batch.put_meta(meta::FEED_SEQ, &heads.feed_seq.to_be_bytes());
    if let Some(head) = heads.own_head {
        let mut v = heads.own_seq.to_be_bytes().to_vec();
        v.extend_from_slice(&head.0);
        batch.put_meta(meta::OWN_HEAD, &v);
    }
    let hlc = heads.clock.last();
    let mut v = hlc.wall_ms.to_be_bytes().to_vec();
    v.extend_from_slice(&hlc.counter.to_be_bytes());
    batch.put_meta(meta::HLC, &v);
}
