//! Idempotency of billing-facing writes: keys, request fingerprints, stored responses.
//!
//! The same `Idempotency-Key` with the same request gets the first response back byte for byte;
//! with a different request it is refused; while the first request still runs, the second waits.
//! A record also remembers the id of the resource the first request created, so a request that
//! crashed half-way is resumed with the *same* charge or refund — and so the same gateway
//! idempotency key — never a second one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A caller's `Idempotency-Key`: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// The key was missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key header must be 1 to 255 printable ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, IdempotencyKeyError> {
        let ok = !value.is_empty()
            && value.len() <= 255
            && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && value.trim() == value;
        if ok {
            Ok(IdempotencyKey(value.to_owned()))
        } else {
            Err(IdempotencyKeyError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fingerprint of "the same request": operation, target and the JSON body with keys sorted,
/// so whitespace and key order do not make a retry look different.
pub fn fingerprint(operation: &str, target: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0]);
    h.update(target.as_bytes());
    h.update([0]);
    // serde_json's Map is ordered by key, so this serialisation is canonical.
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// Where the first request with a key got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyStatus {
    InProgress,
    Completed,
}

/// The stored record of one (operation, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub operation: String,
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub status: IdempotencyStatus,
    /// The charge or refund the first request created (or was creating).
    pub resource_id: String,
    /// A random token of the request that holds the record; only it may complete it.
    pub owner: String,
    /// Unix milliseconds after which an `in_progress` record is abandoned and may be resumed.
    pub in_progress_until: i64,
    pub response: Option<StoredResponse>,
    /// Unix seconds (DynamoDB TTL).
    pub expires_at: i64,
}

/// What a new request with a key must do, given the record that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the stored response again.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The first request is still running; retry after this many seconds.
    Wait { retry_after_secs: u64 },
    /// The first request was abandoned (crashed or released): take it over and finish it.
    Resume,
}

impl IdempotencyRecord {
    /// Decides what a request with `fingerprint` arriving at `now_ms` does with this record.
    pub fn decide(&self, fingerprint: &str, now_ms: i64) -> Decision {
        if self.fingerprint != fingerprint {
            return Decision::Mismatch;
        }
        match (self.status, &self.response) {
            (IdempotencyStatus::Completed, Some(response)) => Decision::Replay(response.clone()),
            _ if self.in_progress_until > now_ms => {
                // The first request usually finishes in well under a second; a crashed one's lease
                // can run to the function's timeout. Ask for short polls either way.
                let wait_ms = (self.in_progress_until - now_ms) as u64;
                Decision::Wait {
                    retry_after_secs: wait_ms.div_ceil(1000).clamp(1, 2),
                }
            }
            _ => Decision::Resume,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(status: IdempotencyStatus, until: i64) -> IdempotencyRecord {
        IdempotencyRecord {
            operation: "create_charge".into(),
            key: IdempotencyKey::parse("k1").unwrap(),
            fingerprint: "fp".into(),
            status,
            resource_id: "ch_x".into(),
            owner: "o".into(),
            in_progress_until: until,
            response: (status == IdempotencyStatus::Completed).then(|| StoredResponse {
                status: 201,
                body: "{}".into(),
            }),
            expires_at: 0,
        }
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("inv_123-attempt-1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " padded", "tab\there", "ключ"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(IdempotencyKeyError),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"amount": 1999, "currency":"eur"}"#).unwrap();
        let b = json!({"currency": "eur", "amount": 1999});
        assert_eq!(
            fingerprint("op", "/charges", &a),
            fingerprint("op", "/charges", &b)
        );
        assert_ne!(
            fingerprint("op", "/charges", &a),
            fingerprint(
                "op",
                "/charges",
                &json!({"currency": "eur", "amount": 2000})
            )
        );
        assert_ne!(
            fingerprint("op", "/charges/a", &b),
            fingerprint("op", "/charges/b", &b)
        );
    }

    #[test]
    fn decisions() {
        assert_eq!(
            record(IdempotencyStatus::Completed, 0).decide("other", 0),
            Decision::Mismatch
        );
        assert!(matches!(
            record(IdempotencyStatus::Completed, 0).decide("fp", 0),
            Decision::Replay(_)
        ));
        assert_eq!(
            record(IdempotencyStatus::InProgress, 10_500).decide("fp", 10_000),
            Decision::Wait {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            record(IdempotencyStatus::InProgress, 40_000).decide("fp", 10_000),
            Decision::Wait {
                retry_after_secs: 2
            }
        );
        assert_eq!(
            record(IdempotencyStatus::InProgress, 9_999).decide("fp", 10_000),
            Decision::Resume
        );
    }
}
