//! The charge state machine: forward steps, stale news, and final states.

use super::*;
use ChargeStatus::*;
use proptest::prelude::*;

#[test]
fn the_happy_paths_advance() {
    for (a, b) in [
        (Pending, Succeeded),
        (Pending, RequiresAction),
        (RequiresAction, Failed),
        (RequiresAction, Succeeded),
        (RequiresAction, Authorized),
        (RequiresAction, Processing),
        (RequiresAction, Canceled),
        (Processing, Authorized),
        (Authorized, Succeeded),
        (Authorized, Canceled),
        (Succeeded, PartiallyRefunded),
        (Succeeded, Refunded),
        (PartiallyRefunded, Refunded),
    ] {
        assert_eq!(a.advance(b), Transition::Advance, "{a:?} -> {b:?}");
    }
}

#[test]
fn late_events_never_move_backwards() {
    for (a, b) in [
        (Succeeded, Processing),
        (Succeeded, Failed),
        (Failed, Succeeded),
        (Canceled, Authorized),
        (Authorized, Pending),
        (Refunded, PartiallyRefunded),
        (Pending, Refunded),
        (Succeeded, RequiresAction),
        (Canceled, RequiresAction),
        (RequiresAction, Pending),
    ] {
        assert_eq!(a.advance(b), Transition::Stale, "{a:?} -> {b:?}");
    }
}

fn status() -> impl Strategy<Value = ChargeStatus> {
    proptest::sample::select(ChargeStatus::ALL.to_vec())
}

proptest! {
    /// Whatever order observations arrive in, applying each one that advances never
    /// revisits a status: the path is strictly forward and ends in at most 4 steps.
    #[test]
    fn any_sequence_of_observations_moves_strictly_forward(seq in proptest::collection::vec(status(), 0..30)) {
        let mut current = Pending;
        let mut seen = vec![current];
        for next in seq {
            if current.advance(next) == Transition::Advance {
                prop_assert!(!seen.contains(&next));
                current = next;
                seen.push(next);
            }
        }
        prop_assert!(seen.len() <= 7);
    }

    #[test]
    fn final_states_accept_nothing(next in status()) {
        for s in [Failed, Canceled, Refunded] {
            prop_assert_ne!(s.advance(next), Transition::Advance);
        }
    }
}
