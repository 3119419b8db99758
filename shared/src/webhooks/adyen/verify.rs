//! Adyen standard notifications: a batch of `NotificationRequestItem`s, each signed on its own.
//!
//! Each item's `additionalData.hmacSignature` is base64(HMAC-SHA256(hex-decoded key, data)) with
//! `data = pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
//! eventCode:success` — missing fields empty, nothing escaped. A batch is accepted only if every
//! item verifies; the answer to an accepted batch is the body `[accepted]`.
//! Optional HTTP basic auth is checked before any signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::domain::pci::{Identifier, Step};
use crate::domain::{Gateway, VerifiedEvent};
use crate::secrets::{BasicAuth, SecretString};
use crate::webhooks::{EventKeys, VerifyError, checked_id, event, hmac_sha256, mac_eq};

/// Event codes paybridge acts on; every other code is recorded as ignored.
pub const SUPPORTED_CODES: &[&str] = &[
    "AUTHORISATION",
    "CAPTURE",
    "CAPTURE_FAILED",
    "CANCELLATION",
    "CANCEL_OR_REFUND",
    "REFUND",
    "REFUND_FAILED",
    "REFUNDED_REVERSED",
    "REQUEST_FOR_INFORMATION",
    "NOTIFICATION_OF_CHARGEBACK",
    "DISPUTE_OPENED_WITH_CHARGEBACK",
    "CHARGEBACK",
    "CHARGEBACK_REVERSED",
    "SECOND_CHARGEBACK",
    "PREARBITRATION_WON",
    "PREARBITRATION_LOST",
    "DISPUTE_DEFENSE_PERIOD_ENDED",
];

#[derive(Deserialize)]
struct Batch {
    #[serde(rename = "notificationItems")]
    items: Vec<Wrapper>,
}

#[derive(Deserialize)]
struct Wrapper {
    #[serde(rename = "NotificationRequestItem")]
    item: serde_json::Value,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Item {
    psp_reference: String,
    original_reference: Option<String>,
    merchant_account_code: String,
    merchant_reference: String,
    amount: Option<Amount>,
    event_code: String,
    success: String,
    #[serde(default)]
    event_date: Option<String>,
    additional_data: Option<AdditionalData>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Amount {
    value: Option<serde_json::Value>,
    currency: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AdditionalData {
    hmac_signature: Option<String>,
}

/// The string Adyen signs for one item.
fn data_to_sign(item: &Item) -> String {
    let value = match item.amount.as_ref().and_then(|a| a.value.as_ref()) {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let currency = item
        .amount
        .as_ref()
        .and_then(|a| a.currency.clone())
        .unwrap_or_default();
    [
        item.psp_reference.as_str(),
        item.original_reference.as_deref().unwrap_or(""),
        item.merchant_account_code.as_str(),
        item.merchant_reference.as_str(),
        value.as_str(),
        currency.as_str(),
        item.event_code.as_str(),
        item.success.as_str(),
    ]
    .join(":")
}

/// Checks the `Authorization: Basic …` header when basic auth is configured.
pub fn check_basic_auth(
    header: Option<&str>,
    expected: Option<&BasicAuth>,
) -> Result<(), VerifyError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let presented = header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .ok_or(VerifyError::Unauthorized)?;
    let wanted = format!("{}:{}", expected.username, expected.password.expose());
    if mac_eq(wanted.as_bytes(), &presented) {
        Ok(())
    } else {
        Err(VerifyError::Unauthorized)
    }
}

/// Verifies every item of a batch and returns them as events. Any item that fails refuses the
/// whole batch, so nothing of a forged batch is recorded.
pub fn verify_and_parse(
    body: &[u8],
    hmac_keys: &[SecretString],
) -> Result<Vec<VerifiedEvent>, VerifyError> {
    let keys: Vec<Vec<u8>> = hmac_keys
        .iter()
        .filter_map(|k| hex::decode(k.expose()).ok())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NotConfigured);
    }
    let batch: Batch = serde_json::from_slice(body)
        .map_err(|_| VerifyError::MalformedPayload("not an Adyen notification batch"))?;
    if batch.items.is_empty() {
        return Err(VerifyError::MalformedPayload("empty notification batch"));
    }
    let mut events = Vec::with_capacity(batch.items.len());
    for Wrapper { item: raw } in batch.items {
        let item: Item = serde_json::from_value(raw.clone())
            .map_err(|_| VerifyError::MalformedPayload("malformed NotificationRequestItem"))?;
        let signature = item
            .additional_data
            .as_ref()
            .and_then(|d| d.hmac_signature.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingSignature)?;
        let presented = STANDARD
            .decode(signature)
            .map_err(|_| VerifyError::MalformedSignature)?;
        let data = data_to_sign(&item);
        let matched = keys.iter().fold(false, |acc, key| {
            acc | mac_eq(&hmac_sha256(key, &[data.as_bytes()]), &presented)
        });
        if !matched {
            return Err(VerifyError::SignatureMismatch);
        }
        let psp = checked_id(&item.psp_reference, "pspReference")?;
        let code = checked_id(&item.event_code, "eventCode")?;
        let success = if item.success == "true" {
            "true"
        } else {
            "false"
        };
        let supported = SUPPORTED_CODES.contains(&code.as_str());
        // Adyen sends the same pspReference, code and success again when it retries a failed
        // capture or refund by itself ("Transaction Recaptured"); its eventDate tells that new
        // event from a redelivery of the old one, which repeats the eventDate.
        let event_id = match item.event_date.as_deref().filter(|d| !d.is_empty()) {
            Some(date) => checked_id(&format!("{psp}:{code}:{success}:{date}"), "eventDate")?,
            None => format!("{psp}:{code}:{success}"),
        };
        // A pspReference of Adyen's shape is an exempt identifier (see IDENTIFIERS): the key
        // check leaves it alone in the event id and object id; any other is checked.
        let vouched = if is_psp_reference(&psp) {
            psp.clone()
        } else {
            String::new()
        };
        events.push(event(
            Gateway::Adyen,
            EventKeys {
                event_id,
                event_type: code,
                object_ref: Some(psp),
            },
            supported,
            raw,
            IDENTIFIERS,
            &[&vouched],
        )?);
    }
    Ok(events)
}

/// Fields of a stored notification item (in the delivered batch:
/// `notificationItems[].NotificationRequestItem.<field>`) kept as they are when card numbers are
/// masked, if they have Adyen's shape:
/// - `pspReference`: Adyen's 16-character id of the payment, modification or dispute the item is
///   about — the key paybridge finds the charge or refund by, and part of the event id;
/// - `originalReference`: on a modification or dispute, the pspReference of the payment.
///
/// Adyen generates both; they are 16 letters or digits, and when all digits a 16-digit
/// pspReference looks like a card number more often than not (59 % of random ones). Masking one
/// would cut the event off from its payment. Anything else in those fields is masked as usual.
pub const IDENTIFIERS: &[Identifier] = &[
    Identifier {
        path: &[Step::Key("pspReference")],
        shape: is_psp_reference,
    },
    Identifier {
        path: &[Step::Key("originalReference")],
        shape: is_psp_reference,
    },
];

/// Adyen's pspReference shape: 16 characters, `A`–`Z` or `0`–`9`.
pub fn is_psp_reference(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Computes an item's `hmacSignature` (tests and the local demo).
pub fn sign_item(hex_key: &str, item: &serde_json::Value) -> Option<String> {
    let key = hex::decode(hex_key).ok()?;
    let item: Item = serde_json::from_value(item.clone()).ok()?;
    Some(STANDARD.encode(hmac_sha256(&key, &[data_to_sign(&item).as_bytes()])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Vec<SecretString> {
        vec![SecretString::new(k)]
    }

    /// Vector 1: adyen-python-api-library test/UtilTest.py (test_notification_request_item_hmac).
    const KEY1: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

    fn vector1_item() -> serde_json::Value {
        json!({
            "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
            "amount": {"currency": "EUR", "value": 1130},
            "eventCode": "AUTHORISATION", "eventDate": "2019-05-06T17:15:34.121+02:00",
            "merchantAccountCode": "TestMerchant", "merchantReference": "TestPayment-1407325143704",
            "operations": ["CANCEL", "CAPTURE", "REFUND"], "paymentMethod": "visa",
            "pspReference": "7914073381342284", "reason": "", "success": "true"
        })
    }

    fn batch(items: Vec<serde_json::Value>) -> Vec<u8> {
        let items: Vec<_> = items
            .into_iter()
            .map(|i| json!({"NotificationRequestItem": i}))
            .collect();
        json!({"live": "false", "notificationItems": items})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn published_python_library_vector_verifies() {
        let events = verify_and_parse(&batch(vec![vector1_item()]), &key(KEY1)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].event_id,
            "7914073381342284:AUTHORISATION:true:2019-05-06T17:15:34.121+02:00"
        );
        assert_eq!(events[0].object_ref.as_deref(), Some("7914073381342284"));
        assert!(events[0].supported);
    }

    #[test]
    fn a_retried_refund_after_refund_failed_is_a_new_event_and_a_redelivery_is_not() {
        // Adyen's retry of a failed refund repeats pspReference, code and success; eventDate
        // differs. A redelivery repeats everything. (The HMAC does not cover eventDate, so the
        // vector still verifies with a changed date.)
        let id = |date: Option<&str>| {
            let mut item = vector1_item();
            match date {
                Some(d) => item["eventDate"] = json!(d),
                None => {
                    item.as_object_mut().unwrap().remove("eventDate");
                }
            }
            verify_and_parse(&batch(vec![item]), &key(KEY1)).unwrap()[0]
                .event_id
                .clone()
        };
        let first = id(Some("2019-05-06T17:15:34.121+02:00"));
        assert_eq!(first, id(Some("2019-05-06T17:15:34.121+02:00")));
        assert_ne!(first, id(Some("2019-05-07T09:00:00+02:00")));
        assert_eq!(id(None), "7914073381342284:AUTHORISATION:true");
    }

    #[test]
    fn published_php_and_java_vectors_sign_as_expected() {
        // adyen-php-api-library tests/Unit/Util/HmacSignatureTest.php
        let mut item = vector1_item();
        assert_eq!(
            sign_item(
                "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00",
                &item
            )
            .unwrap(),
            "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I="
        );
        item["merchantReference"] = json!(" TestPayment-1407325143704");
        assert_eq!(
            sign_item(
                "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00",
                &item
            )
            .unwrap(),
            "kLZtgnXU86m/yjnpBD4aqESFgnoDcy1fGOP1Db/L3+4="
        );
        item["merchantReference"] = json!("TestPayment-1407325143704");
        item["amount"]["value"] = json!(0);
        item["eventCode"] = json!("REFUND");
        assert_eq!(
            sign_item(KEY1, &item).unwrap(),
            "J7HhsgZo5KwqdB7LFZJV6rfQgp+RqC2kuYyw/3x3w+8="
        );
        // adyen-java-api-library HMACValidatorTest.testValidateHMACWithoutEscaping: no escaping.
        let java = json!({
            "pspReference": "ZVWN7D3WSMK2WN82", "merchantAccountCode": "AntoniStroinski",
            "merchantReference": "\\:/\\/slashes are fun", "amount": {"value": 1000, "currency": "EUR"},
            "eventCode": "AUTHORISATION", "success": "true"
        });
        assert_eq!(
            sign_item(
                "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174",
                &java
            )
            .unwrap(),
            "CZErGCNQaSsxbaQfZaJlakqo7KPP+mIa8a+wx3yNs9A="
        );
    }

    #[test]
    fn a_batch_with_one_forged_item_is_refused_whole() {
        let mut forged = vector1_item();
        forged["amount"]["value"] = json!(1);
        assert_eq!(
            verify_and_parse(&batch(vec![vector1_item(), forged]), &key(KEY1)).unwrap_err(),
            VerifyError::SignatureMismatch
        );
    }

    #[test]
    fn wrong_key_missing_signature_and_malformed_bodies_are_refused() {
        let wrong = "00".repeat(32);
        assert_eq!(
            verify_and_parse(&batch(vec![vector1_item()]), &key(&wrong)).unwrap_err(),
            VerifyError::SignatureMismatch
        );
        // Rotation: the previous key still verifies.
        assert!(
            verify_and_parse(
                &batch(vec![vector1_item()]),
                &[SecretString::new(wrong), SecretString::new(KEY1)]
            )
            .is_ok()
        );
        let mut unsigned = vector1_item();
        unsigned["additionalData"] = json!({});
        assert_eq!(
            verify_and_parse(&batch(vec![unsigned]), &key(KEY1)).unwrap_err(),
            VerifyError::MissingSignature
        );
        assert!(matches!(
            verify_and_parse(b"[accepted]", &key(KEY1)),
            Err(VerifyError::MalformedPayload(_))
        ));
        assert!(matches!(
            verify_and_parse(&batch(vec![]), &key(KEY1)),
            Err(VerifyError::MalformedPayload(_))
        ));
        assert_eq!(
            verify_and_parse(&batch(vec![vector1_item()]), &key("not-hex")).unwrap_err(),
            VerifyError::NotConfigured
        );
    }

    #[test]
    fn basic_auth_is_checked_when_configured() {
        let auth = BasicAuth {
            username: "adyen".into(),
            password: SecretString::new("s3cret"),
        };
        let good = format!("Basic {}", STANDARD.encode("adyen:s3cret"));
        assert_eq!(check_basic_auth(Some(&good), Some(&auth)), Ok(()));
        assert_eq!(
            check_basic_auth(Some("Basic YWR5ZW46d3Jvbmc="), Some(&auth)),
            Err(VerifyError::Unauthorized)
        );
        assert_eq!(
            check_basic_auth(None, Some(&auth)),
            Err(VerifyError::Unauthorized)
        );
        assert_eq!(check_basic_auth(None, None), Ok(()));
    }
}
