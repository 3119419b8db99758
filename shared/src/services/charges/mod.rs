//! Charge use cases: create, read, capture, cancel, and the retry of a charge whose gateway
//! answer was lost. Each lives in its own module; this one holds what they share — the JSON view
//! of a charge and [`settle`], which applies a gateway outcome with an optimistic write.

pub mod cancel;
pub mod capture;
pub mod create;
pub mod read;
pub mod retry;

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{Charge, PaymentOutcome};
use crate::error::Error;
use crate::ports::{ChargeStore, StoreError, WorkQueue};
use crate::services::notify;

/// Body size limit of billing-facing requests.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub(crate) fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The charge as billing sees it (the `Charge` schema of openapi.json).
pub fn view(c: &Charge) -> Value {
    json!({
        "id": c.id,
        "object": "charge",
        "status": c.status.as_str(),
        "invoice_id": c.invoice_id,
        "amount": c.amount.minor(),
        "currency": c.currency().code(),
        "gateway": c.gateway.as_str(),
        "gateway_ref": c.gateway_ref,
        "capture": c.capture,
        "captured": c.captured,
        "refunded": c.refunded,
        "failure": c.failure.as_ref().map(|f| json!({"code": f.code, "message": f.message})),
        "customer": c.customer,
        "description": c.description,
        "metadata": c.metadata,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

/// Applies `outcome` to the stored charge and writes it at the next version, with the
/// notification a status change causes (then queued for delivery). On a concurrent
/// write (a webhook applied at the same moment) it re-reads and applies again, so neither
/// change is lost. Returns the charge as stored.
pub async fn settle(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    mut charge: Charge,
    outcome: &PaymentOutcome,
    now: i64,
) -> Result<Charge, Error> {
    for attempt in 0..CONFLICT_RETRIES {
        let before = charge.status;
        if !charge.apply(outcome, now) {
            return Ok(charge);
        }
        charge.version += 1;
        // One notification per real state change, written with the change (outbox).
        let notifications = if charge.status != before {
            vec![notify::for_charge(&charge, now)]
        } else {
            Vec::new()
        };
        match store.save_charge(&charge, &notifications).await {
            Ok(()) => {
                tracing::info!(charge_id = %charge.id, status = charge.status.as_str(), "charge updated");
                notify::enqueue(queue, &notifications).await;
                return Ok(charge);
            }
            Err(StoreError::Conflict) => {
                conflict_pause(attempt).await;
                charge = store
                    .get_charge(&charge.id)
                    .await?
                    .ok_or_else(|| Error::internal("charge vanished while being updated", None))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::conflict(
        "concurrent_update",
        "the charge is being changed concurrently; retry",
    )
    .with_retry_after(1))
}

/// How often an optimistic write is re-read and tried again before giving up with 409.
pub const CONFLICT_RETRIES: u32 = 25;

/// A short random pause after losing an optimistic write, growing with `attempt`, so writers
/// racing for one charge (many refunds at once) spread out instead of colliding again.
pub async fn conflict_pause(attempt: u32) {
    let cap_ms = 5u64 << attempt.min(5); // 5 ms … 160 ms
    let ms = (uuid::Uuid::new_v4().as_u128() % u128::from(cap_ms)) as u64 + 1;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Delay before retry `attempt` (1-based) of a gateway call whose outcome was unknown:
/// 15 s doubling to SQS's 15-minute cap, with ±20% jitter so retries of many charges spread out.
pub fn retry_delay(attempt: u32, gateway_hint: Option<Duration>) -> Duration {
    let base = 15u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(10))
        .min(900);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 41) as i64 - 20; // -20..=20 %
    let secs = (base as i64 + base as i64 * jitter / 100).clamp(1, 900) as u64;
    Duration::from_secs(secs)
        .max(gateway_hint.unwrap_or_default())
        .min(Duration::from_secs(900))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_within_sqs_limits() {
        for attempt in 1..=12 {
            let d = retry_delay(attempt, None).as_secs();
            let base = (15u64 << (attempt - 1).min(10)).min(900);
            assert!(
                d >= base * 8 / 10 && d <= (base * 12 / 10).min(900),
                "attempt {attempt}: {d}s"
            );
        }
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(5000))),
            Duration::from_secs(900)
        );
    }
}
