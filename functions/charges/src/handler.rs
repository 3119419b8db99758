//! HTTP in, use case, HTTP out. No business rule lives here.

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use paybridge::Error;
use paybridge::http::{deadline_ms, error_response, idempotency_key, now_ms, to_response};
use paybridge::services::ApiResponse;
use paybridge::services::charges::{MAX_REQUEST_BYTES, cancel, capture, create, read};

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
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_REQUEST_BYTES {
        return Err(Error::payload_too_large(MAX_REQUEST_BYTES));
    }
    let now = now_ms();
    let method = req.method();
    match (method, segments.as_slice()) {
        (&Method::POST, ["charges"]) => {
            let key = idempotency_key(req)?;
            create::create_charge(&app.deps(), &key, body, now, deadline_ms(req, now)).await
        }
        (&Method::GET, ["charges"]) => {
            let params = req.query_string_parameters();
            read::list_charges(&app.store, params.first("invoice_id")).await
        }
        (&Method::GET, ["charges", id]) => read::get_charge(&app.store, id).await,
        (&Method::POST, ["charges", id, "capture"]) => {
            let key = idempotency_key(req)?;
            capture::capture_charge(&app.deps(), &key, id, body, now, deadline_ms(req, now)).await
        }
        (&Method::POST, ["charges", id, "cancel"]) => {
            let key = idempotency_key(req)?;
            cancel::cancel_charge(&app.deps(), &key, id, now, deadline_ms(req, now)).await
        }
        _ => Err(Error::not_found(
            "route_not_found",
            format!("no route {method} {path}"),
        )),
    }
}
