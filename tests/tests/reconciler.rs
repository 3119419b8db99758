//! The reconciler against the local stack: DynamoDB and SQS on moto, Stripe = localstripe behind
//! the test proxy (lost responses, Stripe's idempotency, Stripe's list of undelivered events,
//! Stripe's search, which the shim adds to localstripe).

use std::time::Duration;

use charges::handler::Charges;
use futures::StreamExt;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::event::EventRecord;
use paybridge::domain::{
    Charge, ChargeId, ChargeStatus, EventStatus, Gateway, Money, RefundId, RefundStatus,
    WorkMessage,
};
use paybridge::ports::{
    ChargeStore, EventStore, NotificationStore, ReconcileItem, ReconcileStore, RefundStore,
};
use paybridge::secrets::SecretString;
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
    refunds: refunds::handler::Refunds,
}

fn router(stack: &Stack, base: &str) -> GatewayRouter {
    let key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(2)),
            base,
            key,
        )),
        // Adyen has no status API: the reconciler never calls it, so no Adyen needs to listen.
        adyen: Some(AdyenGateway::new(
            http_client(Duration::from_secs(2)),
            "http://127.0.0.1:9/v71",
            SecretString::new("adyen-test-key"),
            "PaybridgeTest",
        )),
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
    let refunds = refunds::handler::Refunds {
        store: Table::from_conf(&stack.aws, &table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &stack.new_queue().await),
        idempotency_ttl: Duration::from_secs(3600),
    };
    Harness {
        refunds,
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
    run_at(h, unix_now() + 2).await
}

/// Reconcile everything in flight as a run at `now` would.
async fn run_at(h: &Harness, now: i64) -> Summary {
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        ..ReconcileSettings::default()
    };
    reconcile(&h.store, &h.gateways, &h.queue, &settings, now)
        .await
        .unwrap()
}

/// A day and an hour: past the 23 hours paybridge trusts Stripe to remember a key.
const PAST_STRIPES_KEY_WINDOW: i64 = 25 * 3600;

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

    // The worker applies it (the charge is unknown, so at a last attempt after the hour an own
    // charge's lost answer may take it is orphaned — what matters here is that it is processed
    // exactly once and leaves the open list).
    let later = unix_now() + paybridge::services::apply_event::WAIT_FOR_OWN_ANSWER_SECS + 1;
    let applied = apply_event(&h.store, &h.queue, Gateway::Stripe, &event_id, true, later)
        .await
        .unwrap();
    assert_eq!(applied, Applied::Orphaned);
    assert_eq!(
        apply_event(&h.store, &h.queue, Gateway::Stripe, &event_id, true, later)
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

/// `n` Adyen charges processing since an hour ago: in flight, and nothing the reconciler can ask
/// resolves them (Adyen has no status API; only its webhook will).
async fn adyen_charges_in_flight(h: &Harness, n: usize) -> Vec<ChargeId> {
    let an_hour_ago = unix_now() - 3600;
    let charges: Vec<Charge> = (0..n)
        .map(|i| {
            let amount = Money::parse(1000 + i as i64, "EUR").unwrap();
            let mut c = Charge::pending(
                ChargeId::generate(),
                unique("inv_"),
                amount,
                Gateway::Adyen,
                "stored-card-1",
                an_hour_ago,
            );
            c.status = ChargeStatus::Processing;
            c.gateway_ref = Some(format!("PSP{i:013}"));
            c.customer = Some("shopper-1".into());
            c
        })
        .collect();
    let store = &h.store;
    futures::stream::iter(
        charges
            .iter()
            .map(|c| async move { paybridge_tests::builders::seed_charge(store, c).await }),
    )
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .unwrap();
    charges.into_iter().map(|c| c.id).collect()
}

#[tokio::test]
async fn with_a_thousand_unresolvable_items_in_flight_a_run_still_finds_and_fixes_a_newer_stuck_charge()
 {
    let h = harness().await;
    let stuck = adyen_charges_in_flight(&h, 1000).await;
    // Newer than all of them, so an oldest-first look at a fixed number never reached it.
    let newer = charge_with_lost_answer(&h).await;

    let first = run(&h).await;
    let charge = h.store.get_charge(&newer).await.unwrap().unwrap();
    assert_eq!(charge.status, ChargeStatus::Succeeded, "{first:?}");
    assert_eq!(
        (
            first.fixed,
            first.parked,
            first.needs_attention,
            first.complete
        ),
        (1, 1000, 1000, true),
        "{first:?}"
    );
    assert!(
        first.pages >= 11,
        "paged through 1001 charges 100 at a time: {first:?}"
    );
    assert_eq!(succeeded_notifications(&h, &newer).await, 1);

    // What was set aside no longer stands in the way: the next run has nothing to look at.
    let second = run(&h).await;
    assert_eq!(
        (second.checked, second.parked, second.needs_attention),
        (0, 0, 1000),
        "{second:?}"
    );
    let parked = h.store.parked().await.unwrap();
    assert_eq!(parked.len(), 1000);
    assert!(
        parked
            .iter()
            .all(|p| p.kind == "charge" && p.reason == "no_status_api" && p.status == "processing")
    );

    // Adyen's webhook comes at last: the charge settles and leaves the list by itself.
    let one = h.store.get_charge(&stuck[0]).await.unwrap().unwrap();
    let outcome = paybridge::domain::PaymentOutcome {
        gateway_ref: one.gateway_ref.clone().unwrap(),
        status: ChargeStatus::Succeeded,
        captured: one.amount.minor(),
        failure: None,
        action: None,
    };
    paybridge::services::charges::settle(&h.store, &h.queue, one, &outcome, unix_now())
        .await
        .unwrap();
    assert_eq!(h.store.count_parked().await.unwrap(), 999);

    // A person who looked puts one back; the reconciler sees it (and sets it aside again).
    assert!(
        h.store
            .unpark(ReconcileItem::Charge(&stuck[1]))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .unpark(ReconcileItem::Charge(&stuck[1]))
            .await
            .unwrap()
    );
    let third = run(&h).await;
    assert_eq!(
        (third.checked, third.parked, third.needs_attention),
        (1, 1, 999),
        "{third:?}"
    );
}

#[tokio::test]
async fn a_run_pages_through_every_kind_and_stops_at_its_budget_for_the_next_run_to_go_on() {
    let h = harness().await;
    adyen_charges_in_flight(&h, 25).await;
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        page_size: 10,
        ..ReconcileSettings::default()
    };
    let now = unix_now() + 2;
    let out_of_time = ReconcileSettings {
        budget: Duration::ZERO,
        ..settings.clone()
    };
    let nothing = reconcile(&h.store, &h.gateways, &h.queue, &out_of_time, now)
        .await
        .unwrap();
    assert_eq!(
        (nothing.checked, nothing.complete),
        (0, false),
        "{nothing:?}"
    );
    let all = reconcile(&h.store, &h.gateways, &h.queue, &settings, now)
        .await
        .unwrap();
    assert_eq!((all.parked, all.complete), (25, true), "{all:?}");
    // Charges in three pages (10, 10, 5), and one page each of refunds and events.
    assert_eq!(all.pages, 5, "{all:?}");
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_found_by_search_after_stripe_forgot_its_key_never_sent_again()
 {
    let h = harness().await;
    let id = charge_with_lost_answer(&h).await;
    let summary = run_at(&h, unix_now() + PAST_STRIPES_KEY_WINDOW).await;
    assert_eq!((summary.checked, summary.fixed), (1, 1), "{summary:?}");
    let charge = h.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (charge.status, charge.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert!(charge.gateway_ref.as_deref().unwrap().starts_with("pi_"));
    assert_eq!(h.proxy.creates_forwarded(), 1, "found, not created again");
    assert_eq!(succeeded_notifications(&h, &id).await, 1);
}

#[tokio::test]
async fn a_charge_that_never_reached_stripe_fails_after_the_key_window_so_billing_may_charge_again()
{
    let h = harness().await;
    // Stripe answers 503 before anything is created: the outcome is unknown, the charge pending.
    h.proxy.refuse_next_creates(1, 503);
    let body = json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let request = post_event("POST /charges", "/charges", Some(&unique("k-")), &body);
    let reply = Reply::from_response(charges::handler::handle(&h.charges, request).await.unwrap());
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap();

    let summary = run_at(&h, unix_now() + PAST_STRIPES_KEY_WINDOW).await;
    assert_eq!(summary.fixed, 1, "{summary:?}");
    let charge = h.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(charge.status, ChargeStatus::Failed);
    assert_eq!(charge.failure.unwrap().code, "payment_not_created");
    assert_eq!(
        h.proxy.creates_forwarded(),
        0,
        "nothing was ever sent again"
    );
    let failed = h.store.notifications_for_charge(&id).await.unwrap();
    assert_eq!(
        failed
            .iter()
            .filter(|n| n.event_type == "charge.failed")
            .count(),
        1,
        "billing is told, once"
    );
}

#[tokio::test]
async fn a_refund_whose_answer_was_lost_is_found_in_the_payment_intents_refunds_after_the_key_window()
 {
    let h = harness().await;
    let body = json!({"invoice_id": unique("inv_"), "amount": 10_000, "currency": "eur", "gateway": "stripe", "payment_method": "pm_card_visa"});
    let request = post_event("POST /charges", "/charges", Some(&unique("k-")), &body);
    let reply = Reply::from_response(charges::handler::handle(&h.charges, request).await.unwrap());
    assert_eq!(reply.status, 201, "{}", reply.body);
    let charge = reply.json()["id"].as_str().unwrap().to_owned();

    let refund = |amount: i64| {
        let path = format!("/charges/{charge}/refunds");
        let request = post_event(
            "POST /charges/{id}/refunds",
            &path,
            Some(&unique("k-")),
            &json!({"amount": amount}),
        );
        async { Reply::from_response(refunds::handler::handle(&h.refunds, request).await.unwrap()) }
    };
    // One refund reaches Stripe and its answer is lost; another never reaches Stripe.
    h.proxy.lose_next_create_responses(1);
    let made = refund(3000).await;
    h.proxy.refuse_next_creates(1, 503);
    let never = refund(2000).await;
    assert_eq!(
        (made.status, never.status),
        (202, 202),
        "{} {}",
        made.body,
        never.body
    );
    let made = RefundId::parse(made.json()["id"].as_str().unwrap()).unwrap();
    let never = RefundId::parse(never.json()["id"].as_str().unwrap()).unwrap();

    let summary = run_at(&h, unix_now() + PAST_STRIPES_KEY_WINDOW).await;
    assert_eq!(summary.fixed, 2, "{summary:?}");
    let made = h.store.get_refund(&made).await.unwrap().unwrap();
    assert_eq!(made.status, RefundStatus::Succeeded);
    assert!(made.gateway_ref.unwrap().starts_with("re_"));
    let never = h.store.get_refund(&never).await.unwrap().unwrap();
    assert_eq!(never.status, RefundStatus::Failed);
    assert_eq!(never.failure.unwrap().code, "refund_not_created");
    assert_eq!(
        h.proxy.posts_forwarded("/v1/refunds"),
        1,
        "one refund at Stripe, none re-sent"
    );
    let charge = h
        .store
        .get_charge(&ChargeId::parse(&charge).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (charge.refunded, charge.refund_reserved),
        (3000, 0),
        "the refund made counts; the reservation of the one never made is released"
    );
}

#[tokio::test]
async fn a_run_out_of_time_is_gone_on_from_by_the_next_so_unresolved_old_items_never_hide_newer_ones()
 {
    let h = harness().await;
    // Ten charges Stripe knows nothing of: every run asks and learns nothing, and they stay first.
    for i in 0..10 {
        let mut c = Charge::pending(
            ChargeId::generate(),
            unique("inv_"),
            Money::parse(1000 + i, "EUR").unwrap(),
            Gateway::Stripe,
            "pm_card_visa",
            unix_now() - 3600,
        );
        c.status = ChargeStatus::Processing;
        c.gateway_ref = Some(unique("pi_unknown"));
        paybridge_tests::builders::store_charge(&h.store, &c)
            .await
            .unwrap();
    }
    let newer = charge_with_lost_answer(&h).await;
    // A run's budget covers one page of ten.
    let settings = ReconcileSettings {
        after: Duration::ZERO,
        events_window: Duration::from_secs(3600),
        page_size: 10,
        max_pages: 1,
        ..ReconcileSettings::default()
    };
    let now = unix_now() + 2;
    let first = reconcile(&h.store, &h.gateways, &h.queue, &settings, now)
        .await
        .unwrap();
    assert_eq!(
        (first.unknown, first.fixed, first.complete),
        (10, 0, false),
        "{first:?}"
    );

    // Fifteen minutes later: the next run goes on after the ten, and reaches the newer charge.
    let later = now + 900;
    let second = reconcile(&h.store, &h.gateways, &h.queue, &settings, later)
        .await
        .unwrap();
    assert_eq!((second.fixed, second.complete), (1, false), "{second:?}");
    assert_eq!(
        h.store.get_charge(&newer).await.unwrap().unwrap().status,
        ChargeStatus::Succeeded
    );
    // Given time, a run reads on and around, and the next starts at the oldest again.
    let enough = ReconcileSettings {
        max_pages: usize::MAX,
        ..settings
    };
    let third = reconcile(&h.store, &h.gateways, &h.queue, &enough, later + 900)
        .await
        .unwrap();
    assert_eq!((third.unknown, third.complete), (10, true), "{third:?}");
    assert_eq!(
        h.store.resume_point().await.unwrap(),
        paybridge::ports::ResumePoint::default()
    );
}
