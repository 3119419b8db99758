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
//!   Adyen, IDR has 0); amounts are converted at this edge, see [`adyen_minor`].
//!
//! Wire structs are private: nothing outside this module sees Adyen's JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{
    Charge, ChargeId, ChargeStatus, Failure, GatewayUpdate, Interpretation, Money, PaymentOutcome,
    PaymentUpdate, Refund, RefundId, RefundOutcome, RefundStatus, RefundUpdate,
};
use crate::ports::{GatewayError, PaymentGateway, PaymentRequest, RefundGateway};
use crate::secrets::SecretString;

/// The `returnUrl` sent with every payment. Adyen requires the field, but a `ContAuth` payment
/// has no shopper to send back, so it is never visited; the reserved `.invalid` domain (RFC 2606)
/// makes sure it could not reach anyone if it were.
pub const RETURN_URL: &str = "https://paybridge.invalid/adyen/return";

/// The `status` of a [`GatewayError::Refused`] that this adapter raised itself, without sending
/// anything to Adyen (a charge without a customer, an unusable idempotency key, …).
pub const NOT_SENT: u16 = 0;

/// Adyen's longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// Adyen's error code for "request already processed or in progress": another request with the
/// same idempotency key is still running, so the payment may well exist.
const IN_PROGRESS: &str = "704";

const X_API_KEY: &str = "x-api-key";
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` by Adyen on errors that a retry with the same idempotency key may resolve.
const TRANSIENT_ERROR: &str = "transient-error";

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

    /// POSTs `body` as JSON and parses a 2xx answer as `T`. Every other answer, and a 2xx body
    /// that is not the JSON expected, becomes a [`GatewayError`].
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<T, GatewayError> {
        let headers = self.headers(idempotency_key)?;
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let transient = response
            .headers()
            .get(TRANSIENT_ERROR)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        // Adyen may have acted even if the body is lost on the way.
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(error_from_response(status, transient, retry_after, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::unknown(
                format!("Adyen answered {status} with a body that is not the expected JSON"),
                Some(Box::new(e)),
            )
        })
    }

    fn headers(&self, idempotency_key: &str) -> Result<HeaderMap, GatewayError> {
        // Without a usable key a retry could charge twice: refuse rather than send without one.
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(refused_locally(
                "invalid_idempotency_key",
                format!(
                    "Adyen takes idempotency keys of 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
                ),
            ));
        }
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            refused_locally(
                "invalid_idempotency_key",
                "the idempotency key is not a valid HTTP header value",
            )
        })?;
        let mut api_key = HeaderValue::from_str(self.api_key.expose()).map_err(|_| {
            refused_locally(
                "invalid_api_key",
                "the Adyen API key is not a valid HTTP header value",
            )
        })?;
        api_key.set_sensitive(true);
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(X_API_KEY, api_key);
        headers.insert(IDEMPOTENCY_KEY, key);
        Ok(headers)
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
        payment_outcome(charge, answer)
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
        modification_outcome(charge, psp, "capture", answer)
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
        modification_outcome(charge, psp, "cancel", answer)
    }
}

// ---- wire format ------------------------------------------------------------------------------

/// `{"value": <Adyen minor units>, "currency": "EUR"}`.
#[derive(Debug, Serialize)]
struct AdyenAmount {
    value: i64,
    currency: String,
}

impl AdyenAmount {
    fn of(money: Money) -> Result<Self, GatewayError> {
        Ok(AdyenAmount {
            value: adyen_minor(money)?,
            currency: money.currency().code().to_ascii_uppercase(),
        })
    }
}

/// `money` in Adyen's minor units. Adyen uses 2 decimals for CLP and ISK (ISO 4217: 0) and 0 for
/// IDR (ISO 4217: 2); an IDR amount with a fractional rupiah cannot be sent and is refused.
fn adyen_minor(money: Money) -> Result<i64, GatewayError> {
    let minor = money.minor();
    match money.currency().code() {
        // At most Money::MAX_MINOR * 100 = 10^13: no overflow.
        "clp" | "isk" => Ok(minor * 100),
        "idr" if minor % 100 == 0 => Ok(minor / 100),
        "idr" => Err(refused_locally(
            "amount_not_supported",
            format!("Adyen takes IDR in whole rupiah; {money} has a fraction"),
        )),
        _ => Ok(minor),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentBody<'a> {
    amount: AdyenAmount,
    reference: &'a str,
    merchant_account: &'a str,
    payment_method: StoredPaymentMethod<'a>,
    shopper_reference: &'a str,
    shopper_interaction: &'static str,
    recurring_processing_model: &'static str,
    return_url: &'static str,
    metadata: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_data: Option<AdditionalData>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredPaymentMethod<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    stored_payment_method_id: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdditionalData {
    /// A string, as all `additionalData` values are.
    manual_capture: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaptureBody<'a> {
    merchant_account: &'a str,
    amount: AdyenAmount,
    reference: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody<'a> {
    merchant_account: &'a str,
    reference: &'a str,
}

/// The fields of a `/payments` answer paybridge uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentAnswer {
    result_code: Option<String>,
    psp_reference: Option<String>,
    refusal_reason: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    refusal_reason_code: Option<String>,
}

/// The answer to a capture or cancel: `status` is `received` when Adyen accepted the request.
#[derive(Debug, Deserialize)]
struct ModificationAnswer {
    status: Option<String>,
    /// The modification's own reference (a refund's id at Adyen).
    #[serde(default, rename = "pspReference")]
    psp_reference: Option<String>,
}

/// Adyen's error body: `{"status":422,"errorCode":"14_030","message":"…","errorType":"validation"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorAnswer {
    #[serde(default, deserialize_with = "string_or_number")]
    error_code: Option<String>,
    message: Option<String>,
}

/// Codes are strings in Adyen's API; accept a number too rather than lose the answer.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

// ---- mapping (pure) ---------------------------------------------------------------------------

fn payment_body<'a>(
    charge: &'a Charge,
    shopper: &'a str,
    merchant_account: &'a str,
) -> Result<PaymentBody<'a>, GatewayError> {
    let mut metadata: BTreeMap<&str, &str> = charge
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The charge's own invoice wins over a caller's metadata entry of the same name.
    metadata.insert("invoice_id", &charge.invoice_id);
    Ok(PaymentBody {
        amount: AdyenAmount::of(charge.amount)?,
        reference: charge.id.as_str(),
        merchant_account,
        payment_method: StoredPaymentMethod {
            kind: "scheme",
            stored_payment_method_id: &charge.payment_method,
        },
        shopper_reference: shopper,
        shopper_interaction: "ContAuth",
        recurring_processing_model: "UnscheduledCardOnFile",
        return_url: RETURN_URL,
        metadata,
        additional_data: (!charge.capture).then_some(AdditionalData {
            manual_capture: "true",
        }),
    })
}

/// What a `/payments` answer means for `charge`. A `resultCode` paybridge does not know is an
/// unknown outcome, not a failure: the payment may have gone through.
fn payment_outcome(charge: &Charge, answer: PaymentAnswer) -> Result<PaymentOutcome, GatewayError> {
    let Some(gateway_ref) = answer.psp_reference.filter(|p| !p.is_empty()) else {
        return Err(GatewayError::unknown(
            "Adyen's payment answer has no pspReference",
            None,
        ));
    };
    let result_code = answer.result_code.as_deref().unwrap_or("");
    let (status, captured, failure) = match result_code {
        "Authorised" if charge.capture => (ChargeStatus::Succeeded, charge.amount.minor(), None),
        "Authorised" => (ChargeStatus::Authorized, 0, None),
        "Refused" => (
            ChargeStatus::Failed,
            0,
            Some(Failure {
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
            }),
        ),
        "Cancelled" => (ChargeStatus::Canceled, 0, None),
        "Pending" | "Received" => (ChargeStatus::Processing, 0, None),
        "RedirectShopper" | "IdentifyShopper" | "ChallengeShopper" | "PresentToShopper" => {
            (ChargeStatus::RequiresAction, 0, None)
        }
        other => {
            return Err(GatewayError::unknown(
                format!(
                    "Adyen answered resultCode `{other}` for {gateway_ref}, which paybridge does not map"
                ),
                None,
            ));
        }
    };
    Ok(PaymentOutcome {
        gateway_ref,
        status,
        captured,
        failure,
    })
}

/// A modification Adyen `received` leaves the charge as it was until the webhook arrives.
fn modification_outcome(
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
        }),
        other => Err(GatewayError::unknown(
            format!(
                "Adyen answered the {operation} of {psp} with status {other:?}, not \"received\""
            ),
            None,
        )),
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

/// Maps a non-2xx answer. 429, 5xx, Adyen's transient errors and "already in progress" (704) are
/// unknown outcomes to retry with the same key; any other 4xx is a refusal.
fn error_from_response(
    status: StatusCode,
    transient: bool,
    retry_after: Option<Duration>,
    body: &[u8],
) -> GatewayError {
    let parsed: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(e) => (e.error_code, e.message),
        None => (None, None),
    };
    let code = code.unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = message.unwrap_or_else(|| snippet(body));
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || !status.is_client_error()
        || transient
        || code == IN_PROGRESS;
    if retryable {
        GatewayError::Unknown {
            message: format!("Adyen answered {status} ({code}): {message}"),
            retry_after,
            source: None,
        }
    } else {
        GatewayError::Refused {
            status: status.as_u16(),
            code,
            message,
        }
    }
}

/// The start of a body that is not Adyen's JSON error (a proxy's HTML page, say).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    text.chars().take(200).collect()
}

/// `Retry-After` in seconds; the HTTP-date form is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A request that failed in transit. Only one that was never sent (a malformed URL) is a refusal;
/// after a timeout or a broken connection Adyen may have acted.
fn transport_error(e: reqwest::Error) -> GatewayError {
    if e.is_builder() {
        return GatewayError::Refused {
            status: NOT_SENT,
            code: "invalid_request".to_owned(),
            message: format!("the Adyen request could not be built: {e}"),
        };
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed in transit"
    };
    GatewayError::unknown(
        format!("the Adyen request {what}; its outcome is unknown"),
        Some(Box::new(e)),
    )
}

fn refused_locally(code: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused {
        status: NOT_SENT,
        code: code.to_owned(),
        message: message.into(),
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
        match (answer.status.as_deref(), answer.psp_reference) {
            (Some("received"), Some(reference)) => Ok(RefundOutcome {
                gateway_ref: reference,
                status: RefundStatus::Pending,
                failure: None,
            }),
            (other, _) => Err(GatewayError::unknown(
                format!(
                    "Adyen answered the refund of {psp} with status {other:?}, not \"received\""
                ),
                None,
            )),
        }
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

// ---- webhook events ---------------------------------------------------------------------------

/// Converts an amount in Adyen's minor units back to ISO 4217 minor units (see `adyen_minor`).
fn iso_minor(value: i64, currency: &str) -> i64 {
    match currency.to_ascii_lowercase().as_str() {
        "clp" | "isk" => value / 100,
        "idr" => value.saturating_mul(100),
        _ => value,
    }
}

/// What a verified Adyen notification item (its stored, masked JSON) says about paybridge's
/// charges and refunds. Pure: the worker resolves and applies the result.
///
/// paybridge sends its charge id as the payment's `reference` and its refund id as the refund's
/// `reference`, so `merchantReference` names our object; `pspReference` is Adyen's id of the
/// payment (AUTHORISATION) or of the modification, whose payment is `originalReference`.
pub fn interpret(event_code: &str, payload: &str) -> Interpretation {
    let Ok(item) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let text = |key: &str| item.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let success = text("success").as_deref() == Some("true");
    let psp = text("pspReference");
    let original = text("originalReference");
    let merchant_reference = text("merchantReference");
    let reason = text("reason").filter(|r| !r.is_empty());
    let currency = item
        .pointer("/amount/currency")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let value = item
        .pointer("/amount/value")
        .and_then(|v| v.as_i64())
        .map(|v| iso_minor(v, &currency))
        .unwrap_or(0);
    let failure = |code: &str| {
        Some(Failure {
            code: code.to_owned(),
            message: reason.clone().unwrap_or_else(|| code.to_owned()),
        })
    };
    let payment = |gateway_ref: Option<String>,
                   status: ChargeStatus,
                   captured: i64,
                   failure: Option<Failure>,
                   captured_if_automatic: bool| {
        Interpretation::Apply(vec![GatewayUpdate::Payment(PaymentUpdate {
            gateway_ref: gateway_ref.clone(),
            charge_id: merchant_reference
                .as_deref()
                .and_then(|r| ChargeId::parse(r).ok()),
            outcome: PaymentOutcome {
                gateway_ref: gateway_ref.unwrap_or_default(),
                status,
                captured,
                failure,
            },
            captured_if_automatic,
        })])
    };
    let refund = |status: RefundStatus, failure: Option<Failure>| {
        Interpretation::Apply(vec![GatewayUpdate::Refund(RefundUpdate {
            gateway_ref: psp.clone(),
            refund_id: merchant_reference
                .as_deref()
                .and_then(|r| RefundId::parse(r).ok()),
            outcome: RefundOutcome {
                gateway_ref: psp.clone().unwrap_or_default(),
                status,
                failure,
            },
        })])
    };
    match (event_code, success) {
        ("AUTHORISATION", true) => payment(psp.clone(), ChargeStatus::Authorized, 0, None, true),
        ("AUTHORISATION", false) => payment(
            psp.clone(),
            ChargeStatus::Failed,
            0,
            failure("refused"),
            false,
        ),
        ("CAPTURE", true) => payment(
            original.clone(),
            ChargeStatus::Succeeded,
            value,
            None,
            false,
        ),
        ("CANCELLATION", true) => payment(original.clone(), ChargeStatus::Canceled, 0, None, false),
        ("REFUND", true) => refund(RefundStatus::Succeeded, None),
        ("REFUND", false) | ("REFUND_FAILED", _) | ("REFUNDED_REVERSED", _) => {
            refund(RefundStatus::Failed, failure("refund_failed"))
        }
        ("CAPTURE_FAILED", _) | ("CAPTURE", false) => Interpretation::Ignore(
            "the capture failed at Adyen; the charge stays authorized".into(),
        ),
        ("CANCELLATION", false) => Interpretation::Ignore(
            "the cancellation failed at Adyen; the charge is unchanged".into(),
        ),
        (code, _) if code.contains("CHARGEBACK") => {
            Interpretation::Ignore("disputes are recorded but not modelled yet".into())
        }
        (code, _) => Interpretation::Ignore(format!("{code} does not change charges or refunds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChargeId, Gateway};

    fn charge(capture: bool) -> Charge {
        Charge {
            customer: Some("cus_1".into()),
            capture,
            metadata: BTreeMap::from([("order".into(), "42".into())]),
            ..Charge::pending(
                ChargeId::generate(),
                "inv_1",
                Money::parse(1999, "eur").unwrap(),
                Gateway::Adyen,
                "8415698462516992",
                0,
            )
        }
    }

    fn answer(json: &str) -> PaymentAnswer {
        serde_json::from_str(json).unwrap()
    }

    fn outcome(capture: bool, json: &str) -> Result<PaymentOutcome, GatewayError> {
        payment_outcome(&charge(capture), answer(json))
    }

    #[test]
    fn authorised_is_succeeded_when_captured_at_once_and_authorized_otherwise() {
        let json = r#"{"resultCode":"Authorised","pspReference":"PSP1"}"#;
        let now = outcome(true, json).unwrap();
        assert_eq!(
            (now.gateway_ref.as_str(), now.status, now.captured),
            ("PSP1", ChargeStatus::Succeeded, 1999)
        );
        let later = outcome(false, json).unwrap();
        assert_eq!(
            (later.status, later.captured),
            (ChargeStatus::Authorized, 0)
        );
    }

    #[test]
    fn refused_keeps_adyens_reason_and_code() {
        let o = outcome(
            true,
            r#"{"resultCode":"Refused","pspReference":"PSP1","refusalReason":"Not enough balance","refusalReasonCode":"12"}"#,
        )
        .unwrap();
        assert_eq!(o.status, ChargeStatus::Failed);
        assert_eq!(
            o.failure,
            Some(Failure {
                code: "12".into(),
                message: "Not enough balance".into()
            })
        );
        let bare = outcome(true, r#"{"resultCode":"Refused","pspReference":"PSP1"}"#).unwrap();
        assert_eq!(bare.failure.unwrap().code, "refused");
        let numeric = outcome(
            true,
            r#"{"resultCode":"Refused","pspReference":"PSP1","refusalReasonCode":2}"#,
        )
        .unwrap();
        assert_eq!(numeric.failure.unwrap().code, "2");
    }

    #[test]
    fn every_known_result_code_maps_to_a_status() {
        for (code, status) in [
            ("Error", ChargeStatus::Failed),
            ("Cancelled", ChargeStatus::Canceled),
            ("Pending", ChargeStatus::Processing),
            ("Received", ChargeStatus::Processing),
            ("RedirectShopper", ChargeStatus::RequiresAction),
            ("IdentifyShopper", ChargeStatus::RequiresAction),
            ("ChallengeShopper", ChargeStatus::RequiresAction),
            ("PresentToShopper", ChargeStatus::RequiresAction),
        ] {
            let o = outcome(
                true,
                &format!(r#"{{"resultCode":"{code}","pspReference":"PSP1"}}"#),
            )
            .unwrap();
            assert_eq!((o.status, o.captured), (status, 0), "{code}");
        }
        let error = outcome(true, r#"{"resultCode":"Error","pspReference":"PSP1"}"#).unwrap();
        assert_eq!(error.failure.unwrap().code, "adyen_error");
    }

    #[test]
    fn an_unknown_result_code_or_a_missing_reference_is_an_unknown_outcome() {
        for json in [
            r#"{"resultCode":"PartiallyAuthorised","pspReference":"PSP1"}"#,
            r#"{"pspReference":"PSP1"}"#,
            r#"{"resultCode":"Authorised"}"#,
            r#"{"resultCode":"Authorised","pspReference":""}"#,
        ] {
            assert!(
                matches!(outcome(true, json), Err(GatewayError::Unknown { .. })),
                "{json}"
            );
        }
    }

    #[test]
    fn a_validation_error_is_refused_with_adyens_code() {
        let body = br#"{"status":422,"errorCode":"14_030","message":"Return URL is missing.","errorType":"validation","pspReference":"X"}"#;
        match error_from_response(StatusCode::UNPROCESSABLE_ENTITY, false, None, body) {
            GatewayError::Refused {
                status,
                code,
                message,
            } => assert_eq!(
                (status, code.as_str(), message.as_str()),
                (422, "14_030", "Return URL is missing.")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_non_json_error_body_is_still_classified() {
        match error_from_response(StatusCode::FORBIDDEN, false, None, b"<html>denied</html>") {
            GatewayError::Refused {
                status,
                code,
                message,
            } => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (403, "http_403", "<html>denied</html>")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_from_response(StatusCode::BAD_GATEWAY, false, None, b""),
            GatewayError::Unknown { .. }
        ));
    }

    #[test]
    fn throttling_server_errors_and_transient_errors_are_unknown_outcomes() {
        let wait = Some(Duration::from_secs(3));
        match error_from_response(StatusCode::TOO_MANY_REQUESTS, false, wait, b"{}") {
            GatewayError::Unknown { retry_after, .. } => assert_eq!(retry_after, wait),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_from_response(StatusCode::INTERNAL_SERVER_ERROR, false, None, br#"{"status":500,"errorCode":"905","message":"Payment details are not supported","errorType":"configuration"}"#),
            GatewayError::Unknown { .. }
        ));
        assert!(matches!(
            error_from_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                true,
                None,
                br#"{"status":422,"errorCode":"000"}"#
            ),
            GatewayError::Unknown { .. }
        ));
        for status in [StatusCode::CONFLICT, StatusCode::UNPROCESSABLE_ENTITY] {
            assert!(matches!(
                error_from_response(status, false, None, br#"{"status":409,"errorCode":"704","message":"request already processed or in progress"}"#),
                GatewayError::Unknown { .. }
            ));
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 3 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn the_payment_body_has_adyens_stored_card_shape() {
        let mut c = charge(false);
        c.metadata.insert("invoice_id".into(), "spoofed".into());
        let json = serde_json::to_value(payment_body(&c, "cus_1", "Merchant").unwrap()).unwrap();
        assert_eq!(
            json["amount"],
            serde_json::json!({"value": 1999, "currency": "EUR"})
        );
        assert_eq!(json["reference"], c.id.as_str());
        assert_eq!(json["merchantAccount"], "Merchant");
        assert_eq!(
            json["paymentMethod"],
            serde_json::json!({"type": "scheme", "storedPaymentMethodId": "8415698462516992"})
        );
        assert_eq!(json["shopperReference"], "cus_1");
        assert_eq!(json["shopperInteraction"], "ContAuth");
        assert_eq!(json["recurringProcessingModel"], "UnscheduledCardOnFile");
        assert_eq!(json["returnUrl"], RETURN_URL);
        assert_eq!(
            json["metadata"],
            serde_json::json!({"invoice_id": "inv_1", "order": "42"})
        );
        assert_eq!(
            json["additionalData"],
            serde_json::json!({"manualCapture": "true"})
        );
        let at_once =
            serde_json::to_value(payment_body(&charge(true), "cus_1", "M").unwrap()).unwrap();
        assert!(at_once.get("additionalData").is_none());
    }

    #[test]
    fn amounts_use_adyens_minor_units() {
        let m = |minor, cur| adyen_minor(Money::parse(minor, cur).unwrap());
        assert_eq!(m(1999, "eur").unwrap(), 1999);
        assert_eq!(m(500, "jpy").unwrap(), 500);
        assert_eq!(m(1250, "kwd").unwrap(), 1250);
        assert_eq!(m(5000, "clp").unwrap(), 500_000);
        assert_eq!(m(2790, "isk").unwrap(), 279_000);
        assert_eq!(m(1_500_000, "idr").unwrap(), 15_000);
        assert!(matches!(
            m(1_500_050, "idr"),
            Err(GatewayError::Refused {
                status: NOT_SENT,
                ..
            })
        ));
    }

    #[test]
    fn a_received_modification_leaves_the_charge_as_it_was() {
        let mut c = charge(false);
        c.status = ChargeStatus::Authorized;
        c.gateway_ref = Some("PSP1".into());
        let o = modification_outcome(
            &c,
            "PSP1",
            "capture",
            ModificationAnswer {
                status: Some("received".into()),
                psp_reference: Some("MOD1".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (o.gateway_ref.as_str(), o.status, o.captured),
            ("PSP1", ChargeStatus::Authorized, 0)
        );
        assert!(matches!(
            modification_outcome(
                &c,
                "PSP1",
                "capture",
                ModificationAnswer {
                    status: None,
                    psp_reference: None
                }
            ),
            Err(GatewayError::Unknown { .. })
        ));
    }

    #[test]
    fn only_alphanumeric_psp_references_reach_a_url() {
        let mut c = charge(false);
        assert!(matches!(
            payment_reference(&c),
            Err(GatewayError::Refused { ref code, .. }) if code == "no_gateway_reference"
        ));
        c.gateway_ref = Some("../../payments".into());
        assert!(matches!(
            payment_reference(&c),
            Err(GatewayError::Refused { ref code, .. }) if code == "invalid_gateway_reference"
        ));
        c.gateway_ref = Some("QFQTPCQ8HXSKGK82".into());
        assert_eq!(payment_reference(&c).unwrap(), "QFQTPCQ8HXSKGK82");
    }
}
