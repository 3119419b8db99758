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
use paybridge::ports::EventStore;
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
