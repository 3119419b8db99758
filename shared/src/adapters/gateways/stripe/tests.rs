//! The Stripe adapter's answer mapping and `Debug`, without a network.

use std::time::Duration;

use super::StripeGateway;
use super::mapping::{classify, classify_refund};
use crate::domain::{ActionDetails, ChargeStatus, RefundStatus};
use crate::ports::GatewayError;
use crate::secrets::SecretString;

#[test]
fn payment_intent_statuses_map_to_charge_statuses() {
    let cases = [
        (
            r#"{"id":"pi_1","status":"succeeded","amount_received":1999}"#,
            ChargeStatus::Succeeded,
            1999,
        ),
        (
            r#"{"id":"pi_1","status":"requires_capture"}"#,
            ChargeStatus::Authorized,
            0,
        ),
        (
            r#"{"id":"pi_1","status":"processing"}"#,
            ChargeStatus::Processing,
            0,
        ),
        (
            r#"{"id":"pi_1","status":"requires_action"}"#,
            ChargeStatus::RequiresAction,
            0,
        ),
        (
            r#"{"id":"pi_1","status":"canceled"}"#,
            ChargeStatus::Canceled,
            0,
        ),
    ];
    for (body, status, captured) in cases {
        let o = classify(200, body.as_bytes(), None).unwrap();
        assert_eq!(
            (o.status, o.captured, o.gateway_ref.as_str()),
            (status, captured, "pi_1"),
            "{body}"
        );
    }
}

#[test]
fn a_card_error_is_a_failed_payment_with_the_decline_code() {
    let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","payment_intent":{"id":"pi_9","status":"requires_payment_method"}}}"#;
    let o = classify(402, body, None).unwrap();
    assert_eq!(o.status, ChargeStatus::Failed);
    assert_eq!(o.gateway_ref, "pi_9");
    assert_eq!(o.failure.unwrap().code, "insufficient_funds");
    // localstripe's shape: no decline_code, no payment_intent.
    let o = classify(402, br#"{"error":{"code":"card_declined","message":"Your card was declined.","type":"invalid_request_error"}}"#, None).unwrap();
    assert_eq!(o.failure.unwrap().code, "card_declined");
}

/// Stripe's published PaymentIntent (tests/fixtures/stripe) with `changes` laid over it.
fn payment_intent(changes: serde_json::Value) -> serde_json::Value {
    let mut pi: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../../tests/fixtures/stripe/payment_intent.json"
    ))
    .unwrap();
    for (k, v) in changes.as_object().unwrap() {
        pi[k] = v.clone();
    }
    pi
}

fn stripe_action(
    o: &crate::domain::PaymentOutcome,
) -> (
    String,
    Option<String>,
    Option<String>,
    Option<serde_json::Value>,
    Option<String>,
) {
    match o.action.clone() {
        Some(ActionDetails::Stripe {
            payment_intent,
            client_secret,
            payment_method,
            next_action,
            reason,
        }) => (
            payment_intent,
            client_secret,
            payment_method,
            next_action,
            reason,
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_off_session_authentication_required_decline_requires_action_with_the_client_secret() {
    // The 402 Stripe answers an off-session confirmation the issuer wants authenticated: the
    // PaymentIntent back in requires_payment_method, the declined payment method in the error.
    let declined = serde_json::json!({"code": "authentication_required", "decline_code": "authentication_required",
        "type": "card_error", "message": "Your card was declined. This transaction requires authentication.",
        "payment_method": {"id": "pm_1Q0PsIJvEtkwdCNYMSaVuRz6", "object": "payment_method"}});
    let pi = payment_intent(
        serde_json::json!({"id": "pi_3", "status": "requires_payment_method",
        "client_secret": "pi_3_secret_abc", "payment_method": null, "next_action": null,
        "last_payment_error": declined}),
    );
    let mut error = declined.clone();
    error["payment_intent"] = pi;
    let body = serde_json::json!({ "error": error }).to_string();
    let o = classify(402, body.as_bytes(), None).unwrap();
    assert_eq!(
        (
            o.status,
            o.gateway_ref.as_str(),
            o.captured,
            o.failure.as_ref()
        ),
        (ChargeStatus::RequiresAction, "pi_3", 0, None)
    );
    assert_eq!(
        stripe_action(&o),
        (
            "pi_3".into(),
            Some("pi_3_secret_abc".into()),
            Some("pm_1Q0PsIJvEtkwdCNYMSaVuRz6".into()),
            None,
            Some("authentication_required".into())
        )
    );

    // Without its PaymentIntent there is nothing the customer could complete: failed.
    let body = serde_json::json!({ "error": declined }).to_string();
    let o = classify(402, body.as_bytes(), None).unwrap();
    assert_eq!(o.status, ChargeStatus::Failed);
    assert_eq!(o.failure.unwrap().code, "authentication_required");
}

#[test]
fn a_payment_intent_waiting_for_the_customer_carries_its_next_action() {
    let next = serde_json::json!({"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}});
    let pi = payment_intent(
        serde_json::json!({"id": "pi_4", "status": "requires_action",
        "client_secret": "pi_4_secret_x", "payment_method": "pm_9", "next_action": next}),
    );
    let o = classify(200, pi.to_string().as_bytes(), None).unwrap();
    assert_eq!(o.status, ChargeStatus::RequiresAction);
    assert_eq!(
        stripe_action(&o),
        (
            "pi_4".into(),
            Some("pi_4_secret_x".into()),
            Some("pm_9".into()),
            Some(next),
            None
        )
    );
}

#[test]
fn an_authentication_that_failed_on_session_is_a_failure_not_an_action() {
    // Stripe: payment_intent_authentication_failure, the PaymentIntent asks for a payment method.
    let pi = payment_intent(
        serde_json::json!({"id": "pi_5", "status": "requires_payment_method",
        "client_secret": "pi_5_secret_x", "last_payment_error": {"type": "card_error",
        "code": "payment_intent_authentication_failure",
        "message": "The provided PaymentMethod has failed authentication."}}),
    );
    let o = classify(200, pi.to_string().as_bytes(), None).unwrap();
    assert_eq!(
        (o.status, o.failure.unwrap().code, o.action),
        (
            ChargeStatus::Failed,
            "payment_intent_authentication_failure".into(),
            None
        )
    );
    // …while the same status after an off-session authentication_required still waits.
    let pi = payment_intent(
        serde_json::json!({"id": "pi_6", "status": "requires_payment_method",
        "client_secret": "pi_6_secret_x", "last_payment_error": {"type": "card_error",
        "code": "authentication_required", "payment_method": {"id": "pm_7"}}}),
    );
    let o = classify(200, pi.to_string().as_bytes(), None).unwrap();
    assert_eq!(o.status, ChargeStatus::RequiresAction);
    assert_eq!(stripe_action(&o).2.as_deref(), Some("pm_7"));
}

#[test]
fn throttling_server_errors_and_unreadable_successes_are_unknown_outcomes() {
    match classify(429, b"{}", Some(Duration::from_secs(2))) {
        Err(GatewayError::Unknown { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify(503, b"oops", None),
        Err(GatewayError::Unknown { .. })
    ));
    assert!(matches!(
        classify(200, b"<html>", None),
        Err(GatewayError::Unknown { .. })
    ));
}

#[test]
fn other_client_errors_are_refusals() {
    let body = br#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#;
    match classify(400, body, None) {
        Err(GatewayError::Refused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (400, "idempotency_error"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refund_answers_map_to_refund_statuses() {
    let ok = classify_refund(200, br#"{"id":"re_1","status":"succeeded"}"#, None).unwrap();
    assert_eq!(
        (ok.gateway_ref.as_str(), ok.status),
        ("re_1", RefundStatus::Succeeded)
    );
    let pending = classify_refund(200, br#"{"id":"re_2","status":"pending"}"#, None).unwrap();
    assert_eq!(pending.status, RefundStatus::Pending);
    let failed = classify_refund(
        200,
        br#"{"id":"re_3","status":"failed","failure_reason":"expired_or_canceled_card"}"#,
        None,
    )
    .unwrap();
    assert_eq!(failed.failure.unwrap().code, "expired_or_canceled_card");
    assert!(matches!(
        classify_refund(503, b"", None),
        Err(GatewayError::Unknown { .. })
    ));
    assert!(matches!(
        classify_refund(
            400,
            br#"{"error":{"code":"charge_already_refunded","message":"x"}}"#,
            None
        ),
        Err(GatewayError::Refused { .. })
    ));
}

#[test]
fn the_api_key_is_not_in_debug_output() {
    let g = StripeGateway::new(
        crate::adapters::gateways::http_client(std::time::Duration::from_secs(1)),
        "http://127.0.0.1:1",
        SecretString::new("sk_test_secret"),
    );
    assert!(!format!("{g:?}").contains("sk_test_secret"));
}

/// The values a form gives metadata key `key` (a key named twice would leave the choice to Stripe).
fn metadata_values<'a>(form: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    let name = format!("metadata[{key}]");
    (form.iter().filter(|(k, _)| *k == name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn billings_metadata_never_overrides_paybridges_own_keys() {
    use std::collections::BTreeMap;

    use super::wire::{payment_form, refund_form};
    use crate::domain::{Money, Refund, RefundId};

    let billing = BTreeMap::from([
        ("invoice_id".to_owned(), "inv_other".to_owned()),
        ("paybridge_charge_id".to_owned(), "ch_other".to_owned()),
        ("paybridge_refund_id".to_owned(), "rf_other".to_owned()),
        ("plan".to_owned(), "pro".to_owned()),
    ]);
    let mut charge = crate::domain::charge::example(0);
    charge.metadata = billing.clone();
    let form = payment_form(&charge).unwrap();
    assert_eq!(
        metadata_values(&form, "paybridge_charge_id"),
        [charge.id.as_str()]
    );
    assert_eq!(metadata_values(&form, "invoice_id"), ["inv_1"]);
    assert_eq!(
        metadata_values(&form, "paybridge_refund_id"),
        Vec::<&str>::new()
    );
    assert_eq!(metadata_values(&form, "plan"), ["pro"]);

    let amount = Money::parse(500, "eur").unwrap();
    let mut refund = Refund::pending(RefundId::generate(), &charge.id, amount, charge.gateway, 0);
    refund.metadata = billing;
    let form = refund_form(&charge, &refund, "pi_1").unwrap();
    assert_eq!(
        metadata_values(&form, "paybridge_refund_id"),
        [refund.id.as_str()]
    );
    assert_eq!(
        metadata_values(&form, "paybridge_charge_id"),
        [charge.id.as_str()]
    );
    assert_eq!(metadata_values(&form, "invoice_id"), Vec::<&str>::new());
    assert_eq!(metadata_values(&form, "plan"), ["pro"]);
}

/// 2026-09-30.endive answers 400 `payment_method_types_no_longer_supported` to a PaymentIntent
/// create, update or confirm that names `payment_method_types`; paybridge's forms never do.
#[test]
fn no_form_names_payment_method_types_which_endive_refuses() {
    use super::wire::{payment_form, refund_form};
    use crate::domain::{Money, Refund, RefundId};

    let charge = crate::domain::charge::example(0);
    let amount = Money::parse(500, "eur").unwrap();
    let refund = Refund::pending(RefundId::generate(), &charge.id, amount, charge.gateway, 0);
    for form in [
        payment_form(&charge).unwrap(),
        refund_form(&charge, &refund, "pi_1").unwrap(),
    ] {
        assert!(
            form.iter()
                .all(|(k, _)| !k.starts_with("payment_method_types")),
            "{form:?}"
        );
    }
}

#[test]
fn amounts_are_sent_and_read_in_stripes_minor_units() {
    use super::wire::{payment_form, refund_form, stripe_amount};
    use crate::domain::{Money, Refund, RefundId};

    let form_amount = |form: &[(String, String)]| {
        form.iter()
            .find(|(k, _)| k == "amount")
            .map(|(_, v)| v.clone())
    };
    let mut charge = crate::domain::charge::example(0);
    charge.amount = Money::parse(5000, "isk").unwrap();
    let form = payment_form(&charge).unwrap();
    assert_eq!(
        form_amount(&form).as_deref(),
        Some("500000"),
        "5000 ISK is 500000 at Stripe"
    );
    let refund = Refund::pending(
        RefundId::generate(),
        &charge.id,
        Money::parse(1200, "isk").unwrap(),
        charge.gateway,
        0,
    );
    let form = refund_form(&charge, &refund, "pi_1").unwrap();
    assert_eq!(form_amount(&form).as_deref(), Some("120000"));
    assert_eq!(
        stripe_amount(Money::parse(300, "ugx").unwrap()).unwrap(),
        "30000"
    );

    charge.amount = Money::parse(5055, "kwd").unwrap();
    assert!(matches!(
        payment_form(&charge),
        Err(GatewayError::Refused { status: 0, ref code, .. }) if code == "amount_not_representable"
    ));

    // What Stripe answers is read back in ISO minor units of the intent's own currency.
    let body = br#"{"id":"pi_1","status":"succeeded","amount":500000,"amount_received":500000,"currency":"isk"}"#;
    assert_eq!(classify(200, body, None).unwrap().captured, 5000);
    let body = br#"{"id":"pi_1","status":"succeeded","amount":5120,"currency":"kwd"}"#;
    assert_eq!(classify(200, body, None).unwrap().captured, 5120);
}
