//! retry-worker: consumes the SQS work queue (see DESIGN.md and docs/worker.md).

use lambda_runtime::{run, service_fn};
use paybridge::config::Config;
use retry_worker::handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let secrets = paybridge::adapters::load_secrets(&aws, &config.secret_id).await?;
    let worker = handler::worker(&config, &aws, &secrets)?;
    run(service_fn(|event| handler::handle(&worker, event))).await
}
