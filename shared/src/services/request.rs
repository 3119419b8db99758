//! Reading billing requests: the checks every request (card numbers anywhere) and every POST body
//! goes through, in one place.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::charge::is_reserved_metadata_key;
use crate::domain::{Gateway, Money, pci};
use crate::error::{Code, Error};
use crate::webhooks::gateway_amount;

/// Metadata limits (Stripe's: 50 keys, 40-character keys, 500-character values; paybridge adds two).
pub const MAX_METADATA_KEYS: usize = 40;
pub const MAX_METADATA_KEY_LEN: usize = 40;
pub const MAX_METADATA_VALUE_LEN: usize = 500;

/// Parses a request body: no card number anywhere (422, and the number is never echoed — checked
/// first, on the raw bytes, so a malformed body is no way around it), valid JSON (an empty body
/// is `{}` where `empty_is_object`), no card number in it as decoded (`"\u0034…"`), a JSON object
/// (serde would otherwise read an array positionally), then `T` — whose `deny_unknown_fields`
/// refuses unknown fields. Returns the typed request and its JSON (for the idempotency
/// fingerprint).
pub fn parse_body<T: DeserializeOwned>(
    body: &[u8],
    empty_is_object: bool,
) -> Result<(T, Value), Error> {
    if pci::contains_pan_bytes(body) {
        return Err(card_data_refused(RequestPart::Body));
    }
    let value: Value = if empty_is_object && body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Eof => "unexpected end of input",
                _ => "unreadable",
            };
            Error::new(
                Code::InvalidJson,
                format!("the body is not valid JSON: {what}"),
            )
        })?
    };
    if pci::json_contains_pan(&value) {
        return Err(card_data_refused(RequestPart::Body));
    }
    if !value.is_object() {
        return Err(Error::new(
            Code::InvalidRequest,
            "the body must be a JSON object",
        ));
    }
    let typed = serde_json::from_value(value.clone())
        .map_err(|e| Error::new(Code::InvalidRequest, e.to_string()))?;
    Ok((typed, value))
}

/// A part of a billing request that is checked for card numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPart {
    Path,
    Query,
    IdempotencyKey,
    Body,
}

impl RequestPart {
    fn as_str(self) -> &'static str {
        match self {
            RequestPart::Path => "path",
            RequestPart::Query => "query string",
            RequestPart::IdempotencyKey => "Idempotency-Key",
            RequestPart::Body => "body",
        }
    }
}

/// 422 `card_data_refused`, naming where (never what).
pub fn card_data_refused(part: RequestPart) -> Error {
    Error::new(
        Code::CardDataRefused,
        format!(
            "the request's {} contains what looks like a card number; paybridge accepts only gateway payment-method tokens",
            part.as_str()
        ),
    )
}

/// Refuses a billing request that carries what looks like a card number in any of `parts` — each
/// given raw and as decoded (percent-decoding of a path or query) — or in its body, raw or as
/// decoded JSON. No field, key or route is exempt: every route calls this before anything else,
/// so nothing of such a request is stored, sent on or logged.
pub fn refuse_card_data<'a>(
    parts: impl IntoIterator<Item = (RequestPart, &'a [u8])>,
    body: &[u8],
) -> Result<(), Error> {
    for (part, text) in parts {
        if pci::contains_pan_bytes(text) {
            return Err(card_data_refused(part));
        }
    }
    let decoded = serde_json::from_slice::<Value>(body).ok();
    if pci::contains_pan_bytes(body) || decoded.as_ref().is_some_and(pci::json_contains_pan) {
        return Err(card_data_refused(RequestPart::Body));
    }
    Ok(())
}

/// Checks metadata against the limits (keys without brackets: they would break form encoding).
pub fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), Error> {
    let bad = metadata.len() > MAX_METADATA_KEYS
        || metadata.iter().any(|(k, v)| {
            k.is_empty()
                || k.len() > MAX_METADATA_KEY_LEN
                || v.len() > MAX_METADATA_VALUE_LEN
                || k.contains(['[', ']'])
        });
    if bad {
        return Err(Error::new(
            Code::InvalidMetadata,
            format!(
                "metadata allows {MAX_METADATA_KEYS} keys of 1-{MAX_METADATA_KEY_LEN} characters (no brackets) with values of at most {MAX_METADATA_VALUE_LEN}"
            ),
        ));
    }
    if let Some(key) = metadata.keys().find(|k| is_reserved_metadata_key(k)) {
        return Err(Error::new(
            Code::InvalidMetadata,
            format!(
                "metadata key `{key}` is paybridge's own: it sets `invoice_id` and the `paybridge_` keys on the gateway's objects itself"
            ),
        ));
    }
    Ok(())
}

/// Refuses with 422 `amount_not_representable` an amount `gateway` cannot take in its own minor
/// units (see [`gateway_amount`]: a Stripe three-decimal amount not ending in 0, an Adyen IDR
/// amount with a fraction of a rupiah). The use cases ask before anything is stored or sent.
pub fn check_gateway_amount(gateway: Gateway, money: Money) -> Result<(), Error> {
    gateway_amount(gateway, money)
        .map(|_| ())
        .map_err(|e| Error::new(Code::AmountNotRepresentable, e.to_string()))
}
