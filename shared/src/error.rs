//! The one error type a use case returns, and its one mapping to HTTP.
//!
//! Every error has a stable snake_case `code` for callers, a human `message`, a [`Kind`] that fixes
//! the HTTP status and whether trying again can help, and — for infrastructure faults — the
//! underlying cause as its `source`, which goes to the log and never to the caller.

use std::error::Error as StdError;
use std::fmt;

/// A boxed underlying cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, in the terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: malformed input, or a webhook whose signature does not verify.
    BadRequest,
    /// 401: credentials missing or wrong.
    Unauthorized,
    /// 404: no such route, gateway or object.
    NotFound,
    /// 409: conflicts with the current state, or the same request is still running.
    Conflict,
    /// 413: the body is over the size limit.
    PayloadTooLarge,
    /// 422: well-formed but refused (a card number in the body, an amount above what remains…).
    Unprocessable,
    /// 503: a dependency of ours (DynamoDB, SQS, Secrets Manager) is down or throttling.
    Unavailable,
    /// 502: the payment gateway failed or answered something we cannot use.
    BadGateway,
    /// 500: our own fault.
    Internal,
    /// 501: the route exists in the contract but this build does not serve it yet.
    NotImplemented,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::NotFound => 404,
            Kind::Conflict => 409,
            Kind::PayloadTooLarge => 413,
            Kind::Unprocessable => 422,
            Kind::Internal => 500,
            Kind::NotImplemented => 501,
            Kind::BadGateway => 502,
            Kind::Unavailable => 503,
        }
    }
}

/// Every error code paybridge answers with (the `error.code` of a JSON error body). An [`Error`]
/// is made from one of these, so [`Code::ALL`] is the complete list, and each code fixes its
/// HTTP status through its [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    AmountExceedsRefundable,
    AmountNotRepresentable,
    CardDataRefused,
    ChargeCaptured,
    ChargeFailed,
    ChargeNotCapturable,
    ChargeNotFound,
    ChargeNotRefundable,
    /// A dispute of the charge is open or was lost: a refund could pay the customer twice.
    ChargeDisputed,
    ChargePending,
    ConcurrentUpdate,
    CurrencyMismatch,
    EventNotFound,
    GatewayError,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    InternalError,
    InvalidAmount,
    InvalidField,
    InvalidIdempotencyKey,
    InvalidJson,
    InvalidMetadata,
    InvalidRequest,
    InvalidSignature,
    /// A new charge for an invoice that has a charge which took, holds or may still take money.
    InvoiceAlreadyCharged,
    InvoiceIdRequired,
    MalformedPayload,
    MalformedSignature,
    MissingSignature,
    NotImplemented,
    NotificationNotFound,
    PayloadTooLarge,
    RefundNotFound,
    DisputeNotFound,
    RequestInProgress,
    RouteNotFound,
    TemporarilyUnavailable,
    TimestampOutOfTolerance,
    Unauthorized,
    UnknownGateway,
    /// An EventBridge event whose `source` is not the Stripe partner event source paybridge trusts.
    UntrustedSource,
    UnsupportedGateway,
}

impl Code {
    pub const ALL: [Code; 42] = [
        Code::AmountExceedsRefundable,
        Code::AmountNotRepresentable,
        Code::CardDataRefused,
        Code::ChargeCaptured,
        Code::ChargeFailed,
        Code::ChargeNotCapturable,
        Code::ChargeNotFound,
        Code::ChargeNotRefundable,
        Code::ChargeDisputed,
        Code::ChargePending,
        Code::ConcurrentUpdate,
        Code::CurrencyMismatch,
        Code::EventNotFound,
        Code::GatewayError,
        Code::IdempotencyKeyRequired,
        Code::IdempotencyKeyReused,
        Code::InternalError,
        Code::InvalidAmount,
        Code::InvalidField,
        Code::InvalidIdempotencyKey,
        Code::InvalidJson,
        Code::InvalidMetadata,
        Code::InvalidRequest,
        Code::InvalidSignature,
        Code::InvoiceAlreadyCharged,
        Code::InvoiceIdRequired,
        Code::MalformedPayload,
        Code::MalformedSignature,
        Code::MissingSignature,
        Code::NotImplemented,
        Code::NotificationNotFound,
        Code::PayloadTooLarge,
        Code::RefundNotFound,
        Code::DisputeNotFound,
        Code::RequestInProgress,
        Code::RouteNotFound,
        Code::TemporarilyUnavailable,
        Code::TimestampOutOfTolerance,
        Code::Unauthorized,
        Code::UnknownGateway,
        Code::UntrustedSource,
        Code::UnsupportedGateway,
    ];

    /// The snake_case code callers see.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AmountExceedsRefundable => "amount_exceeds_refundable",
            Code::AmountNotRepresentable => "amount_not_representable",
            Code::CardDataRefused => "card_data_refused",
            Code::ChargeCaptured => "charge_captured",
            Code::ChargeFailed => "charge_failed",
            Code::ChargeNotCapturable => "charge_not_capturable",
            Code::ChargeNotFound => "charge_not_found",
            Code::ChargeNotRefundable => "charge_not_refundable",
            Code::ChargeDisputed => "charge_disputed",
            Code::ChargePending => "charge_pending",
            Code::ConcurrentUpdate => "concurrent_update",
            Code::CurrencyMismatch => "currency_mismatch",
            Code::EventNotFound => "event_not_found",
            Code::GatewayError => "gateway_error",
            Code::IdempotencyKeyRequired => "idempotency_key_required",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::InternalError => "internal_error",
            Code::InvalidAmount => "invalid_amount",
            Code::InvalidField => "invalid_field",
            Code::InvalidIdempotencyKey => "invalid_idempotency_key",
            Code::InvalidJson => "invalid_json",
            Code::InvalidMetadata => "invalid_metadata",
            Code::InvalidRequest => "invalid_request",
            Code::InvalidSignature => "invalid_signature",
            Code::InvoiceIdRequired => "invoice_id_required",
            Code::InvoiceAlreadyCharged => "invoice_already_charged",
            Code::MalformedPayload => "malformed_payload",
            Code::MalformedSignature => "malformed_signature",
            Code::MissingSignature => "missing_signature",
            Code::NotImplemented => "not_implemented",
            Code::NotificationNotFound => "notification_not_found",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RefundNotFound => "refund_not_found",
            Code::DisputeNotFound => "dispute_not_found",
            Code::RequestInProgress => "request_in_progress",
            Code::RouteNotFound => "route_not_found",
            Code::TemporarilyUnavailable => "temporarily_unavailable",
            Code::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Code::Unauthorized => "unauthorized",
            Code::UntrustedSource => "untrusted_source",
            Code::UnknownGateway => "unknown_gateway",
            Code::UnsupportedGateway => "unsupported_gateway",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Code::AmountExceedsRefundable
            | Code::AmountNotRepresentable
            | Code::CardDataRefused
            | Code::ChargeDisputed
            | Code::CurrencyMismatch
            | Code::IdempotencyKeyReused
            | Code::InvalidAmount
            | Code::InvalidField
            | Code::InvalidMetadata
            | Code::UnsupportedGateway => Kind::Unprocessable,
            Code::ChargeCaptured
            | Code::ChargeFailed
            | Code::ChargeNotCapturable
            | Code::ChargeNotRefundable
            | Code::ChargePending
            | Code::ConcurrentUpdate
            | Code::InvoiceAlreadyCharged
            | Code::RequestInProgress => Kind::Conflict,
            Code::ChargeNotFound
            | Code::DisputeNotFound
            | Code::EventNotFound
            | Code::NotificationNotFound
            | Code::RefundNotFound
            | Code::RouteNotFound
            | Code::UnknownGateway => Kind::NotFound,
            Code::GatewayError => Kind::BadGateway,
            Code::IdempotencyKeyRequired
            | Code::InvalidIdempotencyKey
            | Code::InvalidJson
            | Code::InvalidRequest
            | Code::InvalidSignature
            | Code::InvoiceIdRequired
            | Code::MalformedPayload
            | Code::MalformedSignature
            | Code::MissingSignature
            | Code::TimestampOutOfTolerance => Kind::BadRequest,
            Code::InternalError => Kind::Internal,
            Code::NotImplemented => Kind::NotImplemented,
            Code::PayloadTooLarge => Kind::PayloadTooLarge,
            Code::TemporarilyUnavailable => Kind::Unavailable,
            Code::Unauthorized | Code::UntrustedSource => Kind::Unauthorized,
        }
    }

    /// Whether the billing routes (openapi.json) can answer with this code; the others belong to
    /// webhook intake (signature checks, unknown gateways) or to the worker's own messages.
    pub fn on_billing_routes(self) -> bool {
        !matches!(
            self,
            Code::EventNotFound
                | Code::InvalidSignature
                | Code::MalformedPayload
                | Code::MalformedSignature
                | Code::MissingSignature
                | Code::NotImplemented
                | Code::NotificationNotFound
                | Code::TimestampOutOfTolerance
                | Code::Unauthorized
                | Code::UnknownGateway
                | Code::UntrustedSource
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a use case.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    code: Code,
    message: String,
    retry_after_secs: Option<u64>,
    /// The charge the error is about, when it is not the one in the path (the charge that
    /// holds an invoice): `error.charge_id` in the body.
    charge_id: Option<String>,
    source: Option<BoxError>,
}

impl Error {
    /// An error with `code` (which fixes its kind and so its HTTP status) and a human message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            kind: code.kind(),
            code,
            message: message.into(),
            retry_after_secs: None,
            charge_id: None,
            source: None,
        }
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Code::PayloadTooLarge,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }
    /// A dependency (`"dynamodb"`, `"sqs"`, `"secretsmanager"`) failed; the caller should retry.
    pub fn unavailable(dependency: &'static str, source: impl Into<BoxError>) -> Self {
        let mut e = Self::new(
            Code::TemporarilyUnavailable,
            "a dependency is temporarily unavailable; retry the request",
        );
        e.message = format!("{} ({dependency})", e.message);
        e.retry_after_secs = Some(1);
        e.source = Some(source.into());
        e
    }
    pub fn bad_gateway(message: impl Into<String>, source: Option<BoxError>) -> Self {
        let mut e = Self::new(Code::GatewayError, message);
        e.source = source;
        e
    }
    pub fn internal(message: impl Into<String>, source: Option<BoxError>) -> Self {
        let mut e = Self::new(Code::InternalError, message);
        e.source = source;
        e
    }

    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            Code::NotImplemented,
            format!("{what} is not implemented in this build"),
        )
    }

    /// Ask the caller to wait this long before trying again (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Name the charge this error is about in the body (`error.charge_id`).
    pub fn with_charge_id(mut self, id: impl Into<String>) -> Self {
        self.charge_id = Some(id.into());
        self
    }

    pub fn charge_id(&self) -> Option<&str> {
        self.charge_id.as_deref()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// Whether the same request may succeed later: dependency and gateway faults, and
    /// conflicts that only mean "still in progress". The worker retries these; HTTP callers see
    /// them as 409/502/503.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            Kind::Unavailable | Kind::BadGateway | Kind::Internal => true,
            Kind::Conflict => self.retry_after_secs.is_some(),
            _ => false,
        }
    }

    /// The HTTP response for this error: status, JSON body and headers. The only place errors
    /// become HTTP. Internal detail (the source chain) is not in the body.
    pub fn to_response(&self) -> http::Response<String> {
        let mut error =
            serde_json::json!({ "code": self.code.as_str(), "message": self.public_message() });
        if let Some(id) = &self.charge_id {
            error["charge_id"] = serde_json::Value::String(id.clone());
        }
        let body = serde_json::json!({ "error": error });
        let mut builder = http::Response::builder()
            .status(self.kind.status())
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(secs) = self.retry_after_secs {
            builder = builder.header(http::header::RETRY_AFTER, secs.to_string());
        }
        builder
            .body(body.to_string())
            .unwrap_or_else(|_| http::Response::new(String::new()))
    }

    /// The message a caller may see (internal detail stays in the log).
    pub fn public_message(&self) -> &str {
        match self.kind {
            Kind::Internal => "an internal error occurred; it has been logged",
            _ => &self.message,
        }
    }

    /// The full cause chain, for the log.
    pub fn chain(&self) -> String {
        match self.source.as_deref() {
            Some(source) => format!("{}: {}", self.message, chain(source)),
            None => self.message.clone(),
        }
    }
}

/// An error and its causes, `: `-separated, for a log line.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let e = Error::internal("table schema mismatch on pk", Some("secret detail".into()));
        let resp = e.to_response();
        assert_eq!(resp.status(), 500);
        assert!(!resp.body().contains("secret detail"));
        assert!(!resp.body().contains("schema"));
        assert!(e.chain().contains("secret detail"));
    }

    #[test]
    fn unavailable_is_503_with_retry_after_and_retryable() {
        let e = Error::unavailable("sqs", "connection refused");
        let resp = e.to_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert!(e.is_retryable());
        let body: serde_json::Value = serde_json::from_str(resp.body()).unwrap();
        assert_eq!(body["error"]["code"], "temporarily_unavailable");
    }

    #[test]
    fn refusals_are_not_retryable() {
        assert!(!Error::new(Code::InvalidRequest, "y").is_retryable());
        assert!(!Error::new(Code::InvalidAmount, "y").is_retryable());
        assert!(!Error::new(Code::ChargeCaptured, "y").is_retryable());
        assert!(
            Error::new(Code::ConcurrentUpdate, "y")
                .with_retry_after(2)
                .is_retryable()
        );
    }

    #[test]
    fn every_code_is_listed_once_in_snake_case_and_reads_back_as_itself() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(Error::new(code, "m").code(), s);
            assert_eq!(Error::new(code, "m").kind(), code.kind());
        }
    }
}
