//! HTTP in, use case, HTTP out. No business rule lives here.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use paybridge::Error;
use paybridge::error::Code;
use paybridge::http::{Routed, call, error_response, idempotency_key, to_response};
use paybridge::services::ApiResponse;
use paybridge::services::refunds::{create, read};

/// Everything a request needs, built once at init (shared with the other billing function).
pub type Refunds = paybridge::http::BillingApp;

/// Handles one request. Never fails: every error becomes its HTTP answer.
pub async fn handle(
    app: &Refunds,
    req: Request,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(match route(app, &req).await {
        Ok(ok) => to_response(ok),
        Err(err) => error_response(&err, req.uri().path()),
    })
}

async fn route(app: &Refunds, req: &Request) -> Result<ApiResponse, Error> {
    let routed = Routed::read(req)?;
    let (path, body) = (&routed.path, routed.body);
    let method = req.method();
    match (method, routed.segments().as_slice()) {
        (&Method::POST, ["charges", id, "refunds"]) => {
            let key = idempotency_key(req)?;
            create::refund_charge(&app.deps(), call(req, &key), id, body).await
        }
        (&Method::GET, ["charges", id, "refunds"]) => read::list_refunds(&app.store, id).await,
        (&Method::GET, ["refunds", id]) => read::get_refund(&app.store, id).await,
        _ => Err(Error::new(
            Code::RouteNotFound,
            format!("no route {method} {path}"),
        )),
    }
}
