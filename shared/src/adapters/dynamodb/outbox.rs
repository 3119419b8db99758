//! Billing notifications as stored: beside their charge (`CHARGE#{charge_id}` /
//! `NOTIFICATION#{id}`, so a charge's log is one query), a pointer for lookup by id, and while
//! pending the sparse GSI1 key of the outbox that the sweep reads (keys in [`super::keys`]).
//! [`writes`] puts new notifications into the transaction of the state change they report.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Item, Write, keys, pointer_item};
use crate::domain::{ChargeId, DeliveryStatus, Notification, NotificationId};
use crate::ports::StoreError;

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct NotificationItem {
    pk: String,
    sk: String,
    gsi1pk: Option<String>,
    gsi1sk: Option<String>,
    id: String,
    charge_id: String,
    event_type: String,
    object_id: String,
    body: String,
    status: DeliveryStatus,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
    version: u64,
}

pub(super) fn to_item(n: &Notification) -> Result<Item, StoreError> {
    let pending = n.status == DeliveryStatus::Pending;
    let (pk, sk) = keys::notification(&n.charge_id, &n.id);
    let item = NotificationItem {
        pk,
        sk,
        gsi1pk: pending.then(|| keys::OUTBOX_PENDING.to_owned()),
        gsi1sk: pending.then(|| keys::time_ordered(n.created_at, n.id.as_str())),
        id: n.id.to_string(),
        charge_id: n.charge_id.to_string(),
        event_type: n.event_type.clone(),
        object_id: n.object_id.clone(),
        body: n.body.clone(),
        status: n.status,
        attempts: n.attempts,
        last_status: n.last_status,
        last_error: n.last_error.clone(),
        created_at: n.created_at,
        delivered_at: n.delivered_at,
        version: n.version,
    };
    serde_dynamo::to_item(item)
        .map_err(|e| StoreError::Invalid(format!("notification not serialisable: {e}")))
}

pub(super) fn from_item(item: Item) -> Result<Notification, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("unreadable notification: {what}"));
    let i: NotificationItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
    Ok(Notification {
        id: NotificationId::parse(&i.id).map_err(|e| bad(e.to_string()))?,
        charge_id: ChargeId::parse(&i.charge_id).map_err(|e| bad(e.to_string()))?,
        event_type: i.event_type,
        object_id: i.object_id,
        body: i.body,
        status: i.status,
        attempts: i.attempts,
        last_status: i.last_status,
        last_error: i.last_error,
        created_at: i.created_at,
        delivered_at: i.delivered_at,
        version: i.version,
    })
}

/// The writes that put new notifications into the outbox (for a state change's transaction).
pub(super) fn writes(notifications: &[Notification]) -> Result<Vec<Write>, StoreError> {
    let mut writes = Vec::with_capacity(notifications.len() * 2);
    for n in notifications {
        writes.push(Write::PutNew(to_item(n)?));
        writes.push(Write::PutNew(pointer_item(
            keys::notification_pointer(&n.id),
            &[("charge_id", n.charge_id.as_str())],
        )));
    }
    Ok(writes)
}
