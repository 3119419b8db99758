//! The delivery use cases tested against in-memory fakes of the notification store, billing and
//! the work queue, with the clock passed in: a small simulation plays the queue (each message
//! visible after its delay), so a three-day schedule runs in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use super::*;
use crate::domain::{ChargeId, EndpointHealth, Series};
use crate::ports::{CreatedFrom, QueueError};
use crate::services::fakes::{due_notifications, undelivered_in};
use crate::services::recover::{recover, resend, undelivered};
use crate::services::retry_policy::MAX_RETRY_AFTER;

const NOW: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

/// A concurrent writer's change to a stored notification.
type Interference = Box<dyn FnOnce(&mut Notification) + Send>;

/// The delivery log in memory, with DynamoDB's version condition, and a hook that changes the
/// stored notification just before the next save (a concurrent writer).
#[derive(Default)]
struct FakeStore {
    items: Mutex<HashMap<NotificationId, Notification>>,
    interfere: Mutex<Option<Interference>>,
    health: Mutex<Option<EndpointHealth>>,
}

impl FakeStore {
    fn with(notifications: &[&Notification]) -> Self {
        let store = FakeStore::default();
        for n in notifications {
            store
                .items
                .lock()
                .unwrap()
                .insert(n.id.clone(), (*n).clone());
        }
        store
    }
    fn get(&self, id: &NotificationId) -> Notification {
        self.items.lock().unwrap()[id].clone()
    }
    fn health(&self) -> EndpointHealth {
        self.health.lock().unwrap().clone().unwrap_or_default()
    }
}

/// The delivery tests write no publications (billing's endpoint is the only target here).
impl crate::ports::PublicationStore for FakeStore {
    async fn get_publication(
        &self,
        _: &ChargeId,
        _: &NotificationId,
    ) -> Result<Option<crate::domain::Publication>, StoreError> {
        Ok(None)
    }

    async fn save_publication(&self, _: &crate::domain::Publication) -> Result<(), StoreError> {
        Err(StoreError::Conflict)
    }

    async fn pending_publications(
        &self,
        _: i64,
        _: i32,
    ) -> Result<Vec<crate::domain::Publication>, StoreError> {
        Ok(Vec::new())
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
        let items = self.items.lock().unwrap();
        Ok(due_notifications(items.values(), before, limit))
    }

    async fn undelivered_notifications(
        &self,
        status: DeliveryStatus,
        from: CreatedFrom<'_>,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        let items = self.items.lock().unwrap();
        Ok(undelivered_in(items.values(), status, from, limit))
    }

    async fn record_endpoint_attempt(
        &self,
        attempt: EndpointAttempt,
        now: i64,
    ) -> Result<EndpointHealth, StoreError> {
        let mut health = self.health.lock().unwrap();
        let h = health.get_or_insert_with(EndpointHealth::default);
        h.record(attempt, now);
        Ok(h.clone())
    }

    async fn endpoint_health(&self) -> Result<Option<EndpointHealth>, StoreError> {
        Ok(self.health.lock().unwrap().clone())
    }
}

/// Billing, answering from a script (then 200 forever), noting what it was sent and when.
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
    /// When notification `id` was sent, in order.
    fn times(&self, id: &NotificationId) -> Vec<i64> {
        (self.sent.lock().unwrap().iter())
            .filter(|(n, _)| n == id)
            .map(|(_, t)| *t)
            .collect()
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

/// One message on the fake queue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    id: String,
    message: WorkMessage,
    delay: Duration,
    visible_at: i64,
}

/// A queue that keeps what was sent, stamped with the simulated time it becomes visible; it can
/// be told to refuse the next sends.
#[derive(Default)]
struct FakeQueue {
    queued: Mutex<Vec<Queued>>,
    clock: AtomicI64,
    refuse: AtomicU32,
    counter: AtomicU32,
}

impl FakeQueue {
    fn sent(&self) -> Vec<WorkMessage> {
        (self.queued.lock().unwrap().iter())
            .map(|q| q.message.clone())
            .collect()
    }
    fn take(&self) -> Vec<Queued> {
        std::mem::take(&mut *self.queued.lock().unwrap())
    }
    fn refuse_next(&self, n: u32) {
        self.refuse.store(n, Ordering::SeqCst);
    }
}

impl WorkQueue for FakeQueue {
    async fn send(&self, message: &WorkMessage, delay: Duration) -> Result<(), QueueError> {
        assert!(
            delay <= MAX_MESSAGE_DELAY,
            "SQS refuses a delay of {delay:?}"
        );
        if (self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)))
        .is_ok()
        {
            return Err(QueueError("queue down".into()));
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        self.queued.lock().unwrap().push(Queued {
            id: format!("m-{n}"),
            message: message.clone(),
            delay,
            visible_at: self.clock.load(Ordering::SeqCst) + delay.as_secs() as i64,
        });
        Ok(())
    }
}

/// The fields of a delivery message.
fn parts(m: &WorkMessage) -> (NotificationId, Option<u32>, Option<u32>) {
    match m {
        WorkMessage::DeliverNotification {
            notification_id,
            series,
            attempt,
            ..
        } => (notification_id.clone(), *series, *attempt),
        other => panic!("not a delivery: {other:?}"),
    }
}

/// The store, billing and queue, and the messages still to be handled.
struct Sim {
    store: FakeStore,
    billing: FakeBilling,
    queue: FakeQueue,
    inbox: Vec<Queued>,
}

impl Sim {
    fn new(notifications: &[&Notification], script: Vec<NotifyOutcome>) -> Self {
        Sim {
            store: FakeStore::with(notifications),
            billing: FakeBilling::answering(script),
            queue: FakeQueue::default(),
            inbox: Vec::new(),
        }
    }

    /// Sets the queue's clock: what is sent now becomes visible after its delay from `now`.
    fn at(&self, now: i64) {
        self.queue.clock.store(now, Ordering::SeqCst);
    }

    /// Queues the first attempt of `n`'s current series at `now`, as the use cases do.
    async fn enqueue(&mut self, n: &Notification, now: i64) {
        self.queue.clock.store(now, Ordering::SeqCst);
        let first = WorkMessage::deliver_notification(&n.id, n.series.number, 1);
        self.queue.send(&first, Duration::ZERO).await.unwrap();
    }

    /// Attempt `attempt` of series `series` of `n`, asked by message `by` at `now`.
    async fn attempt(
        &self,
        n: &Notification,
        series: u32,
        attempt: u32,
        by: &str,
        now: i64,
    ) -> Result<Delivery, Error> {
        let m = message(n, series, attempt, by);
        deliver(&self.store, &self.billing, &self.queue, &m, now).await
    }

    /// One message, handled at `now`, as the worker would.
    async fn handle(&self, q: &Queued, now: i64) -> Result<Delivery, Error> {
        self.queue.clock.store(now, Ordering::SeqCst);
        let (id, series, attempt) = parts(&q.message);
        let message = DeliveryMessage {
            notification_id: &id,
            series,
            attempt,
            message_id: &q.id,
        };
        deliver(&self.store, &self.billing, &self.queue, &message, now).await
    }

    /// Handles messages in the order they become visible, each at its time, until none is
    /// left; returns every outcome. A message whose handling fails comes back 30 s later.
    async fn run(&mut self) -> Vec<Delivery> {
        let mut outcomes = Vec::new();
        for _ in 0..10_000 {
            self.inbox.extend(self.queue.take());
            let Some(i) = (0..self.inbox.len()).min_by_key(|&i| self.inbox[i].visible_at) else {
                return outcomes;
            };
            let q = self.inbox.remove(i);
            match self.handle(&q, q.visible_at).await {
                Ok(d) => outcomes.push(d),
                Err(e) => {
                    assert!(e.is_retryable(), "{e}");
                    self.inbox.push(Queued {
                        visible_at: q.visible_at + 30,
                        ..q
                    });
                }
            }
        }
        panic!("the simulation does not settle");
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
        series: Series::first(created_at),
        last_status: None,
        last_error: None,
        created_at,
        delivered_at: None,
        version: 1,
        targets: crate::domain::Targets::HTTP,
    }
}

/// A notification in the log as `status` after `attempts` attempts of series 1.
fn stored_as(status: DeliveryStatus, attempts: u32) -> Notification {
    let mut n = notification(NOW - 4 * 86_400);
    n.status = status;
    n.attempts = attempts;
    n.series.attempts = attempts;
    n.series.next_attempt_at = (status == DeliveryStatus::Pending).then_some(NOW);
    n
}

fn answered(status: u16) -> NotifyOutcome {
    NotifyOutcome::RetryLater {
        status: Some(status),
        retry_after: None,
        error: format!("billing answered {status}"),
    }
}

fn unavailable(retry_after: Option<u64>) -> NotifyOutcome {
    NotifyOutcome::RetryLater {
        status: Some(503),
        retry_after: retry_after.map(Duration::from_secs),
        error: "billing answered 503".into(),
    }
}

fn message<'a>(n: &'a Notification, series: u32, attempt: u32, by: &'a str) -> DeliveryMessage<'a> {
    DeliveryMessage {
        notification_id: &n.id,
        series: Some(series),
        attempt: Some(attempt),
        message_id: by,
    }
}

// ---- one attempt --------------------------------------------------------------------------------

#[tokio::test]
async fn a_delivered_notification_is_sent_once_and_recorded() {
    let n = notification(NOW - 5);
    let sim = Sim::new(&[&n], vec![]);
    let got = sim.attempt(&n, 1, 1, "m-1", NOW).await;
    assert_eq!(got.unwrap(), Delivery::Delivered);
    let again = sim.attempt(&n, 1, 1, "m-1", NOW + 1);
    assert_eq!(again.await.unwrap(), Delivery::Delivered);
    assert_eq!(
        sim.billing.sent.lock().unwrap().as_slice(),
        &[(n.id.clone(), NOW)]
    );
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (stored.status, stored.attempts, stored.version),
        (DeliveryStatus::Delivered, 1, 2)
    );
    assert_eq!(
        (stored.delivered_at, stored.last_status, stored.last_error),
        (Some(NOW), Some(200), None)
    );
    assert_eq!(stored.series.next_attempt_at, None);
    assert!(sim.queue.sent().is_empty(), "nothing more to do");
}

#[tokio::test]
async fn a_failed_attempt_is_recorded_and_the_next_one_queued_on_the_schedule() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(None)]);
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    let Delivery::Retry { attempt: 2, at } = got.await.unwrap() else {
        panic!("expected attempt 2 to be queued")
    };
    assert!((NOW + 5..=NOW + 6).contains(&at), "5 s later: {at}");
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (
            stored.status,
            stored.attempts,
            stored.series.attempts,
            stored.series.next_attempt_at
        ),
        (DeliveryStatus::Pending, 1, 1, Some(at))
    );
    assert_eq!(stored.last_error.as_deref(), Some("billing answered 503"));
    let queued = sim.queue.take();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].message,
        WorkMessage::deliver_notification(&n.id, 1, 2)
    );
    assert_eq!(queued[0].delay, Duration::from_secs((at - NOW) as u64));
}

#[tokio::test]
async fn the_series_follows_the_published_schedule_and_ends_exhausted_after_three_days() {
    let n = notification(NOW);
    let mut sim = Sim::new(&[&n], vec![unavailable(None); 13]);
    sim.enqueue(&n, NOW).await;
    let outcomes = sim.run().await;

    let times = sim.billing.times(&n.id);
    assert_eq!(times.len(), NOTIFICATION_ATTEMPTS as usize, "13 attempts");
    assert_eq!(times[0], NOW, "the first at once");
    for (i, pair) in times.windows(2).enumerate() {
        let (wait, step) = (pair[1] - pair[0], NOTIFICATION_SCHEDULE[i].as_secs() as i64);
        assert!(
            wait >= step && wait <= step + step / 10 + 1,
            "wait {} after attempt {}: {wait} s, the schedule says {step} s",
            i + 2,
            i + 1
        );
    }
    assert!(
        times[12] - times[0] >= 72 * HOUR,
        "retried for {} h",
        (times[12] - times[0]) / HOUR
    );
    assert_eq!(outcomes.last(), Some(&Delivery::Exhausted));
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (
            stored.status,
            stored.attempts,
            stored.series.next_attempt_at
        ),
        (DeliveryStatus::Exhausted, 13, None)
    );
    assert_eq!(stored.last_status, Some(503));
    // Every long wait travelled in hops of at most 15 minutes.
    let waiting = outcomes
        .iter()
        .filter(|d| matches!(d, Delivery::Waiting { .. }))
        .count();
    assert!(waiting > 250, "{waiting} hops");
}

#[tokio::test]
async fn a_4xx_is_retried_like_a_5xx() {
    for status in [400, 401, 403, 404, 409, 422] {
        let n = notification(NOW);
        let mut sim = Sim::new(&[&n], vec![answered(status), answered(status)]);
        sim.enqueue(&n, NOW).await;
        sim.run().await;
        let stored = sim.store.get(&n.id);
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Delivered, 3),
            "{status} is tried again"
        );
    }
}

#[tokio::test]
async fn a_410_gone_is_final_and_recorded_as_failed_with_billings_answer() {
    let n = notification(NOW);
    let sim = Sim::new(
        &[&n],
        vec![NotifyOutcome::Rejected {
            status: 410,
            body: r#"{"error":"unknown invoice"}"#.into(),
        }],
    );
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert_eq!(got.await.unwrap(), Delivery::Failed);
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Failed, 1, Some(410))
    );
    assert!(
        stored.last_error.unwrap().contains("unknown invoice"),
        "the log keeps billing's reason"
    );
    assert!(sim.queue.sent().is_empty(), "no further attempt");
    assert_eq!(
        sim.store.health.lock().unwrap().as_ref(),
        None,
        "a refusal is no outage"
    );
}

#[tokio::test]
async fn an_answer_billing_marked_never_retry_is_final() {
    // The HTTP notifier turns any 4xx/5xx with `Paybridge-Retry: never` into a refusal.
    let n = notification(NOW);
    let mut sim = Sim::new(
        &[&n],
        vec![
            answered(500),
            NotifyOutcome::Rejected {
                status: 422,
                body: "invoice closed".into(),
            },
        ],
    );
    sim.enqueue(&n, NOW).await;
    let outcomes = sim.run().await;
    assert_eq!(outcomes.last(), Some(&Delivery::Failed));
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (stored.status, stored.attempts, stored.last_status),
        (DeliveryStatus::Failed, 2, Some(422))
    );
    assert_eq!(sim.billing.sends(), 2);
}

#[tokio::test]
async fn billings_retry_after_is_never_cut_short_and_is_capped() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(Some(900)), unavailable(Some(1))]);
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert_eq!(
        got.await.unwrap(),
        Delivery::Retry {
            attempt: 2,
            at: NOW + 900
        }
    );

    // A shorter Retry-After than the schedule's wait does not shorten it (attempt 2: 5 min).
    let at = NOW + 900;
    let got = sim.attempt(&n, 1, 2, "m-2", at);
    let Delivery::Retry {
        attempt: 3,
        at: next,
    } = got.await.unwrap()
    else {
        panic!("expected a retry")
    };
    assert!(next - at >= 300, "{}", next - at);

    // One over the cap counts as the cap.
    let m = notification(NOW);
    let sim = Sim::new(&[&m], vec![unavailable(Some(86_400))]);
    let got = sim.attempt(&m, 1, 1, "m-1", NOW);
    let cap = MAX_RETRY_AFTER.as_secs() as i64;
    assert_eq!(
        got.await.unwrap(),
        Delivery::Retry {
            attempt: 2,
            at: NOW + cap
        }
    );
}

#[tokio::test]
async fn an_unknown_notification_is_not_found() {
    let sim = Sim::new(&[], vec![]);
    let id = NotificationId::generate();
    let message = DeliveryMessage {
        notification_id: &id,
        series: Some(1),
        attempt: Some(1),
        message_id: "m-1",
    };
    let err = deliver(&sim.store, &sim.billing, &sim.queue, &message, NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "notification_not_found");
    assert_eq!(sim.billing.sends(), 0);
}

// ---- one chain ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_message_before_its_attempt_is_due_is_sent_on_for_what_remains() {
    let mut n = notification(NOW - HOUR);
    n.series.attempts = 6;
    n.attempts = 6;
    n.series.next_attempt_at = Some(NOW + 10 * HOUR);
    let sim = Sim::new(&[&n], vec![]);
    let got = sim.attempt(&n, 1, 7, "m-1", NOW);
    assert_eq!(
        got.await.unwrap(),
        Delivery::Waiting {
            due: NOW + 10 * HOUR
        }
    );
    assert_eq!(sim.billing.sends(), 0);
    let queued = sim.queue.take();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].message,
        WorkMessage::deliver_notification(&n.id, 1, 7)
    );
    assert_eq!(
        queued[0].delay, MAX_MESSAGE_DELAY,
        "at most 15 minutes a hop"
    );

    // The last hop is exactly what remains.
    let last = NOW + 10 * HOUR - 200;
    let got = sim.attempt(&n, 1, 7, "m-2", last);
    assert_eq!(
        got.await.unwrap(),
        Delivery::Waiting {
            due: NOW + 10 * HOUR
        }
    );
    assert_eq!(sim.queue.take()[0].delay, Duration::from_secs(200));
}

#[tokio::test]
async fn a_duplicate_message_for_an_attempt_already_made_is_dropped() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(None)]);
    let first = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert!(matches!(
        first.await.unwrap(),
        Delivery::Retry { attempt: 2, .. }
    ));
    sim.queue.take();
    // A second message for attempt 1 (the sweep queued it while the first was only late).
    let copy = sim.attempt(&n, 1, 1, "m-9", NOW + 2);
    assert_eq!(copy.await.unwrap(), Delivery::Dropped(Dropped::AlreadyMade));
    assert_eq!(sim.billing.sends(), 1, "not sent again");
    assert!(sim.queue.sent().is_empty(), "no second chain");
}

#[tokio::test]
async fn two_messages_racing_for_one_attempt_leave_one_chain() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(None), unavailable(None)]);
    // The other message's attempt 1 is recorded while this one is talking to billing.
    *sim.store.interfere.lock().unwrap() = Some(Box::new(|n: &mut Notification| {
        n.attempts = 1;
        n.series.attempts = 1;
        n.series.next_attempt_at = Some(NOW + 5);
        n.series.last_attempt_by = Some("m-other".into());
    }));
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert_eq!(got.await.unwrap(), Delivery::Dropped(Dropped::AlreadyMade));
    assert!(
        sim.queue.sent().is_empty(),
        "the winner queues attempt 2, not this one"
    );
    let stored = sim.store.get(&n.id);
    assert_eq!(stored.series.last_attempt_by.as_deref(), Some("m-other"));
}

#[tokio::test]
async fn a_delivery_recorded_concurrently_wins_and_a_delivery_of_ours_is_recorded_over_a_failure() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(None)]);
    *sim.store.interfere.lock().unwrap() = Some(Box::new(|n: &mut Notification| {
        n.status = DeliveryStatus::Delivered;
        n.attempts = 1;
    }));
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert_eq!(got.await.unwrap(), Delivery::Delivered);
    assert_eq!(sim.store.get(&n.id).status, DeliveryStatus::Delivered);

    let m = notification(NOW);
    let sim = Sim::new(&[&m], vec![]);
    *sim.store.interfere.lock().unwrap() = Some(Box::new(|n: &mut Notification| {
        n.attempts = 1;
        n.series.attempts = 1;
        n.last_status = Some(500);
    }));
    let got = sim.attempt(&m, 1, 1, "m-1", NOW);
    assert_eq!(
        got.await.unwrap(),
        Delivery::Delivered,
        "billing has it: that stands"
    );
    let stored = sim.store.get(&m.id);
    assert_eq!(
        (stored.status, stored.attempts, stored.version),
        (DeliveryStatus::Delivered, 2, 3)
    );
}

#[tokio::test]
async fn a_message_whose_next_attempt_could_not_be_queued_queues_it_when_it_comes_back() {
    let n = notification(NOW);
    let sim = Sim::new(&[&n], vec![unavailable(None)]);
    sim.queue.refuse_next(1);
    let got = sim.attempt(&n, 1, 1, "m-1", NOW);
    assert!(
        got.await.unwrap_err().is_retryable(),
        "the worker retries the message"
    );
    assert_eq!(
        sim.store.get(&n.id).series.attempts,
        1,
        "the attempt is recorded"
    );

    // SQS hands the same message (same id) out again: it queues attempt 2, billing hears nothing.
    let again = sim.attempt(&n, 1, 1, "m-1", NOW + 30);
    let due = sim.store.get(&n.id).series.next_attempt_at.unwrap();
    assert_eq!(
        again.await.unwrap(),
        Delivery::Retry {
            attempt: 2,
            at: due
        }
    );
    assert_eq!(
        sim.queue.sent(),
        vec![WorkMessage::deliver_notification(&n.id, 1, 2)]
    );
    assert_eq!(sim.billing.sends(), 1);
}

#[tokio::test]
async fn a_failed_or_exhausted_notification_is_left_alone_by_a_stray_message() {
    for status in [DeliveryStatus::Failed, DeliveryStatus::Exhausted] {
        let n = stored_as(status, 13);
        let sim = Sim::new(&[&n], vec![]);
        let got = sim.attempt(&n, 1, 14, "m-1", NOW);
        assert_eq!(
            got.await.unwrap(),
            Delivery::Dropped(Dropped::NotPending(status))
        );
        assert_eq!(sim.billing.sends(), 0);
        assert_eq!(sim.store.get(&n.id), n, "nothing written");
    }
}

#[tokio::test]
async fn a_version_1_message_makes_the_next_attempt_if_it_is_due_and_is_dropped_if_not() {
    // Written by the previous worker: the notification has 3 attempts and no series yet.
    let mut n = stored_as(DeliveryStatus::Pending, 3);
    n.series.next_attempt_at = Some(n.created_at);
    let sim = Sim::new(&[&n], vec![unavailable(None)]);
    let v1 = DeliveryMessage {
        notification_id: &n.id,
        series: None,
        attempt: None,
        message_id: "m-old",
    };
    let got = deliver(&sim.store, &sim.billing, &sim.queue, &v1, NOW)
        .await
        .unwrap();
    let Delivery::Retry { attempt: 5, at } = got else {
        panic!("{got:?}")
    };
    assert!(
        at - NOW >= 7200,
        "the wait after attempt 4 is 2 h: {}",
        at - NOW
    );
    assert_eq!(
        sim.queue.sent(),
        vec![WorkMessage::deliver_notification(&n.id, 1, 5)]
    );

    // Another old message while the current chain waits: dropped, not a second chain.
    let late = DeliveryMessage {
        message_id: "m-old-2",
        ..v1
    };
    let got = deliver(&sim.store, &sim.billing, &sim.queue, &late, NOW + 60).await;
    assert_eq!(got.unwrap(), Delivery::Dropped(Dropped::LegacyNotDue));
    assert_eq!(sim.billing.sends(), 1);
}

#[tokio::test]
async fn billings_health_counts_failures_in_a_row_and_resets_on_a_2xx() {
    let (a, b) = (notification(NOW), notification(NOW));
    let sim = Sim::new(
        &[&a, &b],
        vec![unavailable(None), answered(401), unavailable(None)],
    );
    for (n, t) in [(&a, NOW), (&b, NOW + 10), (&a, NOW + 20)] {
        let attempt = sim.store.get(&n.id).series.attempts + 1;
        let m = message(n, 1, attempt, "m");
        let _ = deliver(&sim.store, &sim.billing, &sim.queue, &m, t)
            .await
            .unwrap();
        sim.store
            .items
            .lock()
            .unwrap()
            .get_mut(&n.id)
            .unwrap()
            .series
            .next_attempt_at = Some(t);
    }
    let h = sim.store.health();
    assert_eq!(
        (h.consecutive_failures, h.failing_since, h.last_success_at),
        (3, Some(NOW), None)
    );
    assert_eq!(h.seconds_since_success(NOW + 3600), 3600);
    let m = message(&b, 1, 2, "m");
    assert_eq!(
        deliver(&sim.store, &sim.billing, &sim.queue, &m, NOW + 30)
            .await
            .unwrap(),
        Delivery::Delivered
    );
    let h = sim.store.health();
    assert_eq!(
        (h.consecutive_failures, h.last_success_at),
        (0, Some(NOW + 30))
    );
}

// ---- resend and recover ---------------------------------------------------------------------------

#[tokio::test]
async fn resend_starts_a_fresh_series_for_any_notification_and_queues_its_first_attempt() {
    for was in [
        DeliveryStatus::Exhausted,
        DeliveryStatus::Failed,
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
    ] {
        let mut n = stored_as(was, 13);
        n.last_status = Some(503);
        n.last_error = Some("billing answered 503".into());
        let sim = Sim::new(&[&n], vec![]);
        let back = resend(&sim.store, &sim.queue, &n.id, NOW).await.unwrap();
        assert_eq!(
            (back.status, back.attempts, back.version),
            (DeliveryStatus::Pending, 13, 2),
            "{was:?}"
        );
        assert_eq!(
            back.series,
            Series::first(NOW).next(NOW),
            "series 2, due now"
        );
        assert_eq!(
            back.last_error.as_deref(),
            Some("billing answered 503"),
            "the log is kept"
        );
        assert_eq!(sim.store.get(&n.id), back);
        assert_eq!(
            sim.queue.sent(),
            vec![WorkMessage::deliver_notification(&n.id, 2, 1)]
        );
    }
}

#[tokio::test]
async fn an_exhausted_notification_resent_goes_through_the_whole_schedule_again() {
    let n = stored_as(DeliveryStatus::Exhausted, 13);
    let mut sim = Sim::new(&[&n], vec![unavailable(None); 4]);
    sim.at(NOW);
    resend(&sim.store, &sim.queue, &n.id, NOW).await.unwrap();
    sim.run().await;
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (
            stored.status,
            stored.attempts,
            stored.series.number,
            stored.series.attempts
        ),
        (DeliveryStatus::Delivered, 18, 2, 5)
    );
    let times = sim.billing.times(&n.id);
    assert_eq!(times[0], NOW);
    assert!(
        times[4] - NOW >= 5 + 300 + 1800 + 7200,
        "the schedule from its start"
    );
}

#[tokio::test]
async fn a_resend_while_a_chain_waits_does_not_make_two_chains() {
    let n = notification(NOW);
    let mut sim = Sim::new(&[&n], vec![unavailable(None); 3]);
    sim.enqueue(&n, NOW).await;
    // Two attempts fail; the chain now waits 30 minutes for attempt 3.
    for _ in 0..2 {
        let q = sim.queue.take().remove(0);
        sim.handle(&q, q.visible_at.max(NOW)).await.unwrap();
    }
    let waiting = sim.queue.take();
    assert_eq!(waiting.len(), 1);
    sim.inbox = waiting;

    sim.at(NOW + 400);
    resend(&sim.store, &sim.queue, &n.id, NOW + 400)
        .await
        .unwrap();
    let outcomes = sim.run().await;

    assert!(
        outcomes.contains(&Delivery::Dropped(Dropped::Superseded)),
        "the old chain's message is dropped: {outcomes:?}"
    );
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (stored.status, stored.series.number),
        (DeliveryStatus::Delivered, 2)
    );
    // Series 2 failed once (the script's third answer), then was delivered: 2 sends after the
    // resend, and nothing from the old chain.
    let after: Vec<i64> = sim
        .billing
        .times(&n.id)
        .into_iter()
        .filter(|t| *t >= NOW + 400)
        .collect();
    assert_eq!(after.len(), 2, "{after:?}");
}

#[tokio::test]
async fn recover_resends_every_undelivered_notification_since_a_time_across_charges_once() {
    let old = stored_as(DeliveryStatus::Exhausted, 13);
    let mut exhausted = stored_as(DeliveryStatus::Exhausted, 13);
    exhausted.created_at = NOW - 2 * 86_400;
    let mut failed = stored_as(DeliveryStatus::Failed, 2);
    failed.created_at = NOW - 86_400;
    let mut waiting = notification(NOW - HOUR);
    waiting.series.attempts = 4;
    waiting.series.next_attempt_at = Some(NOW + 4 * HOUR);
    let mut delivered = notification(NOW - HOUR);
    delivered.status = DeliveryStatus::Delivered;
    let sim = Sim::new(&[&old, &exhausted, &failed, &waiting, &delivered], vec![]);

    let since = NOW - 3 * 86_400;
    let listed = undelivered(&sim.store, &[DeliveryStatus::Exhausted], since, 100).await;
    assert_eq!(
        listed.unwrap().iter().map(|n| &n.id).collect::<Vec<_>>(),
        vec![&exhausted.id]
    );

    let got = recover(&sim.store, &sim.queue, since, NOW).await.unwrap();
    assert_eq!(got.total(), 3);
    assert_eq!(
        got.resent,
        [("exhausted", 1), ("failed", 1), ("pending", 1)]
            .into_iter()
            .collect()
    );
    let mut queued = sim.queue.sent();
    queued.sort_by_key(|m| parts(m).0);
    let mut expected: Vec<_> = [&exhausted, &failed, &waiting]
        .iter()
        .map(|n| WorkMessage::deliver_notification(&n.id, 2, 1))
        .collect();
    expected.sort_by_key(|m| parts(m).0);
    assert_eq!(
        queued, expected,
        "one fresh series each, none for the old or the delivered one"
    );
    assert_eq!(
        sim.store.get(&old.id).status,
        DeliveryStatus::Exhausted,
        "before `since`"
    );
    assert_eq!(
        sim.store.get(&delivered.id).status,
        DeliveryStatus::Delivered
    );
}

#[tokio::test]
async fn resending_an_unknown_notification_is_not_found_and_queues_nothing() {
    let sim = Sim::new(&[], vec![]);
    let err = resend(&sim.store, &sim.queue, &NotificationId::generate(), NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "notification_not_found");
    assert!(sim.queue.sent().is_empty());
}

// ---- the outbox sweep -------------------------------------------------------------------------------

#[tokio::test]
async fn the_sweep_queues_unqueued_notifications_and_lost_chains_and_leaves_waiting_ones() {
    let never = notification(NOW - 600);
    let fresh = notification(NOW - 10);
    let mut lost = notification(NOW - 5 * HOUR);
    lost.series.attempts = 4;
    lost.series.next_attempt_at = Some(NOW - HOUR);
    let mut late = notification(NOW - 5 * HOUR);
    late.series.attempts = 4;
    late.series.next_attempt_at = Some(NOW - 300);
    let mut waiting = notification(NOW - 5 * HOUR);
    waiting.series.attempts = 5;
    waiting.series.next_attempt_at = Some(NOW + 3 * HOUR);
    let mut delivered = notification(NOW - 600);
    delivered.status = DeliveryStatus::Delivered;
    let sim = Sim::new(
        &[&never, &fresh, &lost, &late, &waiting, &delivered],
        vec![],
    );

    let queued = sweep_outbox(&sim.store, &sim.queue, Duration::from_secs(60), NOW, 100).await;
    assert_eq!(queued.unwrap(), 2);
    let mut sent = sim.queue.sent();
    sent.sort_by_key(|m| parts(m).0);
    let mut expected = vec![
        WorkMessage::deliver_notification(&never.id, 1, 1),
        WorkMessage::deliver_notification(&lost.id, 1, 5),
    ];
    expected.sort_by_key(|m| parts(m).0);
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn a_chain_the_sweep_restarted_though_it_was_only_late_is_not_doubled() {
    let mut n = notification(NOW - 5 * HOUR);
    n.attempts = 4;
    n.series.attempts = 4;
    n.series.next_attempt_at = Some(NOW - HOUR);
    let mut sim = Sim::new(&[&n], vec![unavailable(None)]);
    sim.at(NOW);
    sweep_outbox(&sim.store, &sim.queue, Duration::from_secs(60), NOW, 100)
        .await
        .unwrap();
    // The late original turns up too.
    sim.queue
        .send(
            &WorkMessage::deliver_notification(&n.id, 1, 5),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let outcomes = sim.run().await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|d| matches!(d, Delivery::Dropped(Dropped::AlreadyMade)))
            .count(),
        1,
        "{outcomes:?}"
    );
    let stored = sim.store.get(&n.id);
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Delivered, 6)
    );
    assert_eq!(sim.billing.sends(), 2, "attempt 5 once, attempt 6 once");
}

#[tokio::test]
async fn a_sweep_that_cannot_queue_says_so() {
    let n = notification(NOW - 600);
    let sim = Sim::new(&[&n], vec![]);
    sim.queue.refuse_next(1);
    let err = sweep_outbox(&sim.store, &sim.queue, Duration::from_secs(60), NOW, 10)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
}
