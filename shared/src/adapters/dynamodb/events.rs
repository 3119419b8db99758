//! Gateway event records (keys in [`super::keys`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Item, Table, TableError, key_attributes, keys, update};
use crate::domain::Gateway;
use crate::domain::event::{EventRecord, EventStatus};
use crate::ports::{EventStore, Inserted, StoreError};

/// The stored shape of an [`EventRecord`].
#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct EventItem {
    pk: String,
    sk: String,
    /// GSI2 (sparse): set until the event is processed, ignored or orphaned.
    gsi2pk: Option<String>,
    gsi2sk: Option<String>,
    gateway: Gateway,
    event_id: String,
    event_type: String,
    object_ref: Option<String>,
    status: EventStatus,
    payload: String,
    received_at: i64,
    enqueue_lease_until: i64,
    expires_at: i64,
}

fn open(status: EventStatus) -> bool {
    matches!(status, EventStatus::Received | EventStatus::Queued)
}

impl From<&EventRecord> for EventItem {
    fn from(r: &EventRecord) -> Self {
        let (pk, sk) = keys::event(r.gateway, &r.event_id);
        EventItem {
            pk,
            sk,
            gsi2pk: open(r.status).then(|| keys::sharded(keys::OPEN_EVENTS, &r.event_id)),
            gsi2sk: open(r.status)
                .then(|| keys::open_event_gsi2sk(r.received_at, r.gateway, &r.event_id)),
            gateway: r.gateway,
            event_id: r.event_id.clone(),
            event_type: r.event_type.clone(),
            object_ref: r.object_ref.clone(),
            status: r.status,
            payload: r.payload.clone(),
            received_at: r.received_at,
            enqueue_lease_until: r.enqueue_lease_until,
            expires_at: r.expires_at,
        }
    }
}

impl From<EventItem> for EventRecord {
    fn from(i: EventItem) -> Self {
        EventRecord {
            gateway: i.gateway,
            event_id: i.event_id,
            event_type: i.event_type,
            object_ref: i.object_ref,
            status: i.status,
            payload: i.payload,
            received_at: i.received_at,
            enqueue_lease_until: i.enqueue_lease_until,
            expires_at: i.expires_at,
        }
    }
}

pub(super) fn read_event(item: Item) -> Result<EventRecord, StoreError> {
    serde_dynamo::from_item::<_, EventItem>(item)
        .map(EventRecord::from)
        .map_err(|e| StoreError::Invalid(format!("unreadable event record: {e}")))
}

impl Table {
    fn event_update(
        &self,
        gateway: Gateway,
        event_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(keys::event(gateway, event_id))))
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#l", "enqueue_lease_until")
            .expression_attribute_values(
                ":received",
                AttributeValue::S(EventStatus::Received.as_str().to_owned()),
            )
    }
}

impl EventStore for Table {
    async fn insert_event(&self, record: &EventRecord) -> Result<Inserted, StoreError> {
        let item = serde_dynamo::to_item(EventItem::from(record))
            .map_err(|e| StoreError::Invalid(format!("event record not serialisable: {e}")))?;
        match self.put_new(item).await {
            Ok(()) => Ok(Inserted::New),
            Err(TableError::ConditionFailed {
                existing: Some(item),
                ..
            }) => Ok(Inserted::Existing(read_event(*item)?)),
            // Some DynamoDB-compatible stores do not return the old item: read it.
            Err(TableError::ConditionFailed { existing: None, .. }) => self
                .get_event(record.gateway, &record.event_id)
                .await?
                .map(Inserted::Existing)
                .ok_or(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_event(
        &self,
        gateway: Gateway,
        event_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.get_at(keys::event(gateway, event_id))
            .await?
            .map(read_event)
            .transpose()
    }

    async fn claim_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        seen_lease: i64,
        new_lease: i64,
    ) -> Result<(), StoreError> {
        update(
            self.event_update(gateway, event_id)
                .update_expression("SET #l = :new")
                .condition_expression("#s = :received AND #l = :seen")
                .expression_attribute_values(":new", AttributeValue::N(new_lease.to_string()))
                .expression_attribute_values(":seen", AttributeValue::N(seen_lease.to_string())),
        )
        .await
    }

    async fn finish_event(
        &self,
        gateway: Gateway,
        event_id: &str,
        status: EventStatus,
    ) -> Result<(), StoreError> {
        update(
            self.event_update(gateway, event_id)
                .update_expression("SET #s = :final, #l = :zero REMOVE gsi2pk, gsi2sk")
                .condition_expression("#s IN (:received, :queued)")
                .expression_attribute_values(
                    ":final",
                    AttributeValue::S(status.as_str().to_owned()),
                )
                .expression_attribute_values(
                    ":queued",
                    AttributeValue::S(EventStatus::Queued.as_str().to_owned()),
                )
                .expression_attribute_values(":zero", AttributeValue::N("0".into())),
        )
        .await
    }
}
