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
    if charge.gateway.key_expired(charge.created_at, now) {
        // A redrive days later: re-sending could make a second payment. Left for the reconciler
        // and a person (attempt_payment logs and counts it).
        attempt_payment(store, gateway, queue, charge, Earlier::Unknown, now).await?;
        return Ok(RetryOutcome::GaveUp);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Gateway, Money, Refund, RefundId, RefundStatus};
    use crate::ports::RefundStore;
    use crate::services::fakes::{MemQueue, MemStore, ScriptedGateway};
    use crate::services::refunds::retry::{RetryOutcome as RefundRetry, retry_refund};

    const NOW: i64 = 1_700_000_000;
    const HOUR: i64 = 3600;

    async fn pending_at(store: &MemStore, gateway: Gateway, age: i64) -> crate::domain::Charge {
        let charge = crate::domain::Charge {
            gateway,
            ..crate::domain::charge::example(NOW - age)
        };
        store.put_charge(&charge).await;
        charge
    }

    #[tokio::test]
    async fn a_redrive_past_the_gateways_key_window_never_resends_the_payment() {
        let (store, queue, gateway) = (
            MemStore::default(),
            MemQueue::default(),
            ScriptedGateway::timing_out(),
        );
        let old = pending_at(&store, Gateway::Stripe, 25 * HOUR).await;
        let outcome = retry_charge(&store, &gateway, &queue, &old.id, 1, NOW)
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::GaveUp);
        assert!(gateway.calls.lock().unwrap().is_empty(), "nothing sent");
        let stored = store.get_charge(&old.id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            ChargeStatus::Pending,
            "left for a lookup, not failed"
        );

        // Adyen keeps keys for at least 7 days: two days on, the same key is still safe.
        let adyen = pending_at(&store, Gateway::Adyen, 48 * HOUR).await;
        retry_charge(&store, &gateway, &queue, &adyen.id, 1, NOW)
            .await
            .unwrap();
        assert_eq!(
            gateway.calls.lock().unwrap().len(),
            1,
            "re-sent with its key"
        );
    }

    #[tokio::test]
    async fn a_redrive_past_the_gateways_key_window_never_resends_the_refund() {
        let (store, queue, gateway) = (
            MemStore::default(),
            MemQueue::default(),
            ScriptedGateway::timing_out(),
        );
        let mut charge = pending_at(&store, Gateway::Stripe, 30 * HOUR).await;
        charge.status = ChargeStatus::Succeeded;
        charge.captured = 1999;
        charge.version += 1;
        store.save_charge(&charge, &[]).await.unwrap();
        let refund = Refund::pending(
            RefundId::generate(),
            &charge.id,
            Money::parse(500, "eur").unwrap(),
            Gateway::Stripe,
            NOW - 24 * HOUR,
        );
        store.reserve_refund(&refund).await.unwrap();
        let outcome = retry_refund(&store, &gateway, &queue, &refund.id, 1, NOW)
            .await
            .unwrap();
        assert_eq!(outcome, RefundRetry::GaveUp);
        assert!(gateway.calls.lock().unwrap().is_empty(), "nothing sent");
        let stored = store.get_refund(&refund.id).await.unwrap().unwrap();
        assert_eq!(stored.status, RefundStatus::Pending);
        let charge = store.get_charge(&charge.id).await.unwrap().unwrap();
        assert_eq!(charge.refund_reserved, 500, "the reservation is kept");
    }
}
