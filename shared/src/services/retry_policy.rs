//! Every retry schedule of the use cases in one place: how long to wait before asking a gateway
//! again, before delivering a billing notification again, and how to back off after losing an
//! optimistic write.

use std::future::Future;
use std::time::Duration;

use crate::domain::WorkMessage;
use crate::error::{Code, Error};
use crate::ports::StoreError;

/// Attempts of a gateway call whose answer was lost before the charge or refund is left to the
/// reconciler (≈ 50 minutes of backoff in all, well inside the 24 h gateways keep keys).
pub const GATEWAY_RETRY_ATTEMPTS: u32 = 8;

/// What retrying a gateway call whose answer was lost came to, for the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome<S> {
    /// The outcome is known (or was already): the object's status.
    Done(S),
    /// Still unknown: ask again as attempt `attempt` after `delay`.
    RetryLater { attempt: u32, delay: Duration },
    /// Still unknown after the last attempt: left for the reconciler.
    GaveUp,
}

impl<S> RetryOutcome<S> {
    /// After attempt `attempt` (1-based) was still unknown: the next attempt, with the gateway's
    /// `Retry-After` hint honoured, or giving up after [`GATEWAY_RETRY_ATTEMPTS`].
    pub fn still_unknown(attempt: u32, hint: Option<Duration>) -> Self {
        if attempt >= GATEWAY_RETRY_ATTEMPTS {
            RetryOutcome::GaveUp
        } else {
            RetryOutcome::RetryLater {
                attempt: attempt + 1,
                delay: retry_delay(attempt + 1, hint),
            }
        }
    }

    /// The delayed follow-up message of a `RetryLater` (`message` builds it for the attempt).
    pub fn follow_up(
        self,
        message: impl FnOnce(u32) -> WorkMessage,
    ) -> Option<(WorkMessage, Duration)> {
        match self {
            RetryOutcome::RetryLater { attempt, delay } => Some((message(attempt), delay)),
            RetryOutcome::Done(_) | RetryOutcome::GaveUp => None,
        }
    }
}

/// Delay before retry `attempt` (1-based) of a gateway call whose outcome was unknown:
/// 15 s doubling to SQS's 15-minute cap, with ±20% jitter so retries of many charges spread out.
pub fn retry_delay(attempt: u32, gateway_hint: Option<Duration>) -> Duration {
    let base = 15u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(10))
        .min(900);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 41) as i64 - 20; // -20..=20 %
    let secs = (base as i64 + base as i64 * jitter / 100).clamp(1, 900) as u64;
    Duration::from_secs(secs)
        .max(gateway_hint.unwrap_or_default())
        .min(Duration::from_secs(900))
}

/// The wait before a notification's second delivery attempt; it doubles per attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// The longest wait between two attempts that paybridge chooses itself.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// SQS cannot hide a message for longer than 12 hours, whatever billing asks for.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The wait after failed attempt `attempt` (1-based): [`FIRST_BACKOFF`] doubling per attempt up
/// to [`MAX_BACKOFF`], less a random quarter at most so that notifications held up by the same
/// outage do not all come back at once — and never less than billing's `Retry-After`.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = FIRST_BACKOFF
        .as_secs()
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF.as_secs());
    let spread = base / 4;
    let jitter = (uuid::Uuid::new_v4().as_u128() % (u128::from(spread) + 1)) as u64;
    Duration::from_secs(base - jitter).max(retry_after.unwrap_or_default().min(MAX_VISIBILITY))
}

/// How often an optimistic write is re-read and tried again before giving up with 409.
pub const CONFLICT_RETRIES: u32 = 25;

/// A short random pause after losing an optimistic write, growing with `attempt`, so writers
/// racing for one charge (many refunds at once) spread out instead of colliding again.
pub async fn conflict_pause(attempt: u32) {
    let cap_ms = 5u64 << attempt.min(5); // 5 ms … 160 ms
    let ms = (uuid::Uuid::new_v4().as_u128() % u128::from(cap_ms)) as u64 + 1;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// After losing optimistic write `attempt` on a `what`: a short pause, then the object as it is
/// now (`reread`), to apply the change again on top of the winner's.
pub async fn reread_after_conflict<T>(
    attempt: u32,
    what: &str,
    reread: impl Future<Output = Result<Option<T>, StoreError>>,
) -> Result<T, Error> {
    conflict_pause(attempt).await;
    (reread.await?)
        .ok_or_else(|| Error::internal(format!("the {what} vanished while being updated"), None))
}

/// The answer when a `what` kept changing under every one of [`CONFLICT_RETRIES`] writes.
pub fn still_contended(what: &str) -> Error {
    let message = format!("the {what} is being changed concurrently; retry");
    Error::new(Code::ConcurrentUpdate, message).with_retry_after(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_within_sqs_limits() {
        for attempt in 1..=12 {
            let d = retry_delay(attempt, None).as_secs();
            let base = (15u64 << (attempt - 1).min(10)).min(900);
            assert!(
                d >= base * 8 / 10 && d <= (base * 12 / 10).min(900),
                "attempt {attempt}: {d}s"
            );
        }
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(5000))),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_stays_within_sqs_limits() {
        for attempt in 1..=40 {
            let d = backoff(attempt, None).as_secs();
            let base = (30u64 << (attempt - 1).min(20)).min(3600);
            assert!(d >= base * 3 / 4 && d <= base, "attempt {attempt}: {d}s");
        }
        assert_eq!(
            backoff(1, Some(Duration::from_secs(100_000))),
            MAX_VISIBILITY
        );
    }
}
