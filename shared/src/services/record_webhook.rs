//! Use case: record a gateway webhook — verified, deduplicated, durable before acknowledged.
//!
//! For each verified event, two AWS calls:
//! 1. one conditional put of the event record keyed by (gateway, event id), status `received`,
//!    carrying an *enqueue lease* owned by this delivery;
//! 2. the work message goes on the queue.
//!
//! Only then is the delivery answered 2xx. If the put or the send fails the answer is 5xx and the
//! gateway retries. A redelivery finds the record in the put's failed condition (no extra read):
//! - `processed`, `ignored`, `orphaned` (or `queued`, written by earlier releases) → acknowledged,
//!   no new work;
//! - `received` with a live lease → a delivery recorded it moments ago and is enqueueing it (or
//!   has): acknowledged, no new work. If that delivery's send fails it releases the lease and
//!   answers 5xx, so the gateway's retry enqueues; if the gateway does not retry (the duplicate's
//!   2xx counted), the reconciler re-queues an event still `received` after
//!   `ReconcileAfterSeconds`;
//! - `received` with an expired lease → not processed yet: the first delivery died before its
//!   send, its send failed, or the worker has not got to it. It takes the lease over with a
//!   conditional write (so two redeliveries never both enqueue) and enqueues again. The worker
//!   applies an event once however many messages ask for it.
//!
//! There is no `received → queued` mark after the send: the record does not say whether the
//! message is out, only whether the worker has processed the event. That saves one write per new
//! webhook, at the cost of a second message when a redelivery comes before the worker has
//! processed the first (docs/webhook-intake.md weighs it against a DynamoDB stream).

use std::time::Duration;

use http::HeaderMap;

use crate::domain::Gateway;
use crate::domain::WorkMessage;
use crate::domain::event::{EventRecord, EventStatus, VerifiedEvent};
use crate::error::{Code, Error};
use crate::ports::{EventStore, Inserted, SecretSource, StoreError, WorkQueue};
use crate::webhooks::{VerifyError, adyen, standard, stripe};

/// Settings of the intake use case.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    /// Accepted clock difference for signed timestamps.
    pub tolerance: Duration,
    /// How long event records are kept.
    pub retention: Duration,
    /// How long a delivery owns the job of enqueueing the event it recorded. Longer than the
    /// intake function's timeout, so a live delivery's lease never expires under it.
    pub enqueue_lease: Duration,
    /// The Stripe partner event source EventBridge events must come from; `None`: the bus path is
    /// off (webhook-intake refuses every EventBridge event).
    pub stripe_event_source: Option<String>,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            tolerance: Duration::from_secs(300),
            retention: Duration::from_secs(30 * 86_400),
            enqueue_lease: Duration::from_secs(15),
            stripe_event_source: None,
        }
    }
}

/// What happened to one event of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New, recorded and queued.
    Queued,
    /// New, of a type paybridge does not act on: recorded as ignored.
    Ignored,
    /// Seen before and already handled: acknowledged without new work.
    Duplicate,
    /// Seen before but never queued: queued now.
    Requeued,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::Requeued => "requeued",
        }
    }
}

/// The events of one delivery and what happened to each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub events: Vec<(String, String, Outcome)>,
}

/// Maps a verification failure to the caller-facing error (and the metric reason, its code).
pub fn verify_error(e: VerifyError) -> Error {
    match e {
        VerifyError::MissingSignature => Error::new(
            Code::MissingSignature,
            "the webhook signature headers are missing",
        ),
        VerifyError::MalformedSignature => Error::new(
            Code::MalformedSignature,
            "the webhook signature header is malformed",
        ),
        VerifyError::SignatureMismatch => {
            Error::new(Code::InvalidSignature, "the webhook signature is not valid")
        }
        VerifyError::StaleTimestamp => Error::new(
            Code::TimestampOutOfTolerance,
            "the webhook timestamp is too old or too far in the future",
        ),
        VerifyError::MalformedPayload(what) => Error::new(
            Code::MalformedPayload,
            format!("the webhook body is not a valid event: {what}"),
        ),
        VerifyError::Unauthorized => Error::new(
            Code::Unauthorized,
            "webhook credentials are missing or wrong",
        ),
        VerifyError::NotConfigured => {
            Error::internal("no webhook secret configured for this gateway", None)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies a delivery and parses its events. Pure apart from the secret lookup.
pub async fn verify(
    secrets: &impl SecretSource,
    gateway: Gateway,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<Vec<VerifiedEvent>, Error> {
    let secrets = secrets.secrets().await?;
    let tol = tolerance.as_secs();
    let keys = secrets.webhook_keys(gateway);
    let events = match gateway {
        Gateway::Stripe => {
            stripe::verify(header(headers, "stripe-signature"), body, keys, now, tol)
                .map_err(verify_error)?;
            vec![stripe::parse(body).map_err(verify_error)?]
        }
        Gateway::Standard => {
            let h = standard::Headers {
                id: header(headers, "webhook-id"),
                timestamp: header(headers, "webhook-timestamp"),
                signature: header(headers, "webhook-signature"),
            };
            standard::verify(h, body, keys, now, tol).map_err(verify_error)?;
            vec![standard::parse(h.id.unwrap_or_default(), body).map_err(verify_error)?]
        }
        Gateway::Adyen => {
            let adyen_secrets = secrets.adyen.as_ref();
            adyen::check_basic_auth(
                header(headers, "authorization"),
                adyen_secrets.and_then(|a| a.basic_auth.as_ref()),
            )
            .map_err(verify_error)?;
            adyen::verify_and_parse(body, keys).map_err(verify_error)?
        }
    };
    Ok(events)
}

/// Records a verified delivery: every event durable and queued (or ignored) before returning Ok.
pub async fn record(
    store: &impl EventStore,
    queue: &impl WorkQueue,
    settings: &IntakeSettings,
    events: Vec<VerifiedEvent>,
    now: i64,
) -> Result<Recorded, Error> {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let (gateway, id, ty) = (
            event.gateway,
            event.event_id.clone(),
            event.event_type.clone(),
        );
        let outcome = record_one(store, queue, settings, event, now).await?;
        tracing::info!(gateway = %gateway, event_id = %id, event_type = %ty, outcome = outcome.as_str(), "webhook event recorded");
        out.push((id, ty, outcome));
    }
    Ok(Recorded { events: out })
}

async fn record_one(
    store: &impl EventStore,
    queue: &impl WorkQueue,
    settings: &IntakeSettings,
    event: VerifiedEvent,
    now: i64,
) -> Result<Outcome, Error> {
    let record = EventRecord::new(
        event,
        now,
        settings.enqueue_lease.as_secs() as i64,
        settings.retention.as_secs() as i64,
    );
    let existing = match store.insert_event(&record).await? {
        Inserted::New if record.status == EventStatus::Ignored => return Ok(Outcome::Ignored),
        Inserted::New => {
            enqueue(store, queue, &record, record.enqueue_lease_until).await?;
            return Ok(Outcome::Queued);
        }
        Inserted::Existing(existing) => existing,
    };

    // A redelivery: acknowledged unless the event is still unprocessed past the lease.
    let mut current = existing;
    for _ in 0..3 {
        if current.status != EventStatus::Received || current.enqueue_lease_until > now {
            return Ok(Outcome::Duplicate);
        }
        let lease = now + settings.enqueue_lease.as_secs() as i64;
        match store
            .claim_enqueue_lease(
                current.gateway,
                &current.event_id,
                current.enqueue_lease_until,
                lease,
            )
            .await
        {
            Ok(()) => {
                enqueue(store, queue, &current, lease).await?;
                return Ok(Outcome::Requeued);
            }
            // Another delivery claimed it or the worker moved it on first: look again.
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        current = match store.get_event(current.gateway, &current.event_id).await? {
            Some(r) => r,
            None => {
                return Err(Error::internal(
                    "event record vanished while recording",
                    None,
                ));
            }
        };
    }
    // Three rounds lost to other writers: one of them is enqueueing it.
    Ok(Outcome::Duplicate)
}

/// Sends the work message, holding the lease `lease`. If the send fails, the lease is released
/// at once so the gateway's retry enqueues without waiting for it.
async fn enqueue(
    store: &impl EventStore,
    queue: &impl WorkQueue,
    record: &EventRecord,
    lease: i64,
) -> Result<(), Error> {
    let message = WorkMessage::apply_event(record.gateway, &record.event_id);
    if let Err(e) = queue.send(&message, Duration::ZERO).await {
        if let Err(release) = store
            .release_enqueue_lease(record.gateway, &record.event_id, lease)
            .await
        {
            tracing::warn!(event_id = %record.event_id, error = %release, "could not release enqueue lease");
        }
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
