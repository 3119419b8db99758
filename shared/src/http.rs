//! What the HTTP functions share: reading the idempotency key and the invocation deadline from a
//! request, and turning a use case's [`ApiResponse`] or [`Error`] into the HTTP response.

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_http::{Body, Request, RequestExt, Response};

use crate::domain::idempotency::IdempotencyKey;
use crate::error::Error;
use crate::services::ApiResponse;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The invocation's deadline (unix ms): an in-progress idempotency record left by a crash expires
/// with it. Outside Lambda (tests), 30 seconds from now.
pub fn deadline_ms(req: &Request, now: i64) -> i64 {
    req.lambda_context_ref()
        .map(|c| c.deadline as i64)
        .filter(|d| *d > now)
        .unwrap_or(now + 30_000)
}

pub fn idempotency_key(req: &Request) -> Result<IdempotencyKey, Error> {
    let raw = req.headers().get("idempotency-key").ok_or_else(|| {
        Error::bad_request(
            "idempotency_key_required",
            "POST requests need an Idempotency-Key header",
        )
    })?;
    let text = raw.to_str().map_err(|_| {
        Error::bad_request(
            "invalid_idempotency_key",
            "the Idempotency-Key must be printable ASCII",
        )
    })?;
    IdempotencyKey::parse(text)
        .map_err(|e| Error::bad_request("invalid_idempotency_key", e.to_string()))
}

pub fn to_response(r: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder()
        .status(r.status)
        .header("content-type", "application/json");
    if r.replayed {
        builder = builder.header("idempotent-replayed", "true");
    }
    builder.body(Body::from(r.body)).unwrap_or_default()
}

/// The response for an error (the one HTTP mapping lives in [`Error::to_response`]); 5xx are
/// logged with their cause chain, refusals at info level without the body.
pub fn error_response(err: &Error, path: &str) -> Response<Body> {
    if err.kind().status() >= 500 {
        tracing::error!(code = err.code(), error = %err.chain(), path, "request failed");
    } else {
        tracing::info!(code = err.code(), path, "request refused");
    }
    err.to_response().map(Body::from)
}
