//! The JSON views billing sees (the `Charge`, `Refund` and `Dispute` schemas of openapi.json), used by the
//! HTTP answers and by the notifications alike, so the two can never disagree.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{ActionDetails, Charge, CustomerAction, Dispute, Failure, Refund};

/// Unix seconds as RFC 3339 (UTC), the form of every timestamp billing sees.
pub fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The charge as billing sees it (the `Charge` schema of openapi.json).
pub fn charge(c: &Charge) -> Value {
    json!({
        "id": c.id,
        "object": "charge",
        "status": c.status.as_str(),
        "invoice_id": c.invoice_id,
        "amount": c.amount.minor(),
        "currency": c.currency().code(),
        "gateway": c.gateway.as_str(),
        "gateway_ref": c.gateway_ref,
        "capture": c.capture,
        "allow_additional_charge": c.additional,
        "captured": c.captured,
        "refunded": c.refunded,
        "disputed": c.disputed(),
        "refundable": c.refundable(),
        "disputes": c.disputes.iter().map(|d| dispute(c, d)).collect::<Vec<_>>(),
        "failure": c.failure.as_ref().map(failure),
        "customer_action": c.customer_action.as_ref().map(customer_action),
        "customer": c.customer,
        "description": c.description,
        "metadata": c.metadata,
        "version": c.version,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

/// Why a charge or refund failed, and what billing should do next (the `Failure` schema).
fn failure(f: &Failure) -> Value {
    let advice = f.advice();
    json!({
        "code": f.code,
        "message": f.message,
        "advice": advice.as_str(),
        "retryable": advice.retryable(),
    })
}

/// What the customer of a `requires_action` charge must do (the `CustomerAction` schema):
/// everything billing hands to the customer's browser. It includes Stripe's `client_secret`,
/// which is meant for that browser: the view may carry it, logs never do.
fn customer_action(a: &CustomerAction) -> Value {
    let required_at = rfc3339(a.required_at);
    match &a.details {
        ActionDetails::Stripe {
            payment_intent,
            client_secret,
            payment_method,
            next_action,
            reason,
        } => json!({
            "type": "stripe_payment_intent",
            "required_at": required_at,
            "payment_intent": payment_intent,
            "client_secret": client_secret,
            "payment_method": payment_method,
            "next_action": next_action,
            "reason": reason,
        }),
        ActionDetails::Adyen {
            result_code,
            action,
        } => json!({
            "type": "adyen_action",
            "required_at": required_at,
            "result_code": result_code,
            "action": action,
        }),
    }
}

/// A dispute of charge `c` as billing sees it (the `Dispute` schema of openapi.json).
pub fn dispute(c: &Charge, d: &Dispute) -> Value {
    json!({
        "id": d.id,
        "object": "dispute",
        "charge_id": c.id,
        "status": d.status.as_str(),
        "amount": d.amount,
        "currency": c.currency().code(),
        "gateway": c.gateway.as_str(),
        "gateway_ref": d.gateway_ref,
        "reason": d.reason,
        "evidence_due_by": d.evidence_due_by.map(rfc3339),
        "funds_withdrawn": d.funds_withdrawn,
        "funds_reinstated": d.funds_reinstated,
        "version": d.version,
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

/// The refund as billing sees it (the `Refund` schema of openapi.json).
pub fn refund(r: &Refund) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "charge_id": r.charge_id,
        "status": r.status.as_str(),
        "amount": r.amount.minor(),
        "currency": r.amount.currency().code(),
        "gateway": r.gateway.as_str(),
        "gateway_ref": r.gateway_ref,
        "reason": r.reason.map(|x| x.as_str()),
        "failure": r.failure.as_ref().map(failure),
        "metadata": r.metadata,
        "external": r.external,
        "version": r.version,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    })
}
