//! Use case: end a charge whose customer never acted — a `requires_action` charge past the
//! action expiry (`PAYBRIDGE_ACTION_EXPIRY_HOURS`, counted from when paybridge learned the
//! customer must act). Called by the reconciler for every `requires_action` charge it finds.
//!
//! Gateways do not end these by themselves (a Stripe PaymentIntent waits for its customer
//! indefinitely), and billing would otherwise wait forever — or charge the invoice again while
//! the customer can still complete the first payment, and pay twice. So at the expiry:
//!
//! 1. **The gateway's truth first.** The PaymentIntent is looked up (Stripe): a customer who
//!    authenticated late has paid (or been authorized), and that is what the charge becomes —
//!    never canceled over a success. Adyen has no status API; its webhooks report.
//! 2. **Cancel at the gateway**, with the charge's own `cancel` key (the key billing's
//!    `POST /charges/{id}/cancel` uses, so the charge is canceled once whoever asks):
//!    - Stripe answers `canceled` → the charge is `canceled`, billing hears `charge.canceled`.
//!      Stripe refusing the cancel (the PaymentIntent succeeded meanwhile) → looked up again,
//!      and the gateway's answer is the charge's state.
//!    - Adyen answers `received` → the charge waits for the CANCELLATION webhook (which makes
//!      it `canceled`; an AUTHORISATION before it, authorized or captured, wins).
//!    - An unknown answer (timeout, 5xx) → left as it is; the next run asks again.
//! 3. **Nothing to cancel.** An Adyen charge without a pspReference (a 3DS2 `IdentifyShopper`
//!    answer has none) has no payment at Adyen to cancel, and one whose cancel Adyen never
//!    confirmed within [`CANCEL_GRACE`] may have had none: it becomes `failed` with code
//!    [`EXPIRED_CODE`]. Nothing was taken; and `failed` — unlike `canceled` — still yields to a
//!    success the gateway reports later (`failed → succeeded`, the gateway being the source of
//!    truth), so a shopper who somehow completes after all is still recorded and billed.
//!
//! A charge still waiting [`CANCEL_GRACE`] after its expiry (the gateway unreachable, a Stripe
//! cancel never answered) is [`Expiry::Waiting`] `overdue`: the reconciler counts it as unknown,
//! which alarms.

use std::time::Duration;

use super::settle;
use crate::domain::{Charge, ChargeStatus, Failure, Gateway, PaymentOutcome};
use crate::error::Error;
use crate::ports::{ChargeStore, GatewayError, PaymentGateway, WorkQueue};
use crate::telemetry::{Metric, Metrics};

/// How long after the expiry a charge may still wait for the gateway (a cancel to be confirmed,
/// the gateway to answer at all) before a person should look.
pub const CANCEL_GRACE: Duration = Duration::from_secs(3600);

/// The failure code of a charge whose customer never acted and that the gateway had nothing to
/// cancel for.
pub const EXPIRED_CODE: &str = "action_expired";

/// Where a `requires_action` charge stands against its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The customer still has time.
    NotYet,
    /// Past the expiry: cancel it.
    Expired,
    /// Past the expiry by more than [`CANCEL_GRACE`]: it should have ended by now.
    Overdue,
}

/// When the customer of `charge` was asked to act: the charge's `customer_action`, or (a charge
/// whose gateway described no action) when it was created.
pub fn asked_at(charge: &Charge) -> i64 {
    charge
        .customer_action
        .as_ref()
        .map_or(charge.created_at, |a| a.required_at)
}

/// Whether `charge`, waiting for its customer, is past `expiry` at `now` (unix seconds). The
/// expiry is reached at `asked_at + expiry` exactly.
pub fn due(charge: &Charge, now: i64, expiry: Duration) -> Due {
    let expires_at = asked_at(charge).saturating_add(secs(expiry));
    if now < expires_at {
        Due::NotYet
    } else if now < expires_at.saturating_add(secs(CANCEL_GRACE)) {
        Due::Expired
    } else {
        Due::Overdue
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What [`expire_requires_action`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Not `requires_action`, or not expired yet: nothing was asked of the gateway.
    Untouched(Charge),
    /// The charge moved on: canceled, `failed` with [`EXPIRED_CODE`], or — the customer acted
    /// after all — what the gateway says (succeeded, authorized, failed). Billing was notified.
    Settled(Charge),
    /// Still `requires_action`: a cancel waits for the gateway's confirmation, or the gateway's
    /// answer was unknown. `overdue` once that has lasted [`CANCEL_GRACE`] past the expiry.
    Waiting { charge: Charge, overdue: bool },
}

/// Ends `charge` if it has waited for its customer longer than `expiry` at `now` (the module
/// doc says how). Safe to call again and from two runs at once: every change is a conditional
/// write through [`settle`], and the gateway calls are idempotent.
pub async fn expire_requires_action(
    store: &impl ChargeStore,
    gateways: &impl PaymentGateway,
    queue: &impl WorkQueue,
    charge: Charge,
    now: i64,
    expiry: Duration,
) -> Result<Expiry, Error> {
    if charge.status != ChargeStatus::RequiresAction {
        return Ok(Expiry::Untouched(charge));
    }
    let overdue = match due(&charge, now, expiry) {
        Due::NotYet => return Ok(Expiry::Untouched(charge)),
        Due::Expired => false,
        Due::Overdue => true,
    };
    let id = charge.id.clone();

    // 1. The gateway's truth first: a late authentication has paid.
    let charge = match gateways.retrieve(&charge).await {
        Ok(outcome) if outcome.status != ChargeStatus::RequiresAction => {
            return settled(store, queue, charge, &outcome, now, Ended::ByTheCustomer).await;
        }
        Ok(_) => charge,
        Err(GatewayError::Refused { code, .. }) if code == "not_supported" => charge,
        Err(GatewayError::Refused { code, .. }) if code == "no_gateway_reference" => charge,
        Err(e) => {
            tracing::warn!(charge_id = %id, error = %e, "could not look up a charge whose customer action expired; next run tries again");
            return Ok(Expiry::Waiting { charge, overdue });
        }
    };

    // 3. Nothing at the gateway to cancel.
    if charge.gateway_ref.as_deref().is_none_or(str::is_empty) {
        return fail_expired(store, queue, charge, expiry, now).await;
    }

    // 2. Cancel, with the one cancel key of the charge.
    let key = charge.gateway_idempotency_key("cancel");
    match gateways.cancel(&charge, &key).await {
        Ok(outcome) if outcome.status != ChargeStatus::RequiresAction => {
            settled(store, queue, charge, &outcome, now, Ended::ByExpiry).await
        }
        // Adyen `received`: the CANCELLATION webhook confirms it.
        Ok(_) if overdue && charge.gateway == Gateway::Adyen => {
            tracing::warn!(charge_id = %id, "Adyen never confirmed the cancel of an expired charge: failing it (a later AUTHORISATION still wins)");
            fail_expired(store, queue, charge, expiry, now).await
        }
        Ok(_) => {
            tracing::info!(charge_id = %id, "cancel of an expired charge requested; the gateway's webhook confirms it");
            Ok(Expiry::Waiting { charge, overdue })
        }
        // Refused: most likely the payment moved on meanwhile (Stripe's
        // `payment_intent_unexpected_state`): the gateway's state says what happened.
        Err(GatewayError::Refused { status, code, .. }) => match gateways.retrieve(&charge).await {
            Ok(outcome) if outcome.status != ChargeStatus::RequiresAction => {
                settled(store, queue, charge, &outcome, now, Ended::ByTheCustomer).await
            }
            _ => {
                tracing::error!(charge_id = %id, status, code = %code, "the gateway refused to cancel an expired charge that still waits for its customer: a person must look");
                Ok(Expiry::Waiting {
                    charge,
                    overdue: true,
                })
            }
        },
        Err(e) => {
            tracing::warn!(charge_id = %id, error = %e, "the cancel of an expired charge got no answer; next run asks again with the same key");
            Ok(Expiry::Waiting { charge, overdue })
        }
    }
}

/// Who ended a charge whose action expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The gateway reports what the customer did meanwhile (paid, failed authentication).
    ByTheCustomer,
    /// paybridge's cancel, or its `failed` where there was nothing to cancel.
    ByExpiry,
}

/// Applies the gateway's `outcome` (its notification follows) and counts an expiry that ended
/// the charge.
async fn settled(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    charge: Charge,
    outcome: &PaymentOutcome,
    now: i64,
    ended: Ended,
) -> Result<Expiry, Error> {
    let charge = settle(store, queue, charge, outcome, now).await?;
    if charge.status == ChargeStatus::RequiresAction {
        // The outcome was older news than the charge (a concurrent write got there first).
        return Ok(Expiry::Waiting {
            charge,
            overdue: false,
        });
    }
    tracing::info!(charge_id = %charge.id, status = charge.status.as_str(), ended = ?ended, "charge whose customer action expired settled");
    if ended == Ended::ByExpiry {
        Metrics::new("reconciler")
            .dimension("Gateway", charge.gateway.as_str())
            .count(Metric::ChargeActionExpired)
            .emit();
    }
    Ok(Expiry::Settled(charge))
}

/// Ends an expired charge the gateway has nothing to cancel for as `failed` ([`EXPIRED_CODE`]).
async fn fail_expired(
    store: &impl ChargeStore,
    queue: &impl WorkQueue,
    charge: Charge,
    expiry: Duration,
    now: i64,
) -> Result<Expiry, Error> {
    let outcome = PaymentOutcome {
        gateway_ref: charge.gateway_ref.clone().unwrap_or_default(),
        status: ChargeStatus::Failed,
        captured: 0,
        failure: Some(Failure {
            code: EXPIRED_CODE.to_owned(),
            message: format!(
                "the customer did not complete the gateway's authentication within {} hours; nothing was taken",
                expiry.as_secs() / 3600
            ),
            advice: None,
        }),
        action: None,
    };
    settled(store, queue, charge, &outcome, now, Ended::ByExpiry).await
}

#[cfg(test)]
mod tests;
