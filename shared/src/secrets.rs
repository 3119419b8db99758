//! The shape of paybridge's one JSON secret, with values whose `Debug` is redacted.
//!
//! ```json
//! { "stripe":   { "api_key": "sk_test_…", "webhook_secrets": ["whsec_current", "whsec_previous"] },
//!   "adyen":    { "api_key": "…", "merchant_account": "…", "hmac_keys": ["<hex>"], "basic_auth": null },
//!   "standard": { "webhook_secrets": ["whsec_…"] },
//!   "billing":  { "endpoint": "https://billing.example/paybridge", "signing_secret": "whsec_…" } }
//! ```
//! Secret strings are trimmed when loaded: a trailing newline pasted into the console must not
//! silently break every signature.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::domain::Gateway;

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into().trim().to_owned())
    }
    /// The secret itself. Call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString::new)
    }
}

/// Everything sensitive paybridge needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub stripe: Option<StripeSecrets>,
    pub adyen: Option<AdyenSecrets>,
    pub standard: Option<StandardSecrets>,
    pub billing: Option<BillingSecrets>,
}

impl Secrets {
    /// The keys `gateway`'s webhooks are signed with, current first (none if not configured).
    pub fn webhook_keys(&self, gateway: Gateway) -> &[SecretString] {
        let keys = match gateway {
            Gateway::Stripe => self.stripe.as_ref().map(|s| &s.webhook_secrets),
            Gateway::Adyen => self.adyen.as_ref().map(|a| &a.hmac_keys),
            Gateway::Standard => self.standard.as_ref().map(|s| &s.webhook_secrets),
        };
        keys.map(Vec::as_slice).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StripeSecrets {
    pub api_key: SecretString,
    /// Current first, previous second (during a rotation).
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdyenSecrets {
    pub api_key: SecretString,
    pub merchant_account: String,
    /// Hex-encoded HMAC keys, current first.
    #[serde(default)]
    pub hmac_keys: Vec<SecretString>,
    /// If set, webhook requests must carry this HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StandardSecrets {
    /// `whsec_`-prefixed base64 secrets, current first.
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BillingSecrets {
    pub endpoint: String,
    pub signing_secret: SecretString,
}

impl Secrets {
    /// Parses the secret's JSON. The error names the problem but never echoes values.
    pub fn from_json(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| {
            format!(
                "the secret is not valid paybridge secret JSON (line {}, column {}): {}",
                e.line(),
                e.column(),
                e.classify_name()
            )
        })
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "a field is missing, unknown or of the wrong type",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secret_values() {
        let s = Secrets::from_json(
            r#"{"stripe":{"api_key":"sk_test_abc","webhook_secrets":["whsec_topsecret\n"]}}"#,
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("sk_test_abc") && !dbg.contains("topsecret"),
            "{dbg}"
        );
        assert_eq!(
            s.stripe.unwrap().webhook_secrets[0].expose(),
            "whsec_topsecret"
        );
    }

    #[test]
    fn parse_errors_do_not_echo_values() {
        let err = Secrets::from_json(r#"{"stripe":{"api_key":42}}"#).unwrap_err();
        assert!(!err.contains("42"), "{err}");
    }

    #[test]
    fn the_local_secrets_file_parses() {
        let json = include_str!("../../local/secrets.json");
        let s = Secrets::from_json(json).unwrap();
        assert!(
            s.stripe.is_some() && s.adyen.is_some() && s.standard.is_some() && s.billing.is_some()
        );
    }
}
