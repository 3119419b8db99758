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

/// An error from a use case.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            kind,
            code,
            message: message.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, code, message)
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Unprocessable, code, message)
    }
    /// A dependency (`"dynamodb"`, `"sqs"`, `"secretsmanager"`) failed; the caller should retry.
    pub fn unavailable(dependency: &'static str, source: impl Into<BoxError>) -> Self {
        let mut e = Self::new(
            Kind::Unavailable,
            "temporarily_unavailable",
            "a dependency is temporarily unavailable; retry the request",
        );
        e.message = format!("{} ({dependency})", e.message);
        e.retry_after_secs = Some(1);
        e.source = Some(source.into());
        e
    }
    pub fn bad_gateway(message: impl Into<String>, source: Option<BoxError>) -> Self {
        let mut e = Self::new(Kind::BadGateway, "gateway_error", message);
        e.source = source;
        e
    }
    pub fn internal(message: impl Into<String>, source: Option<BoxError>) -> Self {
        let mut e = Self::new(Kind::Internal, "internal_error", message);
        e.source = source;
        e
    }

    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            Kind::NotImplemented,
            "not_implemented",
            format!("{what} is not implemented in this build"),
        )
    }

    /// Ask the caller to wait this long before trying again (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn code(&self) -> &'static str {
        self.code
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
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.public_message() }
        });
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

    fn public_message(&self) -> &str {
        match self.kind {
            Kind::Internal => "an internal error occurred; it has been logged",
            _ => &self.message,
        }
    }

    /// The full cause chain, for the log.
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut cause = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
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
        assert!(!Error::bad_request("x", "y").is_retryable());
        assert!(!Error::unprocessable("x", "y").is_retryable());
        assert!(!Error::conflict("x", "y").is_retryable());
        assert!(Error::conflict("x", "y").with_retry_after(2).is_retryable());
    }
}
