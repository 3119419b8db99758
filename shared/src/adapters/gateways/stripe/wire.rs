//! The Stripe adapter's request forms and error body: what paybridge sends to Stripe's
//! form-encoded API and how Stripe's error answers read. Private to the adapter; the
//! PaymentIntent and Refund objects are read in [`crate::webhooks::stripe::objects`], shared
//! with the webhook interpreter.

use serde::Deserialize;

use crate::domain::{Charge, Refund};
use crate::webhooks::stripe::objects::StripeError;

/// Stripe's error answer: `{"error": {"type": …, "code": …, "message": …}}`.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub(super) error: StripeError,
}

/// The form of `POST /v1/payment_intents`: an off-session, confirmed PaymentIntent for the
/// charge's saved payment method, with paybridge's ids in its metadata.
pub(super) fn payment_form(c: &Charge) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = vec![
        ("amount".into(), c.amount.minor().to_string()),
        ("currency".into(), c.currency().code().into()),
        ("payment_method".into(), c.payment_method.clone()),
        ("confirm".into(), "true".into()),
        ("off_session".into(), "true".into()),
        (
            "capture_method".into(),
            if c.capture { "automatic" } else { "manual" }.into(),
        ),
        ("metadata[paybridge_charge_id]".into(), c.id.to_string()),
        ("metadata[invoice_id]".into(), c.invoice_id.clone()),
    ];
    if let Some(customer) = &c.customer {
        form.push(("customer".into(), customer.clone()));
    }
    if let Some(description) = &c.description {
        form.push(("description".into(), description.clone()));
    }
    for (k, v) in &c.metadata {
        form.push((format!("metadata[{k}]"), v.clone()));
    }
    form
}

/// The form of `POST /v1/refunds` for `refund` of the PaymentIntent `pi`.
pub(super) fn refund_form(charge: &Charge, refund: &Refund, pi: &str) -> Vec<(String, String)> {
    let mut form = vec![
        ("payment_intent".to_owned(), pi.to_owned()),
        ("amount".to_owned(), refund.amount.minor().to_string()),
        (
            "metadata[paybridge_refund_id]".to_owned(),
            refund.id.to_string(),
        ),
        (
            "metadata[paybridge_charge_id]".to_owned(),
            charge.id.to_string(),
        ),
    ];
    if let Some(reason) = refund.reason {
        form.push(("reason".to_owned(), reason.as_str().to_owned()));
    }
    for (k, v) in &refund.metadata {
        form.push((format!("metadata[{k}]"), v.clone()));
    }
    form
}
