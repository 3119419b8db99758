//! Typed, prefixed identifiers (`ch_…`, `rf_…`, `dp_…`, `ntf_…`).
//!
//! The prefix tells a human what an id names; the type tells the compiler. Ids are generated from
//! UUIDv7 (time-ordered, so DynamoDB keys and logs sort by creation) and parsed strictly: an id
//! from a URL is checked before it reaches a key.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An id string was not of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}` followed by 32 hex characters)")]
pub struct IdError {
    kind: &'static str,
    prefix: &'static str,
    value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id that never looks like a card number: 32 hex digits can
            /// hold a Luhn-valid run of 13 or more decimal digits (about 1 id in 200), which
            /// billing requests must not carry and stored payloads mask — so such an id is
            /// drawn again. The loop ends: the random bits change every draw, and the time
            /// bits every millisecond.
            pub fn generate() -> Self {
                loop {
                    let id = format!("{}{}", $prefix, crate::domain::entropy::time_ordered_uuid().simple());
                    if !crate::domain::pci::contains_pan(&id) {
                        return Self(id);
                    }
                }
            }

            /// Parses an id, checking prefix, length and alphabet.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let ok = value
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError { kind: $kind, prefix: $prefix, value: value.chars().take(64).collect() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// Our id of a charge.
    ChargeId, "ch_", "charge"
);
prefixed_id!(
    /// Our id of a refund.
    RefundId, "rf_", "refund"
);
prefixed_id!(
    /// Our id of a dispute (the gateway's own id is its `gateway_ref`).
    DisputeId, "dp_", "dispute"
);
prefixed_id!(
    /// Our id of a billing notification (the Standard Webhooks `webhook-id` billing sees).
    NotificationId, "ntf_", "notification"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = ChargeId::generate();
        assert!(id.as_str().starts_with("ch_"));
        assert_eq!(ChargeId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn wrong_prefix_length_or_alphabet_is_refused() {
        let good = RefundId::generate().to_string();
        assert!(ChargeId::parse(&good).is_err());
        assert!(RefundId::parse(&good[..good.len() - 1]).is_err());
        assert!(RefundId::parse(&good.to_uppercase()).is_err());
        assert!(RefundId::parse("rf_../../etc/passwd00000000000000000").is_err());
        assert!(RefundId::parse("").is_err());
    }

    #[test]
    fn ids_generated_later_sort_later() {
        let a = NotificationId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = NotificationId::generate();
        assert!(a < b);
    }
}
