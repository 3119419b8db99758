//! Payment gateway connectors behind the [`crate::ports::PaymentGateway`] port.
//!
//! One HTTP stack for all of them: reqwest on rustls, with a short connect timeout and an overall
//! request timeout, no redirects followed.
//!
//! Each connector is a folder: `mod.rs` (the gateway type and its port implementations),
//! `client.rs` (HTTP calls, error answers, transport failures), `wire.rs` (the gateway's JSON or
//! forms, private to it) and `mapping.rs` (answers → outcomes). What a gateway's objects and
//! amounts mean is shared with its webhook interpreter from [`crate::webhooks`], the lower layer.

pub mod adyen;
mod http;
pub mod stripe;

use std::time::Duration;

/// The HTTP client gateway connectors share. `timeout` bounds a whole request: past it the
/// outcome is unknown and the caller retries with the same idempotency key.
///
/// Every client shares one TLS configuration ([`crate::adapters::tls`]): the system's roots are
/// read once per process, not once per client.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    // Building fails only if the TLS backend cannot initialise: a broken deployment.
    let tls = crate::adapters::tls::client_config()
        .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"));
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("paybridge/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only if the TLS backend cannot initialise: a broken deployment.
        .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
}

use crate::domain::Gateway;
use crate::domain::{Charge, Money, PaymentOutcome, Refund, RefundOutcome};
use crate::ports::{
    GatewayError, PaymentGateway, PaymentRequest, RefundGateway, UndeliveredEvents,
};

/// The configured gateways, chosen per charge by its `gateway` field.
#[derive(Debug, Default)]
pub struct GatewayRouter {
    pub stripe: Option<stripe::StripeGateway>,
    pub adyen: Option<adyen::AdyenGateway>,
}

impl GatewayRouter {
    /// The gateways the secret has credentials for, at the configured API bases.
    pub fn from_secrets(
        config: &crate::config::Config,
        secrets: &crate::secrets::Secrets,
        timeout: Duration,
    ) -> Self {
        let http = http_client(timeout);
        GatewayRouter {
            stripe: secrets.stripe.as_ref().map(|s| {
                stripe::StripeGateway::new(http.clone(), &config.stripe_api_base, s.api_key.clone())
            }),
            adyen: secrets.adyen.as_ref().map(|a| {
                adyen::AdyenGateway::new(
                    http.clone(),
                    &config.adyen_api_base,
                    a.api_key.clone(),
                    &a.merchant_account,
                )
            }),
        }
    }
}

fn not_configured(gateway: Gateway) -> GatewayError {
    GatewayError::Refused {
        status: 0,
        code: "gateway_not_configured".into(),
        message: format!("no credentials for {gateway} are configured in the secret"),
    }
}

/// Calls `$call` on the connector of gateway `$gw` (bound as `$g`), or refuses with
/// `gateway_not_configured` when the secret has no credentials for it.
macro_rules! route {
    ($router:expr, $gw:expr, |$g:ident| $call:expr) => {
        match ($gw, &$router.stripe, &$router.adyen) {
            (Gateway::Stripe, Some($g), _) => $call.await,
            (Gateway::Adyen, _, Some($g)) => $call.await,
            (other, _, _) => Err(not_configured(other)),
        }
    };
}

impl PaymentGateway for GatewayRouter {
    async fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, GatewayError> {
        route!(self, request.charge.gateway, |g| g.create_payment(request))
    }

    async fn capture(
        &self,
        charge: &Charge,
        amount: Money,
        key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        route!(self, charge.gateway, |g| g.capture(charge, amount, key))
    }

    async fn cancel(&self, charge: &Charge, key: &str) -> Result<PaymentOutcome, GatewayError> {
        route!(self, charge.gateway, |g| g.cancel(charge, key))
    }

    async fn retrieve(&self, charge: &Charge) -> Result<PaymentOutcome, GatewayError> {
        route!(self, charge.gateway, |g| g.retrieve(charge))
    }

    async fn find_payments(&self, charge: &Charge) -> Result<Vec<PaymentOutcome>, GatewayError> {
        route!(self, charge.gateway, |g| g.find_payments(charge))
    }
}

impl RefundGateway for GatewayRouter {
    async fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        route!(self, charge.gateway, |g| g.refund(charge, refund))
    }

    async fn retrieve_refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        route!(self, charge.gateway, |g| g.retrieve_refund(charge, refund))
    }

    async fn find_refunds(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<Vec<RefundOutcome>, GatewayError> {
        route!(self, charge.gateway, |g| g.find_refunds(charge, refund))
    }
}

impl UndeliveredEvents for GatewayRouter {
    /// Stripe's list (the only gateway that keeps one); none without Stripe credentials.
    async fn undelivered_events(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, GatewayError> {
        match &self.stripe {
            Some(stripe) => stripe.undelivered_events(since, limit).await,
            None => Ok(Vec::new()),
        }
    }
}
