//! Building billing notifications for state changes, and queueing their delivery.
//!
//! A use case that changes a charge or refund asks this module for the notifications, writes them
//! in the same transaction as the change (the outbox), and after the commit calls [`enqueue`] so
//! the worker delivers them. If that enqueue fails, the notification is still `pending` in the
//! outbox, and [`crate::services::deliver::sweep_outbox`] queues it again.
//!
//! Each notification goes to the targets configured for the process
//! ([`crate::config::notify_targets`]): billing's HTTP endpoint, the EventBridge bus, or both —
//! one outbox record per target, each with its own message.

use serde_json::json;

use crate::domain::{
    Charge, DeliveryStatus, Dispute, Notification, NotificationId, Refund, Series, WorkMessage,
};
use crate::ports::WorkQueue;
use crate::services::views;

/// `{object}.{status}` about `object_id` (of `charge`), with the object's view as `data`.
fn notification(
    charge: &Charge,
    (object, status): (&str, &str),
    object_id: &str,
    data: serde_json::Value,
    now: i64,
) -> Notification {
    let (event_type, object_id) = (format!("{object}.{status}"), object_id.to_owned());
    let id = NotificationId::generate();
    let body = json!({
        "id": id,
        "type": event_type,
        "created_at": views::rfc3339(now),
        "data": data,
    });
    Notification {
        id,
        charge_id: charge.id.clone(),
        event_type,
        object_id,
        body: body.to_string(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        series: Series::first(now),
        last_status: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
        version: 1,
        targets: crate::config::notify_targets(),
    }
}

/// `charge.<status>` with the charge as it is now.
pub fn for_charge(charge: &Charge, now: i64) -> Notification {
    let (kind, data) = (("charge", charge.status.as_str()), views::charge(charge));
    notification(charge, kind, charge.id.as_str(), data, now)
}

/// The charge's notification for a change from `before` to `charge`, if billing must hear of it:
/// `charge.<status>` when the status moved, `charge.updated` when only money it reports moved
/// (captured, refunded, disputed — a second partial refund, funds a dispute withdrew), none for a
/// change billing does not see (a reservation, the gateway's time of an event).
pub fn for_charge_change(before: &Charge, charge: &Charge, now: i64) -> Option<Notification> {
    let money = |c: &Charge| (c.captured, c.refunded, c.disputed());
    if charge.status != before.status {
        Some(for_charge(charge, now))
    } else if money(charge) != money(before) {
        let (kind, data) = (("charge", "updated"), views::charge(charge));
        Some(notification(charge, kind, charge.id.as_str(), data, now))
    } else {
        None
    }
}

/// `kind` (`dispute.opened|updated|won|lost`) with the dispute as it is now.
pub fn for_dispute(charge: &Charge, dispute: &Dispute, kind: &str, now: i64) -> Notification {
    let (object, status) = kind.split_once('.').unwrap_or(("dispute", "updated"));
    let data = views::dispute(charge, dispute);
    notification(charge, (object, status), dispute.id.as_str(), data, now)
}

/// `refund.<status>` with the refund as it is now.
pub fn for_refund(charge: &Charge, refund: &Refund, now: i64) -> Notification {
    let (kind, data) = (("refund", refund.status.as_str()), views::refund(refund));
    notification(charge, kind, refund.id.as_str(), data, now)
}

/// Queues the first delivery attempt of committed notifications, one message per target. A
/// failure here is logged, not returned: the notifications are durable in the outbox and the
/// sweep queues them again.
pub async fn enqueue(queue: &impl WorkQueue, notifications: &[Notification]) {
    for n in notifications {
        let http =
            (n.targets.http).then(|| WorkMessage::deliver_notification(&n.id, n.series.number, 1));
        let bus =
            (n.targets.event_bus).then(|| WorkMessage::publish_notification(&n.charge_id, &n.id));
        for message in http.into_iter().chain(bus) {
            if let Err(e) = queue.send(&message, std::time::Duration::ZERO).await {
                tracing::warn!(notification_id = %n.id, work = %message.dedup_key(), error = %e, "could not queue a notification; the outbox sweep will");
            }
        }
    }
}
