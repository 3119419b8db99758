//! The charge state machine: states only move forward.
//!
//! ```text
//! pending → requires_action → processing → authorized → succeeded | failed | canceled
//! succeeded → partially_refunded → refunded
//! ```
//! A late or duplicate gateway event never moves a charge backwards: [`ChargeStatus::advance`]
//! tells the caller whether an observed status is news, old news, or a contradiction to ignore.
//!
//! Transitions legal **only because a gateway makes them** (the gateway is the source of truth
//! for money; see [`Charge::apply_at`]):
//! - `failed → succeeded | authorized`: a success after a failure (Stripe confirms a
//!   PaymentIntent again after `requires_payment_method`; Adyen authorises a payment it refused).
//!   Money taken always wins.
//! - `authorized | succeeded → capture_failed`: Adyen's `CAPTURE_FAILED` after `CAPTURE`; nothing
//!   was taken after all.
//! - `capture_failed → succeeded`: Adyen re-captured by itself (`CAPTURE` again, "Transaction
//!   Recaptured").
//!
//! The last two flip a status back and forth, so they are ordered by the gateway's own event time:
//! an observation older than the one that set the current status is stale. Refund and dispute
//! overlays (`partially_refunded`, `refunded`, the charge's `disputes`) follow the amounts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::action::{ActionDetails, CustomerAction};
use super::dispute::{Dispute, DisputeChange, DisputeObservation};
use super::gateway::Gateway;
use super::ids::ChargeId;
use super::money::{Currency, Money};
use super::transition::{Failure, Transition};

/// Where a charge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Created by us; the gateway's answer is not known yet.
    Pending,
    /// The customer must act on session (3-D Secure): the charge's `customer_action` says how.
    /// The gateway's webhook moves it on; the reconciler cancels it after the action expiry.
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
    /// The gateway reported the capture failed after all (Adyen `CAPTURE_FAILED`): nothing was
    /// taken; billing decides what to do (charge again, or ask the customer).
    CaptureFailed,
}

impl ChargeStatus {
    pub const ALL: [ChargeStatus; 10] = [
        ChargeStatus::Pending,
        ChargeStatus::RequiresAction,
        ChargeStatus::Processing,
        ChargeStatus::Authorized,
        ChargeStatus::Succeeded,
        ChargeStatus::Failed,
        ChargeStatus::Canceled,
        ChargeStatus::PartiallyRefunded,
        ChargeStatus::Refunded,
        ChargeStatus::CaptureFailed,
    ];

    /// Position on the forward path; statuses of equal rank are alternative outcomes.
    fn rank(self) -> u8 {
        match self {
            ChargeStatus::Pending => 0,
            ChargeStatus::RequiresAction => 1,
            ChargeStatus::Processing => 2,
            ChargeStatus::Authorized => 3,
            ChargeStatus::Succeeded
            | ChargeStatus::Failed
            | ChargeStatus::Canceled
            | ChargeStatus::CaptureFailed => 4,
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
            ChargeStatus::CaptureFailed => "capture_failed",
        }
    }

    /// Money was taken from the customer: refunds are possible.
    pub fn is_captured(self) -> bool {
        matches!(
            self,
            ChargeStatus::Succeeded | ChargeStatus::PartiallyRefunded | ChargeStatus::Refunded
        )
    }

    /// Whether a charge in this status keeps its invoice from being charged again without
    /// `allow_additional_charge`: money was taken and not all given back (succeeded, partially
    /// refunded), funds are held (authorized, and capture_failed, whose authorisation Adyen may
    /// still capture on its own until billing cancels it), or the outcome is still open
    /// (pending, processing, requires_action). Failed, canceled and fully refunded charges took
    /// nothing that is still kept.
    pub fn holds_its_invoice(self) -> bool {
        matches!(
            self,
            ChargeStatus::Pending
                | ChargeStatus::RequiresAction
                | ChargeStatus::Processing
                | ChargeStatus::Authorized
                | ChargeStatus::CaptureFailed
                | ChargeStatus::Succeeded
                | ChargeStatus::PartiallyRefunded
        )
    }

    /// Whether the gateway may still decide this charge's outcome (pending, processing,
    /// requires_action): a second charge now could succeed beside it.
    pub fn outcome_open(self) -> bool {
        matches!(
            self,
            ChargeStatus::Pending | ChargeStatus::RequiresAction | ChargeStatus::Processing
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
            ChargeStatus::Failed
            | ChargeStatus::Canceled
            | ChargeStatus::Refunded
            | ChargeStatus::CaptureFailed => false,
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

/// What a gateway says a payment is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    /// The gateway's id of the payment (`pi_…`, a pspReference); empty when the gateway refused
    /// before creating one (a card error without a PaymentIntent).
    pub gateway_ref: String,
    pub status: ChargeStatus,
    /// Minor units captured so far.
    pub captured: i64,
    pub failure: Option<Failure>,
    /// What the customer must do, when `status` is `requires_action` and the gateway said.
    pub action: Option<ActionDetails>,
}

/// Whether `key` is a metadata key paybridge writes on the gateway's objects itself —
/// `invoice_id`, `paybridge_charge_id`, `paybridge_refund_id` and every other `paybridge_…` —
/// so billing may not set it: webhooks find their charge and refund by these, and a value of
/// billing's would point them elsewhere.
pub fn is_reserved_metadata_key(key: &str) -> bool {
    key == "invoice_id" || key.starts_with("paybridge_")
}

/// A charge: one attempt to collect an amount for an invoice through one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: ChargeId,
    pub invoice_id: String,
    pub amount: Money,
    pub gateway: Gateway,
    /// Known once the gateway answered.
    pub gateway_ref: Option<String>,
    pub status: ChargeStatus,
    /// Minor units captured, refunded, and reserved by refunds in flight.
    pub captured: i64,
    pub refunded: i64,
    pub refund_reserved: i64,
    pub failure: Option<Failure>,
    /// The gateway's time (unix milliseconds) of the event that set `status`, when it said; orders the
    /// status flips only a gateway makes (see the module doc).
    pub status_at: Option<i64>,
    /// The charge's disputes, as the gateway reports them.
    pub disputes: Vec<Dispute>,
    /// While `requires_action`: what the customer must do, as the gateway described it. Cleared
    /// when the charge moves on.
    pub customer_action: Option<CustomerAction>,
    /// The customer's stored payment method at the gateway (a token, never card data).
    pub payment_method: String,
    pub customer: Option<String>,
    /// Capture at once (`true`) or authorize only.
    pub capture: bool,
    /// Billing asked for this charge although its invoice had a charge that holds it
    /// (`allow_additional_charge: true`: a partial payment or a top-up).
    pub additional: bool,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Optimistic-concurrency version: every write is conditional on it.
    pub version: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Charge {
    /// A new charge at version 1, `pending`, with nothing captured, refunded or reserved; captured
    /// at once, without customer, description or metadata (set those where the request has them).
    pub fn pending(
        id: ChargeId,
        invoice_id: impl Into<String>,
        amount: Money,
        gateway: Gateway,
        payment_method: impl Into<String>,
        now: i64,
    ) -> Charge {
        Charge {
            id,
            invoice_id: invoice_id.into(),
            amount,
            gateway,
            gateway_ref: None,
            status: ChargeStatus::Pending,
            captured: 0,
            refunded: 0,
            refund_reserved: 0,
            failure: None,
            status_at: None,
            disputes: Vec::new(),
            customer_action: None,
            payment_method: payment_method.into(),
            customer: None,
            capture: true,
            additional: false,
            description: None,
            metadata: BTreeMap::new(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The idempotency key paybridge sends the gateway for `operation` on this charge. The same on
    /// every retry, so a timeout never becomes a second payment.
    pub fn gateway_idempotency_key(&self, operation: &str) -> String {
        format!("paybridge-{}-{operation}", self.id)
    }

    pub fn currency(&self) -> Currency {
        self.amount.currency()
    }

    /// What can still be refunded: captured, less refunded, less reserved by refunds in flight,
    /// less what disputes took back; nothing while a chargeback is open or after one was lost.
    pub fn refundable(&self) -> i64 {
        if self.dispute_blocks_refunds() {
            return 0;
        }
        (self.captured - self.refunded - self.refund_reserved - self.disputed()).max(0)
    }

    /// Net minor units the gateway took back for disputes (withdrawn less reinstated).
    pub fn disputed(&self) -> i64 {
        self.disputes.iter().map(Dispute::net_withdrawn).sum()
    }

    /// A chargeback is open, or was lost: a refund could pay the customer twice.
    pub fn dispute_blocks_refunds(&self) -> bool {
        self.disputes.iter().any(|d| d.status.blocks_refunds())
    }

    /// Applies what the gateway reports about one of this charge's disputes (a new one is
    /// added). Returns the dispute's index and the notification type its change calls for, if
    /// anything changed.
    pub fn apply_dispute(
        &mut self,
        observation: &DisputeObservation,
        now: i64,
    ) -> Option<(usize, &'static str)> {
        let found = self
            .disputes
            .iter()
            .position(|d| d.gateway_ref == observation.gateway_ref);
        let (index, kind) = match found {
            Some(i) => match self.disputes[i].apply(observation, now) {
                DisputeChange::Nothing => return None,
                DisputeChange::Status => (i, self.disputes[i].notification_type(false)),
                DisputeChange::Details => (i, "dispute.updated"),
            },
            None => {
                let d = Dispute::opened(observation, now);
                let kind = d.notification_type(true);
                self.disputes.push(d);
                (self.disputes.len() - 1, kind)
            }
        };
        self.updated_at = now;
        Some((index, kind))
    }

    /// A refund that had failed succeeded after all (Adyen retried it): its amount counts as
    /// refunded again. Nothing is reserved for it any more, so only `refunded` moves.
    pub fn reinstate_refund(&mut self, amount: i64, now: i64) {
        self.refunded += amount;
        self.sync_refund_status(now);
    }

    /// Moves `amount` of a refund in flight from reserved to refunded (the refund succeeded) or
    /// back to refundable (it failed or was canceled), and sets the refund overlay of the status:
    /// `succeeded` / `partially_refunded` / `refunded` follow the amounts. This overlay is derived
    /// from money, so a refund that fails after succeeding may move it back.
    pub fn settle_refund(&mut self, amount: i64, succeeded: bool, now: i64) {
        self.refund_reserved = (self.refund_reserved - amount).max(0);
        if succeeded {
            // Not capped at `captured`: the gateway's figure is the truth, and the caller flags
            // refunds that exceed what was captured.
            self.refunded += amount;
        }
        self.sync_refund_status(now);
    }

    /// Gives back `amount` of a refund that had succeeded and later failed.
    pub fn reverse_refund(&mut self, amount: i64, now: i64) {
        self.refunded = (self.refunded - amount).max(0);
        self.sync_refund_status(now);
    }

    fn sync_refund_status(&mut self, now: i64) {
        if self.status.is_captured() {
            self.status = match self.refunded {
                0 => ChargeStatus::Succeeded,
                r if r >= self.captured => ChargeStatus::Refunded,
                _ => ChargeStatus::PartiallyRefunded,
            };
        }
        self.updated_at = now;
    }

    /// Applies what the gateway said. Returns whether anything changed (the caller then writes
    /// at `version + 1` and notifies). A stale outcome changes nothing.
    pub fn apply(&mut self, outcome: &PaymentOutcome, now: i64) -> bool {
        self.apply_at(outcome, None, now)
    }

    /// Whether the gateway's observation of `next`, made at its time `observed_at`, moves this
    /// charge: a forward step, or one of the transitions only a gateway makes (module doc).
    fn moves_to(&self, next: ChargeStatus, observed_at: Option<i64>) -> bool {
        use ChargeStatus::*;
        let newer = observed_at.is_some_and(|t| self.status_at.is_none_or(|s| t > s));
        match (self.status, next) {
            (Failed, Succeeded | Authorized) => true,
            (Authorized | Succeeded | PartiallyRefunded | Refunded, CaptureFailed)
            | (CaptureFailed, Succeeded) => newer,
            // Billing voids what Adyen could not capture.
            (CaptureFailed, Canceled) => true,
            (current, next) => current.advance(next) == Transition::Advance,
        }
    }

    /// Keeps `customer_action` in step with the status: set (or completed) from an outcome that
    /// still asks for the customer, kept from when it was first required, gone once the charge
    /// moved on. Returns whether it changed.
    fn sync_customer_action(&mut self, outcome: &PaymentOutcome, now: i64) -> bool {
        let before = self.customer_action.clone();
        if self.status != ChargeStatus::RequiresAction {
            self.customer_action = None;
        } else if outcome.status == ChargeStatus::RequiresAction
            && let Some(details) = &outcome.action
        {
            self.customer_action = Some(match self.customer_action.take() {
                Some(known) => CustomerAction {
                    details: known.details.merged(details),
                    required_at: known.required_at,
                },
                None => CustomerAction {
                    details: details.clone(),
                    required_at: now,
                },
            });
        }
        self.customer_action != before
    }

    /// [`Charge::apply`] for an observation the gateway timed (`observed_at`, unix milliseconds).
    pub fn apply_at(
        &mut self,
        outcome: &PaymentOutcome,
        observed_at: Option<i64>,
        now: i64,
    ) -> bool {
        let mut changed = false;
        if self.gateway_ref.is_none() && !outcome.gateway_ref.is_empty() {
            self.gateway_ref = Some(outcome.gateway_ref.clone());
            changed = true;
        }
        if outcome.status == self.status {
            // The same news again: remember the latest time it was told.
            if observed_at > self.status_at {
                self.status_at = observed_at;
                changed = true;
            }
        } else if self.moves_to(outcome.status, observed_at) {
            self.status = outcome.status;
            self.status_at = observed_at.or(self.status_at);
            if matches!(
                outcome.status,
                ChargeStatus::Failed | ChargeStatus::CaptureFailed
            ) {
                if outcome.failure.is_some() {
                    self.failure = outcome.failure.clone();
                }
            } else {
                // Money taken wins: an earlier decline or failed capture no longer describes it.
                self.failure = None;
            }
            if outcome.status == ChargeStatus::CaptureFailed {
                self.captured = 0;
            }
            changed = true;
            if outcome.status == ChargeStatus::Succeeded {
                // A re-capture: refunds made meanwhile still count.
                self.captured = self.captured.max(outcome.captured.min(self.amount.minor()));
                self.sync_refund_status(now);
            }
        }
        if outcome.captured > self.captured && self.status.is_captured() {
            self.captured = outcome.captured.min(self.amount.minor());
            changed = true;
        }
        changed |= self.sync_customer_action(outcome, now);
        if changed {
            self.updated_at = now;
        }
        changed
    }
}

#[cfg(test)]
mod tests;

/// A pending 19.99 EUR Stripe charge for `inv_1`, created at `now`: the unit tests' charge.
#[cfg(test)]
pub(crate) fn example(now: i64) -> Charge {
    Charge::pending(
        ChargeId::generate(),
        "inv_1",
        Money::parse(1999, "eur").expect("a valid amount"),
        Gateway::Stripe,
        "pm_card_visa",
        now,
    )
}

#[cfg(test)]
mod record_tests;
