//! The delivery log of billing notifications: read one, record an attempt, list a charge's, and
//! list the pending ones for the outbox sweep. Items and keys are [`super::outbox`]'s.

use super::keys::{Index, Paging, SortRange};
use super::outbox::{from_item, to_item};
use super::{Table, keys};
use crate::domain::{ChargeId, Notification, NotificationId};
use crate::ports::{NotificationStore, StoreError};

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
        let partition = keys::OUTBOX_PENDING.to_owned();
        let range = SortRange::Before(before);
        (self.query_partition(Index::Gsi1, partition, range, Paging::OnePage(limit)))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}
