//! Hybrid logical clock.
//!
//! A timestamp is wall-clock milliseconds plus a counter. A node's clock never
//! goes backwards and always moves past every timestamp it has seen, so causal
//! order is kept even when a village's wall clock is skewed. Deadlines use the
//! wall part. The clock never reads the system time: `now_ms` is an argument.

use crate::codec::{Decode, Encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    pub counter: u32,
}

/// The clock state of one node.
#[derive(Debug, Clone, Copy, Default)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    pub fn new(last: Hlc) -> Self {
        HlcClock { last }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a local event at wall time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        self.last = if now_ms > self.last.wall_ms { Hlc { wall_ms: now_ms, counter: 0 } } else { Hlc { wall_ms: self.last.wall_ms, counter: self.last.counter.saturating_add(1) } };
        self.last
    }

    /// Moves the clock past a timestamp received from elsewhere.
    pub fn observe(&mut self, seen: Hlc) {
        if seen > self.last {
            self.last = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strictly_increasing(nows in proptest::collection::vec(0u64..1000, 1..50), seen in 0u64..2000) {
            let mut clock = HlcClock::default();
            clock.observe(Hlc { wall_ms: seen, counter: 3 });
            let mut prev = clock.last();
            for now in nows {
                let t = clock.tick(now);
                prop_assert!(t > prev);
                prev = t;
            }
        }
    }
}
