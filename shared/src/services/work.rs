//! Use case: one message of the work queue, start to finish — read it, dispatch it to the use
//! case it names, and decide its fate ([`Verdict`]).
//!
//! The retry worker's handler only translates an SQS batch into [`Received`] messages and the
//! verdicts into a partial-batch response; every rule lives here, over the ports:
//!
//! - a body the worker cannot read (not JSON, or a message version it does not know) is put on
//!   the dead-letter queue at once with the reason, so it never loops;
//! - a retryable failure, or an event whose object is not known yet, comes back after a backoff
//!   ([`retry_policy::retry_delay`](crate::services::retry_policy::retry_delay)) by changing the message's visibility, counting towards the
//!   queue's maxReceiveCount;
//! - a gateway retry that is still unknown, and a notification billing did not accept, are handed
//!   on to a new, delayed message (they count their own attempts), so the received one is done;
//!   a notification's outcome — delivered, failed, exhausted — is recorded on it and alarmed by
//!   its metrics, never by the DLQ;
//! - a non-retryable failure is left to SQS: redelivered after the visibility timeout, then
//!   dead-lettered by maxReceiveCount, where the DLQ alarm sees it.

use std::time::Duration;

use crate::domain::WorkMessage;
use crate::error::{Code, Error};
use crate::ports::{
    ChargeStore, DeadLetters, EventBus, EventStore, GatewayRefLookup, NotificationStore, Notifier,
    PaymentGateway, PublicationStore, ReceivedMessages, RefundGateway, RefundStore, WorkQueue,
};
use crate::services::apply_event::{Applied, apply_event};
use crate::services::charges::retry::retry_charge;
use crate::services::deliver::{DeliveryMessage, deliver};
use crate::services::publish::{Published, publish};
use crate::services::refunds::retry::retry_refund;
use crate::services::retry_policy::retry_delay;
use crate::telemetry::{Metric, Metrics, Unit};

const FUNCTION: &str = "retry-worker";

/// Everything the worker uses, built once at init.
pub struct Worker<S, G, Q, N, B> {
    pub store: S,
    pub gateways: G,
    /// The work queue: follow-up messages, and visibility changes for backoff.
    pub queue: Q,
    /// Messages the worker cannot read go here directly (not into a crash loop).
    pub dlq: Option<Q>,
    pub notifier: N,
    /// The EventBridge bus notifications are published on, when that is a target.
    pub bus: Option<B>,
    /// The queue's maxReceiveCount: the receive count of a message's last attempt (an event's
    /// message is then recorded as orphaned). Notifications do not use it.
    pub max_receive_count: u32,
}

/// One received message.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub id: &'a str,
    pub body: &'a str,
    /// For the visibility change of a backoff (absent: SQS's visibility timeout applies).
    pub receipt_handle: Option<&'a str>,
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// When SQS took the message (unix ms), if it said.
    pub sent_at_ms: Option<i64>,
}

/// What becomes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done, or handed on to a follow-up message: SQS deletes it.
    Done,
    /// Unreadable: put on the dead-letter queue with the reason; SQS deletes it here.
    DeadLettered,
    /// Comes back after this delay (its visibility was changed), counting towards maxReceiveCount.
    RetryIn(Duration),
    /// Failed: SQS redelivers it after the visibility timeout, and dead-letters it after
    /// maxReceiveCount.
    Fail,
}

impl Verdict {
    /// Whether the batch response reports the message as failed (so SQS keeps it).
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::RetryIn(_) | Verdict::Fail)
    }
}

impl<S, G, Q, N, B> Worker<S, G, Q, N, B>
where
    S: EventStore
        + ChargeStore
        + RefundStore
        + GatewayRefLookup
        + NotificationStore
        + PublicationStore,
    G: PaymentGateway + RefundGateway,
    Q: WorkQueue + ReceivedMessages + DeadLetters,
    N: Notifier,
    B: EventBus,
{
    /// Handles every message of a batch on its own (concurrently) and reports the batch's metrics.
    /// The verdicts are in the order of `messages`.
    pub async fn handle_batch(&self, messages: &[Received<'_>], now_ms: i64) -> Vec<Verdict> {
        let verdicts =
            futures::future::join_all(messages.iter().map(|m| self.handle(m, now_ms / 1000))).await;
        let oldest_ms = messages
            .iter()
            .filter_map(|m| m.sent_at_ms)
            .map(|sent| now_ms - sent)
            .max()
            .unwrap_or(0);
        let failures = verdicts.iter().filter(|v| v.is_failure()).count();
        Metrics::new(FUNCTION)
            .value(
                Metric::OldestMessageAge,
                oldest_ms as f64 / 1000.0,
                Unit::Seconds,
            )
            .tally(Metric::BatchSize, messages.len())
            .tally(Metric::BatchFailures, failures)
            .emit();
        verdicts
    }

    /// Handles one message at `now` (unix seconds) and carries out its verdict's side: the
    /// dead-letter send, or the visibility change of a backoff.
    pub async fn handle(&self, message: &Received<'_>, now: i64) -> Verdict {
        let verdict = self.decide(message, now).await;
        if let (Verdict::RetryIn(delay), Some(receipt)) = (&verdict, message.receipt_handle)
            && let Err(e) = self.queue.redeliver_after(receipt, *delay).await
        {
            tracing::warn!(message_id = %message.id, error = %e, "could not set the backoff; SQS retries after its visibility timeout");
        }
        verdict
    }

    async fn decide(&self, message: &Received<'_>, now: i64) -> Verdict {
        let work = match serde_json::from_str::<WorkMessage>(message.body) {
            Ok(m) if WorkMessage::readable_version(m.version()) => m,
            Ok(m) => {
                let reason = format!("unknown message version {}", m.version());
                return self.dead_letter(message, &reason).await;
            }
            Err(e) => {
                return self
                    .dead_letter(message, &format!("unreadable message: {e}"))
                    .await;
            }
        };
        let key = work.dedup_key();
        let kind = key.split(':').next().unwrap_or("unknown").to_owned();
        let attempt = message.receive_count;
        match self.dispatch(work, message.id, attempt, now).await {
            Ok(verdict) => {
                if verdict != Verdict::Done {
                    Metrics::new(FUNCTION)
                        .dimension("Kind", kind)
                        .count(Metric::Retry)
                        .emit();
                }
                verdict
            }
            Err(e) => {
                tracing::error!(message_id = %message.id, work = %key, attempt, code = e.code(), error = %e.chain(), "work failed");
                Metrics::new(FUNCTION)
                    .dimension("Kind", kind)
                    .count(Metric::WorkFailed)
                    .emit();
                if e.is_retryable() {
                    let hint = e.retry_after_secs().map(Duration::from_secs);
                    Verdict::RetryIn(retry_delay(attempt, hint))
                } else {
                    Verdict::Fail
                }
            }
        }
    }

    /// Sends an unreadable message to the DLQ with the reason, so it never loops. Without a DLQ (or
    /// if the send fails) it is left to SQS's own redrive.
    async fn dead_letter(&self, message: &Received<'_>, reason: &str) -> Verdict {
        tracing::error!(message_id = %message.id, reason, "work message sent to the dead-letter queue");
        Metrics::new(FUNCTION).count(Metric::DeadLettered).emit();
        let Some(dlq) = &self.dlq else {
            return Verdict::Fail;
        };
        match dlq.dead_letter(message.body, reason).await {
            Ok(()) => Verdict::DeadLettered,
            Err(e) => {
                tracing::error!(message_id = %message.id, error = %e, "could not dead-letter; leaving it to SQS's redrive");
                Verdict::Fail
            }
        }
    }

    async fn dispatch(
        &self,
        message: WorkMessage,
        message_id: &str,
        attempt: u32,
        now: i64,
    ) -> Result<Verdict, Error> {
        let (store, gateways, queue) = (&self.store, &self.gateways, &self.queue);
        let last = attempt >= self.max_receive_count;
        let follow_up = match message {
            WorkMessage::ApplyEvent {
                gateway, event_id, ..
            } => {
                return Ok(
                    match apply_event(store, queue, gateway, &event_id, last, now).await? {
                        Applied::NotYet => Verdict::RetryIn(retry_delay(attempt, None)),
                        Applied::Applied
                        | Applied::AlreadyDone
                        | Applied::Ignored(_)
                        | Applied::Orphaned
                        | Applied::LeftOpen
                        | Applied::Flagged(_) => Verdict::Done,
                    },
                );
            }
            WorkMessage::RetryCharge {
                charge_id,
                attempt: n,
                ..
            } => (retry_charge(store, gateways, queue, &charge_id, n, now).await?)
                .follow_up(|attempt| WorkMessage::retry_charge(&charge_id, attempt)),
            WorkMessage::RetryRefund {
                refund_id,
                attempt: n,
                ..
            } => (retry_refund(store, gateways, queue, &refund_id, n, now).await?)
                .follow_up(|attempt| WorkMessage::retry_refund(&refund_id, attempt)),
            WorkMessage::DeliverNotification {
                notification_id,
                series,
                attempt,
                ..
            } => {
                // Whatever the attempt came to is recorded on the notification, and the next
                // attempt, if any, has its own message: this one is done.
                let message = DeliveryMessage {
                    notification_id: &notification_id,
                    series,
                    attempt,
                    message_id,
                };
                deliver(store, &self.notifier, queue, &message, now).await?;
                return Ok(Verdict::Done);
            }
            WorkMessage::PublishNotification {
                charge_id,
                notification_id,
                ..
            } => {
                let Some(bus) = &self.bus else {
                    // Left to SQS: redelivered, then dead-lettered (the DLQ alarm), kept for a
                    // redrive once the worker has its bus.
                    return Err(Error::new(
                        Code::NotImplemented,
                        "a publish_notification message, but this worker has no event bus (PAYBRIDGE_EVENT_BUS)",
                    ));
                };
                return Ok(
                    match publish(store, bus, &charge_id, &notification_id, now).await? {
                        Published::Busy { until } => {
                            let wait = u64::try_from(until - now).unwrap_or(0) + 1;
                            Verdict::RetryIn(Duration::from_secs(wait))
                        }
                        Published::Now { .. } | Published::Already | Published::Missing => {
                            Verdict::Done
                        }
                    },
                );
            }
        };
        // Gateway retries count their own attempts: the next one is a new, delayed message.
        if let Some((next, delay)) = follow_up {
            queue.send(&next, delay).await?;
        }
        Ok(Verdict::Done)
    }
}

#[cfg(test)]
mod tests;
