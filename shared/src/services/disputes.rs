//! Disputes: a gateway's word about a chargeback or inquiry, applied to its charge, and the
//! billing-facing reads (`GET /charges/{id}/disputes`, `GET /disputes/{id}`).
//!
//! A dispute lives on its charge (see docs/data-model.md), so a dispute's change and the
//! refundable amount it moves are one conditional write, with the notifications they cause:
//! `dispute.opened|updated|won|lost`, and `charge.updated` when funds were withdrawn or reinstated.

use serde_json::json;

use crate::domain::{Charge, DisputeId, DisputeObservation};
use crate::error::{Code, Error};
use crate::ports::{ChargeStore, StoreError, WorkQueue};
use crate::services::ApiResponse;
use crate::services::charges::read::{charge_id, load_charge};
use crate::services::notify;
use crate::services::retry_policy::{CONFLICT_RETRIES, reread_after_conflict, still_contended};
use crate::services::views;
use crate::telemetry::{Metric, Metrics};

/// Applies what the gateway reports about a dispute of `charge` and writes the charge at its next
/// version with the notifications; on a concurrent write, re-reads and applies again. Returns the
/// charge as stored.
pub async fn settle(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    mut charge: Charge,
    observation: &DisputeObservation,
    now: i64,
) -> Result<Charge, Error> {
    for attempt in 0..CONFLICT_RETRIES {
        let before = charge.clone();
        let Some((index, kind)) = charge.apply_dispute(observation, now) else {
            return Ok(charge);
        };
        charge.version += 1;
        let dispute = &charge.disputes[index];
        let mut notifications = vec![notify::for_dispute(&charge, dispute, kind, now)];
        notifications.extend(notify::for_charge_change(&before, &charge, now));
        match store.save_charge(&charge, &notifications).await {
            Ok(()) => {
                let dispute = &charge.disputes[index];
                tracing::info!(charge_id = %charge.id, dispute_id = %dispute.id, status = dispute.status.as_str(), funds_withdrawn = dispute.funds_withdrawn, funds_reinstated = dispute.funds_reinstated, "dispute updated");
                Metrics::new("retry-worker")
                    .dimension("Gateway", charge.gateway.as_str())
                    .dimension("Status", dispute.status.as_str())
                    .count(Metric::DisputeChanged)
                    .emit();
                notify::enqueue(queue, &notifications).await;
                return Ok(charge);
            }
            Err(StoreError::Conflict) => {
                let reread = store.get_charge(&charge.id);
                charge = reread_after_conflict(attempt, "charge", reread).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(still_contended("charge"))
}

/// `GET /charges/{id}/disputes`: the charge's disputes, oldest first.
pub async fn list_disputes(store: &impl ChargeStore, id: &str) -> Result<ApiResponse, Error> {
    let charge = load_charge(store, &charge_id(id)?).await?;
    let data: Vec<_> = (charge.disputes.iter())
        .map(|d| views::dispute(&charge, d))
        .collect();
    Ok(ApiResponse::json(
        200,
        &json!({ "object": "list", "data": data }),
    ))
}

/// `GET /disputes/{id}`.
pub async fn get_dispute(store: &impl ChargeStore, id: &str) -> Result<ApiResponse, Error> {
    let not_found = || Error::new(Code::DisputeNotFound, "no dispute with this id");
    let id = DisputeId::parse(id).map_err(|_| not_found())?;
    let charge = store.charge_of_dispute(&id).await?.ok_or_else(not_found)?;
    let dispute = (charge.disputes.iter().find(|d| d.id == id)).ok_or_else(not_found)?;
    Ok(ApiResponse::json(200, &views::dispute(&charge, dispute)))
}
