//! charges: the billing-facing charge routes (see openapi.json).

use charges::handler::{self, Charges};
use lambda_http::{run, service_fn};
use paybridge::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    paybridge::telemetry::init();
    let config = Config::from_env()?;
    let aws = paybridge::adapters::aws_config().await;
    let secrets = paybridge::adapters::load_secrets(&aws, &config.secret_id).await?;
    let app = Charges::new(&config, &aws, &secrets);
    run(service_fn(|req| handler::handle(&app, req))).await
}
