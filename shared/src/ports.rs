//! The capabilities use cases need, as small traits named by role.
//!
//! Services are generic over these, so a unit test can hand them an in-memory fake while the
//! functions hand them the DynamoDB, SQS and Secrets Manager adapters. Futures are `Send` so
//! handlers can run on the multi-threaded runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::Gateway;
use crate::domain::WorkMessage;
use crate::domain::event::EventRecord;
use crate::domain::idempotency::{IdempotencyRecord, StoredResponse};
use crate::domain::{Charge, Money, PaymentOutcome};
use crate::domain::{ChargeId, Notification, NotificationId};
use crate::domain::{DeliveryStatus, EndpointAttempt, EndpointHealth};
use crate::domain::{Refund, RefundId, RefundOutcome};
use crate::error::Code;
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
            StoreError::Conflict => Error::new(
                Code::ConcurrentUpdate,
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

    /// Takes over the enqueue lease of a `received` record whose lease was `seen_lease`, setting it
    /// to `new_lease`. `Conflict` if another delivery changed it first.
    fn claim_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        seen_lease: i64,
        new_lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves a `received` or `queued` event to a final status (`processed`, `ignored`,
    /// `orphaned`). `Conflict` if it is final already.
    fn finish_event(
        &self,
        gateway: Gateway,
        event_id: &str,
        status: crate::domain::EventStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up a lease early (enqueueing failed), so the next delivery need not wait for it:
    /// claiming the lease we hold for nobody (0, always expired).
    fn release_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        lease: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.claim_enqueue_lease(gateway, event_id, lease, 0)
    }
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

/// What the worker does with a message it received, besides letting SQS delete it.
pub trait ReceivedMessages: Send + Sync {
    /// Makes a received message visible again after `after` (the backoff of a failed attempt;
    /// SQS caps it at 12 hours). The message keeps its receive count.
    fn redeliver_after(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The dead-letter queue, for messages the worker cannot read (so they never loop).
pub trait DeadLetters: Send + Sync {
    /// Puts `body` on the dead-letter queue with `reason` as an attribute.
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
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

// ---- payment gateways -------------------------------------------------------------------------

/// A gateway call failed without a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The outcome is unknown: timeout, connection failure, 5xx, 429. The gateway may or may not
    /// have acted; retry with the **same** idempotency key.
    #[error("the gateway's answer is unknown: {message}")]
    Unknown {
        message: String,
        /// The gateway asked for this wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
        #[source]
        source: Option<BoxError>,
    },
    /// The gateway refused the request itself (invalid parameters, authentication, an object in
    /// the wrong state, an idempotency key reused with other parameters). Retrying changes nothing.
    #[error("the gateway refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl GatewayError {
    pub fn unknown(message: impl Into<String>, source: Option<BoxError>) -> Self {
        GatewayError::Unknown {
            message: message.into(),
            retry_after: None,
            source,
        }
    }
}

impl From<GatewayError> for Error {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Unknown { .. } => Error::bad_gateway(
                "the payment gateway did not answer; retry later",
                Some(Box::new(e)),
            )
            .with_retry_after(5),
            GatewayError::Refused { .. } => {
                Error::bad_gateway("the payment gateway refused the request", Some(Box::new(e)))
            }
        }
    }
}

/// One payment to create at a gateway.
#[derive(Debug, Clone)]
pub struct PaymentRequest<'a> {
    pub charge: &'a Charge,
    /// Sent as the gateway's `Idempotency-Key`; the same on every retry of this payment.
    pub idempotency_key: String,
}

/// A payment gateway's API (Stripe PaymentIntents, Adyen Checkout).
///
/// Declines are not errors: they are outcomes with status `failed` and the gateway's code.
pub trait PaymentGateway: Send + Sync {
    /// Creates and confirms an off-session payment with the charge's stored payment method,
    /// capturing at once when `charge.capture` is set.
    fn create_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> impl Future<Output = Result<PaymentOutcome, GatewayError>> + Send;

    /// Captures `amount` of an authorized payment.
    fn capture(
        &self,
        charge: &Charge,
        amount: Money,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentOutcome, GatewayError>> + Send;

    /// Cancels (voids) an uncaptured payment.
    fn cancel(
        &self,
        charge: &Charge,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentOutcome, GatewayError>> + Send;

    /// What the gateway says the charge's payment is now (the reconciler's look-up). Gateways
    /// without a status API refuse with code `not_supported`.
    fn retrieve(
        &self,
        charge: &Charge,
    ) -> impl Future<Output = Result<PaymentOutcome, GatewayError>> + Send;

    /// Every payment the gateway holds for `charge`, found by paybridge's charge id in its
    /// metadata, not by an idempotency key (Stripe: search PaymentIntents by
    /// `metadata['paybridge_charge_id']`). For a charge whose create answer was lost after the
    /// gateway forgot the key: an empty list is the gateway's word that nothing was created.
    /// Gateways without such a search refuse with code `not_supported`.
    fn find_payments(
        &self,
        charge: &Charge,
    ) -> impl Future<Output = Result<Vec<PaymentOutcome>, GatewayError>> + Send {
        let _ = charge;
        async { Err(not_supported("this gateway cannot search its payments")) }
    }
}

/// A refusal made here, without a request: the gateway has no API for what was asked.
pub fn not_supported(message: &str) -> GatewayError {
    GatewayError::Refused {
        status: 0,
        code: "not_supported".into(),
        message: message.into(),
    }
}

// ---- idempotency ------------------------------------------------------------------------------

/// What inserting an idempotency record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    New,
    Existing(IdempotencyRecord),
}

/// Idempotency records of billing-facing writes.
pub trait IdempotencyStore: Send + Sync {
    /// Writes `record` (status in_progress) unless one exists for its (operation, key).
    fn claim(
        &self,
        record: &IdempotencyRecord,
    ) -> impl Future<Output = Result<Claimed, StoreError>> + Send;

    /// Takes over an abandoned in-progress record whose lease was `seen_until`. `Conflict` if
    /// another request took it first.
    fn resume(
        &self,
        operation: &str,
        key: &str,
        seen_until: i64,
        owner: &str,
        until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the response and marks the record completed. `Conflict` if `owner` no longer holds it.
    fn complete(
        &self,
        operation: &str,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends `owner`'s lease at once (the request failed in a way the caller should retry), keeping
    /// the record — and its resource id — for the retry to resume.
    fn release(
        &self,
        operation: &str,
        key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

// ---- charges ----------------------------------------------------------------------------------

mod charges;
pub use charges::{ChargeInserted, ChargeStore, InvoiceCharges};

// ---- refunds ----------------------------------------------------------------------------------

/// What reserving a refund's amount found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// The amount is reserved on the charge and the refund is stored (pending).
    Done,
    /// The charge is not refundable for that amount (any more): re-read it to say why.
    Refused,
    /// A refund with this id exists already (a crashed attempt stored it).
    Exists,
}

/// Refund records, and the charge amounts they move.
pub trait RefundStore: Send + Sync {
    /// In one transaction: reserves `refund.amount` on its charge if the charge is captured and at
    /// least that much is still refundable, and stores the refund (pending) with its lookup pointer.
    fn reserve_refund(
        &self,
        refund: &Refund,
    ) -> impl Future<Output = Result<Reserved, StoreError>> + Send;

    /// Stores a refund made outside paybridge (adopted from the gateway's event) with its charge
    /// at the next version, the gateway reference → refund pointer — which must not exist yet, so
    /// two events about one outside refund adopt it once — and the notifications, all or nothing.
    /// `Conflict` if the pointer exists or the charge moved.
    fn adopt_refund(
        &self,
        refund: &Refund,
        charge: &Charge,
        notifications: &[Notification],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_refund(
        &self,
        id: &RefundId,
    ) -> impl Future<Output = Result<Option<Refund>, StoreError>> + Send;

    /// The refunds of a charge, oldest first.
    fn refunds_for_charge(
        &self,
        charge: &ChargeId,
    ) -> impl Future<Output = Result<Vec<Refund>, StoreError>> + Send;

    /// Writes a refund (and, if given, its charge) whose versions the caller bumped by one, with
    /// the `notifications` the change causes, all or nothing. `Conflict` if either changed first.
    fn save_refund(
        &self,
        refund: &Refund,
        charge: Option<&Charge>,
        notifications: &[Notification],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What the charge use cases write through: charges and their idempotency records.
pub trait BillingStore: ChargeStore + IdempotencyStore {}
impl<T: ChargeStore + IdempotencyStore> BillingStore for T {}

/// What the refund use cases write through: charges, refunds and idempotency records.
pub trait RefundingStore: ChargeStore + RefundStore + IdempotencyStore {}
impl<T: ChargeStore + RefundStore + IdempotencyStore> RefundingStore for T {}

/// Refunds at a payment gateway.
pub trait RefundGateway: Send + Sync {
    /// Refunds `refund.amount` of the charge's payment, with the refund's own idempotency key.
    fn refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> impl Future<Output = Result<RefundOutcome, GatewayError>> + Send;

    /// What the gateway says the refund is now (`not_supported` where there is no status API).
    fn retrieve_refund(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> impl Future<Output = Result<RefundOutcome, GatewayError>> + Send;

    /// Every refund of the charge's payment that carries `refund`'s id in its metadata (Stripe:
    /// list the PaymentIntent's refunds), for a refund whose answer was lost after the gateway
    /// forgot the key. Empty: nothing was refunded under it. `not_supported` where there is no
    /// such list.
    fn find_refunds(
        &self,
        charge: &Charge,
        refund: &Refund,
    ) -> impl Future<Output = Result<Vec<RefundOutcome>, GatewayError>> + Send {
        let _ = (charge, refund);
        async {
            Err(not_supported(
                "this gateway cannot list a payment's refunds",
            ))
        }
    }
}

// ---- notifications ----------------------------------------------------------------------------

/// The outbox of billing notifications and their delivery log.
pub trait NotificationStore: Send + Sync {
    fn get_notification(
        &self,
        id: &NotificationId,
    ) -> impl Future<Output = Result<Option<Notification>, StoreError>> + Send;

    /// Records a delivery attempt: writes `notification` (version bumped by the caller).
    fn save_notification(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The notifications of a charge and its refunds, oldest first (the delivery log).
    fn notifications_for_charge(
        &self,
        charge: &ChargeId,
    ) -> impl Future<Output = Result<Vec<Notification>, StoreError>> + Send;

    /// Pending notifications whose next attempt was due before `before` (unix seconds), earliest
    /// due first, at most `limit` (the outbox sweep's reading). A notification never attempted is
    /// due from its creation.
    fn pending_notifications(
        &self,
        before: i64,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<Notification>, StoreError>> + Send;

    /// Notifications of `status` (one billing does not have: pending, failed, exhausted), across
    /// all charges, by creation time from `from`, oldest first, at most `limit`. Page on with
    /// [`CreatedFrom::After`] the last one.
    fn undelivered_notifications(
        &self,
        status: DeliveryStatus,
        from: CreatedFrom<'_>,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<Notification>, StoreError>> + Send;

    /// Records what one attempt said about billing's endpoint, atomically (concurrent attempts
    /// never lose each other's count), and returns the endpoint's health after it. An answer
    /// older than the latest recorded success does not count a failure.
    fn record_endpoint_attempt(
        &self,
        attempt: EndpointAttempt,
        now: i64,
    ) -> impl Future<Output = Result<EndpointHealth, StoreError>> + Send;

    /// The endpoint's health; `None` before the first attempt.
    fn endpoint_health(
        &self,
    ) -> impl Future<Output = Result<Option<EndpointHealth>, StoreError>> + Send;
}

/// Where a listing of notifications by creation time starts.
#[derive(Debug, Clone, Copy)]
pub enum CreatedFrom<'a> {
    /// Created at or after this unix second.
    Since(i64),
    /// Created after this notification (the last of the previous page).
    After(&'a Notification),
}

/// What billing's endpoint made of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// 2xx.
    Delivered { status: u16 },
    /// Billing refuses this notification for good: 410 Gone, or any 4xx/5xx carrying
    /// `Paybridge-Retry: never`. Retrying will not help.
    Rejected { status: u16, body: String },
    /// Any other 4xx or 5xx, a timeout, a connection failure or a redirect: try again on the
    /// schedule (not before `retry_after` if billing asked for it).
    RetryLater {
        status: Option<u16>,
        retry_after: Option<Duration>,
        error: String,
    },
}

/// Billing's notification endpoint.
pub trait Notifier: Send + Sync {
    /// POSTs the notification's body, signed per Standard Webhooks with `webhook-id` = the
    /// notification id and `webhook-timestamp` = `timestamp` (unix seconds).
    fn send(
        &self,
        notification: &Notification,
        timestamp: i64,
    ) -> impl Future<Output = NotifyOutcome> + Send;
}

/// No endpoint (billing's HTTP endpoint is not a target and has no configuration): a notification
/// that still asks for HTTP delivery — written before the targets changed — is tried again on the
/// schedule, with the reason in its delivery log, until the endpoint is configured or it is
/// exhausted.
impl<T: Notifier> Notifier for Option<T> {
    async fn send(&self, notification: &Notification, timestamp: i64) -> NotifyOutcome {
        match self {
            Some(n) => n.send(notification, timestamp).await,
            None => NotifyOutcome::RetryLater {
                status: None,
                retry_after: None,
                error: "billing's HTTP endpoint is not configured (the secret has no `billing` \
                        section and NotificationTargets does not include http)"
                    .into(),
            },
        }
    }
}

// ---- the notification bus ----------------------------------------------------------------------

mod bus;
pub use bus::{BusError, EventBus, PublicationStore};

// ---- gateway references -----------------------------------------------------------------------

/// What a gateway's object id points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayObject {
    Charge(ChargeId),
    Refund(RefundId),
}

/// The `GWREF` pointers written with charges and refunds.
pub trait GatewayRefLookup: Send + Sync {
    fn find_gateway_ref(
        &self,
        gateway: Gateway,
        reference: &str,
    ) -> impl Future<Output = Result<Option<GatewayObject>, StoreError>> + Send;
}

// ---- reconciliation ---------------------------------------------------------------------------

mod reconcile;
pub use reconcile::{Page, Parked, ReconcileItem, ReconcileStore, ResumePoint};

/// A gateway's list of events it could not deliver (Stripe's `/v1/events?delivery_success=false`).
pub trait UndeliveredEvents: Send + Sync {
    /// The raw JSON of events created at or after `since` (unix seconds) that the gateway failed
    /// to deliver, at most `limit`.
    fn undelivered_events(
        &self,
        since: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, GatewayError>> + Send;
}
