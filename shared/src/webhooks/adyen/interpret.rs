//! What a verified Adyen notification item means for paybridge's charges, refunds and disputes:
//! AUTHORISATION, CAPTURE (and CAPTURE_FAILED), CANCELLATION and CANCEL_OR_REFUND update a charge,
//! REFUND and its failures a refund, the dispute codes a dispute, read into [`Interpretation`]s for
//! the apply-event use case. Pure; amounts come back to ISO 4217 minor units through
//! [`iso_minor`], and `eventDate` orders the flips only Adyen makes (a capture or refund that
//! failed after succeeding, and succeeded again when Adyen retried it by itself).

use super::amount::iso_minor;
use crate::domain::Advice;
use crate::domain::{
    ChargeId, ChargeStatus, DisputeObservation, DisputeStatus, DisputeUpdate, Failure,
    GatewayUpdate, Interpretation, RefundId, RefundStatus, Reported,
};
use crate::webhooks::{payment_update, refund_update};

/// Unix milliseconds of an ISO 8601 time with offset (`2024-01-01T12:00:00.121+01:00`): Adyen's
/// `eventDate` may carry milliseconds, and two events of one second must still be ordered.
fn unix_ms(text: &str) -> Option<i64> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

/// Unix seconds of the same.
fn unix_secs(text: &str) -> Option<i64> {
    unix_ms(text).map(|ms| ms.div_euclid(1000))
}

/// Adyen's dispute codes as stages of one chargeback chain, with the status each implies and the
/// cumulative funds it moved (in multiples of the disputed amount: withdrawn, reinstated), per
/// Adyen's "Dispute webhooks" page. `additionalData.disputeStatus`, when sent, refines the status.
fn dispute_stage(code: &str) -> Option<(u8, DisputeStatus, i64, i64)> {
    Some(match code {
        "REQUEST_FOR_INFORMATION" => (0, DisputeStatus::WarningNeedsResponse, 0, 0),
        "NOTIFICATION_OF_CHARGEBACK" => (1, DisputeStatus::NeedsResponse, 0, 0),
        "CHARGEBACK" | "DISPUTE_OPENED_WITH_CHARGEBACK" => (2, DisputeStatus::NeedsResponse, 1, 0),
        "DISPUTE_DEFENSE_PERIOD_ENDED" => (2, DisputeStatus::NeedsResponse, 1, 0),
        "CHARGEBACK_REVERSED" => (3, DisputeStatus::Won, 1, 1),
        "SECOND_CHARGEBACK" => (4, DisputeStatus::Lost, 2, 1),
        // Pre-arbitration follows a reversal (won) or a second chargeback; funds only move
        // again when it is lost.
        "PREARBITRATION_WON" => (5, DisputeStatus::Won, 1, 1),
        "PREARBITRATION_LOST" => (5, DisputeStatus::Lost, 2, 1),
        _ => return None,
    })
}

/// `additionalData.disputeStatus` as a status, if it says more than the code.
fn dispute_status(text: &str) -> Option<DisputeStatus> {
    Some(match text {
        "Undefended" => DisputeStatus::NeedsResponse,
        "Pending" | "Responded" => DisputeStatus::UnderReview,
        "Won" => DisputeStatus::Won,
        "Lost" | "Accepted" | "Expired" => DisputeStatus::Lost,
        _ => return None,
    })
}

/// What a verified Adyen notification item (its stored, masked JSON) says about paybridge's
/// charges and refunds. Pure: the worker resolves and applies the result.
///
/// paybridge sends its charge id as the payment's `reference` and its refund id as the refund's
/// `reference`, so `merchantReference` names our object; `pspReference` is Adyen's id of the
/// payment (AUTHORISATION), of the modification, or of the dispute, whose payment is
/// `originalReference`. A refund whose `merchantReference` is not one of ours was made outside
/// paybridge (Customer Area) and is adopted by its `originalReference`.
pub fn interpret(event_code: &str, payload: &str) -> Interpretation {
    let Ok(item) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let text = |key: &str| item.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let extra = |key: &str| {
        item.pointer(&format!("/additionalData/{key}"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let success = text("success").as_deref() == Some("true");
    let psp = text("pspReference");
    let original = text("originalReference").filter(|r| !r.is_empty());
    let merchant_reference = text("merchantReference");
    let reason = text("reason").filter(|r| !r.is_empty());
    let observed_at = text("eventDate").as_deref().and_then(unix_ms);
    let currency = item
        .pointer("/amount/currency")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let value = item
        .pointer("/amount/value")
        .and_then(|v| v.as_i64())
        .map(|v| iso_minor(v, &currency));
    let reported = value.map(|amount| Reported {
        amount,
        currency: currency.to_ascii_lowercase(),
    });
    let value = value.unwrap_or(0);
    let failure = |code: &str| {
        Some(Failure {
            code: code.to_owned(),
            message: reason.clone().unwrap_or_else(|| code.to_owned()),
            advice: None,
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
        let mut u = payment_update(
            gateway_ref,
            charge_id.clone(),
            status,
            captured,
            failure,
            captured_if_automatic,
        );
        u.observed_at = observed_at;
        u.reported = reported.clone();
        GatewayUpdate::Payment(u)
    };
    let refund = |status: RefundStatus, failure: Option<Failure>| {
        let mut u = refund_update(psp.clone(), refund_id.clone(), status, failure);
        u.payment_ref = original.clone();
        u.observed_at = observed_at;
        u.reported = reported.clone();
        GatewayUpdate::Refund(u)
    };
    let one = |u: GatewayUpdate| Interpretation::Apply(vec![u]);
    if let Some((stage, implied, withdrawn, reinstated)) = dispute_stage(event_code) {
        let Some(payment_ref) = original.clone() else {
            return Interpretation::Ignore(format!("{event_code} without originalReference"));
        };
        let status = extra("disputeStatus")
            .as_deref()
            .and_then(dispute_status)
            // `disputeStatus` is not signed: it may refine a stage, or tell a chargeback that
            // cannot be defended (lost), but never decide one for the merchant.
            .filter(|s| {
                implied.is_closed() == s.is_closed() || stage == 2 && *s == DisputeStatus::Lost
            })
            .unwrap_or(implied);
        return one(GatewayUpdate::Dispute(DisputeUpdate {
            payment_ref: Some(payment_ref.clone()),
            charge_id: charge_id.clone(),
            observation: DisputeObservation {
                gateway_ref: psp.unwrap_or(payment_ref),
                status,
                stage,
                amount: value,
                currency: currency.to_ascii_lowercase(),
                reason: extra("chargebackReasonCode").or(reason.clone()),
                evidence_due_by: extra("defensePeriodEndsAt").as_deref().and_then(unix_secs),
                funds_withdrawn: withdrawn.saturating_mul(value),
                funds_reinstated: reinstated.saturating_mul(value),
            },
        }));
    }
    match (event_code, success) {
        ("AUTHORISATION", true) => one(payment(
            psp.clone(),
            ChargeStatus::Authorized,
            0,
            None,
            true,
        )),
        ("AUTHORISATION", false) => one(payment(
            psp.clone(),
            ChargeStatus::Failed,
            0,
            failure("refused").map(|f| Failure {
                // The notification carries the refusal reason's text only.
                advice: Some(Advice::adyen(reason.as_deref().unwrap_or("Refused"))),
                ..f
            }),
            false,
        )),
        ("CAPTURE", true) => one(payment(
            original.clone(),
            ChargeStatus::Succeeded,
            value,
            None,
            false,
        )),
        // After CAPTURE: nothing was taken after all (Adyen's "CAPTURE_FAILED and REFUND_FAILED
        // reasons"); a technical failure is re-captured by Adyen, which sends CAPTURE again.
        ("CAPTURE_FAILED", _) | ("CAPTURE", false) => one(payment(
            original.clone(),
            ChargeStatus::CaptureFailed,
            0,
            failure("capture_failed"),
            false,
        )),
        ("CANCELLATION", true) => one(payment(
            original.clone(),
            ChargeStatus::Canceled,
            0,
            None,
            false,
        )),
        // Adyen cancels an uncaptured payment or refunds a captured one: whichever applies to
        // the charge is the one its state machine accepts (a captured charge cannot be canceled,
        // an uncaptured one has nothing to refund).
        ("CANCEL_OR_REFUND", true) => Interpretation::Apply(vec![
            payment(original.clone(), ChargeStatus::Canceled, 0, None, false),
            refund(RefundStatus::Succeeded, None),
        ]),
        ("REFUND", true) => one(refund(RefundStatus::Succeeded, None)),
        ("REFUND", false) | ("REFUND_FAILED", _) | ("REFUNDED_REVERSED", _) => {
            one(refund(RefundStatus::Failed, failure("refund_failed")))
        }
        ("CANCELLATION", false) | ("CANCEL_OR_REFUND", false) => Interpretation::Ignore(
            "the cancellation failed at Adyen; the charge is unchanged".into(),
        ),
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
    fn an_unsigned_dispute_status_never_decides_a_chargeback_for_the_merchant() {
        let item = |status: &str| {
            serde_json::json!({"eventCode": "CHARGEBACK", "success": "true", "pspReference": "DSP1",
                "originalReference": "PSP1", "amount": {"value": 1999, "currency": "EUR"},
                "eventDate": "2026-11-01T10:00:00.250+01:00",
                "additionalData": {"disputeStatus": status}})
        };
        for (status, expected) in [
            ("Won", DisputeStatus::NeedsResponse),
            ("Lost", DisputeStatus::Lost),
            ("Pending", DisputeStatus::UnderReview),
        ] {
            match only_update(interpret("CHARGEBACK", &item(status).to_string())) {
                GatewayUpdate::Dispute(d) => {
                    assert_eq!(d.observation.status, expected, "{status}");
                    assert_eq!(
                        (d.observation.gateway_ref.as_str(), d.payment_ref.as_deref()),
                        ("DSP1", Some("PSP1"))
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            unix_ms("2026-11-01T10:00:00.250+01:00"),
            Some(1_793_523_600_250)
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
                message: "Insufficient balance".into(),
                advice: None
            })
        );
        assert!(
            interpret(
                "CHARGEBACK",
                r#"{"eventCode":"CHARGEBACK","success":"true"}"#
            )
            .is_ignored(),
            "a chargeback without its payment"
        );
        assert!(interpret("AUTHORISATION", "not json").is_ignored());
    }
}
