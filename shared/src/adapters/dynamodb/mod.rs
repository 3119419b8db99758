//! The single DynamoDB table: generic conditional writes, and the typed record stores on top.
//!
//! [`Table`] offers the few write shapes every use case is built from — put-if-absent, put at an
//! expected version, and all-or-nothing transactions of those — with every lost condition
//! surfacing as [`TableError::ConditionFailed`]. The typed stores ([`Table`] implements
//! [`EventStore`](crate::ports::EventStore)) convert records at this edge with private wire structs.
//!
//! Keys (see docs/data-model.md): `pk`/`sk` strings; `expires_at` is the TTL attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use crate::error::BoxError;
use crate::ports::StoreError;

pub mod charges;
mod endpoint_health;
pub(crate) mod events;
mod gateway_refs;
mod idempotency;
pub mod keys;
mod notifications;
mod outbox;
mod publications;
mod reconcile;
pub(crate) mod refunds;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The `pk`/`sk` attributes of `key` (for `GetItem`, `UpdateItem` and `DeleteItem`).
pub(crate) fn key_attributes((pk, sk): keys::Key) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ])
}

/// A small item at `key` holding string `fields`: the lookup pointers (refund → charge,
/// notification → charge, gateway reference → charge or refund).
pub(crate) fn pointer_item(key: keys::Key, fields: &[(&str, &str)]) -> Item {
    let mut item = key_attributes(key);
    for (name, value) in fields {
        item.insert((*name).to_owned(), AttributeValue::S((*value).to_owned()));
    }
    item
}

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
    /// Throttled, down, timed out: retryable.
    #[error("DynamoDB is unavailable")]
    Unavailable(#[source] BoxError),
    /// A transaction was canceled because another one was changing one of its items at the same
    /// moment (`TransactionConflict`): retryable, and for a caller that re-reads first, a lost
    /// race like a failed condition.
    #[error("a concurrent transaction changed one of the items")]
    Contended(#[source] BoxError),
    /// DynamoDB refused the request (validation) or returned an item we cannot read.
    #[error("DynamoDB refused the request: {0}")]
    Invalid(String),
}

impl From<TableError> for StoreError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::ConditionFailed { .. } => StoreError::Conflict,
            TableError::Unavailable(source) | TableError::Contended(source) => {
                StoreError::Unavailable(source)
            }
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
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> TableError
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

/// Sends a conditional update; a lost condition is `StoreError::Conflict`.
pub(crate) async fn update(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<(), StoreError> {
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(e).into())
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Put an item whose `pk` does not exist yet.
    PutNew(Item),
    /// Replace an item whose `version` attribute is `expected`; the item carries the new version.
    PutAtVersion(Item, u64),
    /// Put an item whatever is there (derived records such as lookup pointers).
    Put(Item),
}

/// How many shards of a sharded partition [`Table::query_shards`] queries at once: 33 partitions
/// in about five round trips, without a burst of 33 requests from one invocation.
pub(crate) const SHARD_QUERIES_AT_ONCE: usize = 8;

/// A page size as [`Table::query_shards`] takes it (at least one item).
pub(super) fn page_size(limit: i32) -> Option<usize> {
    Some(usize::try_from(limit.max(1)).unwrap_or(1))
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

    pub fn from_conf(conf: &crate::adapters::SdkConfig, name: impl Into<String>) -> Self {
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

    /// Saves `item`, which carries `version`, over the stored one at `version - 1`: a record
    /// changed by read, change, write. `Conflict` if it changed meanwhile.
    pub(crate) async fn save_next_version(
        &self,
        item: Item,
        version: u64,
    ) -> Result<(), StoreError> {
        let expected = version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("version 0 cannot be saved".into()))?;
        self.put_at_version(item, expected)
            .await
            .map_err(StoreError::from)
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
                Write::Put(item) => Put::builder().table_name(&self.name).set_item(Some(item)),
            };
            let put = put
                .build()
                .map_err(|e| TableError::Invalid(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact_items(items).await
    }

    /// Runs prepared transaction items (for writes `Write` cannot express, such as conditional
    /// arithmetic updates), with the same error mapping as [`Table::transact`].
    pub(crate) async fn transact_items(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), TableError> {
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
                    let contended = (e.cancellation_reasons().iter())
                        .any(|r| r.code() == Some("TransactionConflict"));
                    if contended {
                        return Err(TableError::Contended(Box::new(err)));
                    }
                    return Err(TableError::Unavailable(Box::new(err)));
                }
                Err(classify(err))
            }
        }
    }

    /// The items of one partition of `index`, in sort-key order, read as `paging` says. Table
    /// queries are strongly consistent; index queries cannot be.
    pub(crate) async fn query_partition(
        &self,
        index: keys::Index,
        partition: String,
        range: keys::SortRange<'_>,
        paging: keys::Paging,
    ) -> Result<Vec<Item>, StoreError> {
        let (pk, sk) = index.key_attributes();
        let condition = match range {
            keys::SortRange::All => format!("{pk} = :pk"),
            keys::SortRange::BeginsWith(_) => format!("{pk} = :pk AND begins_with({sk}, :sk)"),
            keys::SortRange::Before(_) => format!("{pk} = :pk AND {sk} < :sk"),
            // BETWEEN is inclusive: from the cursor's successor to `before(t)`, which no sort key
            // equals (every one has a `#…` after the time).
            keys::SortRange::After { .. } => format!("{pk} = :pk AND {sk} BETWEEN :from AND :sk"),
            keys::SortRange::Since(_) => format!("{pk} = :pk AND {sk} >= :sk"),
        };
        let bound = match range {
            keys::SortRange::All => None,
            keys::SortRange::BeginsWith(prefix) => Some(prefix.to_owned()),
            keys::SortRange::Before(t)
            | keys::SortRange::Since(t)
            | keys::SortRange::After { before: t, .. } => Some(keys::before(t)),
        };
        let from = match range {
            keys::SortRange::After { after, .. } => Some(keys::just_after(after)),
            _ => None,
        };
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let limit = match paging {
                keys::Paging::OnePage(n) => Some(n),
                keys::Paging::UpTo(n) => {
                    Some(i32::try_from(n.saturating_sub(items.len()).max(1)).unwrap_or(i32::MAX))
                }
                keys::Paging::AtLeast(_) | keys::Paging::All => None,
            };
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(index.name().map(str::to_owned))
                .key_condition_expression(&condition)
                .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
                .set_exclusive_start_key(start.take())
                .set_consistent_read((index == keys::Index::Table).then_some(true))
                .set_limit(limit);
            let out = match &bound {
                Some(b) => out.expression_attribute_values(":sk", AttributeValue::S(b.clone())),
                None => out,
            };
            let out = match &from {
                Some(f) => out.expression_attribute_values(":from", AttributeValue::S(f.clone())),
                None => out,
            };
            let out = out
                .send()
                .await
                .map_err(|e| StoreError::from(classify(e)))?;
            items.extend(out.items.unwrap_or_default());
            let more = match paging {
                keys::Paging::OnePage(_) => false,
                keys::Paging::AtLeast(n) | keys::Paging::UpTo(n) => items.len() < n,
                keys::Paging::All => true,
            };
            match out.last_evaluated_key {
                Some(k) if more => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The items of sharded partition `base` of `index` — every shard of it, and `base` itself
    /// where releases before sharding wrote ([`keys::every_shard`]) — merged into one sort-key
    /// order as if they were one partition: the first `limit` items of `range` (every one for
    /// `None`). So a caller's cursor (the last sort key it got) and page size mean what they meant
    /// for one partition. Queries [`SHARD_QUERIES_AT_ONCE`] shards at a time.
    pub(crate) async fn query_shards(
        &self,
        index: keys::Index,
        base: &str,
        range: keys::SortRange<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        // Each shard's first `limit` hold the first `limit` of all of them.
        let paging = limit.map_or(keys::Paging::All, keys::Paging::UpTo);
        let shards = keys::every_shard(base).into_iter();
        let mut items: Vec<Item> = futures::stream::iter(shards)
            .map(|partition| self.query_partition(index, partition, range, paging))
            .buffer_unordered(SHARD_QUERIES_AT_ONCE)
            .try_concat()
            .await?;
        let (_, sk) = index.key_attributes();
        let sort_key = |item: &Item| item.get(sk).and_then(|v| v.as_s().ok()).cloned();
        items.sort_by_cached_key(sort_key);
        // While a rewrite moves an older release's item from `base` into its shard, the index
        // can show it in both for a moment: one item, one sort key (every sort key ends in the
        // item's own id), so the second copy goes.
        items.dedup_by(|a, b| sort_key(a) == sort_key(b));
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }

    /// The items of charge `charge`'s partition whose sort key starts with `prefix` (its refunds
    /// or its notifications), in sort-key order, which for UUIDv7 ids is creation order.
    pub(crate) async fn beside_charge(
        &self,
        charge: &crate::domain::ChargeId,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let (range, partition) = (keys::SortRange::BeginsWith(prefix), keys::charge_pk(charge));
        (self.query_partition(keys::Index::Table, partition, range, keys::Paging::All)).await
    }

    /// An item beside its charge found by its own id: reads the pointer at `pointer` (which
    /// names the charge), then the item at `key(charge)`. `None` if either is missing.
    pub(crate) async fn through_pointer(
        &self,
        pointer: keys::Key,
        key: impl FnOnce(&crate::domain::ChargeId) -> keys::Key,
    ) -> Result<Option<Item>, StoreError> {
        let Some(lookup) = self.get_at(pointer).await? else {
            return Ok(None);
        };
        let charge_id = (lookup.get("charge_id").and_then(|v| v.as_s().ok()))
            .and_then(|c| crate::domain::ChargeId::parse(c).ok())
            .ok_or_else(|| StoreError::Invalid("a lookup pointer without a charge id".into()))?;
        Ok(self.get_at(key(&charge_id)).await?)
    }

    /// Reads one item (strongly consistent).
    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, TableError> {
        self.get_at((pk.to_owned(), sk.to_owned())).await
    }

    /// Reads the item at `key` (strongly consistent).
    pub(crate) async fn get_at(&self, key: keys::Key) -> Result<Option<Item>, TableError> {
        self.client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(classify)
    }
}
