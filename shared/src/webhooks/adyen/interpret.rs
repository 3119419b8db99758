//! What a verified Adyen notification item means for paybridge's charges and refunds:
//! AUTHORISATION, CAPTURE and CANCELLATION update a charge, REFUND and its failures a refund, read
//! into [`Interpretation`]s for the apply-event use case. Pure; amounts come back to ISO 4217
//! minor units through [`iso_minor`].

use super::amount::iso_minor;
use crate::domain::{ChargeId, ChargeStatus, Failure, Interpretation, RefundId, RefundStatus};
use crate::webhooks::{apply_payment, apply_refund};

/// What a verified Adyen notification item (its stored, masked JSON) says about paybridge's
/// charges and refunds. Pure: the worker resolves and applies the result.
///
/// paybridge sends its charge id as the payment's `reference` and its refund id as the refund's
/// `reference`, so `merchantReference` names our object; `pspReference` is Adyen's id of the
/// payment (AUTHORISATION) or of the modification, whose payment is `originalReference`.
pub fn interpret(event_code: &str, payload: &str) -> Interpretation {
    let Ok(item) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let text = |key: &str| item.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let success = text("success").as_deref() == Some("true");
    let psp = text("pspReference");
    let original = text("originalReference");
    let merchant_reference = text("merchantReference");
    let reason = text("reason").filter(|r| !r.is_empty());
    let currency = item
        .pointer("/amount/currency")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let value = item
        .pointer("/amount/value")
        .and_then(|v| v.as_i64())
        .map(|v| iso_minor(v, &currency))
        .unwrap_or(0);
    let failure = |code: &str| {
        Some(Failure {
            code: code.to_owned(),
            message: reason.clone().unwrap_or_else(|| code.to_owned()),
        })
    };
    let charge_id = merchant_reference
        .as_deref()
        .and_then(|r| ChargeId::parse(r).ok());
    let refund_id = merchant_reference
        .as_deref()
        .and_then(|r| RefundId::parse(r).ok());
    let payment = |gateway_ref: Option<String>,
                   status: ChargeStatus,
                   captured: i64,
                   failure: Option<Failure>,
                   captured_if_automatic: bool| {
        apply_payment(
            gateway_ref,
            charge_id.clone(),
            status,
            captured,
            failure,
            captured_if_automatic,
        )
    };
    let refund = |status: RefundStatus, failure: Option<Failure>| {
        apply_refund(psp.clone(), refund_id.clone(), status, failure)
    };
    match (event_code, success) {
        ("AUTHORISATION", true) => payment(psp.clone(), ChargeStatus::Authorized, 0, None, true),
        ("AUTHORISATION", false) => payment(
            psp.clone(),
            ChargeStatus::Failed,
            0,
            failure("refused"),
            false,
        ),
        ("CAPTURE", true) => payment(
            original.clone(),
            ChargeStatus::Succeeded,
            value,
            None,
            false,
        ),
        ("CANCELLATION", true) => payment(original.clone(), ChargeStatus::Canceled, 0, None, false),
        ("REFUND", true) => refund(RefundStatus::Succeeded, None),
        ("REFUND", false) | ("REFUND_FAILED", _) | ("REFUNDED_REVERSED", _) => {
            refund(RefundStatus::Failed, failure("refund_failed"))
        }
        ("CAPTURE_FAILED", _) | ("CAPTURE", false) => Interpretation::Ignore(
            "the capture failed at Adyen; the charge stays authorized".into(),
        ),
        ("CANCELLATION", false) => Interpretation::Ignore(
            "the cancellation failed at Adyen; the charge is unchanged".into(),
        ),
        (code, _) if code.contains("CHARGEBACK") => {
            Interpretation::Ignore("disputes are recorded but not modelled yet".into())
        }
        (code, _) => Interpretation::Ignore(format!("{code} does not change charges or refunds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GatewayUpdate, PaymentUpdate, RefundUpdate};

    /// The one update an interpretation applies; anything else fails the test.
    fn only_update(i: Interpretation) -> GatewayUpdate {
        match i {
            Interpretation::Apply(mut u) if u.len() == 1 => u.remove(0),
            other => panic!("expected one update, got {other:?}"),
        }
    }

    fn payment(event_code: &str, item: serde_json::Value) -> PaymentUpdate {
        match only_update(interpret(event_code, &item.to_string())) {
            GatewayUpdate::Payment(p) => p,
            other => panic!("expected a payment update, got {other:?}"),
        }
    }

    fn refund(event_code: &str, item: serde_json::Value) -> RefundUpdate {
        match only_update(interpret(event_code, &item.to_string())) {
            GatewayUpdate::Refund(r) => r,
            other => panic!("expected a refund update, got {other:?}"),
        }
    }

    #[test]
    fn an_authorisation_names_the_payment_by_psp_reference_and_the_charge_by_merchant_reference() {
        let charge = ChargeId::generate();
        let p = payment(
            "AUTHORISATION",
            serde_json::json!({"eventCode": "AUTHORISATION", "success": "true",
                "pspReference": "PSP1", "merchantReference": charge.to_string(),
                "amount": {"value": 1999, "currency": "EUR"}}),
        );
        assert_eq!(
            (p.gateway_ref.as_deref(), p.charge_id.as_ref()),
            (Some("PSP1"), Some(&charge))
        );
        assert_eq!(
            (
                p.outcome.status,
                p.outcome.captured,
                p.captured_if_automatic
            ),
            (ChargeStatus::Authorized, 0, true)
        );
    }

    #[test]
    fn a_capture_names_the_original_payment_and_reports_iso_minor_units() {
        let p = payment(
            "CAPTURE",
            serde_json::json!({"eventCode": "CAPTURE", "success": "true",
                "pspReference": "MOD1", "originalReference": "PSP1",
                "amount": {"value": 500_000, "currency": "CLP"}}),
        );
        assert_eq!(
            (
                p.gateway_ref.as_deref(),
                p.outcome.status,
                p.outcome.captured
            ),
            (Some("PSP1"), ChargeStatus::Succeeded, 5000)
        );
    }

    #[test]
    fn a_failed_refund_keeps_adyens_reason_and_disputes_are_ignored() {
        let id = RefundId::generate();
        let r = refund(
            "REFUND",
            serde_json::json!({"eventCode": "REFUND", "success": "false", "pspReference": "REF1",
                "merchantReference": id.to_string(), "reason": "Insufficient balance"}),
        );
        assert_eq!(
            (
                r.gateway_ref.as_deref(),
                r.refund_id.as_ref(),
                r.outcome.status
            ),
            (Some("REF1"), Some(&id), RefundStatus::Failed)
        );
        assert_eq!(
            r.outcome.failure,
            Some(Failure {
                code: "refund_failed".into(),
                message: "Insufficient balance".into()
            })
        );
        assert!(
            interpret(
                "CHARGEBACK",
                r#"{"eventCode":"CHARGEBACK","success":"true"}"#
            )
            .is_ignored()
        );
        assert!(interpret("AUTHORISATION", "not json").is_ignored());
    }
}
