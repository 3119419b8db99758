//! Use case: cancel an uncaptured charge — `POST /charges/{id}/cancel`.
//!
//! A captured charge cannot be canceled (409: refund it instead); a failed one has nothing to
//! cancel (409); a canceled one is answered as it is. A `pending` charge whose gateway answer is
//! still unknown cannot be canceled yet (409 with `Retry-After`).

use super::create::ChargeDeps;
use super::read::{charge_id, load_charge};
use super::{answer, settle, view};
use crate::domain::ChargeStatus;
use crate::error::{Code, Error};
use crate::ports::{BillingStore, PaymentGateway, WorkQueue};
use crate::services::ApiResponse;
use crate::services::idempotency::{self, Call};

pub async fn cancel_charge(
    deps: &ChargeDeps<'_, impl BillingStore, impl PaymentGateway, impl WorkQueue>,
    call: Call<'_>,
    id: &str,
) -> Result<ApiResponse, Error> {
    let id = charge_id(id)?;
    let request = serde_json::Value::Null;
    let claim = deps.claim("cancel_charge", call, id.as_str(), &request, id.to_string());
    idempotency::run(deps.store, claim, |_| async {
        let charge = load_charge(deps.store, &id).await?;
        match charge.status {
            ChargeStatus::Canceled => return Ok(ApiResponse::json(200, &view(&charge))),
            s if s.is_captured() => {
                return Err(Error::new(
                    Code::ChargeCaptured,
                    "the charge was captured and cannot be canceled; refund it instead",
                ));
            }
            ChargeStatus::Failed => {
                return Err(Error::new(
                    Code::ChargeFailed,
                    "the charge failed; there is nothing to cancel",
                ));
            }
            ChargeStatus::Pending if charge.gateway_ref.is_none() => {
                return Err(Error::new(
                    Code::ChargePending,
                    "the gateway's answer for this charge is not known yet; retry later",
                )
                .with_retry_after(30));
            }
            _ => {}
        }
        let outcome = deps
            .gateway
            .cancel(&charge, &charge.gateway_idempotency_key("cancel"))
            .await?;
        let charge = settle(deps.store, deps.queue, charge, &outcome, call.now_ms / 1000).await?;
        Ok(answer(&charge, charge.status == ChargeStatus::Canceled))
    })
    .await
}
