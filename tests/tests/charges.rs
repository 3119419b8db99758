//! The charges function through its handler: DynamoDB and SQS on moto, Stripe = localstripe
//! behind a proxy that adds Stripe's idempotency and injects lost responses.

use std::sync::Arc;
use std::time::Duration;

use charges::handler::{Charges, handle};
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{ChargeId, ChargeStatus, PaymentOutcome, WorkMessage};
use paybridge::ports::ChargeStore;
use paybridge::services::charges::retry::{RetryOutcome, retry_charge};
use paybridge::services::charges::settle;
use paybridge_tests::stripe_proxy::StripeProxy;
use paybridge_tests::{Reply, Stack, api_request, get_event, post_event, stack, unique};
use serde_json::{Value, json};

struct Harness {
    stack: Stack,
    app: Charges,
    proxy: StripeProxy,
    queue_url: String,
}

/// The charges function wired to a fresh queue and to localstripe through the proxy; gateway
/// calls time out after 2 s so a "lost" answer is noticed quickly.
async fn harness() -> Harness {
    let stack = stack().await;
    let proxy = StripeProxy::start(&stack.config.stripe_api_base).await;
    let queue_url = stack.new_queue().await;
    let api_key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    let app = Charges {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        gateways: GatewayRouter {
            stripe: Some(StripeGateway::new(
                http_client(Duration::from_secs(2)),
                &proxy.url,
                api_key,
            )),
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        idempotency_ttl: Duration::from_secs(86_400),
    };
    Harness {
        stack,
        app,
        proxy,
        queue_url,
    }
}

async fn call(app: &Charges, req: lambda_http::Request) -> Reply {
    Reply::from_response(handle(app, req).await.unwrap())
}

async fn post(app: &Charges, path: &str, key: Option<&str>, body: &Value) -> Reply {
    let route = if path == "/charges" {
        "POST /charges".to_owned()
    } else {
        format!("POST /charges/{{id}}/{}", path.rsplit('/').next().unwrap())
    };
    call(app, post_event(&route, path, key, body)).await
}

async fn get(app: &Charges, path: &str, query: &[(&str, &str)]) -> Reply {
    let route = if path == "/charges" {
        "GET /charges"
    } else {
        "GET /charges/{id}"
    };
    call(app, get_event(route, path, query)).await
}

/// Authorizes a 19.99 EUR charge (capture later) and returns its id.
async fn authorized_charge(h: &Harness) -> String {
    let body = charge_body(&unique("inv_"), "pm_card_visa", false);
    let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

fn charge_body(invoice: &str, payment_method: &str, capture: bool) -> Value {
    json!({
        "invoice_id": invoice, "amount": 1999, "currency": "eur", "gateway": "stripe",
        "payment_method": payment_method, "capture": capture,
        "description": "Invoice 123", "metadata": {"plan": "pro"}
    })
}

#[tokio::test]
async fn a_card_charge_through_localstripe_succeeds_and_can_be_read_back() {
    let h = harness().await;
    let invoice = unique("inv_");
    let reply = post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&invoice, "pm_card_visa", true),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let charge = reply.json();
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(
        (
            charge["amount"].as_i64(),
            charge["captured"].as_i64(),
            charge["currency"].as_str()
        ),
        (Some(1999), Some(1999), Some("eur"))
    );
    assert!(
        charge["gateway_ref"].as_str().unwrap().starts_with("pi_"),
        "{charge}"
    );
    assert!(charge["id"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(charge["failure"], Value::Null);

    let id = charge["id"].as_str().unwrap();
    let read = get(&h.app, &format!("/charges/{id}"), &[]).await;
    assert_eq!((read.status, read.json()), (200, charge.clone()));
    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["data"], json!([charge]));
}

#[tokio::test]
async fn a_declined_card_is_a_failed_charge_with_the_decline_code_not_an_error() {
    let h = harness().await;
    // localstripe declines charges of this test method (it only refuses *attaching*
    // pm_card_visa_chargeDeclined; see docs/charges.md).
    let reply = post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&unique("inv_"), "pm_card_chargeCustomerFail", true),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let charge = reply.json();
    assert_eq!(charge["status"], "failed");
    assert_eq!(charge["failure"]["code"], "card_declined");
    assert_eq!(charge["captured"], 0);
}

#[tokio::test]
async fn an_authorized_charge_is_captured_once_and_then_cannot_be_captured_or_canceled() {
    let h = harness().await;
    let reply = post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&unique("inv_"), "pm_card_visa", false),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        (
            reply.json()["status"].as_str(),
            reply.json()["captured"].as_i64()
        ),
        (Some("authorized"), Some(0))
    );
    let id = reply.json()["id"].as_str().unwrap().to_owned();

    let captured = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(captured.status, 200, "{}", captured.body);
    assert_eq!(
        (
            captured.json()["status"].as_str(),
            captured.json()["captured"].as_i64()
        ),
        (Some("succeeded"), Some(1999))
    );

    let again = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "charge_not_capturable")
    );
    let cancel = post(
        &h.app,
        &format!("/charges/{id}/cancel"),
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (cancel.status, cancel.error_code().as_str()),
        (409, "charge_captured")
    );
}

#[tokio::test]
async fn an_authorized_charge_can_be_canceled() {
    let h = harness().await;
    let reply = post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&unique("inv_"), "pm_card_visa", false),
    )
    .await;
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let canceled = post(
        &h.app,
        &format!("/charges/{id}/cancel"),
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(canceled.json()["status"], "canceled");
    let capture = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (capture.status, capture.error_code().as_str()),
        (409, "charge_not_capturable")
    );
}

#[tokio::test]
async fn the_same_key_and_request_replay_the_first_response_byte_for_byte_and_a_changed_request_is_refused()
 {
    let h = harness().await;
    let key = unique("key-");
    let body = charge_body(&unique("inv_"), "pm_card_visa", true);
    let first = post(&h.app, "/charges", Some(&key), &body).await;
    assert_eq!((first.status, first.replayed), (201, false));

    // Same request, keys in another order: still the same request.
    let reordered: Value = serde_json::from_str(&body.to_string()).unwrap();
    let second = post(&h.app, "/charges", Some(&key), &reordered).await;
    assert_eq!((second.status, second.replayed), (201, true));
    assert_eq!(second.body, first.body, "byte for byte");

    let mut changed = body.clone();
    changed["amount"] = json!(2000);
    let third = post(&h.app, "/charges", Some(&key), &changed).await;
    assert_eq!(
        (third.status, third.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
    assert_eq!(h.proxy.creates_forwarded(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_requests_make_one_payment_and_all_see_the_same_charge() {
    let h = Arc::new(harness().await);
    let key = unique("key-");
    let body = charge_body(&unique("inv_"), "pm_card_visa", true);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (h, key, body) = (h.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                // A well-behaved billing client: on 409, wait Retry-After and try again.
                for _ in 0..30 {
                    let reply = post(&h.app, "/charges", Some(&key), &body).await;
                    assert!(reply.status < 500, "no caller may see a 5xx: {reply:?}");
                    if reply.status == 409 {
                        assert_eq!(reply.error_code(), "request_in_progress");
                        tokio::time::sleep(Duration::from_secs(reply.retry_after.unwrap_or(1)))
                            .await;
                        continue;
                    }
                    return reply;
                }
                panic!("never got an answer");
            })
        })
        .collect();
    let mut ids = Vec::new();
    for c in callers {
        let reply = c.await.unwrap();
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller sees the same charge");
    assert_eq!(
        h.proxy.creates_forwarded(),
        1,
        "one PaymentIntent at the gateway"
    );
}

#[tokio::test]
async fn a_lost_gateway_response_gives_202_and_the_retry_completes_the_charge_with_one_payment() {
    let h = harness().await;
    h.proxy.lose_next_create_responses(1);
    let reply = post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&unique("inv_"), "pm_card_visa", true),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["status"], "pending");
    assert_eq!(h.proxy.creates_forwarded(), 1, "the gateway did charge");
    let id = ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap();

    // The retry message is on the work queue, delayed by the backoff (12-18 s).
    let attrs = h
        .stack
        .sqs()
        .get_queue_attributes()
        .queue_url(&h.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs.attributes().and_then(|a| {
        a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .cloned()
    });
    assert_eq!(delayed.as_deref(), Some("1"));

    // The retry use case (what the worker runs for that message) (what the worker runs for it) finishes the charge with the same key.
    let outcome = retry_charge(
        &h.app.store,
        &h.app.gateways,
        &h.app.queue,
        &id,
        1,
        paybridge_tests::unix_now(),
    )
    .await
    .unwrap();
    assert_eq!(outcome, RetryOutcome::Done(ChargeStatus::Succeeded));
    assert_eq!(
        h.proxy.creates_forwarded(),
        1,
        "still exactly one PaymentIntent"
    );
    let stored = h.app.store.get_charge(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.captured),
        (ChargeStatus::Succeeded, 1999)
    );
    assert!(stored.gateway_ref.unwrap().starts_with("pi_"));
}

#[tokio::test]
async fn when_stripe_is_unreachable_the_charge_is_pending_and_a_retry_is_queued() {
    let h = harness().await;
    let api_key = h.stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    let down = Charges {
        store: Table::from_conf(&h.stack.aws, &h.stack.config.table),
        gateways: GatewayRouter {
            stripe: Some(StripeGateway::new(
                http_client(Duration::from_secs(2)),
                "http://127.0.0.1:9",
                api_key,
            )),
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&h.stack.aws, &h.queue_url),
        idempotency_ttl: Duration::from_secs(3600),
    };
    let reply = post(
        &down,
        "/charges",
        Some(&unique("key-")),
        &charge_body(&unique("inv_"), "pm_card_visa", true),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = ChargeId::parse(reply.json()["id"].as_str().unwrap()).unwrap();
    // The message is delayed by the backoff; read it by making it visible now.
    let sqs = h.stack.sqs();
    let url = h.queue_url.clone();
    let body =
        paybridge_tests::eventually(Duration::from_secs(25), "the delayed retry message", || {
            let (sqs, url) = (sqs.clone(), url.clone());
            async move {
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .unwrap();
                out.messages
                    .unwrap_or_default()
                    .into_iter()
                    .next()
                    .and_then(|m| m.body)
            }
        })
        .await;
    assert_eq!(
        serde_json::from_str::<WorkMessage>(&body).unwrap(),
        WorkMessage::retry_charge(&id, 1)
    );

    // Stripe is back: the retry completes it.
    assert_eq!(
        retry_charge(&h.app.store, &h.app.gateways, &h.app.queue, &id, 1, 0)
            .await
            .unwrap(),
        RetryOutcome::Done(ChargeStatus::Succeeded)
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_clear_errors_and_store_nothing() {
    let h = harness().await;
    let invoice = unique("inv_");
    let good = charge_body(&invoice, "pm_card_visa", true);
    let no_key = post(&h.app, "/charges", None, &good).await;
    assert_eq!(
        (no_key.status, no_key.error_code().as_str()),
        (400, "idempotency_key_required")
    );

    let mut pan = good.clone();
    pan["metadata"]["note"] = json!("card 4242 4242 4242 4242");
    let reply = post(&h.app, "/charges", Some(&unique("key-")), &pan).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (422, "card_data_refused")
    );
    assert!(
        !reply.body.contains("4242 4242"),
        "the card number is not echoed"
    );

    let mut unknown = good.clone();
    unknown["colour"] = json!("blue");
    assert_eq!(
        post(&h.app, "/charges", Some(&unique("key-")), &unknown)
            .await
            .status,
        400
    );
    let mut negative = good.clone();
    negative["amount"] = json!(-1);
    assert_eq!(
        post(&h.app, "/charges", Some(&unique("key-")), &negative)
            .await
            .error_code(),
        "invalid_amount"
    );

    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(list.json()["data"], json!([]), "nothing stored");
    assert_eq!(
        h.proxy.creates_forwarded(),
        0,
        "nothing sent to the gateway"
    );

    let missing = get(&h.app, &format!("/charges/{}", ChargeId::generate()), &[]).await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "charge_not_found")
    );
    let junk = get(&h.app, "/charges/not-an-id", &[]).await;
    assert_eq!(junk.status, 404);
    let no_route = call(
        &h.app,
        api_request("DELETE /charges", "/charges", &[], &[], b"", false),
    )
    .await;
    assert_eq!(
        (no_route.status, no_route.error_code().as_str()),
        (404, "route_not_found")
    );
}

#[tokio::test]
async fn a_retry_after_a_crashed_request_finishes_the_charge_the_crashed_request_started() {
    use paybridge::domain::idempotency::{
        IdempotencyKey, IdempotencyRecord, IdempotencyStatus, fingerprint,
    };
    use paybridge::ports::IdempotencyStore;
    let h = harness().await;
    let key = unique("key-");
    let body = charge_body(&unique("inv_"), "pm_card_visa", true);
    // What a request that died after claiming the key leaves behind: an in-progress record whose
    // lease (the dead invocation's deadline) has passed, naming the charge id it had chosen.
    let chosen = ChargeId::generate();
    let record = IdempotencyRecord {
        operation: "create_charge".into(),
        key: IdempotencyKey::parse(&key).unwrap(),
        fingerprint: fingerprint("create_charge", "/charges", &body),
        status: IdempotencyStatus::InProgress,
        resource_id: chosen.to_string(),
        owner: "crashed".into(),
        in_progress_until: 1,
        response: None,
        expires_at: paybridge_tests::unix_now() + 3600,
    };
    h.app.store.claim(&record).await.unwrap();

    let reply = post(&h.app, "/charges", Some(&key), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["id"],
        chosen.to_string(),
        "the retry continues the crashed request's charge"
    );
    assert_eq!(reply.json()["status"], "succeeded");
    assert_eq!(h.proxy.creates_forwarded(), 1);
}

#[tokio::test]
async fn a_partial_capture_records_the_captured_amount() {
    let h = harness().await;
    let id = authorized_charge(&h).await;
    let too_much = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({"amount": 2000}),
    )
    .await;
    assert_eq!(
        (too_much.status, too_much.error_code().as_str()),
        (422, "invalid_amount")
    );
    let captured = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({"amount": 1200}),
    )
    .await;
    assert_eq!(captured.status, 200, "{}", captured.body);
    assert_eq!(
        (
            captured.json()["status"].as_str(),
            captured.json()["captured"].as_i64()
        ),
        (Some("succeeded"), Some(1200))
    );
}

#[tokio::test]
async fn a_card_number_in_a_capture_body_is_refused_and_nothing_is_captured() {
    let h = harness().await;
    let id = authorized_charge(&h).await;
    for body in [
        json!({"amount": 1200, "note": "4242 4242 4242 4242"}),
        json!({"amount": 4242424242424242_i64}),
    ] {
        let refused = post(
            &h.app,
            &format!("/charges/{id}/capture"),
            Some(&unique("key-")),
            &body,
        )
        .await;
        assert_eq!(
            (refused.status, refused.error_code().as_str()),
            (422, "card_data_refused"),
            "{body}"
        );
        assert!(!refused.body.contains("4242"), "the number is never echoed");
    }
    let stored = get(&h.app, &format!("/charges/{id}"), &[]).await;
    assert_eq!(
        (
            stored.json()["status"].as_str(),
            stored.json()["captured"].as_i64()
        ),
        (Some("authorized"), Some(0))
    );
}

#[tokio::test]
async fn billing_cannot_set_the_metadata_keys_webhooks_find_their_charge_by() {
    let h = harness().await;
    let invoice = unique("inv_");
    for key in ["paybridge_charge_id", "invoice_id", "paybridge_anything"] {
        let mut body = charge_body(&invoice, "pm_card_visa", true);
        body["metadata"] = json!({ key: "ch_0190b1c2d3e4f5a6b7c8d9e0f1a2b3c4" });
        let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, "invalid_metadata"),
            "{key}"
        );
    }
    let listed = get(&h.app, "/charges", &[("invoice_id", invoice.as_str())]).await;
    assert_eq!(listed.json()["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_capture_retried_with_its_key_after_its_answer_was_lost_and_a_webhook_came_is_done() {
    let h = harness().await;
    let id = authorized_charge(&h).await;
    let key = unique("key-");
    let capture = format!("/charges/{id}/capture");

    // Stripe captures, but the answer never arrives: billing sees a retryable 502.
    h.proxy.lose_next_capture_responses(1);
    let lost = post(&h.app, &capture, Some(&key), &json!({})).await;
    assert_eq!(
        (lost.status, lost.error_code().as_str()),
        (502, "gateway_error")
    );
    let path = format!("/v1/payment_intents/{}/capture", lost_pi(&h, &id).await);
    assert_eq!(h.proxy.posts_forwarded(&path), 1, "the money was taken");

    // The webhook (payment_intent.succeeded) moves the charge to succeeded meanwhile.
    let charge_id = ChargeId::parse(&id).unwrap();
    let charge = h.app.store.get_charge(&charge_id).await.unwrap().unwrap();
    let outcome = PaymentOutcome {
        gateway_ref: charge.gateway_ref.clone().unwrap(),
        status: ChargeStatus::Succeeded,
        captured: 1999,
        failure: None,
        action: None,
    };
    let now = paybridge_tests::unix_now();
    settle(&h.app.store, &h.app.queue, charge, &outcome, now)
        .await
        .unwrap();

    // Billing retries with the same key: the capture it asked for is done.
    let retried = post(&h.app, &capture, Some(&key), &json!({})).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(
        (
            retried.json()["status"].as_str(),
            retried.json()["captured"].as_i64()
        ),
        (Some("succeeded"), Some(1999))
    );
    assert_eq!(h.proxy.posts_forwarded(&path), 1, "not captured twice");
    let again = post(&h.app, &capture, Some(&key), &json!({})).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, retried.body.as_str()),
        "and replayed from then on"
    );
}

/// The PaymentIntent of charge `id`.
async fn lost_pi(h: &Harness, id: &str) -> String {
    let charge = (h.app.store)
        .get_charge(&ChargeId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    charge
        .gateway_ref
        .expect("an authorized charge has its PaymentIntent")
}

/// A Stripe object as localstripe holds it (`/v1/payment_intents/pi_…`, `/v1/refunds/re_…`),
/// read around paybridge and the proxy: what Stripe was sent.
async fn at_localstripe(stack: &Stack, path: &str) -> Value {
    let api_key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    reqwest::Client::new()
        .get(format!("{}{path}", stack.config.stripe_api_base))
        .bearer_auth(api_key.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_5000_isk_charge_reaches_stripe_as_500000_and_reads_back_as_5000() {
    let h = harness().await;
    let body = json!({"invoice_id": unique("inv_"), "amount": 5000, "currency": "isk",
                      "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let charge = reply.json();
    assert_eq!(
        (
            charge["status"].as_str(),
            charge["amount"].as_i64(),
            charge["captured"].as_i64()
        ),
        (Some("succeeded"), Some(5000), Some(5000)),
        "billing sees 5000 ISK, read back from Stripe's 500000"
    );
    let pi = charge["gateway_ref"].as_str().unwrap();
    let at_stripe = at_localstripe(&h.stack, &format!("/v1/payment_intents/{pi}")).await;
    assert_eq!(
        (at_stripe["amount"].as_i64(), at_stripe["currency"].as_str()),
        (Some(500_000), Some("isk")),
        "Stripe keeps ISK two-decimal: 5000 kr is 500000, not 50 kr"
    );
}

#[tokio::test]
async fn amounts_the_gateway_cannot_take_are_refused_with_422_before_anything_is_stored_or_sent() {
    let h = harness().await;
    let invoice = unique("inv_");
    for (amount, currency, gateway) in [(5055, "kwd", "stripe"), (1_500_050, "idr", "adyen")] {
        let body = json!({"invoice_id": invoice, "amount": amount, "currency": currency,
                          "gateway": gateway, "payment_method": "pm_card_visa", "customer": "cus_1"});
        let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, "amount_not_representable"),
            "{amount} {currency} at {gateway}: {}",
            reply.body
        );
        assert!(reply.body.contains(&amount.to_string()), "{}", reply.body);
    }
    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(list.json()["data"], json!([]), "nothing stored");
    assert_eq!(h.proxy.creates_forwarded(), 0, "nothing sent to Stripe");

    // A capture amount is checked the same way, before the gateway is asked.
    let body = json!({"invoice_id": unique("inv_"), "amount": 5000, "currency": "kwd",
                      "gateway": "stripe", "payment_method": "pm_card_visa", "capture": false});
    let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let pi = reply.json()["gateway_ref"].as_str().unwrap().to_owned();
    let capture = post(
        &h.app,
        &format!("/charges/{id}/capture"),
        Some(&unique("key-")),
        &json!({"amount": 1255}),
    )
    .await;
    assert_eq!(
        (capture.status, capture.error_code().as_str()),
        (422, "amount_not_representable"),
        "{}",
        capture.body
    );
    assert_eq!(
        h.proxy
            .posts_forwarded(&format!("/v1/payment_intents/{pi}/capture")),
        0
    );
    let read = get(&h.app, &format!("/charges/{id}"), &[]).await;
    assert_eq!(read.json()["status"], "authorized");
}

/// Visa's test card number in the disguises that used to go through: after them the field it
/// sat in is stored, sent to Stripe and copied into billing notifications no more.
const DISGUISED: [&str; 4] = [
    "card 4111 1111 1111 1111 123",
    "4111111111111111 12/26",
    "4111.1111.1111.1111",
    "pan4111111111111111",
];

#[tokio::test]
async fn a_card_number_in_any_field_of_a_charge_request_is_refused_and_nothing_is_stored_or_sent() {
    let h = harness().await;
    let invoice = unique("inv_");
    let creates_before = h.proxy.creates_forwarded();
    for card in DISGUISED {
        let good = charge_body(&invoice, "pm_card_visa", true);
        let mut bodies = Vec::new();
        for field in ["description", "payment_method", "customer", "invoice_id"] {
            let mut b = good.clone();
            b[field] = json!(card);
            bodies.push(b);
        }
        let mut value = good.clone();
        value["metadata"]["note"] = json!(card);
        let mut key = good.clone();
        key["metadata"] = json!({ card: "x" });
        bodies.extend([value, key]);
        for body in bodies {
            let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
            assert_eq!(
                (reply.status, reply.error_code().as_str()),
                (422, "card_data_refused"),
                "{body}"
            );
            assert!(!reply.body.contains("4111"), "never echoed: {}", reply.body);
        }
        // In the Idempotency-Key, which would be stored as a key.
        let reply = post(&h.app, "/charges", Some(card), &good).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, "card_data_refused")
        );
    }
    let listed = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(listed.json()["data"], json!([]), "nothing was stored");
    assert_eq!(
        h.proxy.creates_forwarded(),
        creates_before,
        "nothing was sent to Stripe"
    );
}

#[tokio::test]
async fn a_card_number_in_a_capture_or_cancel_body_or_path_is_refused_and_the_charge_is_untouched()
{
    let h = harness().await;
    let id = authorized_charge(&h).await;
    for card in DISGUISED {
        for action in ["capture", "cancel"] {
            for body in [json!({"note": card}), json!({"amount": 1200, "x": [card]})] {
                let reply = post(
                    &h.app,
                    &format!("/charges/{id}/{action}"),
                    Some(&unique("key-")),
                    &body,
                )
                .await;
                assert_eq!(
                    (reply.status, reply.error_code().as_str()),
                    (422, "card_data_refused"),
                    "{action} {body}"
                );
            }
        }
    }
    let glued = post(
        &h.app,
        "/charges/ch_4111111111111111/capture",
        Some(&unique("key-")),
        &json!({}),
    )
    .await;
    assert_eq!(
        (glued.status, glued.error_code().as_str()),
        (422, "card_data_refused")
    );
    let stored = get(&h.app, &format!("/charges/{id}"), &[]).await;
    assert_eq!(
        (
            stored.json()["status"].as_str(),
            stored.json()["captured"].as_i64()
        ),
        (Some("authorized"), Some(0))
    );
}

/// What `POST /charges` for `invoice` answers with a new key each time.
async fn charge_invoice(h: &Harness, invoice: &str, pm: &str, capture: bool) -> Reply {
    post(
        &h.app,
        "/charges",
        Some(&unique("key-")),
        &charge_body(invoice, pm, capture),
    )
    .await
}

#[tokio::test]
async fn billing_that_lost_its_key_and_charges_the_invoice_again_gets_409_naming_the_first_charge()
{
    let h = harness().await;
    let invoice = unique("inv_");
    let first = charge_invoice(&h, &invoice, "pm_card_visa", true).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first_id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(first.json()["allow_additional_charge"], false);

    let again = charge_invoice(&h, &invoice, "pm_card_visa", true).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "invoice_already_charged"),
        "{}",
        again.body
    );
    assert_eq!(again.json()["error"]["charge_id"], first_id.as_str());
    assert!(again.retry_after.is_none(), "not a try-again-later");
    assert_eq!(h.proxy.creates_forwarded(), 1, "nothing sent to Stripe");
    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 1);

    // A top-up on purpose.
    let mut top_up = charge_body(&invoice, "pm_card_visa", true);
    top_up["allow_additional_charge"] = json!(true);
    top_up["amount"] = json!(500);
    let second = post(&h.app, "/charges", Some(&unique("key-")), &top_up).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.json()["allow_additional_charge"], true);
    assert_eq!(h.proxy.creates_forwarded(), 2);
}

#[tokio::test]
async fn a_failed_or_canceled_charge_leaves_its_invoice_free_and_a_refused_key_is_not_spent() {
    let h = harness().await;
    let invoice = unique("inv_");
    let declined = charge_invoice(&h, &invoice, "pm_card_chargeCustomerFail", true).await;
    assert_eq!(declined.json()["status"], "failed", "{}", declined.body);
    let held = charge_invoice(&h, &invoice, "pm_card_visa", false).await;
    assert_eq!(held.json()["status"], "authorized", "{}", held.body);
    let held_id = held.json()["id"].as_str().unwrap().to_owned();

    // Authorized funds hold the invoice; the refusal does not spend billing's key.
    let key = unique("key-");
    let body = charge_body(&invoice, "pm_card_visa", true);
    let refused = post(&h.app, "/charges", Some(&key), &body).await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (409, "invoice_already_charged")
    );
    assert_eq!(refused.json()["error"]["charge_id"], held_id.as_str());

    let cancel = format!("/charges/{held_id}/cancel");
    let canceled = post(&h.app, &cancel, Some(&unique("key-")), &json!({})).await;
    assert_eq!(canceled.json()["status"], "canceled", "{}", canceled.body);
    let retried = post(&h.app, "/charges", Some(&key), &body).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.json()["status"], "succeeded");
    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    let statuses: Vec<_> = (list.json()["data"].as_array().unwrap().iter())
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["failed", "canceled", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_charges_of_one_invoice_with_different_keys_make_one_payment() {
    let h = Arc::new(harness().await);
    let invoice = unique("inv_");
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (h, invoice) = (h.clone(), invoice.clone());
            tokio::spawn(async move {
                let body = charge_body(&invoice, "pm_card_visa", true);
                let key = unique("key-");
                // A well-behaved client: retries what says "retry" with the same key.
                for _ in 0..30 {
                    let reply = post(&h.app, "/charges", Some(&key), &body).await;
                    assert!(reply.status < 500, "no caller may see a 5xx: {reply:?}");
                    match reply.retry_after {
                        Some(secs) if reply.status == 409 => {
                            tokio::time::sleep(Duration::from_secs(secs)).await
                        }
                        _ => return reply,
                    }
                }
                panic!("never got an answer");
            })
        })
        .collect();
    let (mut made, mut refused_naming) = (Vec::new(), Vec::new());
    for c in callers {
        let reply = c.await.unwrap();
        match reply.status {
            201 => made.push(reply.json()["id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(
                    reply.error_code(),
                    "invoice_already_charged",
                    "{}",
                    reply.body
                );
                refused_naming.push(
                    reply.json()["error"]["charge_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(made.len(), 1, "one charge: {made:?}");
    assert_eq!(refused_naming.len(), 15);
    assert!(
        refused_naming.iter().all(|id| *id == made[0]),
        "{refused_naming:?}"
    );
    assert_eq!(
        h.proxy.creates_forwarded(),
        1,
        "one PaymentIntent at the gateway"
    );
    let list = get(&h.app, "/charges", &[("invoice_id", &invoice)]).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_invoice_charged_before_the_invoice_record_existed_is_still_held_by_its_charge() {
    let h = harness().await;
    // A charge stored by the release before the invoice record: no record, only the charge.
    let mut old = paybridge_tests::builders::pending_charge(paybridge::domain::Gateway::Stripe, 1);
    old.status = ChargeStatus::Succeeded;
    old.captured = 1999;
    (h.app.store.client().put_item())
        .table_name(h.app.store.name())
        .set_item(Some(
            paybridge::adapters::dynamodb::charges::to_item(&old).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    // The invoice index is eventually consistent; moto's is not, and DynamoDB's catches up in
    // well under a second — a charge this old is long in it.
    let again = charge_invoice(&h, &old.invoice_id, "pm_card_visa", true).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "invoice_already_charged"),
        "{}",
        again.body
    );
    assert_eq!(again.json()["error"]["charge_id"], old.id.as_str());
}

#[tokio::test]
async fn every_stripe_decline_class_tells_billing_what_to_do_next() {
    let h = harness().await;
    // Stripe's test payment methods (the local Stripe plays each one's decline).
    for (pm, decline, advice, retryable) in [
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
            "retry_later",
            true,
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            "processing_error",
            "retry_later",
            true,
        ),
        (
            "pm_card_chargeCustomerFail",
            "card_declined",
            "retry_later",
            true,
        ),
        (
            "pm_card_chargeDeclinedExpiredCard",
            "expired_card",
            "update_payment_method",
            false,
        ),
        (
            "pm_card_chargeDeclinedLostCard",
            "lost_card",
            "update_payment_method",
            false,
        ),
        (
            "pm_card_chargeDeclinedStolenCard",
            "stolen_card",
            "update_payment_method",
            false,
        ),
        (
            "pm_card_chargeDeclinedIncorrectCvc",
            "incorrect_cvc",
            "update_payment_method",
            false,
        ),
    ] {
        let reply = charge_invoice(&h, &unique("inv_"), pm, true).await;
        assert_eq!(reply.status, 201, "{pm}: {}", reply.body);
        let charge = reply.json();
        assert_eq!(charge["status"], "failed", "{pm}");
        assert_eq!(
            charge["failure"],
            json!({"code": decline, "message": charge["failure"]["message"], "advice": advice, "retryable": retryable}),
            "{pm}"
        );
        let id = charge["id"].as_str().unwrap();
        let read = get(&h.app, &format!("/charges/{id}"), &[]).await;
        assert_eq!(read.json()["failure"], charge["failure"], "stored with it");
    }
    // A refusal of paybridge's own: this harness has no Adyen credentials.
    let mut body = charge_body(&unique("inv_"), "stored_ok", true);
    body["gateway"] = json!("adyen");
    let reply = post(&h.app, "/charges", Some(&unique("key-")), &body).await;
    let failure = &reply.json()["failure"];
    assert_eq!(
        (
            failure["code"].as_str(),
            failure["advice"].as_str(),
            failure["retryable"].as_bool()
        ),
        (
            Some("gateway_not_configured"),
            Some("do_not_retry"),
            Some(false)
        ),
        "{}",
        reply.body
    );
}
