//! Settings from the environment, read once at init.
//!
//! A missing or malformed variable stops the function at init with a message naming the variable
//! — never inside a handler. `template.yaml` sets every variable; the local stack writes the same
//! names into its env file.

use std::sync::OnceLock;
use std::time::Duration;

use crate::domain::Targets;

/// A setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value `{value}`: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Non-secret settings shared by the functions.
#[derive(Debug, Clone)]
pub struct Config {
    /// The single DynamoDB table.
    pub table: String,
    /// The SQS work queue's URL.
    pub work_queue_url: String,
    /// The dead-letter queue's URL (used by redrive tooling and the worker's DLQ metric).
    pub dlq_url: Option<String>,
    /// Name or ARN of the one JSON secret.
    pub secret_id: String,
    /// Accepted clock difference for webhook timestamps, in both directions.
    pub webhook_tolerance: Duration,
    /// Bodies larger than this are refused before parsing.
    pub max_body_bytes: usize,
    /// How long gateway event records are kept (DynamoDB TTL).
    pub event_retention: Duration,
    /// How long idempotency records are kept.
    pub idempotency_ttl: Duration,
    /// Stripe API base URL (`https://api.stripe.com`; localstripe locally).
    pub stripe_api_base: String,
    /// Adyen Checkout API base URL, including the version.
    pub adyen_api_base: String,
    /// Overrides the billing endpoint from the secret (local runs).
    pub billing_url_override: Option<String>,
    /// The work queue's maxReceiveCount: the worker's last attempt at a message.
    pub max_receive_count: u32,
    /// How long work may stay in flight before the reconciler looks at it.
    pub reconcile_after: Duration,
    /// How long a `requires_action` charge waits for its customer before the reconciler cancels
    /// it at the gateway (`PAYBRIDGE_ACTION_EXPIRY_HOURS`, 24 by default).
    pub action_expiry: Duration,
    /// Where notifications go (`PAYBRIDGE_NOTIFY_TARGETS`: `http`, `eventbridge` or
    /// `http,eventbridge`; `http` by default).
    pub notify_targets: Targets,
    /// The EventBridge bus notifications are put on (`PAYBRIDGE_EVENT_BUS`, a name or ARN);
    /// required when `eventbridge` is a target.
    pub event_bus: Option<String>,
    /// The Stripe partner event source whose EventBridge events intake records
    /// (`PAYBRIDGE_STRIPE_EVENT_SOURCE`, `aws.partner/stripe.com/ed_…`); unset: intake refuses
    /// every EventBridge event (the bus path is off).
    pub stripe_event_source: Option<String>,
}

/// The targets of this process's notifications, as installed by [`Config::from_env`] at init;
/// billing's endpoint only until then (and in unit tests). A process-wide setting because every
/// use case that changes a charge writes notifications, and all of them go to the same targets.
pub fn notify_targets() -> Targets {
    TARGETS.get().copied().unwrap_or_default()
}

static TARGETS: OnceLock<Targets> = OnceLock::new();

impl Config {
    /// Reads the process environment, and installs the notification targets for
    /// [`notify_targets`] (the first call's stand).
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::from_lookup(|name| std::env::var(name).ok())?;
        let _ = TARGETS.set(config.notify_targets);
        Ok(config)
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let optional = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match optional(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= max => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        name,
                        value: v,
                        why: format!("expected a whole number from 1 to {max}"),
                    }),
                },
            }
        };
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = optional(name).unwrap_or_else(|| default.to_owned());
            if secure_or_loopback(&v) {
                Ok(v.trim_end_matches('/').to_owned())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    value: v,
                    why: "expected an https:// URL (plain http only to a loopback address)".into(),
                })
            }
        };

        let notify_targets = match optional("PAYBRIDGE_NOTIFY_TARGETS") {
            None => Targets::HTTP,
            Some(v) => Targets::parse(&v).map_err(|why| ConfigError::Invalid {
                name: "PAYBRIDGE_NOTIFY_TARGETS",
                value: v.clone(),
                why,
            })?,
        };
        let event_bus = optional("PAYBRIDGE_EVENT_BUS").map(|v| v.trim().to_owned());
        if notify_targets.event_bus && event_bus.is_none() {
            return Err(ConfigError::Missing("PAYBRIDGE_EVENT_BUS"));
        }
        Ok(Config {
            notify_targets,
            event_bus,
            table: required("PAYBRIDGE_TABLE")?,
            work_queue_url: required("PAYBRIDGE_WORK_QUEUE_URL")?,
            dlq_url: optional("PAYBRIDGE_DLQ_URL"),
            secret_id: required("PAYBRIDGE_SECRET_ID")?,
            webhook_tolerance: Duration::from_secs(number(
                "PAYBRIDGE_WEBHOOK_TOLERANCE_SECS",
                300,
                86_400,
            )?),
            max_body_bytes: number("PAYBRIDGE_MAX_BODY_BYTES", 256 * 1024, 6 * 1024 * 1024)?
                as usize,
            event_retention: Duration::from_secs(
                86_400 * number("PAYBRIDGE_EVENT_RETENTION_DAYS", 30, 3650)?,
            ),
            idempotency_ttl: Duration::from_secs(
                3600 * number("PAYBRIDGE_IDEMPOTENCY_TTL_HOURS", 24, 24 * 30)?,
            ),
            stripe_api_base: url("PAYBRIDGE_STRIPE_API_BASE", "https://api.stripe.com")?,
            adyen_api_base: url(
                "PAYBRIDGE_ADYEN_API_BASE",
                "https://checkout-test.adyen.com/v72",
            )?,
            billing_url_override: optional("PAYBRIDGE_BILLING_URL"),
            max_receive_count: number("PAYBRIDGE_MAX_RECEIVE_COUNT", 8, 1000)? as u32,
            reconcile_after: Duration::from_secs(number(
                "PAYBRIDGE_RECONCILE_AFTER_SECS",
                900,
                30 * 86_400,
            )?),
            action_expiry: Duration::from_secs(
                3600 * number("PAYBRIDGE_ACTION_EXPIRY_HOURS", 24, 24 * 30)?,
            ),
            stripe_event_source: match optional("PAYBRIDGE_STRIPE_EVENT_SOURCE") {
                None => None,
                Some(v) => {
                    let v = v.trim().to_owned();
                    let prefix = crate::webhooks::stripe::eventbridge::PARTNER_SOURCE_PREFIX;
                    if v.len() <= prefix.len() || !v.starts_with(prefix) {
                        return Err(ConfigError::Invalid {
                            name: "PAYBRIDGE_STRIPE_EVENT_SOURCE",
                            value: v,
                            why: format!("expected a Stripe partner event source name, {prefix}…"),
                        });
                    }
                    Some(v)
                }
            },
        })
    }
}

/// `https://…`, or plain `http://` to a loopback host (local runs only).
pub fn secure_or_loopback(raw: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else {
        return false;
    };
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(d))) => d.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("PAYBRIDGE_TABLE", "t"),
        (
            "PAYBRIDGE_WORK_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/q",
        ),
        ("PAYBRIDGE_SECRET_ID", "s"),
    ];

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let c = Config::from_lookup(lookup(BASE)).unwrap();
        assert_eq!(c.webhook_tolerance, Duration::from_secs(300));
        assert_eq!(c.max_body_bytes, 262_144);
        assert_eq!(c.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(c.stripe_api_base, "https://api.stripe.com");
        assert_eq!(c.action_expiry, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn notifications_go_to_billing_s_endpoint_unless_the_bus_is_named() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut all = BASE.to_vec();
            all.extend_from_slice(pairs);
            Config::from_lookup(lookup(&all))
        };
        let c = with(&[]).unwrap();
        assert_eq!((c.notify_targets, c.event_bus), (Targets::HTTP, None));
        let c = with(&[
            ("PAYBRIDGE_NOTIFY_TARGETS", "http,eventbridge"),
            ("PAYBRIDGE_EVENT_BUS", "paybridge-notifications"),
        ])
        .unwrap();
        assert!(c.notify_targets.http && c.notify_targets.event_bus);
        assert_eq!(c.event_bus.as_deref(), Some("paybridge-notifications"));
        let err = with(&[("PAYBRIDGE_NOTIFY_TARGETS", "eventbridge")]).unwrap_err();
        assert!(err.to_string().contains("PAYBRIDGE_EVENT_BUS"), "{err}");
        let err = with(&[("PAYBRIDGE_NOTIFY_TARGETS", "sns")]).unwrap_err();
        assert!(
            err.to_string().contains("PAYBRIDGE_NOTIFY_TARGETS"),
            "{err}"
        );
    }

    #[test]
    fn the_action_expiry_is_whole_hours_from_one_to_thirty_days() {
        let with = |v: &str| {
            let mut pairs = BASE.to_vec();
            pairs.push(("PAYBRIDGE_ACTION_EXPIRY_HOURS", v));
            Config::from_lookup(lookup(&pairs)).map(|c| c.action_expiry)
        };
        assert_eq!(with("2").unwrap(), Duration::from_secs(7200));
        assert_eq!(with("720").unwrap(), Duration::from_secs(720 * 3600));
        for bad in ["0", "721", "1.5", "a day"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.contains("PAYBRIDGE_ACTION_EXPIRY_HOURS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_setting_is_named() {
        let err = Config::from_lookup(lookup(&BASE[1..])).unwrap_err();
        assert!(err.to_string().contains("PAYBRIDGE_TABLE"), "{err}");
    }

    #[test]
    fn malformed_numbers_and_plain_http_are_refused() {
        let mut pairs = BASE.to_vec();
        pairs.push(("PAYBRIDGE_MAX_BODY_BYTES", "lots"));
        assert!(
            Config::from_lookup(lookup(&pairs))
                .unwrap_err()
                .to_string()
                .contains("PAYBRIDGE_MAX_BODY_BYTES")
        );
        for (base, accepted) in [
            ("http://api.stripe.com", false),
            ("http://127.0.0.1.evil.example", false),
            ("ftp://127.0.0.1", false),
            ("not a url", false),
            ("https://api.stripe.com", true),
            ("http://127.0.0.1:8420", true),
            ("http://localhost:8420", true),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push(("PAYBRIDGE_STRIPE_API_BASE", base));
            let config = Config::from_lookup(lookup(&pairs));
            assert_eq!(config.is_ok(), accepted, "{base}");
        }
    }
}
