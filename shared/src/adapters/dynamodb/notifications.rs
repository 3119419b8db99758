//! The delivery log of billing notifications: read one, record an attempt, list a charge's, and
//! list the pending ones for the outbox sweep. Items and keys are [`super::outbox`]'s.

use aws_sdk_dynamodb::types::AttributeValue;

use super::outbox::{from_item, to_item};
use super::{Table, classify, keys};
use crate::domain::{ChargeId, Notification, NotificationId};
use crate::ports::{NotificationStore, StoreError};

impl NotificationStore for Table {
    async fn get_notification(
        &self,
        id: &NotificationId,
    ) -> Result<Option<Notification>, StoreError> {
        let Some(lookup) = self.get_at(keys::notification_pointer(id)).await? else {
            return Ok(None);
        };
        let charge_id = lookup
            .get("charge_id")
            .and_then(|v| v.as_s().ok())
            .and_then(|c| ChargeId::parse(c).ok())
            .ok_or_else(|| {
                StoreError::Invalid("notification pointer without a charge id".into())
            })?;
        self.get_at(keys::notification(&charge_id, id))
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
            .expression_attribute_values(":pk", AttributeValue::S(keys::charge_pk(charge)))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(keys::NOTIFICATION_SK_PREFIX.into()),
            )
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
            .expression_attribute_values(":pk", AttributeValue::S(keys::OUTBOX_PENDING.into()))
            .expression_attribute_values(":before", AttributeValue::S(keys::before(before)))
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
