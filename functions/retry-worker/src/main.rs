//! retry-worker: consumes the SQS work queue (see DESIGN.md and docs/worker.md).

use lambda_runtime::{run, service_fn};
use retry_worker::handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = paybridge::adapters::init().await?;
    let worker = handler::worker(&init)?;
    paybridge::init_phases::phase("clients");
    paybridge::init_phases::report();
    run(service_fn(|event| handler::handle(&worker, event))).await
}
