//! Where a node's time comes from. The writer and the workers take "now"
//! from the node's [`Clock`] rather than from the operating system, so the
//! simulator can run a whole tree on one simulated clock (deadlines pass,
//! supervision falls due) while the binary runs on the system clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock, shifted by `clock_offset_secs` in drills
    /// ([`crate::ledger::now_ms`]).
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
            Clock::System => crate::ledger::now_ms(),
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
