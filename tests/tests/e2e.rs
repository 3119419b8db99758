//! End to end, as the billing system and Stripe see paybridge: HTTP requests to the local gateway
//! (template.yaml's routes, API Gateway v2 events), the functions under `cargo lambda watch`,
//! localstripe's own signed webhooks into intake, the retry worker fed by the gateway's SQS event
//! source mapping, and the billing notifications verified by the local billing receiver
//! (`scripts/billing_receiver.py`, with the `standardwebhooks` library).
//!
//! `make test` starts all of it (`scripts/with-stack.sh --functions`) and names it in
//! `PAYBRIDGE_GATEWAY_URL`, `PAYBRIDGE_RECEIVER_URL` and `PAYBRIDGE_FUNCTIONS_STRIPE_URL` (the
//! functions' own localstripe). Without them these tests fail and say so: an end-to-end test
//! that skips itself would pass without testing anything.

use std::time::Duration;

use hmac::{Hmac, Mac};
use paybridge::adapters::dynamodb::Table;
use paybridge::domain::{ChargeId, DeliveryStatus, EventStatus, Gateway, PublicationStatus};
use paybridge::ports::{EventStore, NotificationStore, PublicationStore};
use paybridge_tests::{eventually, stack, unique, unix_now};
use serde_json::{Value, json};
use sha2::Sha256;

/// How long the pipeline may take: webhooks leave localstripe after a second, the worker polls.
const PIPELINE: Duration = Duration::from_secs(90);

/// The running local gateway, billing receiver and the functions' localstripe.
struct EndToEnd {
    gateway: String,
    receiver: String,
    stripe: String,
    http: reqwest::Client,
    table: Table,
}

/// One HTTP answer of the gateway.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set. The end-to-end tests need the local gateway, cargo lambda watch \
                 and the billing receiver that `make test` starts (scripts/with-stack.sh \
                 --functions); run them with `make test`."
            )
        })
}

async fn end_to_end() -> EndToEnd {
    let gateway = required("PAYBRIDGE_GATEWAY_URL");
    let receiver = required("PAYBRIDGE_RECEIVER_URL");
    let stripe = required("PAYBRIDGE_FUNCTIONS_STRIPE_URL");
    let stack = stack().await;
    EndToEnd {
        gateway,
        receiver,
        stripe,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client"),
        table: Table::from_conf(&stack.aws, &stack.config.table),
    }
}

/// The current Stripe endpoint secret of local/secrets.json (what localstripe signs with).
fn stripe_webhook_secret() -> String {
    let secrets: Value =
        serde_json::from_str(include_str!("../../local/secrets.json")).expect("secrets.json");
    secrets["stripe"]["webhook_secrets"][0]
        .as_str()
        .expect("stripe.webhook_secrets[0]")
        .to_owned()
}

/// `Stripe-Signature: t=…,v1=…` over `body`, as Stripe (and localstripe) sign it.
fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

impl EndToEnd {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the local gateway answers");
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("a JSON answer, got {status}: {text}"));
        Answer {
            status,
            body,
            replayed,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.gateway)))
            .await
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.gateway))
                .header("idempotency-key", key)
                .json(body),
        )
        .await
    }

    /// A succeeded card charge made through `POST /charges`.
    async fn charge(&self) -> Value {
        let body = json!({
            "invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe",
            "payment_method": "pm_card_visa", "capture": true,
            "description": "end-to-end test", "metadata": {"plan": "pro"}
        });
        let created = self.post("/charges", &unique("e2e-"), &body).await;
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(created.body["status"], "succeeded", "{created:?}");
        created.body
    }

    /// localstripe's events about one of its objects: (id, type).
    async fn stripe_events_about(&self, object_id: &str) -> Vec<(String, String)> {
        let list: Value = self
            .http
            .get(format!("{}/v1/events?limit=100", self.stripe))
            .bearer_auth("sk_test_e2e")
            .send()
            .await
            .expect("localstripe answers")
            .json()
            .await
            .expect("an event list");
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|e| e["data"]["object"]["id"] == object_id)
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["type"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until intake recorded the Stripe event and the worker processed it.
    async fn processed(&self, event_id: &str) {
        eventually(
            PIPELINE,
            &format!("Stripe event {event_id} recorded and processed"),
            || async {
                let record = self
                    .table
                    .get_event(Gateway::Stripe, event_id)
                    .await
                    .expect("read the event record");
                record.filter(|r| r.status == EventStatus::Processed)
            },
        )
        .await;
    }

    /// Waits until every notification of the charge is delivered, then returns what the
    /// receiver got about the charge (its own notifications and its refunds').
    async fn delivered(&self, charge_id: &str, expected: usize) -> Vec<Value> {
        let id = ChargeId::parse(charge_id).expect("a charge id");
        eventually(
            PIPELINE,
            &format!("{expected} notifications of {charge_id} delivered"),
            || async {
                let outbox = self
                    .table
                    .notifications_for_charge(&id)
                    .await
                    .expect("read the outbox");
                (outbox.len() >= expected
                    && outbox.iter().all(|n| n.status == DeliveryStatus::Delivered))
                .then_some(())
            },
        )
        .await;
        self.received(charge_id).await
    }

    async fn received(&self, charge_id: &str) -> Vec<Value> {
        let list: Value = self
            .http
            .get(format!("{}/received", self.receiver))
            .query(&[("charge_id", charge_id)])
            .send()
            .await
            .expect("the billing receiver answers")
            .json()
            .await
            .expect("a JSON list");
        list.as_array().expect("a list").clone()
    }

    /// Waits until every notification of the charge is published on the notification bus, then
    /// checks what billing's rule on the bus delivered to its queue
    /// (`PAYBRIDGE_LOCAL_BILLING_EVENTS_URL`): one event per notification, whose `detail` is the
    /// body billing's endpoint receives. This is the queue's only reader; events of other charges
    /// are dropped.
    async fn on_the_bus_once(&self, charge_id: &str, expected: usize) {
        let queue = required("PAYBRIDGE_LOCAL_BILLING_EVENTS_URL");
        let stack = stack().await;
        let id = ChargeId::parse(charge_id).expect("a charge id");
        let outbox = self
            .table
            .notifications_for_charge(&id)
            .await
            .expect("read the outbox");
        assert_eq!(outbox.len(), expected, "{outbox:#?}");
        eventually(
            PIPELINE,
            &format!("{expected} notifications of {charge_id} published"),
            || async {
                let mut published = 0;
                for n in &outbox {
                    let p = self
                        .table
                        .get_publication(&id, &n.id)
                        .await
                        .expect("read the publication");
                    published +=
                        usize::from(p.is_some_and(|p| p.status == PublicationStatus::Published));
                }
                (published == expected).then_some(())
            },
        )
        .await;
        let mine: Vec<Value> = (stack.drain(&queue).await.iter())
            .map(|b| serde_json::from_str::<Value>(b).expect("an EventBridge event"))
            .filter(|e| {
                e["detail"]["data"]["id"] == charge_id
                    || e["detail"]["data"]["charge_id"] == charge_id
            })
            .collect();
        assert_eq!(
            mine.len(),
            expected,
            "one event per notification: {mine:#?}"
        );
        for n in &outbox {
            let event = (mine.iter())
                .find(|e| e["detail"]["id"] == n.id.as_str())
                .unwrap_or_else(|| panic!("{} is not on the bus: {mine:#?}", n.id));
            let body: Value = serde_json::from_str(&n.body).expect("a JSON body");
            assert_eq!(
                (&event["source"], &event["detail-type"], &event["detail"]),
                (&json!("paybridge"), &json!(n.event_type), &body)
            );
        }
    }

    /// Signs `event` as Stripe does and posts it to the gateway's `/webhooks/stripe`.
    async fn stripe_webhook(&self, event: &Value) -> Answer {
        let body = event.to_string();
        let signature = stripe_signature(&stripe_webhook_secret(), unix_now(), &body);
        self.send(
            self.http
                .post(format!("{}/webhooks/stripe", self.gateway))
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", signature)
                .body(body),
        )
        .await
    }
}

/// How many received notifications have this type (and, if given, this object id).
fn count(received: &[Value], event_type: &str, object_id: Option<&str>) -> usize {
    received
        .iter()
        .filter(|r| r["type"] == event_type)
        .filter(|r| object_id.is_none_or(|id| r["object_id"] == id))
        .count()
}

fn assert_all_verified_once(received: &[Value]) {
    for r in received {
        assert_eq!(r["verified"], true, "a delivery did not verify: {r}");
    }
    let mut ids: Vec<&str> = received
        .iter()
        .map(|r| r["webhook_id"].as_str().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        before,
        "a notification was delivered twice: {received:#?}"
    );
}

#[tokio::test]
async fn a_charge_through_the_local_gateway_is_confirmed_by_localstripes_webhook_and_billing_hears_of_it_once()
 {
    let e = end_to_end().await;
    let charge = e.charge().await;
    let id = charge["id"].as_str().expect("an id");
    let intent = charge["gateway_ref"].as_str().expect("a PaymentIntent");
    assert!(intent.starts_with("pi_"), "{charge}");

    let read = e.get(&format!("/charges/{id}")).await;
    assert_eq!((read.status, &read.body), (200, &charge));

    // localstripe signs and sends its own event to the gateway; intake records it and the
    // worker, fed by the gateway's SQS event source mapping, processes it.
    let events = eventually(
        PIPELINE,
        &format!("localstripe's events about {intent}"),
        || async {
            let events = e.stripe_events_about(intent).await;
            (!events.is_empty()).then_some(events)
        },
    )
    .await;
    assert!(
        events.iter().any(|(_, t)| t == "payment_intent.succeeded"),
        "{events:?}"
    );
    for (event_id, _) in &events {
        e.processed(event_id).await;
    }

    let received = e.delivered(id, 1).await;
    assert_eq!(
        count(&received, "charge.succeeded", Some(id)),
        1,
        "{received:#?}"
    );
    assert_eq!(received.len(), 1, "only charge.succeeded: {received:#?}");
    assert_all_verified_once(&received);
    assert_eq!(
        (&received[0]["status"], &received[0]["amount"]),
        (&json!("succeeded"), &json!(1999))
    );
}

#[tokio::test]
async fn a_partial_refund_through_the_local_gateway_reaches_billing_once_with_its_charge() {
    let e = end_to_end().await;
    let charge = e.charge().await;
    let id = charge["id"].as_str().expect("an id");
    let intent = charge["gateway_ref"].as_str().expect("a PaymentIntent");

    let key = unique("e2e-refund-");
    let body = json!({"amount": 500, "reason": "requested_by_customer"});
    let refund = e.post(&format!("/charges/{id}/refunds"), &key, &body).await;
    assert_eq!(refund.status, 201, "{refund:?}");
    let refund = refund.body;
    let refund_id = refund["id"].as_str().expect("a refund id");
    assert_eq!(
        (&refund["status"], &refund["amount"], &refund["charge_id"]),
        (&json!("succeeded"), &json!(500), &json!(id))
    );
    let again = e.post(&format!("/charges/{id}/refunds"), &key, &body).await;
    assert!(again.replayed, "the same key replays: {again:?}");
    assert_eq!((again.status, &again.body), (201, &refund));

    let read = e.get(&format!("/refunds/{refund_id}")).await;
    assert_eq!((read.status, &read.body), (200, &refund));
    let listed = e.get(&format!("/charges/{id}/refunds")).await;
    assert_eq!(
        (listed.status, &listed.body["data"]),
        (200, &json!([refund]))
    );
    let charge_now = e.get(&format!("/charges/{id}")).await.body;
    assert_eq!(charge_now["refunded"], 500, "{charge_now}");

    // localstripe 1.15.10 sends no event for refunds. Stripe does: `charge.refunded`, which
    // in localstripe's API version (2017-08-15) carries the charge with its refunds. Send that,
    // built from localstripe's own charge and signed with the endpoint secret, as Stripe would.
    let intent_object: Value = e
        .http
        .get(format!("{}/v1/payment_intents/{intent}", e.stripe))
        .bearer_auth("sk_test_e2e")
        .send()
        .await
        .expect("localstripe answers")
        .json()
        .await
        .expect("a PaymentIntent");
    let stripe_charge_id = intent_object["charges"]["data"][0]["id"]
        .as_str()
        .expect("the intent's charge");
    let stripe_charge: Value = e
        .http
        .get(format!("{}/v1/charges/{stripe_charge_id}", e.stripe))
        .bearer_auth("sk_test_e2e")
        .send()
        .await
        .expect("localstripe answers")
        .json()
        .await
        .expect("a charge");
    assert_eq!(stripe_charge["amount_refunded"], 500, "{stripe_charge}");
    let event_id = unique("evt_e2e_");
    let event = json!({
        "id": event_id, "object": "event", "api_version": "2017-08-15", "created": unix_now(),
        "livemode": false, "type": "charge.refunded", "data": {"object": stripe_charge}
    });
    let accepted = e.stripe_webhook(&event).await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    assert_eq!(
        accepted.body["events"][0]["outcome"], "queued",
        "{accepted:?}"
    );

    e.processed(&event_id).await;
    for (stripe_event, _) in e.stripe_events_about(intent).await {
        e.processed(&stripe_event).await;
    }

    // charge.succeeded, refund.succeeded and charge.partially_refunded: each exactly once.
    let received = e.delivered(id, 3).await;
    assert_all_verified_once(&received);
    assert_eq!(
        count(&received, "refund.succeeded", Some(refund_id)),
        1,
        "{received:#?}"
    );
    assert_eq!(
        count(&received, "charge.partially_refunded", Some(id)),
        1,
        "{received:#?}"
    );
    assert_eq!(
        count(&received, "charge.succeeded", Some(id)),
        1,
        "{received:#?}"
    );
    assert_eq!(received.len(), 3, "{received:#?}");
    let refunded = received
        .iter()
        .find(|r| r["type"] == "refund.succeeded")
        .expect("refund.succeeded");
    assert_eq!(refunded["amount"], 500, "{refunded}");

    // The local stack's functions notify both targets: each of the three is also on the
    // notification bus, once, with the body billing's endpoint received.
    e.on_the_bus_once(id, 3).await;
}

#[tokio::test]
async fn the_local_gateway_answers_unknown_routes_as_api_gateway_does_and_refuses_forged_webhooks()
{
    let e = end_to_end().await;
    for (method, path) in [
        (reqwest::Method::GET, "/nowhere"),
        (reqwest::Method::DELETE, "/charges"),
        (reqwest::Method::GET, "/charges/ch_1/capture"),
    ] {
        let answer = e
            .send(
                e.http
                    .request(method.clone(), format!("{}{path}", e.gateway)),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body),
            (404, json!({"message": "Not Found"})),
            "{method} {path}"
        );
    }

    let event = json!({"id": unique("evt_forged_"), "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_forged", "object": "payment_intent", "status": "succeeded"}}});
    let body = event.to_string();
    let forged = e
        .send(
            e.http
                .post(format!("{}/webhooks/stripe", e.gateway))
                .header("content-type", "application/json")
                .header(
                    "stripe-signature",
                    stripe_signature("whsec_not_the_secret", unix_now(), &body),
                )
                .body(body),
        )
        .await;
    assert_eq!(forged.status, 400, "{forged:?}");
    assert_eq!(forged.body["error"]["code"], "invalid_signature");
    let id = event["id"].as_str().unwrap();
    let record = e
        .table
        .get_event(Gateway::Stripe, id)
        .await
        .expect("read the event record");
    assert!(record.is_none(), "a forged event was recorded: {record:?}");
}

// ---- the gateway's truth, end to end through localstripe's test mode (scripts/stripe_test_mode):
// disputes opened by `pm_card_createDispute` and decided by Stripe's evidence tokens, a refund made
// at Stripe without paybridge, and a declined PaymentIntent confirmed again.

impl EndToEnd {
    /// A call to the functions' localstripe, as Stripe's dashboard or another integration makes.
    async fn at_stripe(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.stripe))
            .bearer_auth("sk_test_e2e")
            .form(form)
            .send()
            .await
            .expect("localstripe answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn charge_with(&self, payment_method: &str) -> Value {
        let body = json!({
            "invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe",
            "payment_method": payment_method, "capture": true
        });
        let created = self.post("/charges", &unique("e2e-"), &body).await;
        assert_eq!(created.status, 201, "{created:?}");
        created.body
    }

    /// The charge once `done` holds for it.
    async fn charge_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(PIPELINE, what, || async {
            let charge = self.get(&format!("/charges/{id}")).await;
            done(&charge.body).then_some(charge.body)
        })
        .await
    }
}

#[tokio::test]
async fn a_dispute_won_and_a_dispute_lost_end_with_the_right_charge_and_one_verified_notification_per_change()
 {
    let e = end_to_end().await;
    for (evidence, outcome, disputed) in [
        ("winning_evidence", "won", 0),
        ("losing_evidence", "lost", 1999),
    ] {
        let charge = e.charge_with("pm_card_createDispute").await;
        let id = charge["id"].as_str().unwrap().to_owned();
        let open = e
            .charge_until(&id, "the dispute opened, its funds withdrawn", |c| {
                c["disputes"][0]["funds_withdrawn"] == 1999
            })
            .await;
        assert_eq!(
            (
                &open["disputes"][0]["status"],
                &open["disputed"],
                &open["refundable"]
            ),
            (&json!("needs_response"), &json!(1999), &json!(0)),
            "{open}"
        );
        let refused = e
            .post(
                &format!("/charges/{id}/refunds"),
                &unique("e2e-"),
                &json!({}),
            )
            .await;
        assert_eq!(
            (refused.status, &refused.body["error"]["code"]),
            (422, &json!("charge_disputed")),
            "{refused:?}"
        );
        let dispute = open["disputes"][0]["gateway_ref"]
            .as_str()
            .unwrap()
            .to_owned();
        e.at_stripe(
            &format!("/v1/disputes/{dispute}"),
            &[("evidence[uncategorized_text]", evidence)],
        )
        .await;
        let decided = e
            .charge_until(&id, &format!("the dispute {outcome}"), |c| {
                c["disputes"][0]["status"] == outcome && c["disputed"] == disputed
            })
            .await;
        let dispute_id = decided["disputes"][0]["id"].as_str().unwrap().to_owned();
        let listed = e.get(&format!("/charges/{id}/disputes")).await;
        assert_eq!(listed.body["data"][0]["id"], dispute_id.as_str());
        let one = e.get(&format!("/disputes/{dispute_id}")).await;
        assert_eq!((one.status, &one.body["status"]), (200, &json!(outcome)));

        // Every change notified once, each verified by the receiver's Standard Webhooks library.
        let outbox = e
            .table
            .notifications_for_charge(&ChargeId::parse(&id).unwrap())
            .await
            .unwrap();
        let received = e.delivered(&id, outbox.len()).await;
        assert_all_verified_once(&received);
        assert_eq!(received.len(), outbox.len(), "{received:#?}");
        assert_eq!(
            count(&received, "dispute.opened", Some(&dispute_id)),
            1,
            "{received:#?}"
        );
        assert_eq!(
            count(&received, &format!("dispute.{outcome}"), Some(&dispute_id)),
            1,
            "{received:#?}"
        );
        assert_eq!(
            count(&received, "charge.succeeded", Some(&id)),
            1,
            "{received:#?}"
        );
        if outcome == "won" {
            let after = e
                .post(
                    &format!("/charges/{id}/refunds"),
                    &unique("e2e-"),
                    &json!({}),
                )
                .await;
            assert_eq!(
                (after.status, &after.body["amount"]),
                (201, &json!(1999)),
                "{after:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_refund_made_at_stripe_is_adopted_and_refund_the_rest_asks_stripe_for_exactly_the_remainder()
 {
    let e = end_to_end().await;
    let charge = e.charge().await;
    let (id, pi) = (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"].as_str().unwrap().to_owned(),
    );
    let outside = e
        .at_stripe("/v1/refunds", &[("payment_intent", &pi), ("amount", "500")])
        .await;
    let adopted = e
        .charge_until(&id, "the dashboard refund adopted", |c| {
            c["refunded"] == 500
        })
        .await;
    assert_eq!(adopted["status"], "partially_refunded");
    let refunds = e.get(&format!("/charges/{id}/refunds")).await.body;
    assert_eq!(refunds["data"][0]["gateway_ref"], outside["id"]);
    assert_eq!(refunds["data"][0]["external"], true);

    let rest = e
        .post(
            &format!("/charges/{id}/refunds"),
            &unique("e2e-"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (rest.status, &rest.body["amount"]),
        (201, &json!(1499)),
        "{rest:?}"
    );
    let at_stripe: Value = e
        .http
        .get(format!(
            "{}/v1/refunds/{}",
            e.stripe,
            rest.body["gateway_ref"].as_str().unwrap()
        ))
        .bearer_auth("sk_test_e2e")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        at_stripe["amount"], 1499,
        "Stripe was asked for the remainder: {at_stripe}"
    );
    e.charge_until(&id, "refunded", |c| c["status"] == "refunded")
        .await;
    let outbox = e
        .table
        .notifications_for_charge(&ChargeId::parse(&id).unwrap())
        .await
        .unwrap();
    let received = e.delivered(&id, outbox.len()).await;
    assert_all_verified_once(&received);
    assert_eq!(
        count(&received, "refund.succeeded", None),
        2,
        "{received:#?}"
    );
    assert_eq!(
        count(&received, "charge.partially_refunded", Some(&id)),
        1,
        "{received:#?}"
    );
    assert_eq!(
        count(&received, "charge.refunded", Some(&id)),
        1,
        "{received:#?}"
    );
}

#[tokio::test]
async fn a_declined_payment_confirmed_again_at_stripe_succeeds_and_billing_is_told_both() {
    let e = end_to_end().await;
    let charge = e.charge_with("pm_card_visa_chargeDeclined").await;
    assert_eq!(charge["status"], "failed", "{charge}");
    assert_eq!(charge["failure"]["code"], "generic_decline", "{charge}");
    let (id, pi) = (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"]
            .as_str()
            .expect("the declined PaymentIntent")
            .to_owned(),
    );
    e.at_stripe(
        &format!("/v1/payment_intents/{pi}/confirm"),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    let paid = e
        .charge_until(&id, "the late success applied", |c| {
            c["status"] == "succeeded"
        })
        .await;
    assert_eq!(
        (&paid["captured"], &paid["failure"]),
        (&json!(1999), &Value::Null)
    );
    let outbox = e
        .table
        .notifications_for_charge(&ChargeId::parse(&id).unwrap())
        .await
        .unwrap();
    let received = e.delivered(&id, outbox.len()).await;
    assert_all_verified_once(&received);
    assert_eq!(
        count(&received, "charge.failed", Some(&id)),
        1,
        "{received:#?}"
    );
    assert_eq!(
        count(&received, "charge.succeeded", Some(&id)),
        1,
        "{received:#?}"
    );
}
