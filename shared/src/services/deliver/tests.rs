//! The delivery use cases tested against in-memory fakes of the notification store, billing and
//! the work queue, with the clock passed in.

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

/// A notification in the log as `status` after `attempts` attempts.
fn stored_as(status: DeliveryStatus, attempts: u32) -> Notification {
    let mut n = notification(NOW);
    n.status = status;
    n.attempts = attempts;
    n
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

#[tokio::test]
async fn an_already_delivered_notification_is_not_sent_again() {
    let n = stored_as(DeliveryStatus::Delivered, 1);
    let (store, billing) = (FakeStore::with(&n), FakeBilling::default());
    let got = deliver(&store, &billing, &n.id, 3, MAX_ATTEMPTS, NOW).await;
    assert_eq!(got.unwrap(), Delivery::Delivered);
    assert_eq!(billing.sends(), 0);
    assert_eq!(store.get(&n.id), n, "nothing is written");
}

#[tokio::test]
async fn a_failed_notification_is_sent_when_its_message_comes_back() {
    let n = stored_as(DeliveryStatus::Failed, 8);
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
        let mut n = stored_as(was, 8);
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
    let n = stored_as(DeliveryStatus::Failed, 1);
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
