//! Use case: apply a gateway's later word about a refund — Stripe `charge.refund.updated` /
//! `refund.updated` / `refund.failed`, Adyen `REFUND` / `REFUND_FAILED` — dispatched by the retry
//! worker. Forward-only: `pending → succeeded | failed | canceled`, and `succeeded → failed`,
//! which gives the amount back to the charge so it can be refunded again.

use super::settle;
use crate::domain::{Refund, RefundId, RefundOutcome};
use crate::error::{Code, Error};
use crate::ports::{ChargeStore, RefundStore, WorkQueue};

pub async fn apply_refund_outcome<S: ChargeStore + RefundStore>(
    store: &S,
    queue: &impl WorkQueue,
    id: &RefundId,
    outcome: &RefundOutcome,
    now: i64,
) -> Result<Refund, Error> {
    let refund = store
        .get_refund(id)
        .await?
        .ok_or_else(|| Error::new(Code::RefundNotFound, format!("refund {id} does not exist")))?;
    settle(store, queue, refund, outcome, now).await
}
