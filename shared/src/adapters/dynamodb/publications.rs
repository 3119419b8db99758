//! Publications on the EventBridge bus as stored: beside their charge (`CHARGE#{charge_id}` /
//! `PUBLICATION#{id}`) and, while pending, in the sparse GSI1 partition `PUBLISH#pending`
//! (sharded) by next attempt (what the outbox sweep reads) — keys in [`super::keys`]. New ones go
//! into the transaction of the state change with its notifications ([`to_item`]).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::keys::{Index, SortRange};
use super::{Item, Table, keys, page_size};
use crate::domain::{ChargeId, NotificationId, Publication, PublicationStatus};
use crate::ports::{PublicationStore, StoreError};

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct PublicationItem {
    pk: String,
    sk: String,
    gsi1pk: Option<String>,
    gsi1sk: Option<String>,
    id: String,
    charge_id: String,
    event_type: String,
    body: String,
    status: PublicationStatus,
    attempts: u32,
    lease_until: Option<i64>,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    published_at: Option<i64>,
    event_id: Option<String>,
    version: u64,
}

pub(super) fn to_item(p: &Publication) -> Result<Item, StoreError> {
    let pending = p.status == PublicationStatus::Pending;
    let (pk, sk) = keys::publication(&p.charge_id, &p.id);
    let item = PublicationItem {
        pk,
        sk,
        gsi1pk: pending.then(|| keys::sharded(keys::PUBLISH_PENDING, p.id.as_str())),
        gsi1sk: pending.then(|| keys::time_ordered(p.next_attempt_at, p.id.as_str())),
        id: p.id.to_string(),
        charge_id: p.charge_id.to_string(),
        event_type: p.event_type.clone(),
        body: p.body.clone(),
        status: p.status,
        attempts: p.attempts,
        lease_until: p.lease_until,
        next_attempt_at: p.next_attempt_at,
        last_error: p.last_error.clone(),
        created_at: p.created_at,
        published_at: p.published_at,
        event_id: p.event_id.clone(),
        version: p.version,
    };
    serde_dynamo::to_item(item)
        .map_err(|e| StoreError::Invalid(format!("publication not serialisable: {e}")))
}

fn from_item(item: Item) -> Result<Publication, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("unreadable publication: {what}"));
    let i: PublicationItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
    Ok(Publication {
        id: NotificationId::parse(&i.id).map_err(|e| bad(e.to_string()))?,
        charge_id: ChargeId::parse(&i.charge_id).map_err(|e| bad(e.to_string()))?,
        event_type: i.event_type,
        body: i.body,
        status: i.status,
        attempts: i.attempts,
        lease_until: i.lease_until,
        next_attempt_at: i.next_attempt_at,
        last_error: i.last_error,
        created_at: i.created_at,
        published_at: i.published_at,
        event_id: i.event_id,
        version: i.version,
    })
}

impl PublicationStore for Table {
    async fn get_publication(
        &self,
        charge: &ChargeId,
        id: &NotificationId,
    ) -> Result<Option<Publication>, StoreError> {
        (self.get_at(keys::publication(charge, id)).await?)
            .map(from_item)
            .transpose()
    }

    async fn save_publication(&self, p: &Publication) -> Result<(), StoreError> {
        self.save_next_version(to_item(p)?, p.version).await
    }

    async fn pending_publications(
        &self,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Publication>, StoreError> {
        let (range, limit) = (SortRange::Before(before), page_size(limit));
        (self.query_shards(Index::Gsi1, keys::PUBLISH_PENDING, range, limit))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn publication(status: PublicationStatus) -> Publication {
        Publication {
            id: NotificationId::generate(),
            charge_id: ChargeId::generate(),
            event_type: "charge.succeeded".into(),
            body: r#"{"id":"ntf"}"#.into(),
            status,
            attempts: 2,
            lease_until: Some(160),
            next_attempt_at: 160,
            last_error: Some("throttled".into()),
            created_at: 100,
            published_at: (status == PublicationStatus::Published).then_some(150),
            event_id: Some("e-1".into()),
            version: 3,
        }
    }

    #[test]
    fn a_publication_reads_back_as_written_and_is_in_the_outbox_only_while_pending() {
        for status in [PublicationStatus::Pending, PublicationStatus::Published] {
            let p = publication(status);
            let item = to_item(&p).unwrap();
            assert_eq!(from_item(item.clone()).unwrap(), p);
            assert_eq!(
                item["sk"],
                AttributeValue::S(format!("PUBLICATION#{}", p.id))
            );
            let pending = status == PublicationStatus::Pending;
            assert_eq!(item.contains_key("gsi1pk"), pending, "{status:?}");
            if pending {
                let shard = keys::shard_of(p.id.as_str());
                let partition = format!("PUBLISH#pending#{shard:02}");
                assert_eq!(item["gsi1pk"], AttributeValue::S(partition));
                assert_eq!(
                    item["gsi1sk"],
                    AttributeValue::S(keys::time_ordered(160, p.id.as_str()))
                );
            }
        }
    }
}
