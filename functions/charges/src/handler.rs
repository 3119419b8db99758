//! HTTP in, use case, HTTP out. No business rule lives here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use paybridge::Error;
use paybridge::adapters::SdkConfig;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::adyen::AdyenGateway;
use paybridge::adapters::gateways::stripe::StripeGateway;
use paybridge::adapters::gateways::{GatewayRouter, http_client};
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::config::Config;
use paybridge::domain::idempotency::IdempotencyKey;
use paybridge::secrets::Secrets;
use paybridge::services::ApiResponse;
use paybridge::services::charges::create::ChargeDeps;
use paybridge::services::charges::{MAX_REQUEST_BYTES, cancel, capture, create, read};

/// How long a gateway call may take before its outcome counts as unknown.
pub const GATEWAY_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request needs, built once at init.
pub struct Charges {
    pub store: Table,
    pub gateways: GatewayRouter,
    pub queue: SqsWorkQueue,
    pub idempotency_ttl: Duration,
}

impl Charges {
    pub fn new(config: &Config, aws: &SdkConfig, secrets: &Secrets) -> Self {
        let http = http_client(GATEWAY_TIMEOUT);
        let gateways = GatewayRouter {
            stripe: secrets.stripe.as_ref().map(|s| {
                StripeGateway::new(http.clone(), &config.stripe_api_base, s.api_key.clone())
            }),
            adyen: secrets.adyen.as_ref().map(|a| {
                AdyenGateway::new(
                    http.clone(),
                    &config.adyen_api_base,
                    a.api_key.clone(),
                    &a.merchant_account,
                )
            }),
        };
        Charges {
            store: Table::from_conf(aws, &config.table),
            gateways,
            queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
            idempotency_ttl: config.idempotency_ttl,
        }
    }

    fn deps(&self) -> ChargeDeps<'_, Table, GatewayRouter, SqsWorkQueue> {
        ChargeDeps {
            store: &self.store,
            gateway: &self.gateways,
            queue: &self.queue,
            idempotency_ttl: self.idempotency_ttl,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The invocation's deadline (unix ms): an in-progress idempotency record left by a crash expires
/// with it. Outside Lambda (tests), 30 seconds from now.
fn deadline_ms(req: &Request, now: i64) -> i64 {
    req.lambda_context_ref()
        .map(|c| c.deadline as i64)
        .filter(|d| *d > now)
        .unwrap_or(now + 30_000)
}

fn idempotency_key(req: &Request) -> Result<IdempotencyKey, Error> {
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

/// Handles one request. Never fails: every error becomes its HTTP answer.
pub async fn handle(
    app: &Charges,
    req: Request,
) -> Result<Response<Body>, std::convert::Infallible> {
    let response = match route(app, &req).await {
        Ok(ok) => to_response(ok),
        Err(err) => {
            if err.kind().status() >= 500 {
                tracing::error!(code = err.code(), error = %err.chain(), path = req.uri().path(), "charges request failed");
            } else {
                tracing::info!(
                    code = err.code(),
                    path = req.uri().path(),
                    "charges request refused"
                );
            }
            err.to_response().map(Body::from)
        }
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

fn to_response(r: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder()
        .status(r.status)
        .header("content-type", "application/json");
    if r.replayed {
        builder = builder.header("idempotent-replayed", "true");
    }
    builder.body(Body::from(r.body)).unwrap_or_default()
}
