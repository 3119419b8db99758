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
    Charge, ChargeStatus, DisputeUpdate, EventStatus, Gateway, GatewayUpdate, Interpretation,
    Money, PaymentUpdate, Refund, RefundId, RefundStatus, RefundUpdate, RefundedTotal, Reported,
};
use crate::error::{Code, Error};
use crate::ports::{
    ChargeStore, EventStore, GatewayObject, GatewayRefLookup, RefundStore, StoreError, WorkQueue,
};
use crate::services::notify;
use crate::services::retry_policy::{CONFLICT_RETRIES, still_contended};
use crate::telemetry::{Metric, Metrics};
use crate::webhooks::{adyen, standard, stripe};

/// What applying an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied (changes, if any, are stored with their notifications).
    Applied,
    /// Already processed, ignored, orphaned or flagged before: nothing to do.
    AlreadyDone,
    /// Nothing paybridge tracks changes.
    Ignored(String),
    /// Its charge or refund is not known (yet): retry later.
    NotYet,
    /// Still unknown at the last attempt: recorded as orphaned.
    Orphaned,
    /// At the last attempt of this message, its charge is not known yet (for
    /// [`WAIT_FOR_OWN_ANSWER_SECS`]: a charge whose gateway answer was lost), or known but not
    /// yet where the event needs it (for [`WAIT_FOR_GATEWAY_SECS`]: a refund that overtook the
    /// payment's late success, a refunded total no refund event explains yet): left open for the
    /// reconciler to queue again.
    LeftOpen,
    /// Its amount or currency contradicts the record: not applied, recorded as flagged for a
    /// person.
    Flagged(String),
}

/// What one update of an event came to.
enum Found {
    Done,
    /// Its charge or refund is not known (yet).
    Missing,
    /// Its charge is known, but not yet in the state the update needs: another event of the
    /// gateway's (which it redelivers for days) has to land first.
    Waiting,
    Contradicts(String),
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
    let (mut missing, mut waiting) = (0, 0);
    for update in &updates {
        let found = match update {
            GatewayUpdate::Payment(u) => apply_payment(store, queue, gateway, u, now).await?,
            GatewayUpdate::Refund(u) => apply_refund(store, queue, gateway, u, now).await?,
            GatewayUpdate::Dispute(u) => apply_dispute(store, queue, gateway, u, now).await?,
            GatewayUpdate::RefundedTotal(u) => check_refunded_total(store, gateway, u).await?,
        };
        match found {
            Found::Done => {}
            Found::Missing => missing += 1,
            Found::Waiting => waiting += 1,
            Found::Contradicts(why) => {
                finish(store, gateway, event_id, EventStatus::Flagged).await?;
                tracing::error!(gateway = %gateway, event_id, event_type = %event.event_type, reason = %why, "the event contradicts paybridge's record: not applied, flagged for a person");
                metrics().count(Metric::EventContradicts).emit();
                return Ok(Applied::Flagged(why));
            }
        }
    }
    if missing + waiting > 0 {
        // Unknown, it may be about a charge of paybridge's whose answer was lost (the reconciler
        // learns its payment within a run or two); known, it waits for the gateway's other events.
        let window = match missing {
            0 => WAIT_FOR_GATEWAY_SECS,
            _ => WAIT_FOR_OWN_ANSWER_SECS,
        };
        if last_attempt && now - event.received_at < window {
            tracing::warn!(gateway = %gateway, event_id, event_type = %event.event_type, "the event's charge is not known yet, or not yet where the event needs it, at this message's last attempt: left open, the reconciler queues it again");
            metrics().count(Metric::EventLeftOpen).emit();
            return Ok(Applied::LeftOpen);
        }
        if last_attempt {
            finish(store, gateway, event_id, EventStatus::Orphaned).await?;
            tracing::error!(gateway = %gateway, event_id, event_type = %event.event_type, "no charge or refund matches this event after the last attempt (or the gateway's refunded total is still unexplained): orphaned");
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

/// The charge paybridge keeps for the gateway's payment `reference`, if any.
async fn charge_by_ref<S: ChargeStore + GatewayRefLookup>(
    store: &S,
    gateway: Gateway,
    reference: Option<&str>,
) -> Result<Option<Charge>, Error> {
    let Some(reference) = reference.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    match store.find_gateway_ref(gateway, reference).await? {
        Some(GatewayObject::Charge(id)) => Ok(store.get_charge(&id).await?),
        _ => Ok(None),
    }
}

/// Finds the charge an update is about: by the gateway's payment id, else by the id paybridge
/// sent along. `None` if paybridge does not know it (yet).
async fn find_charge<S: ChargeStore + GatewayRefLookup>(
    store: &S,
    gateway: Gateway,
    gateway_ref: Option<&str>,
    charge_id: Option<&crate::domain::ChargeId>,
) -> Result<Option<Charge>, Error> {
    if let Some(charge) = charge_by_ref(store, gateway, gateway_ref).await? {
        return Ok(Some(charge));
    }
    let Some(id) = charge_id else {
        return Ok(None);
    };
    let charge = store.get_charge(id).await?;
    // The id came from the event: believe it only if the charge is at this gateway and not
    // already tied to another payment.
    Ok(charge.filter(|c| {
        c.gateway == gateway && (c.gateway_ref.is_none() || c.gateway_ref.as_deref() == gateway_ref)
    }))
}

/// How long an event whose charge is known but not yet where it needs it stays open: Stripe
/// redelivers an event for three days (and the reconciler recovers what it failed to deliver), so
/// the event it waits for has landed by then, or never will.
pub const WAIT_FOR_GATEWAY_SECS: i64 = 3 * 86_400;

/// How long an event about a payment paybridge does not know stays open: a charge whose gateway
/// answer was lost gets its payment from the reconciler (15 minutes in flight, then its next
/// run), which queues the open events after it has looked at the charges. Events about payments
/// made outside paybridge are orphaned after it.
pub const WAIT_FOR_OWN_ANSWER_SECS: i64 = 3_600;

/// How far ahead of paybridge's clock a gateway's event time may be (clock skew).
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Why the event's time cannot be believed, if it cannot: it orders the status flips only a
/// gateway makes, and Adyen does not sign `eventDate`, so a time in the future (which would pin
/// the status against every genuine later event) is refused.
fn future_dated(observed_at: Option<i64>, now: i64) -> Option<String> {
    let t = observed_at?;
    (t > now.saturating_mul(1000) + MAX_CLOCK_SKEW_MS)
        .then(|| format!("the event is dated {t} ms, in the future (now {now} s)"))
}

/// Why an amount the event reports contradicts the record, if it does: another currency, or
/// more than `at_most`.
fn contradiction(reported: Option<&Reported>, money: &Money, at_most: i64) -> Option<String> {
    let r = reported?;
    if r.amount < 0 {
        return Some(format!("the event reports a negative amount, {}", r.amount));
    }
    let currency = money.currency();
    let currency = currency.code();
    if !r.currency.eq_ignore_ascii_case(currency) {
        return Some(format!(
            "the event reports {} {}, the record is in {currency}",
            r.amount, r.currency
        ));
    }
    (r.amount > at_most).then(|| {
        format!(
            "the event reports {} {currency}, more than the {at_most} the record allows",
            r.amount
        )
    })
}

async fn apply_payment<S>(
    store: &S,
    queue: &impl WorkQueue,
    gateway: Gateway,
    u: &PaymentUpdate,
    now: i64,
) -> Result<Found, Error>
where
    S: ChargeStore + GatewayRefLookup,
{
    let Some(charge) = find_charge(
        store,
        gateway,
        u.gateway_ref.as_deref(),
        u.charge_id.as_ref(),
    )
    .await?
    else {
        return Ok(Found::Missing);
    };
    let total = charge.amount.minor();
    if let Some(why) = future_dated(u.observed_at, now) {
        return Ok(Found::Contradicts(format!("charge {}: {why}", charge.id)));
    }
    if let Some(why) = contradiction(u.reported.as_ref(), &charge.amount, total).or_else(|| {
        (u.outcome.captured > total).then(|| {
            format!(
                "the event reports {} captured of a {total} charge",
                u.outcome.captured
            )
        })
    }) {
        return Ok(Found::Contradicts(format!("charge {}: {why}", charge.id)));
    }
    let mut outcome = u.outcome.clone();
    if u.captured_if_automatic && charge.capture && outcome.status == ChargeStatus::Authorized {
        outcome.status = ChargeStatus::Succeeded;
        outcome.captured = total;
    }
    super::charges::settle_at(store, queue, charge, &outcome, u.observed_at, now).await?;
    Ok(Found::Done)
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
) -> Result<Found, Error>
where
    S: ChargeStore + RefundStore + GatewayRefLookup,
{
    for _ in 0..CONFLICT_RETRIES {
        if let Some(refund) = find_refund(store, gateway, u).await? {
            if let Some(why) = future_dated(u.observed_at, now) {
                return Ok(Found::Contradicts(format!("refund {}: {why}", refund.id)));
            }
            let amount = refund.amount.minor();
            if let Some(why) =
                contradiction(u.reported.as_ref(), &refund.amount, amount).or_else(|| {
                    u.reported
                        .as_ref()
                        .filter(|r| r.amount != amount)
                        .map(|r| format!("the event reports {}, the refund is {amount}", r.amount))
                })
            {
                return Ok(Found::Contradicts(format!("refund {}: {why}", refund.id)));
            }
            super::refunds::settle_at(store, queue, refund, &u.outcome, u.observed_at, now).await?;
            return Ok(Found::Done);
        }
        if u.refund_id.is_some() {
            // Ours, not stored yet (the event overtook our own write).
            return Ok(Found::Missing);
        }
        let Some(charge) = charge_by_ref(store, gateway, u.payment_ref.as_deref()).await? else {
            return Ok(Found::Missing);
        };
        match adopt_refund(store, queue, charge, u, now).await? {
            Some(found) => return Ok(found),
            // Someone adopted it, or moved the charge, meanwhile: look again.
            None => continue,
        }
    }
    Err(still_contended("refund"))
}

/// Makes a refund done outside paybridge (the gateway's dashboard, another integration) a
/// paybridge refund of `charge`, with its notifications. `None` on a concurrent write.
async fn adopt_refund<S>(
    store: &S,
    queue: &impl WorkQueue,
    mut charge: Charge,
    u: &RefundUpdate,
    now: i64,
) -> Result<Option<Found>, Error>
where
    S: ChargeStore + RefundStore,
{
    let Some(gateway_ref) = u.gateway_ref.clone().filter(|r| !r.is_empty()) else {
        return Ok(Some(Found::Contradicts(format!(
            "a refund of charge {} without the gateway's refund id",
            charge.id
        ))));
    };
    match charge.status {
        // Adyen's CANCEL_OR_REFUND of a payment that was never captured cancels it (its payment
        // update, applied first, does that): there is nothing to refund.
        s if s == ChargeStatus::Canceled
            || (s == ChargeStatus::Failed && charge.gateway == Gateway::Adyen) =>
        {
            tracing::info!(charge_id = %charge.id, gateway_ref, "a refund of a charge that took nothing: nothing to adopt");
            return Ok(Some(Found::Done));
        }
        // The refund overtook the capture's event (or Adyen's re-capture), or — at Stripe, where
        // only a payment that took money can be refunded — the success after a failure: wait
        // until it lands.
        s if !s.is_captured() => return Ok(Some(Found::Waiting)),
        _ => {}
    }
    let Some(reported) = &u.reported else {
        return Ok(Some(Found::Contradicts(format!(
            "refund {gateway_ref} of charge {}: the event gives no amount to adopt it with",
            charge.id
        ))));
    };
    if let Some(why) = contradiction(Some(reported), &charge.amount, charge.captured) {
        return Ok(Some(Found::Contradicts(format!(
            "refund {gateway_ref} of charge {}: {why}",
            charge.id
        ))));
    }
    // More than is left unrefunded, but not more than was captured: a refund paybridge counts
    // may have failed at the gateway, and its event not landed yet (found by the simulator,
    // issue 17) — wait for it rather than flag the refund.
    if reported.amount > charge.captured - charge.refunded {
        return Ok(Some(Found::Waiting));
    }
    let amount = Money::new(reported.amount, charge.currency())
        .map_err(|e| Error::internal(format!("an adopted refund's amount: {e}"), None))?;
    let mut refund = Refund {
        gateway_ref: Some(gateway_ref),
        external: true,
        ..Refund::pending(
            RefundId::generate(),
            &charge.id,
            amount,
            charge.gateway,
            now,
        )
    };
    refund.apply_at(&u.outcome, u.observed_at, now);
    let before = charge.clone();
    let minor = refund.amount.minor();
    match refund.status {
        RefundStatus::Succeeded => charge.reinstate_refund(minor, now),
        RefundStatus::Pending => charge.refund_reserved += minor,
        RefundStatus::Failed | RefundStatus::Canceled => {}
    }
    charge.updated_at = now;
    charge.version += 1;
    let mut notifications = vec![notify::for_refund(&charge, &refund, now)];
    notifications.extend(notify::for_charge_change(&before, &charge, now));
    match store.adopt_refund(&refund, &charge, &notifications).await {
        Ok(()) => {
            tracing::warn!(refund_id = %refund.id, charge_id = %charge.id, gateway_ref = ?refund.gateway_ref, amount = minor, status = refund.status.as_str(), "a refund made outside paybridge was adopted");
            Metrics::new("retry-worker")
                .dimension("Gateway", charge.gateway.as_str())
                .count(Metric::RefundAdopted)
                .emit();
            notify::enqueue(queue, &notifications).await;
            Ok(Some(Found::Done))
        }
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn apply_dispute<S>(
    store: &S,
    queue: &impl WorkQueue,
    gateway: Gateway,
    u: &DisputeUpdate,
    now: i64,
) -> Result<Found, Error>
where
    S: ChargeStore + GatewayRefLookup,
{
    let Some(charge) = find_charge(
        store,
        gateway,
        u.payment_ref.as_deref(),
        u.charge_id.as_ref(),
    )
    .await?
    else {
        return Ok(Found::Missing);
    };
    let o = &u.observation;
    let reported = Reported {
        amount: o.amount,
        currency: o.currency.clone(),
    };
    if let Some(why) = contradiction(Some(&reported), &charge.amount, charge.amount.minor()) {
        return Ok(Found::Contradicts(format!(
            "dispute {} of charge {}: {why}",
            o.gateway_ref, charge.id
        )));
    }
    super::disputes::settle(store, queue, charge, o, now).await?;
    Ok(Found::Done)
}

/// The gateway's refunded total must be explained by the refunds paybridge knows (refunded and in
/// flight); more than that, wait for the refund events (retried, and orphaned — counted and
/// alarmed — if it never adds up).
async fn check_refunded_total<S>(
    store: &S,
    gateway: Gateway,
    u: &RefundedTotal,
) -> Result<Found, Error>
where
    S: ChargeStore + RefundStore + GatewayRefLookup,
{
    let Some(charge) = charge_by_ref(store, gateway, Some(&u.payment_ref)).await? else {
        return Ok(Found::Missing);
    };
    if let Some(why) = contradiction(Some(&u.total), &charge.amount, charge.amount.minor()) {
        return Ok(Found::Contradicts(format!("charge {}: {why}", charge.id)));
    }
    // Before 2025-03-31.basil, Stripe counted its release of an uncaptured remainder (after a
    // partial capture) in `amount_refunded`; endpoints created on such versions still do.
    // Stripe counts pending refunds in it (paybridge reserves theirs), and an older event shows
    // a smaller total: only money out that no refund explains is news.
    let uncaptured = (charge.amount.minor() - charge.captured).max(0);
    if u.total.amount <= charge.refunded + charge.refund_reserved + uncaptured {
        return Ok(Found::Done);
    }
    // An older total may count a refund that has failed since (Stripe counts a refund until it
    // fails): every refund the gateway took, failed later or not, may explain it.
    let refunds = store.refunds_for_charge(&charge.id).await?;
    let ever_out: i64 = (refunds.iter())
        .filter(|r| r.gateway_ref.is_some() && r.status != RefundStatus::Canceled)
        .map(|r| r.amount.minor())
        .sum();
    if u.total.amount <= ever_out.max(charge.refunded + charge.refund_reserved) + uncaptured {
        return Ok(Found::Done);
    }
    tracing::warn!(charge_id = %charge.id, gateway_total = u.total.amount, refunded = charge.refunded, reserved = charge.refund_reserved, "the gateway's refunded total is not explained yet by the refunds paybridge knows");
    Ok(Found::Waiting)
}
