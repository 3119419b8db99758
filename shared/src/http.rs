//! What the HTTP functions share: reading the idempotency key and the invocation deadline from a
//! request, and turning a use case's [`ApiResponse`] or [`Error`] into the HTTP response.

use lambda_http::{Body, Request, RequestExt, Response};

use crate::adapters::Init;
use crate::adapters::dynamodb::Table;
use crate::adapters::gateways::GatewayRouter;
use crate::adapters::sqs::SqsWorkQueue;
use crate::domain::idempotency::IdempotencyKey;
use crate::error::{Code, Error};
use crate::services::ApiResponse;
use crate::services::charges::MAX_REQUEST_BYTES;
use crate::services::charges::create::ChargeDeps;
use crate::services::idempotency::Call;

/// How long a gateway call may take before its outcome counts as unknown.
pub const GATEWAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the billing-facing functions (charges, refunds) need, built once at init.
pub struct BillingApp {
    pub store: Table,
    pub gateways: GatewayRouter,
    pub queue: SqsWorkQueue,
    pub idempotency_ttl: std::time::Duration,
}

impl BillingApp {
    pub fn new(init: &Init) -> Self {
        let (config, aws, secrets) = (&init.config, &init.aws, &init.secrets);
        BillingApp {
            store: Table::from_conf(aws, &config.table),
            gateways: GatewayRouter::from_secrets(config, secrets, GATEWAY_TIMEOUT),
            queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
            idempotency_ttl: config.idempotency_ttl,
        }
    }

    /// The use cases' view of the dependencies.
    pub fn deps(&self) -> ChargeDeps<'_, Table, GatewayRouter, SqsWorkQueue> {
        ChargeDeps {
            store: &self.store,
            gateway: &self.gateways,
            queue: &self.queue,
            idempotency_ttl: self.idempotency_ttl,
        }
    }
}

pub use crate::clock::now_ms;

/// A billing request as the routers read it: its path (without the trailing slash) and its body,
/// refused with 413 before anything else when over [`MAX_REQUEST_BYTES`].
pub struct Routed<'a> {
    pub path: String,
    pub body: &'a [u8],
}

impl<'a> Routed<'a> {
    pub fn read(req: &'a Request) -> Result<Self, Error> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Error::payload_too_large(MAX_REQUEST_BYTES));
        }
        let path = req.uri().path().trim_end_matches('/').to_owned();
        Ok(Routed { path, body })
    }

    /// The path's segments: `/charges/ch_1/refunds` → `["charges", "ch_1", "refunds"]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }
}

/// The idempotent call `req` makes with `key`: now, and its lease until the invocation's deadline.
pub fn call<'a>(req: &Request, key: &'a IdempotencyKey) -> Call<'a> {
    let now_ms = now_ms();
    Call {
        key,
        now_ms,
        lease_until_ms: deadline_ms(req, now_ms),
    }
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
        Error::new(
            Code::IdempotencyKeyRequired,
            "POST requests need an Idempotency-Key header",
        )
    })?;
    let text = raw.to_str().map_err(|_| {
        Error::new(
            Code::InvalidIdempotencyKey,
            "the Idempotency-Key must be printable ASCII",
        )
    })?;
    IdempotencyKey::parse(text).map_err(|e| Error::new(Code::InvalidIdempotencyKey, e.to_string()))
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
