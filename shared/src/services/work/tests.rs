//! Every verdict of the worker's use case, against in-memory ports.

use std::time::Duration;

use super::*;
use crate::domain::event::{EventRecord, VerifiedEvent};
use crate::domain::{Charge, DeliveryStatus, EventStatus, Gateway, Notification, NotificationId};
use crate::ports::NotifyOutcome;
use crate::services::fakes::{MemBus, MemQueue, MemStore, ScriptedBilling, ScriptedGateway};
use crate::services::notify;

const NOW: i64 = 1_700_000_000;
const MAX_RECEIVES: u32 = 5;

type TestWorker = Worker<MemStore, ScriptedGateway, MemQueue, ScriptedBilling, MemBus>;

fn worker(billing: Vec<NotifyOutcome>) -> TestWorker {
    Worker {
        store: MemStore::default(),
        gateways: ScriptedGateway::timing_out(),
        queue: MemQueue::default(),
        dlq: Some(MemQueue::default()),
        notifier: ScriptedBilling::answering(billing),
        bus: Some(MemBus::default()),
        max_receive_count: MAX_RECEIVES,
    }
}

fn delivered() -> NotifyOutcome {
    NotifyOutcome::Delivered { status: 200 }
}

fn received(body: &str, receive_count: u32) -> Received<'_> {
    Received {
        id: "m-1",
        body,
        receipt_handle: Some("rh-1"),
        receive_count,
        sent_at_ms: Some(NOW * 1000 - 4000),
    }
}

fn body(message: &WorkMessage) -> String {
    serde_json::to_string(message).unwrap()
}

fn pending_charge() -> Charge {
    crate::domain::charge::example(NOW)
}

fn recorded_event(w: &TestWorker, status: EventStatus) -> String {
    let event = VerifiedEvent {
        gateway: Gateway::Stripe,
        event_id: "evt_1".into(),
        event_type: "payment_intent.succeeded".into(),
        object_ref: Some("pi_1".into()),
        supported: true,
        payload: "{}".into(),
    };
    let mut record = EventRecord::new(event, NOW, 30, 86_400);
    record.status = status;
    (w.store.events.lock().unwrap()).insert((Gateway::Stripe, "evt_1".into()), record);
    body(&WorkMessage::apply_event(Gateway::Stripe, "evt_1"))
}

fn stored_notification(w: &TestWorker) -> (Notification, String) {
    let n = notify::for_charge(&pending_charge(), NOW);
    (w.store.notifications.lock().unwrap()).insert(n.id.clone(), n.clone());
    let b = body(&WorkMessage::deliver_notification(&n.id, 1, 1));
    (n, b)
}

fn delivery_status(w: &TestWorker, id: &NotificationId) -> DeliveryStatus {
    w.store.notifications.lock().unwrap()[id].status
}

#[tokio::test]
async fn an_unreadable_message_is_put_on_the_dead_letter_queue_with_the_reason() {
    let w = worker(vec![delivered()]);
    let verdict = w.handle(&received("not json", 1), NOW).await;
    assert_eq!(verdict, Verdict::DeadLettered);
    assert!(!verdict.is_failure(), "SQS deletes it from the work queue");
    let dead = w.dlq.as_ref().unwrap().dead_letters.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "not json");
    assert!(dead[0].1.starts_with("unreadable message"), "{}", dead[0].1);
}

#[tokio::test]
async fn a_message_of_a_version_this_worker_does_not_know_is_dead_lettered_too() {
    let w = worker(vec![delivered()]);
    let next = crate::domain::work::WORK_MESSAGE_VERSION + 1;
    let future = body(&WorkMessage::apply_event(Gateway::Stripe, "evt_1"))
        .replace("\"v\":2", &format!("\"v\":{next}"));
    assert_eq!(
        w.handle(&received(&future, 1), NOW).await,
        Verdict::DeadLettered
    );
    let dead = w.dlq.as_ref().unwrap().dead_letters.lock().unwrap().clone();
    assert_eq!(
        dead,
        vec![(future, format!("unknown message version {next}"))]
    );
}

#[tokio::test]
async fn a_version_1_message_written_before_a_deploy_is_still_handled() {
    let w = worker(vec![delivered()]);
    let (n, _) = stored_notification(&w);
    let old = format!(
        r#"{{"kind":"deliver_notification","v":1,"notification_id":"{}"}}"#,
        n.id
    );
    assert_eq!(w.handle(&received(&old, 1), NOW).await, Verdict::Done);
    assert_eq!(delivery_status(&w, &n.id), DeliveryStatus::Delivered);
    assert!(
        w.dlq
            .as_ref()
            .unwrap()
            .dead_letters
            .lock()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn without_a_dead_letter_queue_an_unreadable_message_is_left_to_sqs_redrive() {
    let mut w = worker(vec![delivered()]);
    w.dlq = None;
    let verdict = w.handle(&received("not json", 1), NOW).await;
    assert_eq!(verdict, Verdict::Fail);
    assert!(verdict.is_failure());
}

#[tokio::test]
async fn an_event_applied_before_is_done() {
    let w = worker(vec![delivered()]);
    let message = recorded_event(&w, EventStatus::Processed);
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Done);
    assert!(w.queue.redeliveries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_store_outage_brings_the_message_back_after_a_backoff_set_through_the_queue_port() {
    let w = worker(vec![delivered()]);
    let message = recorded_event(&w, EventStatus::Queued);
    *w.store.down.lock().unwrap() = true;
    let Verdict::RetryIn(delay) = w.handle(&received(&message, 1), NOW).await else {
        panic!("expected a backoff");
    };
    // retry_delay(1): 15 s ± 20 %.
    assert!((12..=18).contains(&delay.as_secs()), "{delay:?}");
    assert_eq!(
        *w.queue.redeliveries.lock().unwrap(),
        vec![("rh-1".to_owned(), delay)]
    );
}

#[tokio::test]
async fn an_event_whose_record_does_not_exist_fails_and_is_left_to_sqs() {
    let w = worker(vec![delivered()]);
    let message = body(&WorkMessage::apply_event(Gateway::Stripe, "evt_missing"));
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Fail);
    assert!(
        w.queue.redeliveries.lock().unwrap().is_empty(),
        "a non-retryable failure waits for the visibility timeout"
    );
}

#[tokio::test]
async fn a_charge_still_unknown_at_the_gateway_is_handed_on_to_a_delayed_follow_up_message() {
    let w = worker(vec![delivered()]);
    let charge = pending_charge();
    (w.store.charges.lock().unwrap()).insert(charge.id.clone(), charge.clone());
    let message = body(&WorkMessage::retry_charge(&charge.id, 1));
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Done);
    let sent = w.queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, WorkMessage::retry_charge(&charge.id, 2));
    // retry_delay(2): 30 s ± 20 %.
    assert!((24..=36).contains(&sent[0].1.as_secs()), "{:?}", sent[0].1);
    assert_eq!(
        *w.gateways.calls.lock().unwrap(),
        vec![format!("create paybridge-{}-create", charge.id)],
        "asked again with the same gateway idempotency key"
    );
}

#[tokio::test]
async fn a_notification_billing_takes_is_done() {
    let w = worker(vec![delivered()]);
    let (n, message) = stored_notification(&w);
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Done);
    assert_eq!(delivery_status(&w, &n.id), DeliveryStatus::Delivered);
}

#[tokio::test]
async fn a_notification_billing_asks_to_retry_is_handed_on_to_a_message_for_the_next_attempt() {
    let w = worker(vec![NotifyOutcome::RetryLater {
        status: Some(503),
        retry_after: Some(Duration::from_secs(120)),
        error: "503".into(),
    }]);
    let (n, message) = stored_notification(&w);
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Done);
    assert_eq!(delivery_status(&w, &n.id), DeliveryStatus::Pending);
    assert_eq!(
        *w.queue.sent.lock().unwrap(),
        vec![(
            WorkMessage::deliver_notification(&n.id, 1, 2),
            Duration::from_secs(120)
        )],
        "attempt 2, not before billing's Retry-After"
    );
    assert!(
        w.queue.redeliveries.lock().unwrap().is_empty(),
        "not through SQS's receive count"
    );
}

#[tokio::test]
async fn a_refused_notification_is_done_and_recorded_as_failed_whatever_the_receive_count() {
    for receives in [1, MAX_RECEIVES] {
        let w = worker(vec![NotifyOutcome::Rejected {
            status: 410,
            body: "gone".into(),
        }]);
        let (n, message) = stored_notification(&w);
        assert_eq!(
            w.handle(&received(&message, receives), NOW).await,
            Verdict::Done,
            "its metric and alarm say so; the DLQ is for work that cannot be done"
        );
        assert_eq!(delivery_status(&w, &n.id), DeliveryStatus::Failed);
        assert!(w.queue.sent.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_notification_store_outage_brings_the_delivery_message_back_after_a_backoff() {
    let w = worker(vec![delivered()]);
    let (_, message) = stored_notification(&w);
    *w.store.down.lock().unwrap() = true;
    let verdict = w.handle(&received(&message, 1), NOW).await;
    assert!(matches!(verdict, Verdict::RetryIn(_)), "{verdict:?}");
}

#[tokio::test]
async fn a_batch_gets_one_verdict_per_message_in_order() {
    let w = worker(vec![delivered()]);
    let (_, deliver) = stored_notification(&w);
    let missing = body(&WorkMessage::apply_event(Gateway::Stripe, "evt_missing"));
    let batch = [
        received(&deliver, 1),
        received("not json", 1),
        received(&missing, 1),
    ];
    let verdicts = w.handle_batch(&batch, NOW * 1000).await;
    assert_eq!(
        verdicts,
        vec![Verdict::Done, Verdict::DeadLettered, Verdict::Fail]
    );
    assert_eq!(
        verdicts.iter().filter(|v| v.is_failure()).count(),
        1,
        "only the failure is reported back to SQS"
    );
}

/// A `charge.pending` notification for both targets in the worker's outbox, and the message that
/// publishes it.
fn stored_publication(w: &TestWorker) -> (Notification, String) {
    let mut n = notify::for_charge(&pending_charge(), NOW);
    n.targets = crate::domain::Targets {
        http: true,
        event_bus: true,
    };
    w.store.add_outbox(std::slice::from_ref(&n));
    let message = body(&WorkMessage::publish_notification(&n.charge_id, &n.id));
    (n, message)
}

#[tokio::test]
async fn a_publish_message_puts_the_notification_on_the_bus_once_and_is_done() {
    let w = worker(vec![]);
    let (n, message) = stored_publication(&w);
    for _ in 0..3 {
        assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Done);
    }
    let events = w.bus.as_ref().unwrap().events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, n.id);
    // Billing's endpoint is another target: its record is not touched.
    assert_eq!(delivery_status(&w, &n.id), DeliveryStatus::Pending);
}

#[tokio::test]
async fn a_publish_message_the_bus_refuses_or_another_worker_holds_comes_back() {
    let w = worker(vec![]);
    let (n, message) = stored_publication(&w);
    let bus = w.bus.as_ref().unwrap();
    bus.refusals
        .lock()
        .unwrap()
        .push_back(Some("InternalFailure".into()));
    let verdict = w.handle(&received(&message, 1), NOW).await;
    assert!(matches!(verdict, Verdict::RetryIn(_)), "{verdict:?}");

    // Claimed by another worker until NOW + 40: back after the claim.
    let mut p = w.store.publications.lock().unwrap()[&n.id].clone();
    (p.lease_until, p.version) = (Some(NOW + 40), p.version + 1);
    w.store.publications.lock().unwrap().insert(n.id.clone(), p);
    let verdict = w.handle(&received(&message, 2), NOW).await;
    assert_eq!(verdict, Verdict::RetryIn(Duration::from_secs(41)));
    assert!(bus.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_publish_message_for_a_worker_without_a_bus_is_left_to_the_dead_letter_queue() {
    let mut w = worker(vec![]);
    w.bus = None;
    let (_, message) = stored_publication(&w);
    assert_eq!(w.handle(&received(&message, 1), NOW).await, Verdict::Fail);
}
