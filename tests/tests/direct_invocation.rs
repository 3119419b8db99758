//! Direct invocation, as a billing system inside AWS uses it: command envelopes sent to the
//! charges and refunds functions through `cargo lambda watch`'s invocations endpoint (what
//! `aws lambda invoke` reaches), answered with the same status and body as the HTTP routes
//! through the local gateway.
//!
//! `make test` starts the functions and names cargo lambda watch in `PAYBRIDGE_LAMBDA_URL` and
//! the gateway in `PAYBRIDGE_GATEWAY_URL`; without them these tests fail and say so.

use paybridge_tests::unique;
use serde_json::{Value, json};

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: these tests need the functions `make test` starts")
        })
}

struct Billing {
    lambda: String,
    gateway: String,
    http: reqwest::Client,
}

fn billing() -> Billing {
    Billing {
        lambda: required("PAYBRIDGE_LAMBDA_URL"),
        gateway: required("PAYBRIDGE_GATEWAY_URL"),
        http: reqwest::Client::new(),
    }
}

impl Billing {
    /// `aws lambda invoke --function-name <function> --payload <command>`: the function's reply.
    async fn invoke(&self, function: &str, command: Value) -> Value {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.lambda
        );
        let response = (self.http.post(url).json(&command).send().await).expect("an answer");
        assert_eq!(
            response.status().as_u16(),
            200,
            "the invocation itself succeeds"
        );
        response.json().await.expect("a JSON reply")
    }

    /// The same read over HTTP, through the local gateway.
    async fn http_get(&self, path: &str) -> (u16, Value) {
        let response = (self
            .http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await)
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

fn create(invoice: &str, key: &str, capture: bool) -> Value {
    json!({"version": 1, "action": "create_charge", "idempotency_key": key, "body": {
        "invoice_id": invoice, "amount": 1999, "currency": "eur", "gateway": "stripe",
        "payment_method": "pm_card_visa", "capture": capture}})
}

#[tokio::test]
async fn a_billing_system_charges_captures_cancels_refunds_and_reads_by_direct_invocation() {
    let b = billing();
    let invoice = unique("inv_");
    let key = unique("inv-key-");
    let created = b.invoke("charges", create(&invoice, &key, false)).await;
    assert_eq!(
        (created["version"].as_u64(), created["status"].as_u64()),
        (Some(1), Some(201)),
        "{created}"
    );
    let charge = &created["body"];
    assert_eq!(charge["status"], "authorized", "{created}");
    let id = charge["id"].as_str().unwrap().to_owned();

    // The same command again: the stored answer, marked as a replay — as over HTTP.
    let again = b.invoke("charges", create(&invoice, &key, false)).await;
    assert_eq!(again["body"], created["body"]);
    assert_eq!(again["headers"]["idempotent-replayed"], "true");

    // Reads answer exactly what the HTTP routes answer.
    let read = b
        .invoke(
            "charges",
            json!({"version": 1, "action": "get_charge", "charge_id": id}),
        )
        .await;
    assert_eq!(
        (read["status"].as_u64(), &read["body"]),
        (Some(200), &b.http_get(&format!("/charges/{id}")).await.1)
    );
    let listed = b
        .invoke(
            "charges",
            json!({"version": 1, "action": "list_charges", "invoice_id": invoice}),
        )
        .await;
    let (status, over_http) = b.http_get(&format!("/charges?invoice_id={invoice}")).await;
    assert_eq!(
        (listed["status"].as_u64(), &listed["body"]),
        (Some(status.into()), &over_http)
    );

    let captured = b
        .invoke(
            "charges",
            json!({"version": 1, "action": "capture_charge", "charge_id": id,
                   "idempotency_key": unique("cap-"), "body": {"amount": 1500}}),
        )
        .await;
    assert_eq!(captured["status"], 200, "{captured}");
    assert_eq!(captured["body"]["captured"], 1500);

    let refunded = b
        .invoke(
            "refunds",
            json!({"version": 1, "action": "create_refund", "charge_id": id,
                   "idempotency_key": unique("rf-"), "body": {"amount": 500}}),
        )
        .await;
    assert_eq!(refunded["status"], 201, "{refunded}");
    let refund_id = refunded["body"]["id"].as_str().unwrap().to_owned();
    let refund = b
        .invoke(
            "refunds",
            json!({"version": 1, "action": "get_refund", "refund_id": refund_id}),
        )
        .await;
    assert_eq!(
        refund["body"],
        b.http_get(&format!("/refunds/{refund_id}")).await.1
    );
    let refunds = b
        .invoke(
            "refunds",
            json!({"version": 1, "action": "list_refunds", "charge_id": id}),
        )
        .await;
    assert_eq!(refunds["body"]["data"].as_array().map(Vec::len), Some(1));

    // Another invoice, authorized then canceled.
    let held = b
        .invoke("charges", create(&unique("inv_"), &unique("k-"), false))
        .await;
    let held_id = held["body"]["id"].as_str().unwrap();
    let canceled = b
        .invoke(
            "charges",
            json!({"version": 1, "action": "cancel_charge", "charge_id": held_id,
                   "idempotency_key": unique("can-")}),
        )
        .await;
    assert_eq!(
        (
            canceled["status"].as_u64(),
            canceled["body"]["status"].as_str()
        ),
        (Some(200), Some("canceled")),
        "{canceled}"
    );
    let disputes = b
        .invoke(
            "charges",
            json!({"version": 1, "action": "list_disputes", "charge_id": id}),
        )
        .await;
    assert_eq!(disputes["status"], 200, "{disputes}");
}

#[tokio::test]
async fn bad_envelopes_and_refused_requests_get_the_same_json_errors_as_http() {
    let b = billing();
    let card = "4111 1111 1111 1111";
    for (function, command, status, code) in [
        (
            "charges",
            json!({"version": 1, "action": "pay_everything"}),
            404,
            "route_not_found",
        ),
        (
            "charges",
            json!({"version": 1, "action": "get_refund", "refund_id": "rf_1"}),
            404,
            "route_not_found",
        ),
        (
            "refunds",
            json!({"version": 1, "action": "get_charge", "charge_id": "ch_1"}),
            404,
            "route_not_found",
        ),
        (
            "charges",
            json!({"version": 9, "action": "get_charge", "charge_id": "ch_1"}),
            400,
            "invalid_request",
        ),
        (
            "charges",
            json!({"version": 1, "action": "get_charge"}),
            400,
            "invalid_request",
        ),
        (
            "charges",
            json!({"version": 1, "action": "get_charge", "charge_id": "ch_1", "extra": true}),
            400,
            "invalid_request",
        ),
        (
            "charges",
            json!({"version": 1, "action": "create_charge", "body": {}}),
            400,
            "idempotency_key_required",
        ),
        (
            "charges",
            json!({"version": 1, "action": "get_charge", "charge_id": "ch_00000000000000000000000000000000"}),
            404,
            "charge_not_found",
        ),
        (
            "charges",
            json!({"version": 1, "action": "create_charge", "idempotency_key": unique("k-"),
            "body": {"invoice_id": unique("inv_"), "amount": 1999, "currency": "eur", "gateway": "stripe",
                     "payment_method": "pm_card_visa", "description": card}}),
            422,
            "card_data_refused",
        ),
        (
            "charges",
            json!({"version": 1, "action": "list_charges", "invoice_id": card}),
            422,
            "card_data_refused",
        ),
        (
            "refunds",
            json!({"version": 1, "action": "create_refund", "charge_id": "ch_00000000000000000000000000000000",
            "idempotency_key": unique("k-"), "body": {"amount": 1, "extra": 1}}),
            400,
            "invalid_request",
        ),
    ] {
        let reply = b.invoke(function, command.clone()).await;
        assert_eq!(
            (
                reply["status"].as_u64(),
                reply["body"]["error"]["code"].as_str()
            ),
            (Some(status), Some(code)),
            "{function} {command}: {reply}"
        );
        assert!(
            !reply.to_string().contains("4111"),
            "the card number is not echoed"
        );
    }
}
