//! Webhook verification, parsing and interpretation, one folder per sender.
//!
//! Each verifier is a pure function over the raw body bytes, the request headers, the configured
//! secrets (current first, then previous during a rotation) and the current time, passed in.
//! Signatures are compared in constant time. A verifier's output is a list of
//! [`VerifiedEvent`]s ready to be recorded — with card numbers already masked, except in the
//! identifier fields each sender documents (its `IDENTIFIERS`, by JSON path). Each sender's
//! `interpret` reads a recorded event back into an [`Interpretation`] for the apply-event use case;
//! `apply_payment` and `apply_refund` build the updates they have in common. [`amount`] holds each
//! gateway's minor units, used both ways at the edge (adapters and interpreters).

pub mod adyen;
pub mod amount;
pub mod standard;
pub mod stripe;

pub use amount::{NotRepresentable, gateway_amount};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::event::MAX_EVENT_ID_LEN;
use crate::domain::pci::{self, Identifier};
use crate::domain::{
    ChargeId, ChargeStatus, Failure, GatewayUpdate, Interpretation, PaymentOutcome, PaymentUpdate,
    RefundId, RefundOutcome, RefundStatus, RefundUpdate, VerifiedEvent,
};

/// Why a webhook was refused. `reason()` names it for metrics; the HTTP answer says little more,
/// so a forger learns nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the signature header is malformed")]
    MalformedSignature,
    #[error("the signature does not match")]
    SignatureMismatch,
    #[error("the timestamp is outside the tolerance")]
    StaleTimestamp,
    #[error("the body is not a valid webhook payload: {0}")]
    MalformedPayload(&'static str),
    #[error("credentials are missing or wrong")]
    Unauthorized,
    /// Our own misconfiguration: no secret to verify with. Answered 5xx so the gateway retries
    /// after the operator fixes it.
    #[error("no webhook secret is configured for this gateway")]
    NotConfigured,
}

impl VerifyError {
    /// A short metric dimension value.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature => "missing_signature",
            VerifyError::MalformedSignature => "malformed_signature",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::StaleTimestamp => "stale_timestamp",
            VerifyError::MalformedPayload(_) => "malformed_payload",
            VerifyError::Unauthorized => "unauthorized",
            VerifyError::NotConfigured => "not_configured",
        }
    }
}

/// HMAC-SHA256 of `parts` concatenated, under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of a computed MAC and a candidate from the request.
pub(crate) fn mac_eq(expected: &[u8], candidate: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == candidate.len() && bool::from(expected.ct_eq(candidate))
}

/// Whether `now` and `timestamp` (unix seconds) are within `tolerance_secs` of each other.
pub(crate) fn within_tolerance(timestamp: i64, now: i64, tolerance_secs: u64) -> bool {
    timestamp.abs_diff(now) <= tolerance_secs
}

/// Checks that a gateway-supplied id is usable as a key: 1–255 visible ASCII characters.
pub(crate) fn checked_id(id: &str, what: &'static str) -> Result<String, VerifyError> {
    if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(VerifyError::MalformedPayload(what));
    }
    Ok(id.to_owned())
}

/// The JSON payload with card numbers masked, as stored: everywhere but the sender's documented
/// identifier fields (`identifiers`, by path and shape; see [`crate::domain::pci::json`]).
pub(crate) fn masked_payload(mut value: serde_json::Value, identifiers: &[Identifier]) -> String {
    pci::mask_json_except(&mut value, identifiers);
    value.to_string()
}

/// Whether `key` — an event id, type or object id that records are keyed by — holds a card number
/// outside the identifier values the sender's exemptions vouch for (`vouched`: a key that is one of
/// them, or starts with one, is checked only after it).
fn card_like_key(key: &str, vouched: &[&str]) -> bool {
    let rest = vouched
        .iter()
        .filter(|v| !v.is_empty())
        .find_map(|v| key.strip_prefix(v))
        .unwrap_or(key);
    pci::contains_pan(rest)
}

/// Builds the event record input shared by all senders: the payload masked but for the sender's
/// `identifiers`. The event id, type and object id are stored and looked up exactly, so they
/// cannot be masked (two events could become one, or an event find another's charge): one that
/// holds a card number, other than a value of an exempt field (`vouched`), refuses the event.
pub(crate) fn event(
    gateway: crate::domain::Gateway,
    keys: EventKeys,
    supported: bool,
    payload: serde_json::Value,
    identifiers: &[Identifier],
    vouched: &[&str],
) -> Result<VerifiedEvent, VerifyError> {
    let EventKeys {
        event_id,
        event_type,
        object_ref,
    } = keys;
    if card_like_key(&event_id, vouched)
        || card_like_key(&event_type, vouched)
        || object_ref
            .as_deref()
            .is_some_and(|r| card_like_key(r, vouched))
    {
        return Err(VerifyError::MalformedPayload(
            "an event id, type or object id looks like a card number",
        ));
    }
    Ok(VerifiedEvent {
        gateway,
        event_id,
        event_type,
        object_ref,
        supported,
        payload: masked_payload(payload, identifiers),
    })
}

/// What an event record is keyed and found by.
pub(crate) struct EventKeys {
    pub event_id: String,
    pub event_type: String,
    pub object_ref: Option<String>,
}

/// An event's update of one payment: `gateway_ref` is the gateway's id of it (and of the
/// outcome), `charge_id` the id paybridge sent along, if the event echoes it. Untimed and without
/// a reported amount; senders that have them set `observed_at` and `reported`.
pub(crate) fn payment_update(
    gateway_ref: Option<String>,
    charge_id: Option<ChargeId>,
    status: ChargeStatus,
    captured: i64,
    failure: Option<Failure>,
    captured_if_automatic: bool,
) -> PaymentUpdate {
    PaymentUpdate {
        gateway_ref: gateway_ref.clone(),
        charge_id,
        outcome: PaymentOutcome {
            gateway_ref: gateway_ref.unwrap_or_default(),
            status,
            captured,
            failure,
            action: None,
        },
        captured_if_automatic,
        observed_at: None,
        reported: None,
    }
}

/// [`payment_update`], as the one update of an event.
pub(crate) fn apply_payment(
    gateway_ref: Option<String>,
    charge_id: Option<ChargeId>,
    status: ChargeStatus,
    captured: i64,
    failure: Option<Failure>,
    captured_if_automatic: bool,
) -> Interpretation {
    Interpretation::Apply(vec![GatewayUpdate::Payment(payment_update(
        gateway_ref,
        charge_id,
        status,
        captured,
        failure,
        captured_if_automatic,
    ))])
}

/// An event's update of one refund: `gateway_ref` is the gateway's id of it (and of the outcome),
/// `refund_id` the id paybridge sent along, if the event echoes it. Without the refunded payment,
/// a time or an amount; senders that have them set them.
pub(crate) fn refund_update(
    gateway_ref: Option<String>,
    refund_id: Option<RefundId>,
    status: RefundStatus,
    failure: Option<Failure>,
) -> RefundUpdate {
    RefundUpdate {
        gateway_ref: gateway_ref.clone(),
        refund_id,
        outcome: RefundOutcome {
            gateway_ref: gateway_ref.unwrap_or_default(),
            status,
            failure,
        },
        payment_ref: None,
        reported: None,
        observed_at: None,
    }
}

/// [`refund_update`], as the one update of an event.
pub(crate) fn apply_refund(
    gateway_ref: Option<String>,
    refund_id: Option<RefundId>,
    status: RefundStatus,
    failure: Option<Failure>,
) -> Interpretation {
    Interpretation::Apply(vec![GatewayUpdate::Refund(refund_update(
        gateway_ref,
        refund_id,
        status,
        failure,
    ))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretString;
    use proptest::prelude::*;

    fn adyen_batch(item: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
            .to_string()
            .into_bytes()
    }

    const ADYEN_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

    fn signed_adyen(mut item: serde_json::Value) -> Result<Vec<VerifiedEvent>, VerifyError> {
        let sig = adyen::sign_item(ADYEN_KEY, &item).unwrap();
        item["additionalData"]["hmacSignature"] = serde_json::json!(sig);
        adyen::verify_and_parse(&adyen_batch(item), &[SecretString::new(ADYEN_KEY)])
    }

    #[test]
    fn adyen_identifiers_are_kept_by_path_and_the_same_number_elsewhere_is_masked() {
        // pspReference of adyen-python-api-library's test notification (its first 14 digits pass
        // Luhn); originalReference of adyen-java-api-library's chargeback mock.
        let events = signed_adyen(serde_json::json!({
            "pspReference": "7914073381342284", "originalReference": "9913333333333333",
            "eventCode": "CHARGEBACK", "success": "true", "merchantAccountCode": "M",
            "merchantReference": "7914073381342284", "amount": {"value": 1000, "currency": "EUR"},
            "reason": "customer wrote 4111 1111 1111 1111 123",
            "additionalData": {"pspReference": "7914073381342284"}
        }))
        .unwrap();
        let payload: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
        assert_eq!(payload["pspReference"], "7914073381342284");
        assert_eq!(payload["originalReference"], "9913333333333333");
        assert_eq!(payload["merchantReference"], "**********3422**");
        assert_eq!(
            payload["additionalData"]["pspReference"],
            "**********3422**"
        );
        assert_eq!(payload["reason"], "customer wrote **** **** **** 1111 ***");
        assert_eq!(events[0].object_ref.as_deref(), Some("7914073381342284"));
        assert!(
            events[0]
                .event_id
                .starts_with("7914073381342284:CHARGEBACK")
        );
        assert_eq!(
            adyen::IDENTIFIERS
                .iter()
                .map(|i| i.path_text())
                .collect::<Vec<_>>(),
            ["pspReference", "originalReference"]
        );
    }

    #[test]
    fn an_event_whose_keys_look_like_card_numbers_outside_exempt_fields_is_refused() {
        // A pspReference that is not of Adyen's shape is not exempt.
        let refused = signed_adyen(serde_json::json!({
            "pspReference": "4111 1111 1111 1111", "eventCode": "AUTHORISATION", "success": "true",
            "merchantAccountCode": "M", "merchantReference": "r", "additionalData": {}
        }));
        assert!(
            matches!(refused, Err(VerifyError::MalformedPayload(_))),
            "{refused:?}"
        );
        let refused = signed_adyen(serde_json::json!({
            "pspReference": "7914073381342284", "eventCode": "AUTHORISATION", "success": "true",
            "eventDate": "4111111111111111", "merchantAccountCode": "M", "merchantReference": "r",
            "additionalData": {}
        }));
        assert!(
            matches!(refused, Err(VerifyError::MalformedPayload(_))),
            "{refused:?}"
        );
        // Stripe has no exemption: a card number in an event or object id refuses the event.
        for body in [
            r#"{"id":"evt_4111111111111111","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}"#,
            r#"{"id":"evt_1","type":"charge.refunded","data":{"object":{"id":"ch_4111-1111-1111-1111"}}}"#,
            r#"{"id":"evt_1","type":"charge.4111111111111111","data":{"object":{"id":"ch_1"}}}"#,
        ] {
            assert!(
                matches!(
                    stripe::parse(body.as_bytes()),
                    Err(VerifyError::MalformedPayload(_))
                ),
                "{body}"
            );
        }
        assert!(stripe::IDENTIFIERS.is_empty());
    }

    #[test]
    fn a_standard_senders_object_and_message_ids_are_kept_and_the_rest_is_masked() {
        let body = br#"{"type":"charge.succeeded","data":{"id":"1541815603606036480","amount":500,"note":"4111111111111111","metadata":{"id":"4111111111111111"}}}"#;
        let e = standard::parse("1541815603606036480", body).unwrap();
        assert_eq!(e.object_ref.as_deref(), Some("1541815603606036480"));
        assert_eq!(e.event_id, "1541815603606036480");
        let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(payload["data"]["id"], "1541815603606036480");
        assert_eq!(payload["data"]["note"], "************1111");
        // Only `data.id` is exempt: an `id` key elsewhere is not.
        assert_eq!(payload["data"]["metadata"]["id"], "************1111");
        let bad_type = br#"{"type":"charge.4111111111111111","data":{"id":"pay_1"}}"#;
        assert!(standard::parse("msg_1", bad_type).is_err());
    }

    proptest! {
        /// No header or body, however hostile, makes a verifier or parser panic.
        #[test]
        fn hostile_input_never_panics(
            header in "\\PC{0,120}",
            body in proptest::collection::vec(any::<u8>(), 0..600),
            ts in "\\PC{0,20}",
            now in any::<i64>(),
        ) {
            let secrets = [SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
            let adyen_keys = [SecretString::new("44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")];
            let _ = stripe::verify(Some(&header), &body, &secrets, now, 300);
            let _ = stripe::parse(&body);
            let h = standard::Headers { id: Some(&header), timestamp: Some(&ts), signature: Some(&header) };
            let _ = standard::verify(h, &body, &secrets, now, 300);
            let _ = standard::parse(&header, &body);
            let _ = adyen::verify_and_parse(&body, &adyen_keys);
            let _ = adyen::check_basic_auth(Some(&header), None);
        }

        /// Structurally valid but hostile JSON (deep, odd types) never panics the parsers.
        #[test]
        fn hostile_json_never_panics(value in arbitrary_json()) {
            let body = value.to_string().into_bytes();
            let _ = stripe::parse(&body);
            let _ = standard::parse("msg_1", &body);
            let keys = [SecretString::new("00")];
            let _ = adyen::verify_and_parse(&body, &keys);
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        Just("data".to_owned()),
                        Just("object".to_owned()),
                        Just("notificationItems".to_owned()),
                        Just("NotificationRequestItem".to_owned()),
                        "[a-z]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
