//! One SQS batch in, a partial-failure report out. No business rule lives here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use paybridge::Error;
use paybridge::adapters::SdkConfig;
use paybridge::adapters::billing::HttpNotifier;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::config::Config;
use paybridge::domain::WorkMessage;
use paybridge::domain::work::WORK_MESSAGE_VERSION;
use paybridge::secrets::Secrets;
use paybridge::services::apply_event::{Applied, apply_event};
use paybridge::services::charges::retry::{RetryOutcome as ChargeRetry, retry_charge};
use paybridge::services::deliver::{Delivery, deliver};
use paybridge::services::refunds::retry::{RetryOutcome as RefundRetry, retry_refund};
use paybridge::services::retry_policy::retry_delay;
use paybridge::telemetry::{Metrics, Unit};

const FUNCTION: &str = "retry-worker";

/// How long a gateway call or a billing delivery may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a batch needs, built once at init.
pub struct Worker {
    pub store: Table,
    pub gateways: GatewayRouter,
    /// The work queue: follow-up messages, and visibility changes for backoff.
    pub queue: SqsWorkQueue,
    /// Messages the worker cannot read go here directly (not into a crash loop).
    pub dlq: Option<SqsWorkQueue>,
    pub notifier: HttpNotifier,
    /// The queue's maxReceiveCount: the receive count of a message's last attempt.
    pub max_receive_count: u32,
}

impl Worker {
    pub fn new(config: &Config, aws: &SdkConfig, secrets: &Secrets) -> Result<Self, String> {
        Ok(Worker {
            store: Table::from_conf(aws, &config.table),
            gateways: GatewayRouter::from_secrets(config, secrets, CALL_TIMEOUT),
            queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
            dlq: config
                .dlq_url
                .as_ref()
                .map(|url| SqsWorkQueue::from_conf(aws, url)),
            notifier: HttpNotifier::from_secrets(config, secrets, CALL_TIMEOUT)?,
            max_receive_count: config.max_receive_count,
        })
    }
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done (or handed on): SQS deletes it.
    Done,
    /// Try again after this delay (visibility), counting towards maxReceiveCount.
    RetryIn(Duration),
    /// Failed: SQS retries after the queue's visibility timeout, then dead-letters it.
    Fail,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Handles one batch: every message on its own, a failure reported alone.
pub async fn handle(
    worker: &Worker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let records = event.payload.records;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let oldest_ms = records
        .iter()
        .filter_map(|r| {
            r.attributes
                .get("SentTimestamp")
                .and_then(|t| t.parse::<i64>().ok())
        })
        .map(|sent| now_ms - sent)
        .max()
        .unwrap_or(0);
    let verdicts = futures::future::join_all(records.iter().map(|r| process(worker, r))).await;
    let mut response = SqsBatchResponse::default();
    for (record, verdict) in records.iter().zip(verdicts) {
        let id = record.message_id.clone().unwrap_or_default();
        let failed = match verdict {
            Verdict::Done => false,
            Verdict::Fail => true,
            Verdict::RetryIn(delay) => {
                if let Some(receipt) = &record.receipt_handle
                    && let Err(e) = worker.queue.retry_after(receipt, delay).await
                {
                    tracing::warn!(message_id = %id, error = %e, "could not set the backoff; SQS retries after its visibility timeout");
                }
                true
            }
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    Metrics::new(FUNCTION)
        .value("OldestMessageAge", oldest_ms as f64 / 1000.0, Unit::Seconds)
        .value("BatchSize", records.len() as f64, Unit::Count)
        .value(
            "BatchFailures",
            response.batch_item_failures.len() as f64,
            Unit::Count,
        )
        .emit();
    Ok(response)
}

/// The message's receive count (1 on the first delivery).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Processes one message and decides its fate.
pub async fn process(worker: &Worker, record: &SqsMessage) -> Verdict {
    let id = record.message_id.clone().unwrap_or_default();
    let body = record.body.clone().unwrap_or_default();
    let attempt = receive_count(record);
    let message = match serde_json::from_str::<WorkMessage>(&body) {
        Ok(m) if m.version() == WORK_MESSAGE_VERSION => m,
        Ok(m) => {
            return dead_letter(
                worker,
                &id,
                &body,
                &format!("unknown message version {}", m.version()),
            )
            .await;
        }
        Err(e) => {
            return dead_letter(worker, &id, &body, &format!("unreadable message: {e}")).await;
        }
    };
    let kind = message.dedup_key();
    let result = dispatch(worker, message, attempt).await;
    match result {
        Ok(verdict) => {
            if verdict != Verdict::Done {
                Metrics::new(FUNCTION)
                    .dimension("Kind", kind_name(&kind))
                    .count("Retry")
                    .emit();
            }
            verdict
        }
        Err(e) => {
            tracing::error!(message_id = %id, work = %kind, attempt, code = e.code(), error = %e.chain(), "work failed");
            Metrics::new(FUNCTION)
                .dimension("Kind", kind_name(&kind))
                .count("WorkFailed")
                .emit();
            if e.is_retryable() {
                Verdict::RetryIn(retry_delay(
                    attempt,
                    e.retry_after_secs().map(Duration::from_secs),
                ))
            } else {
                Verdict::Fail
            }
        }
    }
}

fn kind_name(dedup_key: &str) -> String {
    dedup_key.split(':').next().unwrap_or("unknown").to_owned()
}

/// Sends an unreadable message to the DLQ with the reason, so it never loops.
async fn dead_letter(worker: &Worker, id: &str, body: &str, reason: &str) -> Verdict {
    tracing::error!(message_id = %id, reason, "work message sent to the dead-letter queue");
    Metrics::new(FUNCTION).count("DeadLettered").emit();
    match &worker.dlq {
        Some(dlq) => match dlq.send_raw(body, reason).await {
            Ok(()) => Verdict::Done,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "could not dead-letter; leaving it to SQS's redrive");
                Verdict::Fail
            }
        },
        None => Verdict::Fail,
    }
}

async fn dispatch(worker: &Worker, message: WorkMessage, attempt: u32) -> Result<Verdict, Error> {
    let now = unix_now();
    let last = attempt >= worker.max_receive_count;
    match message {
        WorkMessage::ApplyEvent {
            gateway, event_id, ..
        } => {
            match apply_event(&worker.store, &worker.queue, gateway, &event_id, last, now).await? {
                Applied::NotYet => Ok(Verdict::RetryIn(retry_delay(attempt, None))),
                Applied::Applied
                | Applied::AlreadyDone
                | Applied::Ignored(_)
                | Applied::Orphaned => Ok(Verdict::Done),
            }
        }
        WorkMessage::RetryCharge {
            charge_id,
            attempt: n,
            ..
        } => {
            match retry_charge(
                &worker.store,
                &worker.gateways,
                &worker.queue,
                &charge_id,
                n,
                now,
            )
            .await?
            {
                ChargeRetry::Done(_) | ChargeRetry::GaveUp => Ok(Verdict::Done),
                ChargeRetry::RetryLater { attempt, delay } => {
                    follow_up(
                        worker,
                        WorkMessage::retry_charge(&charge_id, attempt),
                        delay,
                    )
                    .await
                }
            }
        }
        WorkMessage::RetryRefund {
            refund_id,
            attempt: n,
            ..
        } => {
            match retry_refund(
                &worker.store,
                &worker.gateways,
                &worker.queue,
                &refund_id,
                n,
                now,
            )
            .await?
            {
                RefundRetry::Done(_) | RefundRetry::GaveUp => Ok(Verdict::Done),
                RefundRetry::RetryLater { attempt, delay } => {
                    follow_up(
                        worker,
                        WorkMessage::retry_refund(&refund_id, attempt),
                        delay,
                    )
                    .await
                }
            }
        }
        WorkMessage::DeliverNotification {
            notification_id, ..
        } => {
            match deliver(
                &worker.store,
                &worker.notifier,
                &notification_id,
                attempt,
                worker.max_receive_count,
                now,
            )
            .await?
            {
                Delivery::Delivered => Ok(Verdict::Done),
                Delivery::Retry { after } => Ok(Verdict::RetryIn(after)),
                // Billing refused it, or the last attempt failed: recorded on the notification.
                // Exhausted attempts go on to the DLQ, where the alarm sees them.
                Delivery::Failed if last => Ok(Verdict::Fail),
                Delivery::Failed => Ok(Verdict::Done),
            }
        }
    }
}

/// Retries of gateway calls count their own attempts: the next one is a new message, delayed.
async fn follow_up(
    worker: &Worker,
    message: WorkMessage,
    delay: Duration,
) -> Result<Verdict, Error> {
    use paybridge::ports::WorkQueue;
    worker.queue.send(&message, delay).await?;
    Ok(Verdict::Done)
}
