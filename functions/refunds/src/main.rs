//! refunds: the billing-facing refund routes (see openapi.json).

use lambda_http::{run, service_fn};
use refunds::handler::{self, Refunds};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = paybridge::adapters::init().await?;
    let app = Refunds::new(&init);
    run(service_fn(|req| handler::handle(&app, req))).await
}
