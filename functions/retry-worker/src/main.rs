//! retry-worker: consumes the SQS work queue (see DESIGN.md).
//!
//! This build does not apply work yet. It reports every message of a batch as a failure, so SQS
//! keeps each one (and, after maxReceiveCount, moves it to the dead-letter queue): nothing is
//! deleted unprocessed.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

async fn handle(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let id = record.message_id.unwrap_or_default();
        tracing::warn!(message_id = %id, "work message left on the queue: the worker is not implemented yet");
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    paybridge::telemetry::init();
    run(service_fn(handle)).await
}
