//! The append path: every change this node makes is signed here, checked
//! against the case rules, and written in one synced batch together with the
//! derived state it implies, before anyone is told it happened.
//!
//! One writer thread owns the author chain head, the feed counter and the
//! hybrid clock. Requests that arrive while a batch is being written are
//! grouped into the next batch (group commit): one fsync acknowledges many
//! steps, and a step is acknowledged only after its fsync.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use zongzhi_protocol::case::Contact;
use zongzhi_protocol::policy::china_date;
use zongzhi_protocol::workflow::{fold, EventRef, FoldError, Rejection};
use zongzhi_protocol::{
    Action, Body, CaseEvent, CaseState, DivisionCode, Filing, Header, Hlc, HlcClock, NodeKey, Policy, Record,
    RecordId,
};

use crate::store::{meta, Store, StoreError};
use crate::summary::CaseSummary;

/// Most steps written in one batch.
const MAX_GROUP: usize = 512;

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
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// A change requested by an operator.
#[derive(Debug)]
pub enum Op {
    /// File a new case. `filing.number` and `filing.contact` are assigned here.
    File { filing: Box<Filing>, contact: Option<Contact>, operator: String },
    /// A workflow step on an existing case.
    Act { case: RecordId, action: Action, operator: String },
    /// Store an attachment blob and record it on the case.
    Attach { case: RecordId, bytes: Vec<u8>, name: String, mime: String, operator: String },
}

/// What an acknowledged step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub case: RecordId,
    pub event: RecordId,
}

/// The node's own position: chain head, feed counter, clock.
#[derive(Debug, Clone)]
struct Heads {
    feed_seq: u64,
    own_seq: u64,
    own_head: Option<RecordId>,
    clock: HlcClock,
    serials: HashMap<i16, u64>,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Signs and stores records; used directly (init, tools) or from the writer thread.
pub struct Writer {
    store: Arc<Store>,
    key: Arc<NodeKey>,
    unit: DivisionCode,
    policy: Arc<RwLock<Arc<Policy>>>,
    heads: Heads,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("unit", &self.unit).field("heads", &self.heads).finish()
    }
}

/// A case being changed within one batch.
struct Touched {
    before: Option<CaseSummary>,
    state: CaseState,
}

impl Writer {
    pub fn new(store: Arc<Store>, key: Arc<NodeKey>, unit: DivisionCode, policy: Arc<RwLock<Arc<Policy>>>) -> Result<Writer> {
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
        let chain = store.author_chain(&key.id())?;
        if chain.last().map(|(s, id)| (*s, Some(*id))).unwrap_or((0, None)) != (own_seq, own_head) {
            return Err(LedgerError::Integrity(format!(
                "own author chain ends at seq {} but meta records seq {own_seq}",
                chain.last().map(|(s, _)| *s).unwrap_or(0)
            )));
        }
        Ok(Writer {
            store,
            key,
            unit,
            policy,
            heads: Heads { feed_seq, own_seq, own_head, clock, serials: HashMap::new() },
        })
    }

    fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Appends a non-case record authored by this node (certs, policies).
    pub fn append_own(&mut self, body: Body) -> Result<RecordId> {
        let mut batch = self.store.batch();
        let mut heads = self.heads.clone();
        let record = sign_next(&self.key, &mut heads, now_ms(), body);
        put_own(&mut batch, &mut heads, &record);
        write_heads(&mut batch, &heads);
        self.store.commit(batch)?;
        self.heads = heads;
        Ok(record.id)
    }

    /// Processes a group of operations: all accepted ones in one synced
    /// batch. Returns one result per operation, in order.
    pub fn process(&mut self, ops: Vec<Op>) -> Vec<Result<Ack>> {
        let policy = self.policy();
        let now = now_ms();
        let mut batch = self.store.batch();
        let mut heads = self.heads.clone();
        let mut touched: HashMap<RecordId, Touched> = HashMap::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = self.prepare(&policy, now, &mut batch, &mut heads, &mut touched, op);
            results.push(r);
        }
        if results.iter().all(|r| r.is_err()) {
            return results;
        }
        for t in touched.values() {
            batch.put_summary(t.before.as_ref(), &CaseSummary::of(&t.state));
        }
        write_heads(&mut batch, &heads);
        match self.store.commit(batch) {
            Ok(()) => {
                self.heads = heads;
                results
            }
            Err(e) => {
                let msg = e.to_string();
                results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(LedgerError::Invalid(format!("write failed: {msg}")))))
                    .collect()
            }
        }
    }

    fn load<'t>(&self, policy: &Policy, touched: &'t mut HashMap<RecordId, Touched>, case: RecordId) -> Result<&'t mut Touched> {
        if let std::collections::hash_map::Entry::Vacant(e) = touched.entry(case) {
            let Some(before) = self.store.case_summary(&case)? else {
                return Err(LedgerError::NoSuchCase(case.to_string()));
            };
            let records = load_case_records(&self.store, &case)?;
            let state = fold_records(policy, &records)?;
            e.insert(Touched { before: Some(before), state });
        }
        touched.get_mut(&case).ok_or_else(|| LedgerError::NoSuchCase(case.to_string()))
    }

    fn prepare(
        &self,
        policy: &Policy,
        now: u64,
        batch: &mut crate::store::Batch<'_>,
        heads: &mut Heads,
        touched: &mut HashMap<RecordId, Touched>,
        op: Op,
    ) -> Result<Ack> {
        match op {
            Op::File { mut filing, contact, operator } => {
                check_operator(&operator)?;
                let year = china_date(now).map_err(|e| LedgerError::Invalid(e.to_string()))?.year();
                let serial = match heads.serials.get(&year) {
                    Some(s) => *s,
                    None => self.store.meta_u64(&format!("{}{year}", meta::SERIAL_PREFIX))?.unwrap_or(0),
                } + 1;
                filing.number = format!("{}-{year}-{serial:06}", self.unit);
                let contact_bytes = contact.as_ref().map(|c| c.to_bytes());
                filing.contact = contact_bytes.as_deref().map(zongzhi_protocol::BlobHash::of);
                let event = CaseEvent { case: None, parents: vec![], unit: self.unit, operator, action: Action::File(filing) };
                let mut trial = heads.clone();
                let record = sign_next(&self.key, &mut trial, now, Body::CaseEvent(event));
                let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
                let state = CaseState::file(policy, eref).map_err(LedgerError::Rejected)?;
                *heads = trial;
                heads.serials.insert(year, serial);
                batch.put_meta(&format!("{}{year}", meta::SERIAL_PREFIX), &serial.to_be_bytes());
                if let (Some(bytes), Some(hash)) = (contact_bytes, state.filing.contact) {
                    batch.put_blob(&hash.0, &bytes);
                }
                put_own(batch, heads, &record);
                batch.index_case_event(&record.id, heads.feed_seq, &record.id);
                touched.insert(record.id, Touched { before: None, state });
                Ok(Ack { case: record.id, event: record.id })
            }
            Op::Act { case, action, operator } => {
                check_operator(&operator)?;
                if matches!(action, Action::File(_)) {
                    return Err(LedgerError::Invalid("use the filing endpoint to file a case".into()));
                }
                if let Action::Merge { into } = &action
                    && !touched.contains_key(into) && self.store.case_summary(into)?.is_none() {
                        return Err(LedgerError::NoSuchCase(into.to_string()));
                    }
                self.act(policy, now, batch, heads, touched, case, action, operator, None)
            }
            Op::Attach { case, bytes, name, mime, operator } => {
                check_operator(&operator)?;
                let blob = zongzhi_protocol::BlobHash::of(&bytes);
                let action = Action::Attach { blob, name, mime, size: bytes.len() as u64 };
                self.act(policy, now, batch, heads, touched, case, action, operator, Some((blob, bytes)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        policy: &Policy,
        now: u64,
        batch: &mut crate::store::Batch<'_>,
        heads: &mut Heads,
        touched: &mut HashMap<RecordId, Touched>,
        case: RecordId,
        action: Action,
        operator: String,
        blob: Option<(zongzhi_protocol::BlobHash, Vec<u8>)>,
    ) -> Result<Ack> {
        let t = self.load(policy, touched, case)?;
        let event = CaseEvent { case: Some(case), parents: t.state.heads.clone(), unit: self.unit, operator, action };
        let mut trial = heads.clone();
        let record = sign_next(&self.key, &mut trial, now, Body::CaseEvent(event));
        let eref = EventRef::from_record(&record).ok_or_else(|| LedgerError::Invalid("not a case event".into()))?;
        t.state.check(policy, &eref).map_err(LedgerError::Rejected)?;
        t.state.apply(policy, eref);
        *heads = trial;
        if let Some((hash, bytes)) = blob {
            batch.put_blob(&hash.0, &bytes);
        }
        put_own(batch, heads, &record);
        batch.index_case_event(&case, heads.feed_seq, &record.id);
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

fn put_own(batch: &mut crate::store::Batch<'_>, heads: &mut Heads, record: &Record) {
    heads.feed_seq += 1;
    batch.put_record(&record.id, record.bytes(), heads.feed_seq, &record.author, record.header.seq);
}

fn write_heads(batch: &mut crate::store::Batch<'_>, heads: &Heads) {
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
    let ids = store.case_events(case)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let bytes = store.record_bytes(&id)?.ok_or_else(|| LedgerError::Integrity(format!("record {id} is indexed but missing")))?;
        let mut record = Record::decode_unverified(&bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
        // Known by the id it is stored and referenced under (see `integrity`).
        record.id = id;
        out.push(record);
    }
    Ok(out)
}

pub fn fold_records(policy: &Policy, records: &[Record]) -> Result<CaseState> {
    let refs: Vec<EventRef<'_>> = records.iter().filter_map(EventRef::from_record).collect();
    fold(policy, &refs).map_err(|e: FoldError| LedgerError::Integrity(e.to_string()))
}

/// Rebuilds every derived column family from the records, in feed order.
pub fn reindex(store: &Store, policy: &Policy) -> Result<usize> {
    store.clear_derived()?;
    let mut cases: HashMap<RecordId, Vec<(u64, RecordId)>> = HashMap::new();
    let mut order: Vec<RecordId> = Vec::new();
    let mut from = 1;
    loop {
        let chunk = store.feed_range(from, 4096)?;
        let Some(&(last, _)) = chunk.last() else { break };
        for (seq, id) in chunk {
            let bytes = store.record_bytes(&id)?.ok_or_else(|| LedgerError::Integrity(format!("feed entry {seq} points to missing record {id}")))?;
            let record = Record::decode_unverified(&bytes).map_err(|e| LedgerError::Integrity(format!("record {id}: {e}")))?;
            if let Some(ev) = record.case_event() {
                let case = ev.case_id(record.id);
                let entry = cases.entry(case).or_default();
                if entry.is_empty() {
                    order.push(case);
                }
                entry.push((seq, id));
            }
        }
        from = last + 1;
    }
    for chunk in order.chunks(1000) {
        let mut batch = store.batch();
        for case in chunk {
            let events = &cases[case];
            for (seq, id) in events {
                batch.index_case_event(case, *seq, id);
            }
            let mut records = Vec::with_capacity(events.len());
            for (_, id) in events {
                let bytes = store.record_bytes(id)?.ok_or_else(|| LedgerError::Integrity(format!("missing record {id}")))?;
                records.push(Record::decode_unverified(&bytes).map_err(|e| LedgerError::Integrity(e.to_string()))?);
            }
            let state = fold_records(policy, &records)?;
            batch.put_summary(None, &CaseSummary::of(&state));
        }
        store.commit(batch)?;
    }
    Ok(order.len())
}

struct Job {
    op: Op,
    reply: tokio::sync::oneshot::Sender<Result<Ack>>,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::SyncSender<Job>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl Ledger {
    /// Starts the writer thread. It stops when every `Ledger` handle is dropped.
    pub fn start(mut writer: Writer) -> Ledger {
        let (tx, rx) = mpsc::sync_channel::<Job>(4096);
        let spawned = std::thread::Builder::new().name("zongzhi-writer".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
                for (reply, result) in replies.into_iter().zip(writer.process(ops)) {
                    let _ = reply.send(result);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the writer thread: {e}");
        }
        Ledger { tx }
    }

    /// Submits an operation and waits until it is durably written (or refused).
    pub async fn submit(&self, op: Op) -> Result<Ack> {
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
        rx.await.map_err(|_| LedgerError::ShuttingDown)?
    }
}
