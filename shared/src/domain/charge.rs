//! The charge state machine: states only move forward.
//!
//! ```text
//! pending → requires_action → processing → authorized → succeeded | failed | canceled
//! succeeded → partially_refunded → refunded
//! ```
//! A late or duplicate gateway event never moves a charge backwards: [`ChargeStatus::advance`]
//! tells the caller whether an observed status is news, old news, or a contradiction to ignore.

use serde::{Deserialize, Serialize};

/// Where a charge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Created by us; the gateway's answer is not known yet.
    Pending,
    /// The customer must act (3-D Secure); off-session charges usually fail from here.
    RequiresAction,
    /// The gateway accepted the payment and is still working on it.
    Processing,
    /// Funds are held; a capture or cancel decides.
    Authorized,
    /// Money was taken (captured in full or in part).
    Succeeded,
    /// The gateway declined or the payment errored; nothing was taken.
    Failed,
    /// Canceled before capture; nothing was taken.
    Canceled,
    /// Some, not all, of the captured amount was refunded.
    PartiallyRefunded,
    /// Everything captured was refunded.
    Refunded,
}

/// What observing a status means for a charge currently in some other status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A real step forward: write it and notify.
    Advance,
    /// The charge is already there: nothing to do (a duplicate).
    Unchanged,
    /// The observation is older than what we know, or contradicts a final state: ignore it.
    Stale,
}

impl ChargeStatus {
    pub const ALL: [ChargeStatus; 9] = [
        ChargeStatus::Pending,
        ChargeStatus::RequiresAction,
        ChargeStatus::Processing,
        ChargeStatus::Authorized,
        ChargeStatus::Succeeded,
        ChargeStatus::Failed,
        ChargeStatus::Canceled,
        ChargeStatus::PartiallyRefunded,
        ChargeStatus::Refunded,
    ];

    /// Position on the forward path; statuses of equal rank are alternative outcomes.
    fn rank(self) -> u8 {
        match self {
            ChargeStatus::Pending => 0,
            ChargeStatus::RequiresAction => 1,
            ChargeStatus::Processing => 2,
            ChargeStatus::Authorized => 3,
            ChargeStatus::Succeeded | ChargeStatus::Failed | ChargeStatus::Canceled => 4,
            ChargeStatus::PartiallyRefunded => 5,
            ChargeStatus::Refunded => 6,
        }
    }

    /// The snake_case name used in the API and in notification types (`charge.succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Pending => "pending",
            ChargeStatus::RequiresAction => "requires_action",
            ChargeStatus::Processing => "processing",
            ChargeStatus::Authorized => "authorized",
            ChargeStatus::Succeeded => "succeeded",
            ChargeStatus::Failed => "failed",
            ChargeStatus::Canceled => "canceled",
            ChargeStatus::PartiallyRefunded => "partially_refunded",
            ChargeStatus::Refunded => "refunded",
        }
    }

    /// No gateway outcome can change a final status (refunds aside, which move `succeeded` on).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChargeStatus::Failed | ChargeStatus::Canceled | ChargeStatus::Refunded
        )
    }

    /// Money was taken from the customer: refunds are possible.
    pub fn is_captured(self) -> bool {
        matches!(
            self,
            ChargeStatus::Succeeded | ChargeStatus::PartiallyRefunded | ChargeStatus::Refunded
        )
    }

    /// Whether moving from `self` to `next` is a step forward.
    pub fn advance(self, next: ChargeStatus) -> Transition {
        if self == next {
            return Transition::Unchanged;
        }
        let refund_step = matches!(
            next,
            ChargeStatus::PartiallyRefunded | ChargeStatus::Refunded
        );
        let allowed = match self {
            ChargeStatus::Failed | ChargeStatus::Canceled | ChargeStatus::Refunded => false,
            // Only refunds move a succeeded charge on.
            ChargeStatus::Succeeded | ChargeStatus::PartiallyRefunded => {
                refund_step && next.rank() > self.rank()
            }
            _ => !refund_step && next.rank() > self.rank(),
        };
        if allowed {
            Transition::Advance
        } else {
            Transition::Stale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChargeStatus::*;
    use proptest::prelude::*;

    #[test]
    fn the_happy_paths_advance() {
        for (a, b) in [
            (Pending, Succeeded),
            (Pending, RequiresAction),
            (RequiresAction, Failed),
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
}
