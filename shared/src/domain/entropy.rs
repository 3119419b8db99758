//! The one source of randomness and of new ids' bits: UUIDs from the operating system, or — in
//! the deterministic simulation (feature `testkit`) — from a seed the simulator sets on its
//! thread, so a history replays exactly from its seed.
//!
//! Ids stay time-ordered either way: seeded ids count up in their high bits, in the order they
//! are drawn.

/// A random 128-bit number (jitter, owner tokens).
pub fn random_u128() -> u128 {
    #[cfg(any(test, feature = "testkit"))]
    if let Some(n) = seeded::next() {
        return n;
    }
    uuid::Uuid::new_v4().as_u128()
}

/// A new time-ordered UUID (UUIDv7), or the next of the seeded sequence.
pub fn time_ordered_uuid() -> uuid::Uuid {
    #[cfg(any(test, feature = "testkit"))]
    if let Some(n) = seeded::next_ordered() {
        return uuid::Uuid::from_u128(n);
    }
    uuid::Uuid::now_v7()
}

#[cfg(any(test, feature = "testkit"))]
pub use seeded::{seed, unseed};

#[cfg(any(test, feature = "testkit"))]
mod seeded {
    use std::cell::Cell;

    thread_local! {
        /// (state of the random sequence, ids drawn), while seeded.
        static STATE: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    }

    /// From now on, on this thread, every random number and id comes from `seed`.
    pub fn seed(seed: u64) {
        STATE.with(|s| s.set(Some((seed, 0))));
    }

    /// Back to the operating system's randomness on this thread.
    pub fn unseed() {
        STATE.with(|s| s.set(None));
    }

    /// SplitMix64: small, fast and good enough for jitter and tokens.
    fn mix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn next() -> Option<u128> {
        STATE.with(|s| {
            let (mut state, count) = s.get()?;
            let n = (u128::from(mix(&mut state)) << 64) | u128::from(mix(&mut state));
            s.set(Some((state, count)));
            Some(n)
        })
    }

    /// The draw count in the high 64 bits (creation order), random bits below.
    pub(super) fn next_ordered() -> Option<u128> {
        STATE.with(|s| {
            let (mut state, count) = s.get()?;
            let n = (u128::from(count + 1) << 64) | u128::from(mix(&mut state));
            s.set(Some((state, count + 1)));
            Some(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_sequence_and_ids_stay_ordered() {
        seed(7);
        let first: Vec<u128> = (0..3).map(|_| random_u128()).collect();
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| time_ordered_uuid()).collect();
        seed(7);
        assert_eq!(first, (0..3).map(|_| random_u128()).collect::<Vec<_>>());
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        unseed();
        assert_ne!(random_u128(), random_u128());
    }
}
