//! Use case: capture an authorized charge — `POST /charges/{id}/capture` `{"amount": n}?`.
//!
//! An amount the charge's gateway cannot take in its own minor units is refused with 422
//! `amount_not_representable` before the gateway is called.
//!
//! Only an `authorized` charge can be captured (409 otherwise) — except on a retry with the key of
//! a capture whose gateway answer was lost: if the charge is captured by then (a webhook told
//! us), that capture is answered as done, 200 with the charge, and the gateway is not asked
//! again. The gateway call carries the charge's `capture` idempotency key. Stripe answers synchronously (→ `succeeded`, 200); Adyen
//! acknowledges the request and confirms with a CAPTURE webhook (→ still `authorized`, 202).

use serde::Deserialize;

use super::create::ChargeDeps;
use super::read::{charge_id, load_charge};
use super::{answer, settle};
use crate::domain::{ChargeStatus, Money};
use crate::error::{Code, Error};
use crate::ports::{BillingStore, PaymentGateway, WorkQueue};
use crate::services::ApiResponse;
use crate::services::idempotency::{self, Call};
use crate::services::request::{check_gateway_amount, parse_body};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    amount: Option<i64>,
}

pub async fn capture_charge(
    deps: &ChargeDeps<'_, impl BillingStore, impl PaymentGateway, impl WorkQueue>,
    call: Call<'_>,
    id: &str,
    body: &[u8],
) -> Result<ApiResponse, Error> {
    let id = charge_id(id)?;
    let (parsed, json): (Body, serde_json::Value) = parse_body(body, true)?;
    let claim = deps.claim("capture_charge", call, id.as_str(), &json, id.to_string());
    idempotency::run(deps.store, claim, |running| async move {
        let charge = load_charge(deps.store, &id).await?;
        if running.resumed && charge.status.is_captured() {
            // An earlier request with this key reached the gateway, which captured; its answer
            // was lost and a webhook has told us since. The capture billing asked for is done.
            return Ok(answer(&charge, true));
        }
        if charge.status != ChargeStatus::Authorized {
            return Err(Error::new(
                Code::ChargeNotCapturable,
                format!(
                    "only an authorized charge can be captured; this one is {}",
                    charge.status.as_str()
                ),
            ));
        }
        let amount = match parsed.amount {
            None => charge.amount,
            Some(n) if n > 0 && n <= charge.amount.minor() => Money::new(n, charge.currency())
                .map_err(|e| Error::new(Code::InvalidAmount, e.to_string()))?,
            Some(_) => {
                return Err(Error::new(
                    Code::InvalidAmount,
                    format!(
                        "the capture amount must be from 1 to {}",
                        charge.amount.minor()
                    ),
                ));
            }
        };
        check_gateway_amount(charge.gateway, amount)?;
        let mut outcome = deps
            .gateway
            .capture(&charge, amount, &charge.gateway_idempotency_key("capture"))
            .await?;
        // Never record more than was asked for (gateways that omit the received amount).
        outcome.captured = outcome.captured.min(amount.minor());
        let charge = settle(deps.store, deps.queue, charge, &outcome, call.now_ms / 1000).await?;
        Ok(answer(&charge, charge.status != ChargeStatus::Authorized))
    })
    .await
}
