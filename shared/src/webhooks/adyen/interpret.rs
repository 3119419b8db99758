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
