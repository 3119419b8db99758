//! The retry worker through its handler, fed the way the SQS event source mapping feeds it:
//! batches received from a real queue (moto) with a real dead-letter queue behind it.

use std::collections::HashSet;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use paybridge::adapters::billing::HttpNotifier;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::eventbridge::EventBridgeBus;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::event::EventRecord;
use paybridge::domain::{
    Charge, ChargeId, ChargeStatus, EventStatus, Gateway, Transition, WorkMessage,
};
use paybridge::ports::{ChargeStore, EventStore, NotificationStore, RefundStore, WorkQueue};
use paybridge::services::apply_event::{Applied, apply_event};
use paybridge::webhooks::stripe;
use paybridge_tests::builders;
use paybridge_tests::stripe_proxy::StripeProxy;
use paybridge_tests::{
    Reply, Stack, eventually, post_event, receive_batch, stack, unique, unix_now,
};
use retry_worker::handler::{Verdict, Worker, handle, process};
use serde_json::json;

struct Harness {
    stack: Stack,
    worker: Worker,
    queue_url: String,
    dlq_url: String,
    proxy: StripeProxy,
}

/// A work queue (visibility 1 s) whose DLQ takes messages after `max_receive` receives, and a
/// worker on it. Billing is a port where nothing listens.
async fn harness(max_receive: u32) -> Harness {
    let stack = stack().await;
    let sqs = stack.sqs();
    let dlq_url = sqs
        .create_queue()
        .queue_name(unique("dlq-"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("work-"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let proxy = StripeProxy::start(&stack.config.stripe_api_base).await;
    let stripe_key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    let signing = stack
        .secrets
        .billing
        .as_ref()
        .unwrap()
        .signing_secret
        .clone();
    let worker = Worker {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        gateways: GatewayRouter {
            stripe: Some(StripeGateway::new(
                http_client(Duration::from_secs(2)),
                &proxy.url,
                stripe_key,
            )),
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        dlq: Some(SqsWorkQueue::from_conf(&stack.aws, &dlq_url)),
        notifier: Some(
            HttpNotifier::new(
                http_client(Duration::from_secs(1)),
                "http://127.0.0.1:9/billing",
                &signing,
            )
            .unwrap(),
        ),
        bus: (stack.config.event_bus.as_ref())
            .map(|name| EventBridgeBus::from_conf(&stack.aws, name)),
        max_receive_count: max_receive,
    };
    Harness {
        stack,
        worker,
        queue_url,
        dlq_url,
        proxy,
    }
}

impl Harness {
    async fn send(&self, message: &WorkMessage) {
        self.worker
            .queue
            .send(message, Duration::ZERO)
            .await
            .unwrap();
    }

    /// One round of the event source mapping: receive, invoke, delete what succeeded. Returns
    /// (received, reported failures).
    async fn run_once(&self) -> (usize, Vec<String>) {
        let sqs = self.stack.sqs();
        let (event, receipts) = receive_batch(&sqs, &self.queue_url, Duration::from_secs(1)).await;
        let received = event.records.len();
        if received == 0 {
            return (0, vec![]);
        }
        let response = handle(&self.worker, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for (id, receipt) in receipts {
            if !failed.contains(&id) {
                sqs.delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap();
            }
        }
        (received, failed)
    }
}

/// A recorded Stripe event about PaymentIntent `pi` of `charge`, in PI status `status`.
async fn record_stripe_event(
    store: &Table,
    event_type: &str,
    pi: &str,
    status: &str,
    charge: Option<&ChargeId>,
) -> String {
    let id = unique("evt_");
    let mut object = json!({"id": pi, "object": "payment_intent", "status": status, "amount": 1999, "amount_received": 1999});
    if let Some(c) = charge {
        object["metadata"] = json!({"paybridge_charge_id": c.to_string()});
    }
    let body = json!({"id": id, "type": event_type, "data": {"object": object}}).to_string();
    let event = stripe::parse(body.as_bytes()).unwrap();
    store
        .insert_event(&EventRecord::new(event, unix_now(), 0, 3600))
        .await
        .unwrap();
    id
}

fn pending_charge() -> Charge {
    Charge {
        capture: false,
        ..builders::pending_charge(Gateway::Stripe, unix_now())
    }
}

#[tokio::test]
async fn a_batch_with_one_poison_message_finishes_nine_reports_one_dead_letters_it_and_redrive_brings_it_back()
 {
    let h = harness(2).await;
    for _ in 0..9 {
        let event = record_stripe_event(
            &h.worker.store,
            "charge.dispute.created",
            "pi_x",
            "succeeded",
            None,
        )
        .await;
        h.send(&WorkMessage::apply_event(Gateway::Stripe, &event))
            .await;
    }
    // Work that can never succeed: a retry for a charge that does not exist.
    let poison = WorkMessage::retry_charge(&ChargeId::generate(), 1);
    h.send(&poison).await;

    let (received, failed) = h.run_once().await;
    assert_eq!(
        (received, failed.len()),
        (10, 1),
        "9 done and deleted, 1 reported"
    );

    // SQS redelivers the poison until maxReceiveCount, then moves it to the DLQ.
    let dlq = SqsWorkQueue::from_conf(&h.stack.aws, &h.dlq_url);
    let harness = &h;
    eventually(
        Duration::from_secs(20),
        "the poison to reach the DLQ",
        || async move {
            let (received, failed) = harness.run_once().await;
            assert_eq!(received, failed.len(), "only the poison is left");
            let attrs = harness
                .stack
                .sqs()
                .get_queue_attributes()
                .queue_url(&harness.dlq_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap();
            (attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages] == "1")
                .then_some(())
        },
    )
    .await;

    let report = dlq.redrive_to(&h.worker.queue, 100).await.unwrap();
    assert_eq!(report.moved, 1);
    let back = h.stack.drain(&h.queue_url).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        serde_json::from_str::<WorkMessage>(&back[0]).unwrap(),
        poison
    );
}

#[tokio::test]
async fn unreadable_and_unknown_version_messages_go_straight_to_the_dead_letter_queue() {
    let h = harness(5).await;
    h.stack
        .sqs()
        .send_message()
        .queue_url(&h.queue_url)
        .message_body("not json")
        .send()
        .await
        .unwrap();
    let future = json!({"kind": "apply_event", "v": 99, "gateway": "stripe", "event_id": "evt_1"})
        .to_string();
    h.stack
        .sqs()
        .send_message()
        .queue_url(&h.queue_url)
        .message_body(&future)
        .send()
        .await
        .unwrap();
    let (received, failed) = h.run_once().await;
    assert_eq!(
        (received, failed.len()),
        (2, 0),
        "not retried: no crash loop"
    );
    let dead: HashSet<String> = h.stack.drain(&h.dlq_url).await.into_iter().collect();
    assert_eq!(dead, HashSet::from(["not json".to_owned(), future]));
}

/// Applies events in `order` to a fresh charge; returns (final status, notifications written).
async fn apply_in_order(h: &Harness, order: &[(&str, &str)]) -> (ChargeStatus, usize, usize) {
    let charge = pending_charge();
    paybridge_tests::builders::store_charge(&h.worker.store, &charge)
        .await
        .unwrap();
    let pi = unique("pi_");
    let mut events = Vec::new();
    for (event_type, status) in order {
        events.push(
            record_stripe_event(&h.worker.store, event_type, &pi, status, Some(&charge.id)).await,
        );
    }
    let mut expected_changes = 0;
    let mut model = ChargeStatus::Pending;
    for (event, (_, status)) in events.iter().zip(order) {
        let applied = apply_event(
            &h.worker.store,
            &h.worker.queue,
            Gateway::Stripe,
            event,
            false,
            unix_now(),
        )
        .await
        .unwrap();
        assert_eq!(applied, Applied::Applied);
        let next = match *status {
            "processing" => ChargeStatus::Processing,
            "requires_capture" => ChargeStatus::Authorized,
            _ => ChargeStatus::Succeeded,
        };
        if model.advance(next) == Transition::Advance {
            model = next;
            expected_changes += 1;
        }
    }
    // The same events again: nothing changes.
    for event in &events {
        let again = apply_event(
            &h.worker.store,
            &h.worker.queue,
            Gateway::Stripe,
            event,
            false,
            unix_now(),
        )
        .await
        .unwrap();
        assert_eq!(again, Applied::AlreadyDone);
    }
    let stored = h
        .worker
        .store
        .get_charge(&charge.id)
        .await
        .unwrap()
        .unwrap();
    let notifications = h
        .worker
        .store
        .notifications_for_charge(&charge.id)
        .await
        .unwrap();
    for e in &events {
        assert_eq!(
            h.worker
                .store
                .get_event(Gateway::Stripe, e)
                .await
                .unwrap()
                .unwrap()
                .status,
            EventStatus::Processed
        );
    }
    (stored.status, notifications.len(), expected_changes)
}

#[tokio::test]
async fn events_in_any_order_and_twice_end_in_the_same_state_with_one_notification_per_real_change()
{
    let h = harness(5).await;
    let events = [
        ("payment_intent.processing", "processing"),
        (
            "payment_intent.amount_capturable_updated",
            "requires_capture",
        ),
        ("payment_intent.succeeded", "succeeded"),
    ];
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let seq: Vec<(&str, &str)> = order.iter().map(|i| events[*i]).collect();
        let (status, notified, changes) = apply_in_order(&h, &seq).await;
        assert_eq!(status, ChargeStatus::Succeeded, "order {order:?}");
        assert_eq!(
            notified, changes,
            "order {order:?}: one notification per real state change"
        );
    }
    // And each applied change queued its delivery.
    let queued = h.stack.drain(&h.queue_url).await;
    assert!(
        queued.iter().all(|b| b.contains("deliver_notification")),
        "{queued:?}"
    );
}

fn record_at(message: &WorkMessage, receive_count: u32) -> SqsMessage {
    serde_json::from_value(json!({
        "messageId": unique("m-"), "receiptHandle": "r", "body": serde_json::to_string(message).unwrap(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(), "SentTimestamp": "0"},
        "messageAttributes": {}, "eventSource": "aws:sqs"
    }))
    .unwrap()
}

#[tokio::test]
async fn an_event_for_an_unknown_payment_is_retried_with_backoff_then_recorded_as_orphaned() {
    let h = harness(4).await;
    let event = record_stripe_event(
        &h.worker.store,
        "payment_intent.succeeded",
        &unique("pi_"),
        "succeeded",
        None,
    )
    .await;
    let message = WorkMessage::apply_event(Gateway::Stripe, &event);
    match process(&h.worker, &record_at(&message, 1)).await {
        Verdict::RetryIn(d) => assert!(d >= Duration::from_secs(10), "{d:?}"),
        other => panic!("expected a backoff, got {other:?}"),
    }
    assert_eq!(
        h.worker
            .store
            .get_event(Gateway::Stripe, &event)
            .await
            .unwrap()
            .unwrap()
            .status,
        EventStatus::Received
    );
    // The last receive within the hour a charge's lost answer may take: left open for the
    // reconciler to queue again.
    assert_eq!(
        process(&h.worker, &record_at(&message, 4)).await,
        Verdict::Done
    );
    let stored = h.worker.store.get_event(Gateway::Stripe, &event).await;
    assert_eq!(stored.unwrap().unwrap().status, EventStatus::Received);
    // After it: orphaned.
    let later = unix_now() + paybridge::services::apply_event::WAIT_FOR_OWN_ANSWER_SECS + 1;
    let last = apply_event(
        &h.worker.store,
        &h.worker.queue,
        Gateway::Stripe,
        &event,
        true,
        later,
    );
    assert_eq!(last.await.unwrap(), Applied::Orphaned);
    let stored = h.worker.store.get_event(Gateway::Stripe, &event).await;
    assert_eq!(stored.unwrap().unwrap().status, EventStatus::Orphaned);
}

#[tokio::test]
async fn the_charge_and_refund_retries_are_dispatched_and_complete_against_localstripe() {
    let h = harness(5).await;
    let charges = charges::handler::Charges {
        store: Table::from_conf(&h.stack.aws, &h.stack.config.table),
        gateways: GatewayRouter {
            stripe: Some(StripeGateway::new(
                http_client(Duration::from_secs(2)),
                &h.proxy.url,
                h.stack.secrets.stripe.as_ref().unwrap().api_key.clone(),
            )),
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&h.stack.aws, &h.stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    h.proxy.lose_next_create_responses(1);
    let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = Reply::from_response(
        charges::handler::handle(
            &charges,
            post_event("POST /charges", "/charges", Some(&unique("k-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap();

    h.send(&WorkMessage::retry_charge(&id, 1)).await;
    let (received, failed) = h.run_once().await;
    assert_eq!((received, failed.len()), (1, 0));
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.status, charge.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert_eq!(h.proxy.creates_forwarded(), 1, "one PaymentIntent");

    // A refund whose answer was lost, finished by the worker.
    let refunds = refunds::handler::Refunds {
        store: Table::from_conf(&h.stack.aws, &h.stack.config.table),
        gateways: GatewayRouter {
            stripe: Some(StripeGateway::new(
                http_client(Duration::from_secs(2)),
                &h.proxy.url,
                h.stack.secrets.stripe.as_ref().unwrap().api_key.clone(),
            )),
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&h.stack.aws, &h.stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    h.proxy.lose_next_create_responses(1);
    let path = format!("/charges/{id}/refunds");
    let reply = Reply::from_response(
        refunds::handler::handle(
            &refunds,
            post_event(
                "POST /charges/{id}/refunds",
                &path,
                Some(&unique("k-")),
                &json!({"amount": 500}),
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let refund_id =
        paybridge::domain::RefundId::parse(reply.json()["id"].as_str().unwrap()).unwrap();
    h.stack.drain(&h.queue_url).await; // notifications queued so far
    h.send(&WorkMessage::retry_refund(&refund_id, 1)).await;
    let (received, failed) = h.run_once().await;
    assert_eq!((received, failed.len()), (1, 0));
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.refunded, charge.refund_reserved, charge.status),
        (500, 0, ChargeStatus::PartiallyRefunded)
    );
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 1, "one refund");
}

/// Issue "incidents", 1: once an outcome is unknown, a refusal of a retry (401 after a rolled
/// key, 403) is not the gateway's answer about the first request: the charge and the refund stay
/// pending, and the next retry finds the truth — one PaymentIntent, one refund.
#[tokio::test]
async fn a_refusal_of_a_retry_after_an_unknown_outcome_never_settles_a_charge_or_refund_as_failed()
{
    let h = harness(5).await;
    let gateway = || GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(2)),
            &h.proxy.url,
            h.stack.secrets.stripe.as_ref().unwrap().api_key.clone(),
        )),
        adyen: None,
    };
    let charges = charges::handler::Charges {
        store: Table::from_conf(&h.stack.aws, &h.stack.config.table),
        gateways: gateway(),
        queue: SqsWorkQueue::from_conf(&h.stack.aws, &h.stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    h.proxy.lose_next_create_responses(1);
    let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = Reply::from_response(
        charges::handler::handle(
            &charges,
            post_event("POST /charges", "/charges", Some(&unique("k-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap();

    h.proxy.refuse_next_creates(1, 401);
    h.send(&WorkMessage::retry_charge(&id, 1)).await;
    h.run_once().await;
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        charge.status,
        ChargeStatus::Pending,
        "a 401 to the retry is not a decline"
    );
    h.send(&WorkMessage::retry_charge(&id, 2)).await;
    h.run_once().await;
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.status, charge.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert_eq!(h.proxy.creates_forwarded(), 1, "one PaymentIntent");
    let types: Vec<String> = (h.worker.store.notifications_for_charge(&id).await.unwrap())
        .into_iter()
        .map(|n| n.event_type)
        .collect();
    assert_eq!(
        types,
        ["charge.succeeded"],
        "billing never heard charge.failed"
    );

    let refunds = refunds::handler::Refunds {
        store: Table::from_conf(&h.stack.aws, &h.stack.config.table),
        gateways: gateway(),
        queue: SqsWorkQueue::from_conf(&h.stack.aws, &h.stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    h.proxy.lose_next_create_responses(1);
    let key = unique("k-");
    let path = format!("/charges/{id}/refunds");
    let refund_request = || {
        post_event(
            "POST /charges/{id}/refunds",
            &path,
            Some(&key),
            &json!({"amount": 500}),
        )
    };
    let reply = Reply::from_response(
        refunds::handler::handle(&refunds, refund_request())
            .await
            .unwrap(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let refund_id =
        paybridge::domain::RefundId::parse(reply.json()["id"].as_str().unwrap()).unwrap();
    h.proxy.refuse_next_creates(1, 403);
    h.send(&WorkMessage::retry_refund(&refund_id, 1)).await;
    h.run_once().await;
    let refund = h
        .worker
        .store
        .get_refund(&refund_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refund.status, paybridge::domain::RefundStatus::Pending);
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(charge.refund_reserved, 500, "the reservation is kept");
    h.send(&WorkMessage::retry_refund(&refund_id, 2)).await;
    h.run_once().await;
    let charge = h.worker.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.refunded, charge.refund_reserved, charge.status),
        (500, 0, ChargeStatus::PartiallyRefunded)
    );
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 1, "one refund");
}
