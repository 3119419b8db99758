//! What the HTTP functions share: reading the idempotency key and the invocation deadline from a
//! request, and turning a use case's [`ApiResponse`] or [`Error`] into the HTTP response.

use lambda_http::{Body, Request, RequestExt, Response};

use crate::adapters::Init;
use crate::adapters::dynamodb::Table;
use crate::adapters::gateways::GatewayRouter;
use crate::adapters::sqs::SqsWorkQueue;
use crate::domain::idempotency::IdempotencyKey;
use crate::error::{Code, Error};
use crate::secrets::Secrets;
use crate::services::ApiResponse;
use crate::services::charges::MAX_REQUEST_BYTES;
use crate::services::charges::create::ChargeDeps;
use crate::services::idempotency::Call;
use crate::services::request::{RequestPart, refuse_card_data};

/// How long a gateway call may take before its outcome counts as unknown.
pub const GATEWAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the billing-facing functions (charges, refunds) need, built once, on the first request
/// (the gateways' keys are in the secret).
pub struct BillingApp {
    pub store: Table,
    pub gateways: GatewayRouter,
    pub queue: SqsWorkQueue,
    pub idempotency_ttl: std::time::Duration,
}

impl BillingApp {
    /// The clients, from init's configuration and the secret (the gateways' keys).
    pub fn new(init: &Init, secrets: &Secrets) -> Result<Self, String> {
        let (config, aws) = (&init.config, &init.aws);
        Ok(BillingApp {
            store: Table::from_conf(aws, &config.table),
            gateways: GatewayRouter::from_secrets(config, secrets, GATEWAY_TIMEOUT),
            queue: SqsWorkQueue::from_conf(aws, &config.work_queue_url),
            idempotency_ttl: config.idempotency_ttl,
        })
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

/// `text` with its `%XX` escapes decoded (and `+` as a space in a query string); an escape that
/// is not one is kept as it is.
fn percent_decoded(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A billing request as the routers read it: its path (without the trailing slash) and its body,
/// refused with 413 before anything else when over [`MAX_REQUEST_BYTES`].
pub struct Routed<'a> {
    pub path: String,
    pub body: &'a [u8],
}

impl<'a> Routed<'a> {
    /// Reads a request: over [`MAX_REQUEST_BYTES`] → 413; a card number anywhere in its path,
    /// query string, `Idempotency-Key` or body (raw or decoded) → 422 `card_data_refused`, on
    /// every route, before anything is routed, stored or sent.
    pub fn read(req: &'a Request) -> Result<Self, Error> {
        let body: &[u8] = req.body().as_ref();
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Error::payload_too_large(MAX_REQUEST_BYTES));
        }
        let raw_path = req.uri().path();
        let raw_query = req.uri().query().unwrap_or_default();
        // paybridge's own ids in the path (`ch_` + 32 hex, …) are not billing's text: they name a
        // record paybridge made, and ids made before the card-number rule tightened hold a
        // Luhn-valid digit window about once in twenty. Every other segment is checked.
        let checked_path = without_paybridge_ids(raw_path);
        let path = percent_decoded(&checked_path, false);
        let query = percent_decoded(raw_query, true);
        let mut parts: Vec<(RequestPart, &[u8])> = vec![
            (RequestPart::Path, checked_path.as_bytes()),
            (RequestPart::Path, &path),
            (RequestPart::Query, raw_query.as_bytes()),
            (RequestPart::Query, &query),
        ];
        let params = req.query_string_parameters();
        let decoded_params: Vec<&str> = params
            .iter()
            .flat_map(|(k, _)| std::iter::once(k).chain(params.all(k).unwrap_or_default()))
            .collect();
        parts.extend(
            decoded_params
                .iter()
                .map(|p| (RequestPart::Query, p.as_bytes())),
        );
        if let Some(key) = req.headers().get("idempotency-key") {
            parts.push((RequestPart::IdempotencyKey, key.as_bytes()));
        }
        refuse_card_data(parts, body)?;
        let path = raw_path.trim_end_matches('/').to_owned();
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
    let path = crate::domain::pci::mask_pans(path);
    let path = path.as_str();
    if err.kind().status() >= 500 {
        tracing::error!(code = err.code(), error = %err.chain(), path, "request failed");
    } else {
        tracing::info!(code = err.code(), path, "request refused");
    }
    err.to_response().map(Body::from)
}

/// `path` with every segment that is exactly one of paybridge's ids left out (each kept as an
/// empty segment, so no digits of neighbouring segments meet).
fn without_paybridge_ids(path: &str) -> String {
    use crate::domain::{ChargeId, DisputeId, NotificationId, RefundId};
    let ours = |s: &str| {
        ChargeId::parse(s).is_ok()
            || RefundId::parse(s).is_ok()
            || DisputeId::parse(s).is_ok()
            || NotificationId::parse(s).is_ok()
    };
    (path.split('/'))
        .map(|segment| if ours(segment) { "" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::without_paybridge_ids;
    use crate::domain::pci;

    #[test]
    fn paybridge_ids_in_the_path_are_not_read_as_card_numbers_and_everything_else_is() {
        // An id made before ids were drawn again until they hold no card number.
        let old_id = "ch_4111111111111111abcdefabcdefabcd";
        let path = format!("/charges/{old_id}/refunds");
        assert!(pci::contains_pan_bytes(path.as_bytes()));
        let checked = without_paybridge_ids(&path);
        assert_eq!(checked, "/charges//refunds");
        assert!(!pci::contains_pan_bytes(checked.as_bytes()));
        // Not an id (wrong length, a disguise): checked as it is.
        for other in [
            "/charges/ch_4111111111111111/capture",
            "/charges/4111-1111-1111-1111",
        ] {
            assert_eq!(without_paybridge_ids(other), other);
            assert!(pci::contains_pan_bytes(other.as_bytes()));
        }
    }
}
