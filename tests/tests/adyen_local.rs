//! End to end with the local Adyen (`scripts/adyen_fake.py`): a charge with `"gateway":"adyen"`
//! made on the local gateway reaches the fake through the functions' `PAYBRIDGE_ADYEN_API_BASE`,
//! and the fake's HMAC-signed AUTHORISATION notification comes back through the gateway's
//! `/webhooks/adyen`, is recorded by intake and applied by the worker.
//!
//! `make test` starts all of it and names it in `PAYBRIDGE_GATEWAY_URL` and
//! `PAYBRIDGE_ADYEN_FAKE_URL`; without them these tests fail and say so, as the e2e tests do.

use std::time::Duration;

use paybridge::adapters::dynamodb::Table;
use paybridge::domain::{EventStatus, Gateway};
use paybridge::ports::{EventStore, NotificationStore};
use paybridge_tests::{eventually, stack, unique};
use serde_json::{Value, json};

/// The fake sends a notification a second after the payment; intake and the worker take a few more.
const PIPELINE: Duration = Duration::from_secs(90);

struct LocalAdyen {
    gateway: String,
    fake: String,
    http: reqwest::Client,
    table: Table,
}

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set. These tests need the local gateway, the functions and the local \
                 Adyen that `make test` starts (scripts/with-stack.sh --functions); run them with `make test`."
            )
        })
}

async fn local_adyen() -> LocalAdyen {
    let stack = stack().await;
    assert!(
        stack.config.adyen_api_base.starts_with("http://127.0.0.1:"),
        "the functions' Adyen must be the local one, got {}",
        stack.config.adyen_api_base
    );
    LocalAdyen {
        gateway: required("PAYBRIDGE_GATEWAY_URL"),
        fake: required("PAYBRIDGE_ADYEN_FAKE_URL"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client"),
        table: Table::from_conf(&stack.aws, &stack.config.table),
    }
}

impl LocalAdyen {
    async fn json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("a JSON answer, got {status}: {text}"));
        (status, body)
    }

    /// `POST /charges` on the local gateway for an Adyen stored card.
    async fn charge(&self, stored_payment_method: &str) -> (u16, Value) {
        let body = json!({
            "invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "adyen",
            "payment_method": stored_payment_method, "customer": "shopper_local", "capture": true,
            "metadata": {"plan": "pro"}
        });
        self.json(
            self.http
                .post(format!("{}/charges", self.gateway))
                .header("idempotency-key", unique("adyen-local-"))
                .json(&body),
        )
        .await
    }

    async fn get_charge(&self, id: &str) -> Value {
        let (status, body) = self
            .json(self.http.get(format!("{}/charges/{id}", self.gateway)))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// What the fake holds under one of its `/_paybridge/` lists.
    async fn fake_list(&self, what: &str) -> Vec<Value> {
        let (status, body) = self
            .json(self.http.get(format!("{}/_paybridge/{what}", self.fake)))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a list").clone()
    }
}

#[tokio::test]
async fn an_adyen_charge_on_the_local_gateway_is_paid_by_the_local_adyen_and_its_authorisation_is_applied()
 {
    let a = local_adyen().await;
    let (status, charge) = a.charge("stored_ok").await;
    assert_eq!(status, 201, "{charge}");
    assert_eq!(
        (&charge["status"], &charge["captured"]),
        (&json!("succeeded"), &json!(1999)),
        "{charge}"
    );
    let id = charge["id"].as_str().expect("an id");
    let psp = charge["gateway_ref"].as_str().expect("a pspReference");

    // The functions called the fake, not the internet: it holds the payment under our reference.
    let payments = a.fake_list("payments").await;
    let payment = payments
        .iter()
        .find(|p| p["pspReference"] == psp)
        .unwrap_or_else(|| panic!("the local Adyen knows no payment {psp}: {payments:#?}"));
    assert_eq!(
        (&payment["reference"], &payment["shopperReference"]),
        (&json!(id), &json!("shopper_local"))
    );

    // Its signed AUTHORISATION went to the gateway's /webhooks/adyen, was accepted, recorded
    // once and applied by the worker.
    // The event id carries the item's eventDate (see shared/src/webhooks/adyen/verify.rs).
    let notifications = a.fake_list("notifications").await;
    let date = (notifications.iter())
        .find(|n| n["pspReference"] == psp && n["eventCode"] == "AUTHORISATION")
        .and_then(|n| n["item"]["eventDate"].as_str())
        .unwrap_or_else(|| panic!("no AUTHORISATION for {psp}: {notifications:#?}"))
        .to_owned();
    let event_id = format!("{psp}:AUTHORISATION:true:{date}");
    eventually(
        PIPELINE,
        &format!("event {event_id} recorded and processed"),
        || async {
            let record = a
                .table
                .get_event(Gateway::Adyen, &event_id)
                .await
                .expect("read the event record");
            record.filter(|r| r.status == EventStatus::Processed)
        },
    )
    .await;
    let notifications = a.fake_list("notifications").await;
    let sent: Vec<&Value> = notifications
        .iter()
        .filter(|n| n["pspReference"] == psp)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (&sent[0]["eventCode"], &sent[0]["status"]),
        (&json!("AUTHORISATION"), &json!("delivered")),
        "{sent:#?}"
    );
    assert_eq!(sent[0]["attempts"][0]["answer"], "[accepted]", "{sent:#?}");
    assert_eq!(a.get_charge(id).await["status"], "succeeded");
}

#[tokio::test]
async fn a_pending_adyen_charge_succeeds_when_the_local_adyens_authorisation_arrives() {
    let a = local_adyen().await;
    let (status, charge) = a.charge("stored_pending").await;
    assert_eq!(status, 201, "{charge}");
    assert_eq!(charge["status"], "processing", "{charge}");
    let id = charge["id"].as_str().expect("an id").to_owned();

    let settled = eventually(
        PIPELINE,
        &format!("charge {id} moved on by the AUTHORISATION notification"),
        || async {
            let now = a.get_charge(&id).await;
            (now["status"] != "processing").then_some(now)
        },
    )
    .await;
    assert_eq!(
        (&settled["status"], &settled["captured"]),
        (&json!("succeeded"), &json!(1999)),
        "{settled}"
    );
}

#[tokio::test]
async fn every_adyen_refusal_class_tells_billing_what_to_do_next() {
    let adyen = local_adyen().await;
    // The local Adyen refuses these stored cards with Adyen's refusalReason and code.
    for (stored, code, advice, retryable) in [
        ("stored_not_enough_balance", "12", "retry_later", true),
        ("stored_refused", "2", "retry_later", true),
        ("stored_expired_card", "6", "update_payment_method", false),
        ("stored_cvc_declined", "24", "update_payment_method", false),
        ("stored_blocked_card", "5", "update_payment_method", false),
        ("stored_fraud", "20", "do_not_retry", false),
    ] {
        let (status, charge) = adyen.charge(stored).await;
        assert_eq!(
            (status, charge["status"].as_str()),
            (201, Some("failed")),
            "{stored}: {charge}"
        );
        let failure = &charge["failure"];
        assert_eq!(
            (
                failure["code"].as_str(),
                failure["advice"].as_str(),
                failure["retryable"].as_bool()
            ),
            (Some(code), Some(advice), Some(retryable)),
            "{stored}: {charge}"
        );
    }
}

// ---- the gateway's truth, end to end: Adyen's late failures, its retries, disputes and
// Customer Area refunds, sent by the local Adyen's control endpoints (docs/local-stack.md)
// through the gateway's /webhooks/adyen to the worker.

impl LocalAdyen {
    async fn create(&self, capture: bool) -> Value {
        let body = json!({
            "invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "adyen",
            "payment_method": "stored_ok", "customer": "shopper_local", "capture": capture
        });
        let (status, charge) = self
            .json(
                self.http
                    .post(format!("{}/charges", self.gateway))
                    .header("idempotency-key", unique("adyen-truth-"))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{charge}");
        let id = charge["id"].as_str().unwrap().to_owned();
        let want = if capture { "succeeded" } else { "authorized" };
        self.until(&id, &format!("{id} {want}"), |c| c["status"] == want)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(
            self.http
                .post(format!("{}{path}", self.gateway))
                .header("idempotency-key", unique("adyen-truth-"))
                .json(&body),
        )
        .await
    }

    async fn control(&self, path: &str, body: Value) {
        let (status, answer) = self
            .json(
                self.http
                    .post(format!("{}/_paybridge/{path}", self.fake))
                    .json(&body),
            )
            .await;
        assert_eq!(status, 202, "{path}: {answer}");
    }

    /// The charge once `done` holds for it.
    async fn until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(PIPELINE, what, || async {
            let charge = self.get_charge(id).await;
            done(&charge).then_some(charge)
        })
        .await
    }

    async fn notification_types(&self, id: &str) -> Vec<String> {
        let charge = paybridge::domain::ChargeId::parse(id).unwrap();
        (self.table.notifications_for_charge(&charge).await.unwrap())
            .into_iter()
            .map(|n| n.event_type)
            .collect()
    }
}

#[tokio::test]
async fn a_late_capture_failed_and_adyens_own_recapture_reach_the_charge_and_billing() {
    let a = local_adyen().await;
    let charge = a.create(false).await;
    let (id, psp) = (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"].as_str().unwrap().to_owned(),
    );
    let (status, answer) = a.post(&format!("/charges/{id}/capture"), json!({})).await;
    assert_eq!(status, 202, "{answer}");
    a.until(&id, "captured", |c| c["status"] == "succeeded")
        .await;

    // A technical failure: CAPTURE_FAILED, then Adyen's re-capture with the same pspReference.
    a.control(
        &format!("payments/{psp}/capture-failed"),
        json!({"reason": "technical"}),
    )
    .await;
    let types = eventually(
        PIPELINE,
        "charge.capture_failed then charge.succeeded",
        || async {
            let types = a.notification_types(&id).await;
            let failed = types.iter().position(|t| t == "charge.capture_failed");
            failed
                .filter(|i| types[i + 1..].iter().any(|t| t == "charge.succeeded"))
                .map(|_| types)
        },
    )
    .await;
    let now = a.get_charge(&id).await;
    assert_eq!(
        (&now["status"], &now["captured"], &now["failure"]),
        (&json!("succeeded"), &json!(1999), &Value::Null),
        "{now} {types:?}"
    );

    // A failure for good leaves the charge where billing can act on it.
    let other = a.create(false).await;
    let (id, psp) = (
        other["id"].as_str().unwrap().to_owned(),
        other["gateway_ref"].as_str().unwrap().to_owned(),
    );
    a.post(&format!("/charges/{id}/capture"), json!({})).await;
    a.until(&id, "captured", |c| c["status"] == "succeeded")
        .await;
    a.control(
        &format!("payments/{psp}/capture-failed"),
        json!({"reason": "expired"}),
    )
    .await;
    let failed = a
        .until(&id, "capture_failed", |c| c["status"] == "capture_failed")
        .await;
    assert_eq!(
        (&failed["captured"], &failed["failure"]["code"]),
        (&json!(0), &json!("capture_failed"))
    );
}

#[tokio::test]
async fn adyens_retried_refund_after_refund_failed_succeeds_it_again_without_a_second_reservation()
{
    let a = local_adyen().await;
    let charge = a.create(true).await;
    let id = charge["id"].as_str().unwrap().to_owned();
    let (status, refund) = a
        .post(&format!("/charges/{id}/refunds"), json!({"amount": 500}))
        .await;
    assert_eq!(status, 202, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    a.until(&id, "refunded", |c| c["refunded"] == 500).await;
    a.control(
        &format!("refunds/{refund_id}/refund-failed"),
        json!({"reason": "technical"}),
    )
    .await;
    let types = eventually(
        PIPELINE,
        "refund.failed, then refund.succeeded again",
        || async {
            let types = a.notification_types(&id).await;
            let failed = types.iter().position(|t| t == "refund.failed");
            failed
                .filter(|i| types[i + 1..].iter().any(|t| t == "refund.succeeded"))
                .map(|_| types)
        },
    )
    .await;
    let now = a.get_charge(&id).await;
    assert_eq!(
        (&now["status"], &now["refunded"], &now["refundable"]),
        (&json!("partially_refunded"), &json!(500), &json!(1499)),
        "{now} {types:?}"
    );
}

#[tokio::test]
async fn an_adyen_chargeback_blocks_refunds_until_it_is_reversed() {
    let a = local_adyen().await;
    let charge = a.create(true).await;
    let (id, psp) = (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"].as_str().unwrap().to_owned(),
    );
    a.control(
        &format!("payments/{psp}/dispute"),
        json!({"eventCode": "NOTIFICATION_OF_CHARGEBACK"}),
    )
    .await;
    a.control(
        &format!("payments/{psp}/dispute"),
        json!({"eventCode": "CHARGEBACK", "disputeStatus": "Undefended"}),
    )
    .await;
    let disputed = a
        .until(&id, "funds withdrawn", |c| c["disputed"] == 1999)
        .await;
    assert_eq!(disputed["disputes"][0]["status"], "needs_response");
    let (status, refused) = a
        .post(&format!("/charges/{id}/refunds"), json!({"amount": 100}))
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (422, &json!("charge_disputed"))
    );
    a.control(
        &format!("payments/{psp}/dispute"),
        json!({"eventCode": "CHARGEBACK_REVERSED", "disputeStatus": "Won"}),
    )
    .await;
    let won = a
        .until(&id, "reversed", |c| c["disputes"][0]["status"] == "won")
        .await;
    assert_eq!(
        (&won["disputed"], &won["refundable"]),
        (&json!(0), &json!(1999))
    );
    let types = a.notification_types(&id).await;
    for t in ["dispute.opened", "dispute.won"] {
        assert_eq!(
            types.iter().filter(|x| *x == t).count(),
            1,
            "{t}: {types:?}"
        );
    }
}

#[tokio::test]
async fn a_customer_area_refund_is_adopted_and_refund_the_rest_asks_adyen_for_exactly_the_remainder()
 {
    let a = local_adyen().await;
    let charge = a.create(true).await;
    let (id, psp) = (
        charge["id"].as_str().unwrap().to_owned(),
        charge["gateway_ref"].as_str().unwrap().to_owned(),
    );
    a.control(
        &format!("payments/{psp}/dashboard-refund"),
        json!({"amount": 500}),
    )
    .await;
    a.until(&id, "the outside refund adopted", |c| c["refunded"] == 500)
        .await;
    let (status, rest) = a.post(&format!("/charges/{id}/refunds"), json!({})).await;
    assert_eq!(status, 202, "{rest}");
    assert_eq!(rest["amount"], 1499);
    let done = a
        .until(&id, "refunded", |c| c["status"] == "refunded")
        .await;
    assert_eq!(done["refunded"], 1999);
    let requests = a.fake_list("requests").await;
    let refunds: Vec<&Value> = (requests.iter())
        .filter(|r| {
            r["path"].as_str().unwrap_or_default() == format!("/v72/payments/{psp}/refunds")
        })
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:#?}");
    assert_eq!(
        refunds[0]["body"]["amount"]["value"], 1499,
        "{:#?}",
        refunds[0]
    );
    assert_eq!(
        a.notification_types(&id)
            .await
            .iter()
            .filter(|t| t.starts_with("refund."))
            .count(),
        2
    );
}
