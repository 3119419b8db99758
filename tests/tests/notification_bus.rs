//! Billing notifications on an EventBridge bus, against moto: the publication written with the
//! state change, put on the bus once by the retry worker's use case however often its message
//! comes (in a row and concurrently), read back through a rule to an SQS queue as billing would
//! consume it; a bus that does not take the event leaves the publication pending with the reason,
//! and the outbox sweep queues it again. Each test has its own bus, rule and queue, so it counts
//! exactly the events it caused. The same path through the running functions is in
//! `tests/tests/e2e.rs` (`..._also_reaches_billing_on_the_notification_bus_once`).

use std::time::Duration;

use paybridge::adapters::billing::HttpNotifier;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::eventbridge::EventBridgeBus;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{
    Charge, ChargeStatus, DeliveryStatus, Gateway, Notification, PublicationStatus, Targets,
    WorkMessage,
};
use paybridge::ports::{ChargeStore, NotificationStore, PublicationStore};
use paybridge::services::deliver::sweep_outbox;
use paybridge::services::notify;
use paybridge::services::work::{Received, Verdict, Worker};
use paybridge_tests::builders::{pending_charge, store_charge};
use paybridge_tests::{Stack, stack, unique, unix_now};
use serde_json::Value;

const BOTH: Targets = Targets {
    http: true,
    event_bus: true,
};

/// A bus of the test's own with billing's rule on it (`source: paybridge` to a queue).
struct Bus {
    name: String,
    queue_url: String,
}

async fn own_bus(stack: &Stack) -> Bus {
    let events = aws_sdk_eventbridge::Client::new(&stack.aws);
    let name = unique("bus-");
    events
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .expect("create the bus");
    let queue_url = stack.new_queue().await;
    let arn = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("the queue's ARN");
    events
        .put_rule()
        .name("billing")
        .event_bus_name(&name)
        .event_pattern(r#"{"source":["paybridge"]}"#)
        .send()
        .await
        .expect("billing's rule");
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("billing-queue")
        .arn(arn)
        .build()
        .expect("a target");
    events
        .put_targets()
        .rule("billing")
        .event_bus_name(&name)
        .targets(target)
        .send()
        .await
        .expect("the rule's target");
    Bus { name, queue_url }
}

/// Every event on the bus's queue so far: receives until one comes back empty.
async fn events_on(stack: &Stack, bus: &Bus) -> Vec<Value> {
    let mut all = Vec::new();
    for body in stack.drain(&bus.queue_url).await {
        all.push(serde_json::from_str(&body).expect("an EventBridge event"));
    }
    all
}

fn worker(
    stack: &Stack,
    table: &Table,
    queue_url: &str,
    bus: &str,
) -> Worker<Table, GatewayRouter, SqsWorkQueue, HttpNotifier, EventBridgeBus> {
    let signing = (stack.secrets.billing.as_ref())
        .expect("a billing secret")
        .signing_secret
        .clone();
    Worker {
        store: table.clone(),
        gateways: GatewayRouter {
            stripe: None,
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&stack.aws, queue_url),
        dlq: None,
        notifier: HttpNotifier::new(
            http_client(Duration::from_secs(1)),
            "http://127.0.0.1:9/billing",
            &signing,
        )
        .expect("a notifier"),
        bus: Some(EventBridgeBus::from_conf(&stack.aws, bus)),
        max_receive_count: 8,
    }
}

/// A charge that succeeded, its `charge.succeeded` notification for both targets written in the
/// same transaction, as a use case does in a function whose targets are both.
async fn charge_succeeded(table: &Table, created_at: i64) -> Notification {
    let pending = pending_charge(Gateway::Stripe, created_at);
    store_charge(table, &pending)
        .await
        .expect("store the charge");
    let succeeded = Charge {
        gateway_ref: Some(unique("pi_")),
        status: ChargeStatus::Succeeded,
        captured: 1999,
        version: 2,
        updated_at: created_at + 1,
        ..pending
    };
    let mut n = notify::for_charge(&succeeded, created_at + 1);
    n.targets = BOTH;
    table
        .save_charge(&succeeded, std::slice::from_ref(&n))
        .await
        .expect("save the change with its notifications");
    n
}

fn message(n: &Notification) -> String {
    serde_json::to_string(&WorkMessage::publish_notification(&n.charge_id, &n.id)).unwrap()
}

fn received<'a>(id: &'a str, body: &'a str) -> Received<'a> {
    Received {
        id,
        body,
        receipt_handle: None,
        receive_count: 1,
        sent_at_ms: None,
    }
}

#[tokio::test]
async fn a_change_for_both_targets_reaches_the_bus_once_however_often_its_message_comes() {
    let stack = stack().await;
    let table = Table::from_conf(&stack.aws, &stack.config.table);
    let bus = own_bus(&stack).await;
    let w = worker(&stack, &table, &stack.new_queue().await, &bus.name);
    let n = charge_succeeded(&table, unix_now()).await;

    // Both records are in the outbox, each on its own.
    let stored = table
        .get_notification(&n.id)
        .await
        .unwrap()
        .expect("the HTTP notification");
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Pending, 0)
    );
    let p = table
        .get_publication(&n.charge_id, &n.id)
        .await
        .unwrap()
        .expect("the publication");
    assert_eq!(
        (p.status, p.body.as_str()),
        (PublicationStatus::Pending, n.body.as_str())
    );

    // Eight copies of the message at once (SQS delivers at least once; the sweep may add one),
    // then three more in a row. Without the claim, each copy would put an event.
    let body = message(&n);
    let ids: Vec<String> = (0..8).map(|i| format!("c-{i}")).collect();
    let copies: Vec<Received> = ids.iter().map(|id| received(id, &body)).collect();
    let handled = copies.iter().map(|m| w.handle(m, unix_now()));
    for verdict in futures::future::join_all(handled).await {
        // Done, or (a copy that found another one's claim) back after the claim.
        assert!(
            matches!(verdict, Verdict::Done | Verdict::RetryIn(_)),
            "{verdict:?}"
        );
    }
    for i in 0..3 {
        let verdict = w
            .handle(&received(&format!("m-{i}"), &body), unix_now())
            .await;
        assert_eq!(verdict, Verdict::Done);
    }

    let events = events_on(&stack, &bus).await;
    assert_eq!(events.len(), 1, "one event for one change: {events:#?}");
    let event = &events[0];
    assert_eq!(event["source"], "paybridge");
    assert_eq!(event["detail-type"], "charge.succeeded");
    let body: Value = serde_json::from_str(&n.body).unwrap();
    assert_eq!(
        event["detail"], body,
        "the detail is the body billing's endpoint receives"
    );
    assert_eq!(event["detail"]["id"], n.id.as_str());

    let p = table
        .get_publication(&n.charge_id, &n.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PublicationStatus::Published);
    assert_eq!(
        p.event_id.as_deref(),
        event["id"].as_str(),
        "the record names the event"
    );
    assert_eq!((p.attempts, p.lease_until), (1, None));
    // Billing's endpoint has its own delivery, untouched by the bus's.
    let stored = table.get_notification(&n.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts, stored.version),
        (DeliveryStatus::Pending, 0, 1)
    );
}

#[tokio::test]
async fn a_bus_that_does_not_take_the_event_leaves_it_pending_with_why_and_the_sweep_queues_it_again()
 {
    let stack = stack().await;
    // A table of its own: the sweep reads every pending publication in it.
    let table = Table::from_conf(&stack.aws, stack.new_table().await);
    let bus = own_bus(&stack).await;
    let queue_url = stack.new_queue().await;
    let missing = worker(&stack, &table, &queue_url, &unique("no-such-bus-"));
    let start = unix_now();
    let n = charge_succeeded(&table, start).await;

    let verdict = missing
        .handle(&received("m-1", &message(&n)), start + 1)
        .await;
    assert!(matches!(verdict, Verdict::RetryIn(_)), "{verdict:?}");
    let p = table
        .get_publication(&n.charge_id, &n.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.status, p.attempts, p.lease_until),
        (PublicationStatus::Pending, 1, None)
    );
    let why = p.last_error.unwrap_or_default();
    assert!(why.contains("does not exist"), "the record says why: {why}");
    assert!(events_on(&stack, &bus).await.is_empty());

    // Its message is lost (say it was dead-lettered and not redriven): half an hour past the
    // attempt, the sweep queues it again, and the worker with the right bus publishes it once.
    // (Its last claim ran to start + 1 + the lease.)
    let later = start + 1 + paybridge::services::publish::LEASE.as_secs() as i64 + 31 * 60;
    let queued = sweep_outbox(
        &table,
        &SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        Duration::from_secs(60),
        later,
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        queued, 2,
        "the publication, and the HTTP notification never queued"
    );
    let swept: Vec<WorkMessage> = (stack.drain(&queue_url).await.iter())
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert!(
        swept.contains(&WorkMessage::publish_notification(&n.charge_id, &n.id)),
        "{swept:?}"
    );
    let right = worker(&stack, &table, &queue_url, &bus.name);
    for _ in 0..2 {
        let verdict = right.handle(&received("m-2", &message(&n)), later).await;
        assert_eq!(verdict, Verdict::Done);
    }
    let events = events_on(&stack, &bus).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let p = table
        .get_publication(&n.charge_id, &n.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.status, p.attempts, p.last_error),
        (PublicationStatus::Published, 2, None)
    );
}
