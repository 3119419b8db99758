//! Billing notifications: one per state change of a charge or refund, with a stable id.
//!
//! A notification is written in the same transaction as the state change it reports (an outbox),
//! so a crash between the two cannot lose it; delivery happens afterwards, in series of attempts
//! on a published schedule, and every attempt is recorded on the notification (the delivery log
//! support reads). The record is the source of truth for where delivery stands: which series is
//! current, how many of its attempts were made, and when the next one is due. Work messages only
//! carry the attempt they mean to make, so a message whose attempt was made already (a duplicate,
//! or a chain a resend replaced) is recognised and dropped.

use serde::{Deserialize, Serialize};

use super::ids::{ChargeId, NotificationId};

/// Where a notification's delivery stands. Nothing is ever deleted: every status but `delivered`
/// is listed across charges (`paybridge-ops undelivered`) and can be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempts continue on the schedule.
    Pending,
    /// Billing answered 2xx.
    Delivered,
    /// Billing refused it for good (410 Gone, or an answer marked `Paybridge-Retry: never`).
    /// `make resend` / `make recover` try again.
    Failed,
    /// Every attempt of the schedule failed (about three days). `make resend` / `make recover`
    /// start a fresh series.
    Exhausted,
}

impl DeliveryStatus {
    /// The statuses of notifications billing does not have.
    pub const UNDELIVERED: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Failed,
        DeliveryStatus::Exhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Exhausted => "exhausted",
        }
    }

    /// `pending`, `delivered`, `failed` or `exhausted`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Delivered]
            .into_iter()
            .chain(Self::UNDELIVERED)
            .find(|d| d.as_str() == s)
    }
}

/// The current series of delivery attempts. The state change starts series 1; every resend or
/// recovery starts the next one, with the whole schedule again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// 1 for the first series.
    pub number: u32,
    /// Unix seconds.
    pub started_at: i64,
    /// Attempts made in this series (the next one is `attempts + 1`).
    pub attempts: u32,
    /// When the next attempt is due (unix seconds); `None` once delivered, failed or exhausted.
    pub next_attempt_at: Option<i64>,
    /// The work message that made the latest attempt (its SQS message id). If that message comes
    /// back — queueing the next attempt failed after the attempt was recorded — it queues the
    /// next attempt again instead of being taken for a duplicate.
    pub last_attempt_by: Option<String>,
}

impl Series {
    /// Series 1 of a notification written at `now`: its first attempt due at once.
    pub fn first(now: i64) -> Self {
        Series {
            number: 1,
            started_at: now,
            attempts: 0,
            next_attempt_at: Some(now),
            last_attempt_by: None,
        }
    }

    /// The series after this one, started at `now`, its first attempt due at once.
    pub fn next(&self, now: i64) -> Self {
        Series {
            number: self.number.saturating_add(1),
            ..Series::first(now)
        }
    }
}

/// Where notifications go: billing's HTTP endpoint (signed, Standard Webhooks), an EventBridge
/// bus, or both (`PAYBRIDGE_NOTIFY_TARGETS`, the template's `NotificationTargets`). Each target
/// has its own delivery record, so one being down never holds up or repeats the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Targets {
    /// Billing's endpoint: the notification record and its delivery log.
    pub http: bool,
    /// The notification bus: a publication record (see [`Publication`]).
    pub event_bus: bool,
}

impl Targets {
    /// Billing's endpoint only: the default, and what every release before targets did.
    pub const HTTP: Targets = Targets {
        http: true,
        event_bus: false,
    };

    /// `http`, `eventbridge` or `http,eventbridge` (either order, spaces allowed).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut t = Targets {
            http: false,
            event_bus: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "http" if !t.http => t.http = true,
                "eventbridge" if !t.event_bus => t.event_bus = true,
                _ => {
                    return Err(format!(
                        "{s:?} is not a list of notification targets: say http, eventbridge or http,eventbridge"
                    ));
                }
            }
        }
        Ok(t)
    }

    pub fn as_str(self) -> &'static str {
        match (self.http, self.event_bus) {
            (true, true) => "http,eventbridge",
            (false, true) => "eventbridge",
            _ => "http",
        }
    }
}

impl Default for Targets {
    fn default() -> Self {
        Targets::HTTP
    }
}

/// Where a notification's publication on the event bus stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicationStatus {
    /// Not on the bus yet; the worker publishes it (and the outbox sweep re-queues it if its
    /// message is lost).
    Pending,
    /// EventBridge accepted it (`event_id` is EventBridge's id of the event).
    Published,
}

impl PublicationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicationStatus::Pending => "pending",
            PublicationStatus::Published => "published",
        }
    }
}

/// One notification's delivery to the EventBridge bus: written in the same transaction as the
/// state change (the outbox), beside the charge, with the same id and body as the HTTP
/// notification. The event on the bus is `source: "paybridge"`, `detail-type` = `event_type`,
/// `detail` = `body`; consumers deduplicate on `detail.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The notification's id (`detail.id`).
    pub id: NotificationId,
    pub charge_id: ChargeId,
    pub event_type: String,
    pub body: String,
    pub status: PublicationStatus,
    /// PutEvents calls started (a claim counts one; a crash mid-call is counted too).
    pub attempts: u32,
    /// A worker publishing it holds it until then (unix seconds): a second copy of its message
    /// waits instead of publishing twice.
    pub lease_until: Option<i64>,
    /// When the sweep may queue it again if nothing is working on it (unix seconds).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub published_at: Option<i64>,
    /// EventBridge's id of the published event.
    pub event_id: Option<String>,
    pub version: u64,
}

impl Publication {
    /// The publication of a new notification.
    pub fn of(n: &Notification) -> Self {
        Publication {
            id: n.id.clone(),
            charge_id: n.charge_id.clone(),
            event_type: n.event_type.clone(),
            body: n.body.clone(),
            status: PublicationStatus::Pending,
            attempts: 0,
            lease_until: None,
            next_attempt_at: n.created_at,
            last_error: None,
            created_at: n.created_at,
            published_at: None,
            event_id: None,
            version: 1,
        }
    }
}

/// One notification and its delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: NotificationId,
    /// The charge it concerns (a refund's notification is kept with its charge).
    pub charge_id: ChargeId,
    /// `charge.succeeded`, `refund.failed`, …
    pub event_type: String,
    /// The id of the charge or refund it reports.
    pub object_id: String,
    /// The exact JSON body billing receives.
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts in all series.
    pub attempts: u32,
    pub series: Series,
    /// The last failed attempt: HTTP status (if any) and a short description.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub version: u64,
    /// Where it goes, decided when it is written. Without `http` no notification record is
    /// stored (only its publication).
    pub targets: Targets,
}

/// What one delivery attempt said about billing's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointAttempt {
    /// Billing answered 2xx.
    Accepted,
    /// Anything that will be tried again: 5xx, 4xx, a timeout, a refused connection, a redirect.
    NotAccepted { status: Option<u16> },
}

/// The health of billing's endpoint across all notifications: one small record, changed by
/// atomic updates at every attempt (never read, changed and written back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Attempts in a row, of any notification, that billing did not accept; 0 after a 2xx.
    pub consecutive_failures: u32,
    /// The latest 2xx (unix seconds).
    pub last_success_at: Option<i64>,
    /// The first failure of the current run of failures; `None` while billing accepts.
    pub failing_since: Option<i64>,
    pub last_failure_at: Option<i64>,
    /// The HTTP status of the latest failure, if there was one.
    pub last_failure_status: Option<u16>,
}

impl EndpointHealth {
    /// The health after `attempt` made at `now` — the rule the store applies atomically. A
    /// failure older than the latest success is not counted; a success older than the latest
    /// failure does not reset the count, but still moves the last success forward.
    pub fn record(&mut self, attempt: EndpointAttempt, now: i64) {
        let no_later_success = self.last_success_at.is_none_or(|t| t <= now);
        let no_later_failure = self.last_failure_at.is_none_or(|t| t <= now);
        match attempt {
            EndpointAttempt::Accepted if no_later_success && no_later_failure => {
                self.consecutive_failures = 0;
                self.last_success_at = Some(now);
                self.failing_since = None;
            }
            EndpointAttempt::Accepted => {
                if self.last_success_at.is_none_or(|t| t < now) {
                    self.last_success_at = Some(now);
                }
            }
            EndpointAttempt::NotAccepted { status } if no_later_success => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_failure_at = Some(now);
                self.failing_since = self.failing_since.or(Some(now));
                self.last_failure_status = status;
            }
            EndpointAttempt::NotAccepted { .. } => {}
        }
    }

    /// Seconds billing has not accepted anything while its latest answer is a failure: since its
    /// last 2xx, or since the failures began if it never answered 2xx. 0 while the latest answer
    /// is a 2xx — a quiet endpoint is not a failing one.
    pub fn seconds_since_success(&self, now: i64) -> i64 {
        if self.consecutive_failures == 0 {
            return 0;
        }
        (self.last_success_at.or(self.failing_since)).map_or(0, |t| now.saturating_sub(t).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_they_are_written() {
        for s in DeliveryStatus::UNDELIVERED
            .into_iter()
            .chain([DeliveryStatus::Delivered])
        {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(DeliveryStatus::parse("gone"), None);
    }

    #[test]
    fn targets_read_as_the_template_writes_them() {
        let both = Targets {
            http: true,
            event_bus: true,
        };
        assert_eq!(Targets::parse("http"), Ok(Targets::HTTP));
        assert_eq!(Targets::parse("http,eventbridge"), Ok(both));
        assert_eq!(Targets::parse(" eventbridge , http "), Ok(both));
        let bus = Targets::parse("eventbridge").unwrap();
        assert!(bus.event_bus && !bus.http);
        for t in [Targets::HTTP, both, bus] {
            assert_eq!(Targets::parse(t.as_str()), Ok(t));
        }
        for bad in ["", "sns", "http,http", "http,", "HTTP"] {
            assert!(Targets::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_new_series_starts_over_with_its_first_attempt_due_at_once() {
        let mut s = Series::first(100);
        s.attempts = 13;
        s.next_attempt_at = None;
        s.last_attempt_by = Some("m-1".into());
        let next = s.next(500);
        assert_eq!(
            next,
            Series {
                number: 2,
                started_at: 500,
                attempts: 0,
                next_attempt_at: Some(500),
                last_attempt_by: None
            }
        );
    }

    #[test]
    fn failures_count_up_until_a_success_and_late_answers_do_not_rewrite_history() {
        let mut h = EndpointHealth::default();
        let failed = |status| EndpointAttempt::NotAccepted { status };
        h.record(failed(Some(500)), 100);
        h.record(failed(None), 110);
        assert_eq!(
            h,
            EndpointHealth {
                consecutive_failures: 2,
                last_success_at: None,
                failing_since: Some(100),
                last_failure_at: Some(110),
                last_failure_status: None,
            }
        );
        h.record(EndpointAttempt::Accepted, 120);
        assert_eq!(
            (h.consecutive_failures, h.last_success_at, h.failing_since),
            (0, Some(120), None)
        );
        // An answer from before the success, recorded late, is not a new failure.
        h.record(failed(Some(503)), 115);
        assert_eq!(h.consecutive_failures, 0);
        h.record(failed(Some(503)), 130);
        // A success from before that failure moves the last success on but keeps the count.
        h.record(EndpointAttempt::Accepted, 125);
        assert_eq!((h.consecutive_failures, h.last_success_at), (1, Some(125)));
    }

    #[test]
    fn seconds_since_success_count_only_while_billing_is_failing() {
        let mut h = EndpointHealth {
            last_success_at: Some(1_000),
            ..Default::default()
        };
        assert_eq!(
            h.seconds_since_success(9_000),
            0,
            "the last answer was a 2xx"
        );
        h.consecutive_failures = 3;
        h.failing_since = Some(2_000);
        assert_eq!(h.seconds_since_success(9_000), 8_000);
        h.last_success_at = None;
        assert_eq!(
            h.seconds_since_success(9_000),
            7_000,
            "never accepted: since the failures began"
        );
    }
}
