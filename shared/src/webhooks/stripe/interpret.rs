//! What a verified Stripe event means for paybridge's charges, refunds and disputes:
//! `payment_intent.*` and `charge.captured` events update a charge, `charge.refunded`,
//! `charge.refund.updated` and `refund.*` events a refund, `charge.dispute.*` a dispute, read into
//! [`Interpretation`]s for the apply-event use case. Pure; the objects are read
//! as in `objects`, the same reading the Stripe adapter gives API answers.

use super::amount::iso_minor;
use super::objects::{PaymentIntent, StripeRefund, outcome_of, refund_outcome};
use crate::domain::{
    ChargeId, ChargeStatus, DisputeObservation, DisputeStatus, DisputeUpdate, GatewayUpdate,
    Interpretation, PaymentOutcome, PaymentUpdate, RefundId, RefundUpdate, RefundedTotal, Reported,
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

fn text(object: &serde_json::Value, key: &str) -> Option<String> {
    object.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// An id field that is a string, or an expanded object with an `id`.
fn id_of(object: &serde_json::Value, key: &str) -> Option<String> {
    match object.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// `amount_key` and `currency` of a Stripe object, as an amount the event reports: in ISO 4217
/// minor units (Stripe's are not always those: ISK and UGX are ×100 at Stripe).
fn reported(object: &serde_json::Value, amount_key: &str) -> Option<Reported> {
    let currency = text(object, "currency")?.to_ascii_lowercase();
    Some(Reported {
        amount: iso_minor(object.get(amount_key)?.as_i64()?, &currency),
        currency,
    })
}

/// Stripe's own Refund of an amount that was never captured (reason `expired_uncaptured_charge`):
/// before 2025-03-31.basil a partial capture or a cancellation created one. No money moved back
/// to the customer, so it is not a refund of paybridge's charge.
fn releases_uncaptured(object: &serde_json::Value) -> bool {
    object.get("reason").and_then(|v| v.as_str()) == Some("expired_uncaptured_charge")
}

fn refund_update(object: &serde_json::Value, observed_at: Option<i64>) -> Option<GatewayUpdate> {
    if releases_uncaptured(object) {
        return None;
    }
    let refund: StripeRefund = serde_json::from_value(object.clone()).ok()?;
    let gateway_ref = refund.id.clone();
    let outcome = refund_outcome(refund).ok()?;
    Some(GatewayUpdate::Refund(RefundUpdate {
        gateway_ref: Some(gateway_ref),
        refund_id: metadata_id(object, "paybridge_refund_id", RefundId::parse),
        outcome,
        payment_ref: id_of(object, "payment_intent"),
        reported: reported(object, "amount"),
        observed_at,
    }))
}

/// A Stripe Dispute object: its status as Stripe states it, and the funds its balance
/// transactions moved (Stripe: "zero, one, or two balance transactions that show funds
/// withdrawn and reinstated").
fn dispute_update(object: &serde_json::Value, event_type: &str) -> Result<GatewayUpdate, String> {
    let id = text(object, "id").ok_or("the dispute has no id")?;
    let status_text = text(object, "status").unwrap_or_default();
    let status = DisputeStatus::parse(&status_text)
        .ok_or_else(|| format!("dispute status `{status_text}` not mapped"))?;
    let total = reported(object, "amount").ok_or("the dispute has no amount or currency")?;
    let moves: Vec<i64> = object
        .get("balance_transactions")
        .and_then(|b| b.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|t| t.get("amount").and_then(|a| a.as_i64()))
                .collect()
        })
        .unwrap_or_default();
    let count = |negative: bool| {
        moves
            .iter()
            .filter(|a| (**a < 0) == negative && **a != 0)
            .count() as i64
    };
    let mut withdrawn = count(true).saturating_mul(total.amount);
    let mut reinstated = count(false).saturating_mul(total.amount);
    // The event says so even when the balance transactions are not expanded.
    if event_type == "charge.dispute.funds_withdrawn" {
        withdrawn = withdrawn.max(total.amount);
    }
    if event_type == "charge.dispute.funds_reinstated" {
        withdrawn = withdrawn.max(total.amount);
        reinstated = reinstated.max(total.amount);
    }
    Ok(GatewayUpdate::Dispute(DisputeUpdate {
        payment_ref: id_of(object, "payment_intent"),
        charge_id: metadata_id(object, "paybridge_charge_id", ChargeId::parse),
        observation: DisputeObservation {
            gateway_ref: id,
            status,
            stage: 0,
            amount: total.amount,
            currency: total.currency,
            reason: text(object, "reason"),
            evidence_due_by: object
                .pointer("/evidence_details/due_by")
                .and_then(|v| v.as_i64()),
            funds_withdrawn: withdrawn,
            funds_reinstated: reinstated,
        },
    }))
}

/// What a verified Stripe event (its stored, masked JSON) says about paybridge's charges and
/// refunds. Pure: the worker resolves and applies the result.
///
/// - `payment_intent.*`: the PaymentIntent's status (a success after a failure included).
/// - `charge.captured`: the Charge's PaymentIntent captured `amount_captured`.
/// - `charge.refunded`: refunds embedded by older API versions, and `amount_refunded` as the
///   gateway's total, which the refund events must explain.
/// - `refund.*`, `charge.refund.updated`: a refund, ours (metadata) or made outside paybridge
///   (found by its `payment_intent` and adopted).
/// - `charge.dispute.*`: the Dispute object, its status taken from the object.
pub fn interpret(event_type: &str, payload: &str) -> Interpretation {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let object = event.pointer("/data/object").cloned().unwrap_or_default();
    // Stripe's `created` is in whole seconds; paybridge orders events in milliseconds.
    let observed_at =
        (event.get("created").and_then(|v| v.as_i64())).map(|s| s.saturating_mul(1000));
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
                    observed_at,
                    reported: reported(&object, "amount"),
                })]),
                Err(e) => Interpretation::Ignore(format!("PaymentIntent status not mapped: {e}")),
            }
        }
        // A Charge object: captured outside paybridge (the dashboard, another integration).
        "charge.captured" => {
            let (Some(pi), Some(captured)) = (
                id_of(&object, "payment_intent"),
                reported(&object, "amount_captured").map(|r| r.amount),
            ) else {
                return Interpretation::Ignore(
                    "a charge.captured without its PaymentIntent".into(),
                );
            };
            Interpretation::Apply(vec![GatewayUpdate::Payment(PaymentUpdate {
                gateway_ref: Some(pi.clone()),
                charge_id: metadata_id(&object, "paybridge_charge_id", ChargeId::parse),
                outcome: PaymentOutcome {
                    gateway_ref: pi,
                    status: ChargeStatus::Succeeded,
                    captured,
                    failure: None,
                    action: None,
                },
                captured_if_automatic: false,
                observed_at,
                reported: reported(&object, "amount"),
            })])
        }
        // A Charge object: its refunds (older API versions list them inline), and the total.
        "charge.refunded" => {
            let mut updates: Vec<GatewayUpdate> = object
                .pointer("/refunds/data")
                .and_then(|d| d.as_array())
                .map(|list| {
                    list.iter()
                        .filter_map(|r| refund_update(r, observed_at))
                        .collect()
                })
                .unwrap_or_default();
            if let (Some(pi), Some(total)) = (
                id_of(&object, "payment_intent"),
                reported(&object, "amount_refunded"),
            ) {
                updates.push(GatewayUpdate::RefundedTotal(RefundedTotal {
                    payment_ref: pi,
                    total,
                }));
            }
            if updates.is_empty() {
                Interpretation::Ignore("a charge.refunded without refunds or a total".into())
            } else {
                Interpretation::Apply(updates)
            }
        }
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed"
            if releases_uncaptured(&object) =>
        {
            Interpretation::Ignore(
                "Stripe's release of an uncaptured amount (expired_uncaptured_charge), not a refund"
                    .into(),
            )
        }
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed" => {
            match refund_update(&object, observed_at) {
                Some(update) => Interpretation::Apply(vec![update]),
                None => Interpretation::Ignore("the event carries no readable refund".into()),
            }
        }
        t if t.starts_with("charge.dispute.") => match dispute_update(&object, t) {
            Ok(update) => Interpretation::Apply(vec![update]),
            Err(why) => Interpretation::Ignore(why),
        },
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
    fn an_off_session_authentication_required_failure_event_still_waits_for_the_customer() {
        // payment_intent.payment_failed as Stripe sends it after the off-session 402: billing's
        // charge stays requires_action, not failed.
        let payload = serde_json::json!({"id": "evt_2", "type": "payment_intent.payment_failed", "data": {"object": {
            "id": "pi_8", "object": "payment_intent", "status": "requires_payment_method", "amount": 1999,
            "currency": "eur", "client_secret": "pi_8_secret_z", "payment_method": null,
            "last_payment_error": {"type": "card_error", "code": "authentication_required",
                "decline_code": "authentication_required", "payment_method": {"id": "pm_3"}}}}});
        match interpret("payment_intent.payment_failed", &payload.to_string()) {
            Interpretation::Apply(updates) => match &updates[..] {
                [GatewayUpdate::Payment(u)] => {
                    assert_eq!(u.outcome.status, ChargeStatus::RequiresAction);
                    assert!(u.outcome.failure.is_none());
                    assert!(matches!(&u.outcome.action,
                        Some(crate::domain::ActionDetails::Stripe { client_secret: Some(s), payment_method: Some(pm), .. })
                            if s == "pi_8_secret_z" && pm == "pm_3"));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stripes_release_of_an_uncaptured_amount_is_not_a_refund_to_adopt() {
        let object = serde_json::json!({"id": "re_9", "object": "refund", "status": "succeeded", "amount": 499,
            "currency": "eur", "payment_intent": "pi_9", "reason": "expired_uncaptured_charge", "metadata": {}});
        let payload = serde_json::json!({"data": {"object": object}}).to_string();
        assert!(interpret("refund.created", &payload).is_ignored());
        let charge = serde_json::json!({"data": {"object": {"id": "ch_1", "payment_intent": "pi_9",
            "amount_refunded": 0, "currency": "eur", "refunds": {"data": [object]}}}});
        match interpret("charge.refunded", &charge.to_string()) {
            Interpretation::Apply(u) => {
                assert!(matches!(&u[..], [GatewayUpdate::RefundedTotal(_)]), "{u:?}")
            }
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
        assert!(
            interpret("charge.dispute.created", "{}").is_ignored(),
            "no dispute object"
        );
        assert!(interpret("payment_intent.succeeded", "not json").is_ignored());
    }
}
