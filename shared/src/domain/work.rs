//! Messages on the work queue: typed and versioned.
//!
//! Every message carries `"v"`; a worker that meets a version it does not know sends the message
//! to the dead-letter queue instead of guessing. A worker reads every version from
//! [`OLDEST_READABLE_VERSION`] to [`WORK_MESSAGE_VERSION`], so messages written by the previous
//! release and still on the queue at a deploy are handled, not dead-lettered.
//!
//! Versions:
//! - 1: the first.
//! - 2: `deliver_notification` names the delivery series and the attempt in it that the message
//!   makes (`series`, `attempt`), so attempts no longer ride on SQS's receive count. A version-1
//!   `deliver_notification` (neither field) asks for "the next attempt, if it is due". The other
//!   kinds are unchanged. `publish_notification` (a kind added in version 2: a release without
//!   it dead-letters it as unreadable; `make redrive` after the deploy) puts a notification on
//!   the EventBridge bus.

use serde::{Deserialize, Serialize};

use super::gateway::Gateway;
use super::ids::{ChargeId, NotificationId, RefundId};

/// The message version this build writes.
pub const WORK_MESSAGE_VERSION: u32 = 2;

/// The oldest message version this build still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// One unit of work for the retry worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkMessage {
    /// Apply a recorded gateway event to its charge or refund.
    ApplyEvent {
        v: u32,
        gateway: Gateway,
        event_id: String,
    },
    /// Finish a charge whose gateway answer was lost: call again with the same idempotency key.
    RetryCharge {
        v: u32,
        charge_id: ChargeId,
        attempt: u32,
    },
    /// Finish a refund whose gateway answer was lost: call again with the same idempotency key.
    RetryRefund {
        v: u32,
        refund_id: RefundId,
        attempt: u32,
    },
    /// Make attempt `attempt` of delivery series `series` of a billing notification (the
    /// outbox record says what, and whether that attempt is still to be made and due). Both are
    /// absent in version-1 messages.
    DeliverNotification {
        v: u32,
        notification_id: NotificationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        series: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// Put a notification on the EventBridge bus (its publication record, beside the charge,
    /// says whether that is still to do).
    PublishNotification {
        v: u32,
        charge_id: ChargeId,
        notification_id: NotificationId,
    },
}

impl WorkMessage {
    pub fn apply_event(gateway: Gateway, event_id: &str) -> Self {
        WorkMessage::ApplyEvent {
            v: WORK_MESSAGE_VERSION,
            gateway,
            event_id: event_id.to_owned(),
        }
    }

    pub fn retry_charge(charge_id: &ChargeId, attempt: u32) -> Self {
        WorkMessage::RetryCharge {
            v: WORK_MESSAGE_VERSION,
            charge_id: charge_id.clone(),
            attempt,
        }
    }

    pub fn retry_refund(refund_id: &RefundId, attempt: u32) -> Self {
        WorkMessage::RetryRefund {
            v: WORK_MESSAGE_VERSION,
            refund_id: refund_id.clone(),
            attempt,
        }
    }

    /// Attempt `attempt` (1-based) of series `series` of notification `id`.
    pub fn deliver_notification(id: &NotificationId, series: u32, attempt: u32) -> Self {
        WorkMessage::DeliverNotification {
            v: WORK_MESSAGE_VERSION,
            notification_id: id.clone(),
            series: Some(series),
            attempt: Some(attempt),
        }
    }

    /// Publish notification `id` (of charge `charge_id`) on the event bus.
    pub fn publish_notification(charge_id: &ChargeId, id: &NotificationId) -> Self {
        WorkMessage::PublishNotification {
            v: WORK_MESSAGE_VERSION,
            charge_id: charge_id.clone(),
            notification_id: id.clone(),
        }
    }

    /// Whether this build reads messages of version `v`.
    pub fn readable_version(v: u32) -> bool {
        (OLDEST_READABLE_VERSION..=WORK_MESSAGE_VERSION).contains(&v)
    }

    /// The version the message was written with.
    pub fn version(&self) -> u32 {
        match self {
            WorkMessage::ApplyEvent { v, .. }
            | WorkMessage::RetryCharge { v, .. }
            | WorkMessage::RetryRefund { v, .. }
            | WorkMessage::DeliverNotification { v, .. }
            | WorkMessage::PublishNotification { v, .. } => *v,
        }
    }

    /// A key that is the same for every copy of the same work (SQS message attribute, logs).
    pub fn dedup_key(&self) -> String {
        match self {
            WorkMessage::ApplyEvent {
                gateway, event_id, ..
            } => format!("event:{gateway}:{event_id}"),
            WorkMessage::RetryCharge { charge_id, .. } => format!("retry_charge:{charge_id}"),
            WorkMessage::RetryRefund { refund_id, .. } => format!("retry_refund:{refund_id}"),
            WorkMessage::DeliverNotification {
                notification_id, ..
            } => format!("notify:{notification_id}"),
            WorkMessage::PublishNotification {
                notification_id, ..
            } => format!("publish:{notification_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_kind_and_version() {
        let m = WorkMessage::apply_event(Gateway::Stripe, "evt_1");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"apply_event","v":2,"gateway":"stripe","event_id":"evt_1"})
        );
        assert_eq!(serde_json::from_value::<WorkMessage>(json).unwrap(), m);
    }

    #[test]
    fn a_delivery_names_its_series_and_attempt() {
        let id = NotificationId::generate();
        let m = WorkMessage::deliver_notification(&id, 2, 5);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"deliver_notification","v":2,"notification_id":id,"series":2,"attempt":5})
        );
        assert_eq!(serde_json::from_value::<WorkMessage>(json).unwrap(), m);
        assert_eq!(m.dedup_key(), format!("notify:{id}"));
    }

    #[test]
    fn a_publication_names_its_charge_and_notification() {
        let (charge, id) = (ChargeId::generate(), NotificationId::generate());
        let m = WorkMessage::publish_notification(&charge, &id);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"publish_notification","v":2,"charge_id":charge,"notification_id":id})
        );
        assert_eq!(serde_json::from_value::<WorkMessage>(json).unwrap(), m);
        assert_eq!(m.dedup_key(), format!("publish:{id}"));
    }

    #[test]
    fn version_1_messages_still_on_the_queue_at_a_deploy_are_read() {
        let id = NotificationId::generate();
        let old = format!(r#"{{"kind":"deliver_notification","v":1,"notification_id":"{id}"}}"#);
        let m: WorkMessage = serde_json::from_str(&old).unwrap();
        assert_eq!(
            m,
            WorkMessage::DeliverNotification {
                v: 1,
                notification_id: id,
                series: None,
                attempt: None
            }
        );
        assert!(WorkMessage::readable_version(m.version()));
        let event = r#"{"kind":"apply_event","v":1,"gateway":"adyen","event_id":"e"}"#;
        let m: WorkMessage = serde_json::from_str(event).unwrap();
        assert!(WorkMessage::readable_version(m.version()));
        assert!(!WorkMessage::readable_version(0));
        assert!(!WorkMessage::readable_version(WORK_MESSAGE_VERSION + 1));
    }
}
