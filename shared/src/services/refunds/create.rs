//! Use case: refund a captured charge — `POST /charges/{id}/refunds` with an `Idempotency-Key`.
//!
//! 1. Parse (`amount` omitted = everything still refundable; `currency`, if given, must be the
//!    charge's; `reason`; `metadata`; unknown fields refused; card numbers refused).
//! 2. Claim the idempotency key.
//! 3. Reserve the amount on the charge and store the refund, in one conditional transaction.
//!    Not captured → 409; disputed (a chargeback open or lost) → 422 `charge_disputed`; more than
//!    is refundable (counting refunds in flight and funds disputes withdrew) → 422; an amount
//!    the charge's gateway cannot take in its own minor units → 422 `amount_not_representable`
//!    (nothing reserved, nothing sent).
//! 4. Call the gateway with the refund's own idempotency key; settle what it says (201), or keep
//!    the refund `pending` and queue a retry when the answer is unknown (202).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{settle, view};
use crate::domain::{
    ChargeId, Failure, Money, Refund, RefundId, RefundOutcome, RefundReason, RefundStatus,
    WorkMessage,
};
use crate::error::{Code, Error};
use crate::ports::{
    ChargeStore, GatewayError, RefundGateway, RefundStore, RefundingStore, Reserved, WorkQueue,
};
use crate::services::ApiResponse;
use crate::services::charges::create::{ChargeDeps, Earlier};
use crate::services::charges::read::charge_id;
use crate::services::idempotency::{self, Call};
use crate::services::request::{check_gateway_amount, check_metadata, parse_body};
use crate::services::retry_policy::retry_delay;
use crate::telemetry::Metric;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    reason: Option<RefundReason>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// A validated refund request (amounts are checked against the charge later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reason: Option<RefundReason>,
    pub metadata: BTreeMap<String, String>,
}

impl NewRefund {
    /// Parses a refund body; an empty body means "refund everything that remains".
    pub fn parse(body: &[u8]) -> Result<(NewRefund, serde_json::Value), Error> {
        let (b, value): (Body, serde_json::Value) = parse_body(body, true)?;
        if b.amount.is_some_and(|a| a <= 0 || a > Money::MAX_MINOR) {
            return Err(Error::new(
                Code::InvalidAmount,
                "`amount` must be a positive number of minor units",
            ));
        }
        check_metadata(&b.metadata)?;
        Ok((
            NewRefund {
                amount: b.amount,
                currency: b.currency,
                reason: b.reason,
                metadata: b.metadata,
            },
            value,
        ))
    }
}

/// `POST /charges/{id}/refunds`.
pub async fn refund_charge(
    deps: &ChargeDeps<'_, impl RefundingStore, impl RefundGateway, impl WorkQueue>,
    call: Call<'_>,
    charge: &str,
    body: &[u8],
) -> Result<ApiResponse, Error> {
    let charge_id = charge_id(charge)?;
    let (request, json) = NewRefund::parse(body)?;
    let proposed = RefundId::generate().to_string();
    let claim = deps.claim("refund_charge", call, charge_id.as_str(), &json, proposed);
    idempotency::run(deps.store, claim, |running| async move {
        run(
            deps,
            &charge_id,
            request,
            (&running.resource_id, running.resumed),
            call.now_ms / 1000,
        )
        .await
    })
    .await
}

async fn run(
    deps: &ChargeDeps<'_, impl RefundingStore, impl RefundGateway, impl WorkQueue>,
    charge_id: &ChargeId,
    request: NewRefund,
    (refund_id, resumed): (&str, bool),
    now: i64,
) -> Result<ApiResponse, Error> {
    let refund_id = RefundId::parse(refund_id)
        .map_err(|e| Error::internal("bad resource id in idempotency record", Some(Box::new(e))))?;
    // An earlier request with this key may have reserved the refund already: look for it before
    // checking what is refundable, which counts that very reservation (and a dispute opened since
    // must not turn the retry of a refund in flight into a refusal).
    let earlier_refund = if resumed {
        deps.store.get_refund(&refund_id).await?
    } else {
        None
    };
    let (refund, earlier) = match earlier_refund {
        Some(refund) => (refund, Earlier::Unknown),
        None => match reserve(deps.store, charge_id, &refund_id, &request, now).await? {
            Some(refund) => (refund, Earlier::None),
            // A crashed attempt with this key reserved it, and may have reached the gateway.
            None => (
                deps.store
                    .get_refund(&refund_id)
                    .await?
                    .ok_or_else(|| Error::internal("refund vanished", None))?,
                Earlier::Unknown,
            ),
        },
    };
    if refund.status != RefundStatus::Pending || refund.gateway_ref.is_some() {
        // A crashed attempt with this key got this far already.
        return Ok(ApiResponse::json(
            if refund.status == RefundStatus::Pending {
                202
            } else {
                201
            },
            &view(&refund),
        ));
    }
    match attempt_refund(deps.store, deps.gateway, deps.queue, refund, earlier, now).await? {
        (refund, None) => Ok(ApiResponse::json(
            if refund.status == RefundStatus::Pending {
                202
            } else {
                201
            },
            &view(&refund),
        )),
        (refund, Some(hint)) => {
            deps.queue
                .send(
                    &WorkMessage::retry_refund(&refund.id, 1),
                    retry_delay(1, hint),
                )
                .await?;
            Ok(ApiResponse::json(202, &view(&refund)))
        }
    }
}

/// Reserves the amount and stores the refund. `None` when a refund with this id exists already.
async fn reserve<S: ChargeStore + RefundStore>(
    store: &S,
    charge_id: &ChargeId,
    id: &RefundId,
    request: &NewRefund,
    now: i64,
) -> Result<Option<Refund>, Error> {
    for _ in 0..10 {
        let charge = store
            .get_charge(charge_id)
            .await?
            .ok_or_else(|| Error::new(Code::ChargeNotFound, "no charge with this id"))?;
        if !charge.status.is_captured() {
            return Err(Error::new(
                Code::ChargeNotRefundable,
                format!(
                    "only a captured charge can be refunded; this one is {}",
                    charge.status.as_str()
                ),
            ));
        }
        if charge.dispute_blocks_refunds() {
            let open: Vec<String> = (charge.disputes.iter())
                .filter(|d| d.status.blocks_refunds())
                .map(|d| format!("{} ({})", d.id, d.status.as_str()))
                .collect();
            return Err(Error::new(
                Code::ChargeDisputed,
                format!(
                    "the charge is disputed: {}; a refund now could pay the customer twice (the dispute decides where the money goes)",
                    open.join(", ")
                ),
            ));
        }
        if let Some(currency) = &request.currency
            && !currency.eq_ignore_ascii_case(charge.currency().code())
        {
            return Err(Error::new(
                Code::CurrencyMismatch,
                format!("the charge is in {}, not {currency}", charge.currency()),
            ));
        }
        let refundable = charge.refundable();
        let amount = request.amount.unwrap_or(refundable);
        if amount <= 0 || amount > refundable {
            return Err(Error::new(
                Code::AmountExceedsRefundable,
                format!(
                    "{refundable} minor units of this charge can still be refunded (refunds in flight count); {amount} were asked"
                ),
            ));
        }
        let amount_money = Money::new(amount, charge.currency())
            .map_err(|e| Error::new(Code::InvalidAmount, e.to_string()))?;
        check_gateway_amount(charge.gateway, amount_money)?;
        let refund = Refund {
            reason: request.reason,
            metadata: request.metadata.clone(),
            ..Refund::pending(id.clone(), charge_id, amount_money, charge.gateway, now)
        };
        match store.reserve_refund(&refund).await? {
            Reserved::Done => {
                tracing::info!(refund_id = %id, charge_id = %charge_id, amount, "refund amount reserved");
                crate::telemetry::Metrics::new("refunds")
                    .dimension("Gateway", charge.gateway.as_str())
                    .count(Metric::RefundRequested)
                    .value(
                        Metric::RefundAmount,
                        amount as f64,
                        crate::telemetry::Unit::Count,
                    )
                    .emit();
                return Ok(Some(refund));
            }
            Reserved::Exists => return Ok(None),
            // Someone else reserved or refunded meanwhile: look again.
            Reserved::Refused => continue,
        }
    }
    Err(Error::new(
        Code::ConcurrentUpdate,
        "the charge is being refunded concurrently; retry",
    )
    .with_retry_after(1))
}

/// Calls the gateway for a pending refund and settles what it says. Returns the refund, and
/// `Some(hint)` when the outcome is unknown (the caller queues a retry).
pub async fn attempt_refund<S: ChargeStore + RefundStore>(
    store: &S,
    gateway: &impl RefundGateway,
    queue: &impl WorkQueue,
    refund: Refund,
    earlier: Earlier,
    now: i64,
) -> Result<(Refund, Option<Option<std::time::Duration>>), Error> {
    let charge = store
        .get_charge(&refund.charge_id)
        .await?
        .ok_or_else(|| Error::internal("the refund's charge does not exist", None))?;
    if earlier == Earlier::Unknown && refund.gateway.key_expired(refund.created_at, now) {
        // The gateway may have forgotten the key: a re-send could be a second refund.
        tracing::error!(refund_id = %refund.id, gateway = %refund.gateway, created_at = refund.created_at, "the gateway's idempotency key window has passed: not re-sending; the refund stays pending for a lookup");
        crate::telemetry::Metrics::new("refunds")
            .dimension("Gateway", refund.gateway.as_str())
            .count(Metric::KeyWindowPassed)
            .emit();
        return Ok((refund, Some(None)));
    }
    let outcome = match gateway.refund(&charge, &refund).await {
        Ok(outcome) => outcome,
        Err(GatewayError::Unknown {
            message,
            retry_after,
            ..
        }) => {
            tracing::warn!(refund_id = %refund.id, reason = %message, "gateway outcome unknown; refund stays pending");
            return Ok((refund, Some(retry_after)));
        }
        Err(GatewayError::Refused {
            status,
            code,
            message,
        }) if earlier == Earlier::Unknown => {
            // A refusal of this request says nothing about the first, whose outcome is unknown:
            // the refund stays pending with its amount reserved, and is retried and reconciled.
            tracing::error!(refund_id = %refund.id, status, code = %code, reason = %message, "gateway refused a retry of a refund whose first outcome is unknown; it stays pending");
            return Ok((refund, Some(None)));
        }
        Err(GatewayError::Refused {
            status,
            code,
            message,
        }) => {
            tracing::error!(refund_id = %refund.id, status, code = %code, "gateway refused the refund");
            RefundOutcome {
                gateway_ref: String::new(),
                status: RefundStatus::Failed,
                failure: Some(Failure {
                    code,
                    message,
                    advice: None,
                }),
            }
        }
    };
    let refund = settle(store, queue, refund, &outcome, now).await?;
    let metric = match refund.status {
        RefundStatus::Succeeded => Some(Metric::RefundSucceeded),
        RefundStatus::Failed | RefundStatus::Canceled => Some(Metric::RefundFailed),
        RefundStatus::Pending => None,
    };
    if let Some(name) = metric {
        crate::telemetry::Metrics::new("refunds")
            .dimension("Gateway", refund.gateway.as_str())
            .count(name)
            .emit();
    }
    Ok((refund, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Charge, ChargeStatus, Gateway};
    use crate::services::fakes::MemStore;

    /// A KWD charge of 5.000 KWD captured through `gateway`, stored.
    async fn captured_kwd(store: &MemStore, gateway: Gateway) -> Charge {
        let mut charge = Charge::pending(
            ChargeId::generate(),
            "inv_1",
            Money::parse(5000, "kwd").unwrap(),
            gateway,
            "pm_card_visa",
            0,
        );
        charge.status = ChargeStatus::Succeeded;
        charge.captured = 5000;
        store.put_charge(&charge).await;
        charge
    }

    fn asking(amount: i64) -> NewRefund {
        NewRefund::parse(format!(r#"{{"amount":{amount}}}"#).as_bytes())
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn a_refund_the_gateway_cannot_take_reserves_and_stores_nothing() {
        let store = MemStore::default();
        let charge = captured_kwd(&store, Gateway::Stripe).await;
        let id = RefundId::generate();
        let err = reserve(&store, &charge.id, &id, &asking(1255), 0)
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind().status(), err.code()),
            (422, "amount_not_representable")
        );
        assert_eq!(store.get_refund(&id).await.unwrap(), None);
        let after = store.get_charge(&charge.id).await.unwrap().unwrap();
        assert_eq!((after.refund_reserved, after.version), (0, charge.version));

        let refund = reserve(&store, &charge.id, &id, &asking(1250), 0)
            .await
            .unwrap()
            .expect("a new refund");
        assert_eq!(refund.amount.minor(), 1250);
    }

    #[tokio::test]
    async fn the_check_follows_the_charges_gateway() {
        let store = MemStore::default();
        let charge = captured_kwd(&store, Gateway::Adyen).await;
        let refund = reserve(&store, &charge.id, &RefundId::generate(), &asking(1255), 0)
            .await
            .unwrap();
        assert_eq!(
            refund.map(|r| r.amount.minor()),
            Some(1255),
            "Adyen takes fils"
        );
    }

    /// Found by the simulator (issue 17): a refund of everything that answered 503 after reserving
    /// (gateway timed out, then the queue was down) was refused on billing's retry with the same key
    /// (`amount_exceeds_refundable`: its own reservation counted), while the refund stayed in flight.
    #[tokio::test]
    async fn a_retry_with_the_same_key_resumes_the_refund_it_reserved() {
        use crate::services::fakes::{MemQueue, ScriptedGateway};
        let (store, gateway, queue) = (
            MemStore::default(),
            ScriptedGateway::timing_out(),
            MemQueue::default(),
        );
        let charge = captured_kwd(&store, Gateway::Stripe).await;
        let deps = ChargeDeps {
            store: &store,
            gateway: &gateway,
            queue: &queue,
            idempotency_ttl: std::time::Duration::from_secs(86_400),
        };
        let key = crate::domain::idempotency::IdempotencyKey::parse("refund-all-1").unwrap();
        let call = |now_ms| Call {
            key: &key,
            now_ms,
            lease_until_ms: now_ms + 30_000,
        };
        *queue.down.lock().unwrap() = true;
        let first = refund_charge(&deps, call(1_000), charge.id.as_str(), b"").await;
        assert_eq!(first.unwrap_err().kind().status(), 503);
        *queue.down.lock().unwrap() = false;

        let retry = refund_charge(&deps, call(2_000), charge.id.as_str(), b"")
            .await
            .unwrap();
        assert_eq!(retry.status, 202, "{}", retry.body);
        let refunds = store.refunds.lock().unwrap().clone();
        assert_eq!(refunds.len(), 1, "one refund for one key");
        let id = refunds.keys().next().unwrap().clone();
        assert!(retry.body.contains(id.as_str()), "{}", retry.body);
        let calls = gateway.calls.lock().unwrap().clone();
        assert_eq!(calls, vec![format!("refund {id}"), format!("refund {id}")]);
    }

    #[test]
    fn only_json_objects_are_refund_requests() {
        assert_eq!(
            NewRefund::parse(b"[500]").unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(
            NewRefund::parse(b"[]").unwrap_err().code(),
            "invalid_request"
        );
        assert_eq!(NewRefund::parse(b"").unwrap().0.amount, None);
        assert_eq!(
            NewRefund::parse(br#"{"amount":500}"#).unwrap().0.amount,
            Some(500)
        );
    }
}
