//! The intake use case against in-memory fakes of the ports. The same behaviour is tested against
//! DynamoDB and SQS on moto in `tests/tests/webhook_intake.rs`.

use std::sync::Arc;

use super::*;
use crate::services::fakes::{MemQueue as FakeQueue, MemStore as FakeStore};

/// One delivery of event `id` through intake at `now`.
async fn deliver(
    store: &FakeStore,
    queue: &FakeQueue,
    id: &str,
    supported: bool,
    now: i64,
) -> Result<Recorded, Error> {
    record(store, queue, &settings(), vec![event(id, supported)], now).await
}

fn event(id: &str, supported: bool) -> VerifiedEvent {
    VerifiedEvent {
        gateway: Gateway::Stripe,
        event_id: id.into(),
        event_type: "payment_intent.succeeded".into(),
        object_ref: Some("pi_1".into()),
        supported,
        payload: "{}".into(),
    }
}

fn settings() -> IntakeSettings {
    IntakeSettings::default()
}

const NOW: i64 = 1_700_000_000;

async fn status(store: &FakeStore, id: &str) -> EventStatus {
    store
        .get_event(Gateway::Stripe, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn a_new_event_is_recorded_then_queued_once() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    let r = deliver(&store, &queue, "evt_1", true, NOW).await.unwrap();
    assert_eq!(r.events[0].2, Outcome::Queued);
    // No mark after the send: `received` until the worker processes it.
    assert_eq!(status(&store, "evt_1").await, EventStatus::Received);
    let again = deliver(&store, &queue, "evt_1", true, NOW + 5)
        .await
        .unwrap();
    assert_eq!(again.events[0].2, Outcome::Duplicate, "within the lease");
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_redelivery_of_a_processed_event_is_a_duplicate_whenever_it_comes() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    deliver(&store, &queue, "evt_6", true, NOW).await.unwrap();
    store
        .finish_event(Gateway::Stripe, "evt_6", EventStatus::Processed)
        .await
        .unwrap();
    for later in [NOW + 1, NOW + 3600, NOW + 86_400] {
        let again = deliver(&store, &queue, "evt_6", true, later).await.unwrap();
        assert_eq!(again.events[0].2, Outcome::Duplicate);
    }
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_redelivery_before_the_worker_got_to_the_event_past_the_lease_queues_it_again() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    deliver(&store, &queue, "evt_7", true, NOW).await.unwrap();
    // The worker is behind: still `received` 20 s later. The redelivery asks again; the worker
    // applies the event once whichever message comes first.
    let again = deliver(&store, &queue, "evt_7", true, NOW + 20)
        .await
        .unwrap();
    assert_eq!(again.events[0].2, Outcome::Requeued);
    assert_eq!(queue.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn unsupported_events_are_recorded_as_ignored_and_never_queued() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    let r = deliver(&store, &queue, "evt_2", false, NOW).await.unwrap();
    assert_eq!(r.events[0].2, Outcome::Ignored);
    assert_eq!(status(&store, "evt_2").await, EventStatus::Ignored);
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_queue_outage_fails_the_delivery_and_the_redelivery_enqueues_it() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    *queue.down.lock().unwrap() = true;
    let err = deliver(&store, &queue, "evt_3", true, NOW)
        .await
        .unwrap_err();
    assert_eq!(err.kind().status(), 503);
    assert_eq!(status(&store, "evt_3").await, EventStatus::Received);

    *queue.down.lock().unwrap() = false;
    let r = deliver(&store, &queue, "evt_3", true, NOW + 1)
        .await
        .unwrap();
    assert_eq!(r.events[0].2, Outcome::Requeued);
    assert_eq!(status(&store, "evt_3").await, EventStatus::Received);
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_event_stranded_by_a_crash_is_enqueued_once_its_lease_expires() {
    let (store, queue) = (FakeStore::default(), FakeQueue::default());
    // The first delivery wrote the record and died before sending.
    let stranded = EventRecord::new(event("evt_4", true), NOW, 15, 86_400);
    store.insert_event(&stranded).await.unwrap();

    // A redelivery while the lease is live cannot tell a crash from a send in progress: it is
    // acknowledged, and the reconciler re-queues the event if nobody did (docs/webhook-intake.md).
    let r = deliver(&store, &queue, "evt_4", true, NOW + 1)
        .await
        .unwrap();
    assert_eq!(r.events[0].2, Outcome::Duplicate);
    assert!(queue.sent.lock().unwrap().is_empty());

    // After the lease, the redelivery takes the job over.
    let r = deliver(&store, &queue, "evt_4", true, NOW + 16)
        .await
        .unwrap();
    assert_eq!(r.events[0].2, Outcome::Requeued);
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_queue_it_exactly_once() {
    let store = Arc::new(FakeStore::default());
    let queue = Arc::new(FakeQueue::default());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, queue) = (store.clone(), queue.clone());
            tokio::spawn(async move {
                record(
                    &*store,
                    &*queue,
                    &settings(),
                    vec![event("evt_5", true)],
                    NOW,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
}
