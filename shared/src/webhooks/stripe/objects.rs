//! Stripe's PaymentIntent and Refund objects, as API answers and webhook events both carry them,
//! and what their statuses mean for paybridge.
//!
//! The one reading of a Stripe object, shared by the webhook interpreter here and the Stripe
//! adapter's answer mapping (which imports it: the module graph points down). Crate-private, so
//! Stripe's JSON stays inside paybridge's Stripe modules.
//!
//! - PaymentIntent `succeeded` → succeeded; `requires_capture` → authorized; `processing` →
//!   processing; `requires_action` / `requires_confirmation` → requires_action; `canceled` →
//!   canceled; `requires_payment_method` after a confirmation → failed with `last_payment_error`,
//!   **except** when that error is `authentication_required`: Stripe declined an off-session
//!   confirmation because the issuer wants the customer to authenticate, and the customer can
//!   still complete this same PaymentIntent on session with its `client_secret` and the declined
//!   payment method (Stripe, "Save a payment method during payment" → "Charge the saved payment
//!   method later"), so it is `requires_action`. Every requires_action outcome carries the
//!   [`ActionDetails`] billing needs for that.
//! - Refund `succeeded` → succeeded; `pending` / `requires_action` → pending; `failed` → failed
//!   with its `failure_reason`; `canceled` → canceled.

use serde::Deserialize;

use crate::domain::Advice;
use crate::domain::action::AUTHENTICATION_REQUIRED;
use crate::domain::{
    ActionDetails, ChargeStatus, Failure, PaymentOutcome, RefundOutcome, RefundStatus,
};
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
    /// For the customer's browser (Stripe.js); never logged.
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    next_action: Option<serde_json::Value>,
    /// An id, or the expanded PaymentMethod.
    #[serde(default)]
    payment_method: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub(crate) struct StripeError {
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) decline_code: Option<String>,
    /// How to proceed, when the issuer said (`try_again_later`, `do_not_try_again`,
    /// `confirm_card_data`).
    #[serde(default)]
    pub(crate) advice_code: Option<String>,
    /// The card network's merchant advice code, passed through (Mastercard `01`–`03`, `21`…).
    #[serde(default)]
    pub(crate) network_advice_code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Present on card errors of a confirmation: the PaymentIntent as it is now.
    #[serde(default)]
    pub(crate) payment_intent: Option<Box<serde_json::Value>>,
    /// The payment method of a card error (an id, or the PaymentMethod object).
    #[serde(default)]
    pub(crate) payment_method: Option<serde_json::Value>,
}

/// An id field that is a string, or an expanded object with an `id`.
fn id_in(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

impl StripeError {
    /// The issuer wants the customer to authenticate (`code` or `decline_code`
    /// `authentication_required`): a customer on session can still complete the payment.
    pub(crate) fn wants_authentication(&self) -> bool {
        [&self.code, &self.decline_code]
            .iter()
            .any(|c| c.as_deref() == Some(AUTHENTICATION_REQUIRED))
    }

    pub(crate) fn failure(&self) -> Failure {
        let code = (self.decline_code.clone())
            .or_else(|| self.code.clone())
            .unwrap_or_else(|| "card_error".into());
        let advice = Advice::stripe(
            &code,
            self.advice_code.as_deref(),
            self.network_advice_code.as_deref(),
        );
        Failure {
            code,
            message: self
                .message
                .clone()
                .unwrap_or_else(|| "the payment was declined".into()),
            advice: Some(advice),
        }
    }
}

/// Maps a PaymentIntent to an outcome.
pub(crate) fn outcome_of(pi: PaymentIntent) -> Result<PaymentOutcome, GatewayError> {
    outcome_with(pi, None)
}

/// [`outcome_of`] for the PaymentIntent of a card error (`error`), which names the declined
/// payment method when the PaymentIntent no longer does.
pub(crate) fn outcome_of_declined(
    pi: PaymentIntent,
    error: &StripeError,
) -> Result<PaymentOutcome, GatewayError> {
    outcome_with(pi, Some(error))
}

fn outcome_with(
    pi: PaymentIntent,
    card_error: Option<&StripeError>,
) -> Result<PaymentOutcome, GatewayError> {
    let declined = pi.last_payment_error.as_ref().or(card_error);
    let status = match pi.status.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "requires_capture" => ChargeStatus::Authorized,
        "processing" => ChargeStatus::Processing,
        "requires_action" | "requires_confirmation" => ChargeStatus::RequiresAction,
        "canceled" => ChargeStatus::Canceled,
        "requires_payment_method" if declined.is_some_and(StripeError::wants_authentication) => {
            ChargeStatus::RequiresAction
        }
        "requires_payment_method" => ChargeStatus::Failed,
        other => return Err(unmapped("PaymentIntent", other)),
    };
    let action = (status == ChargeStatus::RequiresAction).then(|| {
        let off_session_decline = declined.filter(|e| e.wants_authentication());
        ActionDetails::Stripe {
            payment_intent: pi.id.clone(),
            client_secret: pi.client_secret.clone(),
            payment_method: id_in(pi.payment_method.as_ref()).or_else(|| {
                [pi.last_payment_error.as_ref(), card_error]
                    .into_iter()
                    .flatten()
                    .find_map(|e| id_in(e.payment_method.as_ref()))
            }),
            next_action: pi.next_action.clone().filter(|v| !v.is_null()),
            reason: off_session_decline.map(|_| AUTHENTICATION_REQUIRED.to_owned()),
        }
    });
    let failure = match status {
        ChargeStatus::Failed => Some(
            pi.last_payment_error
                .as_ref()
                .map(StripeError::failure)
                .unwrap_or(Failure {
                    code: "payment_failed".into(),
                    message: "the payment method was not charged".into(),
                    advice: None,
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
        action,
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
        advice: None,
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
