//! [`AdyenGateway`]: the [`PaymentGateway`] port on Adyen's Checkout API.
//!
//! Payments are off-session charges of a stored card (`POST /payments` with
//! `storedPaymentMethodId`, `shopperInteraction: ContAuth`); captures and cancels are the
//! `/payments/{pspReference}/captures` and `/cancels` modifications. Every request carries
//! `X-API-Key` and our `Idempotency-Key`, so a retry after a timeout returns Adyen's first answer
//! instead of charging twice.
//!
//! Two things differ from Stripe and shape this module:
//! - Modifications are asynchronous. A `201` with `status: "received"` only says Adyen accepted the
//!   request; the result arrives later as a `CAPTURE` / `CANCELLATION` webhook. So capture and
//!   cancel report the charge as it was, and the webhook moves it on.
//! - Adyen's minor units differ from ISO 4217 for a few currencies (CLP and ISK have 2 decimals at
//!   Adyen, IDR has 0); amounts are converted at this edge
//!   (`webhooks::adyen::amount`, shared with the webhook interpreter).
//!
//! - `client`: the HTTP calls, error answers and transport failures.
//! - `wire`: Adyen's JSON, private to this adapter.
//! - `mapping`: answers → [`PaymentOutcome`] / [`RefundOutcome`].

mod client;
mod mapping;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;

use crate::domain::{Charge, Money, PaymentOutcome, Refund, RefundOutcome};
use crate::ports::{GatewayError, PaymentGateway, PaymentRequest, RefundGateway};
use crate::secrets::SecretString;
use wire::{AdyenAmount, CancelBody, CaptureBody, ModificationAnswer, PaymentAnswer, payment_body};

/// The `returnUrl` sent with every payment. Adyen requires the field, but a `ContAuth` payment
/// has no shopper to send back, so it is never visited; the reserved `.invalid` domain (RFC 2606)
/// makes sure it could not reach anyone if it were.
pub const RETURN_URL: &str = "https://paybridge.invalid/adyen/return";

/// The `status` of a [`GatewayError::Refused`] that this adapter raised itself, without sending
/// anything to Adyen (a charge without a customer, an unusable idempotency key, …).
pub const NOT_SENT: u16 = 0;

/// Adyen Checkout API client for off-session payments with stored cards.
///
/// `Debug` shows the endpoint and merchant account, never the API key.
#[derive(Clone)]
pub struct AdyenGateway {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    merchant_account: String,
}

impl fmt::Debug for AdyenGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdyenGateway")
            .field("base_url", &self.base_url)
            .field("merchant_account", &self.merchant_account)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl AdyenGateway {
    /// `base_url` is the Checkout endpoint including the API version, e.g.
    /// `https://checkout-test.adyen.com/v72` (a trailing slash is ignored). `http` should come
    /// from [`http_client`](super::http_client), whose timeout bounds every call.
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        api_key: SecretString,
        merchant_account: impl Into<String>,
    ) -> Self {
        AdyenGateway {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            merchant_account: merchant_account.into(),
        }
    }
}

impl PaymentGateway for AdyenGateway {
    async fn retrieve(&self, _charge: &Charge) -> Result<PaymentOutcome, GatewayError> {
        Err(refused_locally(
            "not_supported",
            "Adyen has no payment status API; webhooks report the outcome",
        ))
    }

    /// `POST /payments` for the charge's stored card. Adyen ties stored cards to a shopper, so a
    /// charge without a customer is refused (`customer_required`) without a request.
    async fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, GatewayError> {
        let charge = request.charge;
        let Some(shopper) = charge.customer.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Err(refused_locally(
                "customer_required",
                "Adyen charges a stored payment method only with its shopperReference: the charge needs a customer",
            ));
        };
        let body = payment_body(charge, shopper, &self.merchant_account)?;
        let answer: PaymentAnswer = self
            .post("/payments", &body, &request.idempotency_key)
            .await?;
        mapping::payment_outcome(charge, answer)
    }

    /// `POST /payments/{psp}/captures`. Adyen confirms later with a `CAPTURE` webhook, so the
    /// outcome is the charge as it stands (`authorized`, nothing captured yet).
    async fn capture(
        &self,
        charge: &Charge,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        let psp = payment_reference(charge)?;
        if amount.currency() != charge.currency() {
            return Err(refused_locally(
                "currency_mismatch",
                format!(
                    "cannot capture {amount} of a charge in {}",
                    charge.currency().code().to_ascii_uppercase()
                ),
            ));
        }
        let body = CaptureBody {
            merchant_account: &self.merchant_account,
            amount: AdyenAmount::of(amount)?,
            reference: charge.id.as_str(),
        };
        let answer: ModificationAnswer = self
            .post(&format!("/payments/{psp}/captures"), &body, idempotency_key)
            .await?;
        mapping::modification_outcome(charge, psp, "capture", answer)
    }

    /// `POST /payments/{psp}/cancels`. Adyen confirms later with a `CANCELLATION` webhook, so the
    /// outcome is the charge as it stands.
    async fn cancel(
        &self,
        charge: &Charge,
        idempotency_key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        let psp = payment_reference(charge)?;
        let body = CancelBody {
            merchant_account: &self.merchant_account,
            reference: charge.id.as_str(),
        };
        let answer: ModificationAnswer = self
            .post(&format!("/payments/{psp}/cancels"), &body, idempotency_key)
            .await?;
        mapping::modification_outcome(charge, psp, "cancel", answer)
    }
}

impl RefundGateway for AdyenGateway {
    /// `POST /payments/{psp}/refunds`. Adyen acknowledges the request (`received`) and reports the
    /// result with a REFUND (or REFUND_FAILED) webhook, so the refund stays `pending` until then.
    async fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        let psp = payment_reference(charge)?;
        let body = CaptureBody {
            merchant_account: &self.merchant_account,
            amount: AdyenAmount::of(refund.amount)?,
            reference: refund.id.as_str(),
        };
        let answer: ModificationAnswer = self
            .post(
                &format!("/payments/{psp}/refunds"),
                &body,
                &refund.gateway_idempotency_key(),
            )
            .await?;
        mapping::refund_outcome(psp, answer)
    }

    async fn retrieve_refund(
        &self,
        _charge: &Charge,
        _refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        Err(refused_locally(
            "not_supported",
            "Adyen has no refund status API; REFUND webhooks report the outcome",
        ))
    }
}

/// The payment's pspReference, checked to be the alphanumeric id Adyen issues before it goes
/// into a URL path.
fn payment_reference(charge: &Charge) -> Result<&str, GatewayError> {
    match charge.gateway_ref.as_deref() {
        None | Some("") => Err(refused_locally(
            "no_gateway_reference",
            "the charge has no Adyen pspReference yet",
        )),
        Some(psp) if psp.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(psp),
        Some(_) => Err(refused_locally(
            "invalid_gateway_reference",
            "the charge's gateway reference is not an Adyen pspReference",
        )),
    }
}

/// A refusal this adapter raises itself, without sending anything to Adyen ([`NOT_SENT`]).
fn refused_locally(code: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused {
        status: NOT_SENT,
        code: code.to_owned(),
        message: message.into(),
    }
}
