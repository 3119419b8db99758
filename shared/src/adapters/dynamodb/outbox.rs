//! Billing notifications as stored: beside their charge (`CHARGE#{charge_id}` /
//! `NOTIFICATION#{id}`, so a charge's log is one query), a pointer for lookup by id, while
//! pending the sparse GSI1 key of the outbox by next attempt (what the sweep reads), and while
//! billing does not have them the sparse GSI2 key by status and creation time (what `undelivered`
//! and `recover` read) — keys in [`super::keys`]. [`writes`] puts new notifications into the
//! transaction of the state change they report.
//!
//! Items written before delivery series existed have no series attributes: they read as series 1
//! with all their attempts in it and, if pending, the next attempt due since their creation (so
//! the sweep gives a legacy chain a current one if it is idle). They get the index keys above at
//! their next write.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Item, Write, keys, pointer_item};
use crate::domain::{
    ChargeId, DeliveryStatus, Notification, NotificationId, Publication, Series, Targets,
};
use crate::ports::StoreError;

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct NotificationItem {
    pk: String,
    sk: String,
    gsi1pk: Option<String>,
    gsi1sk: Option<String>,
    gsi2pk: Option<String>,
    gsi2sk: Option<String>,
    id: String,
    charge_id: String,
    event_type: String,
    object_id: String,
    body: String,
    status: DeliveryStatus,
    attempts: u32,
    series: Option<u32>,
    series_started_at: Option<i64>,
    series_attempts: Option<u32>,
    next_attempt_at: Option<i64>,
    last_attempt_by: Option<String>,
    last_status: Option<u16>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
    version: u64,
    /// `http` or `http,eventbridge`; absent on items written before targets (http only).
    targets: Option<String>,
}

pub(super) fn to_item(n: &Notification) -> Result<Item, StoreError> {
    let pending = n.status == DeliveryStatus::Pending;
    let due = n.series.next_attempt_at.unwrap_or(n.created_at);
    let undelivered =
        keys::undelivered_gsi2pk(n.status).map(|base| keys::sharded(&base, n.id.as_str()));
    let (pk, sk) = keys::notification(&n.charge_id, &n.id);
    let item = NotificationItem {
        pk,
        sk,
        gsi1pk: pending.then(|| keys::sharded(keys::OUTBOX_PENDING, n.id.as_str())),
        gsi1sk: pending.then(|| keys::time_ordered(due, n.id.as_str())),
        gsi2sk: (undelivered.is_some()).then(|| keys::time_ordered(n.created_at, n.id.as_str())),
        gsi2pk: undelivered,
        id: n.id.to_string(),
        charge_id: n.charge_id.to_string(),
        event_type: n.event_type.clone(),
        object_id: n.object_id.clone(),
        body: n.body.clone(),
        status: n.status,
        attempts: n.attempts,
        series: Some(n.series.number),
        series_started_at: Some(n.series.started_at),
        series_attempts: Some(n.series.attempts),
        next_attempt_at: n.series.next_attempt_at,
        last_attempt_by: n.series.last_attempt_by.clone(),
        last_status: n.last_status,
        last_error: n.last_error.clone(),
        created_at: n.created_at,
        delivered_at: n.delivered_at,
        version: n.version,
        targets: Some(n.targets.as_str().to_owned()),
    };
    serde_dynamo::to_item(item)
        .map_err(|e| StoreError::Invalid(format!("notification not serialisable: {e}")))
}

pub(super) fn from_item(item: Item) -> Result<Notification, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("unreadable notification: {what}"));
    let i: NotificationItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
    let series = Series {
        number: i.series.unwrap_or(1),
        started_at: i.series_started_at.unwrap_or(i.created_at),
        attempts: i.series_attempts.unwrap_or(i.attempts),
        next_attempt_at: i
            .next_attempt_at
            .or((i.status == DeliveryStatus::Pending).then_some(i.created_at)),
        last_attempt_by: i.last_attempt_by,
    };
    Ok(Notification {
        id: NotificationId::parse(&i.id).map_err(|e| bad(e.to_string()))?,
        charge_id: ChargeId::parse(&i.charge_id).map_err(|e| bad(e.to_string()))?,
        event_type: i.event_type,
        object_id: i.object_id,
        body: i.body,
        status: i.status,
        attempts: i.attempts,
        series,
        last_status: i.last_status,
        last_error: i.last_error,
        created_at: i.created_at,
        delivered_at: i.delivered_at,
        version: i.version,
        targets: match i.targets {
            Some(t) => Targets::parse(&t).map_err(bad)?,
            None => Targets::HTTP,
        },
    })
}

/// The writes that put new notifications into the outbox (for a state change's transaction):
/// for billing's endpoint the notification and its pointer, for the bus its publication.
pub(super) fn writes(notifications: &[Notification]) -> Result<Vec<Write>, StoreError> {
    let mut writes = Vec::with_capacity(notifications.len() * 3);
    for n in notifications {
        if n.targets.http {
            writes.push(Write::PutNew(to_item(n)?));
            writes.push(Write::PutNew(pointer_item(
                keys::notification_pointer(&n.id),
                &[("charge_id", n.charge_id.as_str())],
            )));
        }
        if n.targets.event_bus {
            writes.push(Write::PutNew(super::publications::to_item(
                &Publication::of(n),
            )?));
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }
    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn notification(status: DeliveryStatus) -> Notification {
        Notification {
            id: NotificationId::generate(),
            charge_id: ChargeId::generate(),
            event_type: "charge.succeeded".into(),
            object_id: "ch_x".into(),
            body: "{}".into(),
            status,
            attempts: 3,
            series: Series {
                number: 2,
                started_at: 50,
                attempts: 1,
                next_attempt_at: (status == DeliveryStatus::Pending).then_some(400),
                last_attempt_by: Some("m-1".into()),
            },
            last_status: Some(503),
            last_error: Some("billing answered 503".into()),
            created_at: 10,
            delivered_at: None,
            targets: Targets::HTTP,
            version: 4,
        }
    }

    #[test]
    fn a_state_change_writes_one_record_per_target_of_its_notification() {
        let sort_keys = |targets: Targets| -> Vec<String> {
            let mut n = notification(DeliveryStatus::Pending);
            n.targets = targets;
            (writes(std::slice::from_ref(&n)).unwrap().into_iter())
                .map(|w| match w {
                    Write::PutNew(item) => match &item["sk"] {
                        AttributeValue::S(sk) => sk.split('#').next().unwrap().to_owned(),
                        other => panic!("{other:?}"),
                    },
                    _ => panic!("a new notification is put only where nothing is"),
                })
                .collect()
        };
        assert_eq!(sort_keys(Targets::HTTP), ["NOTIFICATION", "NOTIFICATION"]);
        let both = Targets::parse("http,eventbridge").unwrap();
        assert_eq!(
            sort_keys(both),
            ["NOTIFICATION", "NOTIFICATION", "PUBLICATION"]
        );
        let bus = Targets::parse("eventbridge").unwrap();
        assert_eq!(sort_keys(bus), ["PUBLICATION"]);
    }

    #[test]
    fn a_notification_reads_back_as_written() {
        for status in [DeliveryStatus::Delivered]
            .into_iter()
            .chain(DeliveryStatus::UNDELIVERED)
        {
            let n = notification(status);
            assert_eq!(from_item(to_item(&n).unwrap()).unwrap(), n);
        }
    }

    #[test]
    fn a_pending_one_is_in_the_outbox_by_its_next_attempt_and_listed_by_creation_until_delivered() {
        let n = notification(DeliveryStatus::Pending);
        let item = to_item(&n).unwrap();
        // Each in the shard of its own id, so every rewrite of it lands in the same partition.
        let shard = format!("{:02}", keys::shard_of(n.id.as_str()));
        assert_eq!(item["gsi1pk"], s(&format!("OUTBOX#pending#{shard}")));
        assert_eq!(item["gsi1sk"], s(&format!("00000000000000000400#{}", n.id)));
        assert_eq!(item["gsi2pk"], s(&format!("UNDELIVERED#pending#{shard}")));
        assert_eq!(item["gsi2sk"], s(&format!("00000000000000000010#{}", n.id)));

        let exhausted = notification(DeliveryStatus::Exhausted);
        let shard = format!("{:02}", keys::shard_of(exhausted.id.as_str()));
        let exhausted = to_item(&exhausted).unwrap();
        assert!(!exhausted.contains_key("gsi1pk"), "no longer swept");
        assert_eq!(
            exhausted["gsi2pk"],
            s(&format!("UNDELIVERED#exhausted#{shard}"))
        );

        let delivered = to_item(&notification(DeliveryStatus::Delivered)).unwrap();
        assert!(!delivered.contains_key("gsi1pk") && !delivered.contains_key("gsi2pk"));
    }

    #[test]
    fn an_item_written_before_series_existed_reads_as_series_one_due_since_its_creation() {
        let id = NotificationId::generate();
        let charge = ChargeId::generate();
        let item: Item = [
            ("pk", s(&format!("CHARGE#{charge}"))),
            ("sk", s(&format!("NOTIFICATION#{id}"))),
            ("id", s(id.as_str())),
            ("charge_id", s(charge.as_str())),
            ("event_type", s("charge.succeeded")),
            ("object_id", s("ch_x")),
            ("body", s("{}")),
            ("status", s("pending")),
            ("attempts", n(5)),
            ("created_at", n(1_000)),
            ("version", n(6)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let read = from_item(item).unwrap();
        assert_eq!(
            read.series,
            Series {
                number: 1,
                started_at: 1_000,
                attempts: 5,
                next_attempt_at: Some(1_000),
                last_attempt_by: None
            }
        );
    }
}
