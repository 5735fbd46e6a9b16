//! Where a node's time comes from. The writer and the workers take "now"
//! from the node's [`Clock`] rather than from the operating system, so the
//! simulator can run a whole tree on one simulated clock (deadlines pass,
//! supervision falls due) while the binary runs on the system clock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use std::sync::Arc;

/// The operating system's clock, shifted by `clock_offset_secs`: the one
/// place node code reads the wall clock ([`Clock::System`]).
pub fn now_ms() -> u64 {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (real + CLOCK_OFFSET_MS.load(Ordering::Relaxed)).max(0) as u64
}

/// See `Config::clock_offset_secs`.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts [`now_ms`] for this process (tests and drills; set once at start).
pub fn set_clock_offset_ms(offset: i64) {
    CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
}

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock, shifted by `clock_offset_secs` in drills
    /// ([`now_ms`]).
    #[default]
    System,
    /// A clock that moves only when told (simulations).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock reading `start_ms`.
    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward (the system clock moves on its own).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_manual_clock_moves_when_told_and_is_shared_by_its_clones() {
        let c = super::Clock::manual(1_000);
        let d = c.clone();
        c.advance(500);
        assert_eq!((c.now_ms(), d.now_ms()), (1_500, 1_500));
        let s = super::Clock::System;
        s.advance(1);
        assert!(s.now_ms() > 1_700_000_000_000);
    }
}
