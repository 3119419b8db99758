//! The Stripe adapter's request forms and error body: what paybridge sends to Stripe's
//! form-encoded API, with amounts in Stripe's minor units, and how Stripe's error answers read.
//! Private to the adapter; the PaymentIntent and Refund objects are read in
//! [`crate::webhooks::stripe::objects`], shared with the webhook interpreter.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::charge::is_reserved_metadata_key;
use crate::domain::{Charge, Money, Refund};
use crate::ports::GatewayError;
use crate::webhooks::stripe::amount;
use crate::webhooks::stripe::objects::StripeError;

/// Stripe's error answer: `{"error": {"type": …, "code": …, "message": …}}`.
#[derive(Deserialize)]
pub(super) struct ErrorBody {
    pub(super) error: StripeError,
}

/// `money` as a form value in Stripe's minor units (ISK and UGX ×100); an amount Stripe cannot
/// take is refused without a request (the use cases refuse it before they get here).
pub(super) fn stripe_amount(money: Money) -> Result<String, GatewayError> {
    amount::stripe_minor(money)
        .map(|v| v.to_string())
        .map_err(|e| GatewayError::Refused {
            status: 0,
            code: "amount_not_representable".into(),
            message: e.to_string(),
        })
}

/// The form of `POST /v1/payment_intents`: an off-session, confirmed PaymentIntent for the
/// charge's saved payment method, with paybridge's ids in its metadata.
pub(super) fn payment_form(c: &Charge) -> Result<Vec<(String, String)>, GatewayError> {
    let mut form: Vec<(String, String)> = vec![
        ("amount".into(), stripe_amount(c.amount)?),
        ("currency".into(), c.currency().code().into()),
        ("payment_method".into(), c.payment_method.clone()),
        ("confirm".into(), "true".into()),
        ("off_session".into(), "true".into()),
        (
            "capture_method".into(),
            if c.capture { "automatic" } else { "manual" }.into(),
        ),
    ];
    if let Some(customer) = &c.customer {
        form.push(("customer".into(), customer.clone()));
    }
    if let Some(description) = &c.description {
        form.push(("description".into(), description.clone()));
    }
    push_metadata(
        &mut form,
        &c.metadata,
        [
            ("paybridge_charge_id", c.id.as_str()),
            ("invoice_id", &c.invoice_id),
        ],
    );
    Ok(form)
}

/// The form of `POST /v1/refunds` for `refund` of the PaymentIntent `pi`.
pub(super) fn refund_form(
    charge: &Charge,
    refund: &Refund,
    pi: &str,
) -> Result<Vec<(String, String)>, GatewayError> {
    let mut form = vec![
        ("payment_intent".to_owned(), pi.to_owned()),
        ("amount".to_owned(), stripe_amount(refund.amount)?),
    ];
    if let Some(reason) = refund.reason {
        form.push(("reason".to_owned(), reason.as_str().to_owned()));
    }
    push_metadata(
        &mut form,
        &refund.metadata,
        [
            ("paybridge_refund_id", refund.id.as_str()),
            ("paybridge_charge_id", charge.id.as_str()),
        ],
    );
    Ok(form)
}

/// Billing's metadata, then paybridge's own `ours` — last, and with billing's entries of a
/// reserved key dropped (the request parser refuses them already), so ours always win: a form
/// that names a key twice would leave it to Stripe which one it keeps.
fn push_metadata<const N: usize>(
    form: &mut Vec<(String, String)>,
    billing: &BTreeMap<String, String>,
    ours: [(&str, &str); N],
) {
    for (k, v) in billing.iter().filter(|(k, _)| !is_reserved_metadata_key(k)) {
        form.push((format!("metadata[{k}]"), v.clone()));
    }
    for (k, v) in ours {
        form.push((format!("metadata[{k}]"), v.to_owned()));
    }
}
