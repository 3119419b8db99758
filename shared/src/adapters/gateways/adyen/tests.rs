//! The Adyen adapter's request bodies, answer mapping and error classification, without a
//! network.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use super::client::error_from_response;
use super::mapping::{modification_outcome, payment_outcome};
use super::wire::{ModificationAnswer, PaymentAnswer, adyen_minor, payment_body};
use super::*;
use crate::domain::{ActionDetails, ChargeId, ChargeStatus, Failure, Gateway};

fn charge(capture: bool) -> Charge {
    Charge {
        customer: Some("cus_1".into()),
        capture,
        metadata: BTreeMap::from([("order".into(), "42".into())]),
        ..Charge::pending(
            ChargeId::generate(),
            "inv_1",
            Money::parse(1999, "eur").unwrap(),
            Gateway::Adyen,
            "8415698462516992",
            0,
        )
    }
}

fn answer(json: &str) -> PaymentAnswer {
    serde_json::from_str(json).unwrap()
}

fn outcome(capture: bool, json: &str) -> Result<PaymentOutcome, GatewayError> {
    payment_outcome(&charge(capture), answer(json))
}

#[test]
fn authorised_is_succeeded_when_captured_at_once_and_authorized_otherwise() {
    let json = r#"{"resultCode":"Authorised","pspReference":"PSP1"}"#;
    let now = outcome(true, json).unwrap();
    assert_eq!(
        (now.gateway_ref.as_str(), now.status, now.captured),
        ("PSP1", ChargeStatus::Succeeded, 1999)
    );
    let later = outcome(false, json).unwrap();
    assert_eq!(
        (later.status, later.captured),
        (ChargeStatus::Authorized, 0)
    );
}

#[test]
fn refused_keeps_adyens_reason_and_code() {
    let o = outcome(
        true,
        r#"{"resultCode":"Refused","pspReference":"PSP1","refusalReason":"Not enough balance","refusalReasonCode":"12"}"#,
    )
    .unwrap();
    assert_eq!(o.status, ChargeStatus::Failed);
    assert_eq!(
        o.failure,
        Some(Failure {
            code: "12".into(),
            message: "Not enough balance".into(),
            advice: Some(crate::domain::Advice::RetryLater)
        })
    );
    let bare = outcome(true, r#"{"resultCode":"Refused","pspReference":"PSP1"}"#).unwrap();
    let bare = bare.failure.unwrap();
    assert_eq!(
        (bare.code.as_str(), bare.advice()),
        ("refused", crate::domain::Advice::RetryLater),
        "a refusal without a reason is Adyen's generic `Refused`"
    );
    let numeric = outcome(
        true,
        r#"{"resultCode":"Refused","pspReference":"PSP1","refusalReasonCode":2}"#,
    )
    .unwrap();
    assert_eq!(numeric.failure.unwrap().code, "2");
}

#[test]
fn every_known_result_code_maps_to_a_status() {
    for (code, status) in [
        ("Error", ChargeStatus::Failed),
        ("Cancelled", ChargeStatus::Canceled),
        ("Pending", ChargeStatus::Processing),
        ("Received", ChargeStatus::Processing),
        ("RedirectShopper", ChargeStatus::RequiresAction),
        ("IdentifyShopper", ChargeStatus::RequiresAction),
        ("ChallengeShopper", ChargeStatus::RequiresAction),
        ("PresentToShopper", ChargeStatus::RequiresAction),
    ] {
        let o = outcome(
            true,
            &format!(r#"{{"resultCode":"{code}","pspReference":"PSP1"}}"#),
        )
        .unwrap();
        assert_eq!((o.status, o.captured), (status, 0), "{code}");
    }
    let error = outcome(true, r#"{"resultCode":"Error","pspReference":"PSP1"}"#).unwrap();
    assert_eq!(error.failure.unwrap().code, "adyen_error");
}

#[test]
fn a_shopper_step_requires_action_with_adyens_action_object_even_without_a_psp_reference() {
    // Adyen's own mocks (tests/fixtures/adyen/README.md says which).
    for (json, code, psp, kind) in [
        (
            include_str!("../../../../../tests/fixtures/adyen/payments-redirect-shopper.json"),
            "RedirectShopper",
            "993617895204576J",
            "redirect",
        ),
        (
            include_str!("../../../../../tests/fixtures/adyen/payments-3ds2-identify-shopper.json"),
            "IdentifyShopper",
            "",
            "threeDS2",
        ),
        (
            include_str!(
                "../../../../../tests/fixtures/adyen/payments-3ds2-challenge-shopper.json"
            ),
            "ChallengeShopper",
            "",
            "redirect",
        ),
    ] {
        let o = outcome(true, json).unwrap();
        assert_eq!(
            (o.status, o.gateway_ref.as_str(), o.captured),
            (ChargeStatus::RequiresAction, psp, 0),
            "{code}"
        );
        let published: serde_json::Value = serde_json::from_str(json).unwrap();
        match o.action {
            Some(ActionDetails::Adyen {
                result_code,
                action,
            }) => {
                assert_eq!(result_code, code);
                assert_eq!(action, published["action"], "handed on unchanged");
                assert_eq!(action["type"], kind);
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

#[test]
fn an_unknown_result_code_or_a_missing_reference_is_an_unknown_outcome() {
    for json in [
        r#"{"resultCode":"PartiallyAuthorised","pspReference":"PSP1"}"#,
        r#"{"pspReference":"PSP1"}"#,
        r#"{"resultCode":"Authorised"}"#,
        r#"{"resultCode":"Authorised","pspReference":""}"#,
    ] {
        assert!(
            matches!(outcome(true, json), Err(GatewayError::Unknown { .. })),
            "{json}"
        );
    }
}

#[test]
fn a_validation_error_is_refused_with_adyens_code() {
    let body = br#"{"status":422,"errorCode":"14_030","message":"Return URL is missing.","errorType":"validation","pspReference":"X"}"#;
    match error_from_response(StatusCode::UNPROCESSABLE_ENTITY, false, None, body) {
        GatewayError::Refused {
            status,
            code,
            message,
        } => assert_eq!(
            (status, code.as_str(), message.as_str()),
            (422, "14_030", "Return URL is missing.")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_non_json_error_body_is_still_classified() {
    match error_from_response(StatusCode::FORBIDDEN, false, None, b"<html>denied</html>") {
        GatewayError::Refused {
            status,
            code,
            message,
        } => {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (403, "http_403", "<html>denied</html>")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        error_from_response(StatusCode::BAD_GATEWAY, false, None, b""),
        GatewayError::Unknown { .. }
    ));
}

#[test]
fn throttling_server_errors_and_transient_errors_are_unknown_outcomes() {
    let wait = Some(Duration::from_secs(3));
    match error_from_response(StatusCode::TOO_MANY_REQUESTS, false, wait, b"{}") {
        GatewayError::Unknown { retry_after, .. } => assert_eq!(retry_after, wait),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        error_from_response(StatusCode::INTERNAL_SERVER_ERROR, false, None, br#"{"status":500,"errorCode":"905","message":"Payment details are not supported","errorType":"configuration"}"#),
        GatewayError::Unknown { .. }
    ));
    assert!(matches!(
        error_from_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            true,
            None,
            br#"{"status":422,"errorCode":"000"}"#
        ),
        GatewayError::Unknown { .. }
    ));
    for status in [StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY] {
        assert!(matches!(
            error_from_response(status, false, None, br#"{"status":409,"errorCode":"704","message":"request already processed or in progress"}"#),
            GatewayError::Unknown { .. }
        ));
    }
}

#[test]
fn the_payment_body_has_adyens_stored_card_shape() {
    let mut c = charge(false);
    c.metadata.insert("invoice_id".into(), "spoofed".into());
    let json = serde_json::to_value(payment_body(&c, "cus_1", "Merchant").unwrap()).unwrap();
    assert_eq!(
        json["amount"],
        serde_json::json!({"value": 1999, "currency": "EUR"})
    );
    assert_eq!(json["reference"], c.id.as_str());
    assert_eq!(json["merchantAccount"], "Merchant");
    assert_eq!(
        json["paymentMethod"],
        serde_json::json!({"type": "scheme", "storedPaymentMethodId": "8415698462516992"})
    );
    assert_eq!(json["shopperReference"], "cus_1");
    assert_eq!(json["shopperInteraction"], "ContAuth");
    assert_eq!(json["recurringProcessingModel"], "UnscheduledCardOnFile");
    assert_eq!(json["returnUrl"], RETURN_URL);
    assert_eq!(
        json["metadata"],
        serde_json::json!({"invoice_id": "inv_1", "order": "42"})
    );
    assert_eq!(
        json["additionalData"],
        serde_json::json!({"manualCapture": "true"})
    );
    let at_once = serde_json::to_value(payment_body(&charge(true), "cus_1", "M").unwrap()).unwrap();
    assert!(at_once.get("additionalData").is_none());
}

#[test]
fn amounts_use_adyens_minor_units() {
    let m = |minor, cur| adyen_minor(Money::parse(minor, cur).unwrap());
    assert_eq!(m(1999, "eur").unwrap(), 1999);
    assert_eq!(m(500, "jpy").unwrap(), 500);
    assert_eq!(m(1250, "kwd").unwrap(), 1250);
    assert_eq!(m(5000, "clp").unwrap(), 500_000);
    assert_eq!(m(2790, "isk").unwrap(), 279_000);
    assert_eq!(m(1_500_000, "idr").unwrap(), 15_000);
    assert!(matches!(
        m(1_500_050, "idr"),
        Err(GatewayError::Refused {
            status: NOT_SENT,
            ..
        })
    ));
}

#[test]
fn a_received_modification_leaves_the_charge_as_it_was() {
    let mut c = charge(false);
    c.status = ChargeStatus::Authorized;
    c.gateway_ref = Some("PSP1".into());
    let o = modification_outcome(
        &c,
        "PSP1",
        "capture",
        ModificationAnswer {
            status: Some("received".into()),
            psp_reference: Some("MOD1".into()),
        },
    )
    .unwrap();
    assert_eq!(
        (o.gateway_ref.as_str(), o.status, o.captured),
        ("PSP1", ChargeStatus::Authorized, 0)
    );
    assert!(matches!(
        modification_outcome(
            &c,
            "PSP1",
            "capture",
            ModificationAnswer {
                status: None,
                psp_reference: None
            }
        ),
        Err(GatewayError::Unknown { .. })
    ));
}

#[test]
fn only_alphanumeric_psp_references_reach_a_url() {
    let mut c = charge(false);
    assert!(matches!(
        payment_reference(&c),
        Err(GatewayError::Refused { ref code, .. }) if code == "no_gateway_reference"
    ));
    c.gateway_ref = Some("../../payments".into());
    assert!(matches!(
        payment_reference(&c),
        Err(GatewayError::Refused { ref code, .. }) if code == "invalid_gateway_reference"
    ));
    c.gateway_ref = Some("QFQTPCQ8HXSKGK82".into());
    assert_eq!(payment_reference(&c).unwrap(), "QFQTPCQ8HXSKGK82");
}

#[test]
fn billings_metadata_never_overrides_paybridges_own_keys() {
    let mut c = charge(true);
    c.metadata = BTreeMap::from([
        ("invoice_id".into(), "inv_other".into()),
        ("paybridge_charge_id".into(), "ch_other".into()),
        ("plan".into(), "pro".into()),
    ]);
    let json = serde_json::to_value(payment_body(&c, "cus_1", "M").unwrap()).unwrap();
    assert_eq!(
        json["metadata"],
        serde_json::json!({"invoice_id": "inv_1", "plan": "pro"})
    );
    assert_eq!(json["reference"], c.id.as_str());
}
