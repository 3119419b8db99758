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
    let jitter = (crate::domain::entropy::random_u128() % 41) as i64 - 20; // -20..=20 %
    let secs = (base as i64 + base as i64 * jitter / 100).clamp(1, 900) as u64;
    Duration::from_secs(secs)
        .max(gateway_hint.unwrap_or_default())
        .min(Duration::from_secs(900))
}

// ---- billing notifications -------------------------------------------------------------------

/// The published delivery schedule of a billing notification (docs/notifications.md shows it):
/// the wait after each failed attempt of a series, modelled on Svix's. Attempt 1 is immediate;
/// attempt `n + 1` comes `NOTIFICATION_SCHEDULE[n - 1]` after attempt `n`. After the last wait's
/// attempt fails, the notification is `exhausted` (kept, listed, recoverable — never deleted).
///
/// 13 attempts over 77 h 35 min: billing can be down for three days and still hear of every change.
pub const NOTIFICATION_SCHEDULE: [Duration; 12] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Attempts in one series of a notification: the immediate one and one after each wait.
pub const NOTIFICATION_ATTEMPTS: u32 = NOTIFICATION_SCHEDULE.len() as u32 + 1;

/// The longest `Retry-After` taken from billing. A larger value counts as this much: billing
/// asking for a day's pause must not silently use up a third of the schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// SQS delays a message at most 15 minutes. A notification waiting longer travels in hops: its
/// message arrives early, finds the attempt not yet due, and is sent again for what remains.
pub const MAX_MESSAGE_DELAY: Duration = Duration::from_secs(900);

/// How long past its due time a pending notification's next attempt may be missing before the
/// outbox sweep takes its message chain for lost and queues the attempt again: one hop (15 min)
/// plus the work queue's visibility timeout (6 min, a crashed worker's message coming back) plus
/// room for a worker that is catching up. A chain that was only late is not doubled: the
/// notification record lets one message make each attempt.
pub const CHAIN_LOST_AFTER: Duration = Duration::from_secs(30 * 60);

/// The wait after failed attempt `attempt` (1-based) of a series, or `None` if it was the last.
///
/// The schedule's wait plus up to a tenth more at random — so notifications held up by the same
/// outage do not all come back in the same second, and the series never gets shorter than the
/// published one — and never less than billing's `Retry-After` (capped at [`MAX_RETRY_AFTER`]).
pub fn notification_wait(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let step = *NOTIFICATION_SCHEDULE.get(usize::try_from(attempt.checked_sub(1)?).ok()?)?;
    let spread = step.as_secs() / 10;
    let jitter = (crate::domain::entropy::random_u128() % (u128::from(spread) + 1)) as u64;
    let hint = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
    Some((step + Duration::from_secs(jitter)).max(hint))
}

/// How often an optimistic write is re-read and tried again before giving up with 409.
pub const CONFLICT_RETRIES: u32 = 25;

/// A short random pause after losing an optimistic write, growing with `attempt`, so writers
/// racing for one charge (many refunds at once) spread out instead of colliding again.
pub async fn conflict_pause(attempt: u32) {
    let cap_ms = 5u64 << attempt.min(5); // 5 ms … 160 ms
    let ms = (crate::domain::entropy::random_u128() % u128::from(cap_ms)) as u64 + 1;
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
    fn the_notification_schedule_retries_for_at_least_three_days() {
        let total: Duration = NOTIFICATION_SCHEDULE.iter().sum();
        assert!(
            total >= Duration::from_secs(72 * 3600),
            "the schedule covers only {total:?}"
        );
        assert_eq!(total, Duration::from_secs(279_305), "77 h 35 min 5 s");
        assert_eq!(NOTIFICATION_ATTEMPTS, 13);
        // Svix's shape: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, then 10 h.
        let minutes: Vec<u64> = NOTIFICATION_SCHEDULE.iter().map(|d| d.as_secs()).collect();
        assert_eq!(&minutes[..6], &[5, 300, 1800, 7200, 18_000, 36_000]);
        assert!(minutes[6..].iter().all(|&s| s == 36_000));
    }

    #[test]
    fn notification_waits_follow_the_schedule_with_a_little_added_jitter() {
        for (i, step) in NOTIFICATION_SCHEDULE.iter().enumerate() {
            let attempt = i as u32 + 1;
            for _ in 0..20 {
                let wait = notification_wait(attempt, None).unwrap();
                assert!(
                    wait >= *step && wait <= *step + *step / 10,
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
        assert_eq!(
            notification_wait(NOTIFICATION_ATTEMPTS, None),
            None,
            "the last attempt"
        );
        assert_eq!(notification_wait(0, None), None);
        assert_eq!(notification_wait(99, None), None);
    }

    #[test]
    fn a_notification_wait_is_never_shorter_than_retry_after_which_is_capped() {
        assert_eq!(
            notification_wait(1, Some(Duration::from_secs(120))),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            notification_wait(1, Some(Duration::from_secs(100_000))),
            Some(MAX_RETRY_AFTER)
        );
        // A Retry-After shorter than the schedule's wait does not shorten it.
        let wait = notification_wait(6, Some(Duration::from_secs(60))).unwrap();
        assert!(wait >= Duration::from_secs(36_000), "{wait:?}");
    }
}
