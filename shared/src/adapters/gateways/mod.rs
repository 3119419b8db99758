//! Payment gateway connectors behind the [`PaymentGateway`](crate::ports::PaymentGateway) port.
//!
//! One HTTP stack for all of them: reqwest on rustls, with a short connect timeout and an overall
//! request timeout, no redirects followed.

pub mod adyen;
pub mod stripe;

use std::time::Duration;

/// The HTTP client gateway connectors share. `timeout` bounds a whole request: past it the
/// outcome is unknown and the caller retries with the same idempotency key.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("paybridge/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only if the TLS backend cannot initialise: a broken deployment.
        .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
}
