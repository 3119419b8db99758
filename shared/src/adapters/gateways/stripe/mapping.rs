//! What Stripe's HTTP answers mean: a PaymentIntent or Refund answer becomes an outcome (read as
//! in [`crate::webhooks::stripe::objects`], like the events that carry the same objects), a 402
//! card error a *failed payment* with the decline code — or, for `authentication_required` with
//! its PaymentIntent, a charge that *requires action* from the customer — anything else an error.

use std::time::Duration;

use super::client::error_of;
use super::wire::ErrorBody;
use crate::domain::{ChargeStatus, PaymentOutcome, RefundOutcome};
use crate::ports::GatewayError;
use crate::webhooks::stripe::objects::{
    PaymentIntent, StripeRefund, outcome_of, outcome_of_declined, refund_outcome,
};

/// Maps an HTTP answer from Stripe to an outcome or an error.
pub(super) fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<PaymentOutcome, GatewayError> {
    match status {
        200..=299 => match serde_json::from_slice::<PaymentIntent>(body) {
            Ok(pi) => outcome_of(pi),
            // It may have worked: the outcome is unknown, not failed.
            Err(e) => Err(GatewayError::unknown(
                "Stripe answered 2xx with an unreadable body",
                Some(Box::new(e)),
            )),
        },
        402 => {
            let error = serde_json::from_slice::<ErrorBody>(body)
                .map(|b| b.error)
                .unwrap_or_default();
            let failure = error.failure();
            let pi = error
                .payment_intent
                .as_deref()
                .and_then(|v| serde_json::from_value::<PaymentIntent>(v.clone()).ok());
            // Declined off session because the issuer wants the customer: the customer can
            // still complete this PaymentIntent on session (objects.rs says why).
            if error.wants_authentication()
                && let Some(pi) = pi
            {
                return outcome_of_declined(pi, &error);
            }
            let gateway_ref = pi.map(|p| p.id).unwrap_or_default();
            Ok(PaymentOutcome {
                gateway_ref,
                status: ChargeStatus::Failed,
                captured: 0,
                failure: Some(failure),
                action: None,
            })
        }
        _ => Err(error_of(status, body, retry_after)),
    }
}

/// Maps an HTTP answer to `POST /v1/refunds`.
pub(super) fn classify_refund(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<RefundOutcome, GatewayError> {
    match status {
        200..=299 => {
            let r: StripeRefund = serde_json::from_slice(body).map_err(|e| {
                GatewayError::unknown(
                    "Stripe answered 2xx with an unreadable refund",
                    Some(Box::new(e)),
                )
            })?;
            refund_outcome(r)
        }
        _ => Err(error_of(status, body, retry_after)),
    }
}
