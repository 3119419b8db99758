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

/// Attempts before a notification that billing keeps answering "later" is marked failed. Equal to
/// the work queue's `maxReceiveCount` (template.yaml), so the last attempt records `failed` before
/// SQS moves the message to the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 8;

/// The wait before the second attempt; it doubles per attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// The longest wait between two attempts that paybridge chooses itself.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// SQS cannot hide a message for longer than 12 hours, whatever billing asks for.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

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

/// The wait after failed attempt `attempt` (1-based): [`FIRST_BACKOFF`] doubling per attempt up
/// to [`MAX_BACKOFF`], less a random quarter at most so that notifications held up by the same
/// outage do not all come back at once — and never less than billing's `Retry-After`.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = FIRST_BACKOFF
        .as_secs()
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF.as_secs());
    let spread = base / 4;
    let jitter = (uuid::Uuid::new_v4().as_u128() % (u128::from(spread) + 1)) as u64;
    Duration::from_secs(base - jitter).max(retry_after.unwrap_or_default().min(MAX_VISIBILITY))
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
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use super::*;
    use crate::domain::ChargeId;
    use crate::ports::QueueError;

    const NOW: i64 = 1_800_000_000;

    /// A concurrent writer's change to a stored notification.
    type Interference = Box<dyn FnOnce(&mut Notification) + Send>;

    /// The delivery log in memory, with DynamoDB's version condition, and a hook that changes the
    /// stored notification just before the next save (a concurrent writer).
    #[derive(Default)]
    struct FakeStore {
        items: Mutex<HashMap<NotificationId, Notification>>,
        interfere: Mutex<Option<Interference>>,
    }

    impl FakeStore {
        fn with(n: &Notification) -> Self {
            let store = FakeStore::default();
            store.items.lock().unwrap().insert(n.id.clone(), n.clone());
            store
        }
        fn get(&self, id: &NotificationId) -> Notification {
            self.items.lock().unwrap()[id].clone()
        }
    }

    impl NotificationStore for FakeStore {
        async fn get_notification(
            &self,
            id: &NotificationId,
        ) -> Result<Option<Notification>, StoreError> {
            Ok(self.items.lock().unwrap().get(id).cloned())
        }

        async fn save_notification(&self, n: &Notification) -> Result<(), StoreError> {
            let mut items = self.items.lock().unwrap();
            let stored = items.get_mut(&n.id).ok_or(StoreError::Conflict)?;
            if let Some(change) = self.interfere.lock().unwrap().take() {
                change(stored);
                stored.version += 1;
            }
            if stored.version + 1 != n.version {
                return Err(StoreError::Conflict);
            }
            *stored = n.clone();
            Ok(())
        }

        async fn notifications_for_charge(
            &self,
            charge: &ChargeId,
        ) -> Result<Vec<Notification>, StoreError> {
            let mut list: Vec<_> = (self.items.lock().unwrap().values())
                .filter(|n| &n.charge_id == charge)
                .cloned()
                .collect();
            list.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(list)
        }

        async fn pending_notifications(
            &self,
            before: i64,
            limit: i32,
        ) -> Result<Vec<Notification>, StoreError> {
            let mut list: Vec<_> = (self.items.lock().unwrap().values())
                .filter(|n| n.status == DeliveryStatus::Pending && n.created_at < before)
                .cloned()
                .collect();
            list.sort_by_key(|n| (n.created_at, n.id.clone()));
            list.truncate(limit.max(0) as usize);
            Ok(list)
        }
    }

    /// Billing, answering from a script (then 200 forever), counting what it was sent.
    #[derive(Default)]
    struct FakeBilling {
        script: Mutex<VecDeque<NotifyOutcome>>,
        sent: Mutex<Vec<(NotificationId, i64)>>,
    }

    impl FakeBilling {
        fn answering(script: Vec<NotifyOutcome>) -> Self {
            FakeBilling {
                script: Mutex::new(script.into()),
                ..Default::default()
            }
        }
        fn sends(&self) -> usize {
            self.sent.lock().unwrap().len()
        }
    }

    impl Notifier for FakeBilling {
        async fn send(&self, n: &Notification, timestamp: i64) -> NotifyOutcome {
            self.sent.lock().unwrap().push((n.id.clone(), timestamp));
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(NotifyOutcome::Delivered { status: 200 })
        }
    }

    #[derive(Default)]
    struct FakeQueue {
        sent: Mutex<Vec<WorkMessage>>,
        down: bool,
    }

    impl WorkQueue for FakeQueue {
        async fn send(&self, message: &WorkMessage, _delay: Duration) -> Result<(), QueueError> {
            if self.down {
                return Err(QueueError("queue down".into()));
            }
            self.sent.lock().unwrap().push(message.clone());
            Ok(())
        }
    }

    fn notification(created_at: i64) -> Notification {
        let id = NotificationId::generate();
        Notification {
            body: format!(r#"{{"id":"{id}","type":"charge.succeeded","data":{{}}}}"#),
            id,
            charge_id: ChargeId::generate(),
            event_type: "charge.succeeded".into(),
            object_id: "ch_x".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at,
            delivered_at: None,
            version: 1,
        }
    }

    fn unavailable(retry_after: Option<u64>) -> NotifyOutcome {
        NotifyOutcome::RetryLater {
            status: Some(503),
            retry_after: retry_after.map(Duration::from_secs),
            error: "billing answered 503".into(),
        }
    }

    #[tokio::test]
    async fn a_delivered_notification_is_sent_once_and_recorded() {
        let n = notification(NOW - 5);
        let (store, billing) = (FakeStore::with(&n), FakeBilling::default());
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        let again = deliver(&store, &billing, &n.id, 2, MAX_ATTEMPTS, NOW + 1).await;
        assert_eq!(again.unwrap(), Delivery::Delivered);
        assert_eq!(
            billing.sent.lock().unwrap().as_slice(),
            &[(n.id.clone(), NOW)]
        );
        let stored = store.get(&n.id);
        assert_eq!(
            (stored.status, stored.attempts, stored.version),
            (DeliveryStatus::Delivered, 1, 2)
        );
        assert_eq!(
            (stored.delivered_at, stored.last_status, stored.last_error),
            (Some(NOW), Some(200), None)
        );
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_as_failed_with_billings_answer() {
        let n = notification(NOW);
        let store = FakeStore::with(&n);
        let billing = FakeBilling::answering(vec![NotifyOutcome::Rejected {
            status: 422,
            body: r#"{"error":"unknown invoice"}"#.into(),
        }]);
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Failed);
        let stored = store.get(&n.id);
        assert_eq!(
            (stored.status, stored.attempts, stored.last_status),
            (DeliveryStatus::Failed, 1, Some(422))
        );
        assert!(
            stored.last_error.unwrap().contains("unknown invoice"),
            "the log keeps billing's reason"
        );
    }

    #[tokio::test]
    async fn retries_back_off_and_the_last_attempt_gives_up() {
        let n = notification(NOW);
        let store = FakeStore::with(&n);
        let billing = FakeBilling::answering(vec![unavailable(None); 3]);
        let first = deliver(&store, &billing, &n.id, 1, 3, NOW).await.unwrap();
        let Delivery::Retry { after } = first else {
            panic!("{first:?}")
        };
        assert!((22..=30).contains(&after.as_secs()), "{after:?}");
        let second = deliver(&store, &billing, &n.id, 2, 3, NOW + 30)
            .await
            .unwrap();
        let Delivery::Retry { after } = second else {
            panic!("{second:?}")
        };
        assert!((45..=60).contains(&after.as_secs()), "{after:?}");
        assert_eq!(store.get(&n.id).status, DeliveryStatus::Pending);
        let last = deliver(&store, &billing, &n.id, 3, 3, NOW + 90).await;
        assert_eq!(last.unwrap(), Delivery::Failed);
        let stored = store.get(&n.id);
        assert_eq!(
            (stored.status, stored.attempts, stored.last_status),
            (DeliveryStatus::Failed, 3, Some(503))
        );
        assert_eq!(stored.last_error.as_deref(), Some("billing answered 503"));
        assert_eq!(billing.sends(), 3);
    }

    #[tokio::test]
    async fn billings_retry_after_is_never_cut_short() {
        let n = notification(NOW);
        let store = FakeStore::with(&n);
        let billing = FakeBilling::answering(vec![unavailable(Some(900)), unavailable(Some(1))]);
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(
            got.unwrap(),
            Delivery::Retry {
                after: Duration::from_secs(900)
            }
        );
        // A shorter Retry-After than the backoff does not shorten the backoff.
        let Delivery::Retry { after } = deliver(&store, &billing, &n.id, 2, MAX_ATTEMPTS, NOW)
            .await
            .unwrap()
        else {
            panic!("expected a retry")
        };
        assert!(after >= Duration::from_secs(45), "{after:?}");
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_stays_within_sqs_limits() {
        for attempt in 1..=40 {
            let d = backoff(attempt, None).as_secs();
            let base = (30u64 << (attempt - 1).min(20)).min(3600);
            assert!(d >= base * 3 / 4 && d <= base, "attempt {attempt}: {d}s");
        }
        assert_eq!(
            backoff(1, Some(Duration::from_secs(100_000))),
            MAX_VISIBILITY
        );
    }

    #[tokio::test]
    async fn an_already_delivered_notification_is_not_sent_again() {
        let mut n = notification(NOW);
        n.status = DeliveryStatus::Delivered;
        n.attempts = 1;
        let (store, billing) = (FakeStore::with(&n), FakeBilling::default());
        let got = deliver(&store, &billing, &n.id, 3, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        assert_eq!(billing.sends(), 0);
        assert_eq!(store.get(&n.id), n, "nothing is written");
    }

    #[tokio::test]
    async fn a_failed_notification_is_sent_when_its_message_comes_back() {
        let mut n = notification(NOW);
        n.status = DeliveryStatus::Failed;
        n.attempts = 8;
        let (store, billing) = (FakeStore::with(&n), FakeBilling::default());
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        assert_eq!(
            (store.get(&n.id).status, store.get(&n.id).attempts),
            (DeliveryStatus::Delivered, 9)
        );
    }

    #[tokio::test]
    async fn a_concurrent_delivery_recorded_first_wins() {
        let n = notification(NOW);
        let store = FakeStore::with(&n);
        *store.interfere.lock().unwrap() = Some(Box::new(|n: &mut Notification| {
            n.status = DeliveryStatus::Delivered;
            n.attempts = 1;
        }));
        let billing = FakeBilling::answering(vec![unavailable(None)]);
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        assert_eq!(store.get(&n.id).status, DeliveryStatus::Delivered);
    }

    #[tokio::test]
    async fn a_concurrent_failed_attempt_is_kept_and_this_one_added() {
        let n = notification(NOW);
        let store = FakeStore::with(&n);
        *store.interfere.lock().unwrap() = Some(Box::new(|n: &mut Notification| {
            n.attempts = 1;
            n.last_status = Some(500);
        }));
        let billing = FakeBilling::default();
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        let stored = store.get(&n.id);
        assert_eq!(
            (stored.status, stored.attempts, stored.version),
            (DeliveryStatus::Delivered, 2, 3)
        );
    }

    #[tokio::test]
    async fn an_unknown_notification_is_not_found() {
        let (store, billing) = (FakeStore::default(), FakeBilling::default());
        let err = deliver(
            &store,
            &billing,
            &NotificationId::generate(),
            1,
            MAX_ATTEMPTS,
            NOW,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "notification_not_found");
        assert_eq!(billing.sends(), 0);
    }

    #[tokio::test]
    async fn the_sweep_queues_old_unattempted_pending_notifications_only() {
        let old = notification(NOW - 600);
        let fresh = notification(NOW - 10);
        let mut retrying = notification(NOW - 600);
        retrying.attempts = 2;
        let mut delivered = notification(NOW - 600);
        delivered.status = DeliveryStatus::Delivered;
        let store = FakeStore::default();
        for n in [&old, &fresh, &retrying, &delivered] {
            store.items.lock().unwrap().insert(n.id.clone(), n.clone());
        }
        let queue = FakeQueue::default();
        let queued = sweep_outbox(&store, &queue, Duration::from_secs(300), NOW, 100).await;
        assert_eq!(queued.unwrap(), 1);
        assert_eq!(
            queue.sent.lock().unwrap().as_slice(),
            &[WorkMessage::deliver_notification(&old.id)]
        );
    }

    #[tokio::test]
    async fn a_sweep_that_cannot_queue_says_so() {
        let n = notification(NOW - 600);
        let store = FakeStore::with(&n);
        let queue = FakeQueue {
            down: true,
            ..Default::default()
        };
        let err = sweep_outbox(&store, &queue, Duration::from_secs(60), NOW, 10)
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn resend_puts_any_notification_back_to_pending_and_queues_it() {
        for was in [
            DeliveryStatus::Failed,
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
        ] {
            let mut n = notification(NOW);
            n.status = was;
            n.attempts = 8;
            n.last_status = Some(410);
            n.last_error = Some("gone".into());
            let store = FakeStore::with(&n);
            let queue = FakeQueue::default();
            let back = resend(&store, &queue, &n.id).await.unwrap();
            assert_eq!(
                (back.status, back.attempts, back.version),
                (DeliveryStatus::Pending, 8, 2),
                "{was:?}"
            );
            assert_eq!(back.last_error.as_deref(), Some("gone"), "the log is kept");
            assert_eq!(store.get(&n.id), back);
            assert_eq!(
                queue.sent.lock().unwrap().as_slice(),
                &[WorkMessage::deliver_notification(&n.id)]
            );
        }
    }

    #[tokio::test]
    async fn a_resent_notification_is_delivered_by_its_message() {
        let mut n = notification(NOW);
        n.status = DeliveryStatus::Failed;
        n.attempts = 1;
        let store = FakeStore::with(&n);
        let queue = FakeQueue::default();
        resend(&store, &queue, &n.id).await.unwrap();
        let billing = FakeBilling::default();
        let got = deliver(&store, &billing, &n.id, 1, MAX_ATTEMPTS, NOW).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
        assert_eq!(store.get(&n.id).attempts, 2);
    }

    #[tokio::test]
    async fn resending_an_unknown_notification_is_not_found_and_queues_nothing() {
        let (store, queue) = (FakeStore::default(), FakeQueue::default());
        let err = resend(&store, &queue, &NotificationId::generate())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "notification_not_found");
        assert!(queue.sent.lock().unwrap().is_empty());
    }
}
