//! WAMP ids. WAMP v2, "IDs": "IDs in the global scope MUST be drawn randomly from a uniform
//! distribution over the complete range [1, 2^53]"; IDs in the router scope and session scope
//! "can be chosen freely by the specific router implementation" / "MUST be incremented by 1
//! beginning with 1 ... (wrapping around to 1 after 2^53)" for requests.
//!
//! - `GlobalIds`: session and publication ids, random. A small PRNG (SplitMix64) seeded once
//!   from the OS (`getrandom`); the ids are not secrets (Crossbar uses Python's `random`),
//!   they only must not be guessable by counting. `GlobalIds::seeded` makes tests repeatable.
//! - `SequentialIds`: subscription and registration ids (router scope), the router's own
//!   INVOCATION request ids (one counter per callee session, session scope) and internal keys.

use crate::wamp::MAX_ID;

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, passes BigCrush, no allocation.
#[derive(Debug, Clone)]
pub struct GlobalIds {
    state: u64,
}

impl GlobalIds {
    /// Seeded from the OS. If the OS has no randomness to give (it practically always has),
    /// the seed falls back to the clock: ids must merely be spread, not secret.
    pub fn from_os() -> GlobalIds {
        let mut seed = [0_u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            log::warn!("no OS randomness for WAMP ids; seeding from the clock");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos())
                .unwrap_or(0);
            seed = u64::try_from(nanos & u128::from(u64::MAX))
                .unwrap_or(0)
                .to_le_bytes();
        }
        GlobalIds::seeded(u64::from_le_bytes(seed))
    }

    /// A repeatable sequence (tests).
    pub fn seeded(seed: u64) -> GlobalIds {
        GlobalIds { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random id, uniform over [1, 2^53].
    pub fn next_id(&mut self) -> u64 {
        // The top 53 bits are uniform over [0, 2^53 - 1].
        (self.next_u64() >> 11) + 1
    }

    /// A uniform index below `len` (0 when `len` is 0), for the `random` invocation policy.
    pub fn below(&mut self, len: usize) -> usize {
        let Ok(len64) = u64::try_from(len) else {
            return 0;
        };
        if len64 == 0 {
            return 0;
        }
        // Lemire's multiply-shift: the bias is below len / 2^64, far under anything observable.
        let wide = u128::from(self.next_u64()) * u128::from(len64);
        usize::try_from(wide >> 64).unwrap_or(0)
    }
}

/// Ids 1, 2, 3, ... wrapping to 1 after 2^53.
#[derive(Debug, Clone)]
pub struct SequentialIds {
    last: u64,
}

impl Default for SequentialIds {
    fn default() -> Self {
        SequentialIds::new()
    }
}

impl SequentialIds {
    pub fn new() -> SequentialIds {
        SequentialIds { last: 0 }
    }

    pub fn next_id(&mut self) -> u64 {
        // WAMP v2, "IDs": "... wrapping around to 1 after 2^53".
        self.last = if self.last >= MAX_ID {
            1
        } else {
            self.last + 1
        };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_stay_in_range_and_spread() {
        let mut ids = GlobalIds::seeded(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert!((1..=MAX_ID).contains(&id));
            seen.insert(id);
        }
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn global_ids_are_repeatable_from_a_seed() {
        let mut a = GlobalIds::seeded(42);
        let mut b = GlobalIds::seeded(42);
        for _ in 0..10 {
            assert_eq!(a.next_id(), b.next_id());
        }
        assert_ne!(
            GlobalIds::seeded(1).next_id(),
            GlobalIds::seeded(2).next_id()
        );
    }

    #[test]
    fn os_seeded_ids_differ_between_instances() {
        assert_ne!(
            GlobalIds::from_os().next_id(),
            GlobalIds::from_os().next_id()
        );
    }

    #[test]
    fn below_stays_below() {
        let mut ids = GlobalIds::seeded(3);
        assert_eq!(ids.below(0), 0);
        let mut hits = [0_usize; 3];
        for _ in 0..3000 {
            let index = ids.below(3);
            assert!(index < 3);
            if let Some(hit) = hits.get_mut(index) {
                *hit += 1;
            }
        }
        assert!(hits.iter().all(|&count| count > 800));
    }

    #[test]
    fn sequential_ids_start_at_one_and_wrap_after_2_pow_53() {
        let mut ids = SequentialIds::new();
        assert_eq!(ids.next_id(), 1);
        assert_eq!(ids.next_id(), 2);
        let mut high = SequentialIds { last: MAX_ID - 1 };
        assert_eq!(high.next_id(), MAX_ID);
        assert_eq!(high.next_id(), 1);
    }
}
