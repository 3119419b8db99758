//! Use cases: deliver a billing notification from the outbox (dispatched by the retry worker for a
//! `deliver_notification` work message), sweep the outbox for notifications whose message was
//! never queued, and re-send one on support's request.
//!
//! Delivery is at least once: billing may see a notification more than once (a lost 2xx, a
//! redrive, a resend) and deduplicates on `webhook-id`, the notification id. Every attempt is
//! recorded on the notification — attempts, the last HTTP status and error, the status — so the
//! delivery log says what billing answered without anyone reading function logs.

use std::time::{Duration, Instant};

use crate::domain::{DeliveryStatus, Notification, NotificationId, WorkMessage};
use crate::error::{Code, Error};
use crate::ports::{NotificationStore, Notifier, NotifyOutcome, StoreError, WorkQueue};
use crate::telemetry::{Metric, Metrics, Unit};

// The delivery backoff lives with every other retry schedule; named here too, where callers of
// the delivery use cases look for it.
pub use crate::services::retry_policy::{FIRST_BACKOFF, MAX_BACKOFF, backoff};

/// Attempts before a notification that billing keeps answering "later" is marked failed. Equal to
/// the work queue's `maxReceiveCount` (template.yaml), so the last attempt records `failed` before
/// SQS moves the message to the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 8;

/// Writes of the delivery log tried before giving up on a notification being changed concurrently.
const SAVE_TRIES: usize = 5;

/// What the worker does with the message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Billing has it (now, or before). Delete the message.
    Delivered,
    /// Try again after `after` (make the message visible again then).
    Retry { after: Duration },
    /// Billing refused it, or attempts ran out; it is recorded as failed. Delete the message;
    /// `make resend ID=…` or a redrive tries again.
    Failed,
}

/// Delivers notification `id` (attempt `attempt` of at most `max_attempts`, both 1-based) and
/// records the attempt.
///
/// A notification already delivered is not sent again, so duplicate messages are harmless. A
/// failed one is sent: a message for it means someone asked to try again. `now` (unix seconds) is
/// the `webhook-timestamp` and the time recorded.
pub async fn deliver(
    store: &impl NotificationStore,
    notifier: &impl Notifier,
    id: &NotificationId,
    attempt: u32,
    max_attempts: u32,
    now: i64,
) -> Result<Delivery, Error> {
    let notification = load(store, id).await?;
    if notification.status == DeliveryStatus::Delivered {
        tracing::info!(notification_id = %id, event_type = %notification.event_type, attempt, outcome = "already_delivered", "notification already delivered; not sent again");
        return Ok(Delivery::Delivered);
    }

    let event_type = notification.event_type.clone();
    let started = Instant::now();
    let outcome = notifier.send(&notification, now).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let gave_up = attempt >= max_attempts;

    if record(store, notification, &outcome, gave_up, now).await? == Recorded::DeliveredMeanwhile {
        tracing::info!(notification_id = %id, %event_type, attempt, outcome = "delivered_meanwhile", "a concurrent attempt delivered the notification first");
        return Ok(Delivery::Delivered);
    }

    let (delivery, metric) = match &outcome {
        NotifyOutcome::Delivered { status } => {
            tracing::info!(notification_id = %id, %event_type, attempt, http_status = status, outcome = "delivered", "notification delivered");
            (Delivery::Delivered, Metric::NotificationDelivered)
        }
        NotifyOutcome::Rejected { status, .. } => {
            tracing::error!(notification_id = %id, %event_type, attempt, http_status = status, outcome = "rejected", "billing refused the notification; recorded as failed");
            (Delivery::Failed, Metric::NotificationFailed)
        }
        NotifyOutcome::RetryLater { status, error, .. } if gave_up => {
            tracing::error!(notification_id = %id, %event_type, attempt, http_status = ?status, error = %error, outcome = "gave_up", "notification not delivered after the last attempt; recorded as failed");
            (Delivery::Failed, Metric::NotificationFailed)
        }
        NotifyOutcome::RetryLater {
            status,
            retry_after,
            error,
        } => {
            let after = backoff(attempt, *retry_after);
            tracing::warn!(notification_id = %id, %event_type, attempt, http_status = ?status, error = %error, retry_in_secs = after.as_secs(), outcome = "retry", "notification not delivered; will retry");
            (Delivery::Retry { after }, Metric::NotificationRetried)
        }
    };
    Metrics::new("retry-worker")
        .count(metric)
        .value(Metric::DeliveryLatency, latency_ms, Unit::Milliseconds)
        .emit();
    Ok(delivery)
}

async fn load(store: &impl NotificationStore, id: &NotificationId) -> Result<Notification, Error> {
    store.get_notification(id).await?.ok_or_else(|| {
        Error::new(
            Code::NotificationNotFound,
            format!("notification {id} does not exist"),
        )
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    /// This attempt is in the log.
    Saved,
    /// Another attempt recorded a delivery first; that stands.
    DeliveredMeanwhile,
}

/// Writes the attempt into the delivery log at the next version. If someone else wrote first, it
/// re-reads: a notification delivered meanwhile stays delivered, anything else gets this attempt
/// recorded on top.
async fn record(
    store: &impl NotificationStore,
    mut current: Notification,
    outcome: &NotifyOutcome,
    gave_up: bool,
    now: i64,
) -> Result<Recorded, Error> {
    for _ in 0..SAVE_TRIES {
        let mut next = current.clone();
        apply(&mut next, outcome, gave_up, now);
        match store.save_notification(&next).await {
            Ok(()) => return Ok(Recorded::Saved),
            Err(StoreError::Conflict) => {
                current = load(store, &current.id).await?;
                if current.status == DeliveryStatus::Delivered {
                    return Ok(Recorded::DeliveredMeanwhile);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::new(
        Code::ConcurrentUpdate,
        "the notification is being changed concurrently; retry",
    )
    .with_retry_after(1))
}

/// One attempt's effect on the delivery log.
fn apply(n: &mut Notification, outcome: &NotifyOutcome, gave_up: bool, now: i64) {
    n.attempts = n.attempts.saturating_add(1);
    n.version += 1;
    match outcome {
        NotifyOutcome::Delivered { status } => {
            n.status = DeliveryStatus::Delivered;
            n.delivered_at = Some(now);
            n.last_status = Some(*status);
            n.last_error = None;
        }
        NotifyOutcome::Rejected { status, body } => {
            n.status = DeliveryStatus::Failed;
            n.last_status = Some(*status);
            n.last_error = Some(format!(
                "billing refused the notification ({status}): {body}"
            ));
        }
        NotifyOutcome::RetryLater { status, error, .. } => {
            n.status = if gave_up {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Pending
            };
            n.last_status = *status;
            n.last_error = Some(error.clone());
        }
    }
}

/// Queues delivery of notifications still pending `older_than` after they were written and never
/// attempted: their enqueue after the commit failed (the outbox guarantee). Returns how many it
/// queued; at most `limit` are read, oldest first.
///
/// A pending notification with attempts already has a message (the worker keeps it until the
/// notification is delivered or failed); queueing another would double its retries, so it is left
/// alone.
pub async fn sweep_outbox(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    older_than: Duration,
    now: i64,
    limit: i32,
) -> Result<usize, Error> {
    let before = now.saturating_sub(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX));
    let pending = store.pending_notifications(before, limit).await?;
    let mut queued = 0;
    for n in pending
        .iter()
        .filter(|n| n.status == DeliveryStatus::Pending && n.attempts == 0)
    {
        queue
            .send(&WorkMessage::deliver_notification(&n.id), Duration::ZERO)
            .await?;
        tracing::info!(notification_id = %n.id, event_type = %n.event_type, created_at = n.created_at, "outbox sweep queued a notification");
        queued += 1;
    }
    if queued > 0 {
        Metrics::new("retry-worker")
            .value(Metric::OutboxSwept, queued as f64, Unit::Count)
            .emit();
    }
    Ok(queued)
}

/// Support's "re-send by id": puts the notification back to `pending` (keeping its attempts and
/// last error, so the log still shows what happened) and queues its delivery.
///
/// Works for every status. A failed notification gets a fresh series of attempts; a pending one an
/// extra attempt now; a delivered one is sent again with the same `webhook-id` — billing, which
/// deduplicates on that id, may ignore it, which is the point of resending a notification billing
/// says it never processed only after checking its own dedupe records.
pub async fn resend(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    id: &NotificationId,
) -> Result<Notification, Error> {
    for _ in 0..SAVE_TRIES {
        let mut n = load(store, id).await?;
        let was = n.status;
        n.status = DeliveryStatus::Pending;
        n.version += 1;
        match store.save_notification(&n).await {
            Ok(()) => {
                queue
                    .send(&WorkMessage::deliver_notification(id), Duration::ZERO)
                    .await?;
                tracing::info!(notification_id = %id, event_type = %n.event_type, was = was.as_str(), attempts = n.attempts, "notification queued for re-sending");
                return Ok(n);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::new(
        Code::ConcurrentUpdate,
        "the notification is being changed concurrently; retry",
    )
    .with_retry_after(1))
}

#[cfg(test)]
mod tests;
