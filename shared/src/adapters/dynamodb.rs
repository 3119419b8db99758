//! The single DynamoDB table: generic conditional writes, and the typed record stores on top.
//!
//! [`Table`] offers the few write shapes every use case is built from — put-if-absent, put at an
//! expected version, and all-or-nothing transactions of those — with every lost condition
//! surfacing as [`TableError::ConditionFailed`]. The typed stores ([`Table`] implements
//! [`EventStore`]) convert records at this edge with private wire structs.
//!
//! Keys (see docs/data-model.md): `pk`/`sk` strings; `expires_at` is the TTL attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::{Deserialize, Serialize};

use crate::domain::event::{EventRecord, EventStatus, Gateway};
use crate::error::BoxError;
use crate::ports::{EventStore, Inserted, StoreError};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A write to the table failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A condition did not hold. For a single put, `existing` is the item that made it fail;
    /// for a transaction, `failed` lists the indexes of the writes whose condition failed.
    #[error("condition failed")]
    ConditionFailed {
        existing: Option<Box<Item>>,
        failed: Vec<usize>,
    },
    /// Throttled, down, timed out, or a transaction conflict: retryable.
    #[error("DynamoDB is unavailable")]
    Unavailable(#[source] BoxError),
    /// DynamoDB refused the request (validation) or returned an item we cannot read.
    #[error("DynamoDB refused the request: {0}")]
    Invalid(String),
}

impl From<TableError> for StoreError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::ConditionFailed { .. } => StoreError::Conflict,
            TableError::Unavailable(source) => StoreError::Unavailable(source),
            TableError::Invalid(msg) => StoreError::Invalid(msg),
        }
    }
}

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Sorts an SDK error into the three outcomes callers act on.
fn classify<E, R>(err: SdkError<E, R>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.as_service_error() {
        Some(service) => match service.code() {
            Some("ConditionalCheckFailedException") => TableError::ConditionFailed {
                existing: None,
                failed: vec![],
            },
            Some(code) if RETRYABLE_CODES.contains(&code) => TableError::Unavailable(Box::new(err)),
            code => TableError::Invalid(format!(
                "{}: {}",
                code.unwrap_or("unknown"),
                service.message().unwrap_or("")
            )),
        },
        // Dispatch failures, timeouts, unreadable responses: the service may be fine a moment later.
        None => TableError::Unavailable(Box::new(err)),
    }
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Put an item whose `pk` does not exist yet.
    PutNew(Item),
    /// Replace an item whose `version` attribute is `expected`; the item carries the new version.
    PutAtVersion(Item, u64),
}

/// The table and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Table {
            client,
            name: name.into(),
        }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig, name: impl Into<String>) -> Self {
        Self::new(Client::new(conf), name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Puts `item` only if no item with its key exists; on conflict returns the existing item.
    pub async fn put_new(&self, item: Item) -> Result<(), TableError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                if let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) =
                    err.as_service_error()
                {
                    return Err(TableError::ConditionFailed {
                        existing: e.item().map(|i| Box::new(i.clone())),
                        failed: vec![0],
                    });
                }
                Err(classify(err))
            }
        }
    }

    /// Replaces an item only if its `version` is `expected` (optimistic concurrency).
    /// `item` must carry `version = expected + 1`.
    pub async fn put_at_version(&self, item: Item, expected: u64) -> Result<(), TableError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Applies all `writes` or none of them.
    pub async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let mut items = Vec::with_capacity(writes.len());
        for w in writes {
            let put = match w {
                Write::PutNew(item) => Put::builder()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)"),
                Write::PutAtVersion(item, expected) => Put::builder()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .condition_expression("#v = :expected")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(
                        ":expected",
                        AttributeValue::N(expected.to_string()),
                    ),
            };
            let put = put
                .build()
                .map_err(|e| TableError::Invalid(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
                    err.as_service_error()
                {
                    let failed: Vec<usize> = e
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() {
                        return Err(TableError::ConditionFailed {
                            existing: None,
                            failed,
                        });
                    }
                    return Err(TableError::Unavailable(Box::new(err)));
                }
                Err(classify(err))
            }
        }
    }

    /// Reads one item (strongly consistent).
    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, TableError> {
        self.client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(classify)
    }
}

// ---- gateway events ---------------------------------------------------------------------------

const EVENT_SK: &str = "EVENT";

fn event_pk(gateway: Gateway, event_id: &str) -> String {
    format!("EVENT#{gateway}#{event_id}")
}

/// The stored shape of an [`EventRecord`].
#[derive(Serialize, Deserialize)]
struct EventItem {
    pk: String,
    sk: String,
    gateway: Gateway,
    event_id: String,
    event_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    object_ref: Option<String>,
    status: EventStatus,
    payload: String,
    received_at: i64,
    enqueue_lease_until: i64,
    expires_at: i64,
}

impl From<&EventRecord> for EventItem {
    fn from(r: &EventRecord) -> Self {
        EventItem {
            pk: event_pk(r.gateway, &r.event_id),
            sk: EVENT_SK.to_owned(),
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

fn read_event(item: Item) -> Result<EventRecord, StoreError> {
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
            .key("pk", AttributeValue::S(event_pk(gateway, event_id)))
            .key("sk", AttributeValue::S(EVENT_SK.to_owned()))
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
        self.get(&event_pk(gateway, event_id), EVENT_SK)
            .await?
            .map(read_event)
            .transpose()
    }

    async fn mark_event_queued(&self, gateway: Gateway, event_id: &str) -> Result<(), StoreError> {
        self.event_update(gateway, event_id)
            .update_expression("SET #s = :queued, #l = :zero")
            .condition_expression("#s = :received")
            .expression_attribute_values(
                ":queued",
                AttributeValue::S(EventStatus::Queued.as_str().to_owned()),
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e).into())
    }

    async fn claim_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        seen_lease: i64,
        new_lease: i64,
    ) -> Result<(), StoreError> {
        self.event_update(gateway, event_id)
            .update_expression("SET #l = :new")
            .condition_expression("#s = :received AND #l = :seen")
            .expression_attribute_values(":new", AttributeValue::N(new_lease.to_string()))
            .expression_attribute_values(":seen", AttributeValue::N(seen_lease.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e).into())
    }

    async fn release_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        lease: i64,
    ) -> Result<(), StoreError> {
        self.event_update(gateway, event_id)
            .update_expression("SET #l = :zero")
            .condition_expression("#s = :received AND #l = :lease")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":lease", AttributeValue::N(lease.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e).into())
    }
}
