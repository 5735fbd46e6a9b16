//! The commit thread and the [`Ledger`] handle the API and the network use.

use std::sync::Arc;
use std::sync::mpsc;

use zongzhi_protocol::trust::Trust;
use zongzhi_protocol::{Policy, RecordId};

use crate::store::{Batch, Store};

use super::*;

pub(super) struct Job {
    pub(super) op: Op,
    pub(super) reply: Reply,
}

pub(super) type Reply = tokio::sync::oneshot::Sender<Result<Outcome>>;

/// A group handed to the commit thread.
pub(super) struct Commit<'s> {
    pub(super) batch: Batch<'s>,
    pub(super) feed_seq: u64,
    pub(super) trust: Option<Trust>,
    pub(super) policy: Vec<Policy>,
    pub(super) merges: Vec<RecordId>,
    /// A revocation was added: the writer re-folds what it voids.
    pub(super) revoked: bool,
    pub(super) replies: Vec<(Reply, Result<Outcome>)>,
    pub(super) done: mpsc::SyncSender<std::result::Result<(), String>>,
}

impl Commit<'_> {
    /// Writes the group, publishes what it changed, answers its callers,
    /// then tells the writer thread.
    pub(super) fn run(self, store: &Store, shared: &Context) {
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

/// Answers callers whose group's write ended with `settled`.
fn answer(replies: Vec<(Reply, Result<Outcome>)>, settled: Result<()>) {
    let (replies, results): (Vec<_>, Vec<_>) = replies.into_iter().unzip();
    let results = match settled {
        Ok(()) => results,
        Err(LedgerError::WriteFailed(msg)) => failed_write(results, &msg),
        Err(e) => failed_write(results, &e.to_string()),
    };
    for (reply, r) in replies.into_iter().zip(results) {
        let _ = reply.send(r);
    }
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Ledger {
    pub(super) tx: mpsc::SyncSender<Job>,
    pub(super) stop: Arc<std::sync::atomic::AtomicBool>,
    pub(super) thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
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
                // Two stages: this thread builds a group's batch while the commit
                // thread writes the previous one (WAL, fsync, memtables) and answers
                // its callers. At most one group is in flight (`InFlight`: how the
                // next reads what it wrote; one that ended is settled at once).
                let (commit_tx, commit_rx) = mpsc::sync_channel::<Commit<'_>>(1);
                let committer = std::thread::Builder::new().name("zongzhi-commit".into()).spawn_scoped(scope, || {
                    for c in commit_rx {
                        c.run(&store, &shared);
                    }
                });
                if let Err(e) = committer {
                    tracing::error!("cannot start the commit thread: {e}");
                    return;
                }
                loop {
                    writer.settle_if_done();
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
                    let Some(mut commit) = writer.turn(&store, ops, replies) else { continue };
                    let policy_added = !commit.policy.is_empty();
                    let merges = commit.merges.clone();
                    let (changes_trust, revoked) = (commit.trust.is_some() || policy_added, commit.revoked);
                    // A group with work after its write (re-folds after a
                    // trust change, crossing merges) is answered once that
                    // work is done, so a 2xx for a revocation means the
                    // records it voids are voided.
                    let after_work = changes_trust || !merges.is_empty();
                    let deferred = if after_work { std::mem::take(&mut commit.replies) } else { Vec::new() };
                    if commit_tx.send(commit).is_err() {
                        break;
                    }
                    if after_work {
                        // The next group reads the trust store and policy as
                        // published: wait until this one's are.
                        let settled = writer.settle();
                        if settled.is_ok() {
                            if changes_trust {
                                writer.after_trust_change(revoked, policy_added);
                            }
                            writer.after_merges(&merges);
                        }
                        answer(deferred, settled);
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

    /// The writer thread runs (liveness, `GET /api/health/live`): false
    /// once it has ended, by a panic or [`Ledger::shutdown`].
    pub fn writer_alive(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
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
