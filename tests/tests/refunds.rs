//! The refunds function through its handler: DynamoDB and SQS on moto, Stripe = localstripe
//! behind the test proxy (Stripe's idempotency, lost responses, counting).

use std::sync::Arc;
use std::time::Duration;

use charges::handler::Charges;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{ChargeId, Failure, RefundId, RefundOutcome, RefundStatus};
use paybridge::ports::{ChargeStore, RefundStore};
use paybridge::services::refunds::apply::apply_refund_outcome;
use paybridge::services::refunds::retry::{RetryOutcome, retry_refund};
use paybridge_tests::stripe_proxy::StripeProxy;
use paybridge_tests::{Reply, Stack, get_event, post_event, stack, unique, unix_now};
use refunds::handler::Refunds;
use serde_json::{Value, json};

struct Harness {
    _stack: Stack,
    charges: Charges,
    refunds: Refunds,
    proxy: StripeProxy,
}

fn router(stack: &Stack, base: &str) -> GatewayRouter {
    let api_key = stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    GatewayRouter {
        stripe: Some(StripeGateway::new(
            http_client(Duration::from_secs(2)),
            base,
            api_key,
        )),
        adyen: None,
    }
}

async fn harness() -> Harness {
    let stack = stack().await;
    let proxy = StripeProxy::start(&stack.config.stripe_api_base).await;
    let queue_url = stack.new_queue().await;
    let charges = Charges {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        idempotency_ttl: Duration::from_secs(3600),
    };
    let refunds = Refunds {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        gateways: router(&stack, &proxy.url),
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        idempotency_ttl: Duration::from_secs(3600),
    };
    Harness {
        _stack: stack,
        charges,
        refunds,
        proxy,
    }
}

/// A captured 100.00 EUR charge; returns its id.
async fn captured_charge(h: &Harness, capture: bool) -> String {
    let body = json!({"invoice_id": unique("inv_"), "amount": 10_000, "currency": "eur", "gateway": "stripe",
                      "payment_method": "pm_card_visa", "capture": capture});
    let reply = Reply::from_response(
        charges::handler::handle(
            &h.charges,
            post_event("POST /charges", "/charges", Some(&unique("key-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

async fn refund(h: &Harness, charge: &str, key: &str, body: &Value) -> Reply {
    let path = format!("/charges/{charge}/refunds");
    Reply::from_response(
        refunds::handler::handle(
            &h.refunds,
            post_event("POST /charges/{id}/refunds", &path, Some(key), body),
        )
        .await
        .unwrap(),
    )
}

async fn get(h: &Harness, route: &str, path: &str) -> Reply {
    Reply::from_response(
        refunds::handler::handle(&h.refunds, get_event(route, path, &[]))
            .await
            .unwrap(),
    )
}

async fn charge_amounts(h: &Harness, id: &str) -> (i64, i64, i64, String) {
    let c = h
        .charges
        .store
        .get_charge(&ChargeId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    (
        c.captured,
        c.refunded,
        c.refund_reserved,
        c.status.as_str().to_owned(),
    )
}

#[tokio::test]
async fn partial_refunds_then_the_rest_refund_exactly_what_was_captured() {
    let h = harness().await;
    let charge = captured_charge(&h, true).await;

    let first = refund(
        &h,
        &charge,
        &unique("k-"),
        &json!({"amount": 2500, "reason": "requested_by_customer"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(
        (
            first.json()["status"].as_str(),
            first.json()["amount"].as_i64()
        ),
        (Some("succeeded"), Some(2500))
    );
    assert!(
        first.json()["gateway_ref"]
            .as_str()
            .unwrap()
            .starts_with("re_")
    );
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 2500, 0, "partially_refunded".into())
    );

    let second = refund(
        &h,
        &charge,
        &unique("k-"),
        &json!({"amount": 2500, "currency": "EUR"}),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.body);

    let too_much = refund(&h, &charge, &unique("k-"), &json!({"amount": 5001})).await;
    assert_eq!(
        (too_much.status, too_much.error_code().as_str()),
        (422, "amount_exceeds_refundable")
    );

    let rest = refund(&h, &charge, &unique("k-"), &json!({})).await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    assert_eq!(
        rest.json()["amount"],
        5000,
        "amount omitted = all that remains"
    );
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 10_000, 0, "refunded".into())
    );

    let nothing_left = refund(&h, &charge, &unique("k-"), &json!({})).await;
    assert_eq!(
        (nothing_left.status, nothing_left.error_code().as_str()),
        (422, "amount_exceeds_refundable")
    );

    let list = get(
        &h,
        "GET /charges/{id}/refunds",
        &format!("/charges/{charge}/refunds"),
    )
    .await;
    assert_eq!(list.status, 200);
    let amounts: Vec<i64> = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, vec![2500, 2500, 5000]);
    let one = get(
        &h,
        "GET /refunds/{id}",
        &format!("/refunds/{}", first.json()["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((one.status, one.json()), (200, first.json()));
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_ten_percent_refunds_let_exactly_ten_through() {
    let h = Arc::new(harness().await);
    let charge = captured_charge(&h, true).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (h, charge) = (h.clone(), charge.clone());
            tokio::spawn(async move {
                refund(&h, &charge, &unique("k-"), &json!({"amount": 1000})).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert!(matches!(reply.status, 201 | 422), "{reply:?}");
        if reply.status == 422 {
            assert_eq!(reply.error_code(), "amount_exceeds_refundable");
        } else {
            assert_eq!(reply.json()["status"], "succeeded");
        }
        statuses.push(reply.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 10);
    assert_eq!(
        h.proxy.posts_forwarded("/v1/refunds"),
        10,
        "the gateway saw exactly 10 refunds"
    );
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 10_000, 0, "refunded".into())
    );
}

#[tokio::test]
async fn a_refund_that_succeeded_and_later_failed_gives_its_amount_back() {
    let h = harness().await;
    let charge = captured_charge(&h, true).await;
    let all = refund(&h, &charge, &unique("k-"), &json!({})).await;
    assert_eq!(all.json()["status"], "succeeded");
    let id = RefundId::parse(all.json()["id"].as_str().unwrap()).unwrap();

    // What the worker does for Stripe's charge.refund.updated (status failed) or Adyen's REFUND_FAILED.
    let failed = RefundOutcome {
        gateway_ref: all.json()["gateway_ref"].as_str().unwrap().to_owned(),
        status: RefundStatus::Failed,
        failure: Some(Failure {
            code: "expired_or_canceled_card".into(),
            message: "the card was closed".into(),
            advice: None,
        }),
    };
    let refund_after =
        apply_refund_outcome(&h.refunds.store, &h.refunds.queue, &id, &failed, unix_now())
            .await
            .unwrap();
    assert_eq!(refund_after.status, RefundStatus::Failed);
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 0, 0, "succeeded".into())
    );
    // Applying the same news again changes nothing.
    apply_refund_outcome(&h.refunds.store, &h.refunds.queue, &id, &failed, unix_now())
        .await
        .unwrap();
    assert_eq!(charge_amounts(&h, &charge).await.1, 0);

    let again = refund(&h, &charge, &unique("k-"), &json!({"amount": 10_000})).await;
    assert_eq!(
        (again.status, again.json()["status"].as_str()),
        (201, Some("succeeded")),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn refunds_are_idempotent_and_concurrent_duplicates_make_one_refund() {
    let h = Arc::new(harness().await);
    let charge = captured_charge(&h, true).await;
    let key = unique("k-");
    let body = json!({"amount": 3000, "metadata": {"ticket": "T-1"}});
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (h, charge, key, body) = (h.clone(), charge.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                for _ in 0..30 {
                    let reply = refund(&h, &charge, &key, &body).await;
                    assert!(reply.status < 500, "{reply:?}");
                    if reply.status == 409 {
                        tokio::time::sleep(Duration::from_secs(reply.retry_after.unwrap_or(1)))
                            .await;
                        continue;
                    }
                    return reply;
                }
                panic!("never answered")
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 201, "{}", reply.body);
        bodies.push(reply.body);
    }
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        1,
        "every caller sees the same refund, byte for byte"
    );
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 1);
    let changed = refund(&h, &charge, &key, &json!({"amount": 3001})).await;
    assert_eq!(
        (changed.status, changed.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
    assert_eq!(charge_amounts(&h, &charge).await.1, 3000);
}

#[tokio::test]
async fn a_lost_refund_response_gives_202_and_the_retry_finishes_it_with_one_refund() {
    let h = harness().await;
    let charge = captured_charge(&h, true).await;
    h.proxy.lose_next_create_responses(1);
    let reply = refund(&h, &charge, &unique("k-"), &json!({"amount": 4000})).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["status"], "pending");
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 0, 4000, "succeeded".into()),
        "reserved while unknown"
    );

    let id = RefundId::parse(reply.json()["id"].as_str().unwrap()).unwrap();
    let outcome = retry_refund(
        &h.refunds.store,
        &h.refunds.gateways,
        &h.refunds.queue,
        &id,
        1,
        unix_now(),
    )
    .await
    .unwrap();
    assert_eq!(outcome, RetryOutcome::Done(RefundStatus::Succeeded));
    assert_eq!(
        h.proxy.posts_forwarded("/v1/refunds"),
        1,
        "one refund at the gateway"
    );
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 4000, 0, "partially_refunded".into())
    );
    let stored = h.refunds.store.get_refund(&id).await.unwrap().unwrap();
    assert!(stored.gateway_ref.unwrap().starts_with("re_"));
}

#[tokio::test]
async fn refusals_change_nothing() {
    let h = harness().await;
    let authorized = captured_charge(&h, false).await;
    let not_captured = refund(&h, &authorized, &unique("k-"), &json!({})).await;
    assert_eq!(
        (not_captured.status, not_captured.error_code().as_str()),
        (409, "charge_not_refundable")
    );

    let charge = captured_charge(&h, true).await;
    let wrong_currency = refund(
        &h,
        &charge,
        &unique("k-"),
        &json!({"amount": 100, "currency": "usd"}),
    )
    .await;
    assert_eq!(
        (wrong_currency.status, wrong_currency.error_code().as_str()),
        (422, "currency_mismatch")
    );
    let malformed = refund(&h, &charge, &unique("k-"), &json!({"amount": "ten"})).await;
    assert_eq!(malformed.status, 400);
    let unknown_field = refund(
        &h,
        &charge,
        &unique("k-"),
        &json!({"amount": 10, "note": "x"}),
    )
    .await;
    assert_eq!(unknown_field.status, 400);
    let bad_reason = refund(&h, &charge, &unique("k-"), &json!({"reason": "because"})).await;
    assert_eq!(bad_reason.status, 400);
    let missing = refund(
        &h,
        &ChargeId::generate().to_string(),
        &unique("k-"),
        &json!({}),
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "charge_not_found")
    );
    let no_refund = get(
        &h,
        "GET /refunds/{id}",
        &format!("/refunds/{}", RefundId::generate()),
    )
    .await;
    assert_eq!(
        (no_refund.status, no_refund.error_code().as_str()),
        (404, "refund_not_found")
    );

    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 0, 0, "succeeded".into())
    );
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 0);
}

#[tokio::test]
async fn billing_cannot_set_the_metadata_keys_webhooks_find_their_refund_by() {
    let h = harness().await;
    let charge = captured_charge(&h, true).await;
    for key in ["paybridge_refund_id", "paybridge_charge_id", "invoice_id"] {
        let body =
            json!({"amount": 100, "metadata": { key: "rf_0190b1c2d3e4f5a6b7c8d9e0f1a2b3c4" }});
        let reply = refund(&h, &charge, &unique("key-"), &body).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, "invalid_metadata"),
            "{key}"
        );
    }
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (10_000, 0, 0, "succeeded".to_owned()),
        "nothing was reserved or refunded"
    );
}

/// A captured charge of `amount` minor units of `currency` at Stripe; returns (id, PaymentIntent).
async fn captured_in(h: &Harness, amount: i64, currency: &str) -> (String, String) {
    let body = json!({"invoice_id": unique("inv_"), "amount": amount, "currency": currency,
                      "gateway": "stripe", "payment_method": "pm_card_visa"});
    let reply = Reply::from_response(
        charges::handler::handle(
            &h.charges,
            post_event("POST /charges", "/charges", Some(&unique("key-")), &body),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let charge = reply.json();
    (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_isk_refund_reaches_stripe_in_stripes_minor_units() {
    let h = harness().await;
    let (charge, _) = captured_in(&h, 5000, "isk").await;
    let reply = refund(&h, &charge, &unique("key-"), &json!({"amount": 1200})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["amount"], 1200);
    let re = reply.json()["gateway_ref"].as_str().unwrap().to_owned();
    let api_key = h._stack.secrets.stripe.as_ref().unwrap().api_key.clone();
    let at_stripe: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/refunds/{re}",
            h._stack.config.stripe_api_base
        ))
        .bearer_auth(api_key.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(at_stripe["amount"], 120_000, "1200 kr is 120000 at Stripe");
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (5000, 1200, 0, "partially_refunded".into())
    );
}

#[tokio::test]
async fn a_refund_stripe_cannot_take_is_refused_with_422_and_reserves_and_sends_nothing() {
    let h = harness().await;
    let (charge, _) = captured_in(&h, 5000, "kwd").await;
    let reply = refund(&h, &charge, &unique("key-"), &json!({"amount": 1255})).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (422, "amount_not_representable"),
        "{}",
        reply.body
    );
    assert_eq!(
        charge_amounts(&h, &charge).await,
        (5000, 0, 0, "succeeded".into()),
        "nothing reserved"
    );
    assert_eq!(h.proxy.posts_forwarded("/v1/refunds"), 0, "nothing sent");
    let list = get(
        &h,
        "GET /charges/{id}/refunds",
        &format!("/charges/{charge}/refunds"),
    )
    .await;
    assert_eq!(list.json()["data"], json!([]), "no refund stored");
}
