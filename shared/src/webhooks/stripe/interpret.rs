//! What a verified Stripe event means for paybridge's charges and refunds: `payment_intent.*`
//! events update a charge, `charge.refunded`, `charge.refund.updated` and `refund.*` events a
//! refund, read into [`Interpretation`]s for the apply-event use case. Pure; the objects are read
//! as in `objects`, the same reading the Stripe adapter gives API answers.

use super::objects::{PaymentIntent, StripeRefund, outcome_of, refund_outcome};
use crate::domain::{
    ChargeId, GatewayUpdate, Interpretation, PaymentUpdate, RefundId, RefundUpdate,
};

fn metadata_id<T>(
    object: &serde_json::Value,
    key: &str,
    parse: impl Fn(&str) -> Result<T, crate::domain::IdError>,
) -> Option<T> {
    object
        .pointer(&format!("/metadata/{key}"))
        .and_then(|v| v.as_str())
        .and_then(|s| parse(s).ok())
}

fn refund_update(object: &serde_json::Value) -> Option<GatewayUpdate> {
    let refund: StripeRefund = serde_json::from_value(object.clone()).ok()?;
    let gateway_ref = refund.id.clone();
    let outcome = refund_outcome(refund).ok()?;
    Some(GatewayUpdate::Refund(RefundUpdate {
        gateway_ref: Some(gateway_ref),
        refund_id: metadata_id(object, "paybridge_refund_id", RefundId::parse),
        outcome,
    }))
}

/// What a verified Stripe event (its stored, masked JSON) says about paybridge's charges and
/// refunds. Pure: the worker resolves and applies the result.
pub fn interpret(event_type: &str, payload: &str) -> Interpretation {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let object = event.pointer("/data/object").cloned().unwrap_or_default();
    match event_type {
        t if t.starts_with("payment_intent.") => {
            let Ok(pi) = serde_json::from_value::<PaymentIntent>(object.clone()) else {
                return Interpretation::Ignore(
                    "the event carries no readable PaymentIntent".into(),
                );
            };
            let gateway_ref = pi.id.clone();
            match outcome_of(pi) {
                Ok(outcome) => Interpretation::Apply(vec![GatewayUpdate::Payment(PaymentUpdate {
                    gateway_ref: Some(gateway_ref),
                    charge_id: metadata_id(&object, "paybridge_charge_id", ChargeId::parse),
                    outcome,
                    captured_if_automatic: false,
                })]),
                Err(e) => Interpretation::Ignore(format!("PaymentIntent status not mapped: {e}")),
            }
        }
        // A Charge object with its refunds (older API versions list them inline).
        "charge.refunded" => {
            let refunds: Vec<GatewayUpdate> = object
                .pointer("/refunds/data")
                .and_then(|d| d.as_array())
                .map(|list| list.iter().filter_map(refund_update).collect())
                .unwrap_or_default();
            if refunds.is_empty() {
                // Newer API versions do not embed refunds; refund.* events carry them.
                Interpretation::Ignore(
                    "charge.refunded without embedded refunds (refund.* events report them)".into(),
                )
            } else {
                Interpretation::Apply(refunds)
            }
        }
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed" => {
            match refund_update(&object) {
                Some(update) => Interpretation::Apply(vec![update]),
                None => Interpretation::Ignore("the event carries no readable refund".into()),
            }
        }
        t if t.starts_with("charge.dispute.") => {
            Interpretation::Ignore("disputes are recorded but not modelled yet".into())
        }
        other => Interpretation::Ignore(format!("{other} does not change charges or refunds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChargeStatus, RefundStatus};

    #[test]
    fn payment_intent_events_name_the_charge_by_reference_and_metadata() {
        let charge = ChargeId::generate();
        let payload = serde_json::json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {
            "id": "pi_9", "object": "payment_intent", "status": "succeeded", "amount": 1999, "amount_received": 1999,
            "metadata": {"paybridge_charge_id": charge.to_string()}}}});
        match interpret("payment_intent.succeeded", &payload.to_string()) {
            Interpretation::Apply(updates) => match &updates[..] {
                [GatewayUpdate::Payment(u)] => {
                    assert_eq!(
                        (u.gateway_ref.as_deref(), u.charge_id.as_ref()),
                        (Some("pi_9"), Some(&charge))
                    );
                    assert_eq!(
                        (u.outcome.status, u.outcome.captured),
                        (ChargeStatus::Succeeded, 1999)
                    );
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refund_events_and_embedded_refunds_become_refund_updates() {
        let refund = RefundId::generate();
        let object = serde_json::json!({"id": "re_1", "object": "refund", "status": "failed", "failure_reason": "lost_or_stolen_card",
            "metadata": {"paybridge_refund_id": refund.to_string()}});
        let payload = serde_json::json!({"data": {"object": object}}).to_string();
        match interpret("charge.refund.updated", &payload) {
            Interpretation::Apply(u) => assert!(
                matches!(&u[..], [GatewayUpdate::Refund(r)] if r.refund_id.as_ref() == Some(&refund) && r.outcome.status == RefundStatus::Failed)
            ),
            other => panic!("{other:?}"),
        }
        let charge = serde_json::json!({"data": {"object": {"id": "ch_1", "refunds": {"data": [
            {"id": "re_1", "status": "succeeded"}, {"id": "re_2", "status": "succeeded"}]}}}});
        match interpret("charge.refunded", &charge.to_string()) {
            Interpretation::Apply(u) => assert_eq!(u.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(interpret("charge.dispute.created", "{}").is_ignored());
        assert!(interpret("payment_intent.succeeded", "not json").is_ignored());
    }
}
