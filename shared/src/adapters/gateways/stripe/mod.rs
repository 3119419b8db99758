//! [`StripeGateway`]: the payment and refund ports on Stripe's PaymentIntents API
//! (form-encoded, pinned `Stripe-Version`).
//!
//! Every mutating call carries paybridge's own deterministic `Idempotency-Key`, so a retry after a
//! timeout is answered with the first result rather than acted on twice. Stripe keeps keys for at
//! least 24 hours; retries must stop well before that (the retry use case bounds them).
//!
//! - `client`: the HTTP calls, transport failures and error answers.
//! - `wire`: the request forms (amounts in Stripe's minor units, see
//!   [`crate::webhooks::stripe`]'s `amount`) and Stripe's error body, private to this adapter.
//! - `mapping`: answers → [`PaymentOutcome`] / [`RefundOutcome`] (402 card errors are failed
//!   payments, not errors), reading Stripe's objects as the webhook interpreter does.

mod client;
mod mapping;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;

use serde::Deserialize;

use crate::domain::{Charge, Money, PaymentOutcome, Refund, RefundOutcome};
use crate::ports::{GatewayError, PaymentGateway, PaymentRequest, RefundGateway};
use crate::secrets::SecretString;

/// The API version paybridge is written against, sent on every request. Webhook endpoints keep
/// the version they were created with, so the webhook interpreter reads older shapes too;
/// docs/stripe-api.md lists what changed since 2024-06-20 and what paybridge does about it.
pub const STRIPE_VERSION: &str = "2026-11-18.endive";

/// Stripe's PaymentIntents API.
#[derive(Clone)]
pub struct StripeGateway {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StripeGateway {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, api_key: SecretString) -> Self {
        StripeGateway {
            http,
            base_url: base_url.into(),
            api_key,
        }
    }

    /// POSTs `form` to `path` with `idempotency_key` and maps the answer to a payment outcome.
    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        let (status, body, retry_after) = self.post_raw(path, form, idempotency_key).await?;
        mapping::classify(status, &body, retry_after)
    }
}

impl crate::ports::UndeliveredEvents for StripeGateway {
    async fn undelivered_events(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, GatewayError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<serde_json::Value>,
            #[serde(default)]
            has_more: bool,
        }
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        while events.len() < limit {
            let mut query =
                format!("/v1/events?delivery_success=false&limit=100&created[gte]={since}");
            if let Some(a) = &after {
                query.push_str(&format!("&starting_after={a}"));
            }
            let (status, body, retry_after) = self.get_raw(&query).await?;
            if status != 200 {
                return Err(client::error_of(status, &body, retry_after));
            }
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                GatewayError::unknown("Stripe's event list was unreadable", Some(Box::new(e)))
            })?;
            after = page
                .data
                .last()
                .and_then(|e| e.get("id"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let more = page.has_more && after.is_some();
            events.extend(page.data.into_iter().map(|e| e.to_string().into_bytes()));
            if !more {
                break;
            }
        }
        events.truncate(limit);
        Ok(events)
    }
}

impl PaymentGateway for StripeGateway {
    async fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, GatewayError> {
        let form = wire::payment_form(request.charge)?;
        self.post("/v1/payment_intents", &form, &request.idempotency_key)
            .await
    }

    async fn capture(
        &self,
        charge: &Charge,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        let pi = reference(charge)?;
        let form = vec![("amount_to_capture".to_owned(), wire::stripe_amount(amount)?)];
        self.post(
            &format!("/v1/payment_intents/{pi}/capture"),
            &form,
            idempotency_key,
        )
        .await
    }

    async fn cancel(
        &self,
        charge: &Charge,
        idempotency_key: &str,
    ) -> Result<PaymentOutcome, GatewayError> {
        let pi = reference(charge)?;
        self.post(
            &format!("/v1/payment_intents/{pi}/cancel"),
            &[],
            idempotency_key,
        )
        .await
    }

    async fn retrieve(&self, charge: &Charge) -> Result<PaymentOutcome, GatewayError> {
        let pi = reference(charge)?;
        let (status, body, retry_after) =
            self.get_raw(&format!("/v1/payment_intents/{pi}")).await?;
        mapping::classify(status, &body, retry_after)
    }

    /// `GET /v1/payment_intents/search?query=metadata['paybridge_charge_id']:'ch_…'`. Stripe's
    /// search index trails writes by about a minute (up to an hour in an outage); the reconciler
    /// asks only after the key window (a day), when the PaymentIntent of a create long past is
    /// searchable.
    async fn find_payments(&self, charge: &Charge) -> Result<Vec<PaymentOutcome>, GatewayError> {
        // Charge ids are `ch_` and hex (checked on parse): nothing to escape in the query.
        let query = format!("metadata['paybridge_charge_id']:'{}'", charge.id);
        let path = format!(
            "/v1/payment_intents/search?limit=100&query={}",
            query_value(&query)
        );
        let found = (self.list(&path).await?.into_iter()).filter(|pi| {
            pi.get("metadata")
                .and_then(|m| m.get("paybridge_charge_id"))
                == Some(&charge.id.as_str().into())
        });
        found
            .map(|pi| mapping::classify(200, pi.to_string().as_bytes(), None))
            .collect()
    }
}

impl StripeGateway {
    /// Every object of a list or search answer at `path` (which has its own query string),
    /// following `has_more` (lists: `starting_after`; searches: `page=next_page`).
    async fn list(&self, path: &str) -> Result<Vec<serde_json::Value>, GatewayError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<serde_json::Value>,
            #[serde(default)]
            has_more: bool,
            #[serde(default)]
            next_page: Option<String>,
        }
        let mut all = Vec::new();
        let mut next = path.to_owned();
        // A bound on pages, so a gateway answering has_more forever cannot loop us.
        for _ in 0..100 {
            let (status, body, retry_after) = self.get_raw(&next).await?;
            if status != 200 {
                return Err(client::error_of(status, &body, retry_after));
            }
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                GatewayError::unknown("Stripe's list was unreadable", Some(Box::new(e)))
            })?;
            let last = page
                .data
                .last()
                .and_then(|o| o.get("id")?.as_str().map(str::to_owned));
            all.extend(page.data);
            next = match (page.has_more, page.next_page, last) {
                (false, ..) => return Ok(all),
                (true, Some(token), _) => format!("{path}&page={}", query_value(&token)),
                (true, None, Some(id)) => format!("{path}&starting_after={id}"),
                (true, None, None) => return Ok(all),
            };
        }
        Err(GatewayError::unknown(
            "Stripe's list did not end after 100 pages",
            None,
        ))
    }
}

impl RefundGateway for StripeGateway {
    async fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        let pi = reference(charge)?;
        let form = wire::refund_form(charge, refund, pi)?;
        let (status, body, retry_after) = self
            .post_raw("/v1/refunds", &form, &refund.gateway_idempotency_key())
            .await?;
        mapping::classify_refund(status, &body, retry_after)
    }

    async fn retrieve_refund(
        &self,
        _charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        let missing = "the refund has no Stripe refund id to look up";
        let re = object_id(refund.gateway_ref.as_deref(), "re_", missing)?;
        let (status, body, retry_after) = self.get_raw(&format!("/v1/refunds/{re}")).await?;
        mapping::classify_refund(status, &body, retry_after)
    }

    /// `GET /v1/refunds?payment_intent=pi_…`, matched by `metadata.paybridge_refund_id`
    /// (Stripe has no refund search; the list is exact).
    async fn find_refunds(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<Vec<RefundOutcome>, GatewayError> {
        let pi = reference(charge)?;
        let ours = serde_json::Value::from(refund.id.as_str());
        let listed = self
            .list(&format!("/v1/refunds?limit=100&payment_intent={pi}"))
            .await?;
        (listed.into_iter())
            .filter(|r| r.get("metadata").and_then(|m| m.get("paybridge_refund_id")) == Some(&ours))
            .map(|r| mapping::classify_refund(200, r.to_string().as_bytes(), None))
            .collect()
    }
}

fn reference(charge: &Charge) -> Result<&str, GatewayError> {
    let missing = "the charge has no Stripe PaymentIntent to act on";
    object_id(charge.gateway_ref.as_deref(), "pi_", missing)
}

/// A Stripe object id with `prefix` (`pi_…`, `re_…`) safe to put in a path, or a refusal saying
/// what is `missing` (nothing was sent).
fn object_id<'a>(
    gateway_ref: Option<&'a str>,
    prefix: &str,
    missing: &str,
) -> Result<&'a str, GatewayError> {
    gateway_ref
        .filter(|r| {
            r.starts_with(prefix) && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or_else(|| GatewayError::Refused {
            status: 0,
            code: "no_gateway_reference".into(),
            message: missing.into(),
        })
}

/// `value` percent-encoded for a query string: every byte but RFC 3986's unreserved ones.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .fold(String::with_capacity(value.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
            out
        })
}
