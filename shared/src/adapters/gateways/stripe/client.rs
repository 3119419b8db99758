//! The Stripe adapter's HTTP plumbing: authenticated, version-pinned requests, transport
//! failures as unknown outcomes, and the mapping of Stripe's error answers.
//!
//! - 409 (same idempotency key in flight), 429, 5xx, timeouts, connection failures →
//!   [`GatewayError::Unknown`].
//! - Other 4xx → [`GatewayError::Refused`] with Stripe's code.

use std::time::Duration;

use super::wire::ErrorBody;
use super::{STRIPE_VERSION, StripeGateway};
use crate::adapters::gateways::http::retry_after;
use crate::ports::GatewayError;

impl StripeGateway {
    /// POSTs `form`; a transport failure is an unknown outcome, any HTTP answer is returned.
    pub(super) async fn post_raw(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), GatewayError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        self.send(request).await
    }

    /// GETs `path_and_query`; transport failures are unknown outcomes. A `Retry-After` on the
    /// answer is not passed on.
    pub(super) async fn get_raw(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), GatewayError> {
        let request = self.http.get(format!("{}{path_and_query}", self.base_url));
        let (status, body, _) = self.send(request).await?;
        Ok((status, body, None))
    }

    /// Sends `request` with the API key and the pinned version: a transport failure or a body cut
    /// off is an unknown outcome; any HTTP answer is returned with its `Retry-After`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), GatewayError> {
        let response = request
            .bearer_auth(self.api_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .send()
            .await
            .map_err(|e| GatewayError::unknown(transport_message(&e), Some(Box::new(e))))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(|e| {
            GatewayError::unknown("the response body was cut off", Some(Box::new(e)))
        })?;
        Ok((status, body.to_vec(), retry_after))
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request to Stripe timed out".into()
    } else if e.is_connect() {
        "could not connect to Stripe".into()
    } else {
        "the request to Stripe failed".into()
    }
}

/// A non-2xx, non-402 answer: 409 (the same idempotency key still running at Stripe), 429 and
/// 5xx leave the outcome unknown; any other status is a refusal with Stripe's code.
pub(super) fn error_of(status: u16, body: &[u8], retry_after: Option<Duration>) -> GatewayError {
    if matches!(status, 409 | 429 | 500..=599) {
        return GatewayError::Unknown {
            message: format!("Stripe answered {status}"),
            retry_after,
            source: None,
        };
    }
    let error = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    GatewayError::Refused {
        status,
        code: error
            .code
            .or(error.kind)
            .unwrap_or_else(|| "invalid_request".into()),
        message: error
            .message
            .unwrap_or_else(|| format!("Stripe answered {status}")),
    }
}
