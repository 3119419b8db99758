//! The sharded index partitions against the local stack (moto's DynamoDB): items in flight and in
//! the outboxes spread over many shards of `OPEN#…`, `UNDELIVERED#…`, `OUTBOX#pending` and
//! `PUBLISH#pending`, with a few left in the unsharded partitions an older release wrote, and the
//! reconciler, the outbox sweep and the paged listings still find each of them exactly once, in
//! one sort-key order, across pages of a small size (docs/data-model.md, *Sharding*).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use paybridge::adapters::dynamodb::{Table, keys};
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::http_client;
use paybridge::domain::event::EventRecord;
use paybridge::domain::{
    Charge, ChargeStatus, DeliveryStatus, EventStatus, Gateway, Money, Notification, Refund,
    RefundId, Targets, WorkMessage,
};
use paybridge::ports::{
    ChargeStore, CreatedFrom, EventStore, NotificationStore, Page, PublicationStore, QueueError,
    ReconcileItem, ReconcileStore, RefundStore, Reserved, WorkQueue,
};
use paybridge::secrets::SecretString;
use paybridge::services::notify;
use paybridge::services::reconcile::{ReconcileSettings, reconcile};
use paybridge_tests::builders::{pending_charge, seed_charge, store_charge};
use paybridge_tests::{stack, unique, unix_now};

/// Items of each kind in their shards, and how many of them an older release left unsharded.
const SHARDED: usize = 40;
const LEGACY: usize = 3;
const EACH: usize = SHARDED + LEGACY;
/// A page far smaller than the items: every listing below reads several pages across shards.
const PAGE: i32 = 7;

/// A queue that keeps what it was given.
#[derive(Default)]
struct Recorded(Mutex<Vec<WorkMessage>>);

impl WorkQueue for Recorded {
    async fn send(&self, message: &WorkMessage, _delay: Duration) -> Result<(), QueueError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(())
    }
}

/// Adyen answers no status question, so the reconciler sets its charges and refunds aside —
/// a visible mark on every item it found, without a gateway to run.
fn adyen_only() -> GatewayRouter {
    GatewayRouter {
        stripe: None,
        adyen: Some(AdyenGateway::new(
            http_client(Duration::from_secs(2)),
            "http://127.0.0.1:9/v71",
            SecretString::new("adyen-test-key"),
            "PaybridgeTest",
        )),
    }
}

/// Everything the test wrote, by kind.
struct Seeded {
    charges: Vec<Charge>,
    refunds: Vec<Refund>,
    events: Vec<EventRecord>,
    notifications: Vec<Notification>,
}

async fn all<F: std::future::Future<Output = T>, T>(futures: Vec<F>) -> Vec<T> {
    futures::stream::iter(futures)
        .buffer_unordered(8)
        .collect()
        .await
}

/// `EACH` of every kind, dated within a few seconds of `t0` so many share a second and only their
/// ids order them — across shards.
async fn seed(store: &Table, t0: i64) -> Seeded {
    let processing = |i: usize| Charge {
        status: ChargeStatus::Processing,
        gateway_ref: Some(format!("PSP{:013}", i)),
        customer: Some("shopper-1".into()),
        updated_at: t0 + (i % 5) as i64,
        ..pending_charge(Gateway::Adyen, t0)
    };
    let charges: Vec<Charge> = (0..EACH).map(processing).collect();
    for stored in all(charges.iter().map(|c| seed_charge(store, c)).collect()).await {
        stored.expect("seed an open charge");
    }

    // A refund awaiting Adyen's word, each on a captured charge of its own.
    let captured = |i: usize| Charge {
        status: ChargeStatus::Succeeded,
        captured: 1999,
        gateway_ref: Some(format!("PSQ{:013}", i)),
        ..pending_charge(Gateway::Adyen, t0)
    };
    let refunds = (0..EACH)
        .map(|i| {
            let charge = captured(i);
            let amount = Money::parse(500, "eur").unwrap();
            let mut r =
                Refund::pending(RefundId::generate(), &charge.id, amount, Gateway::Adyen, t0);
            r.gateway_ref = Some(format!("RFD{:013}", i));
            r.updated_at = t0 + (i % 5) as i64;
            (charge, r)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(charge, r)| async move {
            seed_charge(store, &charge)
                .await
                .expect("seed a captured charge");
            let reserved = store.reserve_refund(&r).await.expect("reserve the refund");
            assert!(matches!(reserved, Reserved::Done), "{reserved:?}");
            r
        })
        .collect::<Vec<_>>();
    let refunds = all(refunds).await;

    let events: Vec<EventRecord> = (0..EACH)
        .map(|i| EventRecord {
            gateway: Gateway::Stripe,
            event_id: unique("evt_"),
            event_type: "payment_intent.succeeded".into(),
            object_ref: Some(unique("pi_")),
            status: EventStatus::Received,
            payload: "{}".into(),
            received_at: t0 + (i % 5) as i64,
            enqueue_lease_until: t0,
            expires_at: t0 + 30 * 86_400,
        })
        .collect();
    for inserted in all(events.iter().map(|e| store.insert_event(e)).collect()).await {
        inserted.expect("record an event");
    }

    // A charge that succeeded, with its notification for billing and the bus, never queued.
    let notifications = (0..EACH).map(|i| async move {
        let pending = pending_charge(Gateway::Stripe, t0);
        store_charge(store, &pending)
            .await
            .expect("store the charge");
        let succeeded = Charge {
            status: ChargeStatus::Succeeded,
            gateway_ref: Some(unique("pi_")),
            captured: 1999,
            version: 2,
            updated_at: t0 + 1,
            ..pending
        };
        let mut n = notify::for_charge(&succeeded, t0 + (i % 4) as i64);
        n.targets = Targets {
            http: true,
            event_bus: true,
        };
        let saved = store.save_charge(&succeeded, std::slice::from_ref(&n));
        saved.await.expect("save the change with its notification");
        n
    });
    let notifications = all(notifications.collect()).await;
    Seeded {
        charges,
        refunds,
        events,
        notifications,
    }
}

/// Moves the item at `key` back into the unsharded partitions of a release before sharding.
async fn unshard(store: &Table, key: keys::Key, gsi: &[(&str, &str)]) {
    let set = (gsi.iter().enumerate())
        .map(|(i, (attr, _))| format!("{attr} = :v{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut update = (store.client().update_item())
        .table_name(store.name())
        .key("pk", AttributeValue::S(key.0))
        .key("sk", AttributeValue::S(key.1))
        .condition_expression("attribute_exists(pk)")
        .update_expression(format!("SET {set}"));
    for (i, (_, value)) in gsi.iter().enumerate() {
        update = update
            .expression_attribute_values(format!(":v{i}"), AttributeValue::S((*value).into()));
    }
    update.send().await.expect("write a legacy index key");
}

async fn unshard_the_first_of_each_kind(store: &Table, s: &Seeded) {
    for c in &s.charges[..LEGACY] {
        unshard(
            store,
            keys::charge(&c.id),
            &[("gsi2pk", keys::OPEN_CHARGES)],
        )
        .await;
    }
    for r in &s.refunds[..LEGACY] {
        let key = keys::refund(&r.charge_id, &r.id);
        unshard(store, key, &[("gsi2pk", keys::OPEN_REFUNDS)]).await;
    }
    for e in &s.events[..LEGACY] {
        let key = keys::event(e.gateway, &e.event_id);
        unshard(store, key, &[("gsi2pk", keys::OPEN_EVENTS)]).await;
    }
    for n in &s.notifications[..LEGACY] {
        let undelivered = keys::undelivered_gsi2pk(DeliveryStatus::Pending).unwrap();
        let gsi = [("gsi1pk", keys::OUTBOX_PENDING), ("gsi2pk", &undelivered)];
        unshard(store, keys::notification(&n.charge_id, &n.id), &gsi).await;
        let publication = keys::publication(&n.charge_id, &n.id);
        unshard(store, publication, &[("gsi1pk", keys::PUBLISH_PENDING)]).await;
    }
}

/// Every index partition key in the table, by its base (`OPEN#charge`), with the number of items
/// each shard (`Some(n)`) and the unsharded base (`None`) holds.
async fn partitions(store: &Table) -> BTreeMap<String, BTreeMap<Option<u32>, usize>> {
    let mut by_base: BTreeMap<String, BTreeMap<Option<u32>, usize>> = BTreeMap::new();
    let mut start = None;
    loop {
        let out = (store.client().scan())
            .table_name(store.name())
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        for item in out.items() {
            for attr in ["gsi1pk", "gsi2pk"] {
                let Some(Ok(pk)) = item.get(attr).map(AttributeValue::as_s) else {
                    continue;
                };
                if pk.starts_with("INVOICE#") {
                    continue;
                }
                let (base, shard) = match pk.rsplit_once('#') {
                    Some((base, n)) if n.len() == 2 && n.parse::<u32>().is_ok() => {
                        (base.to_owned(), n.parse().ok())
                    }
                    _ => (pk.clone(), None),
                };
                *by_base.entry(base).or_default().entry(shard).or_default() += 1;
            }
        }
        match out.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return by_base,
        }
    }
}

/// Pages through `list` with the page size `PAGE` from the start, as the reconciler does: every
/// sort key it returns, in order.
async fn page_through<T, F, Fut>(list: F, sort_key: impl Fn(&T) -> String) -> (Vec<String>, usize)
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Page<T>>,
{
    let (mut seen, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let Page { items, next } = list(after.take()).await;
        pages += 1;
        assert!(items.len() <= PAGE as usize);
        seen.extend(items.iter().map(&sort_key));
        match next {
            Some(n) => after = Some(n),
            None => return (seen, pages),
        }
    }
}

/// `keys` hold each of `expected` once, in strictly increasing order.
fn once_each_in_order(what: &str, keys: &[String], expected: impl IntoIterator<Item = String>) {
    let expected: BTreeSet<String> = expected.into_iter().collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "{what}: in sort-key order, none twice"
    );
    assert_eq!(keys.len(), expected.len(), "{what}: every one, none twice");
    let found: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(found, expected, "{what}: exactly the items written");
}

#[tokio::test]
async fn the_reconciler_and_the_outbox_sweep_find_every_item_across_shards_and_legacy_partitions() {
    let stack = stack().await;
    // Its own table: a reconciler run works on everything in flight in its table.
    let store = Table::from_conf(&stack.aws, stack.new_table().await);
    let t0 = unix_now() - 3600;
    let s = seed(&store, t0).await;
    unshard_the_first_of_each_kind(&store, &s).await;

    // The items are spread: many shards of every partition, and the legacy ones where they were.
    let spread = partitions(&store).await;
    let undelivered = keys::undelivered_gsi2pk(DeliveryStatus::Pending).unwrap();
    for base in [
        keys::OPEN_CHARGES,
        keys::OPEN_REFUNDS,
        keys::OPEN_EVENTS,
        keys::OUTBOX_PENDING,
        keys::PUBLISH_PENDING,
        &undelivered,
    ] {
        let shards = &spread[base];
        let used = shards.keys().filter(|s| s.is_some()).count();
        assert!(used >= 16, "{base}: {used} shards used: {shards:?}");
        assert_eq!(shards.get(&None), Some(&LEGACY), "{base}: the legacy items");
        assert_eq!(shards.values().sum::<usize>(), EACH, "{base}");
    }

    // Paged 7 at a time across 33 partitions: each once, in one order.
    let (now, st) = (unix_now() + 2, &store);
    let (charges, charge_pages) = page_through(
        |after| async move {
            (st.open_charges(now, after.as_deref(), PAGE).await).expect("open charges")
        },
        |c: &Charge| keys::time_ordered(c.updated_at, c.id.as_str()),
    )
    .await;
    let written = s
        .charges
        .iter()
        .map(|c| keys::time_ordered(c.updated_at, c.id.as_str()));
    once_each_in_order("open charges", &charges, written);
    assert!(charge_pages >= EACH / PAGE as usize);
    let (refunds, _) = page_through(
        |after| async move {
            (st.open_refunds(now, after.as_deref(), PAGE).await).expect("open refunds")
        },
        |r: &Refund| keys::time_ordered(r.updated_at, r.id.as_str()),
    )
    .await;
    let written = s
        .refunds
        .iter()
        .map(|r| keys::time_ordered(r.updated_at, r.id.as_str()));
    once_each_in_order("open refunds", &refunds, written);
    let event_key =
        |e: &EventRecord| keys::open_event_gsi2sk(e.received_at, e.gateway, &e.event_id);
    let (events, _) =
        page_through(
            |after| async move {
                (st.open_events(now, after.as_deref(), PAGE).await).expect("open events")
            },
            event_key,
        )
        .await;
    once_each_in_order("open events", &events, s.events.iter().map(event_key));

    // Support's listing of what billing lacks pages by creation across the shards too.
    let created = |n: &Notification| keys::time_ordered(n.created_at, n.id.as_str());
    let (mut listed, mut last) = (Vec::new(), None::<Notification>);
    loop {
        let from = last
            .as_ref()
            .map_or(CreatedFrom::Since(0), CreatedFrom::After);
        let page = store.undelivered_notifications(DeliveryStatus::Pending, from, PAGE);
        let page = page.await.expect("undelivered notifications");
        listed.extend(page.iter().map(created));
        let full = page.len() >= PAGE as usize;
        last = page.into_iter().last();
        if !full || last.is_none() {
            break;
        }
    }
    once_each_in_order("undelivered", &listed, s.notifications.iter().map(created));

    // The sweep's page is the earliest due of all shards, not of some.
    let due = |n: &Notification| keys::time_ordered(n.created_at, n.id.as_str());
    let mut earliest: Vec<String> = s.notifications.iter().map(due).collect();
    earliest.sort();
    let first = store.pending_notifications(now, PAGE).await.expect("due");
    let first: Vec<String> = first.iter().map(due).collect();
    assert_eq!(
        first,
        earliest[..PAGE as usize],
        "the earliest due, across shards"
    );
    let every = store
        .pending_publications(now, 1000)
        .await
        .expect("pending publications");
    let publication_key =
        |p: &paybridge::domain::Publication| keys::time_ordered(p.next_attempt_at, p.id.as_str());
    let ids: BTreeSet<String> = every.iter().map(|p| p.id.to_string()).collect();
    let written = s.notifications.iter().map(|n| n.id.to_string());
    assert_eq!(
        ids,
        written.collect(),
        "a publication per notification, once"
    );
    let every: Vec<String> = every.iter().map(publication_key).collect();
    assert!(every.windows(2).all(|w| w[0] < w[1]), "in sort-key order");
    assert_eq!(every.len(), EACH);
    let first = store
        .pending_publications(now, PAGE)
        .await
        .expect("due publications");
    let first: Vec<String> = first.iter().map(publication_key).collect();
    assert_eq!(
        first,
        every[..PAGE as usize],
        "the earliest publications, across shards"
    );

    // One reconciler run, 7 items a page: it finds every charge and refund (Adyen cannot answer:
    // each is set aside), queues every event again, and its sweep queues every notification
    // for billing and for the bus.
    let queue = Recorded::default();
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        page_size: PAGE,
        concurrency: 4,
        ..ReconcileSettings::default()
    };
    let summary = reconcile(&store, &adyen_only(), &queue, &settings, now)
        .await
        .expect("reconcile");
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.parked, 2 * EACH, "{summary:?}");
    assert_eq!(summary.needs_attention, 2 * EACH, "{summary:?}");
    assert_eq!(summary.events_requeued, EACH, "{summary:?}");
    assert_eq!(summary.notifications_queued, 2 * EACH, "{summary:?}");
    assert!(summary.pages >= 3 * (EACH / PAGE as usize), "{summary:?}");
    let sent = queue.0.lock().unwrap().clone();
    let mut applied = HashSet::new();
    let (mut delivered, mut published) = (HashSet::new(), HashSet::new());
    for message in &sent {
        let fresh = match message {
            WorkMessage::ApplyEvent { event_id, .. } => applied.insert(event_id.clone()),
            WorkMessage::DeliverNotification {
                notification_id, ..
            } => delivered.insert(notification_id.clone()),
            WorkMessage::PublishNotification {
                notification_id, ..
            } => published.insert(notification_id.clone()),
            other => panic!("unexpected {other:?}"),
        };
        assert!(fresh, "queued twice: {message:?}");
    }
    let event_ids: HashSet<String> = s.events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(applied, event_ids);
    let ntf_ids: HashSet<_> = s.notifications.iter().map(|n| n.id.clone()).collect();
    assert_eq!(delivered, ntf_ids);
    assert_eq!(published, ntf_ids);

    // Set aside into their own shards of ATTENTION#…, the legacy ones included.
    let parked = store.parked().await.expect("parked");
    let ids: BTreeSet<String> = parked.iter().map(|p| p.id.clone()).collect();
    let expected = (s.charges.iter().map(|c| c.id.to_string()))
        .chain(s.refunds.iter().map(|r| r.id.to_string()));
    assert_eq!(
        ids,
        expected.collect(),
        "every charge and refund set aside once"
    );
    assert_eq!(parked.len(), 2 * EACH);
    let spread = partitions(&store).await;
    assert!(!spread.contains_key(keys::OPEN_CHARGES) && !spread.contains_key(keys::OPEN_REFUNDS));
    for base in [keys::ATTENTION_CHARGES, keys::ATTENTION_REFUNDS] {
        let shards = &spread[base];
        assert_eq!(
            shards.get(&None),
            None,
            "{base}: a move puts a legacy item in its shard"
        );
        assert_eq!(shards.values().sum::<usize>(), EACH, "{base}");
    }
}

/// The GSI2 partition the item at `key` is in.
async fn gsi2pk(store: &Table, key: &keys::Key) -> String {
    let item = store.get(&key.0, &key.1).await.unwrap().expect("the item");
    item["gsi2pk"].as_s().unwrap().clone()
}

#[tokio::test]
async fn an_item_set_aside_by_an_older_release_is_put_back_into_its_shard() {
    let stack = stack().await;
    let store = Table::from_conf(&stack.aws, stack.new_table().await);
    let t0 = unix_now() - 3600;
    let charge = Charge {
        status: ChargeStatus::Processing,
        gateway_ref: Some(unique("PSP")),
        ..pending_charge(Gateway::Adyen, t0)
    };
    seed_charge(&store, &charge).await.expect("seed");
    let item = ReconcileItem::Charge(&charge.id);
    // Parked where an older release parked it: the unsharded ATTENTION#charge.
    let key = keys::charge(&charge.id);
    unshard(&store, key.clone(), &[("gsi2pk", keys::ATTENTION_CHARGES)]).await;
    assert!(
        !store.park(item, "no_status_api", t0).await.unwrap(),
        "not in OPEN#…"
    );
    assert_eq!(store.count_parked().await.unwrap(), 1);
    assert!(
        store.unpark(item).await.unwrap(),
        "found in the legacy partition"
    );
    let open = keys::sharded(keys::OPEN_CHARGES, charge.id.as_str());
    assert_eq!(gsi2pk(&store, &key).await, open);
    assert!(!store.unpark(item).await.unwrap(), "no longer set aside");
    assert!(store.park(item, "no_status_api", t0).await.unwrap());
    let attention = keys::sharded(keys::ATTENTION_CHARGES, charge.id.as_str());
    assert_eq!(gsi2pk(&store, &key).await, attention);
    assert_eq!(store.count_parked().await.unwrap(), 1);
    let page = store
        .open_charges(unix_now() + 1, None, PAGE)
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}
