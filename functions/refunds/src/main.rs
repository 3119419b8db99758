//! refunds: the billing-facing refund routes (see openapi.json), over HTTP and by direct
//! invocation (docs/direct-invocation.md).

use paybridge::adapters::OnFirstUse;
use paybridge::http::error_response;
use paybridge::invoke::{self, Function};
use refunds::handler::{self, Refunds};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let init = paybridge::adapters::init().await?;
    // The gateway clients are built on the first request, which fetches the secret.
    let app = OnFirstUse::new(init, Refunds::new);
    let app = &app;
    paybridge::init_phases::report();
    invoke::run(Function::Refunds, move |req| async move {
        match app.get().await {
            // Boxed: the handler's future is deep enough to pass the compiler's layout limit.
            Ok(app) => Box::pin(handler::handle(app, req)).await,
            Err(e) => Ok(error_response(&e, req.uri().path())),
        }
    })
    .await
}
