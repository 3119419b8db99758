//! charges: the billing-facing charge routes (see openapi.json).

use charges::handler::{self, Charges};
use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = paybridge::adapters::init().await?;
    let app = Charges::new(&init);
    run(service_fn(|req| handler::handle(&app, req))).await
}
