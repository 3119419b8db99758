//! Refund records: beside their charge (so one query lists them), with a pointer for lookup by
//! refund id (keys in [`super::keys`]).
//!
//! A refund's amount is reserved on its charge in the same transaction that stores the refund,
//! by one conditional update — `refundable >= :amount` — so two concurrent refunds can never both
//! take the last euro.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{
    Item, Table, TableError, Write, charges, gateway_refs, key_attributes, keys, outbox,
    pointer_item,
};
use crate::domain::Gateway;
use crate::domain::{
    Charge, ChargeId, ChargeStatus, Failure, Money, Notification, Refund, RefundId, RefundReason,
    RefundStatus,
};
use crate::ports::{GatewayObject, RefundStore, Reserved, StoreError};

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct RefundItem {
    pk: String,
    sk: String,
    /// GSI2 (sparse): set while the refund is pending.
    gsi2pk: Option<String>,
    gsi2sk: Option<String>,
    id: String,
    charge_id: String,
    amount: i64,
    currency: String,
    gateway: Gateway,
    gateway_ref: Option<String>,
    status: RefundStatus,
    reason: Option<RefundReason>,
    failure: Option<Failure>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    status_at: Option<i64>,
    #[serde(default)]
    external: bool,
    version: u64,
    created_at: i64,
    updated_at: i64,
}

fn to_item(r: &Refund) -> Result<Item, StoreError> {
    let (pk, sk) = keys::refund(&r.charge_id, &r.id);
    let open = r.status == RefundStatus::Pending;
    let item = RefundItem {
        pk,
        sk,
        gsi2pk: open.then(|| keys::sharded(keys::OPEN_REFUNDS, r.id.as_str())),
        gsi2sk: open.then(|| keys::time_ordered(r.updated_at, r.id.as_str())),
        id: r.id.to_string(),
        charge_id: r.charge_id.to_string(),
        amount: r.amount.minor(),
        currency: r.amount.currency().code().to_owned(),
        gateway: r.gateway,
        gateway_ref: r.gateway_ref.clone(),
        status: r.status,
        reason: r.reason,
        failure: r.failure.clone(),
        metadata: r.metadata.clone(),
        status_at: r.status_at,
        external: r.external,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    };
    serde_dynamo::to_item(item)
        .map_err(|e| StoreError::Invalid(format!("refund not serialisable: {e}")))
}

pub(super) fn from_item(item: Item) -> Result<Refund, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("unreadable refund record: {what}"));
    let i: RefundItem = serde_dynamo::from_item(item).map_err(|e| bad(e.to_string()))?;
    Ok(Refund {
        id: RefundId::parse(&i.id).map_err(|e| bad(e.to_string()))?,
        charge_id: ChargeId::parse(&i.charge_id).map_err(|e| bad(e.to_string()))?,
        amount: Money::parse(i.amount, &i.currency).map_err(|e| bad(e.to_string()))?,
        gateway: i.gateway,
        gateway_ref: i.gateway_ref,
        status: i.status,
        reason: i.reason,
        failure: i.failure,
        metadata: i.metadata,
        status_at: i.status_at,
        external: i.external,
        version: i.version,
        created_at: i.created_at,
        updated_at: i.updated_at,
    })
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl RefundStore for Table {
    async fn reserve_refund(&self, refund: &Refund) -> Result<Reserved, StoreError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let reserve = Update::builder()
            .table_name(&self.name)
            .set_key(Some(key_attributes(keys::charge(&refund.charge_id))))
            .update_expression(
                "SET refund_reserved = refund_reserved + :a, refundable = refundable - :a, version = version + :one, updated_at = :now",
            )
            .condition_expression("refundable >= :a AND #st IN (:succeeded, :partially)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":a", n(refund.amount.minor()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(refund.created_at))
            .expression_attribute_values(":succeeded", s(ChargeStatus::Succeeded.as_str()))
            .expression_attribute_values(":partially", s(ChargeStatus::PartiallyRefunded.as_str()))
            .build()
            .map_err(invalid)?;
        let store = Put::builder()
            .table_name(&self.name)
            .set_item(Some(to_item(refund)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(invalid)?;
        let lookup = Put::builder()
            .table_name(&self.name)
            .set_item(Some(pointer_item(
                keys::refund_pointer(&refund.id),
                &[("charge_id", refund.charge_id.as_str())],
            )))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(invalid)?;
        let items = vec![
            TransactWriteItem::builder().update(reserve).build(),
            TransactWriteItem::builder().put(store).build(),
            TransactWriteItem::builder().put(lookup).build(),
        ];
        match self.transact_items(items).await {
            Ok(()) => Ok(Reserved::Done),
            Err(TableError::ConditionFailed { failed, .. }) if failed.iter().any(|i| *i > 0) => {
                Ok(Reserved::Exists)
            }
            Err(TableError::ConditionFailed { .. }) => Ok(Reserved::Refused),
            Err(e) => Err(e.into()),
        }
    }

    async fn adopt_refund(
        &self,
        refund: &Refund,
        charge: &Charge,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        let reference = (refund.gateway_ref.as_deref().filter(|r| !r.is_empty()))
            .ok_or_else(|| StoreError::Invalid("an adopted refund needs its gateway id".into()))?;
        let expected = charge
            .version
            .checked_sub(1)
            .ok_or_else(|| StoreError::Invalid("charge version 0 cannot be saved".into()))?;
        let mut writes = vec![
            Write::PutNew(to_item(refund)?),
            Write::PutNew(pointer_item(
                keys::refund_pointer(&refund.id),
                &[("charge_id", refund.charge_id.as_str())],
            )),
            Write::PutNew(pointer_item(
                keys::gateway_ref(refund.gateway, reference),
                &[("kind", "refund"), ("target_id", refund.id.as_str())],
            )),
            Write::PutAtVersion(charges::to_item(charge)?, expected),
        ];
        writes.extend(outbox::writes(notifications)?);
        self.transact(writes).await.map_err(StoreError::from)
    }

    async fn get_refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        let key = |charge: &ChargeId| keys::refund(charge, id);
        (self.through_pointer(keys::refund_pointer(id), key).await?)
            .map(from_item)
            .transpose()
    }

    async fn refunds_for_charge(&self, charge: &ChargeId) -> Result<Vec<Refund>, StoreError> {
        let items = self.beside_charge(charge, keys::REFUND_SK_PREFIX).await?;
        items.into_iter().map(from_item).collect()
    }

    async fn save_refund(
        &self,
        refund: &Refund,
        charge: Option<&Charge>,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        let expected = |v: u64| {
            v.checked_sub(1)
                .ok_or_else(|| StoreError::Invalid("version 0 cannot be saved".into()))
        };
        let mut writes = vec![Write::PutAtVersion(
            to_item(refund)?,
            expected(refund.version)?,
        )];
        if let Some(c) = charge {
            writes.push(Write::PutAtVersion(
                charges::to_item(c)?,
                expected(c.version)?,
            ));
        }
        if let Some(reference) = refund.gateway_ref.as_deref().filter(|r| !r.is_empty()) {
            writes.push(gateway_refs::pointer(
                refund.gateway,
                reference,
                &GatewayObject::Refund(refund.id.clone()),
            ));
        }
        writes.extend(outbox::writes(notifications)?);
        self.transact(writes).await.map_err(StoreError::from)
    }
}
