//! Use cases: make one delivery attempt of a billing notification (dispatched by the retry worker
//! for a `deliver_notification` work message), and sweep the outbox for notifications whose
//! message was never queued or whose chain of messages was lost. Resending and recovering are in
//! [`crate::services::recover`].
//!
//! Delivery is at least once: billing may see a notification more than once (a lost 2xx, a
//! redrive, a resend) and deduplicates on `webhook-id`, the notification id. Every attempt is
//! recorded on the notification — attempts, the last HTTP status and error, the status — so the
//! delivery log says what billing answered without anyone reading function logs.
//!
//! **The schedule and its messages.** A notification is delivered in a series of attempts on the
//! published schedule ([`NOTIFICATION_SCHEDULE`]: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, then
//! every 10 h; 13 attempts over about three days). SQS delays a message at most 15 minutes, so
//! the schedule cannot ride on one message's visibility (at most 12 h, and counted by the queue's
//! maxReceiveCount). Instead each attempt is its own message, naming the series and the attempt
//! it makes; after a failed attempt the worker records it and sends the message for the next one.
//! A message that arrives before its attempt is due sends itself again for what remains (at most
//! 15 minutes a hop). The SQS receive count of every message stays at 1 unless the worker itself
//! fails, so maxReceiveCount only catches crashes and outages.
//!
//! **The record decides, the messages ask.** The notification record holds the current series,
//! how many of its attempts were made and when the next is due. A message whose attempt was made
//! already (a duplicate, a chain the outbox sweep restarted though it was only late) or whose
//! series a resend replaced is dropped, so there is never more than one chain. The attempt is
//! recorded *before* the next message is sent: two copies racing for one attempt may both reach
//! billing, but only the one whose record wins sends a next message. If sending it fails, the
//! same message comes back (SQS), recognises its own recorded attempt (`last_attempt_by`) and
//! sends it again; if the worker dies in between, the outbox sweep finds the attempt overdue.

use std::time::{Duration, Instant};

use crate::domain::{
    DeliveryStatus, EndpointAttempt, EndpointHealth, Notification, NotificationId, WorkMessage,
};
use crate::error::{Code, Error};
use crate::ports::{
    NotificationStore, Notifier, NotifyOutcome, PublicationStore, StoreError, WorkQueue,
};
use crate::telemetry::{Metric, Metrics, Unit};

// The delivery schedule lives with every other retry schedule; named here too, where callers of
// the delivery use cases look for it.
pub use crate::services::retry_policy::{
    CHAIN_LOST_AFTER, MAX_MESSAGE_DELAY, NOTIFICATION_ATTEMPTS, NOTIFICATION_SCHEDULE,
    notification_wait,
};

/// The function whose metrics these are (the reconciler's sweep counts under it too).
const FUNCTION: &str = "retry-worker";

/// Writes of the delivery log tried before giving up on a notification being changed concurrently.
const SAVE_TRIES: usize = 5;

/// A message arriving this close before its attempt is due makes it (SQS delays are whole
/// seconds); earlier, it is sent on for what remains.
const EARLY_TOLERANCE_SECS: i64 = 1;

/// One `deliver_notification` message as the worker received it.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryMessage<'a> {
    pub notification_id: &'a NotificationId,
    /// The series and the attempt in it this message makes. `None` in a version-1 message
    /// (written before the schedule had series): the next attempt of the current series, if due.
    pub series: Option<u32>,
    pub attempt: Option<u32>,
    /// The SQS message id, the same on every receive of one message.
    pub message_id: &'a str,
}

/// Why a message was dropped without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its attempt was made already (a duplicate message, or a second chain).
    AlreadyMade,
    /// A resend or recovery started a newer series; that series' messages carry on.
    Superseded,
    /// The notification is failed or exhausted: only a resend starts it again.
    NotPending(DeliveryStatus),
    /// Its attempt is beyond the next one the record expects (it cannot be this chain's).
    AheadOfRecord,
    /// A version-1 message for a notification whose next attempt is not due: a message of the
    /// current schedule owns it.
    LegacyNotDue,
}

impl Dropped {
    fn as_str(self) -> &'static str {
        match self {
            Dropped::AlreadyMade => "already_made",
            Dropped::Superseded => "superseded",
            Dropped::NotPending(_) => "not_pending",
            Dropped::AheadOfRecord => "ahead_of_record",
            Dropped::LegacyNotDue => "legacy_not_due",
        }
    }
}

/// What became of a delivery message. In every case the message itself is done: whatever comes
/// next has a message of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Billing has it (now, or before).
    Delivered,
    /// Not accepted; attempt `attempt` is queued for `at` (unix seconds).
    Retry { attempt: u32, at: i64 },
    /// Billing refused it for good (410, or `Paybridge-Retry: never`); recorded as `failed`.
    Failed,
    /// The schedule's last attempt failed; recorded as `exhausted`.
    Exhausted,
    /// Not due before `due`: the message was sent on for what remains (at most 15 minutes).
    Waiting { due: i64 },
    /// Nothing to do for this message (see [`Dropped`]).
    Dropped(Dropped),
}

/// Makes the attempt `message` asks for, if it is still to be made and due, records it, and
/// queues the next one after a failure.
///
/// `now` (unix seconds) is the `webhook-timestamp`, the time recorded, and what "due" is measured
/// against — tests pass any time they like.
pub async fn deliver(
    store: &impl NotificationStore,
    notifier: &impl Notifier,
    queue: &impl WorkQueue,
    message: &DeliveryMessage<'_>,
    now: i64,
) -> Result<Delivery, Error> {
    let id = message.notification_id;
    let n = load(store, id).await?;
    let (series, attempt) = match judge(&n, message, now) {
        Judged::Attempt { series, attempt } => (series, attempt),
        Judged::Done(delivery) => {
            log_without_attempt(&n, message, delivery);
            return Ok(delivery);
        }
        Judged::NotDue {
            series,
            attempt,
            due,
        } => {
            let next = WorkMessage::deliver_notification(id, series, attempt);
            queue.send(&next, hop(due - now)).await?;
            return Ok(Delivery::Waiting { due });
        }
        Judged::Requeue {
            series,
            attempt,
            at,
        } => {
            // This message made the latest attempt and comes back: queueing the next one failed.
            let next = WorkMessage::deliver_notification(id, series, attempt);
            queue.send(&next, hop(at - now)).await?;
            tracing::info!(notification_id = %id, series, attempt, due = at, outcome = "requeued", "the next attempt is queued again");
            return Ok(Delivery::Retry { attempt, at });
        }
    };

    let started = Instant::now();
    let outcome = notifier.send(&n, now).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let wait = match &outcome {
        NotifyOutcome::RetryLater { retry_after, .. } => notification_wait(attempt, *retry_after),
        NotifyOutcome::Delivered { .. } | NotifyOutcome::Rejected { .. } => None,
    };
    let result = Attempted {
        series,
        attempt,
        by: message.message_id,
        outcome: &outcome,
        wait,
        now,
    };
    let event_type = n.event_type.clone();
    let delivery = match record(store, n, &result).await? {
        Recorded::Saved => result.delivery(),
        Recorded::DeliveredMeanwhile => Delivery::Delivered,
        Recorded::Stale(why) => Delivery::Dropped(why),
    };
    let health = endpoint_health(store, &outcome, now).await;
    report(
        id,
        &event_type,
        &result,
        delivery,
        latency_ms,
        health.as_ref(),
    );
    if let Delivery::Retry { attempt: next, at } = delivery {
        let follow_up = WorkMessage::deliver_notification(id, series, next);
        queue.send(&follow_up, hop(at - now)).await?;
    }
    Ok(delivery)
}

/// The delay of a message for something due in `secs`: all of it, up to SQS's 15 minutes.
fn hop(secs: i64) -> Duration {
    Duration::from_secs(secs.max(0) as u64).min(MAX_MESSAGE_DELAY)
}

/// What a message may do, judged against the record.
#[derive(Debug)]
enum Judged {
    Attempt { series: u32, attempt: u32 },
    NotDue { series: u32, attempt: u32, due: i64 },
    Requeue { series: u32, attempt: u32, at: i64 },
    Done(Delivery),
}

fn judge(n: &Notification, message: &DeliveryMessage<'_>, now: i64) -> Judged {
    if n.status == DeliveryStatus::Delivered {
        return Judged::Done(Delivery::Delivered);
    }
    if n.status != DeliveryStatus::Pending {
        return Judged::Done(Delivery::Dropped(Dropped::NotPending(n.status)));
    }
    let due = n.series.next_attempt_at.unwrap_or(n.created_at);
    let (series, attempt) = match (message.series, message.attempt) {
        (Some(series), Some(attempt)) => (series, attempt),
        // A version-1 message: the worker before this one kept retrying through SQS's
        // visibility. It makes the next attempt if it is due; if not, a current message has it.
        _ if due > now + EARLY_TOLERANCE_SECS => {
            return Judged::Done(Delivery::Dropped(Dropped::LegacyNotDue));
        }
        _ => (n.series.number, n.series.attempts + 1),
    };
    if series != n.series.number {
        return Judged::Done(Delivery::Dropped(Dropped::Superseded));
    }
    let made = n.series.attempts;
    if attempt == made && n.series.last_attempt_by.as_deref() == Some(message.message_id) {
        return Judged::Requeue {
            series,
            attempt: attempt + 1,
            at: due,
        };
    }
    if attempt <= made {
        return Judged::Done(Delivery::Dropped(Dropped::AlreadyMade));
    }
    if attempt > made + 1 {
        return Judged::Done(Delivery::Dropped(Dropped::AheadOfRecord));
    }
    if due > now + EARLY_TOLERANCE_SECS {
        return Judged::NotDue {
            series,
            attempt,
            due,
        };
    }
    Judged::Attempt { series, attempt }
}

fn log_without_attempt(n: &Notification, message: &DeliveryMessage<'_>, delivery: Delivery) {
    let (id, event_type) = (&n.id, &n.event_type);
    let (series, attempt) = (message.series, message.attempt);
    match delivery {
        Delivery::Delivered => {
            tracing::info!(notification_id = %id, %event_type, ?series, ?attempt, outcome = "already_delivered", "notification already delivered; not sent again");
        }
        Delivery::Dropped(Dropped::AheadOfRecord) => {
            tracing::warn!(notification_id = %id, %event_type, ?series, ?attempt, attempts_made = n.series.attempts, outcome = "ahead_of_record", "a delivery message for an attempt the record does not expect; dropped (the outbox sweep restarts a lost chain)");
        }
        Delivery::Dropped(why) => {
            tracing::info!(notification_id = %id, %event_type, ?series, ?attempt, current_series = n.series.number, attempts_made = n.series.attempts, status = n.status.as_str(), outcome = why.as_str(), "delivery message dropped: nothing left for it to do");
        }
        _ => {}
    }
}

async fn load(store: &impl NotificationStore, id: &NotificationId) -> Result<Notification, Error> {
    store.get_notification(id).await?.ok_or_else(|| {
        Error::new(
            Code::NotificationNotFound,
            format!("notification {id} does not exist"),
        )
    })
}

/// One attempt and what follows from it.
struct Attempted<'a> {
    series: u32,
    attempt: u32,
    /// The message that made it.
    by: &'a str,
    outcome: &'a NotifyOutcome,
    /// After a retryable answer: the wait before the next attempt; `None` after the last one.
    wait: Option<Duration>,
    now: i64,
}

impl Attempted<'_> {
    fn delivery(&self) -> Delivery {
        match (self.outcome, self.wait) {
            (NotifyOutcome::Delivered { .. }, _) => Delivery::Delivered,
            (NotifyOutcome::Rejected { .. }, _) => Delivery::Failed,
            (NotifyOutcome::RetryLater { .. }, Some(wait)) => Delivery::Retry {
                attempt: self.attempt + 1,
                at: self.now + wait.as_secs() as i64,
            },
            (NotifyOutcome::RetryLater { .. }, None) => Delivery::Exhausted,
        }
    }

    /// The attempt's effect on the delivery log.
    fn apply(&self, n: &mut Notification) {
        n.attempts = n.attempts.saturating_add(1);
        n.version += 1;
        if n.series.number == self.series {
            n.series.attempts = n.series.attempts.max(self.attempt);
            n.series.last_attempt_by = Some(self.by.to_owned());
        }
        n.series.next_attempt_at = None;
        match (self.outcome, self.delivery()) {
            (NotifyOutcome::Delivered { status }, _) => {
                n.status = DeliveryStatus::Delivered;
                n.delivered_at = Some(self.now);
                n.last_status = Some(*status);
                n.last_error = None;
            }
            (NotifyOutcome::Rejected { status, body }, _) => {
                n.status = DeliveryStatus::Failed;
                n.last_status = Some(*status);
                n.last_error = Some(format!(
                    "billing refused the notification for good ({status}): {body}"
                ));
            }
            (NotifyOutcome::RetryLater { status, error, .. }, delivery) => {
                n.last_status = *status;
                n.last_error = Some(error.clone());
                if let Delivery::Retry { at, .. } = delivery {
                    n.status = DeliveryStatus::Pending;
                    n.series.next_attempt_at = Some(at);
                } else {
                    n.status = DeliveryStatus::Exhausted;
                }
            }
        }
    }

    /// Whether this attempt still counts on top of `current` (someone wrote first).
    fn still_counts(&self, current: &Notification) -> Result<(), Dropped> {
        if matches!(self.outcome, NotifyOutcome::Delivered { .. }) {
            return Ok(()); // billing has it: that is recorded whatever happened meanwhile
        }
        if current.series.number != self.series {
            Err(Dropped::Superseded)
        } else if current.status != DeliveryStatus::Pending {
            Err(Dropped::NotPending(current.status))
        } else if current.series.attempts >= self.attempt {
            Err(Dropped::AlreadyMade)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    /// This attempt is in the log.
    Saved,
    /// Another attempt recorded a delivery first; that stands.
    DeliveredMeanwhile,
    /// Another message recorded this attempt first, or a resend started a new series: this one's
    /// result is not recorded and it queues nothing (there must be one chain).
    Stale(Dropped),
}

/// Writes the attempt into the delivery log at the next version. If someone else wrote first, it
/// re-reads: a delivery recorded meanwhile stands, and a failed attempt another message recorded
/// first, or a series a resend replaced, makes this one stale.
async fn record(
    store: &impl NotificationStore,
    mut current: Notification,
    attempt: &Attempted<'_>,
) -> Result<Recorded, Error> {
    for _ in 0..SAVE_TRIES {
        let mut next = current.clone();
        attempt.apply(&mut next);
        match store.save_notification(&next).await {
            Ok(()) => return Ok(Recorded::Saved),
            Err(StoreError::Conflict) => {
                current = load(store, &current.id).await?;
                if current.status == DeliveryStatus::Delivered {
                    return Ok(Recorded::DeliveredMeanwhile);
                }
                if let Err(why) = attempt.still_counts(&current) {
                    return Ok(Recorded::Stale(why));
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

/// Records the attempt in the endpoint's health. Best effort: a failure here is logged, and the
/// delivery it measured stands.
async fn endpoint_health(
    store: &impl NotificationStore,
    outcome: &NotifyOutcome,
    now: i64,
) -> Option<EndpointHealth> {
    let attempt = match outcome {
        NotifyOutcome::Delivered { .. } => EndpointAttempt::Accepted,
        NotifyOutcome::RetryLater { status, .. } => {
            EndpointAttempt::NotAccepted { status: *status }
        }
        // A deliberate, final refusal is an answer from a working endpoint, not an outage.
        NotifyOutcome::Rejected { .. } => return store.endpoint_health().await.ok().flatten(),
    };
    match store.record_endpoint_attempt(attempt, now).await {
        Ok(health) => Some(health),
        Err(e) => {
            tracing::warn!(error = %e, "could not record the billing endpoint's health");
            None
        }
    }
}

/// The metrics of the endpoint's health at `now`.
fn health_metrics(metrics: Metrics, health: &EndpointHealth, now: i64) -> Metrics {
    metrics
        .value(
            Metric::BillingConsecutiveFailures,
            f64::from(health.consecutive_failures),
            Unit::Count,
        )
        .value(
            Metric::BillingSecondsSinceSuccess,
            health.seconds_since_success(now) as f64,
            Unit::Seconds,
        )
}

/// Logs and metrics of one attempt.
fn report(
    id: &NotificationId,
    event_type: &str,
    a: &Attempted<'_>,
    delivery: Delivery,
    latency_ms: f64,
    health: Option<&EndpointHealth>,
) {
    let (series, attempt) = (a.series, a.attempt);
    let (status, error) = match a.outcome {
        NotifyOutcome::Delivered { status } => (Some(*status), None),
        NotifyOutcome::Rejected { status, body } => (Some(*status), Some(body.as_str())),
        NotifyOutcome::RetryLater { status, error, .. } => (*status, Some(error.as_str())),
    };
    let error = error.unwrap_or("");
    let metric = match delivery {
        Delivery::Delivered => {
            tracing::info!(notification_id = %id, %event_type, series, attempt, http_status = ?status, outcome = "delivered", "notification delivered");
            Some(Metric::NotificationDelivered)
        }
        Delivery::Failed => {
            tracing::error!(notification_id = %id, %event_type, series, attempt, http_status = ?status, error, outcome = "rejected", "billing refused the notification for good; recorded as failed");
            Some(Metric::NotificationFailed)
        }
        Delivery::Exhausted => {
            tracing::error!(notification_id = %id, %event_type, series, attempt, http_status = ?status, error, outcome = "exhausted", "notification not delivered by the schedule's last attempt; recorded as exhausted (make recover / make resend)");
            Some(Metric::NotificationExhausted)
        }
        Delivery::Retry { attempt: next, at } => {
            tracing::warn!(notification_id = %id, %event_type, series, attempt, http_status = ?status, error, next_attempt = next, next_attempt_at = at, retry_in_secs = at - a.now, outcome = "retry", "notification not delivered; will retry");
            Some(Metric::NotificationRetried)
        }
        Delivery::Dropped(why) => {
            tracing::info!(notification_id = %id, %event_type, series, attempt, http_status = ?status, outcome = why.as_str(), "another message recorded this attempt first, or a resend replaced the series; nothing more queued");
            None
        }
        Delivery::Waiting { .. } => None,
    };
    let mut metrics =
        Metrics::new(FUNCTION).value(Metric::DeliveryLatency, latency_ms, Unit::Milliseconds);
    if let Some(m) = metric {
        metrics = metrics.count(m);
    }
    if let Some(h) = health {
        metrics = health_metrics(metrics, h, a.now);
    }
    metrics.emit();
}

/// Queues delivery of pending notifications that nothing will deliver, at most `limit` read,
/// earliest due first; returns how many it queued:
///
/// - never attempted in their series and due for longer than `older_than`: their enqueue after
///   the commit (or a resend's) failed — the outbox guarantee;
/// - attempted, with the next attempt overdue by more than [`CHAIN_LOST_AFTER`]: the message
///   chain was lost (a worker died between recording an attempt and queueing the next one, a
///   message was dead-lettered). A chain that was only late is not doubled: each attempt is made
///   by one message (see the module's notes).
///
/// Pending notifications whose next attempt is still ahead have their message and are left
/// alone. While any notification is pending, the endpoint's health is reported as metrics too,
/// so the "billing down" alarm keeps its data between sparse attempts. The bus's outbox is swept
/// on the same terms ([`crate::services::publish::sweep_publications`]); the count includes it.
pub async fn sweep_outbox(
    store: &(impl NotificationStore + PublicationStore),
    queue: &impl WorkQueue,
    older_than: Duration,
    now: i64,
    limit: i32,
) -> Result<usize, Error> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let before = now.saturating_sub(secs(older_than));
    let lost_before = now.saturating_sub(secs(CHAIN_LOST_AFTER));
    // The bus's outbox is swept whatever happens to this one's, and the other way round.
    let published =
        crate::services::publish::sweep_publications(store, queue, older_than, now, limit).await;
    let queued = sweep_http(store, queue, before, lost_before, limit).await;
    report_health_while_pending(store, queued.as_ref().is_ok_and(|(_, any)| *any), now).await;
    match (queued, published) {
        (Ok((queued, _)), Ok(published)) => Ok(queued + published),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The HTTP outbox's part of [`sweep_outbox`]: how many it queued, and whether any was due.
async fn sweep_http(
    store: &impl NotificationStore,
    queue: &impl WorkQueue,
    before: i64,
    lost_before: i64,
    limit: i32,
) -> Result<(usize, bool), Error> {
    let due = store.pending_notifications(before, limit).await?;
    let mut queued = 0;
    for n in due.iter().filter(|n| n.status == DeliveryStatus::Pending) {
        let due_at = n.series.next_attempt_at.unwrap_or(n.created_at);
        let never_attempted = n.series.attempts == 0;
        if !(never_attempted && due_at < before || due_at < lost_before) {
            continue;
        }
        let attempt = n.series.attempts + 1;
        let message = WorkMessage::deliver_notification(&n.id, n.series.number, attempt);
        queue.send(&message, Duration::ZERO).await?;
        let why = if never_attempted {
            "never_queued"
        } else {
            "chain_lost"
        };
        tracing::info!(notification_id = %n.id, event_type = %n.event_type, series = n.series.number, attempt, due_at, reason = why, "outbox sweep queued a notification");
        queued += 1;
    }
    if queued > 0 {
        Metrics::new(FUNCTION)
            .value(Metric::OutboxSwept, queued as f64, Unit::Count)
            .emit();
    }
    Ok((queued, !due.is_empty()))
}

/// Emits the endpoint's health if any notification is pending. Best effort.
async fn report_health_while_pending(store: &impl NotificationStore, any_due: bool, now: i64) {
    let pending =
        any_due || (store.pending_notifications(i64::MAX, 1).await).is_ok_and(|p| !p.is_empty());
    if !pending {
        return;
    }
    match store.endpoint_health().await {
        Ok(Some(health)) => health_metrics(Metrics::new(FUNCTION), &health, now).emit(),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the billing endpoint's health"),
    }
}

#[cfg(test)]
mod tests;
