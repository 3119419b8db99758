//! Use case: finish a refund whose gateway answer was lost (dispatched by the retry worker for a
//! `retry_refund` work message). Same key, bounded attempts, as for charges.

use super::create::attempt_refund;
use crate::domain::{RefundId, RefundStatus};
use crate::error::{Code, Error};
use crate::ports::{ChargeStore, RefundGateway, RefundStore, WorkQueue};
use crate::services::charges::create::Earlier;
use crate::services::retry_policy;
use crate::telemetry::Metric;

/// What the worker does next.
pub type RetryOutcome = retry_policy::RetryOutcome<RefundStatus>;

pub async fn retry_refund<S: ChargeStore + RefundStore>(
    store: &S,
    gateway: &impl RefundGateway,
    queue: &impl WorkQueue,
    id: &RefundId,
    attempt: u32,
    now: i64,
) -> Result<RetryOutcome, Error> {
    let refund = store
        .get_refund(id)
        .await?
        .ok_or_else(|| Error::new(Code::RefundNotFound, format!("refund {id} does not exist")))?;
    if refund.status != RefundStatus::Pending || refund.gateway_ref.is_some() {
        // Known at the gateway: webhooks (or the reconciler) finish it from here.
        return Ok(RetryOutcome::Done(refund.status));
    }
    if refund.gateway.key_expired(refund.created_at, now) {
        // A redrive days later: re-sending could make a second refund (attempt_refund logs it).
        attempt_refund(store, gateway, queue, refund, Earlier::Unknown, now).await?;
        return Ok(RetryOutcome::GaveUp);
    }
    let (refund, unknown) =
        attempt_refund(store, gateway, queue, refund, Earlier::Unknown, now).await?;
    let Some(hint) = unknown else {
        return Ok(RetryOutcome::Done(refund.status));
    };
    let next = RetryOutcome::still_unknown(attempt, hint);
    if next == RetryOutcome::GaveUp {
        tracing::error!(refund_id = %id, attempt, "refund still unknown after the last retry; left for reconciliation");
        crate::telemetry::Metrics::new("retry-worker")
            .count(Metric::RefundRetryExhausted)
            .emit();
    }
    Ok(next)
}
