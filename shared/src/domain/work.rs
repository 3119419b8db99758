//! Messages on the work queue: typed and versioned.
//!
//! Every message carries `"v"`; a worker that meets a version it does not know sends the message
//! to the dead-letter queue instead of guessing.

use serde::{Deserialize, Serialize};

use super::gateway::Gateway;
use super::ids::{ChargeId, NotificationId, RefundId};

/// The message version this build writes.
pub const WORK_MESSAGE_VERSION: u32 = 1;

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
    /// Deliver a billing notification (the outbox record says what and where it got to).
    DeliverNotification {
        v: u32,
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

    pub fn deliver_notification(id: &NotificationId) -> Self {
        WorkMessage::DeliverNotification {
            v: WORK_MESSAGE_VERSION,
            notification_id: id.clone(),
        }
    }

    /// The version the message was written with.
    pub fn version(&self) -> u32 {
        match self {
            WorkMessage::ApplyEvent { v, .. }
            | WorkMessage::RetryCharge { v, .. }
            | WorkMessage::RetryRefund { v, .. }
            | WorkMessage::DeliverNotification { v, .. } => *v,
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
            serde_json::json!({"kind":"apply_event","v":1,"gateway":"stripe","event_id":"evt_1"})
        );
        assert_eq!(serde_json::from_value::<WorkMessage>(json).unwrap(), m);
    }
}
