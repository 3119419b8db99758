//! The payment gateways paybridge talks to, named as in routes, keys and metrics.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The gateways that can deliver webhooks (the `{gateway}` path segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gateway {
    Stripe,
    Adyen,
    /// Any sender that follows the Standard Webhooks specification.
    Standard,
}

impl Gateway {
    pub fn parse(s: &str) -> Option<Gateway> {
        match s {
            "stripe" => Some(Gateway::Stripe),
            "adyen" => Some(Gateway::Adyen),
            "standard" => Some(Gateway::Standard),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gateway::Stripe => "stripe",
            Gateway::Adyen => "adyen",
            Gateway::Standard => "standard",
        }
    }

    /// How long after its first use paybridge may re-send a request with the same idempotency
    /// key, in seconds: a margin inside what the gateway remembers (Stripe prunes keys after
    /// 24 hours; Adyen keeps them at least 7 days). Past it a re-send could make a second payment
    /// or refund, so the truth must be looked up instead. `None` for senders paybridge never calls.
    pub fn key_window_secs(self) -> Option<i64> {
        match self {
            Gateway::Stripe => Some(23 * 3600),
            Gateway::Adyen => Some(6 * 24 * 3600 + 23 * 3600),
            Gateway::Standard => None,
        }
    }

    /// Whether a request first made at `since` (unix seconds) may no longer be re-sent at `now`.
    pub fn key_expired(self, since: i64, now: i64) -> bool {
        self.key_window_secs().is_some_and(|w| now - since >= w)
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_resent_past_the_gateways_memory() {
        let hour = 3600;
        assert!(!Gateway::Stripe.key_expired(0, 22 * hour));
        assert!(Gateway::Stripe.key_expired(0, 23 * hour));
        assert!(!Gateway::Adyen.key_expired(0, 6 * 24 * hour));
        assert!(Gateway::Adyen.key_expired(0, 7 * 24 * hour));
        assert!(!Gateway::Standard.key_expired(0, i64::MAX));
    }
}
