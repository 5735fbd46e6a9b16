//! At most a few password hashes at once. An argon2id hash takes about
//! 19 MiB and tens of milliseconds of one core: 64 parallel logins used to
//! take a node from 78 to 808 MiB. Every hash the API computes (login,
//! password changes, new accounts) runs through [`HashGate::run`]: on a
//! blocking thread (never an executor thread), holding one of `permits`;
//! at most `queue` more wait, and beyond that the request is answered 503
//! `busy` without hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct HashGate {
    permits: usize,
    queue: usize,
    semaphore: Arc<Semaphore>,
    waiting: AtomicUsize,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    hashed: Arc<AtomicU64>,
    busy: AtomicU64,
}

/// Why a hash did not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("password hashing task failed: {0}")]
    Task(String),
}

/// The gate's counters, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateStats {
    pub permits: usize,
    pub active: usize,
    pub peak: usize,
    pub waiting: usize,
    pub hashed: u64,
    pub busy: u64,
}

/// Leaves the queue however the wait ends (a dropped request included).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HashGate {
    pub fn new(permits: usize, queue: usize) -> HashGate {
        let permits = permits.max(1);
        HashGate {
            permits,
            queue,
            semaphore: Arc::new(Semaphore::new(permits)),
            waiting: AtomicUsize::new(0),
            active: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            hashed: Arc::new(AtomicU64::new(0)),
            busy: AtomicU64::new(0),
        }
    }

    /// Runs `f` (which hashes) on a blocking thread holding a permit; the
    /// permit is held until `f` returns, even if the caller goes away.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, GateError> {
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    self.busy.fetch_add(1, Ordering::Relaxed);
                    return Err(GateError::Busy);
                }
                let _waiting = Waiting(&self.waiting);
                self.semaphore.clone().acquire_owned().await.map_err(|e| GateError::Task(e.to_string()))?
            }
        };
        let (active, peak, hashed) = (self.active.clone(), self.peak.clone(), self.hashed.clone());
        tokio::task::spawn_blocking(move || {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            active.fetch_sub(1, Ordering::SeqCst);
            hashed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            out
        })
        .await
        .map_err(|e| GateError::Task(e.to_string()))
    }

    pub fn stats(&self) -> GateStats {
        GateStats {
            permits: self.permits,
            active: self.active.load(Ordering::SeqCst),
            peak: self.peak.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::Relaxed),
            hashed: self.hashed.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_the_permits_and_a_bounded_queue() {
        let gate = Arc::new(HashGate::new(2, 5));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.run(|| std::thread::sleep(std::time::Duration::from_millis(30))).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        let s = gate.stats();
        assert_eq!(s.peak, 2);
        assert_eq!((s.hashed, s.busy), (ok, 20 - ok));
        assert!(ok >= 7, "{ok} ran: 2 at once and 5 waiting at least");
        assert_eq!((s.active, s.waiting), (0, 0));
    }
}
