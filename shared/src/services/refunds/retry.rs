//! Use case: finish a refund whose gateway answer was lost (dispatched by the retry worker for a
//! `retry_refund` work message). Same key, bounded attempts, as for charges.

use super::create::attempt_refund;
use crate::domain::{RefundId, RefundStatus};
use crate::error::Error;
use crate::ports::{ChargeStore, RefundGateway, RefundStore, WorkQueue};
use crate::services::charges::retry::MAX_ATTEMPTS;
use crate::services::retry_policy::retry_delay;

/// What the worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Done(RefundStatus),
    RetryLater {
        attempt: u32,
        delay: std::time::Duration,
    },
    GaveUp,
}

pub async fn retry_refund<S: ChargeStore + RefundStore>(
    store: &S,
    gateway: &impl RefundGateway,
    queue: &impl WorkQueue,
    id: &RefundId,
    attempt: u32,
    now: i64,
) -> Result<RetryOutcome, Error> {
    let refund = store.get_refund(id).await?.ok_or_else(|| {
        Error::not_found("refund_not_found", format!("refund {id} does not exist"))
    })?;
    if refund.status != RefundStatus::Pending || refund.gateway_ref.is_some() {
        // Known at the gateway: webhooks (or the reconciler) finish it from here.
        return Ok(RetryOutcome::Done(refund.status));
    }
    match attempt_refund(store, gateway, queue, refund, now).await? {
        (refund, None) => Ok(RetryOutcome::Done(refund.status)),
        (_, Some(_)) if attempt >= MAX_ATTEMPTS => {
            tracing::error!(refund_id = %id, attempt, "refund still unknown after the last retry; left for reconciliation");
            crate::telemetry::Metrics::new("retry-worker")
                .count("RefundRetryExhausted")
                .emit();
            Ok(RetryOutcome::GaveUp)
        }
        (_, Some(hint)) => Ok(RetryOutcome::RetryLater {
            attempt: attempt + 1,
            delay: retry_delay(attempt + 1, hint),
        }),
    }
}
