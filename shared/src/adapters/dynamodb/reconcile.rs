//! What the reconciler reads: the sparse GSI2 partitions of work in flight
//! (`OPEN#charge`, `OPEN#refund`, `OPEN#event`, sorted by when the item last moved) a page at a
//! time, a per-item claim (`reconcile_until`) so two runs never work on the same item, and the
//! partitions of what it set aside for a person (`ATTENTION#charge`, `ATTENTION#refund`).
//!
//! Setting aside moves the item's `gsi2pk` from `OPEN#…` to `ATTENTION#…` with the reason and
//! time beside it (`attention_reason`, `attention_since`). It does not touch the object's version:
//! the next save of the charge or refund (a webhook) writes the whole item again, which puts it
//! back into `OPEN#…` if it is still in flight, or out of both if it settled.
//!
//! Every one of these partitions is sharded by the item's own id ([`keys::SHARDS`]): pages are
//! read across all shards in one sort-key order ([`Table::query_shards`]), and a move between
//! partitions accepts the item in its shard or in the unsharded partition of an older release.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};

use super::events::read_event;
use super::keys::{
    self, ATTENTION_CHARGES, ATTENTION_REFUNDS, Index, OPEN_CHARGES, OPEN_EVENTS, OPEN_REFUNDS,
    SortRange,
};
use super::{Item, Table, TableError, charges, classify, key_attributes, page_size};
use crate::domain::event::EventRecord;
use crate::domain::{Charge, ChargeId, Refund, RefundId};
use crate::ports::{Page, Parked, ReconcileItem, ReconcileStore, ResumePoint, StoreError};

impl Table {
    /// One page of sharded GSI2 partition `partition` (every shard): items last moved before
    /// `before`, oldest first, after the cursor `after`, read with `read`.
    async fn open_page<T>(
        &self,
        partition: &str,
        before: i64,
        after: Option<&str>,
        limit: i32,
        read: impl Fn(Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let range = match after {
            Some(after) => SortRange::After { after, before },
            None => SortRange::Before(before),
        };
        let limit = limit.max(1);
        let items = (self.query_shards(Index::Gsi2, partition, range, page_size(limit))).await?;
        // A full page may have more behind it; the next one starts after its last sort key.
        let next = (items.len() >= limit as usize)
            .then(|| {
                items
                    .last()
                    .and_then(|i| i.get("gsi2sk")?.as_s().ok().cloned())
            })
            .flatten();
        let items = items.into_iter().map(read).collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    /// Claims `item` until `until` unless another run holds it (`None`), returning the item as
    /// the claim left it: one write instead of a claim and a read.
    async fn claim(
        &self,
        item: ReconcileItem<'_>,
        now: i64,
        until: i64,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(item_key(item))))
            .update_expression("SET reconcile_until = :until")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(reconcile_until) OR reconcile_until < :now)")
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result.map_err(classify) {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(TableError::ConditionFailed { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the item `item` from sharded GSI2 partition `from` (its shard, or the unsharded
    /// partition an older release wrote it to) into its shard of `to`; `false` if it is in neither.
    async fn move_partition(
        &self,
        item: ReconcileItem<'_>,
        from: &str,
        to: &str,
        attention: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let id = shard_id(item);
        let update = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(item_key(item))))
            .condition_expression("gsi2pk IN (:from, :from_legacy)")
            .expression_attribute_values(":from", AttributeValue::S(keys::sharded(from, id)))
            .expression_attribute_values(":from_legacy", AttributeValue::S(from.to_owned()))
            .expression_attribute_values(":to", AttributeValue::S(keys::sharded(to, id)));
        let update = match attention {
            Some((reason, since)) => update
                .update_expression(
                    "SET gsi2pk = :to, attention_reason = :reason, attention_since = :since",
                )
                .expression_attribute_values(":reason", AttributeValue::S(reason.to_owned()))
                .expression_attribute_values(":since", AttributeValue::N(since.to_string())),
            None => update
                // A person put it back: the next run looks at it, whatever an earlier run claimed.
                .update_expression(
                    "SET gsi2pk = :to REMOVE attention_reason, attention_since, reconcile_until",
                ),
        };
        match update.send().await.map_err(classify) {
            Ok(_) => Ok(true),
            Err(TableError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Items of sharded GSI2 partition `base` counted: every shard, every page.
    async fn count_shards(&self, base: &str) -> Result<usize, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(keys::every_shard(base))
            .map(|partition| async move { self.count_partition(&partition).await })
            .buffer_unordered(super::SHARD_QUERIES_AT_ONCE)
            .try_fold(0, |total, n| async move { Ok(total + n) })
            .await
    }

    /// Items of a GSI2 partition counted, every page.
    async fn count_partition(&self, partition: &str) -> Result<usize, StoreError> {
        let mut count = 0usize;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .index_name("GSI2")
                .key_condition_expression("gsi2pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(partition.to_owned()))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::from(classify(e)))?;
            count += usize::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(count),
            }
        }
    }
}

fn item_key(item: ReconcileItem<'_>) -> keys::Key {
    match item {
        ReconcileItem::Charge(id) => keys::charge(id),
        ReconcileItem::Refund(charge, refund) => keys::refund(charge, refund),
        ReconcileItem::Event(gateway, id) => keys::event(gateway, id),
    }
}

/// The id that picks an item's shard.
fn shard_id(item: ReconcileItem<'_>) -> &str {
    match item {
        ReconcileItem::Charge(id) => id.as_str(),
        ReconcileItem::Refund(_, id) => id.as_str(),
        ReconcileItem::Event(_, id) => id,
    }
}

/// The partitions an item moves between when set aside: (in flight, set aside).
fn partitions(item: ReconcileItem<'_>) -> Result<(&'static str, &'static str), StoreError> {
    match item {
        ReconcileItem::Charge(_) => Ok((OPEN_CHARGES, ATTENTION_CHARGES)),
        ReconcileItem::Refund(..) => Ok((OPEN_REFUNDS, ATTENTION_REFUNDS)),
        ReconcileItem::Event(..) => Err(StoreError::Invalid(
            "events are never set aside: they are queued again or finish".into(),
        )),
    }
}

/// The reason and time an item was set aside, stored beside it.
fn attention_of(item: &Item) -> (String, i64) {
    let reason = item.get("attention_reason").and_then(|v| v.as_s().ok());
    let since = item.get("attention_since").and_then(|v| v.as_n().ok());
    (
        reason.cloned().unwrap_or_else(|| "unknown".to_owned()),
        since.and_then(|n| n.parse().ok()).unwrap_or_default(),
    )
}

impl ReconcileStore for Table {
    async fn open_charges(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<Charge>, StoreError> {
        (self.open_page(OPEN_CHARGES, before, after, limit, charges::from_item)).await
    }

    async fn open_refunds(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<Refund>, StoreError> {
        let read = super::refunds::from_item;
        (self.open_page(OPEN_REFUNDS, before, after, limit, read)).await
    }

    async fn open_events(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<EventRecord>, StoreError> {
        (self.open_page(OPEN_EVENTS, before, after, limit, read_event)).await
    }

    async fn claim_for_reconcile(
        &self,
        item: ReconcileItem<'_>,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.claim(item, now, until).await?.is_some())
    }

    async fn claim_charge(
        &self,
        id: &ChargeId,
        now: i64,
        until: i64,
    ) -> Result<Option<Charge>, StoreError> {
        let claimed = self.claim(ReconcileItem::Charge(id), now, until).await?;
        claimed.map(charges::from_item).transpose()
    }

    async fn claim_refund(
        &self,
        charge: &ChargeId,
        id: &RefundId,
        now: i64,
        until: i64,
    ) -> Result<Option<Refund>, StoreError> {
        let claimed = self
            .claim(ReconcileItem::Refund(charge, id), now, until)
            .await?;
        claimed.map(super::refunds::from_item).transpose()
    }

    async fn park(
        &self,
        item: ReconcileItem<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (open, attention) = partitions(item)?;
        let set_aside = Some((reason, now));
        (self.move_partition(item, open, attention, set_aside)).await
    }

    async fn unpark(&self, item: ReconcileItem<'_>) -> Result<bool, StoreError> {
        let (open, attention) = partitions(item)?;
        (self.move_partition(item, attention, open, None)).await
    }

    async fn parked(&self) -> Result<Vec<Parked>, StoreError> {
        let all = |base| self.query_shards(Index::Gsi2, base, SortRange::All, None);
        let mut parked = Vec::new();
        for item in all(ATTENTION_CHARGES).await? {
            let (reason, since) = attention_of(&item);
            let c = charges::from_item(item)?;
            parked.push(Parked {
                kind: "charge",
                id: c.id.to_string(),
                charge_id: c.id.to_string(),
                gateway: c.gateway,
                gateway_ref: c.gateway_ref,
                status: c.status.as_str().to_owned(),
                reason,
                since,
                created_at: c.created_at,
            });
        }
        for item in all(ATTENTION_REFUNDS).await? {
            let (reason, since) = attention_of(&item);
            let r = super::refunds::from_item(item)?;
            parked.push(Parked {
                kind: "refund",
                id: r.id.to_string(),
                charge_id: r.charge_id.to_string(),
                gateway: r.gateway,
                gateway_ref: r.gateway_ref,
                status: r.status.as_str().to_owned(),
                reason,
                since,
                created_at: r.created_at,
            });
        }
        parked.sort_by_key(|p| (p.since, p.created_at));
        Ok(parked)
    }

    async fn resume_point(&self) -> Result<ResumePoint, StoreError> {
        let item = self
            .get_at(keys::reconcile_resume())
            .await?
            .unwrap_or_default();
        let cursor = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(ResumePoint {
            charges: cursor("charges"),
            refunds: cursor("refunds"),
            events: cursor("events"),
        })
    }

    async fn save_resume_point(&self, point: &ResumePoint) -> Result<(), StoreError> {
        let mut item = key_attributes(keys::reconcile_resume());
        for (name, cursor) in [
            ("charges", &point.charges),
            ("refunds", &point.refunds),
            ("events", &point.events),
        ] {
            if let Some(c) = cursor {
                item.insert(name.to_owned(), AttributeValue::S(c.clone()));
            }
        }
        // Last writer wins: two runs at once leave one of their stops, either is a fine start.
        let put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item));
        put.send()
            .await
            .map_err(|e| StoreError::from(classify(e)))?;
        Ok(())
    }

    async fn count_parked(&self) -> Result<usize, StoreError> {
        Ok(self.count_shards(ATTENTION_CHARGES).await?
            + self.count_shards(ATTENTION_REFUNDS).await?)
    }
}
