//! Stripe events through Amazon EventBridge: webhook-intake invoked with EventBridge's envelope
//! (tests/fixtures/eventbridge), in-process against moto, and through `cargo lambda watch`'s
//! invocations endpoint (what the rule on the partner bus reaches) with the worker, localstripe
//! and the billing receiver of `make test`.
//!
//! The end-to-end test needs `PAYBRIDGE_LAMBDA_URL`, `PAYBRIDGE_GATEWAY_URL`,
//! `PAYBRIDGE_RECEIVER_URL` and `PAYBRIDGE_FUNCTIONS_STRIPE_URL` (set by `make test`); without
//! them it fails and says so.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::secrets_manager::SecretsManagerSource;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{ChargeId, DeliveryStatus, EventStatus, Gateway, WorkMessage};
use paybridge::ports::{EventStore, NotificationStore};
use paybridge::services::record_webhook::IntakeSettings;
use paybridge::webhooks::stripe;
use paybridge_tests::{Stack, api_request, eventually, stack, unique, unix_now};
use serde_json::{Value, json};
use webhook_intake::bus;
use webhook_intake::handler::{Intake, handle};

const ENVELOPE: &str = include_str!("../fixtures/eventbridge/stripe_envelope.json");
const PAYMENT_INTENT: &str = include_str!("../fixtures/stripe/2024-06-20/payment_intent.json");
const SOURCE: &str = "aws.partner/stripe.com/ed_test_61Rc9ZIzCyVXIv5LR16Rc9WfUF9EoLgTRM8Gp72SOKAi";

struct Harness {
    stack: Stack,
    app: Intake,
    queue_url: String,
}

async fn harness(source: Option<&str>) -> Harness {
    let stack = stack().await;
    let queue_url = stack.new_queue().await;
    let app = Intake {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        queue: SqsWorkQueue::from_conf(&stack.aws, &queue_url),
        secrets: std::sync::Arc::new(SecretsManagerSource::from_conf(
            &stack.aws,
            &stack.config.secret_id,
        )),
        settings: IntakeSettings {
            tolerance: stack.config.webhook_tolerance,
            stripe_event_source: source.map(str::to_owned),
            ..IntakeSettings::default()
        },
        max_body_bytes: stack.config.max_body_bytes,
    };
    Harness {
        stack,
        app,
        queue_url,
    }
}

impl Harness {
    async fn messages(&self) -> Vec<WorkMessage> {
        (self.stack.drain(&self.queue_url).await.iter())
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    /// Delivers `event` signed over HTTP, as Stripe's webhook endpoint would: the reply's body.
    async fn over_http(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string().into_bytes();
        let secret = self.stack.secrets.stripe.as_ref().unwrap().webhook_secrets[0]
            .expose()
            .to_owned();
        let sig = stripe::sign(&secret, unix_now(), &body);
        let req = api_request(
            "POST /webhooks/{gateway}",
            "/webhooks/stripe",
            &[("gateway", "stripe")],
            &[("Stripe-Signature", &sig)],
            &body,
            false,
        );
        let resp = handle(&self.app, req).await.unwrap();
        let status = resp.status().as_u16();
        let body: &[u8] = resp.body().as_ref();
        (status, serde_json::from_slice(body).unwrap_or(Value::Null))
    }
}

/// A Stripe `payment_intent.succeeded` built around Stripe's published PaymentIntent.
fn stripe_event(event_id: &str, pi: &str) -> Value {
    let mut object: Value = serde_json::from_str(PAYMENT_INTENT).unwrap();
    object["id"] = json!(pi);
    object["status"] = json!("succeeded");
    object["description"] = json!("paid with 4242 4242 4242 4242");
    json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20", "created": unix_now(),
        "livemode": false, "pending_webhooks": 0, "type": "payment_intent.succeeded",
        "request": {"id": null, "idempotency_key": null}, "data": {"object": object}
    })
}

/// `event` in EventBridge's envelope, as the partner bus of `source` delivers it.
fn on_the_bus(source: &str, event: &Value) -> Value {
    let mut envelope: Value = serde_json::from_str(ENVELOPE).unwrap();
    envelope["id"] = json!(uuid::Uuid::new_v4().to_string());
    envelope["source"] = json!(source);
    envelope["detail-type"] = event["type"].clone();
    envelope["resources"] = json!([format!("arn:aws:events:us-west-2::event-source/{source}")]);
    envelope["detail"] = event.clone();
    envelope
}

async fn event_records(h: &Harness, id: &str) -> i32 {
    h.stack
        .dynamodb()
        .query()
        .table_name(&h.stack.config.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("EVENT#stripe#{id}")),
        )
        .send()
        .await
        .unwrap()
        .count
}

#[tokio::test]
async fn the_published_envelope_of_an_unsupported_type_is_recorded_as_ignored() {
    let mut envelope: Value = serde_json::from_str(ENVELOPE).unwrap();
    // Intake configured for the fixture's own partner event source.
    let h = harness(envelope["source"].as_str()).await;
    let id = unique("evt_test_");
    envelope["detail"]["id"] = json!(id);
    let answer = bus::handle(&h.app, envelope).await.unwrap();
    assert_eq!(
        answer,
        json!({"recorded": true, "event_id": id, "type": "customer.created", "outcome": "ignored"})
    );
    assert!(h.messages().await.is_empty());
}

#[tokio::test]
async fn a_stripe_event_through_the_bus_is_recorded_masked_and_queued_like_its_signed_webhook() {
    let h = harness(Some(SOURCE)).await;
    let id = unique("evt_");
    let event = stripe_event(&id, &unique("pi_"));
    let answer = bus::handle(&h.app, on_the_bus(SOURCE, &event))
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"recorded": true, "event_id": id, "type": "payment_intent.succeeded", "outcome": "queued"})
    );
    let record = (h.app.store.get_event(Gateway::Stripe, &id).await.unwrap()).expect("recorded");
    assert_eq!(
        record.status,
        EventStatus::Received,
        "until the worker processes it"
    );
    assert!(
        record.payload.contains("**** **** **** 4242")
            && !record.payload.contains("4242 4242 4242 4242"),
        "{}",
        record.payload
    );
    // The same record the signed webhook of the same event would have written.
    let http = harness(Some(SOURCE)).await;
    let other_id = unique("evt_");
    let mut twin = event.clone();
    twin["id"] = json!(other_id);
    assert_eq!(http.over_http(&twin).await.0, 200);
    let twin_record = (http
        .app
        .store
        .get_event(Gateway::Stripe, &other_id)
        .await
        .unwrap())
    .unwrap();
    assert_eq!(
        (
            twin_record.payload.replace(&other_id, &id),
            &twin_record.object_ref
        ),
        (record.payload.clone(), &record.object_ref)
    );
    assert_eq!(
        h.messages().await,
        vec![WorkMessage::apply_event(Gateway::Stripe, &id)]
    );
}

#[tokio::test]
async fn the_same_event_on_the_bus_five_times_and_eight_at_once_is_recorded_once_and_queued_once() {
    let h = Arc::new(harness(Some(SOURCE)).await);
    let id = unique("evt_");
    let event = stripe_event(&id, &unique("pi_"));
    let mut recorded = 0;
    for _ in 0..5 {
        // EventBridge puts a redelivery in a new envelope (a new `id`), around the same event.
        let answer = bus::handle(&h.app, on_the_bus(SOURCE, &event))
            .await
            .unwrap();
        recorded += usize::from(answer["recorded"] == true);
    }
    let at_once: Vec<_> = (0..8)
        .map(|_| {
            let (h, envelope) = (h.clone(), on_the_bus(SOURCE, &event));
            tokio::spawn(async move { bus::handle(&h.app, envelope).await })
        })
        .collect();
    for d in at_once {
        let answer = d.await.unwrap().expect("acknowledged");
        assert_eq!(answer["outcome"], "duplicate", "{answer}");
    }
    assert_eq!(recorded, 1, "one delivery recorded it");
    assert_eq!(event_records(&h, &id).await, 1, "exactly one event record");
    assert_eq!(h.messages().await.len(), 1, "exactly one work message");
}

#[tokio::test]
async fn the_same_event_over_http_and_over_the_bus_is_one_record_and_one_message() {
    let h = harness(Some(SOURCE)).await;
    // Webhook first, then the bus.
    let first = unique("evt_");
    let event = stripe_event(&first, &unique("pi_"));
    let (status, reply) = h.over_http(&event).await;
    assert_eq!(
        (status, &reply["events"][0]["outcome"]),
        (200, &json!("queued"))
    );
    let answer = bus::handle(&h.app, on_the_bus(SOURCE, &event))
        .await
        .unwrap();
    assert_eq!(
        (&answer["recorded"], &answer["outcome"]),
        (&json!(false), &json!("duplicate"))
    );
    // The bus first, then the webhook.
    let second = unique("evt_");
    let event = stripe_event(&second, &unique("pi_"));
    let answer = bus::handle(&h.app, on_the_bus(SOURCE, &event))
        .await
        .unwrap();
    assert_eq!(answer["outcome"], "queued");
    let (status, reply) = h.over_http(&event).await;
    assert_eq!(
        (status, &reply["events"][0]["outcome"]),
        (200, &json!("duplicate"))
    );

    assert_eq!(
        (
            event_records(&h, &first).await,
            event_records(&h, &second).await
        ),
        (1, 1)
    );
    assert_eq!(
        h.messages().await,
        vec![
            WorkMessage::apply_event(Gateway::Stripe, &first),
            WorkMessage::apply_event(Gateway::Stripe, &second)
        ]
    );
}

#[tokio::test]
async fn an_event_from_another_source_is_refused_and_nothing_is_recorded() {
    let configured = harness(Some(SOURCE)).await;
    // Without a configured source the bus path is off: even Stripe's own source is refused.
    let off = harness(None).await;
    for (h, source) in [
        (&configured, "aws.partner/stripe.com/ed_test_someone_else"),
        (&configured, "aws.partner/example.com/stripe"),
        (&off, SOURCE),
        (&off, "com.example.billing"),
        (&off, "aws.partner/stripe.com"),
    ] {
        let id = unique("evt_");
        let err = bus::handle(&h.app, on_the_bus(source, &stripe_event(&id, "pi_1")))
            .await
            .expect_err(source);
        assert_eq!(
            (err.code(), err.kind().status()),
            ("untrusted_source", 401),
            "{source}"
        );
        assert!(!err.is_retryable(), "{source}");
        assert_eq!(event_records(h, &id).await, 0, "{source}");
    }
    assert!(configured.messages().await.is_empty());
    assert!(off.messages().await.is_empty());
}

#[tokio::test]
async fn a_malformed_detail_is_refused_and_nothing_is_recorded() {
    let h = harness(Some(SOURCE)).await;
    let id = unique("evt_");
    let good = on_the_bus(SOURCE, &stripe_event(&id, "pi_1"));
    let mut cases = Vec::new();
    for (field, value) in [
        ("detail", json!("not an object")),
        (
            "detail",
            json!({"id": id, "type": "payment_intent.succeeded"}),
        ),
        ("detail-type", json!("charge.refunded")),
        ("detail-type", json!(null)),
    ] {
        let mut bad = good.clone();
        bad[field] = value;
        cases.push(bad);
    }
    let mut thin = good.clone();
    thin["detail"]["object"] = json!("v2.core.event");
    cases.push(thin);
    let mut too_big = good.clone();
    too_big["detail"]["data"]["object"]["metadata"] = json!({"blob": "x".repeat(300 * 1024)});
    cases.push(too_big);
    for bad in cases {
        let err = bus::handle(&h.app, bad.clone()).await.expect_err("refused");
        assert!(
            matches!(err.code(), "malformed_payload" | "payload_too_large"),
            "{}: {err}",
            bad["detail-type"]
        );
        assert!(!err.is_retryable());
    }
    assert_eq!(event_records(&h, &id).await, 0);
    assert!(h.messages().await.is_empty());
}

#[tokio::test]
async fn a_bus_event_while_dynamodb_is_down_fails_so_that_it_is_retried_and_writes_nothing() {
    let mut h = harness(Some(SOURCE)).await;
    let down = aws_sdk_dynamodb::config::Builder::from(&h.stack.aws)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    h.app.store = Table::new(
        aws_sdk_dynamodb::Client::from_conf(down),
        &h.stack.config.table,
    );
    let id = unique("evt_");
    let err = bus::handle(&h.app, on_the_bus(SOURCE, &stripe_event(&id, "pi_1")))
        .await
        .expect_err("DynamoDB is down");
    assert!(err.is_retryable(), "{err}");
    assert!(h.messages().await.is_empty());
}

#[tokio::test]
async fn the_dispatcher_sends_api_gateway_requests_to_the_http_handler_and_bus_events_to_the_bus() {
    let h = harness(Some(SOURCE)).await;
    let id = unique("evt_");
    let event = stripe_event(&id, &unique("pi_"));
    let body = event.to_string();
    let secret = h.stack.secrets.stripe.as_ref().unwrap().webhook_secrets[0]
        .expose()
        .to_owned();
    let request = json!({
        "version": "2.0", "routeKey": "POST /webhooks/{gateway}", "rawPath": "/webhooks/stripe",
        "rawQueryString": "", "headers": {"stripe-signature": stripe::sign(&secret, unix_now(), body.as_bytes())},
        "requestContext": {"accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1",
            "domainPrefix": "local", "requestId": unique("req-"), "routeKey": "POST /webhooks/{gateway}",
            "stage": "$default", "time": "02/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/webhooks/stripe", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "paybridge-tests"}},
        "pathParameters": {"gateway": "stripe"}, "body": body, "isBase64Encoded": false
    });
    let http = bus::dispatch(&h.app, LambdaEvent::new(request, Default::default()))
        .await
        .unwrap();
    assert_eq!(http["statusCode"], 200, "{http}");
    let from_bus = bus::dispatch(
        &h.app,
        LambdaEvent::new(on_the_bus(SOURCE, &event), Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(from_bus["outcome"], "duplicate", "{from_bus}");
}

// ---- through cargo lambda watch, the worker and the billing receiver -----------------------------

const PIPELINE: Duration = Duration::from_secs(90);

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: this test needs the functions and gateway `make test` starts"
            )
        })
}

/// `aws lambda invoke --function-name webhook-intake --payload <envelope>`, as the rule's target
/// invocation reaches it: (failed, the reply).
async fn invoke(http: &reqwest::Client, envelope: &Value) -> (bool, Value) {
    let url = format!(
        "{}/2015-03-31/functions/webhook-intake/invocations",
        required("PAYBRIDGE_LAMBDA_URL")
    );
    let response = http
        .post(url)
        .json(envelope)
        .send()
        .await
        .expect("an answer");
    let failed =
        !response.status().is_success() || response.headers().contains_key("x-amz-function-error");
    let text = response.text().await.unwrap_or_default();
    (failed, serde_json::from_str(&text).unwrap_or(json!(text)))
}

#[tokio::test]
async fn a_capture_at_stripe_delivered_through_the_bus_is_applied_once_and_billing_hears_of_it_once()
 {
    let (gateway, stripe_url, receiver) = (
        required("PAYBRIDGE_GATEWAY_URL"),
        required("PAYBRIDGE_FUNCTIONS_STRIPE_URL"),
        required("PAYBRIDGE_RECEIVER_URL"),
    );
    // The partner event source the local stack's intake trusts (scripts/stack.py).
    let source = required("PAYBRIDGE_STRIPE_EVENT_SOURCE");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let table = {
        let s = stack().await;
        Table::from_conf(&s.aws, &s.config.table)
    };
    // An authorized charge, captured at Stripe (its dashboard, another integration).
    let created: Value = (http.post(format!("{gateway}/charges")))
        .header("idempotency-key", unique("eb-"))
        .json(
            &json!({"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur",
            "gateway": "stripe", "payment_method": "pm_card_visa", "capture": false}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["status"], "authorized", "{created}");
    let (id, pi) = (
        created["id"].as_str().unwrap().to_owned(),
        created["gateway_ref"].as_str().unwrap().to_owned(),
    );
    let captured: Value = (http.post(format!("{stripe_url}/v1/payment_intents/{pi}/capture")))
        .bearer_auth("sk_test_eb")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(captured["status"], "succeeded", "{captured}");

    // Stripe's event about it, on the bus: delivered five times, at once.
    let event_id = unique("evt_eb_");
    let event = json!({"id": event_id, "object": "event", "api_version": "2017-08-15",
        "created": unix_now(), "livemode": false, "type": "payment_intent.succeeded",
        "data": {"object": captured}});
    let deliveries: Vec<_> = (0..5)
        .map(|_| {
            let (http, envelope) = (http.clone(), on_the_bus(&source, &event));
            tokio::spawn(async move { invoke(&http, &envelope).await })
        })
        .collect();
    let mut recorded = 0;
    for d in deliveries {
        let (failed, answer) = d.await.unwrap();
        assert!(!failed, "{answer}");
        assert_eq!(answer["event_id"], event_id.as_str(), "{answer}");
        recorded += usize::from(answer["recorded"] == true);
    }
    assert_eq!(recorded, 1, "recorded by one delivery, acknowledged by all");

    eventually(PIPELINE, "the bus event processed", || async {
        let record = table.get_event(Gateway::Stripe, &event_id).await.unwrap();
        record.filter(|r| r.status == EventStatus::Processed)
    })
    .await;
    let charge: Value = eventually(PIPELINE, "the charge captured", || async {
        let c: Value = (http
            .get(format!("{gateway}/charges/{id}"))
            .send()
            .await
            .ok()?)
        .json()
        .await
        .ok()?;
        (c["status"] == "succeeded").then_some(c)
    })
    .await;
    assert_eq!(charge["captured"], 1999, "{charge}");

    // One state change, one notification: authorized → succeeded.
    let charge_id = ChargeId::parse(&id).unwrap();
    eventually(PIPELINE, "its notifications delivered", || async {
        let outbox = table.notifications_for_charge(&charge_id).await.ok()?;
        (outbox.iter().any(|n| n.event_type == "charge.succeeded")
            && outbox.iter().all(|n| n.status == DeliveryStatus::Delivered))
        .then_some(())
    })
    .await;
    let received: Vec<Value> = (http.get(format!("{receiver}/received")))
        .query(&[("charge_id", id.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let succeeded = received
        .iter()
        .filter(|r| r["type"] == "charge.succeeded")
        .count();
    assert_eq!(succeeded, 1, "{received:#?}");

    // A source that is not the configured one is refused: answered (so no retry and no copy of
    // the payload in the failure queue), and nothing is recorded.
    let forged_id = unique("evt_eb_");
    let mut forged = event.clone();
    forged["id"] = json!(forged_id);
    let (failed, answer) = invoke(&http, &on_the_bus("com.example.forger", &forged)).await;
    assert!(!failed, "{answer}");
    assert_eq!(
        (&answer["recorded"], &answer["refused"]["code"]),
        (&json!(false), &json!("untrusted_source")),
        "{answer}"
    );
    assert!(
        table
            .get_event(Gateway::Stripe, &forged_id)
            .await
            .unwrap()
            .is_none()
    );
}
