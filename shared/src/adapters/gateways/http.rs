//! HTTP details every gateway connector reads the same way.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// `Retry-After` in seconds; the HTTP-date form is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
