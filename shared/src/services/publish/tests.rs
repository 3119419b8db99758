//! Publishing on the bus against in-memory ports: once per notification whatever the messages
//! do, a refused put tried again, a crashed worker's claim taken over, and the sweep.

use std::time::Duration;

use super::*;
use crate::domain::{Charge, Notification, Targets};
use crate::services::fakes::{MemBus, MemQueue, MemStore};
use crate::services::notify;

const NOW: i64 = 1_700_000_000;

const BOTH: Targets = Targets {
    http: true,
    event_bus: true,
};

/// A `charge.pending` notification for `targets`, in the outbox of `store`.
fn outboxed(store: &MemStore, targets: Targets) -> Notification {
    let charge: Charge = crate::domain::charge::example(NOW);
    let mut n = notify::for_charge(&charge, NOW);
    n.targets = targets;
    store.add_outbox(std::slice::from_ref(&n));
    n
}

fn stored(store: &MemStore, n: &Notification) -> Publication {
    store.publications.lock().unwrap()[&n.id].clone()
}

#[tokio::test]
async fn a_notification_for_both_targets_has_a_record_and_a_message_for_each() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let n = outboxed(&store, BOTH);
    notify::enqueue(&queue, std::slice::from_ref(&n)).await;

    assert!(store.notifications.lock().unwrap().contains_key(&n.id));
    let p = stored(&store, &n);
    assert_eq!(
        (p.status, p.body.as_str(), p.event_type.as_str()),
        (
            PublicationStatus::Pending,
            n.body.as_str(),
            "charge.pending"
        )
    );
    let sent: Vec<WorkMessage> = queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(m, _)| m.clone())
        .collect();
    assert_eq!(
        sent,
        vec![
            WorkMessage::deliver_notification(&n.id, 1, 1),
            WorkMessage::publish_notification(&n.charge_id, &n.id),
        ]
    );
}

#[tokio::test]
async fn with_the_bus_as_the_only_target_nothing_is_written_for_billing_s_endpoint() {
    let (store, queue) = (MemStore::default(), MemQueue::default());
    let only_bus = Targets::parse("eventbridge").unwrap();
    let n = outboxed(&store, only_bus);
    notify::enqueue(&queue, std::slice::from_ref(&n)).await;

    assert!(store.notifications.lock().unwrap().is_empty());
    assert_eq!(stored(&store, &n).status, PublicationStatus::Pending);
    let sent = queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].0,
        WorkMessage::publish_notification(&n.charge_id, &n.id)
    );
}

#[tokio::test]
async fn a_notification_is_put_on_the_bus_once_however_often_its_message_comes() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    let n = outboxed(&store, BOTH);

    let first = publish(&store, &bus, &n.charge_id, &n.id, NOW)
        .await
        .unwrap();
    assert_eq!(
        first,
        Published::Now {
            event_id: "evb-1".into()
        }
    );
    for later in [NOW, NOW + 1, NOW + 86_400] {
        let again = publish(&store, &bus, &n.charge_id, &n.id, later).await;
        assert_eq!(again.unwrap(), Published::Already);
    }
    let events = bus.events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].body.as_str(), events[0].event_type.as_str()),
        (n.body.as_str(), "charge.pending")
    );
    let p = stored(&store, &n);
    assert_eq!(
        (
            p.status,
            p.event_id.as_deref(),
            p.published_at,
            p.attempts,
            p.lease_until
        ),
        (
            PublicationStatus::Published,
            Some("evb-1"),
            Some(NOW),
            1,
            None
        )
    );
}

#[tokio::test]
async fn concurrent_copies_of_the_message_put_one_event() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    let n = outboxed(&store, BOTH);
    let copies = (0..16).map(|_| publish(&store, &bus, &n.charge_id, &n.id, NOW));
    let outcomes = futures::future::join_all(copies).await;
    assert_eq!(bus.events.lock().unwrap().len(), 1);
    let now = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Published::Now { .. })))
        .count();
    assert_eq!(now, 1, "{outcomes:?}");
    for o in outcomes {
        assert!(
            matches!(
                o,
                Ok(Published::Now { .. } | Published::Already | Published::Busy { .. })
            ),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn a_copy_arriving_while_another_worker_holds_the_claim_waits_for_the_lease() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    let n = outboxed(&store, BOTH);
    // A worker claimed it and died before putting the event.
    let mut p = stored(&store, &n);
    p.lease_until = Some(NOW + 30);
    p.attempts = 1;
    p.version += 1;
    store.save_publication(&p).await.unwrap();

    let busy = publish(&store, &bus, &n.charge_id, &n.id, NOW)
        .await
        .unwrap();
    assert_eq!(busy, Published::Busy { until: NOW + 30 });
    assert!(bus.events.lock().unwrap().is_empty());

    // After the lease the publication is taken over and made.
    let made = publish(&store, &bus, &n.charge_id, &n.id, NOW + 31)
        .await
        .unwrap();
    assert!(matches!(made, Published::Now { .. }), "{made:?}");
    assert_eq!(stored(&store, &n).attempts, 2);
}

#[tokio::test]
async fn a_put_the_bus_refuses_is_recorded_and_the_message_comes_back_to_make_it() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    bus.refusals
        .lock()
        .unwrap()
        .push_back(Some("ThrottlingException: Rate exceeded".into()));
    let n = outboxed(&store, BOTH);

    let err = publish(&store, &bus, &n.charge_id, &n.id, NOW)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("Rate exceeded"), "{err}");
    let p = stored(&store, &n);
    assert_eq!(
        (p.status, p.lease_until, p.attempts, p.last_error.as_deref()),
        (
            PublicationStatus::Pending,
            None,
            1,
            Some("ThrottlingException: Rate exceeded")
        )
    );

    // The message comes back (at once: the lease was cleared) and publishes it.
    let made = publish(&store, &bus, &n.charge_id, &n.id, NOW + 2)
        .await
        .unwrap();
    assert!(matches!(made, Published::Now { .. }), "{made:?}");
    let p = stored(&store, &n);
    assert_eq!(
        (p.status, p.attempts, p.last_error),
        (PublicationStatus::Published, 2, None)
    );
    assert_eq!(bus.events.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_store_that_is_down_fails_the_message_without_putting_anything() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    let n = outboxed(&store, BOTH);
    *store.down.lock().unwrap() = true;
    let err = publish(&store, &bus, &n.charge_id, &n.id, NOW)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(bus.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_for_a_notification_without_a_publication_is_done() {
    let (store, bus) = (MemStore::default(), MemBus::default());
    let n = outboxed(&store, Targets::HTTP);
    let outcome = publish(&store, &bus, &n.charge_id, &n.id, NOW)
        .await
        .unwrap();
    assert_eq!(outcome, Published::Missing);
    assert!(bus.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_sweep_queues_publications_never_queued_or_lost_and_leaves_the_rest() {
    let (store, queue, bus) = (MemStore::default(), MemQueue::default(), MemBus::default());
    let never_queued = outboxed(&store, BOTH);
    let published = outboxed(&store, BOTH);
    publish(&store, &bus, &published.charge_id, &published.id, NOW)
        .await
        .unwrap();
    let lost = outboxed(&store, BOTH);
    let mut p = stored(&store, &lost);
    (p.attempts, p.lease_until, p.next_attempt_at, p.version) =
        (1, Some(NOW + 60), NOW + 60, p.version + 1);
    store.save_publication(&p).await.unwrap();

    // A minute on: only the one never queued (the claimed one is being worked on).
    let queued = sweep_publications(&store, &queue, Duration::from_secs(60), NOW + 61, 100).await;
    assert_eq!(queued.unwrap(), 1);
    let sent = |q: &MemQueue| {
        q.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sent(&queue),
        vec![WorkMessage::publish_notification(
            &never_queued.charge_id,
            &never_queued.id
        )]
    );

    // Half an hour past its lease, the claimed one's message is taken for lost too.
    let later = NOW + 60 + CHAIN_LOST_AFTER.as_secs() as i64 + 1;
    queue.sent.lock().unwrap().clear();
    let queued = sweep_publications(&store, &queue, Duration::from_secs(60), later, 100).await;
    assert_eq!(queued.unwrap(), 2);
    let sent = sent(&queue);
    assert!(
        sent.contains(&WorkMessage::publish_notification(
            &lost.charge_id,
            &lost.id
        )),
        "{sent:?}"
    );
    assert!(!sent.contains(&WorkMessage::publish_notification(
        &published.charge_id,
        &published.id
    )));
}
