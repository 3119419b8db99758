//! Use case: create a charge — `POST /charges` with an `Idempotency-Key`.
//!
//! 1. Parse strictly (unknown fields refused; a card number anywhere → 422, nothing stored or
//!    logged; an amount the gateway cannot take in its own minor units → 422
//!    `amount_not_representable`).
//! 2. Claim the idempotency key (or replay / 409 / 422).
//! 3. Store the charge as `pending` on its invoice (or find the one a crashed attempt with this
//!    key stored) — unless the invoice has a charge that took, holds or may still take money and
//!    billing did not say `allow_additional_charge`: then 409 `invoice_already_charged`, naming
//!    that charge. The check and the write are one conditional transaction on the invoice record,
//!    so two requests with different keys cannot both pass it.
//! 4. Call the gateway with the charge's deterministic idempotency key.
//! 5. Known outcome → store it, 201. Unknown outcome (timeout, 5xx, 429) → keep `pending`, put a
//!    retry message on the work queue, 202. The retry uses the same gateway key, so the gateway
//!    sees one payment however many times it is asked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::invoice::{Placed, place};
use super::{settle, view};
use crate::domain::Gateway;
use crate::domain::{Charge, ChargeId, ChargeStatus, Failure, Money, PaymentOutcome, WorkMessage};
use crate::error::{Code, Error};
use crate::ports::{
    BillingStore, ChargeStore, GatewayError, PaymentGateway, PaymentRequest, WorkQueue,
};
use crate::services::ApiResponse;
use crate::services::idempotency::{self, Call, Claim};
/// The metadata limits, where the charge request documents them.
pub use crate::services::request::{
    MAX_METADATA_KEY_LEN, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LEN,
};
use crate::services::request::{check_gateway_amount, check_metadata, parse_body};
use crate::services::retry_policy::retry_delay;
use crate::telemetry::Metric;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    invoice_id: String,
    amount: i64,
    currency: String,
    gateway: String,
    payment_method: String,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default = "yes")]
    capture: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    allow_additional_charge: bool,
}

fn yes() -> bool {
    true
}

/// A validated charge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    pub invoice_id: String,
    pub amount: Money,
    pub gateway: Gateway,
    pub payment_method: String,
    pub customer: Option<String>,
    pub capture: bool,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Charge the invoice even if one of its charges holds it (a partial payment, a top-up).
    pub allow_additional_charge: bool,
}

fn token(value: &str, field: &'static str) -> Result<String, Error> {
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            Code::InvalidField,
            format!("`{field}` must be 1 to 255 printable ASCII characters without spaces"),
        ));
    }
    Ok(value.to_owned())
}

impl NewCharge {
    /// Parses a `POST /charges` body. Returns the request and its JSON (for the fingerprint).
    pub fn parse(body: &[u8]) -> Result<(NewCharge, serde_json::Value), Error> {
        let (b, value): (Body, serde_json::Value) = parse_body(body, false)?;
        let gateway = match b.gateway.as_str() {
            "stripe" => Gateway::Stripe,
            "adyen" => Gateway::Adyen,
            _ => {
                return Err(Error::new(
                    Code::UnsupportedGateway,
                    "`gateway` must be `stripe` or `adyen`",
                ));
            }
        };
        let amount = Money::parse(b.amount, &b.currency)
            .map_err(|e| Error::new(Code::InvalidAmount, e.to_string()))?;
        check_gateway_amount(gateway, amount)?;
        check_metadata(&b.metadata)?;
        if b.description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(Error::new(
                Code::InvalidField,
                "`description` is limited to 1000 characters",
            ));
        }
        let charge = NewCharge {
            invoice_id: token(&b.invoice_id, "invoice_id")?,
            amount,
            gateway,
            payment_method: token(&b.payment_method, "payment_method")?,
            customer: b
                .customer
                .as_deref()
                .map(|c| token(c, "customer"))
                .transpose()?,
            capture: b.capture,
            description: b.description,
            metadata: b.metadata,
            allow_additional_charge: b.allow_additional_charge,
        };
        Ok((charge, value))
    }

    fn into_charge(self, id: ChargeId, now: i64) -> Charge {
        Charge {
            customer: self.customer,
            capture: self.capture,
            additional: self.allow_additional_charge,
            description: self.description,
            metadata: self.metadata,
            ..Charge::pending(
                id,
                self.invoice_id,
                self.amount,
                self.gateway,
                self.payment_method,
                now,
            )
        }
    }
}

/// What a charge use case needs.
pub struct ChargeDeps<'a, S, G, Q> {
    pub store: &'a S,
    pub gateway: &'a G,
    pub queue: &'a Q,
    pub idempotency_ttl: Duration,
}

impl<S, G, Q> ChargeDeps<'_, S, G, Q> {
    /// The idempotency claim of `call` for `operation` on `scope` (the route's path, or the id
    /// of the charge it acts on) with request JSON `request`, proposing `resource_id`.
    pub fn claim<'c>(
        &self,
        operation: &'static str,
        call: Call<'c>,
        scope: &str,
        request: &serde_json::Value,
        resource_id: String,
    ) -> Claim<'c> {
        Claim::new(
            operation,
            call,
            scope,
            request,
            resource_id,
            self.idempotency_ttl,
        )
    }
}

/// Outcome of one gateway call for a pending charge.
pub enum Attempt {
    Known(Charge),
    Unknown(Charge, Option<Duration>),
}

/// Whether an earlier attempt may have reached the gateway with this charge's key: once an
/// outcome is unknown, only the gateway's answer about that key or object settles it — a refusal
/// of a later request (401/403 after a rolled key, a gateway paybridge no longer has configured)
/// says nothing about the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// The first call with this key.
    None,
    /// A retry or a resumed request: the first call's outcome is unknown.
    Unknown,
}

/// Calls the gateway for a pending charge and stores what it says.
pub async fn attempt_payment(
    store: &impl ChargeStore,
    gateway: &impl PaymentGateway,
    queue: &impl WorkQueue,
    charge: Charge,
    earlier: Earlier,
    now: i64,
) -> Result<Attempt, Error> {
    if earlier == Earlier::Unknown && charge.gateway.key_expired(charge.created_at, now) {
        // The gateway may have forgotten the key: a re-send could be a second payment.
        tracing::error!(charge_id = %charge.id, gateway = %charge.gateway, created_at = charge.created_at, "the gateway's idempotency key window has passed: not re-sending; the charge stays pending for a lookup");
        crate::telemetry::Metrics::new("charges")
            .dimension("Gateway", charge.gateway.as_str())
            .count(Metric::KeyWindowPassed)
            .emit();
        return Ok(Attempt::Unknown(charge, None));
    }
    let request = PaymentRequest {
        charge: &charge,
        idempotency_key: charge.gateway_idempotency_key("create"),
    };
    let started = std::time::Instant::now();
    let result = gateway.create_payment(&request).await;
    crate::telemetry::Metrics::new("charges")
        .dimension("Gateway", charge.gateway.as_str())
        .value(
            Metric::GatewayLatency,
            started.elapsed().as_secs_f64() * 1000.0,
            crate::telemetry::Unit::Milliseconds,
        )
        .emit();
    match result {
        Ok(outcome) => Ok(Attempt::Known(
            settle(store, queue, charge, &outcome, now).await?,
        )),
        Err(GatewayError::Unknown {
            message,
            retry_after,
            ..
        }) => {
            tracing::warn!(charge_id = %charge.id, reason = %message, "gateway outcome unknown; charge stays pending");
            Ok(Attempt::Unknown(charge, retry_after))
        }
        Err(GatewayError::Refused {
            status,
            code,
            message,
        }) if earlier == Earlier::Unknown => {
            // The refusal is of this request, not an answer about the first: the charge stays
            // pending, is retried and reconciled, and alarms if it never settles.
            tracing::error!(charge_id = %charge.id, status, code = %code, reason = %message, "gateway refused a retry of a charge whose first outcome is unknown; it stays pending");
            Ok(Attempt::Unknown(charge, None))
        }
        Err(GatewayError::Refused {
            status,
            code,
            message,
        }) => {
            // The first call, refused: nothing was taken, the charge fails with the reason.
            tracing::error!(charge_id = %charge.id, status, code = %code, "gateway refused the payment request");
            let outcome = PaymentOutcome {
                gateway_ref: String::new(),
                status: ChargeStatus::Failed,
                captured: 0,
                failure: Some(Failure {
                    code,
                    message,
                    advice: None,
                }),
                action: None,
            };
            Ok(Attempt::Known(
                settle(store, queue, charge, &outcome, now).await?,
            ))
        }
    }
}

/// `POST /charges`.
pub async fn create_charge(
    deps: &ChargeDeps<'_, impl BillingStore, impl PaymentGateway, impl WorkQueue>,
    call: Call<'_>,
    body: &[u8],
) -> Result<ApiResponse, Error> {
    let (request, json) = NewCharge::parse(body)?;
    let proposed = ChargeId::generate().to_string();
    let claim = deps.claim("create_charge", call, "/charges", &json, proposed);
    idempotency::run(deps.store, claim, |running| async move {
        run(deps, request, &running.resource_id, call.now_ms / 1000).await
    })
    .await
}

async fn run(
    deps: &ChargeDeps<'_, impl BillingStore, impl PaymentGateway, impl WorkQueue>,
    request: NewCharge,
    resource_id: &str,
    now: i64,
) -> Result<ApiResponse, Error> {
    let id = ChargeId::parse(resource_id)
        .map_err(|e| Error::internal("bad resource id in idempotency record", Some(Box::new(e))))?;
    let fresh = request.into_charge(id.clone(), now);
    let mut earlier = Earlier::None;
    let charge = match place(deps.store, &fresh).await? {
        Placed::New => {
            tracing::info!(charge_id = %id, invoice_id = %fresh.invoice_id, additional = fresh.additional, "charge created");
            crate::telemetry::Metrics::new("charges")
                .dimension("Gateway", fresh.gateway.as_str())
                .count(Metric::ChargeCreated)
                .emit();
            fresh
        }
        // A crashed attempt with this key stored it already: carry on from where it got to. It may
        // have reached the gateway.
        Placed::Resumed => {
            earlier = Earlier::Unknown;
            deps.store
                .get_charge(&id)
                .await?
                .ok_or_else(|| Error::internal("charge vanished", None))?
        }
    };
    if charge.status != ChargeStatus::Pending {
        return Ok(ApiResponse::json(201, &view(&charge)));
    }
    match attempt_payment(deps.store, deps.gateway, deps.queue, charge, earlier, now).await? {
        Attempt::Known(charge) => {
            record_outcome_metric(&charge);
            Ok(ApiResponse::json(201, &view(&charge)))
        }
        Attempt::Unknown(charge, hint) => {
            deps.queue
                .send(
                    &WorkMessage::retry_charge(&charge.id, 1),
                    retry_delay(1, hint),
                )
                .await?;
            crate::telemetry::Metrics::new("charges")
                .dimension("Gateway", charge.gateway.as_str())
                .count(Metric::ChargePending)
                .emit();
            Ok(ApiResponse::json(202, &view(&charge)))
        }
    }
}

pub(crate) fn record_outcome_metric(charge: &Charge) {
    let m = crate::telemetry::Metrics::new("charges").dimension("Gateway", charge.gateway.as_str());
    match charge.status {
        ChargeStatus::Succeeded | ChargeStatus::Authorized => {
            m.count(Metric::ChargeSucceeded).emit()
        }
        ChargeStatus::Failed => {
            let code = charge
                .failure
                .as_ref()
                .map(|f| f.code.clone())
                .unwrap_or_default();
            m.count(Metric::ChargeFailed).emit();
            crate::telemetry::Metrics::new("charges")
                .dimension("FailureCode", code)
                .count(Metric::ChargeFailedByCode)
                .emit();
        }
        ChargeStatus::RequiresAction => m.count(Metric::ChargeRequiresAction).emit(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NewCharge, Error> {
        NewCharge::parse(s.as_bytes()).map(|(c, _)| c)
    }

    const GOOD: &str = r#"{"invoice_id":"inv_123","amount":1999,"currency":"eur","gateway":"stripe","payment_method":"pm_card_visa","customer":"cus_123","capture":true,"description":"Invoice 123","metadata":{"plan":"pro"}}"#;

    #[test]
    fn the_documented_request_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            (
                c.amount.minor(),
                c.amount.currency().code(),
                c.gateway,
                c.capture
            ),
            (1999, "eur", Gateway::Stripe, true)
        );
        assert!(parse(r#"{"invoice_id":"i","amount":1,"currency":"JPY","gateway":"adyen","payment_method":"x"}"#).unwrap().capture);
    }

    #[test]
    fn malformed_bodies_are_400_and_refusals_422() {
        let code = |s: &str| parse(s).map(|_| ()).unwrap_err();
        assert_eq!(code("{").kind().status(), 400);
        assert_eq!(
            code(&GOOD.replace("\"capture\"", "\"captur\"")).code(),
            "invalid_request"
        );
        assert_eq!(code(&GOOD.replace("1999", "-5")).code(), "invalid_amount");
        assert_eq!(code(&GOOD.replace("1999", "1.5")).kind().status(), 400);
        assert_eq!(
            code(&GOOD.replace("\"eur\"", "\"xxx\"")).code(),
            "invalid_amount"
        );
        assert_eq!(
            code(&GOOD.replace("\"stripe\"", "\"paypal\"")).code(),
            "unsupported_gateway"
        );
        assert_eq!(
            code(&GOOD.replace("pm_card_visa", "pm card")).code(),
            "invalid_field"
        );
        let many: BTreeMap<String, String> =
            (0..41).map(|i| (format!("k{i}"), "v".into())).collect();
        let body = GOOD.replace(r#"{"plan":"pro"}"#, &serde_json::to_string(&many).unwrap());
        assert_eq!(code(&body).code(), "invalid_metadata");
    }

    #[test]
    fn an_amount_the_gateway_cannot_take_in_its_minor_units_is_refused_with_422() {
        let body = |amount: i64, currency: &str, gateway: &str| {
            GOOD.replace("1999", &amount.to_string())
                .replace("\"eur\"", &format!("\"{currency}\""))
                .replace("\"stripe\"", &format!("\"{gateway}\""))
        };
        for (amount, currency, gateway) in [(5055, "kwd", "stripe"), (1_500_050, "idr", "adyen")] {
            let err = parse(&body(amount, currency, gateway)).unwrap_err();
            assert_eq!(
                (err.kind().status(), err.code()),
                (422, "amount_not_representable"),
                "{amount} {currency} at {gateway}"
            );
            assert!(
                err.message().contains(&amount.to_string()),
                "{}",
                err.message()
            );
        }
        for (amount, currency, gateway) in [
            (5050, "kwd", "stripe"),
            (5055, "kwd", "adyen"),
            (5000, "isk", "stripe"),
            (1_500_050, "idr", "stripe"),
            (1_500_000, "idr", "adyen"),
        ] {
            assert!(
                parse(&body(amount, currency, gateway)).is_ok(),
                "{amount} {currency} at {gateway}"
            );
        }
    }

    #[test]
    fn metadata_keys_paybridge_sets_itself_are_refused() {
        for key in [
            "invoice_id",
            "paybridge_charge_id",
            "paybridge_refund_id",
            "paybridge_x",
        ] {
            let body = GOOD.replace(r#"{"plan":"pro"}"#, &format!(r#"{{"{key}":"v"}}"#));
            let err = parse(&body).unwrap_err();
            assert_eq!(
                (err.kind().status(), err.code()),
                (422, "invalid_metadata"),
                "{key}"
            );
            assert!(err.message().contains(key), "{}", err.message());
        }
        let similar = GOOD.replace(
            r#"{"plan":"pro"}"#,
            r#"{"invoice":"v","my_paybridge_id":"v"}"#,
        );
        assert!(
            parse(&similar).is_ok(),
            "only paybridge's own keys are refused"
        );
    }

    #[test]
    fn a_card_number_anywhere_is_refused() {
        for body in [
            GOOD.replace("pm_card_visa", "4242424242424242"),
            GOOD.replace("\"pro\"", "\"4000 0566 5566 5556\""),
            GOOD.replace(
                "\"amount\":1999",
                "\"amount\":1999,\"card\":{\"number\":5555555555554444}",
            ),
        ] {
            assert_eq!(
                parse(&body).unwrap_err().code(),
                "card_data_refused",
                "{body}"
            );
        }
    }
}
