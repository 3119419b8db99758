//! webhook-intake: `POST /webhooks/{gateway}` for Stripe, Adyen and Standard Webhooks senders.

use lambda_http::{run, service_fn};
use paybridge::config::Config;
use paybridge::ports::SecretSource;
use webhook_intake::handler::{self, Intake};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let app = Intake::new(&config, &aws);
    // Fail at init, with a clear message, if the secret cannot be read.
    app.secrets
        .secrets()
        .await
        .map_err(|e| format!("loading secret {}: {e}", config.secret_id))?;
    run(service_fn(|req| handler::handle(&app, req))).await
}
