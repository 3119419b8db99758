//! refunds: the billing-facing refund routes (see openapi.json).

use lambda_http::{run, service_fn};
use paybridge::adapters::secrets_manager::SecretsManagerSource;
use paybridge::config::Config;
use paybridge::ports::SecretSource;
use refunds::handler::{self, Refunds};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let secrets = SecretsManagerSource::from_conf(&aws, &config.secret_id)
        .secrets()
        .await
        .map_err(|e| format!("loading secret {}: {e}", config.secret_id))?;
    let app = Refunds::new(&config, &aws, &secrets);
    run(service_fn(|req| handler::handle(&app, req))).await
}
