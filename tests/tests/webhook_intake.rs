//! webhook-intake through its handler, with DynamoDB, SQS and Secrets Manager on moto.
//! Each test has its own work queue, so it can count exactly the messages it caused.

use std::sync::Arc;

use lambda_http::Body;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::stripe::STRIPE_VERSION;
use paybridge::adapters::secrets_manager::SecretsManagerSource;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{EventStatus, Gateway, WorkMessage};
use paybridge::ports::EventStore;
use paybridge::services::record_webhook::IntakeSettings;
use paybridge::webhooks::{adyen, standard, stripe};
use paybridge_tests::{Stack, api_request, stack, unique, unix_now};
use serde_json::{Value, json};
use webhook_intake::handler::{Intake, handle};

struct Harness {
    stack: Stack,
    app: Intake,
    queue_url: String,
}

async fn harness() -> Harness {
    let stack = stack().await;
    let queue_url = stack.new_queue().await;
    let app = intake(&stack, SqsWorkQueue::from_conf(&stack.aws, &queue_url));
    Harness {
        stack,
        app,
        queue_url,
    }
}

fn intake(stack: &Stack, queue: SqsWorkQueue) -> Intake {
    Intake {
        store: Table::from_conf(&stack.aws, &stack.config.table),
        queue,
        secrets: std::sync::Arc::new(SecretsManagerSource::from_conf(
            &stack.aws,
            &stack.config.secret_id,
        )),
        settings: IntakeSettings {
            tolerance: stack.config.webhook_tolerance,
            ..IntakeSettings::default()
        },
        max_body_bytes: stack.config.max_body_bytes,
    }
}

struct Reply {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

async fn deliver(
    app: &Intake,
    gateway: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> Reply {
    let path = format!("/webhooks/{gateway}");
    let req = api_request(
        "POST /webhooks/{gateway}",
        &path,
        &[("gateway", gateway)],
        headers,
        body,
        base64,
    );
    let resp = handle(app, req).await.unwrap();
    let body = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    Reply {
        status: resp.status().as_u16(),
        body,
        retry_after,
    }
}

fn error_code(reply: &Reply) -> String {
    let v: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|_| panic!("error body is JSON: {}", reply.body));
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// A Stripe event body shaped like a real `payment_intent.succeeded` (with a card-details block
/// of the kind older API versions embedded, for the masking to walk through).
fn stripe_event(event_id: &str, event_type: &str, pi: &str) -> Vec<u8> {
    json!({
        "id": event_id, "object": "event", "api_version": STRIPE_VERSION, "created": unix_now(),
        "type": event_type, "livemode": false, "pending_webhooks": 1,
        "request": {"id": "req_1", "idempotency_key": "paybridge-ch_1-create"},
        "data": {"object": {
            "id": pi, "object": "payment_intent", "amount": 1999, "amount_received": 1999,
            "currency": "eur", "status": "succeeded", "customer": "cus_123",
            "description": "Invoice 123", "metadata": {"paybridge_charge_id": "ch_0", "plan": "pro"},
            "payment_method": "pm_card_visa", "latest_charge": "ch_3abc",
            "payment_method_types": ["card"], "capture_method": "automatic",
            "charges": {"object": "list", "data": [{"id": "ch_3abc", "amount": 1999, "paid": true,
                "outcome": {"network_status": "approved_by_network", "type": "authorized", "risk_level": "normal"},
                "payment_method_details": {"card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}},
                "billing_details": {"address": {"city": null, "country": "DE"}, "email": "payer@example.com"}}]}
        }}
    })
    .to_string()
    .into_bytes()
}

/// Delivers `body` to the Stripe route of `app`, signed now with the current local secret.
async fn deliver_signed(h: &Harness, app: &Intake, body: &[u8]) -> Reply {
    let sig = stripe::sign(&stripe_secret(&h.stack), unix_now(), body);
    deliver(app, "stripe", &[("Stripe-Signature", &sig)], body, false).await
}

fn stripe_secret(s: &Stack) -> String {
    s.secrets.stripe.as_ref().unwrap().webhook_secrets[0]
        .expose()
        .to_owned()
}

async fn messages(h: &Harness) -> Vec<WorkMessage> {
    h.stack
        .drain(&h.queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

#[tokio::test]
async fn a_signed_stripe_event_is_recorded_queued_and_acknowledged() {
    let h = harness().await;
    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", &unique("pi_"));
    let reply = deliver_signed(&h, &h.app, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let record = h
        .app
        .store
        .get_event(Gateway::Stripe, &id)
        .await
        .unwrap()
        .expect("recorded");
    // `received` until the worker processes it: there is no mark after the send.
    assert_eq!(record.status, EventStatus::Received);
    assert_eq!(record.event_type, "payment_intent.succeeded");
    assert!(
        record.expires_at > unix_now() + 29 * 86_400,
        "retention TTL set"
    );
    assert_eq!(
        messages(&h).await,
        vec![WorkMessage::apply_event(Gateway::Stripe, &id)]
    );
}

/// The AWS operations the clients it is built into made, in order (an SDK interceptor: what
/// went over the wire, retries included).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<std::sync::Mutex<Vec<String>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Calls {
    fn name(&self) -> &'static str {
        "count-aws-calls"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let op = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>();
        let name = op.map_or("unknown", |m| m.name()).to_owned();
        self.0.lock().unwrap().push(name);
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[tokio::test]
async fn a_new_webhook_costs_two_aws_calls_and_a_duplicate_one() {
    let h = harness().await;
    let calls = Calls::default();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&h.stack.aws)
        .interceptor(calls.clone())
        .build();
    let sqs = aws_sdk_sqs::config::Builder::from(&h.stack.aws)
        .interceptor(calls.clone())
        .build();
    let counted = Intake {
        store: Table::new(
            aws_sdk_dynamodb::Client::from_conf(dynamodb),
            &h.stack.config.table,
        ),
        queue: SqsWorkQueue::new(aws_sdk_sqs::Client::from_conf(sqs), &h.queue_url),
        ..intake(
            &h.stack,
            SqsWorkQueue::from_conf(&h.stack.aws, &h.queue_url),
        )
    };
    // Warm the secret cache (read once per execution environment, not per webhook).
    let warm = stripe_event(&unique("evt_"), "payment_intent.succeeded", &unique("pi_"));
    assert_eq!(deliver_signed(&h, &counted, &warm).await.status, 200);
    calls.take();

    let body = stripe_event(&unique("evt_"), "payment_intent.succeeded", &unique("pi_"));
    assert_eq!(deliver_signed(&h, &counted, &body).await.status, 200);
    assert_eq!(calls.take(), ["PutItem", "SendMessage"], "a new webhook");
    for _ in 0..3 {
        assert_eq!(deliver_signed(&h, &counted, &body).await.status, 200);
        assert_eq!(calls.take(), ["PutItem"], "a duplicate");
    }
    assert_eq!(
        messages(&h).await.len(),
        2,
        "the warm-up's and this event's"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_without_new_work() {
    let h = harness().await;
    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", "pi_dup");
    for _ in 0..3 {
        assert_eq!(deliver_signed(&h, &h.app, &body).await.status, 200);
    }
    assert_eq!(messages(&h).await.len(), 1);
}

#[tokio::test]
async fn thirty_two_concurrent_deliveries_of_one_event_make_one_record_and_one_message() {
    let h = Arc::new(harness().await);
    let id = unique("evt_");
    let body = Arc::new(stripe_event(&id, "payment_intent.succeeded", "pi_race"));
    let sig = Arc::new(stripe::sign(&stripe_secret(&h.stack), unix_now(), &body));
    let deliveries: Vec<_> = (0..32)
        .map(|_| {
            let (h, body, sig) = (h.clone(), body.clone(), sig.clone());
            tokio::spawn(async move {
                deliver(
                    &h.app,
                    "stripe",
                    &[("Stripe-Signature", &sig)],
                    &body,
                    false,
                )
                .await
            })
        })
        .collect();
    for d in deliveries {
        let reply = d.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let query = h
        .stack
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
        .unwrap();
    assert_eq!(query.count, 1, "exactly one event record");
    assert_eq!(messages(&h).await.len(), 1, "exactly one work message");
}

#[tokio::test]
async fn a_delivery_during_an_sqs_outage_gets_5xx_and_its_redelivery_is_queued_once() {
    let h = harness().await;
    // The same adapter, pointed at a port where nothing listens: SQS is "down".
    let down_conf = aws_sdk_sqs::config::Builder::from(&h.stack.aws)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let broken = intake(
        &h.stack,
        SqsWorkQueue::new(aws_sdk_sqs::Client::from_conf(down_conf), &h.queue_url),
    );

    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", "pi_outage");
    let sig = stripe::sign(&stripe_secret(&h.stack), unix_now(), &body);
    let reply = deliver(
        &broken,
        "stripe",
        &[("Stripe-Signature", &sig)],
        &body,
        false,
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(error_code(&reply), "temporarily_unavailable");
    assert_eq!(
        h.app
            .store
            .get_event(Gateway::Stripe, &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EventStatus::Received
    );

    // SQS is back; the gateway redelivers.
    let reply = deliver(
        &h.app,
        "stripe",
        &[("Stripe-Signature", &sig)],
        &body,
        false,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("requeued"), "{}", reply.body);
    assert_eq!(
        h.app
            .store
            .get_event(Gateway::Stripe, &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EventStatus::Received
    );
    let again = deliver(
        &h.app,
        "stripe",
        &[("Stripe-Signature", &sig)],
        &body,
        false,
    )
    .await;
    assert!(again.body.contains("duplicate"), "{}", again.body);
    assert_eq!(messages(&h).await.len(), 1);
}

#[tokio::test]
async fn a_delivery_while_dynamodb_is_down_gets_5xx_and_writes_nothing() {
    let h = harness().await;
    let down = aws_sdk_dynamodb::config::Builder::from(&h.stack.aws)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let mut broken = intake(
        &h.stack,
        SqsWorkQueue::from_conf(&h.stack.aws, &h.queue_url),
    );
    broken.store = Table::new(
        aws_sdk_dynamodb::Client::from_conf(down),
        &h.stack.config.table,
    );
    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", "pi_ddb");
    let reply = deliver_signed(&h, &broken, &body).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert!(messages(&h).await.is_empty());
}

/// (name, headers, body, expected status, expected error code)
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);

#[tokio::test]
async fn forged_stale_and_malformed_deliveries_are_refused_and_nothing_is_written() {
    let h = harness().await;
    let secret = stripe_secret(&h.stack);
    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", "pi_forged");
    let now = unix_now();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("1999", "1");
    let cases: Vec<Case> = vec![
        ("no header", vec![], body.clone(), 400, "missing_signature"),
        (
            "garbage header",
            vec![("Stripe-Signature", "nonsense".into())],
            body.clone(),
            400,
            "malformed_signature",
        ),
        (
            "wrong secret",
            vec![("Stripe-Signature", stripe::sign("whsec_wrong", now, &body))],
            body.clone(),
            400,
            "invalid_signature",
        ),
        (
            "tampered body",
            vec![("Stripe-Signature", stripe::sign(&secret, now, &body))],
            tampered.into_bytes(),
            400,
            "invalid_signature",
        ),
        (
            "v0 only",
            vec![(
                "Stripe-Signature",
                stripe::sign(&secret, now, &body).replace("v1=", "v0="),
            )],
            body.clone(),
            400,
            "invalid_signature",
        ),
        (
            "old",
            vec![("Stripe-Signature", stripe::sign(&secret, now - 600, &body))],
            body.clone(),
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            "future",
            vec![("Stripe-Signature", stripe::sign(&secret, now + 600, &body))],
            body.clone(),
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            "not json",
            vec![("Stripe-Signature", stripe::sign(&secret, now, b"{not json"))],
            b"{not json".to_vec(),
            400,
            "malformed_payload",
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = deliver(&h.app, "stripe", &headers, &body, false).await;
        assert_eq!(
            (reply.status, error_code(&reply).as_str()),
            (status, code),
            "{name}: {}",
            reply.body
        );
        assert!(
            !reply.body.contains(&secret),
            "{name}: the answer must not leak the secret"
        );
    }
    assert!(
        h.app
            .store
            .get_event(Gateway::Stripe, &id)
            .await
            .unwrap()
            .is_none(),
        "nothing recorded"
    );
    assert!(messages(&h).await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn unknown_gateways_and_oversized_bodies_are_refused_before_verification() {
    let h = harness().await;
    let reply = deliver(&h.app, "paypal", &[], b"{}", false).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (404, "unknown_gateway")
    );
    let huge = vec![b'x'; h.app.max_body_bytes + 1];
    let reply = deliver(
        &h.app,
        "stripe",
        &[("Stripe-Signature", "t=1,v1=00")],
        &huge,
        false,
    )
    .await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (413, "payload_too_large")
    );
}

#[tokio::test]
async fn a_base64_encoded_body_is_verified_on_its_decoded_bytes() {
    let h = harness().await;
    let id = unique("evt_");
    let body = stripe_event(&id, "payment_intent.succeeded", "pi_b64");
    let sig = stripe::sign(&stripe_secret(&h.stack), unix_now(), &body);
    let reply = deliver(&h.app, "stripe", &[("Stripe-Signature", &sig)], &body, true).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(messages(&h).await.len(), 1);
}

#[tokio::test]
async fn unsupported_event_types_are_recorded_as_ignored_and_not_queued() {
    let h = harness().await;
    let id = unique("evt_");
    let body = stripe_event(&id, "customer.created", "cus_1");
    let reply = deliver_signed(&h, &h.app, &body).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("ignored"), "{}", reply.body);
    assert_eq!(
        h.app
            .store
            .get_event(Gateway::Stripe, &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        EventStatus::Ignored
    );
    assert!(messages(&h).await.is_empty());
}

/// Visa's test card number 4111 1111 1111 1111 in the disguises that used to be stored as they
/// were (followed by a CVV, by an expiry, dotted, glued to letters, after other digits).
const DISGUISED: [&str; 5] = [
    "card 4111 1111 1111 1111 123",
    "4111111111111111 12/26",
    "4111.1111.1111.1111",
    "pan4111111111111111",
    "00 4111-1111-1111-1111",
];

/// Whether the card number's digits are in `text`, whatever separators stand between them.
fn holds_visa_test_card(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.')))
        .any(|chunk| {
            let digits: String = chunk.chars().filter(char::is_ascii_digit).collect();
            digits.contains("4111111111111111")
        })
}

#[tokio::test]
async fn card_numbers_in_a_payload_are_masked_before_storage() {
    let h = harness().await;
    let id = unique("evt_");
    let body = json!({"id": id, "type": "payment_intent.payment_failed",
        "data": {"object": {"id": "pi_pan", "last_payment_error": {"message": "card 4242 4242 4242 4242 declined"},
            "n": 5555555555554444u64, "disguised": DISGUISED, "id_like": {"customer_id": "4111111111111111"}}}})
    .to_string();
    assert_eq!(
        deliver_signed(&h, &h.app, body.as_bytes()).await.status,
        200
    );
    let stored = h
        .app
        .store
        .get_event(Gateway::Stripe, &id)
        .await
        .unwrap()
        .unwrap()
        .payload;
    assert!(
        !stored.contains("4242 4242 4242 4242") && !stored.contains("5555555555554444"),
        "{stored}"
    );
    assert!(!holds_visa_test_card(&stored), "{stored}");
    assert!(!paybridge::domain::pci::contains_pan(&stored), "{stored}");
    assert!(
        stored.contains("**** **** **** 4242") && stored.contains("************4444"),
        "{stored}"
    );
    let v: Value = serde_json::from_str(&stored).expect("still JSON");
    // No exemption by key name any more: an `…_id` key is masked like any other.
    assert_eq!(
        v["data"]["object"]["id_like"]["customer_id"],
        "************1111"
    );
    assert_eq!(
        v["data"]["object"]["disguised"][0],
        "card **** **** **** 1111 ***"
    );
}

#[tokio::test]
async fn an_adyen_psp_reference_that_looks_like_a_card_number_is_kept_only_in_its_field() {
    let h = harness().await;
    let key = h.stack.secrets.adyen.as_ref().unwrap().hmac_keys[0]
        .expose()
        .to_owned();
    // 16 digits, as Adyen's older pspReferences are, that pass for a card number (3 in 5 do).
    let psp = loop {
        let candidate = format!(
            "{}",
            8_000_000_000_000_000u64
                + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000) as u64
        );
        if paybridge::domain::pci::contains_pan(&candidate) {
            break candidate;
        }
    };
    let mut item = json!({
        "amount": {"currency": "EUR", "value": 1999}, "eventCode": "AUTHORISATION",
        "eventDate": "2026-11-27T10:00:00+01:00", "merchantAccountCode": "PaybridgeLocalECOM",
        "merchantReference": psp, "pspReference": psp, "success": "false", "paymentMethod": "visa",
        "reason": DISGUISED[0]
    });
    let sig = adyen::sign_item(&key, &item).unwrap();
    item["additionalData"] =
        json!({"hmacSignature": sig, "note": DISGUISED[1], "originalPsp": psp});
    let body = json!({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
        .to_string();
    let reply = deliver(&h.app, "adyen", &[], body.as_bytes(), false).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "[accepted]"));
    let event_id = format!("{psp}:AUTHORISATION:false:2026-11-27T10:00:00+01:00");
    let record = h
        .app
        .store
        .get_event(Gateway::Adyen, &event_id)
        .await
        .unwrap()
        .expect("recorded under its pspReference");
    assert_eq!(record.object_ref.as_deref(), Some(psp.as_str()));
    let v: Value = serde_json::from_str(&record.payload).unwrap();
    assert_eq!(
        v["pspReference"],
        psp.as_str(),
        "kept: its documented field"
    );
    for elsewhere in [&v["merchantReference"], &v["additionalData"]["originalPsp"]] {
        assert_ne!(elsewhere, &json!(psp), "masked anywhere else");
    }
    assert!(!holds_visa_test_card(&record.payload), "{}", record.payload);
    assert_eq!(v["reason"], "card **** **** **** 1111 ***");
}

#[tokio::test]
async fn a_rotated_stripe_secret_still_verifies() {
    let h = harness().await;
    let previous = h.stack.secrets.stripe.as_ref().unwrap().webhook_secrets[1]
        .expose()
        .to_owned();
    let id = unique("evt_");
    let body = stripe_event(&id, "charge.refunded", "ch_rot");
    let sig = stripe::sign(&previous, unix_now(), &body);
    assert_eq!(
        deliver(
            &h.app,
            "stripe",
            &[("Stripe-Signature", &sig)],
            &body,
            false
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn an_adyen_batch_is_verified_item_by_item_and_acknowledged_with_accepted() {
    let h = harness().await;
    let key = h.stack.secrets.adyen.as_ref().unwrap().hmac_keys[0]
        .expose()
        .to_owned();
    let psp = format!(
        "{}",
        1_000_000_000_000_000u64 + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000) as u64
    );
    let mut items = Vec::new();
    for (code, reference) in [("AUTHORISATION", None), ("CAPTURE", Some(psp.clone()))] {
        let mut item = json!({
            "amount": {"currency": "EUR", "value": 1999}, "eventCode": code,
            "eventDate": "2026-11-27T10:00:00+01:00", "merchantAccountCode": "PaybridgeLocalECOM",
            "merchantReference": "inv_123", "pspReference": if reference.is_some() { format!("{}C", &psp[..15]) } else { psp.clone() },
            "reason": "", "success": "true", "paymentMethod": "visa"
        });
        if let Some(r) = reference {
            item["originalReference"] = json!(r);
        }
        let sig = adyen::sign_item(&key, &item).unwrap();
        item["additionalData"] = json!({"hmacSignature": sig});
        items.push(json!({"NotificationRequestItem": item}));
    }
    let body = json!({"live": "false", "notificationItems": items}).to_string();
    let reply = deliver(
        &h.app,
        "adyen",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        false,
    )
    .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "[accepted]"));
    assert_eq!(messages(&h).await.len(), 2);
    let auth = h
        .app
        .store
        .get_event(
            Gateway::Adyen,
            &format!("{psp}:AUTHORISATION:true:2026-11-27T10:00:00+01:00"),
        )
        .await
        .unwrap();
    assert_eq!(auth.unwrap().status, EventStatus::Received);

    // A forged copy (amount changed after signing) is refused whole.
    let forged = body.replace("1999", "1");
    let reply = deliver(&h.app, "adyen", &[], forged.as_bytes(), false).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "invalid_signature")
    );
}

#[tokio::test]
async fn a_standard_webhooks_delivery_is_verified_and_recorded() {
    let h = harness().await;
    let secret = h.stack.secrets.standard.as_ref().unwrap().webhook_secrets[0]
        .expose()
        .to_owned();
    let key = standard::secret_key(&secret).unwrap();
    let msg_id = unique("msg_");
    let body = json!({"type": "charge.succeeded", "timestamp": "2026-11-27T10:00:00Z", "data": {"id": "pay_1"}}).to_string();
    let ts = unix_now();
    let sig = standard::sign(&key, &msg_id, ts, body.as_bytes());
    let headers = [
        ("webhook-id", msg_id.as_str()),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", sig.as_str()),
    ];
    let reply = deliver(&h.app, "standard", &headers, body.as_bytes(), false).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        messages(&h).await,
        vec![WorkMessage::apply_event(Gateway::Standard, &msg_id)]
    );

    let bare = [
        ("webhook-id", msg_id.as_str()),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", "v1,"),
    ];
    let reply = deliver(&h.app, "standard", &bare, body.as_bytes(), false).await;
    assert_eq!(
        (reply.status, error_code(&reply).as_str()),
        (400, "invalid_signature")
    );
}

#[test]
fn every_exempt_identifier_path_is_documented_with_its_reason() {
    let doc = include_str!("../../docs/webhook-intake.md");
    let pci = &doc[doc.find("## PCI").expect("a PCI section")..];
    for id in adyen::IDENTIFIERS {
        let path = format!(
            "`notificationItems[].NotificationRequestItem.{}`",
            id.path_text()
        );
        assert!(
            pci.contains(&path),
            "{path} is not in docs/webhook-intake.md#pci"
        );
    }
    for id in standard::IDENTIFIERS {
        let path = format!("`{}`", id.path_text());
        assert!(
            pci.contains(&path),
            "{path} is not in docs/webhook-intake.md#pci"
        );
    }
    assert!(
        stripe::IDENTIFIERS.is_empty(),
        "the doc says Stripe has none"
    );
    assert!(
        !pci.contains("…_id`, `…Reference`: "),
        "no exemption by key name is described"
    );
}
