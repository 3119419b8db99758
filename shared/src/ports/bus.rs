//! The notification bus's ports: its outbox of publications, and the EventBridge bus itself.

use std::future::Future;

use super::StoreError;
use crate::domain::{ChargeId, NotificationId, Publication};

/// The outbox of notifications for the EventBridge bus: one publication record per notification
/// when that target is on, written with the state change (see [`crate::domain::Publication`]).
pub trait PublicationStore: Send + Sync {
    fn get_publication(
        &self,
        charge: &ChargeId,
        id: &NotificationId,
    ) -> impl Future<Output = Result<Option<Publication>, StoreError>> + Send;

    /// Writes `publication` if the stored one is at `publication.version - 1` (the caller bumps
    /// it); `Conflict` if it changed meanwhile.
    fn save_publication(
        &self,
        publication: &Publication,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Pending publications whose `next_attempt_at` is before `before` (unix seconds), earliest
    /// first, at most `limit` (the outbox sweep's reading).
    fn pending_publications(
        &self,
        before: i64,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<Publication>, StoreError>> + Send;
}

/// Why the bus did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BusError(pub String);

/// The EventBridge bus billing consumes notifications from.
pub trait EventBus: Send + Sync {
    /// Puts the notification on the bus as `source: "paybridge"`, `detail-type` = its type,
    /// `detail` = its body; returns the bus's id of the event.
    fn put(
        &self,
        publication: &Publication,
    ) -> impl Future<Output = Result<String, BusError>> + Send;
}
