//! The append path: every change this node makes, and every record it
//! receives, is checked here and written in one synced batch together with
//! the derived state it implies, before anyone is told it happened.
//!
//! One writer thread owns the author chain head, the feed counter, the
//! hybrid clock and the trust store's updates. Requests that arrive while a
//! batch is being written are grouped into the next batch (group commit):
//! one fsync acknowledges many steps, and a step is acknowledged only after
//! its fsync. A commit thread writes each group and answers its callers
//! while the writer thread prepares the next one on top of it (see
//! `InFlight` for how that group reads what the previous one wrote).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use zongzhi_protocol::case::Contact;
use zongzhi_protocol::case::RouteTarget;
use zongzhi_protocol::policy::{PolicySet, china_date};
use zongzhi_protocol::trust::{Trust, TrustError};
use zongzhi_protocol::case::SuperviseGrade;
use zongzhi_protocol::workflow::{fold, DeadlineKind, EventRef, FoldError, Rejection, FoldContext};
use zongzhi_protocol::{
    Action, BlobHash, Body, CaseEvent, CaseState, DivisionCode, Filing, Header, Hlc, HlcClock, NodeId, NodeKey, Policy,
    Record, RecordId,
};

use crate::store::{meta, Batch, Store, StoreError};
use crate::summary::CaseSummary;

/// The operator name on automatic supervision notices.
pub const AUTO_OPERATOR: &str = "自动督办";

/// Most operations written in one batch.
const MAX_GROUP: usize = 512;
/// Most records kept waiting for their parents.
pub const MAX_PENDING: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no case {0}")]
    NoSuchCase(String),
    #[error("{}", .0.message)]
    Rejected(Rejection),
    #[error("{0}")]
    Invalid(String),
    #[error("stored data failed its integrity check: {0}")]
    Integrity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("already done")]
    AlreadyDone,
    /// The step raced another one (e.g. two policy versions signed at once).
    #[error("{0}")]
    Conflict(String),
    /// The synced write of the step's group failed (a full disk, an I/O
    /// error): nothing of it is stored; the caller may try again.
    #[error("write failed: {0}")]
    WriteFailed(String),
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Cursor direction of a feed flowing from a child to this node.
pub const DIRECTION_UP: u8 = 0;

/// Where a batch of received records came from, so its cursor is stored in
/// the same write as the records.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub peer: NodeId,
    pub direction: u8,
    pub epoch: [u8; 16],
    pub upto: u64,
}

/// A change requested by an operator or a peer.
#[derive(Debug)]
pub enum Op {
    /// File a new case. `filing.number` and `filing.contact` are assigned here.
    File { filing: Box<Filing>, contact: Option<Contact>, operator: String },
    /// A workflow step on an existing case.
    Act { case: RecordId, action: Action, operator: String },
    /// Store an attachment blob and record it on the case.
    Attach { case: RecordId, bytes: Vec<u8>, name: String, mime: String, operator: String },
    /// Sign and store a non-case record of this node (certificate, revocation, policy).
    AppendOwn { body: Body },
    /// An automatic supervision notice: at most once per (case, clock,
    /// grade), and once more if the case is later raised a level (提级督办).
    /// The marker is written in the same batch as the notice, so a restart
    /// or a retried scan never issues it twice.
    AutoSupervise { case: RecordId, kind: DeadlineKind, started_ms: u64, grade: SuperviseGrade, raised: bool, note: String },
    /// Store records received from elsewhere (signatures already checked).
    Ingest { records: Vec<Record>, blobs: Vec<(BlobHash, Vec<u8>)>, cursor: Option<Cursor> },
}

/// What an acknowledged step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub case: RecordId,
    pub event: RecordId,
}

/// What happened to received records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub applied: usize,
    pub duplicates: usize,
    pub pending: usize,
    pub rejected: Vec<(RecordId, String)>,
    /// Case events stored but void: signed after their author's revocation cut-off.
    pub void: usize,
    /// Parents (or cases) that records in `pending` wait for.
    pub missing: Vec<RecordId>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Step(Ack),
    Appended(RecordId),
    Ingested(IngestReport),
}

/// An integrity alarm, stored with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alarm {
    /// `equivocation`, `chain_gap` or `own_record_unknown`.
    pub kind: String,
    pub author: String,
    pub seq: u64,
    pub detail: String,
    /// Hex of the conflicting records' bytes.
    pub proof: Vec<String>,
    pub detected_ms: u64,
    pub peer: Option<String>,
}

/// The node's own position: chain head, feed counter, clock.
#[derive(Debug, Clone)]
struct Heads {
    feed_seq: u64,
    own_seq: u64,
    own_head: Option<RecordId>,
    clock: HlcClock,
    serials: HashMap<i16, u64>,
    alarms: u64,
}

/// State shared between the writer, the API and the network.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<Store>,
    pub key: Arc<NodeKey>,
    pub unit: DivisionCode,
    /// Every policy version the city signed that this node holds.
    pub policy: Arc<RwLock<Arc<PolicySet>>>,
    /// Replaced whole by the writer; readers take a snapshot.
    pub trust: Arc<RwLock<Arc<Trust>>>,
    /// The last feed sequence number written; watchers push new records.
    pub feed: tokio::sync::watch::Sender<u64>,
    /// Replication status per peer.
    pub sync: crate::status::StatusBoard,
    /// Where "now" comes from for the writer and the workers.
    pub clock: crate::context::Clock,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("unit", &self.unit).finish()
    }
}

impl Shared {
    /// The current (newest) policy version: what new steps follow.
    pub fn policy(&self) -> Arc<Policy> {
        self.policies().current().clone()
    }

    /// Every version held (folds take the version each event names).
    pub fn policies(&self) -> Arc<PolicySet> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A snapshot of the trust store.
    pub fn trust(&self) -> Arc<Trust> {
        match self.trust.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_trust(&self, trust: Trust) {
        let mut guard = match self.trust.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(trust);
    }

    /// Builds the trust store from the stored certificate and revocation
    /// records, and finds the newest policy the city root signed (the
    /// built-in default when there is none): one pass over the trust index.
    pub fn load_trust_and_policy(store: &Store, root: NodeId) -> Result<(Trust, PolicySet)> {
        let mut trust = Trust::new(root);
        let mut set: Option<PolicySet> = None;
        for id in store.trust_records()? {
            let bytes = store.record_bytes(&id)?.ok_or_else(|| LedgerError::Integrity(format!("trust record {id} missing")))?;
            let record = Record::decode(&bytes).map_err(|e| LedgerError::Integrity(format!("trust record {id}: {e}")))?;
            let added = match &record.body {
                Body::NodeCert(_) => trust.add_cert(&record),
                Body::Revocation(_) => trust.add_revocation(&record),
                Body::Policy(policy) => {
                    if record.author == root {
                        match set.as_mut() {
                            Some(s) => {
                                s.insert((**policy).clone());
                            }
                            None => set = Some(PolicySet::new((**policy).clone())),
                        }
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = added {
                tracing::warn!(record = %id.fmt_short(), "stored trust record not usable: {e}");
            }
        }
        Ok((trust, set.unwrap_or_else(|| PolicySet::new(Policy::default_policy()))))
    }

    /// Adds policy versions signed by the city (newest applies to new steps).
    fn add_policies(&self, policies: Vec<Policy>) {
        let mut guard = match self.policy.write() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut set = (**guard).clone();
        let mut added = false;
        for p in policies {
            let version = p.version;
            if set.insert(p) {
                tracing::info!(version, "holding the city's policy version");
                added = true;
            }
        }
        if added {
            *guard = Arc::new(set);
        }
    }
}

/// Signs and stores records; used directly (init, tools) or from the writer thread.
pub struct Writer {
    shared: Shared,
    /// Position after the last prepared group (written or being written).
    heads: Heads,
    /// Position after the last group known to be durable.
    committed: Heads,
    /// Authors' chain heads (seq, record) as of `heads`, filled on first
    /// use and kept across groups; `None`: nothing of the author held.
    chain_heads: HashMap<NodeId, Option<(u64, RecordId)>>,
    /// The group being written on the commit thread, if any.
    inflight: Option<InFlight>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("unit", &self.shared.unit).field("heads", &self.heads).finish()
    }
}

/// A case being changed within one batch.
struct Touched {
    before: Option<CaseSummary>,
    state: CaseState,
    /// Every record of the case (stored and added in this group), so that
    /// an event arriving out of order is folded in its place.
    records: Vec<Record>,
}

/// What a group wrote that the next group, prepared while it is being
/// written, may need to read.
#[derive(Default)]
struct Written {
    /// Records added (so later ones may name them as parents).
    added: HashSet<RecordId>,
    /// (author, seq) of the records added.
    chain_at: HashMap<(NodeId, u64), RecordId>,
    /// Authors whose chain was extended while their head was not in the
    /// chain-head cache (this node's own records).
    authors: HashSet<NodeId>,
    /// The cases changed, with their state as written.
    touched: HashMap<RecordId, Touched>,
    /// Meta keys the next group may read were written (serials, markers).
    meta: bool,
    /// Records waiting for their parents were stored or released.
    pending: bool,
}

/// Everything one batch changes before it is written.
struct Pending<'a> {
    batch: Batch<'a>,
    heads: Heads,
    w: Written,
    /// The trust store as this batch started.
    base_trust: Arc<Trust>,
    /// Trust changes to publish after the write.
    trust: Option<Trust>,
    /// A revocation was added: stored records may have become void.
    revoked: bool,
    /// City policy versions added by this batch (held after the write).
    policy: Vec<Policy>,
    /// The writer's chain-head cache, moved here for the batch and updated
    /// with its records (see `Writer::chain_heads`).
    chain_heads: HashMap<NodeId, Option<(u64, RecordId)>>,
    /// The previous group, still being committed on the commit thread.
    prev: Option<InFlight>,
    /// Records this batch set waiting for their parents (not in the store
    /// yet, so a parent arriving later in the same batch must find them here).
    parked: Vec<Record>,
    /// Waiting records this batch released (still in the store's view until
    /// the write).
    released: HashSet<RecordId>,
}

/// What a group being committed on the commit thread changed, so that the
/// next group, prepared meanwhile on the writer thread, reads its own
/// writes: the records and chain entries it added and the cases it changed
/// (their state as written) answer from here; reads the overlay cannot
/// answer (markers, serials, waiting records, proofs) wait until the group
/// is durable. Reads of anything else go to the store, which is
/// authoritative for them because only the writer writes these column
/// families and records are never deleted.
struct InFlight {
    w: Written,
    /// The writer's position after this group.
    heads: Heads,
    done: mpsc::Receiver<std::result::Result<(), String>>,
    outcome: Option<std::result::Result<(), String>>,
}

impl InFlight {
    /// Waits until the group is durable; an error if its write failed.
    fn settle(&mut self) -> Result<()> {
        if self.outcome.is_none() {
            self.outcome = Some(self.done.recv().unwrap_or_else(|_| Err("the commit thread stopped".into())));
        }
        match &self.outcome {
            Some(Err(e)) => Err(LedgerError::WriteFailed(e.clone())),
            _ => Ok(()),
        }
    }

    fn settled(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Pending<'_> {
    /// Keeps a policy version seen in this batch (held after the write).
    fn note_policy(&mut self, policy: &Policy) {
        if !self.policy.iter().any(|p| p.version == policy.version) {
            self.policy.push(policy.clone());
        }
    }

    /// Waits for the previous group to be durable if `dirty` says it may
    /// have written what is about to be read from the store.
    fn settle_if(&mut self, dirty: impl Fn(&InFlight) -> bool) -> Result<()> {
        match &mut self.prev {
            Some(prev) if !prev.settled() && dirty(prev) => prev.settle(),
            _ => Ok(()),
        }
    }

    fn put_meta(&mut self, key: &str, value: &[u8]) {
        self.w.meta = true;
        self.batch.put_meta(key, value);
    }
}

/// A group of operations turned into one write batch, not yet written.
struct Group<'s> {
    /// `None` when no operation was accepted: nothing to write.
    batch: Option<Batch<'s>>,
    results: Vec<Result<Outcome>>,
    heads: Heads,
    trust: Option<Trust>,
    policy: Vec<Policy>,
    revoked: bool,
    /// Cases that took a merge in this group (crossing merges are settled
    /// after the write).
    merges: Vec<RecordId>,
    w: Written,
}

impl Group<'_> {
    /// Publishes what a written group changed: trust store, policy, feed head.
    fn publish(shared: &Shared, feed_seq: u64, trust: Option<Trust>, policy: Vec<Policy>) {
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
fn failed_write(results: Vec<Result<Outcome>>, msg: &str) -> Vec<Result<Outcome>> {
    results.into_iter().map(|r| r.and_then(|_| Err(LedgerError::WriteFailed(msg.to_string())))).collect()
}

impl Writer {
    pub fn new(shared: Shared) -> Result<Writer> {
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
            Some(v) if v.len() == 12 => HlcClock::new(Hlc {
                wall_ms: u64::from_be_bytes(v[..8].try_into().unwrap_or_default()),
                counter: u32::from_be_bytes(v[8..12].try_into().unwrap_or_default()),
            }),
            _ => HlcClock::default(),
        };
        // The chain in the store must end where meta says it does.
        let chain = store.author_chain(&shared.key.id())?;
        if chain.last().map(|(s, id)| (*s, Some(*id))).unwrap_or((0, None)) != (own_seq, own_head) {
            return Err(LedgerError::Integrity(format!(
                "own author chain ends at seq {} but meta records seq {own_seq}",
                chain.last().map(|(s, _)| *s).unwrap_or(0)
            )));
        }
        let alarms = store.alarm_count()?;
        shared.feed.send_replace(feed_seq);
        let heads = Heads { feed_seq, own_seq, own_head, clock, serials: HashMap::new(), alarms };
        Ok(Writer { shared, committed: heads.clone(), heads, chain_heads: HashMap::new(), inflight: None })
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Processes a group of operations: all accepted ones in one synced
    /// batch. Returns one result per operation, in order.
    pub fn process(&mut self, ops: Vec<Op>) -> Vec<Result<Outcome>> {
        if let Err(e) = self.settle() {
            return ops.iter().map(|_| Err(LedgerError::Invalid(e.to_string()))).collect();
        }
        let store = self.shared.store.clone();
        let group = self.prepare_group(&store, ops);
        let Some(batch) = group.batch else { return group.results };
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

    /// Checks a group of operations and builds its write batch (on top of
    /// the group in flight, if any). Returns one result per operation.
    fn prepare_group<'s>(&mut self, store: &'s Store, ops: Vec<Op>) -> Group<'s> {
        let policy = self.shared.policies();
        let now = self.shared.clock.now_ms();
        // Sized up front: a case state moved on every rehash is not cheap.
        let records: usize = ops.iter().map(|op| if let Op::Ingest { records, .. } = op { records.len() } else { 1 }).sum();
        let mut p = Pending {
            batch: store.batch(),
            heads: self.heads.clone(),
            w: Written {
                touched: HashMap::with_capacity(records),
                added: HashSet::with_capacity(records),
                chain_at: HashMap::with_capacity(records),
                ..Written::default()
            },
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
        let Pending { mut batch, heads, mut w, trust, revoked, policy: new_policy, .. } = p;
        if results.iter().all(|r| r.is_err()) {
            // Nothing is written. The chain-head cache may hold records of
            // this group, and case states may have moved here from the
            // group in flight: forget both (the store answers once that
            // group is durable).
            self.chain_heads.clear();
            let _ = self.settle();
            return Group {
                batch: None,
                results,
                heads: self.heads.clone(),
                trust: None,
                policy: Vec::new(),
                revoked: false,
                merges: Vec::new(),
                w: Written::default(),
            };
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
        write_heads(&mut batch, &heads);
        batch.seal();
        self.heads = heads.clone();
        Group { batch: Some(batch), results, heads, trust, policy: new_policy, revoked, merges, w }
    }

    /// One turn of the writer thread: prepares `ops` on top of the group in
    /// flight and hands them over (see [`Writer::hand_off`]).
    fn turn<'s>(&mut self, store: &'s Store, ops: Vec<Op>, replies: Vec<Reply>) -> Option<Commit<'s>> {
        let group = self.prepare_group(store, ops);
        self.hand_off(group, replies)
    }

    /// Waits until the group in flight is durable, then returns `group`
    /// for the commit thread, which answers the callers once it is written.
    /// Answers them here instead when there is nothing to write or the
    /// previous write failed (this group was built on top of it).
    fn hand_off<'s>(&mut self, group: Group<'s>, replies: Vec<Reply>) -> Option<Commit<'s>> {
        let results = match self.settle() {
            Err(e) => failed_write(group.results, &e.to_string()),
            Ok(()) if group.batch.is_none() => group.results,
            Ok(()) => {
                let (done_tx, done_rx) = mpsc::sync_channel(1);
                let batch = group.batch?;
                self.inflight = Some(InFlight {
                    w: group.w,
                    heads: group.heads.clone(),
                    done: done_rx,
                    outcome: None,
                });
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

    /// Waits for the group in flight, if any; after a failed write the
    /// writer goes back to the last durable position.
    fn settle(&mut self) -> Result<()> {
        let Some(mut prev) = self.inflight.take() else { return Ok(()) };
        let result = prev.settle();
        self.written(prev.heads, prev.outcome.unwrap_or(Ok(())));
        result
    }

    /// Notes the outcome of writing the group that ends at `heads`.
    fn written(&mut self, heads: Heads, outcome: std::result::Result<(), String>) {
        match outcome {
            Ok(()) => self.committed = heads,
            Err(_) => {
                self.heads = self.committed.clone();
                self.chain_heads.clear();
                self.inflight = None;
            }
        }
    }

    /// After a write that changed the trust store: re-fold what a
    /// revocation voided.
    fn after_trust_change(&mut self, revoked: bool, policy_added: bool) {
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
    }

    /// Settles crossing merges after a group that merged `cases`.
    fn after_merges(&mut self, cases: &[RecordId]) {
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
            detail: format!(
                "records signed after a revocation cut-off were voided; cases re-evaluated: {}",
                changed.join(", ")
            ),
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

    /// Runs one operation synchronously (init, import, tests).
    pub fn run(&mut self, op: Op) -> Result<Outcome> {
        self.process(vec![op]).pop().unwrap_or(Err(LedgerError::ShuttingDown))
    }

    /// A case's state in this batch: changed earlier in it, changed by the
    /// group in flight (its state as that group writes it), or as stored.
    fn load<'t>(
        &self,
        policy: &PolicySet,
        trust: &Trust,
        touched: &'t mut HashMap<RecordId, Touched>,
        prev: &mut Option<InFlight>,
        case: RecordId,
    ) -> Result<&'t mut Touched> {
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

    fn prepare(&self, policy: &PolicySet, now: u64, p: &mut Pending<'_>, op: Op) -> Result<Outcome> {
        match op {
            Op::File { mut filing, contact, operator } => {
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
                filing.number = format!("{}-{year}-{serial:06}", self.shared.unit);
                let contact_bytes = contact.as_ref().map(|c| c.to_bytes());
                filing.contact = contact_bytes.as_deref().map(BlobHash::of);
                let event = CaseEvent { case: None, parents: vec![], unit: self.shared.unit, operator, action: Action::File(filing), policy: policy.current().version };
                let mut trial = p.heads.clone();
                let record = sign_next(&self.shared.key, &mut trial, now, Body::CaseEvent(event));
                let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
                let state = CaseState::file(policy, p.trust.as_ref().unwrap_or(&p.base_trust), eref).map_err(LedgerError::Rejected)?;
                p.heads = trial;
                p.heads.serials.insert(year, serial);
                p.put_meta(&format!("{}{year}", meta::SERIAL_PREFIX), &serial.to_be_bytes());
                if let (Some(bytes), Some(hash)) = (contact_bytes, state.filing.contact) {
                    p.batch.put_blob(&hash.0, &bytes);
                }
                put_record(p, &record);
                p.batch.index_case_event(&record.id, p.heads.feed_seq, &record.id);
                p.w.touched.insert(record.id, Touched { before: None, state, records: vec![record.clone()] });
                Ok(Outcome::Step(Ack { case: record.id, event: record.id }))
            }
            Op::Act { case, action, operator } => {
                check_operator(&operator)?;
                if matches!(action, Action::File(_)) {
                    return Err(LedgerError::Invalid("use the filing endpoint to file a case".into()));
                }
                self.act(policy, now, p, case, action, operator, None).map(Outcome::Step)
            }
            Op::Attach { case, bytes, name, mime, operator } => {
                check_operator(&operator)?;
                let blob = BlobHash::of(&bytes);
                let action = Action::Attach { blob, name, mime, size: bytes.len() as u64 };
                self.act(policy, now, p, case, action, operator, Some((blob, bytes))).map(Outcome::Step)
            }
            Op::AutoSupervise { case, kind, started_ms, grade, raised, note } => {
                let marker = |g: SuperviseGrade| crate::supervisor::marker(&case, kind, started_ms, g, raised);
                p.settle_if(|f| f.w.meta)?;
                if self.shared.store.meta_get(&marker(grade))?.is_some() {
                    return Err(LedgerError::AlreadyDone);
                }
                let ack = self.act(policy, now, p, case, Action::Supervise { grade, note }, AUTO_OPERATOR.into(), None)?;
                // Lower grades are implied: a clock found far overdue earns
                // its grade at once, not the whole ladder.
                for g in SuperviseGrade::ALL.iter().filter(|g| **g <= grade) {
                    p.put_meta(&marker(*g), &ack.event.0);
                }
                Ok(Outcome::Step(ack))
            }
            Op::AppendOwn { body } => {
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
                let record = sign_next(&self.shared.key, &mut trial, now, body);
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
                    Body::CaseEvent(_) => {}
                }
                Ok(Outcome::Appended(record.id))
            }
            Op::Ingest { records, blobs, cursor } => {
                let mut report = IngestReport::default();
                for (hash, bytes) in blobs {
                    if BlobHash::of(&bytes) == hash && bytes.len() <= 16 * 1024 * 1024 {
                        let new_blob = !self.shared.store.has_blob(&hash.0)?;
                        p.batch.put_blob(&hash.0, &bytes);
                        if new_blob {
                            p.batch.index_late_contact(&hash.0, &bytes)?;
                        }
                    }
                }
                let peer = cursor.map(|c| c.peer);
                let from_child = cursor.is_some_and(|c| c.direction == crate::ledger::DIRECTION_UP);
                // An empty ingest asks for the waiting records to be tried
                // again (at start-up: a store written by a build that did
                // not retry within a batch may hold some whose parents it has).
                let retry = records.is_empty();
                for record in records {
                    if from_child {
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
                Ok(Outcome::Ingested(report))
            }
        }
    }

    fn raise(&self, p: &mut Pending<'_>, alarm: Alarm) {
        tracing::warn!(kind = %alarm.kind, author = %alarm.author, seq = alarm.seq, "integrity alarm: {}", alarm.detail);
        p.heads.alarms += 1;
        p.batch.put_alarm(p.heads.alarms, &alarm);
    }

    /// An ancestor receives every record its subtree authors: each author's
    /// chain must continue where it left off. A gap or a broken link is
    /// raised as an alarm with proof (the record is still stored: it is
    /// validly signed, and the alarm is what people must act on).
    fn check_chain(&self, now: u64, p: &mut Pending<'_>, record: &Record, peer: Option<NodeId>) -> Result<()> {
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
        self.raise(p, Alarm {
            kind: "chain_gap".into(),
            author: record.author.to_string(),
            seq,
            detail,
            proof,
            detected_ms: now,
            peer: peer.map(|k| k.fmt_short()),
        });
        Ok(())
    }

    /// The author's chain head as stored plus this batch (cached per batch).
    fn chain_head(&self, p: &mut Pending<'_>, author: &NodeId) -> Result<Option<(u64, RecordId)>> {
        if let Some(h) = p.chain_heads.get(author) {
            return Ok(*h);
        }
        p.settle_if(|f| f.w.authors.contains(author))?;
        let h = self.shared.store.chain_last(author)?;
        p.chain_heads.insert(*author, h);
        Ok(h)
    }

    /// The record an author's chain holds at `seq`, in this batch or stored.
    fn chain_entry(&self, p: &Pending<'_>, author: &NodeId, seq: u64) -> Result<Option<RecordId>> {
        match p.w.chain_at.get(&(*author, seq)).or_else(|| p.prev.as_ref().and_then(|f| f.w.chain_at.get(&(*author, seq)))) {
            Some(id) => Ok(Some(*id)),
            None => Ok(self.shared.store.chain_entry(author, seq)?),
        }
    }

    fn has(&self, p: &Pending<'_>, id: &RecordId) -> Result<bool> {
        Ok(p.w.added.contains(id) || p.prev.as_ref().is_some_and(|f| f.w.added.contains(id)) || self.shared.store.has_record(id)?)
    }

    fn ingest_one(&self, policy: &PolicySet, now: u64, p: &mut Pending<'_>, record: Record, peer: Option<NodeId>, report: &mut IngestReport) -> Result<()> {
        let id = record.id;
        // Every held record has its (author, seq) chain entry, so a record
        // above its author's head is neither held nor an equivocation: the
        // common case of a catch-up needs no look-up per record.
        let above_head = self.chain_head(p, &record.author)?.is_none_or(|(seq, _)| record.header.seq > seq);
        if p.w.added.contains(&id) || (!above_head && self.has(p, &id)?) {
            report.duplicates += 1;
            return Ok(());
        }
        let peer_name = peer.map(|k| k.fmt_short());
        if record.author == self.shared.key.id() {
            self.raise(p, Alarm {
                kind: "own_record_unknown".into(),
                author: record.author.to_string(),
                seq: record.header.seq,
                detail: "a peer sent a record signed with this node's key that this node does not hold (restored from an old backup, or the key leaked)".into(),
                proof: vec![hex::encode(record.bytes())],
                detected_ms: now,
                peer: peer_name,
            });
            report.rejected.push((id, "record signed with this node's own key".into()));
            return Ok(());
        }
        // Equivocation: the author already has a different record at this seq.
        if !above_head
            && let Some(existing) = self.chain_entry(p, &record.author, record.header.seq)?
            && existing != id
        {
            let mut proof = vec![hex::encode(record.bytes())];
            p.settle_if(|f| f.w.added.contains(&existing))?;
            if let Some(b) = self.shared.store.record_bytes(&existing)? {
                proof.push(hex::encode(b));
            }
            self.raise(p, Alarm {
                kind: "equivocation".into(),
                author: record.author.to_string(),
                seq: record.header.seq,
                detail: format!("two different records with seq {}: {} and {}", record.header.seq, existing.fmt_short(), id.fmt_short()),
                proof,
                detected_ms: now,
                peer: peer_name,
            });
            report.rejected.push((id, "equivocation: the author signed another record with this seq".into()));
            return Ok(());
        }
        // Read the trust store in place; clone it only to change it.
        let trust_now: &Trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let root = trust_now.root();
        let is_root_cert = matches!(&record.body, Body::NodeCert(c) if c.key == c.issuer && c.key == root);
        let division = if is_root_cert {
            None
        } else {
            match trust_now.check_author(&record.author, record.header.seq) {
                Ok(d) => Some(d),
                // A case event signed after its author's cut-off is stored
                // and void: the fold rejects it ("author-revoked") on every
                // node, so events of others that name it still apply the
                // same way everywhere. Anything else from that key is refused.
                Err(TrustError::Revoked { .. }) if matches!(record.body, Body::CaseEvent(_)) => {
                    report.void += 1;
                    trust_now.member(&record.author).map(|m| m.cert.division)
                }
                Err(e) => {
                    report.rejected.push((id, e.to_string()));
                    return Ok(());
                }
            }
        };
        match &record.body {
            Body::NodeCert(_) | Body::Revocation(_) => {
                let mut trust = p.trust.clone().unwrap_or_else(|| (*p.base_trust).clone());
                let added = match &record.body {
                    Body::NodeCert(_) => trust.add_cert(&record),
                    _ => trust.add_revocation(&record),
                };
                if let Err(e) = added {
                    report.rejected.push((id, e.to_string()));
                    return Ok(());
                }
                p.revoked |= matches!(record.body, Body::Revocation(_));
                put_record(p, &record);
                p.batch.index_trust(p.heads.feed_seq, &id);
                p.trust = Some(trust);
            }
            Body::Policy(_) => {
                if record.author != root {
                    report.rejected.push((id, "policies are signed by the city root".into()));
                    return Ok(());
                }
                put_record(p, &record);
                p.batch.index_trust(p.heads.feed_seq, &id);
                if let Body::Policy(policy) = &record.body {
                    p.note_policy(policy);
                }
            }
            Body::Report(r) => {
                if Some(r.unit) != division {
                    report.rejected.push((id, format!("report for unit {} but its author is certified for another", r.unit)));
                    return Ok(());
                }
                put_record(p, &record);
                p.batch.index_report(r.month, r.unit.as_u64(), record.header.seq, &id);
            }
            Body::CaseEvent(event) => {
                if Some(event.unit) != division {
                    report.rejected.push((id, format!("event claims unit {} but its author is certified for another", event.unit)));
                    return Ok(());
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
                    p.settle_if(|f| f.w.pending)?;
                    if self.shared.store.pending_count(MAX_PENDING)? + p.parked.len() >= MAX_PENDING {
                        report.rejected.push((id, "too many records waiting for their parents".into()));
                    } else if !p.parked.iter().any(|r| r.id == id) {
                        p.w.pending = true;
                        p.batch.put_pending(&id, record.bytes());
                        p.released.remove(&id);
                        p.parked.push(record);
                        report.pending += 1;
                    }
                    return Ok(());
                }
                p.heads.clock.observe(record.header.hlc);
                let eref = EventRef { id, author: record.author, seq: record.header.seq, hlc: record.header.hlc, event };
                if event.case.is_none() {
                    let state = CaseState::file(policy, p.trust.as_ref().unwrap_or(&p.base_trust), eref).map_err(LedgerError::Rejected);
                    match state {
                        Ok(state) => {
                            p.w.touched.insert(id, Touched { before: None, state, records: vec![record.clone()] });
                        }
                        Err(e) => {
                            report.rejected.push((id, e.to_string()));
                            return Ok(());
                        }
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
                put_record(p, &record);
                p.batch.index_case_event(&case, p.heads.feed_seq, &id);
            }
        }
        report.applied += 1;
        Ok(())
    }

    /// Applies waiting records whose parents have arrived.
    fn retry_pending(&self, policy: &PolicySet, now: u64, p: &mut Pending<'_>, peer: Option<NodeId>, report: &mut IngestReport) -> Result<()> {
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
                let ready = match &r.body {
                    Body::CaseEvent(e) => {
                        let mut ok = match e.case {
                            Some(c) => self.has(p, &c)?,
                            None => true,
                        };
                        for parent in &e.parents {
                            ok = ok && self.has(p, parent)?;
                        }
                        ok
                    }
                    _ => true,
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

    /// What only the acting node can check before it signs a step, since
    /// it depends on what this node holds now rather than on the case's
    /// events: units named as targets exist (enrolled, not revoked), a
    /// deadline set by hand lies ahead and within the policy's bound, a
    /// merge target is a case this node holds that still takes steps.
    fn check_targets(&self, policy: &Policy, now: u64, p: &Pending<'_>, action: &Action) -> Result<()> {
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
                return rejected(
                    "due-within-bound",
                    format!("a deadline set by hand lies at most {} days ahead (policy max_due_days)", policy.deadlines.max_due_days),
                );
            }
            Ok(())
        };
        match action {
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
                    Some((status, _)) if status.is_final() => {
                        rejected("merge-target-open", format!("the target case is {} and takes no merge (并单 into a case that still takes steps)", status.zh()))
                    }
                    Some(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        policy: &PolicySet,
        now: u64,
        p: &mut Pending<'_>,
        case: RecordId,
        action: Action,
        operator: String,
        blob: Option<(BlobHash, Vec<u8>)>,
    ) -> Result<Ack> {
        let trust = p.trust.as_ref().unwrap_or(&p.base_trust);
        let t = self.load(policy, trust, &mut p.w.touched, &mut p.prev, case)?;
        let event = CaseEvent { case: Some(case), parents: t.state.heads.clone(), unit: self.shared.unit, operator, action, policy: policy.current().version };
        let mut trial = p.heads.clone();
        let record = sign_next(&self.shared.key, &mut trial, now, Body::CaseEvent(event));
        let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
        t.state.check(policy.current(), &eref).map_err(LedgerError::Rejected)?;
        // The rules of the case first, then what only this node can check.
        let action = match &eref.event.action {
            a @ (Action::Route { .. } | Action::Dispatch { .. } | Action::Reroute { .. } | Action::AddHelpers { .. } | Action::Merge { .. }) => Some(a.clone()),
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
            p.batch.put_blob(&hash.0, &bytes);
        }
        put_record(p, &record);
        p.batch.index_case_event(&case, p.heads.feed_seq, &record.id);
        Ok(Ack { case, event: record.id })
    }
}

fn check_operator(operator: &str) -> Result<()> {
    if operator.is_empty() || operator.len() > 64 {
        return Err(LedgerError::Invalid("operator name must be 1 to 64 bytes".into()));
    }
    Ok(())
}

/// Signs `body` as the next record of this node's chain.
fn sign_next(key: &NodeKey, heads: &mut Heads, now: u64, body: Body) -> Record {
    let hlc = heads.clock.tick(now);
    let header = Header { seq: heads.own_seq + 1, prev: heads.own_head, hlc };
    let record = Record::sign(key, header, body);
    heads.own_seq += 1;
    heads.own_head = Some(record.id);
    record
}

fn put_record(p: &mut Pending<'_>, record: &Record) {
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

fn write_heads(batch: &mut Batch<'_>, heads: &Heads) {
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
struct Ctx<'a> {
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
fn index_search(batch: &mut crate::store::Batch<'_>, state: &CaseState, summary: &CaseSummary, new: bool) {
    if new {
        batch.index_words(&summary.id, summary.filed_ms, &format!("{} {}", state.filing.title, state.filing.content));
    }
    batch.index_contact(summary, new);
}

/// Rebuilds every derived column family from the records, in feed order.
pub fn reindex(store: &Store, policy: &PolicySet, trust: &Trust) -> Result<usize> {
    store.clear_derived()?;
    let mut cases: HashMap<RecordId, Vec<(u64, RecordId)>> = HashMap::new();
    let mut order: Vec<RecordId> = Vec::new();
    let mut merged = Vec::new();
    let mut from = 1;
    let mut batch = store.batch();
    loop {
        let chunk = store.feed_records(from, 4096)?;
        let Some(&(last, _, _)) = chunk.last() else { break };
        for (seq, id, bytes) in chunk {
            let record = Record::decode_unverified_owned(bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
            match &record.body {
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
    }
    store.commit(batch)?;
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
    }
    // Folded in feed order, a case saw the merges of cases folded before it
    // only: settle crossing merges (each pass can only reject later ones).
    while fix_crossing_merges(store, policy, trust, &merged)? > 0 {}
    Ok(order.len())
}

struct Job {
    op: Op,
    reply: Reply,
}

type Reply = tokio::sync::oneshot::Sender<Result<Outcome>>;

/// A group handed to the commit thread.
struct Commit<'s> {
    batch: Batch<'s>,
    feed_seq: u64,
    trust: Option<Trust>,
    policy: Vec<Policy>,
    merges: Vec<RecordId>,
    /// A revocation was added: the writer re-folds what it voids.
    revoked: bool,
    replies: Vec<(Reply, Result<Outcome>)>,
    done: mpsc::SyncSender<std::result::Result<(), String>>,
}

impl Commit<'_> {
    /// Writes the group, publishes what it changed, answers its callers,
    /// then tells the writer thread.
    fn run(self, store: &Store, shared: &Shared) {
        let result = store.commit(self.batch).map_err(|e| e.to_string());
        match &result {
            Ok(()) => {
                Group::publish(shared, self.feed_seq, self.trust, self.policy);
                for (reply, r) in self.replies {
                    let _ = reply.send(r);
                }
            }
            Err(msg) => {
                tracing::error!("writing a batch failed: {msg}");
                let (replies, results): (Vec<_>, Vec<_>) = self.replies.into_iter().unzip();
                for (reply, r) in replies.into_iter().zip(failed_write(results, msg)) {
                    let _ = reply.send(r);
                }
            }
        }
        let _ = self.done.send(result);
    }
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::SyncSender<Job>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl Ledger {
    /// Starts the writer thread; [`Ledger::shutdown`] stops it.
    pub fn start(mut writer: Writer) -> Ledger {
        use std::sync::atomic::Ordering;
        let (tx, rx) = mpsc::sync_channel::<Job>(4096);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_flag = stop.clone();
        let spawned = std::thread::Builder::new().name("zongzhi-writer".into()).spawn(move || {
            let store = writer.shared.store.clone();
            let shared = writer.shared.clone();
            std::thread::scope(|scope| {
                // Two stages: this thread checks a group and builds its batch
                // while the commit thread writes the previous group (WAL,
                // fsync, memtables) and then answers its callers. At most one
                // group is in flight; see `InFlight` for how the next group
                // reads what it wrote.
                let (commit_tx, commit_rx) = mpsc::sync_channel::<Commit<'_>>(1);
                let committer = std::thread::Builder::new()
                    .name("zongzhi-commit".into())
                    .spawn_scoped(scope, || {
                        for c in commit_rx {
                            c.run(&store, &shared);
                        }
                    });
                if let Err(e) = committer {
                    tracing::error!("cannot start the commit thread: {e}");
                    return;
                }
                loop {
                    let first = match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) if !stop_flag.load(Ordering::Relaxed) => continue,
                        Err(_) => break,
                    };
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
                    let Some(commit) = writer.turn(&store, ops, replies) else { continue };
                    let policy_added = !commit.policy.is_empty();
                    let merges = commit.merges.clone();
                    let (changes_trust, revoked) = (commit.trust.is_some() || policy_added, commit.revoked);
                    if commit_tx.send(commit).is_err() {
                        break;
                    }
                    // The next group reads the trust store and policy as
                    // published: wait until this one's are.
                    if changes_trust && writer.settle().is_ok() {
                        writer.after_trust_change(revoked, policy_added);
                    }
                    if !merges.is_empty() && writer.settle().is_ok() {
                        writer.after_merges(&merges);
                    }
                }
                drop(commit_tx);
                let _ = writer.settle();
            });
            // Dropping the writer here releases its handle on the store.
        });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("cannot start the writer thread: {e}");
                None
            }
        };
        Ledger { tx, stop, thread: Arc::new(std::sync::Mutex::new(thread)) }
    }

    /// Finishes the batch in progress, stops the writer thread and waits for it.
    pub fn shutdown(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let handle = match self.thread.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Submits an operation and waits until it is durably written (or refused).
    pub async fn submit(&self, op: Op) -> Result<Outcome> {
        self.enqueue(op).await?.await.map_err(|_| LedgerError::ShuttingDown)?
    }

    /// Queues an operation and returns once it is queued (operations run in
    /// the order they were queued); the receiver yields its outcome. Lets a
    /// caller queue the next batch while the previous one is being written,
    /// so one fsync can cover both.
    pub async fn enqueue(&self, op: Op) -> Result<tokio::sync::oneshot::Receiver<Result<Outcome>>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { op, reply }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(LedgerError::ShuttingDown),
            Err(mpsc::TrySendError::Full(job)) => {
                // The queue is full: wait for room off the async threads.
                let tx = self.tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(job).is_ok()).await;
                if !matches!(sent, Ok(true)) {
                    return Err(LedgerError::ShuttingDown);
                }
            }
        }
        Ok(rx)
    }

    /// Submits a workflow step.
    pub async fn step(&self, op: Op) -> Result<Ack> {
        match self.submit(op).await? {
            Outcome::Step(ack) => Ok(ack),
            other => Err(LedgerError::Invalid(format!("unexpected outcome {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::context::now_ms;
    use crate::config::Config;
    use zongzhi_protocol::case::{Channel, Complexity, Place, RequestType, Urgency};

    /// A city node's writer on a fresh directory, its store and shared state.
    fn city() -> (tempfile::TempDir, Writer, Arc<Store>, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let cfg: Config =
            toml::from_str(&format!("data_dir = {:?}\ndivision = \"330100000000\"\nname = \"示例市\"\n", dir.path().join("data"))).unwrap();
        crate::node::init(&cfg).unwrap();
        let key = Arc::new(crate::node::load_key(&cfg).unwrap());
        let store = crate::node::open_store(&cfg, &key).unwrap();
        let shared = crate::node::shared_state(&cfg, store.clone(), key).unwrap();
        (dir, Writer::new(shared.clone()).unwrap(), store, shared)
    }

    /// The case a handed-over group's first operation filed or acted on.
    fn case_of(c: &Commit<'_>) -> RecordId {
        match &c.replies[0].1 {
            Ok(Outcome::Step(ack)) => ack.case,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn file() -> Op {
        Op::File { filing: Box::new(filing(String::new())), contact: None, operator: "op".into() }
    }

    fn filing(number: String) -> Filing {
        Filing {
            number,
            title: "噪音扰民".into(),
            content: "楼上夜间装修".into(),
            category: "0202".into(),
            request_type: RequestType::Complaint,
            channel: Channel::Phone,
            urgency: Urgency::Normal,
            complexity: Complexity::General,
            place: Place::default(),
            occurred_at_ms: None,
            received_at_ms: now_ms(),
            people_involved: 1,
            amount_fen: None,
            contact: None,
        }
    }

    fn act(case: RecordId, action: Action) -> Op {
        Op::Act { case, action, operator: "op".into() }
    }

    /// Reply channels for `n` operations.
    fn replies(n: usize) -> (Vec<Reply>, Vec<tokio::sync::oneshot::Receiver<Result<Outcome>>>) {
        (0..n).map(|_| tokio::sync::oneshot::channel()).unzip()
    }

    fn stepped(rx: tokio::sync::oneshot::Receiver<Result<Outcome>>) -> Result<Ack> {
        match rx.blocking_recv().expect("answered")? {
            Outcome::Step(ack) => Ok(ack),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// What a restart would check: the own chain ends where meta says, and
    /// every stored summary is the fold of the case's stored records.
    fn consistent(w: &Writer) {
        let shared = w.shared.clone();
        Writer::new(shared.clone()).expect("a restart finds the chain and meta in agreement");
        let store = &shared.store;
        let chain = store.author_chain(&shared.key.id()).unwrap();
        assert!(chain.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64 + 1), "own chain has no gap");
        let mut summaries = Vec::new();
        store
            .all_summaries(|s| {
                summaries.push(s);
                true
            })
            .unwrap();
        for s in summaries {
            let state = fold_records(store, &shared.policies(), &shared.trust(), &load_case_records(store, &s.id).unwrap()).unwrap();
            assert_eq!(s, CaseSummary::of(&state));
        }
    }

    #[test]
    fn a_group_prepared_while_the_previous_is_written_sees_its_changes() {
        let (_dir, mut w, store, shared) = city();
        let (r, mut rx) = replies(1);
        let c1 = w.turn(&store, vec![file()], r).expect("something to write");
        let case = case_of(&c1);
        // Prepared on top of the filing before it is written: the case, its
        // records and the own chain head come from the group in flight.
        let g2 = w.prepare_group(&store, vec![act(case, Action::SignFor)]);
        assert!(g2.results.iter().all(|r| r.is_ok()), "{:?}", g2.results);
        assert!(w.inflight.as_ref().is_some_and(|f| !f.settled()), "prepared without waiting for the write");
        c1.run(&store, &shared);
        stepped(rx.remove(0)).unwrap();
        let (r, mut rx) = replies(1);
        let c2 = w.hand_off(g2, r).expect("something to write");
        let g3 = w.prepare_group(&store, vec![act(case, Action::Route { window: "justice".into(), requirements: String::new(), due_ms: None })]);
        c2.run(&store, &shared);
        stepped(rx.remove(0)).unwrap();
        let (r, mut rx) = replies(1);
        w.hand_off(g3, r).expect("something to write").run(&store, &shared);
        stepped(rx.remove(0)).unwrap();
        w.settle().unwrap();
        let summary = store.case_summary(&case).unwrap().unwrap();
        assert_eq!(summary.events, 3);
        assert_eq!(summary.status, zongzhi_protocol::workflow::Status::Handling);
        assert_eq!(*shared.feed.borrow(), store.feed_len().unwrap());
        consistent(&w);
    }

    #[test]
    fn a_failed_write_fails_the_group_built_on_it_and_the_writer_resumes_from_what_is_durable() {
        let (_dir, mut w, store, shared) = city();
        let feed_before = store.feed_len().unwrap();
        let (r, _rx) = replies(1);
        let c1 = w.turn(&store, vec![file()], r).expect("something to write");
        let case = case_of(&c1);
        let g2 = w.prepare_group(&store, vec![act(case, Action::SignFor), file()]);
        assert!(g2.results.iter().all(|r| r.is_ok()));
        // The commit thread's write fails (disk full): nothing of it is stored.
        let Commit { done, .. } = c1;
        done.send(Err("no space left on device".into())).unwrap();
        let (r, mut rx) = replies(2);
        assert!(w.hand_off(g2, r).is_none(), "nothing built on a failed write is written");
        for rx in rx.drain(..) {
            let err = stepped(rx).unwrap_err().to_string();
            assert!(err.contains("write failed") && err.contains("no space left"), "{err}");
        }
        assert_eq!(store.feed_len().unwrap(), feed_before);
        assert!(store.case_summary(&case).unwrap().is_none());
        // The next group starts from the durable position again.
        let (r, mut rx) = replies(1);
        w.turn(&store, vec![file()], r).expect("something to write").run(&store, &shared);
        let ack = stepped(rx.remove(0)).unwrap();
        w.settle().unwrap();
        assert_eq!(store.feed_len().unwrap(), feed_before + 1);
        assert!(store.case_summary(&ack.case).unwrap().is_some());
        let (r, mut rx) = replies(1);
        w.turn(&store, vec![act(ack.case, Action::SignFor)], r).expect("something to write").run(&store, &shared);
        stepped(rx.remove(0)).unwrap();
        w.settle().unwrap();
        consistent(&w);
    }

    #[test]
    fn received_records_build_on_a_group_still_being_written() {
        use zongzhi_protocol::cert::NodeCert;
        use zongzhi_protocol::division::Level;
        let (_dir, mut w, store, shared) = city();
        // A county the city certifies; it sends a filing, then a sign-for
        // naming the filing, in two batches.
        let county = NodeKey::from_seed([5; 32]);
        let division: DivisionCode = "330106000000".parse().unwrap();
        let now = now_ms();
        let cert = NodeCert {
            key: county.id(),
            division,
            level: Level::County,
            name: "西湖区社会治安综合治理中心".into(),
            issuer: shared.key.id(),
            not_before_ms: now - 3_600_000,
            not_after_ms: now + 86_400_000,
            serial: 2,
        };
        w.run(Op::AppendOwn { body: Body::NodeCert(cert) }).unwrap();
        let sign = |seq: u64, prev: Option<RecordId>, case: Option<RecordId>, action: Action| {
            let event = CaseEvent { case, parents: case.into_iter().collect(), unit: division, operator: "op".into(), action, policy: 1 };
            Record::sign(&county, Header { seq, prev, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event))
        };
        let filed = sign(1, None, None, Action::File(Box::new(filing(format!("{division}-2026-000001")))));
        let signed_for = sign(2, Some(filed.id), Some(filed.id), Action::SignFor);
        let ingest = |records: Vec<Record>, upto: u64| Op::Ingest {
            records,
            blobs: vec![],
            cursor: Some(Cursor { peer: county.id(), direction: DIRECTION_UP, epoch: [1; 16], upto }),
        };
        let ingested = |r: &Result<Outcome>| match r {
            Ok(Outcome::Ingested(report)) => report.clone(),
            other => panic!("unexpected {other:?}"),
        };
        let (r, _rx) = replies(1);
        let c1 = w.turn(&store, vec![ingest(vec![filed.clone()], 1)], r).expect("something to write");
        // While the filing is being written: its parent is known, the chain
        // continues (no gap alarm), nothing waits.
        let g2 = w.prepare_group(&store, vec![ingest(vec![signed_for.clone()], 2)]);
        let report = ingested(&g2.results[0]);
        assert_eq!((report.applied, report.pending, report.rejected.len(), report.missing.len()), (1, 0, 0, 0), "{report:?}");
        c1.run(&store, &shared);
        let (r, _rx) = replies(1);
        let c2 = w.hand_off(g2, r).expect("something to write");
        // The same record again while the sign-for is being written: a duplicate.
        let g3 = w.prepare_group(&store, vec![ingest(vec![signed_for], 2)]);
        assert_eq!(ingested(&g3.results[0]).duplicates, 1);
        c2.run(&store, &shared);
        let (r, _rx) = replies(1);
        w.hand_off(g3, r).expect("the cursor is written").run(&store, &shared);
        w.settle().unwrap();
        assert_eq!(store.alarm_count().unwrap(), 0, "no chain gap or equivocation raised");
        let summary = store.case_summary(&filed.id).unwrap().unwrap();
        assert_eq!((summary.events, summary.status), (2, zongzhi_protocol::workflow::Status::Accepted));
        assert_eq!(store.author_chain(&county.id()).unwrap().len(), 2);
        consistent(&w);
    }

    /// A step that arrives before its parent in the same group (as a 督办
    /// sent ahead of the dispatch that brings its case down) waits, and is
    /// applied when the parent lands later in that group, whether in the
    /// same ingest or in a later one of the group.
    #[test]
    fn a_step_parked_in_a_group_is_applied_when_its_parent_lands_in_that_group() {
        use zongzhi_protocol::cert::NodeCert;
        use zongzhi_protocol::division::Level;
        let (_dir, mut w, store, shared) = city();
        let county = NodeKey::from_seed([6; 32]);
        let division: DivisionCode = "330106000000".parse().unwrap();
        let now = now_ms();
        let cert = NodeCert {
            key: county.id(),
            division,
            level: Level::County,
            name: "西湖区社会治安综合治理中心".into(),
            issuer: shared.key.id(),
            not_before_ms: now - 3_600_000,
            not_after_ms: now + 86_400_000,
            serial: 2,
        };
        w.run(Op::AppendOwn { body: Body::NodeCert(cert) }).unwrap();
        let sign = |seq: u64, prev: Option<RecordId>, case: Option<RecordId>, action: Action| {
            let event = CaseEvent { case, parents: case.into_iter().collect(), unit: division, operator: "op".into(), action, policy: 1 };
            Record::sign(&county, Header { seq, prev, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event))
        };
        let ingest = |records: Vec<Record>| Op::Ingest { records, blobs: vec![], cursor: None };
        let mut last: Option<RecordId> = None;
        for (n, split) in [(1u32, false), (2, true)] {
            let filed = sign(2 * n as u64 - 1, last, None, Action::File(Box::new(filing(format!("{division}-2026-00000{n}")))));
            let signed_for = sign(2 * n as u64, Some(filed.id), Some(filed.id), Action::SignFor);
            last = Some(signed_for.id);
            let ops = if split {
                vec![ingest(vec![signed_for.clone()]), ingest(vec![filed.clone()])]
            } else {
                vec![ingest(vec![signed_for.clone(), filed.clone()])]
            };
            let (r, _rx) = replies(ops.len());
            w.turn(&store, ops, r).expect("something to write").run(&store, &shared);
            w.settle().unwrap();
            let summary = store.case_summary(&filed.id).unwrap().unwrap();
            assert_eq!((summary.events, summary.status), (2, zongzhi_protocol::workflow::Status::Accepted), "split: {split}");
            assert_eq!(store.pending_count(10).unwrap(), 0, "nothing left waiting (split: {split})");
        }
        consistent(&w);
    }

    /// A complainant's contact that arrives in a later batch than the case's
    /// events still files the case under the phone number.
    #[test]
    fn a_contact_arriving_after_its_case_is_searchable_by_phone() {
        use zongzhi_protocol::case::Contact;
        use zongzhi_protocol::cert::NodeCert;
        use zongzhi_protocol::division::Level;
        let (_dir, mut w, store, shared) = city();
        let county = NodeKey::from_seed([7; 32]);
        let division: DivisionCode = "330106000000".parse().unwrap();
        let now = now_ms();
        let cert = NodeCert {
            key: county.id(),
            division,
            level: Level::County,
            name: "西湖区社会治安综合治理中心".into(),
            issuer: shared.key.id(),
            not_before_ms: now - 3_600_000,
            not_after_ms: now + 86_400_000,
            serial: 2,
        };
        w.run(Op::AppendOwn { body: Body::NodeCert(cert) }).unwrap();
        let contact = Contact { name: "王芳".into(), phone: "13812345678".into(), id_number: String::new(), address: String::new() };
        let bytes = contact.to_bytes();
        let hash = BlobHash::of(&bytes);
        let mut f = filing(format!("{division}-2026-000001"));
        f.contact = Some(hash);
        let event = CaseEvent { case: None, parents: vec![], unit: division, operator: "op".into(), action: Action::File(Box::new(f)), policy: 1 };
        let filed = Record::sign(&county, Header { seq: 1, prev: None, hlc: Hlc { wall_ms: now_ms(), counter: 0 } }, Body::CaseEvent(event));
        let phone = |store: &Store| crate::search::search(store, "138-1234-5678", true, 10, None).unwrap().cases.len();
        w.run(Op::Ingest { records: vec![filed], blobs: vec![], cursor: None }).unwrap();
        assert_eq!(phone(&store), 0, "the contact is not held yet");
        w.run(Op::Ingest { records: vec![], blobs: vec![(hash, bytes.clone())], cursor: None }).unwrap();
        assert_eq!(phone(&store), 1, "filed under the phone once the contact arrives");
        // The same blob again files nothing twice.
        w.run(Op::Ingest { records: vec![], blobs: vec![(hash, bytes)], cursor: None }).unwrap();
        assert_eq!(phone(&store), 1);
        consistent(&w);
    }
}
