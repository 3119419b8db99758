//! HTTP in, use case, HTTP out. No business rule lives here.

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use paybridge::Error;
use paybridge::error::Code;
use paybridge::http::{Routed, call, error_response, idempotency_key, to_response};
use paybridge::services::ApiResponse;
use paybridge::services::charges::{cancel, capture, create, read};
use paybridge::services::disputes;

/// Everything a request needs, built once at init (shared with the other billing function).
pub type Charges = paybridge::http::BillingApp;

/// Handles one request. Never fails: every error becomes its HTTP answer.
pub async fn handle(
    app: &Charges,
    req: Request,
) -> Result<Response<Body>, std::convert::Infallible> {
    let response = match route(app, &req).await {
        Ok(ok) => to_response(ok),
        Err(err) => error_response(&err, req.uri().path()),
    };
    Ok(response)
}

async fn route(app: &Charges, req: &Request) -> Result<ApiResponse, Error> {
    let routed = Routed::read(req)?;
    let (path, body) = (&routed.path, routed.body);
    let method = req.method();
    match (method, routed.segments().as_slice()) {
        (&Method::POST, ["charges"]) => {
            let key = idempotency_key(req)?;
            create::create_charge(&app.deps(), call(req, &key), body).await
        }
        (&Method::GET, ["charges"]) => {
            let params = req.query_string_parameters();
            read::list_charges(&app.store, params.first("invoice_id")).await
        }
        (&Method::GET, ["charges", id]) => read::get_charge(&app.store, id).await,
        (&Method::POST, ["charges", id, "capture"]) => {
            let key = idempotency_key(req)?;
            capture::capture_charge(&app.deps(), call(req, &key), id, body).await
        }
        (&Method::POST, ["charges", id, "cancel"]) => {
            let key = idempotency_key(req)?;
            cancel::cancel_charge(&app.deps(), call(req, &key), id).await
        }
        (&Method::GET, ["charges", id, "disputes"]) => {
            disputes::list_disputes(&app.store, id).await
        }
        (&Method::GET, ["disputes", id]) => disputes::get_dispute(&app.store, id).await,
        _ => Err(Error::new(
            Code::RouteNotFound,
            format!("no route {method} {path}"),
        )),
    }
}
