//! Use case: finish a charge whose gateway answer was lost (dispatched by the retry worker for a
//! `retry_charge` work message).
//!
//! The gateway is asked again with the charge's own `create` idempotency key, so a payment the
//! gateway already made is reported, not made twice. Attempts are bounded (well inside the 24 h
//! for which gateways remember idempotency keys); a charge still unknown after the last attempt
//! stays `pending` for the reconciler, with an error log line and a metric.

use super::create::{Attempt, Earlier, attempt_payment, record_outcome_metric};
use crate::domain::{ChargeId, ChargeStatus};
use crate::error::{Code, Error};
use crate::ports::{ChargeStore, PaymentGateway, WorkQueue};
use crate::services::retry_policy;
use crate::telemetry::Metric;

/// What the worker does next.
pub type RetryOutcome = retry_policy::RetryOutcome<ChargeStatus>;

pub async fn retry_charge(
    store: &impl ChargeStore,
    gateway: &impl PaymentGateway,
    queue: &impl WorkQueue,
    id: &ChargeId,
    attempt: u32,
    now: i64,
) -> Result<RetryOutcome, Error> {
    let charge = store
        .get_charge(id)
        .await?
        .ok_or_else(|| Error::new(Code::ChargeNotFound, format!("charge {id} does not exist")))?;
    if charge.status != ChargeStatus::Pending {
        return Ok(RetryOutcome::Done(charge.status));
    }
    match attempt_payment(store, gateway, queue, charge, Earlier::Unknown, now).await? {
        Attempt::Known(charge) => {
            tracing::info!(charge_id = %id, attempt, status = charge.status.as_str(), "pending charge resolved");
            record_outcome_metric(&charge);
            Ok(RetryOutcome::Done(charge.status))
        }
        Attempt::Unknown(_, hint) => {
            let next = RetryOutcome::still_unknown(attempt, hint);
            if next == RetryOutcome::GaveUp {
                tracing::error!(charge_id = %id, attempt, "charge still unknown after the last retry; left for reconciliation");
                crate::telemetry::Metrics::new("retry-worker")
                    .count(Metric::ChargeRetryExhausted)
                    .emit();
            }
            Ok(next)
        }
    }
}
