//! What a verified Standard Webhooks event means for paybridge's charges and refunds: the
//! sender's `<object>.<status>` event type and `data` object read into [`Interpretation`]s, for
//! the apply-event use case. Pure; verification and parsing are in `verify`.

use crate::domain::{ChargeId, ChargeStatus, Failure, Interpretation, RefundId, RefundStatus};
use crate::webhooks::{apply_payment, apply_refund};

/// What a verified Standard Webhooks event says about paybridge's charges and refunds.
///
/// Generic senders report `charge.<status>` (or `payment.<status>`) and `refund.<status>` with
/// `data.id` = their own id of the object and, optionally, `data.metadata.paybridge_charge_id` /
/// `paybridge_refund_id`; `data.amount_captured` (else `data.amount`) is what a succeeded payment
/// captured. Statuses are paybridge's names (`succeeded`, `failed`, `canceled`, `authorized`, …).
pub fn interpret(event_type: &str, payload: &str) -> Interpretation {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let data = event.get("data").cloned().unwrap_or_default();
    let gateway_ref = data.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let meta = |key: &str| {
        data.pointer(&format!("/metadata/{key}"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let failure = data
        .get("failure_code")
        .and_then(|v| v.as_str())
        .map(|code| Failure {
            code: code.to_owned(),
            message: data
                .get("failure_message")
                .and_then(|v| v.as_str())
                .unwrap_or(code)
                .to_owned(),
            advice: None,
        });
    let Some((kind, status)) = event_type.split_once('.') else {
        return Interpretation::Ignore(format!("{event_type} is not <object>.<status>"));
    };
    match kind {
        "charge" | "payment" => {
            let Some(status) = ChargeStatus::ALL.into_iter().find(|s| s.as_str() == status) else {
                return Interpretation::Ignore(format!("unknown payment status `{status}`"));
            };
            let captured = data
                .get("amount_captured")
                .or_else(|| data.get("amount"))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            apply_payment(
                gateway_ref,
                meta("paybridge_charge_id").and_then(|c| ChargeId::parse(&c).ok()),
                status,
                if status.is_captured() { captured } else { 0 },
                failure,
                false,
            )
        }
        "refund" => {
            let Some(status) = RefundStatus::ALL.into_iter().find(|s| s.as_str() == status) else {
                return Interpretation::Ignore(format!("unknown refund status `{status}`"));
            };
            apply_refund(
                gateway_ref,
                meta("paybridge_refund_id").and_then(|r| RefundId::parse(&r).ok()),
                status,
                failure,
            )
        }
        _ => Interpretation::Ignore(format!("{event_type} does not change charges or refunds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GatewayUpdate;

    #[test]
    fn generic_events_name_a_status_and_an_object() {
        let p = r#"{"type":"charge.succeeded","data":{"id":"pay_1","amount":500}}"#;
        match interpret("charge.succeeded", p) {
            Interpretation::Apply(u) => assert!(
                matches!(&u[..], [GatewayUpdate::Payment(x)] if x.outcome.status == ChargeStatus::Succeeded && x.outcome.captured == 500)
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret("refund.failed", r#"{"data":{"id":"r1"}}"#),
            Interpretation::Apply(_)
        ));
        assert!(interpret("charge.exploded", "{}").is_ignored());
        assert!(interpret("dispute.created", "{}").is_ignored());
    }
}
