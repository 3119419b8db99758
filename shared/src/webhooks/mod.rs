//! Webhook verification and parsing, one module per sender.
//!
//! Each verifier is a pure function over the raw body bytes, the request headers, the configured
//! secrets (current first, then previous during a rotation) and the current time, passed in.
//! Signatures are compared in constant time. A verifier's output is a list of
//! [`VerifiedEvent`]s ready to be recorded — with card numbers already masked.

pub mod adyen;
pub mod standard;
pub mod stripe;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::VerifiedEvent;
use crate::domain::event::MAX_EVENT_ID_LEN;
use crate::domain::pci;

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

/// The JSON payload with card numbers masked, as stored.
pub(crate) fn masked_payload(mut value: serde_json::Value) -> String {
    pci::mask_json(&mut value);
    value.to_string()
}

/// Builds the event record input shared by all senders.
pub(crate) fn event(
    gateway: crate::domain::Gateway,
    event_id: String,
    event_type: String,
    object_ref: Option<String>,
    supported: bool,
    payload: serde_json::Value,
) -> VerifiedEvent {
    VerifiedEvent {
        gateway,
        event_id,
        event_type,
        object_ref,
        supported,
        payload: masked_payload(payload),
    }
}
