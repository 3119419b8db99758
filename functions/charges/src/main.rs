//! charges: the billing-facing charge routes (see openapi.json), over HTTP and by direct
//! invocation (docs/direct-invocation.md).

use charges::handler::{self, Charges};
use paybridge::invoke::{self, Function};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = paybridge::adapters::init().await?;
    let app = Charges::new(&init);
    paybridge::init_phases::phase("clients");
    paybridge::init_phases::report();
    let app = &app;
    invoke::run(Function::Charges, move |req| handler::handle(app, req)).await
}
