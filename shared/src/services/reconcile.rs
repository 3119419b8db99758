//! Use case: reconcile — heal what webhooks leave open. Run on a schedule by
//! `functions/reconciler` and on demand by `paybridge-ops reconcile` (`make reconcile`).
//!
//! One run:
//! 1. **Charges** pending or processing for longer than `after`: asked again at the gateway and
//!    moved to their real state through the same `settle` the worker uses, so notifications
//!    follow. A charge with a gateway reference is looked up (Stripe retrieve); one without (its
//!    answer was lost and the worker's retries ran out) is asked again with its own idempotency
//!    key while the gateway still remembers keys (under 23 h), and flagged after that. Adyen has
//!    no status API: its charges are flagged for a look in the Customer Area.
//! 2. **Refunds** pending for longer than `after`: the same.
//! 3. **Events** recorded but not processed after `after`: queued again.
//! 4. **Stripe events the gateway failed to deliver** (its events list, `delivery_success=false`)
//!    are fed through the normal intake path — recorded and deduplicated like any delivery.
//! 5. **Notifications** never queued after a minute: queued (the outbox sweep).
//!
//! Every item is claimed for the run with a conditional write, so two runs at once never work on
//! the same item, and every change is a conditional write, so none is applied twice.

use std::time::Duration;

use serde::Serialize;

use crate::domain::{ChargeStatus, EventStatus, RefundStatus, WorkMessage};
use crate::error::Error;
use crate::ports::{
    ChargeStore, EventStore, GatewayError, IdempotencyStore, NotificationStore, PaymentGateway,
    ReconcileItem, ReconcileStore, RefundGateway, RefundStore, UndeliveredEvents, WorkQueue,
};
use crate::services::charges::create::{Attempt, Earlier, attempt_payment};
use crate::services::record_webhook::{self, IntakeSettings, Outcome};
use crate::telemetry::{Metric, Metrics};
use crate::webhooks::stripe as stripe_webhooks;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How long work may stay in flight before the reconciler looks at it.
    pub after: Duration,
    /// How far back to ask Stripe for undelivered events (Stripe retries for 3 days).
    pub events_window: Duration,
    /// Items of each kind per run.
    pub limit: i32,
    /// Intake settings for recovered events.
    pub intake: IntakeSettings,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            after: Duration::from_secs(900),
            events_window: Duration::from_secs(3 * 86_400),
            limit: 200,
            intake: IntakeSettings::default(),
        }
    }
}

/// What a run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Charges and refunds looked at.
    pub checked: usize,
    /// Charges and refunds whose state the gateway's answer changed.
    pub fixed: usize,
    /// Charges and refunds whose state paybridge could not learn (flagged for a person).
    pub unknown: usize,
    /// Events queued again.
    pub events_requeued: usize,
    /// Stripe events recovered from its list that paybridge had never received.
    pub events_recovered: usize,
    /// Notifications queued by the outbox sweep.
    pub notifications_queued: usize,
}

/// Runs one reconciliation at `now` (unix seconds).
pub async fn reconcile<S, G, Q>(
    store: &S,
    gateways: &G,
    queue: &Q,
    settings: &ReconcileSettings,
    now: i64,
) -> Result<Summary, Error>
where
    S: ChargeStore
        + RefundStore
        + EventStore
        + ReconcileStore
        + NotificationStore
        + IdempotencyStore,
    G: PaymentGateway + RefundGateway + UndeliveredEvents,
    Q: WorkQueue,
{
    let mut summary = Summary::default();
    let before = now - settings.after.as_secs() as i64;
    let claim_until = now + 600;

    for listed in store.open_charges(before, settings.limit).await? {
        if !store
            .claim_for_reconcile(ReconcileItem::Charge(&listed.id), now, claim_until)
            .await?
        {
            continue;
        }
        // Another run may have fixed it between our query and our claim: read it again.
        let Some(charge) = store.get_charge(&listed.id).await? else {
            continue;
        };
        if !matches!(
            charge.status,
            ChargeStatus::Pending | ChargeStatus::Processing
        ) {
            continue;
        }
        summary.checked += 1;
        let id = charge.id.clone();
        let from = charge.status;
        let result = if charge.gateway_ref.is_some() {
            match gateways.retrieve(&charge).await {
                Ok(outcome) => {
                    crate::services::charges::settle(store, queue, charge, &outcome, now)
                        .await
                        .map(Some)
                }
                Err(e) => Ok(log_unknown("charge", id.as_str(), &e)),
            }
        } else if !charge.gateway.key_expired(charge.created_at, now) {
            // A pending charge without a gateway reference: its first call's outcome is unknown.
            match attempt_payment(store, gateways, queue, charge, Earlier::Unknown, now).await? {
                Attempt::Known(c) => Ok(Some(c)),
                Attempt::Unknown(..) => Ok(None),
            }
        } else {
            tracing::error!(charge_id = %id, "charge without a gateway reference is older than the gateway's key memory: check it by hand");
            Ok(None)
        };
        match result? {
            Some(c) if c.status != from => summary.fixed += 1,
            Some(c)
                if c.status != ChargeStatus::Pending && c.status != ChargeStatus::Processing => {}
            _ => summary.unknown += 1,
        }
    }

    for listed in store.open_refunds(before, settings.limit).await? {
        if !store
            .claim_for_reconcile(
                ReconcileItem::Refund(&listed.charge_id, &listed.id),
                now,
                claim_until,
            )
            .await?
        {
            continue;
        }
        let Some(refund) = store.get_refund(&listed.id).await? else {
            continue;
        };
        if refund.status != RefundStatus::Pending {
            continue;
        }
        summary.checked += 1;
        let Some(charge) = store.get_charge(&refund.charge_id).await? else {
            continue;
        };
        let id = refund.id.clone();
        let outcome = if refund.gateway_ref.is_some() {
            match gateways.retrieve_refund(&charge, &refund).await {
                Ok(o) => Some(o),
                Err(e) => log_unknown("refund", id.as_str(), &e),
            }
        } else if !refund.gateway.key_expired(refund.created_at, now) {
            match crate::services::refunds::create::attempt_refund(
                store,
                gateways,
                queue,
                refund.clone(),
                Earlier::Unknown,
                now,
            )
            .await?
            {
                (r, None) if r.status != RefundStatus::Pending => {
                    summary.fixed += 1;
                    continue;
                }
                _ => None,
            }
        } else {
            None
        };
        match outcome {
            Some(o) => {
                let after = crate::services::refunds::settle(store, queue, refund, &o, now).await?;
                if after.status != RefundStatus::Pending {
                    summary.fixed += 1;
                } else {
                    summary.unknown += 1;
                }
            }
            None => summary.unknown += 1,
        }
    }

    for event in store.open_events(before, settings.limit).await? {
        if !store
            .claim_for_reconcile(
                ReconcileItem::Event(event.gateway, &event.event_id),
                now,
                claim_until,
            )
            .await?
        {
            continue;
        }
        let still_open = store
            .get_event(event.gateway, &event.event_id)
            .await?
            .is_some_and(|e| matches!(e.status, EventStatus::Received | EventStatus::Queued));
        if !still_open {
            continue;
        }
        queue
            .send(
                &WorkMessage::apply_event(event.gateway, &event.event_id),
                Duration::ZERO,
            )
            .await?;
        summary.events_requeued += 1;
    }

    // Stripe's list of events it failed to deliver (the only gateway that keeps one).
    let since = now - settings.events_window.as_secs() as i64;
    match gateways
        .undelivered_events(since, settings.limit as usize)
        .await
    {
        Ok(raw_events) => {
            for raw in raw_events {
                let Ok(event) = stripe_webhooks::parse(&raw) else {
                    continue;
                };
                let recorded =
                    record_webhook::record(store, queue, &settings.intake, vec![event], now)
                        .await?;
                summary.events_recovered += recorded
                    .events
                    .iter()
                    .filter(|(_, _, o)| matches!(o, Outcome::Queued | Outcome::Requeued))
                    .count();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not list Stripe's undelivered events; next run tries again")
        }
    }

    summary.notifications_queued = crate::services::deliver::sweep_outbox(
        store,
        queue,
        Duration::from_secs(60),
        now,
        settings.limit,
    )
    .await?;

    tracing::info!(
        checked = summary.checked,
        fixed = summary.fixed,
        unknown = summary.unknown,
        events_requeued = summary.events_requeued,
        events_recovered = summary.events_recovered,
        notifications_queued = summary.notifications_queued,
        "reconciliation run"
    );
    Metrics::new("reconciler")
        .tally(Metric::ReconcileChecked, summary.checked)
        .tally(Metric::ReconcileFixed, summary.fixed)
        .tally(Metric::ReconcileUnknown, summary.unknown)
        .tally(Metric::ReconcileEventsRequeued, summary.events_requeued)
        .tally(Metric::ReconcileEventsRecovered, summary.events_recovered)
        .emit();
    Ok(summary)
}

fn log_unknown<T>(kind: &str, id: &str, e: &GatewayError) -> Option<T> {
    match e {
        GatewayError::Refused { code, .. } if code == "not_supported" => {
            tracing::warn!(
                kind,
                id,
                "the gateway has no status API: check this one in its dashboard"
            );
        }
        _ => {
            tracing::warn!(kind, id, error = %e, "could not learn the gateway's state; next run tries again")
        }
    }
    None
}
