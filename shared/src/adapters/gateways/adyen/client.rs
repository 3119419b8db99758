//! The Adyen adapter's HTTP plumbing: requests with `X-API-Key` and our `Idempotency-Key`, answers
//! parsed or turned into a [`GatewayError`] — 429, 5xx, Adyen's transient errors and "already in
//! progress" are unknown outcomes to retry with the same key, other 4xx refusals — and transport
//! failures, after which Adyen may have acted.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire::ErrorAnswer;
use super::{AdyenGateway, NOT_SENT, refused_locally};
use crate::adapters::gateways::http::retry_after;
use crate::ports::GatewayError;

/// Adyen's longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// Adyen's error code for "request already processed or in progress": another request with the
/// same idempotency key is still running, so the payment may well exist.
const IN_PROGRESS: &str = "704";

const X_API_KEY: &str = "x-api-key";
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` by Adyen on errors that a retry with the same idempotency key may resolve.
const TRANSIENT_ERROR: &str = "transient-error";

impl AdyenGateway {
    /// POSTs `body` as JSON and parses a 2xx answer as `T`. Every other answer, and a 2xx body
    /// that is not the JSON expected, becomes a [`GatewayError`].
    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<T, GatewayError> {
        let headers = self.headers(idempotency_key)?;
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let transient = response
            .headers()
            .get(TRANSIENT_ERROR)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        // Adyen may have acted even if the body is lost on the way.
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(error_from_response(status, transient, retry_after, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::unknown(
                format!("Adyen answered {status} with a body that is not the expected JSON"),
                Some(Box::new(e)),
            )
        })
    }

    fn headers(&self, idempotency_key: &str) -> Result<HeaderMap, GatewayError> {
        // Without a usable key a retry could charge twice: refuse rather than send without one.
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(refused_locally(
                "invalid_idempotency_key",
                format!(
                    "Adyen takes idempotency keys of 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
                ),
            ));
        }
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            refused_locally(
                "invalid_idempotency_key",
                "the idempotency key is not a valid HTTP header value",
            )
        })?;
        let mut api_key = HeaderValue::from_str(self.api_key.expose()).map_err(|_| {
            refused_locally(
                "invalid_api_key",
                "the Adyen API key is not a valid HTTP header value",
            )
        })?;
        api_key.set_sensitive(true);
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(X_API_KEY, api_key);
        headers.insert(IDEMPOTENCY_KEY, key);
        Ok(headers)
    }
}

/// Maps a non-2xx answer. 429, 5xx, Adyen's transient errors and "already in progress" (704) are
/// unknown outcomes to retry with the same key; any other 4xx is a refusal.
pub(super) fn error_from_response(
    status: StatusCode,
    transient: bool,
    retry_after: Option<Duration>,
    body: &[u8],
) -> GatewayError {
    let parsed: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(e) => (e.error_code, e.message),
        None => (None, None),
    };
    let code = code.unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = message.unwrap_or_else(|| snippet(body));
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || !status.is_client_error()
        || transient
        || code == IN_PROGRESS;
    if retryable {
        GatewayError::Unknown {
            message: format!("Adyen answered {status} ({code}): {message}"),
            retry_after,
            source: None,
        }
    } else {
        GatewayError::Refused {
            status: status.as_u16(),
            code,
            message,
        }
    }
}

/// The start of a body that is not Adyen's JSON error (a proxy's HTML page, say).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    text.chars().take(200).collect()
}

/// A request that failed in transit. Only one that was never sent (a malformed URL) is a refusal;
/// after a timeout or a broken connection Adyen may have acted.
fn transport_error(e: reqwest::Error) -> GatewayError {
    if e.is_builder() {
        return GatewayError::Refused {
            status: NOT_SENT,
            code: "invalid_request".to_owned(),
            message: format!("the Adyen request could not be built: {e}"),
        };
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed in transit"
    };
    GatewayError::unknown(
        format!("the Adyen request {what}; its outcome is unknown"),
        Some(Box::new(e)),
    )
}
