//! refunds: the billing-facing refund routes (see openapi.json).

use lambda_http::{run, service_fn};
use paybridge::config::Config;
use refunds::handler::{self, Refunds};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let secrets = paybridge::adapters::load_secrets(&aws, &config.secret_id).await?;
    let app = Refunds::new(&config, &aws, &secrets);
    run(service_fn(|req| handler::handle(&app, req))).await
}
