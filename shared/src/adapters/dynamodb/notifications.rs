//! Billing notifications (the outbox and delivery log): `CHARGE#{charge_id}` /
//! `NOTIFICATION#{id}` beside their charge, so a charge's log is one query; a pointer
//! `NOTIFICATION#{id}` / `NOTIFICATION` → charge id for lookup by id; and, while pending, the
//! sparse GSI1 key `OUTBOX#pending` / `{created_at}#{id}` that the outbox sweep reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{Item, Table, Write, charges, classify};
use crate::domain::{ChargeId, DeliveryStatus, Notification, NotificationId};
use crate::ports::{NotificationStore, StoreError};

const OUTBOX_PENDING: &str = "OUTBOX#pending";

fn sk(id: &NotificationId) -> String {
    format!("NOTIFICATION#{id}")
}

fn lookup_pk(id: &NotificationId) -> String {
    format!("NOTIFICATION#{id}")
}

#[derive(Serialize, Deserialize)]
struct NotificationItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    id: String,
    charge_id: String,
    event_type: String,
    object_id: String,
    body: String,
    status: DeliveryStatus,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivered_at: Option<i64>,
    version: u64,
}

fn to_item(n: &Notification) -> Result<Item, StoreError> {
    let pending = n.status == DeliveryStatus::Pending;
    let item = NotificationItem {
        pk: charges::pk(&n.charge_id),
        sk: sk(&n.id),
        gsi1pk: pending.then(|| OUTBOX_PENDING.to_owned()),
        gsi1sk: pending.then(|| format!("{:020}#{}", n.created_at, n.id)),
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

fn from_item(item: Item) -> Result<Notification, StoreError> {
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
pub(super) fn outbox_writes(notifications: &[Notification]) -> Result<Vec<Write>, StoreError> {
    let mut writes = Vec::with_capacity(notifications.len() * 2);
    for n in notifications {
        writes.push(Write::PutNew(to_item(n)?));
        writes.push(Write::PutNew(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(lookup_pk(&n.id))),
            (
                "sk".to_owned(),
                AttributeValue::S("NOTIFICATION".to_owned()),
            ),
            (
                "charge_id".to_owned(),
                AttributeValue::S(n.charge_id.to_string()),
            ),
        ])));
    }
    Ok(writes)
}

impl NotificationStore for Table {
    async fn get_notification(
        &self,
        id: &NotificationId,
    ) -> Result<Option<Notification>, StoreError> {
        let Some(lookup) = self.get(&lookup_pk(id), "NOTIFICATION").await? else {
            return Ok(None);
        };
        let charge_id = lookup
            .get("charge_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|c| ChargeId::parse(c).ok())
            .ok_or_else(|| {
                StoreError::Invalid("notification pointer without a charge id".into())
            })?;
        self.get(&charges::pk(&charge_id), &sk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_notification(&self, n: &Notification) -> Result<(), StoreError> {
        let expected = n
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("version 0 cannot be saved".into()))?;
        self.put_at_version(to_item(n)?, expected)
            .await
            .map_err(StoreError::from)
    }

    async fn notifications_for_charge(
        &self,
        charge: &ChargeId,
    ) -> Result<Vec<Notification>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(charges::pk(charge)))
            .expression_attribute_values(":prefix", AttributeValue::S("NOTIFICATION#".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::from(classify(e)))?;
        let mut list = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    async fn pending_notifications(
        &self,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .index_name("GSI1")
            .key_condition_expression("gsi1pk = :pk AND gsi1sk < :before")
            .expression_attribute_values(":pk", AttributeValue::S(OUTBOX_PENDING.into()))
            .expression_attribute_values(":before", AttributeValue::S(format!("{before:020}")))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::from(classify(e)))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }
}
