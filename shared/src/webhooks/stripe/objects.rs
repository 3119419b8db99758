//! Stripe's PaymentIntent and Refund objects, as API answers and webhook events both carry them,
//! and what their statuses mean for paybridge.
//!
//! The one reading of a Stripe object, shared by the webhook interpreter here and the Stripe
//! adapter's answer mapping (which imports it: the module graph points down). Crate-private, so
//! Stripe's JSON stays inside paybridge's Stripe modules.
//!
//! - PaymentIntent `succeeded` → succeeded; `requires_capture` → authorized; `processing` →
//!   processing; `requires_action` / `requires_confirmation` → requires_action; `canceled` →
//!   canceled; `requires_payment_method` after a confirmation → failed with `last_payment_error`.
//! - Refund `succeeded` → succeeded; `pending` / `requires_action` → pending; `failed` → failed
//!   with its `failure_reason`; `canceled` → canceled.

use serde::Deserialize;

use crate::domain::{ChargeStatus, Failure, PaymentOutcome, RefundOutcome, RefundStatus};
use crate::ports::GatewayError;

#[derive(Deserialize)]
pub(crate) struct PaymentIntent {
    pub(crate) id: String,
    status: String,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    amount_received: Option<i64>,
    /// The currency of `amount` and `amount_received`, which are in Stripe's minor units.
    #[serde(default)]
    currency: String,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Deserialize, Default)]
pub(crate) struct StripeError {
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) decline_code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Present on card errors of a confirmation: the PaymentIntent as it is now.
    #[serde(default)]
    pub(crate) payment_intent: Option<Box<serde_json::Value>>,
}

impl StripeError {
    pub(crate) fn failure(&self) -> Failure {
        Failure {
            code: self
                .decline_code
                .clone()
                .or_else(|| self.code.clone())
                .unwrap_or_else(|| "card_error".into()),
            message: self
                .message
                .clone()
                .unwrap_or_else(|| "the payment was declined".into()),
        }
    }
}

/// Maps a PaymentIntent to an outcome.
pub(crate) fn outcome_of(pi: PaymentIntent) -> Result<PaymentOutcome, GatewayError> {
    let status = match pi.status.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "requires_capture" => ChargeStatus::Authorized,
        "processing" => ChargeStatus::Processing,
        "requires_action" | "requires_confirmation" => ChargeStatus::RequiresAction,
        "canceled" => ChargeStatus::Canceled,
        "requires_payment_method" => ChargeStatus::Failed,
        other => return Err(unmapped("PaymentIntent", other)),
    };
    let failure = match status {
        ChargeStatus::Failed => Some(
            pi.last_payment_error
                .as_ref()
                .map(StripeError::failure)
                .unwrap_or(Failure {
                    code: "payment_failed".into(),
                    message: "the payment method was not charged".into(),
                }),
        ),
        _ => None,
    };
    // Older API versions (and localstripe) do not send amount_received: a succeeded intent then
    // received its whole amount.
    let captured = if status == ChargeStatus::Succeeded {
        super::amount::iso_minor(pi.amount_received.or(pi.amount).unwrap_or(0), &pi.currency)
    } else {
        0
    };
    Ok(PaymentOutcome {
        gateway_ref: pi.id,
        status,
        captured,
        failure,
    })
}

#[derive(Deserialize)]
pub(crate) struct StripeRefund {
    pub(crate) id: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// Maps a Stripe Refund to an outcome.
pub(crate) fn refund_outcome(r: StripeRefund) -> Result<RefundOutcome, GatewayError> {
    let status = match r.status.as_str() {
        "succeeded" => RefundStatus::Succeeded,
        "pending" | "requires_action" => RefundStatus::Pending,
        "failed" => RefundStatus::Failed,
        "canceled" => RefundStatus::Canceled,
        other => return Err(unmapped("refund", other)),
    };
    let failure = (status == RefundStatus::Failed).then(|| Failure {
        code: r
            .failure_reason
            .clone()
            .unwrap_or_else(|| "refund_failed".into()),
        message: "the gateway could not complete the refund".into(),
    });
    Ok(RefundOutcome {
        gateway_ref: r.id,
        status,
        failure,
    })
}

/// A status paybridge does not map: the outcome is unknown, not failed.
fn unmapped(object: &str, status: &str) -> GatewayError {
    GatewayError::unknown(format!("unexpected {object} status `{status}`"), None)
}
