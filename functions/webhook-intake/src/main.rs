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
    use paybridge::init_phases::{phase, report};
    phase("main");
    paybridge::telemetry::init();
    phase("telemetry");
    let config = Config::from_env()?;
    phase("config");
    let aws = paybridge::adapters::aws_config().await;
    phase("aws_config");
    let app = Intake::new(&config, &aws);
    phase("clients");
    // Fail at init, with a clear message, if the secret cannot be read.
    app.secrets
        .secrets()
        .await
        .map_err(|e| format!("loading secret {}: {e}", config.secret_id))?;
    phase("secret");
    report();
    run(service_fn(|event: LambdaEvent<Value>| {
        bus::dispatch(&app, event)
    }))
    .await
}
