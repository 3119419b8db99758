//! The capabilities use cases need, as small traits named by role.
//!
//! Services are generic over these, so a unit test can hand them an in-memory fake while the
//! functions hand them the DynamoDB, SQS and Secrets Manager adapters. Futures are `Send` so
//! handlers can run on the multi-threaded runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::WorkMessage;
use crate::domain::event::{EventRecord, Gateway};
use crate::error::{BoxError, Error};
use crate::secrets::Secrets;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold: the record exists, or someone else changed it first.
    #[error("a conditional write lost: the record exists or was changed concurrently")]
    Conflict,
    /// The store is down, throttling, or did not answer in time. Retryable.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// The store refused the request or returned data we cannot read. Our bug; not retryable.
    #[error("the store refused the request or returned unreadable data: {0}")]
    Invalid(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Error::conflict(
                "concurrent_update",
                "the record was changed concurrently; retry",
            )
            .with_retry_after(1),
            StoreError::Unavailable(source) => Error::unavailable("dynamodb", source),
            StoreError::Invalid(msg) => Error::internal("store error", Some(msg.into())),
        }
    }
}

/// What inserting an event record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The record is new.
    New,
    /// A record for this (gateway, event id) already exists; here it is.
    Existing(EventRecord),
}

/// Gateway event records.
pub trait EventStore: Send + Sync {
    /// Writes `record` unless one exists for its (gateway, event id), in one conditional write.
    fn insert_event(
        &self,
        record: &EventRecord,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    fn get_event(
        &self,
        gateway: Gateway,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<EventRecord>, StoreError>> + Send;

    /// `received` → `queued`. `Conflict` if the record is no longer `received`.
    fn mark_event_queued(
        &self,
        gateway: Gateway,
        event_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes over the enqueue lease of a `received` record whose lease was `seen_lease`, setting it
    /// to `new_lease`. `Conflict` if another delivery changed it first.
    fn claim_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        seen_lease: i64,
        new_lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up a lease early (enqueueing failed), so the next delivery need not wait for it.
    fn release_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Sending to the queue failed. Always retryable.
#[derive(Debug, thiserror::Error)]
#[error("the work queue is unavailable")]
pub struct QueueError(#[source] pub BoxError);

impl From<QueueError> for Error {
    fn from(e: QueueError) -> Self {
        Error::unavailable("sqs", e.0)
    }
}

/// The SQS work queue.
pub trait WorkQueue: Send + Sync {
    /// Puts `message` on the queue, visible after `delay` (at most 15 minutes).
    fn send(
        &self,
        message: &WorkMessage,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Loading the secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret could not be fetched")]
    Unavailable(#[source] BoxError),
    #[error("{0}")]
    Invalid(String),
}

impl From<SecretError> for Error {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Unavailable(source) => Error::unavailable("secretsmanager", source),
            SecretError::Invalid(msg) => {
                Error::internal("the secret is misconfigured", Some(msg.into()))
            }
        }
    }
}

/// The one JSON secret, loaded once and cached.
pub trait SecretSource: Send + Sync {
    fn secrets(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
}
