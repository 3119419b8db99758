//! The refund state machine.
//!
//! ```text
//! pending → succeeded | failed | canceled
//! succeeded → failed            (gateways report late failures: Stripe, Adyen REFUND_FAILED)
//! ```
//! A failed or canceled refund releases its amount back to the charge.

use serde::{Deserialize, Serialize};

pub use super::charge::Transition;

/// Where a refund is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 4] = [
        RefundStatus::Pending,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
        RefundStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }

    /// The amount no longer counts against the charge.
    pub fn releases_amount(self) -> bool {
        matches!(self, RefundStatus::Failed | RefundStatus::Canceled)
    }

    /// Whether moving from `self` to `next` is a step forward.
    pub fn advance(self, next: RefundStatus) -> Transition {
        use RefundStatus::*;
        if self == next {
            return Transition::Unchanged;
        }
        match (self, next) {
            (Pending, Succeeded | Failed | Canceled) | (Succeeded, Failed) => Transition::Advance,
            _ => Transition::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefundStatus::*;
    use proptest::prelude::*;

    #[test]
    fn a_succeeded_refund_may_still_fail() {
        assert_eq!(Succeeded.advance(Failed), Transition::Advance);
        assert_eq!(Failed.advance(Succeeded), Transition::Stale);
        assert_eq!(Canceled.advance(Succeeded), Transition::Stale);
        assert_eq!(Succeeded.advance(Pending), Transition::Stale);
    }

    proptest! {
        /// Two observations, in either order, end in the same state when both are applied.
        #[test]
        fn the_outcome_does_not_depend_on_the_order_of_two_observations(
            a in proptest::sample::select(RefundStatus::ALL.to_vec()),
            b in proptest::sample::select(RefundStatus::ALL.to_vec()),
        ) {
            let apply = |mut s: RefundStatus, seq: [RefundStatus; 2]| {
                for n in seq { if s.advance(n) == Transition::Advance { s = n; } }
                s
            };
            // Succeeded and Canceled are rival outcomes of a pending refund; the first wins.
            prop_assume!(!matches!((a, b), (Succeeded, Canceled) | (Canceled, Succeeded) | (Canceled, Failed) | (Failed, Canceled)));
            prop_assert_eq!(apply(Pending, [a, b]), apply(Pending, [b, a]));
        }
    }
}
