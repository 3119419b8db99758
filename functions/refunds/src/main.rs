//! refunds: the billing-facing refunds routes (see openapi and DESIGN.md).
//!
//! Not served by this build yet: every request is answered `501 not_implemented` with the
//! standard error body, so a caller can never mistake it for a result.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn handle(req: Request) -> Result<Response<Body>, Error> {
    tracing::warn!(path = req.uri().path(), "route not implemented yet");
    Ok(paybridge::Error::not_implemented("refunds")
        .to_response()
        .map(Body::from))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    paybridge::telemetry::init();
    run(service_fn(handle)).await
}
