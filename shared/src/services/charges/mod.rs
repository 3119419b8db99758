//! Charge use cases: create, read, capture, cancel, the retry of a charge whose gateway
//! answer was lost, and the expiry of one whose customer never authenticated. Each lives in its own module; this one holds what they share — [`settle`], which applies a gateway outcome with an optimistic write.

pub mod cancel;
pub mod capture;
pub mod create;
pub mod expire;
mod invoice;
pub mod read;
pub mod retry;

use crate::domain::{Charge, PaymentOutcome};
use crate::error::Error;
use crate::ports::{ChargeStore, StoreError, WorkQueue};
use crate::services::ApiResponse;
use crate::services::notify;
use crate::services::retry_policy::{CONFLICT_RETRIES, reread_after_conflict, still_contended};
/// The charge as billing sees it.
pub use crate::services::views::charge as view;

/// Body size limit of billing-facing requests.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The answer of a capture or cancel: 200 with the charge once it took effect, 202 while the
/// gateway still works on it (a webhook confirms).
pub(crate) fn answer(charge: &Charge, done: bool) -> ApiResponse {
    ApiResponse::json(if done { 200 } else { 202 }, &view(charge))
}

/// Applies `outcome` to the stored charge and writes it at the next version, with the
/// notification a status change causes (then queued for delivery). On a concurrent
/// write (a webhook applied at the same moment) it re-reads and applies again, so neither
/// change is lost. Returns the charge as stored.
pub async fn settle(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    charge: Charge,
    outcome: &PaymentOutcome,
    now: i64,
) -> Result<Charge, Error> {
    settle_at(store, queue, charge, outcome, None, now).await
}

/// [`settle`] for an outcome the gateway timed (`observed_at`: its event's time), which orders
/// the status flips only a gateway makes.
pub async fn settle_at(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    charge: Charge,
    outcome: &PaymentOutcome,
    observed_at: Option<i64>,
    now: i64,
) -> Result<Charge, Error> {
    let (charge, saved) = update(store, queue, charge, |charge| {
        let before = charge.clone();
        // One notification per real state change, written with the change (outbox).
        (charge.apply_at(outcome, observed_at, now)).then(|| {
            notify::for_charge_change(&before, charge, now)
                .into_iter()
                .collect()
        })
    })
    .await?;
    if saved {
        tracing::info!(charge_id = %charge.id, status = charge.status.as_str(), "charge updated");
    }
    Ok(charge)
}

/// Applies `change` to the charge and writes it at the next version with the notifications
/// `change` returns (an outbox: then queued for delivery); `None` means nothing changed, and
/// nothing is written. On a concurrent write it re-reads the charge and applies `change` again,
/// so neither writer's change is lost. Returns the charge as stored and whether it was written.
pub(crate) async fn update(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    mut charge: Charge,
    change: impl Fn(&mut Charge) -> Option<Vec<crate::domain::Notification>>,
) -> Result<(Charge, bool), Error> {
    for attempt in 0..CONFLICT_RETRIES {
        // The next version, before `change` builds its notifications: `data.version` is the
        // version stored with the change it reports.
        charge.version += 1;
        let Some(notifications) = change(&mut charge) else {
            charge.version -= 1;
            return Ok((charge, false));
        };
        match store.save_charge(&charge, &notifications).await {
            Ok(()) => {
                notify::enqueue(queue, &notifications).await;
                return Ok((charge, true));
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
