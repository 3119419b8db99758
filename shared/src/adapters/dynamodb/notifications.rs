//! The delivery log of billing notifications: read one, record an attempt, list a charge's, list
//! the pending ones by next attempt for the outbox sweep, and list those billing does not have by
//! status across charges. Items and keys are [`super::outbox`]'s; the endpoint's health record
//! is [`super::endpoint_health`]'s.

use super::keys::{Index, SortRange};
use super::outbox::{from_item, to_item};
use super::{Table, keys, page_size};
use crate::domain::{
    ChargeId, DeliveryStatus, EndpointAttempt, EndpointHealth, Notification, NotificationId,
};
use crate::ports::{CreatedFrom, NotificationStore, StoreError};

impl NotificationStore for Table {
    async fn get_notification(
        &self,
        id: &NotificationId,
    ) -> Result<Option<Notification>, StoreError> {
        let key = |charge: &ChargeId| keys::notification(charge, id);
        (self
            .through_pointer(keys::notification_pointer(id), key)
            .await?)
            .map(from_item)
            .transpose()
    }

    async fn save_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.save_next_version(to_item(n)?, n.version).await
    }

    async fn notifications_for_charge(
        &self,
        charge: &ChargeId,
    ) -> Result<Vec<Notification>, StoreError> {
        let items = self
            .beside_charge(charge, keys::NOTIFICATION_SK_PREFIX)
            .await?;
        items.into_iter().map(from_item).collect()
    }

    async fn pending_notifications(
        &self,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        let (range, limit) = (SortRange::Before(before), page_size(limit));
        (self.query_shards(Index::Gsi1, keys::OUTBOX_PENDING, range, limit))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn undelivered_notifications(
        &self,
        status: DeliveryStatus,
        from: CreatedFrom<'_>,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        let Some(partition) = keys::undelivered_gsi2pk(status) else {
            return Ok(Vec::new());
        };
        let after = match from {
            CreatedFrom::Since(_) => None,
            CreatedFrom::After(n) => Some(keys::time_ordered(n.created_at, n.id.as_str())),
        };
        let range = match (&after, from) {
            (Some(key), _) => SortRange::After {
                after: key,
                before: i64::MAX,
            },
            (None, CreatedFrom::Since(t)) => SortRange::Since(t),
            (None, CreatedFrom::After(_)) => SortRange::All,
        };
        (self.query_shards(Index::Gsi2, &partition, range, page_size(limit)))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn record_endpoint_attempt(
        &self,
        attempt: EndpointAttempt,
        now: i64,
    ) -> Result<EndpointHealth, StoreError> {
        self.record_billing_attempt(attempt, now).await
    }

    async fn endpoint_health(&self) -> Result<Option<EndpointHealth>, StoreError> {
        self.billing_health().await
    }
}

impl Table {
    /// Gives notifications written before the `UNDELIVERED#…` index existed (status pending or
    /// failed, no `gsi2pk`) their index keys, by rewriting each at its next version — the same
    /// write as a delivery attempt's, so a concurrent attempt simply wins. Reads the whole table
    /// (a scan): a one-off after the upgrade, run by `paybridge-ops index-notifications`.
    /// Returns how many it rewrote.
    pub async fn index_undelivered_notifications(&self) -> Result<usize, StoreError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut start = None;
        let mut rewritten = 0;
        loop {
            let out = self
                .client()
                .scan()
                .table_name(self.name())
                .filter_expression(
                    "begins_with(sk, :prefix) AND attribute_not_exists(gsi2pk) AND #status <> :delivered",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(keys::NOTIFICATION_SK_PREFIX.to_owned()),
                )
                .expression_attribute_values(
                    ":delivered",
                    AttributeValue::S(DeliveryStatus::Delivered.as_str().to_owned()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::from(super::classify(e)))?;
            for item in out.items.unwrap_or_default() {
                let mut n = from_item(item)?;
                n.version += 1;
                match self.save_notification(&n).await {
                    Ok(()) => rewritten += 1,
                    Err(StoreError::Conflict) => {} // written meanwhile, with its keys
                    Err(e) => return Err(e),
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(rewritten),
            }
        }
    }
}
