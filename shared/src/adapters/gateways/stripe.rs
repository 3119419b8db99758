//! Stripe PaymentIntents over Stripe's HTTP API (form-encoded, pinned `Stripe-Version`).
//!
//! Every mutating call carries paybridge's own deterministic `Idempotency-Key`, so a retry after a
//! timeout is answered with the first result rather than acted on twice. Stripe keeps keys for at
//! least 24 hours; retries must stop well before that (the retry use case bounds them).
//!
//! Mapping:
//! - PaymentIntent `succeeded` → succeeded; `requires_capture` → authorized; `processing` →
//!   processing; `requires_action` / `requires_confirmation` → requires_action; `canceled` →
//!   canceled; `requires_payment_method` after a confirmation → failed with `last_payment_error`.
//! - HTTP 402 (card error) → a *failed payment*, not an error, with the decline code.
//! - 409 (same idempotency key in flight), 429, 5xx, timeouts, connection failures →
//!   [`GatewayError::Unknown`].
//! - Other 4xx → [`GatewayError::Refused`].

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{
    Charge, ChargeId, ChargeStatus, Failure, GatewayUpdate, Interpretation, Money, PaymentOutcome,
    PaymentUpdate, Refund, RefundId, RefundOutcome, RefundStatus, RefundUpdate,
};
use crate::ports::{GatewayError, PaymentGateway, PaymentRequest, RefundGateway};
use crate::secrets::SecretString;

/// The API version paybridge is written against.
pub const STRIPE_VERSION: &str = "2024-06-20";

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

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    amount_received: Option<i64>,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize, Default)]
struct StripeError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// Present on card errors of a confirmation: the PaymentIntent as it is now.
    #[serde(default)]
    payment_intent: Option<Box<serde_json::Value>>,
}

impl StripeError {
    fn failure(&self) -> Failure {
        Failure {
            code: self
                .decline_code
                .clone()
                .or_else(|| self.code.clone())
                .unwrap_or_else(|| "card_error".into()),
            message: self
                .message
                .clone()
                .unwrap_or_else(|| "the payment was declined".into()),
        }
    }
}

/// Maps a PaymentIntent to an outcome.
fn outcome_of(pi: PaymentIntent) -> Result<PaymentOutcome, GatewayError> {
    let status = match pi.status.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "requires_capture" => ChargeStatus::Authorized,
        "processing" => ChargeStatus::Processing,
        "requires_action" | "requires_confirmation" => ChargeStatus::RequiresAction,
        "canceled" => ChargeStatus::Canceled,
        "requires_payment_method" => ChargeStatus::Failed,
        other => {
            return Err(GatewayError::unknown(
                format!("unexpected PaymentIntent status `{other}`"),
                None,
            ));
        }
    };
    let failure = match status {
        ChargeStatus::Failed => Some(
            pi.last_payment_error
                .as_ref()
                .map(StripeError::failure)
                .unwrap_or(Failure {
                    code: "payment_failed".into(),
                    message: "the payment method was not charged".into(),
                }),
        ),
        _ => None,
    };
    // Older API versions (and localstripe) do not send amount_received: a succeeded intent then
    // received its whole amount.
    let captured = if status == ChargeStatus::Succeeded {
        pi.amount_received.or(pi.amount).unwrap_or(0)
    } else {
        0
    };
    Ok(PaymentOutcome {
        gateway_ref: pi.id,
        status,
        captured,
        failure,
    })
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
        classify(status, &body, retry_after)
    }

    /// POSTs `form`; a transport failure is an unknown outcome, any HTTP answer is returned.
    async fn post_raw(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), GatewayError> {
        let result = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                return Err(GatewayError::unknown(
                    transport_message(&e),
                    Some(Box::new(e)),
                ));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.bytes().await {
            Ok(b) => Ok((status, b.to_vec(), retry_after)),
            Err(e) => Err(GatewayError::unknown(
                "the response body was cut off",
                Some(Box::new(e)),
            )),
        }
    }
}

impl StripeGateway {
    /// GETs `path_and_query`; transport failures are unknown outcomes.
    async fn get_raw(
        &self,
        path_and_query: &str,
    ) -> Result<(u16, Vec<u8>, Option<Duration>), GatewayError> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base_url))
            .bearer_auth(self.api_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .send()
            .await
            .map_err(|e| GatewayError::unknown(transport_message(&e), Some(Box::new(e))))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            GatewayError::unknown("the response body was cut off", Some(Box::new(e)))
        })?;
        Ok((status, body.to_vec(), None))
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
                return Err(error_of(status, &body, retry_after));
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

fn transport_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request to Stripe timed out".into()
    } else if e.is_connect() {
        "could not connect to Stripe".into()
    } else {
        "the request to Stripe failed".into()
    }
}

/// Maps an HTTP answer from Stripe to an outcome or an error.
fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<PaymentOutcome, GatewayError> {
    match status {
        200..=299 => match serde_json::from_slice::<PaymentIntent>(body) {
            Ok(pi) => outcome_of(pi),
            // It may have worked: the outcome is unknown, not failed.
            Err(e) => Err(GatewayError::unknown(
                "Stripe answered 2xx with an unreadable body",
                Some(Box::new(e)),
            )),
        },
        402 => {
            let error = serde_json::from_slice::<ErrorBody>(body)
                .map(|b| b.error)
                .unwrap_or_default();
            let failure = error.failure();
            let pi = error
                .payment_intent
                .as_deref()
                .and_then(|v| serde_json::from_value::<PaymentIntent>(v.clone()).ok());
            let gateway_ref = pi.map(|p| p.id).unwrap_or_default();
            Ok(PaymentOutcome {
                gateway_ref,
                status: ChargeStatus::Failed,
                captured: 0,
                failure: Some(failure),
            })
        }
        _ => Err(error_of(status, body, retry_after)),
    }
}

/// A non-2xx, non-402 answer: 409 (the same idempotency key still running at Stripe), 429 and
/// 5xx leave the outcome unknown; any other status is a refusal with Stripe's code.
fn error_of(status: u16, body: &[u8], retry_after: Option<Duration>) -> GatewayError {
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

impl PaymentGateway for StripeGateway {
    async fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, GatewayError> {
        let c = request.charge;
        let mut form: Vec<(String, String)> = vec![
            ("amount".into(), c.amount.minor().to_string()),
            ("currency".into(), c.currency().code().into()),
            ("payment_method".into(), c.payment_method.clone()),
            ("confirm".into(), "true".into()),
            ("off_session".into(), "true".into()),
            (
                "capture_method".into(),
                if c.capture { "automatic" } else { "manual" }.into(),
            ),
            ("metadata[paybridge_charge_id]".into(), c.id.to_string()),
            ("metadata[invoice_id]".into(), c.invoice_id.clone()),
        ];
        if let Some(customer) = &c.customer {
            form.push(("customer".into(), customer.clone()));
        }
        if let Some(description) = &c.description {
            form.push(("description".into(), description.clone()));
        }
        for (k, v) in &c.metadata {
            form.push((format!("metadata[{k}]"), v.clone()));
        }
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
        let form = vec![("amount_to_capture".to_owned(), amount.minor().to_string())];
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
        classify(status, &body, retry_after)
    }
}

#[derive(Deserialize)]
struct StripeRefund {
    id: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// Maps an HTTP answer to `POST /v1/refunds`.
fn classify_refund(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<RefundOutcome, GatewayError> {
    match status {
        200..=299 => {
            let r: StripeRefund = serde_json::from_slice(body).map_err(|e| {
                GatewayError::unknown(
                    "Stripe answered 2xx with an unreadable refund",
                    Some(Box::new(e)),
                )
            })?;
            let status = match r.status.as_str() {
                "succeeded" => RefundStatus::Succeeded,
                "pending" | "requires_action" => RefundStatus::Pending,
                "failed" => RefundStatus::Failed,
                "canceled" => RefundStatus::Canceled,
                other => {
                    return Err(GatewayError::unknown(
                        format!("unexpected refund status `{other}`"),
                        None,
                    ));
                }
            };
            let failure = (status == RefundStatus::Failed).then(|| Failure {
                code: r
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "refund_failed".into()),
                message: "the gateway could not complete the refund".into(),
            });
            Ok(RefundOutcome {
                gateway_ref: r.id,
                status,
                failure,
            })
        }
        _ => Err(error_of(status, body, retry_after)),
    }
}

impl RefundGateway for StripeGateway {
    async fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        let pi = reference(charge)?;
        let mut form = vec![
            ("payment_intent".to_owned(), pi.to_owned()),
            ("amount".to_owned(), refund.amount.minor().to_string()),
            (
                "metadata[paybridge_refund_id]".to_owned(),
                refund.id.to_string(),
            ),
            (
                "metadata[paybridge_charge_id]".to_owned(),
                charge.id.to_string(),
            ),
        ];
        if let Some(reason) = refund.reason {
            form.push(("reason".to_owned(), reason.as_str().to_owned()));
        }
        for (k, v) in &refund.metadata {
            form.push((format!("metadata[{k}]"), v.clone()));
        }
        let (status, body, retry_after) = self
            .post_raw("/v1/refunds", &form, &refund.gateway_idempotency_key())
            .await?;
        classify_refund(status, &body, retry_after)
    }

    async fn retrieve_refund(
        &self,
        _charge: &Charge,
        refund: &Refund,
    ) -> Result<RefundOutcome, GatewayError> {
        let re = refund
            .gateway_ref
            .as_deref()
            .filter(|r| {
                r.starts_with("re_") && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .ok_or(GatewayError::Refused {
                status: 0,
                code: "no_gateway_reference".into(),
                message: "the refund has no Stripe refund id to look up".into(),
            })?;
        let (status, body, retry_after) = self.get_raw(&format!("/v1/refunds/{re}")).await?;
        classify_refund(status, &body, retry_after)
    }
}

fn reference(charge: &Charge) -> Result<&str, GatewayError> {
    charge
        .gateway_ref
        .as_deref()
        .filter(|r| {
            r.starts_with("pi_") && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or(GatewayError::Refused {
            status: 0,
            code: "no_gateway_reference".into(),
            message: "the charge has no Stripe PaymentIntent to act on".into(),
        })
}

// ---- webhook events ---------------------------------------------------------------------------

fn metadata_id<T>(
    object: &serde_json::Value,
    key: &str,
    parse: impl Fn(&str) -> Result<T, crate::domain::IdError>,
) -> Option<T> {
    object
        .pointer(&format!("/metadata/{key}"))
        .and_then(|v| v.as_str())
        .and_then(|s| parse(s).ok())
}

fn refund_update(object: &serde_json::Value) -> Option<GatewayUpdate> {
    let refund: StripeRefund = serde_json::from_value(object.clone()).ok()?;
    let outcome = classify_refund(200, object.to_string().as_bytes(), None).ok()?;
    Some(GatewayUpdate::Refund(RefundUpdate {
        gateway_ref: Some(refund.id),
        refund_id: metadata_id(object, "paybridge_refund_id", RefundId::parse),
        outcome,
    }))
}

/// What a verified Stripe event (its stored, masked JSON) says about paybridge's charges and
/// refunds. Pure: the worker resolves and applies the result.
pub fn interpret(event_type: &str, payload: &str) -> Interpretation {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Interpretation::Ignore("unreadable payload".into());
    };
    let object = event.pointer("/data/object").cloned().unwrap_or_default();
    match event_type {
        t if t.starts_with("payment_intent.") => {
            let Ok(pi) = serde_json::from_value::<PaymentIntent>(object.clone()) else {
                return Interpretation::Ignore(
                    "the event carries no readable PaymentIntent".into(),
                );
            };
            let gateway_ref = pi.id.clone();
            match outcome_of(pi) {
                Ok(outcome) => Interpretation::Apply(vec![GatewayUpdate::Payment(PaymentUpdate {
                    gateway_ref: Some(gateway_ref),
                    charge_id: metadata_id(&object, "paybridge_charge_id", ChargeId::parse),
                    outcome,
                    captured_if_automatic: false,
                })]),
                Err(e) => Interpretation::Ignore(format!("PaymentIntent status not mapped: {e}")),
            }
        }
        // A Charge object with its refunds (older API versions list them inline).
        "charge.refunded" => {
            let refunds: Vec<GatewayUpdate> = object
                .pointer("/refunds/data")
                .and_then(|d| d.as_array())
                .map(|list| list.iter().filter_map(refund_update).collect())
                .unwrap_or_default();
            if refunds.is_empty() {
                // Newer API versions do not embed refunds; refund.* events carry them.
                Interpretation::Ignore(
                    "charge.refunded without embedded refunds (refund.* events report them)".into(),
                )
            } else {
                Interpretation::Apply(refunds)
            }
        }
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed" => {
            match refund_update(&object) {
                Some(update) => Interpretation::Apply(vec![update]),
                None => Interpretation::Ignore("the event carries no readable refund".into()),
            }
        }
        t if t.starts_with("charge.dispute.") => {
            Interpretation::Ignore("disputes are recorded but not modelled yet".into())
        }
        other => Interpretation::Ignore(format!("{other} does not change charges or refunds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_intent_statuses_map_to_charge_statuses() {
        let cases = [
            (
                r#"{"id":"pi_1","status":"succeeded","amount_received":1999}"#,
                ChargeStatus::Succeeded,
                1999,
            ),
            (
                r#"{"id":"pi_1","status":"requires_capture"}"#,
                ChargeStatus::Authorized,
                0,
            ),
            (
                r#"{"id":"pi_1","status":"processing"}"#,
                ChargeStatus::Processing,
                0,
            ),
            (
                r#"{"id":"pi_1","status":"requires_action"}"#,
                ChargeStatus::RequiresAction,
                0,
            ),
            (
                r#"{"id":"pi_1","status":"canceled"}"#,
                ChargeStatus::Canceled,
                0,
            ),
        ];
        for (body, status, captured) in cases {
            let o = classify(200, body.as_bytes(), None).unwrap();
            assert_eq!(
                (o.status, o.captured, o.gateway_ref.as_str()),
                (status, captured, "pi_1"),
                "{body}"
            );
        }
    }

    #[test]
    fn a_card_error_is_a_failed_payment_with_the_decline_code() {
        let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","payment_intent":{"id":"pi_9","status":"requires_payment_method"}}}"#;
        let o = classify(402, body, None).unwrap();
        assert_eq!(o.status, ChargeStatus::Failed);
        assert_eq!(o.gateway_ref, "pi_9");
        assert_eq!(o.failure.unwrap().code, "insufficient_funds");
        // localstripe's shape: no decline_code, no payment_intent.
        let o = classify(402, br#"{"error":{"code":"card_declined","message":"Your card was declined.","type":"invalid_request_error"}}"#, None).unwrap();
        assert_eq!(o.failure.unwrap().code, "card_declined");
    }

    #[test]
    fn throttling_server_errors_and_unreadable_successes_are_unknown_outcomes() {
        match classify(429, b"{}", Some(Duration::from_secs(2))) {
            Err(GatewayError::Unknown { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(503, b"oops", None),
            Err(GatewayError::Unknown { .. })
        ));
        assert!(matches!(
            classify(200, b"<html>", None),
            Err(GatewayError::Unknown { .. })
        ));
    }

    #[test]
    fn other_client_errors_are_refusals() {
        let body = br#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#;
        match classify(400, body, None) {
            Err(GatewayError::Refused { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (400, "idempotency_error"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refund_answers_map_to_refund_statuses() {
        let ok = classify_refund(200, br#"{"id":"re_1","status":"succeeded"}"#, None).unwrap();
        assert_eq!(
            (ok.gateway_ref.as_str(), ok.status),
            ("re_1", RefundStatus::Succeeded)
        );
        let pending = classify_refund(200, br#"{"id":"re_2","status":"pending"}"#, None).unwrap();
        assert_eq!(pending.status, RefundStatus::Pending);
        let failed = classify_refund(
            200,
            br#"{"id":"re_3","status":"failed","failure_reason":"expired_or_canceled_card"}"#,
            None,
        )
        .unwrap();
        assert_eq!(failed.failure.unwrap().code, "expired_or_canceled_card");
        assert!(matches!(
            classify_refund(503, b"", None),
            Err(GatewayError::Unknown { .. })
        ));
        assert!(matches!(
            classify_refund(
                400,
                br#"{"error":{"code":"charge_already_refunded","message":"x"}}"#,
                None
            ),
            Err(GatewayError::Refused { .. })
        ));
    }

    #[test]
    fn payment_intent_events_name_the_charge_by_reference_and_metadata() {
        let charge = ChargeId::generate();
        let payload = serde_json::json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {
            "id": "pi_9", "object": "payment_intent", "status": "succeeded", "amount": 1999, "amount_received": 1999,
            "metadata": {"paybridge_charge_id": charge.to_string()}}}});
        match interpret("payment_intent.succeeded", &payload.to_string()) {
            Interpretation::Apply(updates) => match &updates[..] {
                [GatewayUpdate::Payment(u)] => {
                    assert_eq!(
                        (u.gateway_ref.as_deref(), u.charge_id.as_ref()),
                        (Some("pi_9"), Some(&charge))
                    );
                    assert_eq!(
                        (u.outcome.status, u.outcome.captured),
                        (ChargeStatus::Succeeded, 1999)
                    );
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refund_events_and_embedded_refunds_become_refund_updates() {
        let refund = RefundId::generate();
        let object = serde_json::json!({"id": "re_1", "object": "refund", "status": "failed", "failure_reason": "lost_or_stolen_card",
            "metadata": {"paybridge_refund_id": refund.to_string()}});
        let payload = serde_json::json!({"data": {"object": object}}).to_string();
        match interpret("charge.refund.updated", &payload) {
            Interpretation::Apply(u) => assert!(
                matches!(&u[..], [GatewayUpdate::Refund(r)] if r.refund_id.as_ref() == Some(&refund) && r.outcome.status == RefundStatus::Failed)
            ),
            other => panic!("{other:?}"),
        }
        let charge = serde_json::json!({"data": {"object": {"id": "ch_1", "refunds": {"data": [
            {"id": "re_1", "status": "succeeded"}, {"id": "re_2", "status": "succeeded"}]}}}});
        match interpret("charge.refunded", &charge.to_string()) {
            Interpretation::Apply(u) => assert_eq!(u.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret("charge.dispute.created", "{}"),
            Interpretation::Ignore(_)
        ));
        assert!(matches!(
            interpret("payment_intent.succeeded", "not json"),
            Interpretation::Ignore(_)
        ));
    }

    #[test]
    fn the_api_key_is_not_in_debug_output() {
        let g = StripeGateway::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1",
            SecretString::new("sk_test_secret"),
        );
        assert!(!format!("{g:?}").contains("sk_test_secret"));
    }
}
