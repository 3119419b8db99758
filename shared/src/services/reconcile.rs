//! Use case: reconcile — heal what webhooks leave open. Run on a schedule by
//! `functions/reconciler` and on demand by `paybridge-ops reconcile` (`make reconcile`).
//!
//! One run pages through **everything** in flight, oldest first, a page of each kind in turn
//! (charges, refunds, events) so no kind starves another, until all is read or its time budget is
//! spent (what it did not reach, the next run reaches: what it set aside is no longer in the way):
//! 1. **Charges** pending or processing for longer than `after`: asked again at the gateway and
//!    moved to their real state through the same `settle` the worker uses, so notifications
//!    follow. A charge with a gateway reference is looked up (Stripe retrieve). One without (its
//!    answer was lost and the worker's retries ran out) is asked again with its own idempotency
//!    key while the gateway still remembers keys ([`Gateway::key_window_secs`](crate::domain::Gateway::key_window_secs)),
//!    and after that **found, never re-sent**: Stripe is searched for PaymentIntents carrying the
//!    charge's id in their metadata — one found settles the charge, none is Stripe's word that
//!    nothing was created (the charge fails with `payment_not_created`, so billing may charge
//!    again), several is a double charge for a person.
//!    Charges waiting for their customer (`requires_action`) go to `charges::expire`, which
//!    ends them once `action_expiry` has passed.
//! 2. **Refunds** pending for longer than `after`: the same (after the key window, the
//!    PaymentIntent's refunds are listed and matched by the refund's id in their metadata).
//! 3. **Events** recorded but not processed after `after`: queued again.
//! 4. **Stripe events the gateway failed to deliver** (its events list, `delivery_success=false`)
//!    are fed through the normal intake path — recorded and deduplicated like any delivery.
//! 5. **Notifications**: the outbox sweep queues those never queued after a minute and restarts
//!    delivery chains whose next attempt is long overdue (a lost message); see
//!    [`sweep_outbox`](crate::services::deliver::sweep_outbox).
//!
//! What no run can resolve — Adyen charges and refunds in flight (Adyen has no status API; its
//! webhook decides), Adyen objects without a reference past its key window, several payments at
//! the gateway for one charge — is **set aside** (`needs attention`): out of the work in flight,
//! counted in the `NeedsAttention` metric (alarmed), listed by `paybridge-ops attention`. A
//! webhook for it later settles it as usual.
//!
//! Every item is claimed for the run with a conditional write, so two runs at once never work on
//! the same item, and every change is a conditional write, so none is applied twice.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::domain::{
    Charge, ChargeStatus, EventStatus, Failure, PaymentOutcome, Refund, RefundOutcome,
    RefundStatus, WorkMessage,
};
use crate::error::Error;
use crate::ports::{
    ChargeStore, EventStore, GatewayError, IdempotencyStore, NotificationStore, Page,
    PaymentGateway, PublicationStore, ReconcileItem, ReconcileStore, RefundGateway, RefundStore,
    ResumePoint, UndeliveredEvents, WorkQueue,
};
use crate::services::charges::create::{Attempt, Earlier, attempt_payment};
use crate::services::record_webhook::{self, IntakeSettings, Outcome};
use crate::telemetry::{Metric, Metrics};
use crate::webhooks::stripe as stripe_webhooks;

mod pass;
use pass::Pass;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How long work may stay in flight before the reconciler looks at it.
    pub after: Duration,
    /// How far back to ask Stripe for undelivered events (Stripe retries for 3 days).
    pub events_window: Duration,
    /// Items of one kind read per page of work in flight.
    pub page_size: i32,
    /// Items of a page worked on at once.
    pub concurrency: usize,
    /// How long a run may page through work in flight (the function's timeout less a margin).
    pub budget: Duration,
    /// Pages a run may read at most (a second bound beside `budget`; tests use it).
    pub max_pages: usize,
    /// Stripe's undelivered events and the outbox sweep: at most this many per run.
    pub limit: i32,
    /// Intake settings for recovered events.
    pub intake: IntakeSettings,
    /// How long a `requires_action` charge waits for its customer before it is canceled.
    pub action_expiry: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            after: Duration::from_secs(900),
            events_window: Duration::from_secs(3 * 86_400),
            page_size: 100,
            concurrency: 8,
            budget: Duration::from_secs(240),
            max_pages: usize::MAX,
            limit: 200,
            intake: IntakeSettings::default(),
            action_expiry: Duration::from_secs(24 * 3600),
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
    /// Charges and refunds whose state paybridge could not learn this time (tried again next run).
    pub unknown: usize,
    /// Charges and refunds set aside for a person by this run.
    pub parked: usize,
    /// Charges and refunds set aside in all (this run's and earlier ones), after the run.
    pub needs_attention: usize,
    /// Events queued again.
    pub events_requeued: usize,
    /// Stripe events recovered from its list that paybridge had never received.
    pub events_recovered: usize,
    /// Notifications queued by the outbox sweep (never queued, or a lost chain restarted), for
    /// billing's endpoint and for the bus.
    pub notifications_queued: usize,
    /// Pages of work in flight read.
    pub pages: usize,
    /// Whether the run read all work in flight (`false`: its budget ran out first).
    pub complete: bool,
}

/// What looking at one charge or refund came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looked {
    /// Another run holds it, or it settled before we looked.
    Skipped,
    /// The gateway's answer moved it.
    Fixed,
    /// Looked at; the gateway's answer left it where it was, final.
    Unchanged,
    /// Its state could not be learned this time.
    Unknown,
    /// Set aside for a person.
    Parked,
}

impl Summary {
    fn count(&mut self, looked: Looked) {
        if looked != Looked::Skipped {
            self.checked += 1;
        }
        match looked {
            Looked::Fixed => self.fixed += 1,
            Looked::Unknown => self.unknown += 1,
            Looked::Parked => self.parked += 1,
            Looked::Skipped | Looked::Unchanged => {}
        }
    }
}

/// Why something is set aside (the `reason` of `paybridge-ops attention`).
pub mod reasons {
    /// The gateway has no status API (Adyen): only its webhook, or a person, can tell.
    pub const NO_STATUS_API: &str = "no_status_api";
    /// The answer was lost, the gateway forgot the key, and it cannot be searched (Adyen).
    pub const KEY_WINDOW_PASSED: &str = "key_window_passed";
    /// The gateway holds more than one payment (or refund) for one of ours.
    pub const SEVERAL_AT_GATEWAY: &str = "several_at_gateway";
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
        + PublicationStore
        + IdempotencyStore,
    G: PaymentGateway + RefundGateway + UndeliveredEvents,
    Q: WorkQueue,
{
    let started = Instant::now();
    let mut summary = Summary::default();
    let before = now - settings.after.as_secs() as i64;
    let (page, at_once) = (settings.page_size.max(1), settings.concurrency.max(1));
    let run = Run {
        store,
        gateways,
        queue,
        now,
        claim_until: now + 600,
        action_expiry: settings.action_expiry,
    };

    // A page of each kind in turn, until every kind is read or the budget is spent; from where
    // the last run that ran out of time stopped, around to it.
    let resume = store.resume_point().await?;
    let resumed = resume != ResumePoint::default();
    let (mut charges, mut refunds, mut events) = (
        Pass::from(resume.charges),
        Pass::from(resume.refunds),
        Pass::from(resume.events),
    );
    let spent = |pages: usize| pages >= settings.max_pages || started.elapsed() >= settings.budget;
    let all_read = |c: &Pass, r: &Pass, e: &Pass| c.done() && r.done() && e.done();
    while !all_read(&charges, &refunds, &events) && !spent(summary.pages) {
        if !charges.done() && !spent(summary.pages) {
            let Page { items, next } = store.open_charges(before, charges.after(), page).await?;
            let looked = futures::stream::iter(items.into_iter().map(|c| run.charge(c)))
                .buffer_unordered(at_once)
                .collect::<Vec<_>>()
                .await;
            for looked in looked {
                summary.count(looked?);
            }
            charges.advance(next);
            summary.pages += 1;
        }
        if !refunds.done() && !spent(summary.pages) {
            let Page { items, next } = store.open_refunds(before, refunds.after(), page).await?;
            let looked = futures::stream::iter(items.into_iter().map(|r| run.refund(r)))
                .buffer_unordered(at_once)
                .collect::<Vec<_>>()
                .await;
            for looked in looked {
                summary.count(looked?);
            }
            refunds.advance(next);
            summary.pages += 1;
        }
        if !events.done() && !spent(summary.pages) {
            let Page { items, next } = store.open_events(before, events.after(), page).await?;
            let requeued = futures::stream::iter(items.into_iter().map(|e| run.event(e)))
                .buffer_unordered(at_once)
                .collect::<Vec<_>>()
                .await;
            for requeued in requeued {
                summary.events_requeued += usize::from(requeued?);
            }
            events.advance(next);
            summary.pages += 1;
        }
    }
    summary.complete = all_read(&charges, &refunds, &events);
    let stop = ResumePoint {
        charges: charges.stop(),
        refunds: refunds.stop(),
        events: events.stop(),
    };
    if !summary.complete {
        tracing::warn!(
            pages = summary.pages,
            budget_secs = settings.budget.as_secs(),
            "the reconciler's time budget ran out before it read all work in flight; the next run goes on from here"
        );
    }
    // Written when there is a stop to keep or an old one to clear.
    if stop != ResumePoint::default() || resumed {
        store.save_resume_point(&stop).await?;
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
    summary.needs_attention = store.count_parked().await?;

    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        checked = summary.checked,
        fixed = summary.fixed,
        unknown = summary.unknown,
        parked = summary.parked,
        needs_attention = summary.needs_attention,
        events_requeued = summary.events_requeued,
        events_recovered = summary.events_recovered,
        notifications_queued = summary.notifications_queued,
        pages = summary.pages,
        complete = summary.complete,
        elapsed_ms,
        "reconciliation run"
    );
    Metrics::new("reconciler")
        .tally(Metric::ReconcileChecked, summary.checked)
        .tally(Metric::ReconcileFixed, summary.fixed)
        .tally(Metric::ReconcileUnknown, summary.unknown)
        .tally(Metric::ReconcileParked, summary.parked)
        .tally(Metric::NeedsAttention, summary.needs_attention)
        .tally(Metric::ReconcileIncomplete, usize::from(!summary.complete))
        .tally(Metric::ReconcileEventsRequeued, summary.events_requeued)
        .tally(Metric::ReconcileEventsRecovered, summary.events_recovered)
        .emit();
    Ok(summary)
}

/// One run's view of the ports, shared by the items it looks at concurrently.
struct Run<'a, S, G, Q> {
    store: &'a S,
    gateways: &'a G,
    queue: &'a Q,
    now: i64,
    claim_until: i64,
    action_expiry: Duration,
}

impl<S, G, Q> Run<'_, S, G, Q>
where
    S: ChargeStore + RefundStore + EventStore + ReconcileStore + IdempotencyStore,
    G: PaymentGateway + RefundGateway,
    Q: WorkQueue,
{
    async fn charge(&self, listed: Charge) -> Result<Looked, Error> {
        let (store, now) = (self.store, self.now);
        let item = ReconcileItem::Charge(&listed.id);
        // Another run may have fixed it between our query and our claim: the claim reads it again.
        let Some(charge) = store
            .claim_charge(&listed.id, now, self.claim_until)
            .await?
        else {
            return Ok(Looked::Skipped);
        };
        if charge.status == ChargeStatus::RequiresAction {
            use crate::services::charges::expire::{Expiry, expire_requires_action};
            let (gateways, queue, expiry) = (self.gateways, self.queue, self.action_expiry);
            let expired = expire_requires_action(store, gateways, queue, charge, now, expiry);
            return Ok(match expired.await? {
                Expiry::Untouched(_) => Looked::Skipped,
                Expiry::Settled(_) => Looked::Fixed,
                Expiry::Waiting { overdue: false, .. } => Looked::Unchanged,
                Expiry::Waiting { overdue: true, .. } => Looked::Unknown,
            });
        }
        if !matches!(
            charge.status,
            ChargeStatus::Pending | ChargeStatus::Processing
        ) {
            return Ok(Looked::Skipped);
        }
        let (id, from) = (charge.id.clone(), charge.status);
        let after = if charge.gateway_ref.is_some() {
            match self.gateways.retrieve(&charge).await {
                Ok(outcome) => self.settle_charge(charge, &outcome).await?,
                Err(e) if is_not_supported(&e) => {
                    return self.park(item, reasons::NO_STATUS_API, &e).await;
                }
                Err(e) => return Ok(log_unknown("charge", id.as_str(), &e)),
            }
        } else if !charge.gateway.key_expired(charge.created_at, now) {
            // A pending charge without a gateway reference: its first call's outcome is unknown.
            let attempt = attempt_payment(
                store,
                self.gateways,
                self.queue,
                charge,
                Earlier::Unknown,
                now,
            );
            match attempt.await? {
                Attempt::Known(c) => c,
                Attempt::Unknown(..) => return Ok(Looked::Unknown),
            }
        } else {
            // The gateway forgot the key: find what it holds for this charge, never re-send.
            match self.gateways.find_payments(&charge).await {
                Ok(found) if found.is_empty() => {
                    tracing::warn!(charge_id = %id, "no payment at the gateway for a charge whose answer was lost: it was never created; failing the charge");
                    let outcome = PaymentOutcome {
                        gateway_ref: String::new(),
                        status: ChargeStatus::Failed,
                        captured: 0,
                        failure: Some(Failure {
                            code: "payment_not_created".into(),
                            message:
                                "the gateway holds no payment for this charge: nothing was taken"
                                    .into(),
                            advice: None,
                        }),
                        action: None,
                    };
                    self.settle_charge(charge, &outcome).await?
                }
                Ok(found) if found.len() == 1 => self.settle_charge(charge, &found[0]).await?,
                Ok(found) => {
                    let refs: Vec<&str> = found.iter().map(|o| o.gateway_ref.as_str()).collect();
                    tracing::error!(charge_id = %id, gateway_refs = ?refs, "the gateway holds several payments for one charge: refund the extra ones by hand");
                    return Ok(self.set_aside(item, reasons::SEVERAL_AT_GATEWAY).await?);
                }
                Err(e) if is_not_supported(&e) => {
                    return self.park(item, reasons::KEY_WINDOW_PASSED, &e).await;
                }
                Err(e) => return Ok(log_unknown("charge", id.as_str(), &e)),
            }
        };
        Ok(if after.status != from {
            Looked::Fixed
        } else if matches!(
            after.status,
            ChargeStatus::Pending | ChargeStatus::Processing
        ) {
            Looked::Unknown
        } else {
            Looked::Unchanged
        })
    }

    async fn settle_charge(
        &self,
        charge: Charge,
        outcome: &PaymentOutcome,
    ) -> Result<Charge, Error> {
        crate::services::charges::settle(self.store, self.queue, charge, outcome, self.now).await
    }

    async fn refund(&self, listed: Refund) -> Result<Looked, Error> {
        let (store, now) = (self.store, self.now);
        let item = ReconcileItem::Refund(&listed.charge_id, &listed.id);
        let claim = store.claim_refund(&listed.charge_id, &listed.id, now, self.claim_until);
        let Some(refund) = claim.await? else {
            return Ok(Looked::Skipped);
        };
        if refund.status != RefundStatus::Pending {
            return Ok(Looked::Skipped);
        }
        let Some(charge) = store.get_charge(&refund.charge_id).await? else {
            return Ok(Looked::Skipped);
        };
        let id = refund.id.clone();
        let outcome = if refund.gateway_ref.is_some() {
            match self.gateways.retrieve_refund(&charge, &refund).await {
                Ok(o) => o,
                Err(e) if is_not_supported(&e) => {
                    return self.park(item, reasons::NO_STATUS_API, &e).await;
                }
                Err(e) => return Ok(log_unknown("refund", id.as_str(), &e)),
            }
        } else if !refund.gateway.key_expired(refund.created_at, now) {
            let attempt = crate::services::refunds::create::attempt_refund(
                store,
                self.gateways,
                self.queue,
                refund,
                Earlier::Unknown,
                now,
            );
            return Ok(match attempt.await? {
                (r, None) if r.status != RefundStatus::Pending => Looked::Fixed,
                _ => Looked::Unknown,
            });
        } else {
            match self.gateways.find_refunds(&charge, &refund).await {
                Ok(found) if found.is_empty() => {
                    tracing::warn!(refund_id = %id, "no refund at the gateway for a refund whose answer was lost: it was never made; failing it, which releases its reservation");
                    RefundOutcome {
                        gateway_ref: String::new(),
                        status: RefundStatus::Failed,
                        failure: Some(Failure {
                            code: "refund_not_created".into(),
                            message: "the gateway holds no refund for this request: nothing was given back".into(), advice: None }),
                    }
                }
                Ok(mut found) if found.len() == 1 => found.remove(0),
                Ok(found) => {
                    let refs: Vec<&str> = found.iter().map(|o| o.gateway_ref.as_str()).collect();
                    tracing::error!(refund_id = %id, gateway_refs = ?refs, "the gateway holds several refunds for one of ours: check them by hand");
                    return Ok(self.set_aside(item, reasons::SEVERAL_AT_GATEWAY).await?);
                }
                Err(e) if is_not_supported(&e) => {
                    return self.park(item, reasons::KEY_WINDOW_PASSED, &e).await;
                }
                Err(e) => return Ok(log_unknown("refund", id.as_str(), &e)),
            }
        };
        let after =
            crate::services::refunds::settle(store, self.queue, refund, &outcome, now).await?;
        Ok(if after.status != RefundStatus::Pending {
            Looked::Fixed
        } else {
            Looked::Unknown
        })
    }

    /// Queues an open event again; `true` if it did.
    async fn event(&self, event: crate::domain::event::EventRecord) -> Result<bool, Error> {
        let (store, now) = (self.store, self.now);
        let item = ReconcileItem::Event(event.gateway, &event.event_id);
        if !store
            .claim_for_reconcile(item, now, self.claim_until)
            .await?
        {
            return Ok(false);
        }
        let still_open = store
            .get_event(event.gateway, &event.event_id)
            .await?
            .is_some_and(|e| matches!(e.status, EventStatus::Received | EventStatus::Queued));
        if !still_open {
            return Ok(false);
        }
        let message = WorkMessage::apply_event(event.gateway, &event.event_id);
        self.queue.send(&message, Duration::ZERO).await?;
        Ok(true)
    }

    /// Sets `item` aside because the gateway `e` has no API that could resolve it.
    async fn park(
        &self,
        item: ReconcileItem<'_>,
        reason: &str,
        e: &GatewayError,
    ) -> Result<Looked, Error> {
        tracing::warn!(item = ?item, reason, error = %e, "nothing the reconciler can ask resolves this one: set aside for a person (paybridge-ops attention)");
        Ok(self.set_aside(item, reason).await?)
    }

    async fn set_aside(
        &self,
        item: ReconcileItem<'_>,
        reason: &str,
    ) -> Result<Looked, crate::ports::StoreError> {
        Ok(if self.store.park(item, reason, self.now).await? {
            Looked::Parked
        } else {
            // Settled (or set aside) meanwhile.
            Looked::Skipped
        })
    }
}

fn is_not_supported(e: &GatewayError) -> bool {
    matches!(e, GatewayError::Refused { code, .. } if code == "not_supported")
}

fn log_unknown(kind: &str, id: &str, e: &GatewayError) -> Looked {
    tracing::warn!(kind, id, error = %e, "could not learn the gateway's state; next run tries again");
    Looked::Unknown
}
