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
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
