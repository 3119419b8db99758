//! The one reading of the wall clock.
//!
//! Use cases never read the clock: they take `now` (unix seconds, or ms where a lease needs it)
//! as an argument, so tests inject time instead of sleeping through schedules. Function entry
//! points, the EMF writer and the ops tool read it here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
