//! Billing notifications: one per state change of a charge or refund, with a stable id.
//!
//! A notification is written in the same transaction as the state change it reports (an outbox),
//! so a crash between the two cannot lose it; delivery happens afterwards, with retries, and every
//! attempt is recorded on the notification (the delivery log support reads).

use serde::{Deserialize, Serialize};

use super::ids::{ChargeId, NotificationId};

/// Where a notification's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempts continue.
    Pending,
    /// Billing answered 2xx.
    Delivered,
    /// Billing refused it (4xx other than 429), or attempts ran out. `make resend` tries again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
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
    pub attempts: u32,
    /// The last failed attempt: HTTP status (if any) and a short description.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub version: u64,
}
