//! What Adyen's answers mean: a `/payments` answer's `resultCode` becomes a [`PaymentOutcome`]
//! (an unknown code is an unknown outcome, not a failure), a `received` modification leaves the
//! charge as it was and a `received` refund pending, until the webhook reports the result.
//!
//! A shopper step (`RedirectShopper`, `IdentifyShopper`, `ChallengeShopper`, `PresentToShopper`)
//! is `requires_action` with Adyen's `action` object. Its answer may carry no `pspReference`
//! (Adyen's own 3DS2 `IdentifyShopper` mock has none): the charge then waits without one, and the
//! AUTHORISATION webhook finds it by its `merchantReference` (the charge id).

use super::wire::{ModificationAnswer, PaymentAnswer};
use crate::domain::Advice;
use crate::domain::{
    ActionDetails, Charge, ChargeStatus, Failure, PaymentOutcome, RefundOutcome, RefundStatus,
};
use crate::ports::GatewayError;

/// What a `/payments` answer means for `charge`. A `resultCode` paybridge does not know is an
/// unknown outcome, not a failure: the payment may have gone through.
pub(super) fn payment_outcome(
    charge: &Charge,
    answer: PaymentAnswer,
) -> Result<PaymentOutcome, GatewayError> {
    let result_code = answer.result_code.as_deref().unwrap_or("");
    let shopper_step = SHOPPER_STEPS.contains(&result_code);
    let gateway_ref = match answer.psp_reference.filter(|p| !p.is_empty()) {
        Some(psp) => psp,
        None if shopper_step => String::new(),
        None => {
            return Err(GatewayError::unknown(
                "Adyen's payment answer has no pspReference",
                None,
            ));
        }
    };
    let (status, captured, failure) = match result_code {
        "Authorised" if charge.capture => (ChargeStatus::Succeeded, charge.amount.minor(), None),
        "Authorised" => (ChargeStatus::Authorized, 0, None),
        "Refused" => (
            ChargeStatus::Failed,
            0,
            Some(Failure {
                advice: Some(Advice::adyen(
                    (answer.refusal_reason_code.as_deref())
                        .or(answer.refusal_reason.as_deref())
                        .unwrap_or("Refused"),
                )),
                code: answer
                    .refusal_reason_code
                    .unwrap_or_else(|| "refused".to_owned()),
                message: answer
                    .refusal_reason
                    .unwrap_or_else(|| "the payment was refused".to_owned()),
            }),
        ),
        "Error" => (
            ChargeStatus::Failed,
            0,
            Some(Failure {
                code: "adyen_error".to_owned(),
                message: answer
                    .refusal_reason
                    .unwrap_or_else(|| "Adyen reported an error processing the payment".to_owned()),
                advice: None,
            }),
        ),
        "Cancelled" => (ChargeStatus::Canceled, 0, None),
        "Pending" | "Received" => (ChargeStatus::Processing, 0, None),
        _ if shopper_step => (ChargeStatus::RequiresAction, 0, None),
        other => {
            return Err(GatewayError::unknown(
                format!(
                    "Adyen answered resultCode `{other}` for {gateway_ref}, which paybridge does not map"
                ),
                None,
            ));
        }
    };
    let action = shopper_step.then(|| ActionDetails::Adyen {
        result_code: result_code.to_owned(),
        action: answer.action.unwrap_or(serde_json::Value::Null),
    });
    Ok(PaymentOutcome {
        gateway_ref,
        status,
        captured,
        failure,
        action,
    })
}

/// The `resultCode`s of a payment that waits for the shopper (Adyen's "Result codes":
/// "The shopper needs to…"), each answered with an `action`.
const SHOPPER_STEPS: [&str; 4] = [
    "RedirectShopper",
    "IdentifyShopper",
    "ChallengeShopper",
    "PresentToShopper",
];

/// A modification Adyen `received` leaves the charge as it was until the webhook arrives.
pub(super) fn modification_outcome(
    charge: &Charge,
    psp: &str,
    operation: &str,
    answer: ModificationAnswer,
) -> Result<PaymentOutcome, GatewayError> {
    match answer.status.as_deref() {
        Some("received") => Ok(PaymentOutcome {
            gateway_ref: psp.to_owned(),
            status: charge.status,
            captured: charge.captured,
            failure: None,
            action: None,
        }),
        other => Err(GatewayError::unknown(
            format!(
                "Adyen answered the {operation} of {psp} with status {other:?}, not \"received\""
            ),
            None,
        )),
    }
}

/// A refund Adyen `received` stays `pending` until the REFUND (or REFUND_FAILED) webhook; the
/// modification's pspReference is the refund's id at Adyen.
pub(super) fn refund_outcome(
    psp: &str,
    answer: ModificationAnswer,
) -> Result<RefundOutcome, GatewayError> {
    match (answer.status.as_deref(), answer.psp_reference) {
        (Some("received"), Some(reference)) => Ok(RefundOutcome {
            gateway_ref: reference,
            status: RefundStatus::Pending,
            failure: None,
        }),
        (other, _) => Err(GatewayError::unknown(
            format!("Adyen answered the refund of {psp} with status {other:?}, not \"received\""),
            None,
        )),
    }
}
