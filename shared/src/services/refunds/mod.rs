//! Refund use cases: create, read, retry a refund whose gateway answer was lost, and apply a
//! gateway's later word about a refund (a refund that succeeded and then failed).
//!
//! The invariant: **the sum of refunds that have not failed never exceeds what was captured.**
//! A refund reserves its amount on the charge before the gateway is called (one conditional
//! write); a success moves it from reserved to refunded; a failure or cancel releases it.

pub mod apply;
pub mod create;
pub mod read;
pub mod retry;

use crate::domain::{Charge, Refund, RefundOutcome, RefundStatus, Transition};
use crate::error::Error;
use crate::ports::{ChargeStore, RefundStore, StoreError, WorkQueue};
use crate::services::notify;
use crate::services::retry_policy::{CONFLICT_RETRIES, reread_after_conflict, still_contended};
/// The refund as billing sees it.
pub use crate::services::views::refund as view;

/// Applies `outcome` to the refund and moves the charge's amounts with it, in one transaction at
/// the next versions of both; on a concurrent write, re-reads both and applies again.
pub async fn settle<S: ChargeStore + RefundStore>(
    store: &S,
    queue: &impl WorkQueue,
    refund: Refund,
    outcome: &RefundOutcome,
    now: i64,
) -> Result<Refund, Error> {
    settle_at(store, queue, refund, outcome, None, now).await
}

/// [`settle`] for an outcome the gateway timed (`observed_at`: its event's time), which orders
/// Adyen's `failed → succeeded` after it retried a refund by itself.
pub async fn settle_at<S: ChargeStore + RefundStore>(
    store: &S,
    queue: &impl WorkQueue,
    mut refund: Refund,
    outcome: &RefundOutcome,
    observed_at: Option<i64>,
    now: i64,
) -> Result<Refund, Error> {
    for attempt in 0..CONFLICT_RETRIES {
        let before = refund.status;
        let had_ref = refund.gateway_ref.is_some();
        let time_before = refund.status_at;
        let mut updated = refund.clone();
        let transition = updated.apply_at(outcome, observed_at, now);
        // The next version, before any notification is built: `data.version` is the version
        // stored with the change it reports.
        updated.version += 1;
        let ref_learned = !had_ref && updated.gateway_ref.is_some();
        let time_learned = updated.status_at != time_before;
        if transition != Transition::Advance && !ref_learned && !time_learned {
            return Ok(refund);
        }
        let mut charge: Option<Charge> = None;
        let mut notifications = Vec::new();
        if transition == Transition::Advance {
            let mut c = store
                .get_charge(&refund.charge_id)
                .await?
                .ok_or_else(|| Error::internal("the refund's charge does not exist", None))?;
            let amount = refund.amount.minor();
            let charge_before = c.clone();
            c.version += 1;
            match (before, updated.status) {
                (RefundStatus::Pending, RefundStatus::Succeeded) => {
                    c.settle_refund(amount, true, now)
                }
                (RefundStatus::Pending, RefundStatus::Failed | RefundStatus::Canceled) => {
                    c.settle_refund(amount, false, now)
                }
                (RefundStatus::Succeeded, RefundStatus::Failed) => c.reverse_refund(amount, now),
                // Adyen retried the refund by itself after REFUND_FAILED.
                (RefundStatus::Failed, RefundStatus::Succeeded) => c.reinstate_refund(amount, now),
                _ => {}
            }
            // One notification per real state change: the refund's, and the charge's when its
            // refund overlay moved.
            notifications.push(notify::for_refund(&c, &updated, now));
            notifications.extend(notify::for_charge_change(&charge_before, &c, now));
            if c.refunded > c.captured {
                // The gateway refunded more than it captured, by paybridge's count (Adyen retried
                // a failed refund after billing refunded its amount again, say). Recorded as the
                // gateway says; a person must look.
                tracing::error!(charge_id = %c.id, refund_id = %updated.id, refunded = c.refunded, captured = c.captured, "refunds exceed what was captured");
                crate::telemetry::Metrics::new("retry-worker")
                    .dimension("Gateway", c.gateway.as_str())
                    .count(crate::telemetry::Metric::RefundedOverCaptured)
                    .emit();
            }
            charge = Some(c);
        }
        match store
            .save_refund(&updated, charge.as_ref(), &notifications)
            .await
        {
            Ok(()) => {
                tracing::info!(refund_id = %updated.id, charge_id = %updated.charge_id, status = updated.status.as_str(), "refund updated");
                notify::enqueue(queue, &notifications).await;
                return Ok(updated);
            }
            Err(StoreError::Conflict) => {
                let reread = store.get_refund(&refund.id);
                refund = reread_after_conflict(attempt, "refund", reread).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(still_contended("refund"))
}
