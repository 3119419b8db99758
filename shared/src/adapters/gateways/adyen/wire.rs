//! The Adyen adapter's wire format: the JSON paybridge sends to Adyen's Checkout API and the
//! fields of its answers paybridge reads, with amounts in Adyen's minor units. Private to the
//! adapter: nothing outside it sees Adyen's JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{RETURN_URL, refused_locally};
use crate::domain::charge::is_reserved_metadata_key;
use crate::domain::{Charge, Money};
use crate::ports::GatewayError;
use crate::webhooks::adyen::amount;

/// `{"value": <Adyen minor units>, "currency": "EUR"}`.
#[derive(Debug, Serialize)]
pub(super) struct AdyenAmount {
    pub(super) value: i64,
    pub(super) currency: String,
}

impl AdyenAmount {
    pub(super) fn of(money: Money) -> Result<Self, GatewayError> {
        Ok(AdyenAmount {
            value: adyen_minor(money)?,
            currency: money.currency().code().to_ascii_uppercase(),
        })
    }
}

/// `money` in Adyen's minor units (see [`amount`]); an IDR amount with a fractional rupiah cannot
/// be sent and is refused (the use cases refuse it before they get here).
pub(super) fn adyen_minor(money: Money) -> Result<i64, GatewayError> {
    amount::adyen_minor(money)
        .map_err(|e| refused_locally("amount_not_representable", e.to_string()))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentBody<'a> {
    pub(super) amount: AdyenAmount,
    pub(super) reference: &'a str,
    pub(super) merchant_account: &'a str,
    pub(super) payment_method: StoredPaymentMethod<'a>,
    pub(super) shopper_reference: &'a str,
    pub(super) shopper_interaction: &'static str,
    pub(super) recurring_processing_model: &'static str,
    pub(super) return_url: &'static str,
    pub(super) metadata: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) additional_data: Option<AdditionalData>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredPaymentMethod<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) stored_payment_method_id: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdditionalData {
    /// A string, as all `additionalData` values are.
    pub(super) manual_capture: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CaptureBody<'a> {
    pub(super) merchant_account: &'a str,
    pub(super) amount: AdyenAmount,
    pub(super) reference: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelBody<'a> {
    pub(super) merchant_account: &'a str,
    pub(super) reference: &'a str,
}

/// The fields of a `/payments` answer paybridge uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentAnswer {
    pub(super) result_code: Option<String>,
    pub(super) psp_reference: Option<String>,
    pub(super) refusal_reason: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub(super) refusal_reason_code: Option<String>,
    /// What the shopper must do (`RedirectShopper`, `IdentifyShopper`, `ChallengeShopper`,
    /// `PresentToShopper`): Adyen's `action` object, kept whole for its checkout components.
    #[serde(default)]
    pub(super) action: Option<serde_json::Value>,
}

/// The answer to a capture or cancel: `status` is `received` when Adyen accepted the request.
#[derive(Debug, Deserialize)]
pub(super) struct ModificationAnswer {
    pub(super) status: Option<String>,
    /// The modification's own reference (a refund's id at Adyen).
    #[serde(default, rename = "pspReference")]
    pub(super) psp_reference: Option<String>,
}

/// Adyen's error body: `{"status":422,"errorCode":"14_030","message":"…","errorType":"validation"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorAnswer {
    #[serde(default, deserialize_with = "string_or_number")]
    pub(super) error_code: Option<String>,
    pub(super) message: Option<String>,
}

/// Codes are strings in Adyen's API; accept a number too rather than lose the answer.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

pub(super) fn payment_body<'a>(
    charge: &'a Charge,
    shopper: &'a str,
    merchant_account: &'a str,
) -> Result<PaymentBody<'a>, GatewayError> {
    let mut metadata: BTreeMap<&str, &str> = (charge.metadata.iter())
        .filter(|(k, _)| !is_reserved_metadata_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The charge's own invoice, never a caller's entry of the same name (the parser refuses
    // those already).
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
