//! Use case: record a gateway webhook — verified, deduplicated, durable before acknowledged.
//!
//! For each verified event:
//! 1. one conditional put of the event record keyed by (gateway, event id), status `received`,
//!    carrying an *enqueue lease* owned by this delivery;
//! 2. the work message goes on the queue;
//! 3. the record moves to `queued`.
//!
//! Only then is the delivery answered 2xx. If the put or the send fails the answer is 5xx and the
//! gateway retries. A redelivery that finds the record:
//! - `queued`, `processed`, `ignored` or `orphaned` → acknowledged, no new work;
//! - `received` with an expired lease (the first delivery died between put and send, or its send
//!   failed) → takes the lease over with a conditional write and enqueues — so no event is
//!   stranded, and two redeliveries never both enqueue;
//! - `received` with a live lease (a concurrent delivery is enqueueing right now) → waits briefly
//!   for it to finish, then acknowledges; if it does not finish in time, answers 409 with
//!   `Retry-After` rather than claim a message that may never be sent.

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
    /// How long a concurrent redelivery waits for the owner to finish enqueueing.
    pub in_flight_wait: Duration,
    /// The Stripe partner event source EventBridge events must come from; `None`: any Stripe
    /// partner source.
    pub stripe_event_source: Option<String>,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            tolerance: Duration::from_secs(300),
            retention: Duration::from_secs(30 * 86_400),
            enqueue_lease: Duration::from_secs(15),
            in_flight_wait: Duration::from_secs(3),
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

    // A redelivery. Wait out a concurrent owner, or take over an abandoned job.
    let started = tokio::time::Instant::now();
    let mut current = existing;
    loop {
        if current.status != EventStatus::Received {
            return Ok(Outcome::Duplicate);
        }
        let clock = now + started.elapsed().as_secs() as i64;
        if current.enqueue_lease_until <= clock {
            let lease = clock + settings.enqueue_lease.as_secs() as i64;
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
                Err(StoreError::Conflict) => {} // another delivery moved it first: look again
                Err(e) => return Err(e.into()),
            }
        } else if started.elapsed() >= settings.in_flight_wait {
            return Err(Error::new(
                Code::DeliveryInProgress,
                "another delivery of this event is being recorded; retry shortly",
            )
            .with_retry_after(settings.enqueue_lease.as_secs()));
        } else {
            tokio::time::sleep(Duration::from_millis(25)).await;
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
}

/// Sends the work message and marks the record queued. Holds the lease `lease` while doing so.
async fn enqueue(
    store: &impl EventStore,
    queue: &impl WorkQueue,
    record: &EventRecord,
    lease: i64,
) -> Result<(), Error> {
    let message = WorkMessage::apply_event(record.gateway, &record.event_id);
    if let Err(e) = queue.send(&message, Duration::ZERO).await {
        // Let the gateway's retry take the job at once instead of waiting for the lease.
        if let Err(release) = store
            .release_enqueue_lease(record.gateway, &record.event_id, lease)
            .await
        {
            tracing::warn!(event_id = %record.event_id, error = %release, "could not release enqueue lease");
        }
        return Err(e.into());
    }
    match store
        .mark_event_queued(record.gateway, &record.event_id)
        .await
    {
        Ok(()) => Ok(()),
        // The worker already moved it on: fine.
        Err(StoreError::Conflict) => Ok(()),
        // The message is out and the record is durable; the delivery is safe to acknowledge. A
        // later redelivery may enqueue a second copy, which the worker applies idempotently.
        Err(e) => {
            tracing::warn!(event_id = %record.event_id, error = %e, "event queued but its status could not be updated");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
