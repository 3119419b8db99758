//! webhook-intake: `POST /webhooks/{gateway}` for Stripe, Adyen and Standard Webhooks senders,
//! and Stripe events from an Amazon EventBridge partner event bus.

use lambda_runtime::{LambdaEvent, run, service_fn};
use paybridge::config::Config;
use paybridge::ports::SecretSource;
use serde_json::Value;
use webhook_intake::bus;
use webhook_intake::handler::Intake;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let app = Intake::new(&config, &aws);
    // Fail at init, with a clear message, if the secret cannot be read.
    app.secrets
        .secrets()
        .await
        .map_err(|e| format!("loading secret {}: {e}", config.secret_id))?;
    run(service_fn(|event: LambdaEvent<Value>| {
        bus::dispatch(&app, event)
    }))
    .await
}
