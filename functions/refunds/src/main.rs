//! refunds: the billing-facing refund routes (see openapi.json), over HTTP and by direct
//! invocation (docs/direct-invocation.md).

use paybridge::invoke::{self, Function};
use refunds::handler::{self, Refunds};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = paybridge::adapters::init().await?;
    let app = Refunds::new(&init);
    paybridge::init_phases::phase("clients");
    paybridge::init_phases::report();
    let app = &app;
    invoke::run(Function::Refunds, move |req| handler::handle(app, req)).await
}
