//! Use case: apply a recorded gateway event to its charge or refund (dispatched by the retry
//! worker for an `apply_event` work message).
//!
//! The event's stored payload is interpreted by its sender's webhook module into updates; each update
//! finds its charge or refund — by the gateway's object id (the `GWREF` pointer written with every
//! charge and refund) or by the id paybridge sent along (Stripe metadata, Adyen
//! `merchantReference`), which also works when the event overtakes paybridge's own write — and
//! goes through the forward-only state machines, with the notification each real change causes.
//!
//! - Applying an event twice changes nothing (final event statuses are never redone; the state
//!   machines ignore old news), and events in any order end in the same state.
//! - An event for an object paybridge does not know (yet) is retried with backoff; after the last
//!   attempt it is recorded as `orphaned` and counted, not dropped silently.

use crate::domain::{
    Charge, ChargeStatus, EventStatus, Gateway, GatewayUpdate, Interpretation, PaymentUpdate,
    Refund, RefundUpdate,
};
use crate::error::{Code, Error};
use crate::ports::{
    ChargeStore, EventStore, GatewayObject, GatewayRefLookup, RefundStore, StoreError, WorkQueue,
};
use crate::telemetry::{Metric, Metrics};
use crate::webhooks::{adyen, standard, stripe};

/// What applying an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied (changes, if any, are stored with their notifications).
    Applied,
    /// Already processed, ignored or orphaned before: nothing to do.
    AlreadyDone,
    /// Nothing paybridge tracks changes.
    Ignored(String),
    /// Its charge or refund is not known (yet): retry later.
    NotYet,
    /// Still unknown at the last attempt: recorded as orphaned.
    Orphaned,
}

/// The sender's webhook module's reading of an event.
pub fn interpret(gateway: Gateway, event_type: &str, payload: &str) -> Interpretation {
    match gateway {
        Gateway::Stripe => stripe::interpret(event_type, payload),
        Gateway::Adyen => adyen::interpret(event_type, payload),
        Gateway::Standard => standard::interpret(event_type, payload),
    }
}

pub async fn apply_event<S>(
    store: &S,
    queue: &impl WorkQueue,
    gateway: Gateway,
    event_id: &str,
    last_attempt: bool,
    now: i64,
) -> Result<Applied, Error>
where
    S: EventStore + ChargeStore + RefundStore + GatewayRefLookup,
{
    let event = store.get_event(gateway, event_id).await?.ok_or_else(|| {
        Error::new(
            Code::EventNotFound,
            format!("no recorded {gateway} event {event_id}"),
        )
    })?;
    if !matches!(event.status, EventStatus::Received | EventStatus::Queued) {
        return Ok(Applied::AlreadyDone);
    }
    let metrics = || Metrics::new("retry-worker").dimension("Gateway", gateway.as_str());
    let updates = match interpret(gateway, &event.event_type, &event.payload) {
        Interpretation::Ignore(reason) => {
            finish(store, gateway, event_id, EventStatus::Ignored).await?;
            tracing::info!(gateway = %gateway, event_id, event_type = %event.event_type, reason = %reason, "event ignored");
            metrics().count(Metric::EventIgnored).emit();
            return Ok(Applied::Ignored(reason));
        }
        Interpretation::Apply(updates) => updates,
    };
    let mut missing = 0;
    for update in &updates {
        let found = match update {
            GatewayUpdate::Payment(u) => apply_payment(store, queue, gateway, u, now).await?,
            GatewayUpdate::Refund(u) => apply_refund(store, queue, gateway, u, now).await?,
        };
        if !found {
            missing += 1;
        }
    }
    if missing > 0 {
        if last_attempt {
            finish(store, gateway, event_id, EventStatus::Orphaned).await?;
            tracing::error!(gateway = %gateway, event_id, event_type = %event.event_type, "no charge or refund matches this event after the last attempt: orphaned");
            metrics().count(Metric::EventOrphaned).emit();
            return Ok(Applied::Orphaned);
        }
        tracing::info!(gateway = %gateway, event_id, "event's charge or refund not found yet; will retry");
        return Ok(Applied::NotYet);
    }
    finish(store, gateway, event_id, EventStatus::Processed).await?;
    metrics().count(Metric::EventApplied).emit();
    Ok(Applied::Applied)
}

async fn finish(
    store: &impl EventStore,
    gateway: Gateway,
    event_id: &str,
    status: EventStatus,
) -> Result<(), Error> {
    match store.finish_event(gateway, event_id, status).await {
        // A concurrent copy of this message finished it first: fine.
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Finds the charge an update is about. `None` if paybridge does not know it (yet).
async fn find_charge<S: ChargeStore + GatewayRefLookup>(
    store: &S,
    gateway: Gateway,
    u: &PaymentUpdate,
) -> Result<Option<Charge>, Error> {
    if let Some(reference) = u.gateway_ref.as_deref()
        && let Some(GatewayObject::Charge(id)) = store.find_gateway_ref(gateway, reference).await?
    {
        return Ok(store.get_charge(&id).await?);
    }
    let Some(id) = &u.charge_id else {
        return Ok(None);
    };
    let charge = store.get_charge(id).await?;
    // The id came from the event: believe it only if the charge is at this gateway and not
    // already tied to another payment.
    Ok(charge.filter(|c| {
        c.gateway == gateway && (c.gateway_ref.is_none() || c.gateway_ref == u.gateway_ref)
    }))
}

async fn apply_payment<S>(
    store: &S,
    queue: &impl WorkQueue,
    gateway: Gateway,
    u: &PaymentUpdate,
    now: i64,
) -> Result<bool, Error>
where
    S: ChargeStore + GatewayRefLookup,
{
    let Some(charge) = find_charge(store, gateway, u).await? else {
        return Ok(false);
    };
    let mut outcome = u.outcome.clone();
    if u.captured_if_automatic && charge.capture && outcome.status == ChargeStatus::Authorized {
        outcome.status = ChargeStatus::Succeeded;
        outcome.captured = charge.amount.minor();
    }
    super::charges::settle(store, queue, charge, &outcome, now).await?;
    Ok(true)
}

async fn find_refund<S: RefundStore + GatewayRefLookup>(
    store: &S,
    gateway: Gateway,
    u: &RefundUpdate,
) -> Result<Option<Refund>, Error> {
    if let Some(reference) = u.gateway_ref.as_deref()
        && let Some(GatewayObject::Refund(id)) = store.find_gateway_ref(gateway, reference).await?
    {
        return Ok(store.get_refund(&id).await?);
    }
    let Some(id) = &u.refund_id else {
        return Ok(None);
    };
    let refund = store.get_refund(id).await?;
    Ok(refund.filter(|r| {
        r.gateway == gateway && (r.gateway_ref.is_none() || r.gateway_ref == u.gateway_ref)
    }))
}

async fn apply_refund<S>(
    store: &S,
    queue: &impl WorkQueue,
    gateway: Gateway,
    u: &RefundUpdate,
    now: i64,
) -> Result<bool, Error>
where
    S: ChargeStore + RefundStore + GatewayRefLookup,
{
    let Some(refund) = find_refund(store, gateway, u).await? else {
        return Ok(false);
    };
    super::refunds::settle(store, queue, refund, &u.outcome, now).await?;
    Ok(true)
}
