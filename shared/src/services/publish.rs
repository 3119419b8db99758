//! Use cases: put a notification on the EventBridge bus (dispatched by the retry worker for a
//! `publish_notification` work message), and sweep the bus's outbox for publications whose
//! message was lost.
//!
//! The bus is a second delivery target beside billing's HTTP endpoint, with its own record per
//! notification (a [`Publication`], written in the state change's transaction), so a bus that is
//! down never holds up or repeats HTTP deliveries and the other way round.
//!
//! **Once per change.** EventBridge's `PutEvents` has no idempotency key, so the record stands
//! in for one: a worker first *claims* the publication (a lease of [`LEASE`], written at the
//! record's next version), then puts the event, then records it as published. A second copy of
//! the message (SQS delivers at least once; the sweep may have queued one) finds it published and
//! is done, or finds the lease held and comes back after it. Only a worker that dies — or loses
//! DynamoDB — between the put and the record can put the same notification twice; the copy
//! carries the same `detail.id`, which consumers deduplicate on, as they do on `webhook-id`.
//!
//! A put the bus refuses (throttled, an internal error, a bus that does not exist, no permission)
//! clears the lease and fails the message: SQS brings it back on the worker's backoff and
//! dead-letters it after maxReceiveCount, where the DLQ alarm sees it; `make redrive` puts it back
//! once the cause is fixed, and the sweep re-queues a publication whose message was lost.

use std::time::Duration;

use crate::domain::{ChargeId, NotificationId, Publication, PublicationStatus, WorkMessage};
use crate::error::{Code, Error};
use crate::ports::{EventBus, PublicationStore, StoreError, WorkQueue};
use crate::services::retry_policy::CHAIN_LOST_AFTER;
use crate::telemetry::{Metric, Metrics, Unit};

const FUNCTION: &str = "retry-worker";

/// How long a claim holds a publication, from the time the worker's batch started: twice the
/// retry worker's 60-second timeout, so no invocation can still be putting the event when its
/// claim runs out; short enough that a crashed worker's publication is taken up again soon.
pub const LEASE: Duration = Duration::from_secs(120);

/// Tries of recording a publication the bus took, against a store that fails for a moment (an
/// event on the bus that is not recorded would be put again after the lease).
const RECORD_TRIES: u32 = 3;

/// Writes of one publication tried before giving up on it being changed concurrently.
const SAVE_TRIES: usize = 5;

/// What a `publish_notification` message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Put on the bus now; EventBridge's id of the event.
    Now { event_id: String },
    /// Published before (a duplicate message, or one the sweep queued for a late chain).
    Already,
    /// Another worker holds it until then (unix seconds): come back after that.
    Busy { until: i64 },
    /// No publication record: the notification was written before the bus was a target.
    Missing,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Publishes notification `id` of charge `charge` on `bus`, once (see the module's notes).
/// `Err` (retryable) when the bus or the store failed: the message comes back.
pub async fn publish(
    store: &impl PublicationStore,
    bus: &impl EventBus,
    charge: &ChargeId,
    id: &NotificationId,
    now: i64,
) -> Result<Published, Error> {
    let claimed = match claim(store, charge, id, now).await? {
        Ok(p) => p,
        Err(Published::Missing) => {
            tracing::warn!(notification_id = %id, charge_id = %charge, outcome = "missing", "a publish message for a notification without a publication record (written before the bus was a target?); nothing to publish");
            return Ok(Published::Missing);
        }
        Err(outcome) => {
            tracing::info!(notification_id = %id, outcome = ?outcome, "publication not made by this message");
            return Ok(outcome);
        }
    };
    match bus.put(&claimed).await {
        Ok(event_id) => {
            let done = |p: &mut Publication| {
                p.status = PublicationStatus::Published;
                p.published_at = Some(now);
                p.event_id = Some(event_id.clone());
                p.lease_until = None;
                p.last_error = None;
            };
            // The event is on the bus: record it, unless another worker published it meanwhile
            // (its claim ran out under ours), whose event id then stays. A store that fails for
            // a moment is tried again before the message is given up.
            let pending = |p: &Publication| p.status == PublicationStatus::Pending;
            let mut tries = 0;
            loop {
                tries += 1;
                match change(store, claimed.clone(), pending, done).await {
                    Ok(_) => break,
                    Err(e) if tries < RECORD_TRIES && e.is_retryable() => {
                        tracing::warn!(notification_id = %id, error = %e, "could not record the publication yet; trying again");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            tracing::info!(notification_id = %id, event_type = %claimed.event_type, %event_id, attempt = claimed.attempts, outcome = "published", "notification put on the event bus");
            Metrics::new(FUNCTION)
                .count(Metric::NotificationPublished)
                .value(
                    Metric::DeliveryLatency,
                    (now - claimed.created_at).max(0) as f64 * 1000.0,
                    Unit::Milliseconds,
                )
                .emit();
            Ok(Published::Now { event_id })
        }
        Err(e) => {
            let failed = |p: &mut Publication| {
                p.lease_until = None;
                p.last_error = Some(e.0.clone());
            };
            let ours = |p: &Publication| {
                p.status == PublicationStatus::Pending && p.attempts == claimed.attempts
            };
            if let Err(save) = change(store, claimed.clone(), ours, failed).await {
                tracing::warn!(notification_id = %id, error = %save, "could not record the failed publication; its lease runs out by itself");
            }
            tracing::warn!(notification_id = %id, event_type = %claimed.event_type, attempt = claimed.attempts, error = %e, outcome = "retry", "the event bus did not take the notification; will retry");
            Metrics::new(FUNCTION)
                .count(Metric::NotificationPublishFailed)
                .emit();
            Err(Error::new(
                Code::TemporarilyUnavailable,
                format!("the event bus did not take notification {id}: {e}"),
            )
            .with_retry_after(1))
        }
    }
}

/// Takes the lease on a pending publication, or says why this message has nothing to do.
async fn claim(
    store: &impl PublicationStore,
    charge: &ChargeId,
    id: &NotificationId,
    now: i64,
) -> Result<Result<Publication, Published>, Error> {
    for _ in 0..SAVE_TRIES {
        let Some(mut p) = store.get_publication(charge, id).await? else {
            return Ok(Err(Published::Missing));
        };
        if p.status == PublicationStatus::Published {
            return Ok(Err(Published::Already));
        }
        if let Some(until) = p.lease_until.filter(|until| *until > now) {
            return Ok(Err(Published::Busy { until }));
        }
        let until = now.saturating_add(secs(LEASE));
        p.lease_until = Some(until);
        p.next_attempt_at = until;
        p.attempts = p.attempts.saturating_add(1);
        p.version += 1;
        match store.save_publication(&p).await {
            Ok(()) => return Ok(Ok(p)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(concurrent())
}

/// Applies `f` to the publication at its next version, re-reading after a conflict while `still`
/// holds for what is stored. `Ok(false)` if it stopped holding.
async fn change(
    store: &impl PublicationStore,
    mut current: Publication,
    still: impl Fn(&Publication) -> bool,
    f: impl Fn(&mut Publication),
) -> Result<bool, Error> {
    for _ in 0..SAVE_TRIES {
        let mut next = current.clone();
        f(&mut next);
        next.version = current.version + 1;
        match store.save_publication(&next).await {
            Ok(()) => return Ok(true),
            Err(StoreError::Conflict) => {
                match store
                    .get_publication(&current.charge_id, &current.id)
                    .await?
                {
                    Some(p) if still(&p) => current = p,
                    _ => return Ok(false),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(concurrent())
}

fn concurrent() -> Error {
    Error::new(
        Code::ConcurrentUpdate,
        "the publication is being changed concurrently; retry",
    )
    .with_retry_after(1)
}

/// Queues publication of pending publications nothing is working on, at most `limit` read,
/// earliest first; returns how many it queued: never tried and older than `older_than` (the
/// enqueue after the commit failed), or last claimed or failed more than [`CHAIN_LOST_AFTER`]
/// ago (the message was lost or dead-lettered and not redriven). A publication queued twice is
/// still published once (the claim).
pub async fn sweep_publications(
    store: &impl PublicationStore,
    queue: &impl WorkQueue,
    older_than: Duration,
    now: i64,
    limit: i32,
) -> Result<usize, Error> {
    let before = now.saturating_sub(secs(older_than));
    let lost_before = now.saturating_sub(secs(CHAIN_LOST_AFTER));
    let mut queued = 0;
    for p in store.pending_publications(before, limit).await? {
        let never_tried = p.attempts == 0;
        if p.status != PublicationStatus::Pending
            || !(never_tried || p.next_attempt_at < lost_before)
        {
            continue;
        }
        let message = WorkMessage::publish_notification(&p.charge_id, &p.id);
        queue.send(&message, Duration::ZERO).await?;
        let reason = if never_tried {
            "never_queued"
        } else {
            "chain_lost"
        };
        tracing::info!(notification_id = %p.id, event_type = %p.event_type, attempts = p.attempts, reason, "outbox sweep queued a publication");
        queued += 1;
    }
    if queued > 0 {
        Metrics::new(FUNCTION)
            .value(Metric::OutboxSwept, queued as f64, Unit::Count)
            .emit();
    }
    Ok(queued)
}

#[cfg(test)]
mod tests;
