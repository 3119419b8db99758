//! Gateway events as paybridge records them.
//!
//! A gateway delivers an event at least once; intake records it under a key derived from the
//! gateway's own event id, so every redelivery lands on the same record. The record's status says
//! how far it got, and decides what a redelivery must do.

use serde::{Deserialize, Serialize};

use super::charge::PaymentOutcome;
use super::dispute::DisputeObservation;
use super::gateway::Gateway;
use super::ids::{ChargeId, RefundId};
use super::refund::RefundOutcome;

/// How far a recorded event got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Durable in the table; the work message may not be on the queue yet.
    Received,
    /// The work message is on the queue.
    Queued,
    /// The worker applied it.
    Processed,
    /// A type paybridge does not act on; kept for audit, never queued.
    Ignored,
    /// No charge or refund matched after the last retry.
    Orphaned,
    /// Not applied: its amount or currency contradicts paybridge's record. Counted
    /// (`EventContradicts`) and left for a person (docs/runbook.md).
    Flagged,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Received => "received",
            EventStatus::Queued => "queued",
            EventStatus::Processed => "processed",
            EventStatus::Ignored => "ignored",
            EventStatus::Orphaned => "orphaned",
            EventStatus::Flagged => "flagged",
        }
    }
}

/// A verified event, ready to be recorded. Built by the gateway verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    pub gateway: Gateway,
    /// The gateway's own id of this event (Stripe `evt_…`, Standard `webhook-id`, Adyen
    /// `pspReference:eventCode:success`): the deduplication key.
    pub event_id: String,
    /// The gateway's event type (`payment_intent.succeeded`, `AUTHORISATION`, …).
    pub event_type: String,
    /// The gateway's id of the object the event is about (`pi_…`, a pspReference), if any.
    pub object_ref: Option<String>,
    /// Whether paybridge acts on this type; unsupported events are recorded as ignored.
    pub supported: bool,
    /// The event's JSON, card numbers masked.
    pub payload: String,
}

/// Longest accepted event id or type; anything longer is not a real gateway's.
pub const MAX_EVENT_ID_LEN: usize = 255;

/// A gateway event as stored: the deduplication record for one (gateway, event id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub gateway: Gateway,
    pub event_id: String,
    pub event_type: String,
    pub object_ref: Option<String>,
    pub status: EventStatus,
    /// The event JSON with card numbers masked.
    pub payload: String,
    /// Unix seconds when the first delivery was recorded.
    pub received_at: i64,
    /// Unix seconds until which the delivery that recorded the event owns the job of enqueueing
    /// it. A redelivery that finds the event still `received` after this may take the job over.
    pub enqueue_lease_until: i64,
    /// Unix seconds after which DynamoDB's TTL may delete the record.
    pub expires_at: i64,
}

impl EventRecord {
    /// A new record for a verified event first seen at `now`.
    pub fn new(event: VerifiedEvent, now: i64, lease_secs: i64, retention_secs: i64) -> Self {
        let status = if event.supported {
            EventStatus::Received
        } else {
            EventStatus::Ignored
        };
        EventRecord {
            gateway: event.gateway,
            event_id: event.event_id,
            event_type: event.event_type,
            object_ref: event.object_ref,
            status,
            payload: event.payload,
            received_at: now,
            enqueue_lease_until: if event.supported { now + lease_secs } else { 0 },
            expires_at: now + retention_secs,
        }
    }
}

/// News about a payment, and how to find its charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentUpdate {
    /// The gateway's payment id (`pi_…`, the payment's pspReference).
    pub gateway_ref: Option<String>,
    /// Our charge id, when the gateway echoes it (Stripe metadata, Adyen merchantReference).
    pub charge_id: Option<ChargeId>,
    pub outcome: PaymentOutcome,
    /// Adyen AUTHORISATION: `authorized` means `succeeded` for a charge captured at once.
    pub captured_if_automatic: bool,
    /// The gateway's time of the event (unix milliseconds), for the transitions it orders.
    pub observed_at: Option<i64>,
    /// The amount the event reports for the payment (ISO 4217 minor units), checked against
    /// the charge before anything is applied.
    pub reported: Option<Reported>,
}

/// An amount an event reports, in ISO 4217 minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub amount: i64,
    /// Lowercase ISO 4217 code, as the gateway sent it (lowercased).
    pub currency: String,
}

/// News about a refund, and how to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundUpdate {
    pub gateway_ref: Option<String>,
    pub refund_id: Option<RefundId>,
    pub outcome: RefundOutcome,
    /// The gateway's id of the refunded payment (`pi_…`, the payment's pspReference): finds
    /// the charge of a refund made outside paybridge, which is then adopted.
    pub payment_ref: Option<String>,
    /// The refund's amount, checked against our refund and used to adopt an outside one.
    pub reported: Option<Reported>,
    pub observed_at: Option<i64>,
}

/// News about a dispute of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeUpdate {
    /// The gateway's id of the disputed payment (`pi_…`, a pspReference).
    pub payment_ref: Option<String>,
    /// Our charge id, when the event echoes it (Adyen merchantReference).
    pub charge_id: Option<ChargeId>,
    pub observation: DisputeObservation,
}

/// The gateway's total refunded on a payment (Stripe `charge.refunded`'s `amount_refunded`),
/// checked against paybridge's: the refund events must explain every unit of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundedTotal {
    pub payment_ref: String,
    pub total: Reported,
}

/// One change an event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayUpdate {
    Payment(PaymentUpdate),
    Refund(RefundUpdate),
    Dispute(DisputeUpdate),
    RefundedTotal(RefundedTotal),
}

/// What the worker should do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    /// Apply these changes (one event may report several refunds).
    Apply(Vec<GatewayUpdate>),
    /// Nothing paybridge tracks changes (and why, for the log).
    Ignore(String),
}

impl Interpretation {
    /// Whether the event changes nothing paybridge tracks.
    pub fn is_ignored(&self) -> bool {
        matches!(self, Interpretation::Ignore(_))
    }
}
