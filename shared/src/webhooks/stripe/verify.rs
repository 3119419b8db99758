//! Stripe webhooks: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`.
//!
//! The signed payload is `{t}.{raw body}`, HMAC-SHA256 keyed with the whole `whsec_…` string as
//! UTF-8 (Stripe does not base64-decode it), hex-encoded. Any `v1` may match any configured secret;
//! a header with only `v0` (Stripe's test scheme) is refused. Timestamps are checked in both
//! directions against the tolerance, after the signature, so a stale replay is reported as such.

use serde::Deserialize;

use crate::domain::pci::Identifier;
use crate::domain::{Gateway, VerifiedEvent};
use crate::secrets::SecretString;
use crate::webhooks::{
    EventKeys, VerifyError, checked_id, event, hmac_sha256, mac_eq, within_tolerance,
};

/// Event types paybridge acts on; every other type is recorded as ignored.
pub const SUPPORTED_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "charge.captured",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

/// The parts of `Stripe-Signature` that matter.
struct SignatureHeader {
    timestamp: i64,
    v1: Vec<[u8; 32]>,
}

fn parse_header(header: &str) -> Result<SignatureHeader, VerifyError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut saw_any_scheme = false;
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(VerifyError::MalformedSignature);
        };
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| VerifyError::MalformedSignature)?,
                )
            }
            "v1" => {
                saw_any_scheme = true;
                // A v1 that is not 64 hex digits cannot match; keep looking at the others.
                let mut sig = [0u8; 32];
                if hex::decode_to_slice(value, &mut sig).is_ok() {
                    v1.push(sig);
                }
            }
            _ => saw_any_scheme = true,
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::MalformedSignature)?;
    if !saw_any_scheme {
        return Err(VerifyError::MalformedSignature);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

/// Verifies a Stripe signature header over `body`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let header = header
        .filter(|h| !h.trim().is_empty())
        .ok_or(VerifyError::MissingSignature)?;
    if secrets.is_empty() {
        return Err(VerifyError::NotConfigured);
    }
    let parsed = parse_header(header)?;
    if parsed.v1.is_empty() {
        // v0-only (or v1 values that are not even hex): never accepted.
        return Err(VerifyError::SignatureMismatch);
    }
    let t = parsed.timestamp.to_string();
    let matched = secrets.iter().any(|secret| {
        let expected = hmac_sha256(secret.expose().as_bytes(), &[t.as_bytes(), b".", body]);
        parsed
            .v1
            .iter()
            .fold(false, |acc, candidate| acc | mac_eq(&expected, candidate))
    });
    if !matched {
        return Err(VerifyError::SignatureMismatch);
    }
    if !within_tolerance(parsed.timestamp, now, tolerance_secs) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: StripeEventData,
}

#[derive(Deserialize)]
struct StripeEventData {
    object: serde_json::Value,
}

/// Parses a verified Stripe event body.
pub fn parse(body: &[u8]) -> Result<VerifiedEvent, VerifyError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| VerifyError::MalformedPayload("invalid JSON"))?;
    let parsed: StripeEvent = serde_json::from_value(value.clone())
        .map_err(|_| VerifyError::MalformedPayload("not a Stripe event"))?;
    let event_id = checked_id(&parsed.id, "event id")?;
    let event_type = checked_id(&parsed.event_type, "event type")?;
    let object_ref = parsed
        .data
        .object
        .get("id")
        .and_then(|v| v.as_str())
        .map(|s| checked_id(s, "object id"))
        .transpose()?;
    let supported = SUPPORTED_TYPES.contains(&event_type.as_str());
    event(
        Gateway::Stripe,
        EventKeys {
            event_id,
            event_type,
            object_ref,
        },
        supported,
        value,
        IDENTIFIERS,
        &[],
    )
}

/// Fields of a Stripe event kept as they are when card numbers are masked: none. Stripe's ids are
/// a prefix and about 24 random letters and digits (`evt_1NG8Du2eZvKYlo2CUI79vXWy`,
/// `pi_3MtwBwLkdIwHu7ix28a3tqPa`); 13 digits in a row in one has a chance of about 1 in 10^9, so
/// none needs an exemption (and an event whose id did would be refused, not stored masked).
pub const IDENTIFIERS: &[Identifier] = &[];

/// Builds a `Stripe-Signature` header value (tests, the local demo, the reconciler's replays).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const NOW: i64 = 1_614_265_330;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::new(*s)).collect()
    }

    #[test]
    fn a_signature_computed_from_the_spec_verifies() {
        // HMAC-SHA256(key = "whsec_test_secret" as UTF-8, "1614265330." + body), lower-case hex:
        // computed independently with Python's hmac module.
        let header =
            "t=1614265330,v1=3c5817089d739023dd6190f70a3757e04f7a2fd8b5dab12c2e000f51970dccff";
        assert_eq!(sign(SECRET, NOW, BODY), header);
        assert_eq!(
            verify(Some(header), BODY, &secrets(&[SECRET]), NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn stripe_node_fixed_hmac_value_matches() {
        // stripe-node test/crypto/helpers.ts: HMAC-SHA256('test_secret', '') in hex.
        let mac = hmac_sha256(b"test_secret", &[b""]);
        assert_eq!(
            hex::encode(mac),
            "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd"
        );
    }

    #[test]
    fn any_v1_may_match_and_rotated_secrets_are_accepted() {
        let good = sign("whsec_previous", NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!(
            "t={NOW},v1={},v1={v1},v0={}",
            "00".repeat(32),
            "11".repeat(32)
        );
        assert_eq!(
            verify(
                Some(&header),
                BODY,
                &secrets(&["whsec_current", "whsec_previous"]),
                NOW,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&["whsec_current"]), NOW, 300),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn tampered_body_and_wrong_secret_are_refused() {
        let header = sign(SECRET, NOW, BODY);
        let tampered = br#"{"id":"evt_test_webhook","object":"event "}"#;
        assert_eq!(
            verify(Some(&header), tampered, &secrets(&[SECRET]), NOW, 300),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&["whsec_other"]), NOW, 300),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let s = secrets(&[SECRET]);
        for t in [NOW - 301, NOW + 301] {
            let header = sign(SECRET, t, BODY);
            assert_eq!(
                verify(Some(&header), BODY, &s, NOW, 300),
                Err(VerifyError::StaleTimestamp),
                "t={t}"
            );
        }
        for t in [NOW - 300, NOW + 300] {
            assert_eq!(
                verify(Some(&sign(SECRET, t, BODY)), BODY, &s, NOW, 300),
                Ok(())
            );
        }
    }

    #[test]
    fn v0_only_and_malformed_headers_are_refused() {
        let s = secrets(&[SECRET]);
        let v0 = sign(SECRET, NOW, BODY).replace("v1=", "v0=");
        assert_eq!(
            verify(Some(&v0), BODY, &s, NOW, 300),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(None, BODY, &s, NOW, 300),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            verify(Some("  "), BODY, &s, NOW, 300),
            Err(VerifyError::MissingSignature)
        );
        for h in [
            "garbage",
            "t=abc,v1=00",
            "v1=00",
            "t=1614265330",
            "t=1614265330,v1=",
        ] {
            assert!(verify(Some(h), BODY, &s, NOW, 300).is_err(), "{h}");
        }
        assert_eq!(
            verify(Some(&sign(SECRET, NOW, BODY)), BODY, &[], NOW, 300),
            Err(VerifyError::NotConfigured)
        );
    }

    #[test]
    fn a_secret_pasted_with_whitespace_still_verifies() {
        // Secrets are trimmed when loaded; a stray newline must not break every delivery.
        let header = sign(SECRET, NOW, BODY);
        assert_eq!(
            verify(
                Some(&header),
                BODY,
                &secrets(&[" whsec_test_secret\n"]),
                NOW,
                300
            ),
            Ok(())
        );
        // …but a signature made with a secret that really contains whitespace does not.
        let other = sign("whsec_test secret", NOW, BODY);
        assert_eq!(
            verify(Some(&other), BODY, &secrets(&[SECRET]), NOW, 300),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn events_are_parsed_and_unsupported_types_flagged() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","card":"4242424242424242"}}}"#;
        let e = parse(body).unwrap();
        assert_eq!(
            (e.event_id.as_str(), e.object_ref.as_deref(), e.supported),
            ("evt_1", Some("pi_1"), true)
        );
        assert!(e.payload.contains("************4242") && !e.payload.contains("4242424242424242"));
        let other =
            parse(br#"{"id":"evt_2","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#)
                .unwrap();
        assert!(!other.supported);
        for bad in [
            &b"not json"[..],
            br#"{"id":"evt_3"}"#,
            br#"{"id":"","type":"x","data":{"object":{}}}"#,
        ] {
            assert!(matches!(parse(bad), Err(VerifyError::MalformedPayload(_))));
        }
    }
}
