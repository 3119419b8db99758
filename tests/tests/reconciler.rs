//! The reconciler against the local stack: DynamoDB and SQS on moto, Stripe = localstripe behind
//! the test proxy (lost responses, Stripe's idempotency, Stripe's list of undelivered events).

use std::time::Duration;

use charges::handler::Charges;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::event::EventRecord;
use paybridge::domain::{ChargeId, ChargeStatus, EventStatus, Gateway, WorkMessage};
use paybridge::ports::{ChargeStore, EventStore, NotificationStore};
use paybridge::services::apply_event::{Applied, apply_event};
use paybridge::services::reconcile::{ReconcileSettings, Summary, reconcile};
use paybridge::webhooks::stripe;
use paybridge_tests::stripe_proxy::StripeProxy;
use paybridge_tests::{Reply, Stack, eventually, post_event, stack, unique, unix_now};
use serde_json::json;

struct Harness {
    stack: Stack,
    store: Table,
    gateways: GatewayRouter,
    charges: Charges,
    queue: SqsWorkQueue,
    queue_url: String,
    proxy: StripeProxy,
}

fn router(stack: &Stack, base: &str) -> GatewayRouter {
    let key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(2)),
            base,
            key,
        )),
        adyen: None,
    }
}

async fn harness() -> Harness {
    let stack = stack().await;
    let proxy = StripeProxy::start(&stack.config.stripe_api_base).await;
    // Nothing counts as undelivered unless a test says so (localstripe lists every event).
    proxy.undelivered_events_about(&[]);
    let queue_url = stack.new_queue().await;
    // Its own table: a reconciler run works on everything in flight in its table.
    let table = stack.new_table().await;
    let charges = Charges {
        store: Table::from_conf(&stack.aws, &table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    Harness {
        store: Table::from_conf(&stack.aws, &table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        stack,
        charges,
        queue_url,
        proxy,
    }
}

/// Reconcile everything in flight, as a run a few seconds from now would.
async fn run(h: &Harness) -> Summary {
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        ..ReconcileSettings::default()
    };
    reconcile(&h.store, &h.gateways, &h.queue, &settings, unix_now() + 2)
        .await
        .unwrap()
}

async fn charge_with_lost_answer(h: &Harness) -> ChargeId {
    h.proxy.lose_next_create_responses(1);
    let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = Reply::from_response(
        charges::handler::handle(
            &h.charges,
            post_event("POST /charges", "/charges", Some(&unique("k-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap()
}

async fn succeeded_notifications(h: &Harness, id: &ChargeId) -> usize {
    h.store
        .notifications_for_charge(id)
        .await
        .unwrap()
        .iter()
        .filter(|n| n.event_type == "charge.succeeded")
        .count()
}

#[tokio::test]
async fn a_charge_left_pending_after_a_lost_gateway_response_is_fixed_and_billing_is_notified_once()
{
    let h = harness().await;
    let id = charge_with_lost_answer(&h).await;
    assert_eq!(
        h.store.get_charge(&id).await.unwrap().unwrap().status,
        ChargeStatus::Pending
    );

    let summary = run(&h).await;
    assert_eq!(
        (summary.checked, summary.fixed, summary.unknown),
        (1, 1, 0),
        "{summary:?}"
    );
    let charge = h.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.status, charge.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert_eq!(
        h.proxy.creates_forwarded(),
        1,
        "asked again with the same key: still one PaymentIntent"
    );
    assert_eq!(succeeded_notifications(&h, &id).await, 1);

    // A second run finds nothing more to do for it.
    run(&h).await;
    assert_eq!(succeeded_notifications(&h, &id).await, 1);
    let queued: Vec<WorkMessage> = h
        .stack
        .drain(&h.queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let deliveries = queued
        .iter()
        .filter(|m| matches!(m, WorkMessage::DeliverNotification { .. }))
        .count();
    assert_eq!(
        deliveries, 1,
        "billing's notification is queued once: {queued:?}"
    );
}

#[tokio::test]
async fn an_event_recorded_but_never_enqueued_is_picked_up_and_processed_once() {
    let h = harness().await;
    let charge = ChargeId::generate();
    let pi = unique("pi_");
    let body = json!({"id": unique("evt_"), "type": "payment_intent.succeeded", "data": {"object": {
        "id": pi, "object": "payment_intent", "status": "succeeded", "amount": 1999, "metadata": {"paybridge_charge_id": charge.to_string()}}}});
    let event = stripe::parse(body.to_string().as_bytes()).unwrap();
    let event_id = event.event_id.clone();
    // What intake leaves when it dies between the record and the message: `received`.
    h.store
        .insert_event(&EventRecord::new(event, unix_now() - 60, 0, 3600))
        .await
        .unwrap();

    let summary = run(&h).await;
    assert_eq!(summary.events_requeued, 1, "{summary:?}");
    let messages: Vec<WorkMessage> = h
        .stack
        .drain(&h.queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let ours: Vec<_> = messages
        .iter()
        .filter(|m| **m == WorkMessage::apply_event(Gateway::Stripe, &event_id))
        .collect();
    assert_eq!(ours.len(), 1, "queued once");

    // The worker applies it (the charge is unknown, so at the last attempt it is orphaned —
    // what matters here is that it is processed exactly once and leaves the open list).
    let applied = apply_event(
        &h.store,
        &h.queue,
        Gateway::Stripe,
        &event_id,
        true,
        unix_now(),
    )
    .await
    .unwrap();
    assert_eq!(applied, Applied::Orphaned);
    assert_eq!(
        apply_event(
            &h.store,
            &h.queue,
            Gateway::Stripe,
            &event_id,
            true,
            unix_now()
        )
        .await
        .unwrap(),
        Applied::AlreadyDone
    );
    run(&h).await;
    let again: Vec<WorkMessage> = h
        .stack
        .drain(&h.queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert!(
        !again.contains(&WorkMessage::apply_event(Gateway::Stripe, &event_id)),
        "not queued again once handled"
    );
    assert_eq!(
        h.store
            .get_event(Gateway::Stripe, &event_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EventStatus::Orphaned
    );
}

#[tokio::test]
async fn two_reconcilers_at_once_do_no_double_work_and_send_no_double_notification() {
    let h = harness().await;
    let id = charge_with_lost_answer(&h).await;
    let body = json!({"id": unique("evt_"), "type": "payment_intent.processing", "data": {"object": {"id": unique("pi_"), "status": "processing"}}});
    let event = stripe::parse(body.to_string().as_bytes()).unwrap();
    let event_id = event.event_id.clone();
    h.store
        .insert_event(&EventRecord::new(event, unix_now() - 60, 0, 3600))
        .await
        .unwrap();

    let (a, b) = tokio::join!(run(&h), run(&h));
    assert_eq!(
        a.fixed + b.fixed,
        1,
        "one run fixes the charge: {a:?} {b:?}"
    );
    assert_eq!(a.events_requeued + b.events_requeued, 1, "{a:?} {b:?}");
    let charge = h.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(charge.status, ChargeStatus::Succeeded);
    assert_eq!(
        succeeded_notifications(&h, &id).await,
        1,
        "one notification: {a:?} {b:?}"
    );
    let messages: Vec<WorkMessage> = h
        .stack
        .drain(&h.queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let event_messages = messages
        .iter()
        .filter(|m| **m == WorkMessage::apply_event(Gateway::Stripe, &event_id))
        .count();
    assert_eq!(event_messages, 1, "the event is queued by one run only");
    let deliveries = messages
        .iter()
        .filter(|m| matches!(m, WorkMessage::DeliverNotification { .. }))
        .count();
    assert_eq!(deliveries, 1);
    assert_eq!(h.proxy.creates_forwarded(), 1);
}

#[tokio::test]
async fn stripe_events_that_were_never_delivered_are_fetched_and_recorded_once() {
    let h = harness().await;
    let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = Reply::from_response(
        charges::handler::handle(
            &h.charges,
            post_event("POST /charges", "/charges", Some(&unique("k-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let pi = reply.json()["gateway_ref"].as_str().unwrap().to_owned();

    // localstripe emits payment_intent.succeeded about a second after the payment.
    h.proxy.undelivered_events_about(&[&pi]);
    let harness = &h;
    let recovered = eventually(
        Duration::from_secs(15),
        "localstripe's event to show up in its list",
        || async move {
            let summary = run(harness).await;
            (summary.events_recovered >= 1).then_some(summary.events_recovered)
        },
    )
    .await;
    assert!(recovered >= 1);
    let again = run(&h).await;
    assert_eq!(
        again.events_recovered, 0,
        "recorded once: a second run deduplicates"
    );
    let messages = h.stack.drain(&h.queue_url).await;
    assert!(
        messages.iter().any(|m| m.contains("apply_event")),
        "the recovered event goes to the worker like any delivery"
    );
}
