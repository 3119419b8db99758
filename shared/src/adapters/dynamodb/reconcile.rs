//! What the reconciler reads: the sparse GSI2 partitions of work in flight
//! (`OPEN#charge`, `OPEN#refund`, `OPEN#event`, sorted by when the item last moved), and a
//! per-item claim (`reconcile_until`) so two runs never work on the same item.

use aws_sdk_dynamodb::types::AttributeValue;

use super::events::read_event;
use super::keys::{self, Index, OPEN_CHARGES, OPEN_EVENTS, OPEN_REFUNDS, Paging, SortRange};
use super::{Item, Table, TableError, charges, classify, key_attributes};
use crate::domain::event::EventRecord;
use crate::domain::{Charge, Refund};
use crate::ports::{ReconcileItem, ReconcileStore, StoreError};

impl Table {
    /// Items of GSI2 partition `partition` last moved before `before`, oldest first.
    async fn open_items(
        &self,
        partition: &str,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Item>, StoreError> {
        let (range, paging) = (SortRange::Before(before), Paging::OnePage(limit));
        (self.query_partition(Index::Gsi2, partition.to_owned(), range, paging)).await
    }
}

impl ReconcileStore for Table {
    async fn open_charges(&self, before: i64, limit: i32) -> Result<Vec<Charge>, StoreError> {
        self.open_items(OPEN_CHARGES, before, limit)
            .await?
            .into_iter()
            .map(charges::from_item)
            .collect()
    }

    async fn open_refunds(&self, before: i64, limit: i32) -> Result<Vec<Refund>, StoreError> {
        self.open_items(OPEN_REFUNDS, before, limit)
            .await?
            .into_iter()
            .map(super::refunds::from_item)
            .collect()
    }

    async fn open_events(&self, before: i64, limit: i32) -> Result<Vec<EventRecord>, StoreError> {
        self.open_items(OPEN_EVENTS, before, limit)
            .await?
            .into_iter()
            .map(read_event)
            .collect()
    }

    async fn claim_for_reconcile(
        &self,
        item: ReconcileItem<'_>,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let key = match item {
            ReconcileItem::Charge(id) => keys::charge(id),
            ReconcileItem::Refund(charge, refund) => keys::refund(charge, refund),
            ReconcileItem::Event(gateway, id) => keys::event(gateway, id),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(key)))
            .update_expression("SET reconcile_until = :until")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(reconcile_until) OR reconcile_until < :now)")
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(true),
            Err(TableError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
