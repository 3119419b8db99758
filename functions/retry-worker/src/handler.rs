//! One SQS batch in, a partial-failure report out. The messages go to the worker's use case
//! ([`paybridge::services::work`]), whose verdicts say which of them SQS must keep; no rule
//! lives here.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use paybridge::adapters::Init;
use paybridge::adapters::billing::HttpNotifier;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::eventbridge::EventBridgeBus;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::clock;
use paybridge::secrets::Secrets;
pub use paybridge::services::work::Verdict;
use paybridge::services::work::{self, Received};

/// How long a gateway call or a billing delivery may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a batch needs, built once, on the first batch (the secret names billing).
pub type Worker =
    work::Worker<Table, GatewayRouter, SqsWorkQueue, Option<HttpNotifier>, EventBridgeBus>;

/// Builds the worker from the configuration and the secret.
pub fn worker(init: &Init, secrets: &Secrets) -> Result<Worker, String> {
    let (config, aws) = (&init.config, &init.aws);
    Ok(Worker {
        store: Table::from_conf(aws, &config.table),
        gateways: GatewayRouter::from_secrets(config, secrets, CALL_TIMEOUT),
        queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
        dlq: (config.dlq_url.as_ref()).map(|url| SqsWorkQueue::from_conf(aws, url)),
        notifier: match HttpNotifier::from_secrets(config, secrets, CALL_TIMEOUT) {
            Ok(notifier) => Some(notifier),
            // Billing's endpoint is a target: without its configuration the worker must not start.
            Err(e) if config.notify_targets.http => return Err(e),
            // Notifications go to the bus only: the secret need not name an endpoint.
            Err(e) => {
                tracing::info!(reason = %e, "billing's HTTP endpoint is not a target and not configured");
                None
            }
        },
        // Built whenever a bus is named, even if it is no longer a target: publications
        // written before the change still have messages on the queue.
        bus: (config.event_bus.as_ref()).map(|name| EventBridgeBus::from_conf(aws, name)),
        max_receive_count: config.max_receive_count,
    })
}

/// Handles one batch: every message on its own, a failure reported alone.
pub async fn handle(
    worker: &Worker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let messages: Vec<Received> = event.payload.records.iter().map(received).collect();
    let verdicts = worker.handle_batch(&messages, clock::now_ms()).await;
    let mut response = SqsBatchResponse::default();
    for (message, verdict) in messages.iter().zip(verdicts) {
        if verdict.is_failure() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.id.to_owned();
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

/// One message on its own, as [`handle`] does for each record of a batch.
pub async fn process(worker: &Worker, record: &SqsMessage) -> Verdict {
    worker.handle(&received(record), clock::now_secs()).await
}

fn received(record: &SqsMessage) -> Received<'_> {
    let attribute = |name: &str| record.attributes.get(name).map(String::as_str);
    Received {
        id: record.message_id.as_deref().unwrap_or_default(),
        body: record.body.as_deref().unwrap_or_default(),
        receipt_handle: record.receipt_handle.as_deref(),
        receive_count: (attribute("ApproximateReceiveCount").and_then(|c| c.parse().ok()))
            .unwrap_or(1),
        sent_at_ms: attribute("SentTimestamp").and_then(|t| t.parse().ok()),
    }
}
