//! Billing's notification endpoint over HTTP: the [`Notifier`] port with reqwest.
//!
//! Every delivery is a POST of the notification's stored body, byte for byte, signed per
//! Standard Webhooks (`webhook-id` = the notification id), so billing can verify it with any
//! Standard Webhooks library and deduplicate on the id. The answer is classified here and nowhere
//! else: 2xx delivered; 410 Gone, or any 4xx/5xx with `Paybridge-Retry: never`, is billing
//! refusing this notification for good; every other answer — 4xx like 5xx, 3xx, transport
//! failures — is tried again on the schedule. A 4xx is retried because it is far more often a
//! passing fault (a deploy answering 404, an expired certificate at a proxy answering 401, a
//! secret rotated on one side first) than a verdict on the notification; billing that means it
//! says so with 410 or the opt-out header.
//!
//! Redirects are never followed: a 3xx would send a signed notification — or, after a 301/302,
//! an empty GET — to a host nobody configured. A redirect is reported as retryable with an error
//! that says so, so the delivery log shows an operator what to fix.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT};

use crate::config::Config;
use crate::domain::Notification;
use crate::domain::pci::mask_pans;
use crate::ports::{Notifier, NotifyOutcome};
use crate::secrets::{SecretString, Secrets};
use crate::webhooks::standard::{secret_key, sign};

/// The request timeout to pass [`HttpNotifier::from_secrets`] unless there is a reason not to.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `Retry-After` taken from billing; a larger value is capped to this.
pub use crate::services::retry_policy::MAX_RETRY_AFTER;

/// The response header with which billing opts out of retries of one notification: any 4xx or
/// 5xx answer carrying `Paybridge-Retry: never` is final (the notification is `failed`).
pub const RETRY_OPT_OUT_HEADER: &str = "paybridge-retry";

/// The value of [`RETRY_OPT_OUT_HEADER`] that opts out (compared without regard to case).
pub const RETRY_OPT_OUT_VALUE: &str = "never";

/// How much of a refusing response's body is kept for the delivery log.
pub const MAX_ERROR_BODY_BYTES: usize = 500;

/// The Standard Webhooks specification asks for secrets of at least 24 bytes.
const MIN_SECRET_BYTES: usize = 24;

/// Delivers notifications to billing's endpoint.
///
/// The HTTP client decides the timeouts and must not follow redirects: build it with
/// [`crate::adapters::gateways::http_client`] (as [`HttpNotifier::from_secrets`] does). A client
/// that follows redirects anyway is caught after the fact: a delivery that ended at another URL
/// is reported as a redirect, never as delivered.
#[derive(Clone)]
pub struct HttpNotifier {
    http: reqwest::Client,
    endpoint: Url,
    key: Vec<u8>,
}

impl fmt::Debug for HttpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpNotifier")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl HttpNotifier {
    /// A notifier for `endpoint`, signing with `signing_secret` (`whsec_<base64>`).
    ///
    /// The endpoint must be `https://`; plain `http://` is accepted only to a loopback host
    /// (127.0.0.0/8, `localhost`, `[::1]`), for local runs. Credentials in the URL are refused:
    /// billing authenticates paybridge by the signature, and the URL appears in logs.
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        signing_secret: &SecretString,
    ) -> Result<Self, String> {
        Ok(HttpNotifier {
            http,
            endpoint: checked_endpoint(endpoint)?,
            key: checked_key(signing_secret)?,
        })
    }

    /// The notifier the secret configures: `billing.signing_secret`, and `billing.endpoint`
    /// unless `PAYBRIDGE_BILLING_URL` overrides it. Requests time out after `timeout`
    /// (normally [`DEFAULT_TIMEOUT`]).
    pub fn from_secrets(
        config: &Config,
        secrets: &Secrets,
        timeout: Duration,
    ) -> Result<Self, String> {
        let billing = secrets.billing.as_ref().ok_or_else(|| {
            "the secret has no `billing` section: billing notifications need \
             `billing.endpoint` and `billing.signing_secret`"
                .to_owned()
        })?;
        let endpoint = config
            .billing_url_override
            .as_deref()
            .unwrap_or(&billing.endpoint);
        Self::new(
            crate::adapters::gateways::http_client(timeout),
            endpoint,
            &billing.signing_secret,
        )
    }

    /// Where notifications go.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }
}

fn checked_endpoint(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| format!("the billing endpoint `{endpoint}` is not a valid URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the billing endpoint must not carry credentials in its URL; billing verifies the \
             webhook-signature header instead"
                .to_owned(),
        );
    }
    // The URL parser has normalised the host: IPv4 in dotted form, IPv6 in brackets, names in
    // lower case. `127.0.0.1.example` is a name, not a loopback address.
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "the billing endpoint `{}` uses plain http to a host that is not this machine; \
             notifications carry payment data, so use https:// (plain http is accepted only to \
             127.0.0.1, localhost or [::1], for local runs)",
            url.as_str()
        )),
        _ => Err(format!(
            "the billing endpoint `{}` must be an https:// URL",
            url.as_str()
        )),
    }
}

fn checked_key(secret: &SecretString) -> Result<Vec<u8>, String> {
    let value = secret.expose();
    let Some(b64) = value.strip_prefix("whsec_") else {
        return Err(
            "the billing signing secret must be a Standard Webhooks secret: `whsec_` followed \
             by base64"
                .to_owned(),
        );
    };
    // Billing's library decodes with strict, padded base64; a secret only our lenient decoder
    // reads would sign notifications billing can never verify.
    let strict = base64::engine::general_purpose::STANDARD.decode(b64).ok();
    match (strict, secret_key(value)) {
        (Some(_), Some(key)) if key.len() >= MIN_SECRET_BYTES => Ok(key),
        (Some(_), Some(key)) => Err(format!(
            "the billing signing secret is too short ({} bytes); Standard Webhooks secrets are \
             24 to 64 random bytes",
            key.len()
        )),
        _ => Err(
            "the billing signing secret is not valid: the part after `whsec_` must be padded \
             standard base64"
                .to_owned(),
        ),
    }
}

impl Notifier for HttpNotifier {
    async fn send(&self, notification: &Notification, timestamp: i64) -> NotifyOutcome {
        let id = notification.id.as_str();
        let body = notification.body.as_bytes();
        let signature = sign(&self.key, id, timestamp, body);
        let result = self
            .http
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("paybridge/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(notification.body.clone())
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return NotifyOutcome::RetryLater {
                    status: None,
                    retry_after: None,
                    error: transport_message(&e),
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        if response.url() != &self.endpoint {
            // The client followed a redirect despite the contract: never count that as delivered.
            return NotifyOutcome::RetryLater {
                status: Some(status),
                retry_after,
                error: format!(
                    "the billing endpoint redirected to {}; redirects are not followed, \
                     configure the final URL",
                    response.url()
                ),
            };
        }
        match status {
            200..=299 => NotifyOutcome::Delivered { status },
            300..=399 => {
                let target = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.chars().take(200).collect::<String>())
                    .unwrap_or_else(|| "an unnamed location".to_owned());
                NotifyOutcome::RetryLater {
                    status: Some(status),
                    retry_after,
                    error: format!(
                        "the billing endpoint redirected ({status}) to {target}; redirects are \
                         not followed, configure the final URL"
                    ),
                }
            }
            _ if status == 410 || opted_out(response.headers()) => NotifyOutcome::Rejected {
                status,
                body: body_prefix(response).await,
            },
            _ => {
                let body = body_prefix(response).await;
                let error = if body.trim().is_empty() {
                    format!("billing answered {status}")
                } else {
                    format!("billing answered {status}: {body}")
                };
                NotifyOutcome::RetryLater {
                    status: Some(status),
                    retry_after,
                    error,
                }
            }
        }
    }
}

/// Whether billing marked its answer final (`Paybridge-Retry: never`).
fn opted_out(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(RETRY_OPT_OUT_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.trim().eq_ignore_ascii_case(RETRY_OPT_OUT_VALUE))
}

fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the billing endpoint did not answer in time".into()
    } else if e.is_connect() {
        "could not connect to the billing endpoint".into()
    } else if e.is_redirect() {
        "the billing endpoint redirected; redirects are not followed".into()
    } else {
        "the request to the billing endpoint failed".into()
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies), capped at
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The first [`MAX_ERROR_BODY_BYTES`] of a response body, read little further, as text with card
/// numbers masked (it goes into the delivery log). Masking happens before the cut, so a card
/// number straddling it cannot survive as an unmasked prefix.
async fn body_prefix(mut response: reqwest::Response) -> String {
    const MARGIN: usize = 64;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY_BYTES + MARGIN {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_ERROR_BODY_BYTES + MARGIN);
    let mut text = mask_pans(&String::from_utf8_lossy(&bytes));
    if text.len() > MAX_ERROR_BODY_BYTES {
        let mut end = MAX_ERROR_BODY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_tnD5f+sthMLCvUEft1NbL5V+fNFEkhza";

    fn notifier(endpoint: &str, secret: &str) -> Result<HttpNotifier, String> {
        HttpNotifier::new(
            crate::adapters::gateways::http_client(std::time::Duration::from_secs(1)),
            endpoint,
            &SecretString::new(secret),
        )
    }

    #[test]
    fn https_anywhere_and_plain_http_to_loopback_are_accepted() {
        for url in [
            "https://billing.example/paybridge",
            "https://billing.example:8443/hooks?x=1",
            "http://127.0.0.1:3900/paybridge",
            "http://127.0.0.2/x",
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "http://[::1]:9000/x",
        ] {
            assert!(notifier(url, SECRET).is_ok(), "{url}");
        }
    }

    #[test]
    fn plain_http_elsewhere_other_schemes_and_credentials_are_refused() {
        let bad_urls = [
            "http://billing.example/paybridge",
            "http://127.0.0.1.nip.io/x",
            "http://localhost.example/",
            "http://10.0.0.1/x",
            "http://[::2]/x",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "billing.example/paybridge",
            "https://user:pass@billing.example/x",
            "",
        ];
        for url in bad_urls {
            let err = notifier(url, SECRET).unwrap_err();
            assert!(err.contains("billing endpoint"), "{url}: {err}");
        }
        let err = notifier("http://billing.example/x", SECRET).unwrap_err();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn only_whsec_secrets_of_standard_base64_and_enough_bytes_are_accepted() {
        let bad_secrets = [
            "tnD5f+sthMLCvUEft1NbL5V+fNFEkhza",
            "whsec_",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            "whsec_tnD5f+sthMLCvUEft1NbL5V+fNFEkhz",
            "sk_test_123",
        ];
        for bad in bad_secrets {
            let err = notifier("https://billing.example/x", bad).unwrap_err();
            assert!(err.contains("signing secret"), "{bad}: {err}");
            assert!(!err.contains("tnD5f") && !err.contains("c2hvcnQ"), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let n = notifier("https://billing.example/x", SECRET).unwrap();
        let dbg = format!("{n:?}");
        assert!(dbg.contains("billing.example"), "{dbg}");
        let key = secret_key(SECRET).unwrap();
        assert!(
            !dbg.contains("tnD5f") && !dbg.contains(&format!("{key:?}")),
            "{dbg}"
        );
    }

    #[tokio::test]
    async fn a_refusals_body_is_cut_short_with_card_numbers_masked() {
        let pan = "4242 4242 4242 4242";
        let body = format!("{}{pan} and more", "é".repeat(245));
        let response = reqwest::Response::from(http::Response::new(body));
        let text = body_prefix(response).await;
        assert!(text.len() <= MAX_ERROR_BODY_BYTES, "{}", text.len());
        assert!(text.starts_with("éé"), "{text}");
        assert!(!text.contains("4242 4242"), "{text}");
    }

    #[test]
    fn only_never_in_the_opt_out_header_opts_out() {
        let mut h = reqwest::header::HeaderMap::new();
        assert!(!opted_out(&h));
        h.insert(RETRY_OPT_OUT_HEADER, "later".parse().unwrap());
        assert!(!opted_out(&h));
        h.insert("Paybridge-Retry", " Never ".parse().unwrap());
        assert!(opted_out(&h));
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn the_override_wins_and_a_missing_billing_section_is_named() {
        let config = Config::from_lookup(|k| {
            match k {
                "PAYBRIDGE_TABLE" => Some("t"),
                "PAYBRIDGE_WORK_QUEUE_URL" => Some("http://127.0.0.1:1/q"),
                "PAYBRIDGE_SECRET_ID" => Some("s"),
                "PAYBRIDGE_BILLING_URL" => Some("http://127.0.0.1:3999/override"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        let secrets = Secrets::from_json(&format!(
            r#"{{"billing":{{"endpoint":"https://billing.example/x","signing_secret":"{SECRET}"}}}}"#
        ))
        .unwrap();
        let n = HttpNotifier::from_secrets(&config, &secrets, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(n.endpoint(), "http://127.0.0.1:3999/override");
        let none = Secrets::from_json("{}").unwrap();
        let err = HttpNotifier::from_secrets(&config, &none, DEFAULT_TIMEOUT).unwrap_err();
        assert!(err.contains("billing"), "{err}");
    }
}
