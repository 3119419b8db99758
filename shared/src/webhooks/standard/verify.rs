//! Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`.
//!
//! The signed content is `{id}.{timestamp}.{raw body}`, HMAC-SHA256 with the secret's bytes —
//! the base64 after the `whsec_` prefix — and the header is a space-separated list of
//! `v1,<base64>` entries, any of which may match. Entries of other versions (`v1a`, `v2`) are
//! skipped; a bare `v1,` never matches.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::domain::pci::{Identifier, Step};
use crate::domain::{Gateway, VerifiedEvent};
use crate::secrets::SecretString;
use crate::webhooks::{
    EventKeys, VerifyError, checked_id, event, hmac_sha256, mac_eq, within_tolerance,
};

/// Event-type prefixes paybridge acts on from generic senders: the payload is
/// `{"type": "charge.succeeded", "data": {"id": "<the sender's object id>", …}}`.
pub const SUPPORTED_PREFIXES: &[&str] = &["charge.", "payment.", "refund.", "dispute."];

/// Base64 that accepts secrets with or without padding, as the reference libraries do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key bytes of a `whsec_…` secret (the prefix is optional, as in the reference libraries).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    LENIENT.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The three Standard Webhooks headers, as received.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies a Standard Webhooks delivery.
pub fn verify(
    headers: Headers<'_>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let (Some(id), Some(ts), Some(sig)) = (headers.id, headers.timestamp, headers.signature) else {
        return Err(VerifyError::MissingSignature);
    };
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| secret_key(s.expose()))
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NotConfigured);
    }
    let timestamp: i64 = ts
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedSignature)?;
    let candidates: Vec<Vec<u8>> = sig
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() && !sig.split_whitespace().any(|e| e.starts_with("v1,")) {
        return Err(VerifyError::MalformedSignature);
    }
    let matched = keys.iter().any(|key| {
        let expected = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        candidates
            .iter()
            .fold(false, |acc, c| acc | mac_eq(&expected, c))
    });
    if !matched {
        return Err(VerifyError::SignatureMismatch);
    }
    if !within_tolerance(timestamp, now, tolerance_secs) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

/// Signs a message: the `webhook-signature` value (`v1,<base64>`). Used for billing notifications.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Parses a verified delivery. The event id is the `webhook-id` header.
pub fn parse(webhook_id: &str, body: &[u8]) -> Result<VerifiedEvent, VerifyError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| VerifyError::MalformedPayload("invalid JSON"))?;
    let event_type = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(VerifyError::MalformedPayload("missing type"))?;
    let event_type = checked_id(event_type, "event type")?;
    let object_ref = value
        .pointer("/data/id")
        .and_then(|v| v.as_str())
        .map(|s| checked_id(s, "object id"))
        .transpose()?;
    let supported = SUPPORTED_PREFIXES.iter().any(|p| event_type.starts_with(p));
    let event_id = checked_id(webhook_id, "webhook-id")?;
    // Both are exempt identifiers (see IDENTIFIERS): the key check leaves them alone.
    let (id, object) = (event_id.clone(), object_ref.clone().unwrap_or_default());
    event(
        Gateway::Standard,
        EventKeys {
            event_id,
            event_type,
            object_ref,
        },
        supported,
        value,
        IDENTIFIERS,
        &[&id, &object],
    )
}

/// Fields of a Standard Webhooks event kept as they are when card numbers are masked: `data.id`,
/// the sender's own id of the object — the key paybridge finds the charge or refund by — which
/// paybridge's contract for generic senders documents. Senders' ids may be all digits (a 19-digit
/// snowflake id looks like a card number 88 % of the time), and masking one would cut the event
/// off from its object. The `webhook-id` header (the Standard Webhooks message id, the event's
/// id) is kept for the same reason. Both are the authenticated sender's own identifiers.
pub const IDENTIFIERS: &[Identifier] = &[Identifier {
    path: &[Step::Key("data"), Step::Key("id")],
    shape: is_object_id,
}];

/// An object id as paybridge takes it: 1–255 visible ASCII characters.
fn is_object_id(s: &str) -> bool {
    checked_id(s, "object id").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|x| SecretString::new(*x)).collect()
    }

    // Vector A: standard-webhooks libraries/python/tests/test_webhooks.py (test_sign_function),
    // libraries/javascript/src/webhook.test.ts, libraries/go/webhook_test.go.
    const A_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const A_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const A_TS: i64 = 1_614_265_330;
    const A_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const A_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn a_headers(sig: &str) -> Headers<'_> {
        Headers {
            id: Some(A_ID),
            timestamp: Some("1614265330"),
            signature: Some(sig),
        }
    }

    #[test]
    fn published_vector_a_signs_and_verifies() {
        assert_eq!(
            sign(&secret_key(A_SECRET).unwrap(), A_ID, A_TS, A_BODY),
            A_SIG
        );
        assert_eq!(
            verify(a_headers(A_SIG), A_BODY, &s(&[A_SECRET]), A_TS, 300),
            Ok(())
        );
    }

    #[test]
    fn published_vector_b_signs_and_verifies() {
        // standard-webhooks libraries/rust/src/lib.rs, tests::test_sign.
        let key = secret_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            sign(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn the_published_wrong_signature_is_refused() {
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(
            verify(a_headers(wrong), A_BODY, &s(&[A_SECRET]), A_TS, 300),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn one_matching_entry_among_decoys_is_enough() {
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,abc {A_SIG}"
        );
        assert_eq!(
            verify(a_headers(&header), A_BODY, &s(&[A_SECRET]), A_TS, 300),
            Ok(())
        );
    }

    #[test]
    fn bare_v1_partial_and_other_versions_never_pass() {
        for sig in [
            "v1,",
            "v1,g0hM9SsE",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,dawfeoifkpqwoekfpqoekf",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert!(
                verify(a_headers(sig), A_BODY, &s(&[A_SECRET]), A_TS, 300).is_err(),
                "{sig}"
            );
        }
    }

    #[test]
    fn missing_headers_bad_timestamps_and_tampering_are_refused() {
        let secrets = s(&[A_SECRET]);
        let no_id = Headers {
            id: None,
            ..a_headers(A_SIG)
        };
        assert_eq!(
            verify(no_id, A_BODY, &secrets, A_TS, 300),
            Err(VerifyError::MissingSignature)
        );
        let no_ts = Headers {
            timestamp: None,
            ..a_headers(A_SIG)
        };
        assert_eq!(
            verify(no_ts, A_BODY, &secrets, A_TS, 300),
            Err(VerifyError::MissingSignature)
        );
        let hello = Headers {
            timestamp: Some("hello"),
            ..a_headers(A_SIG)
        };
        assert_eq!(
            verify(hello, A_BODY, &secrets, A_TS, 300),
            Err(VerifyError::MalformedSignature)
        );
        assert_eq!(
            verify(a_headers(A_SIG), A_BODY, &secrets, A_TS + 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify(a_headers(A_SIG), A_BODY, &secrets, A_TS - 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify(
                a_headers(A_SIG),
                br#"{"test": 2432232315}"#,
                &secrets,
                A_TS,
                300
            ),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn secrets_rotate_and_tolerate_missing_prefix_padding_and_whitespace() {
        let unprefixed = A_SECRET.trim_start_matches("whsec_");
        for secret in [unprefixed, " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"] {
            assert_eq!(
                verify(
                    a_headers(A_SIG),
                    A_BODY,
                    &s(&["whsec_AAAAAAAAAAAAAAAAAAAAAAAA", secret]),
                    A_TS,
                    300
                ),
                Ok(())
            );
        }
        assert_eq!(
            verify(a_headers(A_SIG), A_BODY, &s(&["", "whsec_"]), A_TS, 300),
            Err(VerifyError::NotConfigured)
        );
    }

    #[test]
    fn deliveries_parse_into_events() {
        let e = parse(
            "msg_1",
            br#"{"type":"charge.succeeded","data":{"id":"pay_9"}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                e.event_id.as_str(),
                e.event_type.as_str(),
                e.object_ref.as_deref(),
                e.supported
            ),
            ("msg_1", "charge.succeeded", Some("pay_9"), true)
        );
        assert!(
            !parse("msg_2", br#"{"type":"user.created","data":{}}"#)
                .unwrap()
                .supported
        );
        assert!(parse("msg_3", br#"{"data":{}}"#).is_err());
        assert!(parse("msg 4", br#"{"type":"x"}"#).is_err());
    }
}
