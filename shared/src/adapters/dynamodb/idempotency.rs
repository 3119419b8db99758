//! Idempotency records (keys in [`super::keys`]).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Item, Table, TableError, key_attributes, keys, update};
use crate::domain::idempotency::{
    IdempotencyKey, IdempotencyRecord, IdempotencyStatus, StoredResponse,
};
use crate::ports::{Claimed, IdempotencyStore, StoreError};

#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    sk: String,
    operation: String,
    key: String,
    fingerprint: String,
    status: IdempotencyStatus,
    resource_id: String,
    owner: String,
    in_progress_until: i64,
    response_status: Option<u16>,
    response_body: Option<String>,
    expires_at: i64,
}

fn read(item: Item) -> Result<IdempotencyRecord, StoreError> {
    let i: IdempotencyItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Invalid(format!("unreadable idempotency record: {e}")))?;
    let key = IdempotencyKey::parse(&i.key).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let response = match (i.response_status, i.response_body) {
        (Some(status), Some(body)) => Some(StoredResponse { status, body }),
        _ => None,
    };
    Ok(IdempotencyRecord {
        operation: i.operation,
        key,
        fingerprint: i.fingerprint,
        status: i.status,
        resource_id: i.resource_id,
        owner: i.owner,
        in_progress_until: i.in_progress_until,
        response,
        expires_at: i.expires_at,
    })
}

impl Table {
    fn idempotency_update(
        &self,
        operation: &str,
        key: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key_attributes(keys::idempotency(operation, key))))
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#u", "in_progress_until")
            .expression_attribute_values(":in_progress", AttributeValue::S("in_progress".into()))
    }
}

impl IdempotencyStore for Table {
    async fn claim(&self, r: &IdempotencyRecord) -> Result<Claimed, StoreError> {
        let (pk, sk) = keys::idempotency(&r.operation, r.key.as_str());
        let item = IdempotencyItem {
            pk,
            sk,
            operation: r.operation.clone(),
            key: r.key.as_str().to_owned(),
            fingerprint: r.fingerprint.clone(),
            status: r.status,
            resource_id: r.resource_id.clone(),
            owner: r.owner.clone(),
            in_progress_until: r.in_progress_until,
            response_status: r.response.as_ref().map(|x| x.status),
            response_body: r.response.as_ref().map(|x| x.body.clone()),
            expires_at: r.expires_at,
        };
        let item = serde_dynamo::to_item(item).map_err(|e| StoreError::Invalid(e.to_string()))?;
        match self.put_new(item).await {
            Ok(()) => Ok(Claimed::New),
            Err(TableError::ConditionFailed {
                existing: Some(existing),
                ..
            }) => Ok(Claimed::Existing(read(*existing)?)),
            Err(TableError::ConditionFailed { existing: None, .. }) => {
                let item = self
                    .get_at(keys::idempotency(&r.operation, r.key.as_str()))
                    .await?
                    .ok_or(StoreError::Conflict)?;
                Ok(Claimed::Existing(read(item)?))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn resume(
        &self,
        operation: &str,
        key: &str,
        seen_until: i64,
        owner: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        update(
            self.idempotency_update(operation, key)
                .update_expression("SET #o = :owner, #u = :until")
                .condition_expression("#s = :in_progress AND #u = :seen")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
                .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
                .expression_attribute_values(":seen", AttributeValue::N(seen_until.to_string())),
        )
        .await
    }

    async fn complete(
        &self,
        operation: &str,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        update(
            self.idempotency_update(operation, key)
                .update_expression(
                    "SET #s = :completed, #u = :zero, response_status = :rs, response_body = :rb",
                )
                .condition_expression("#s = :in_progress AND #o = :owner")
                .expression_attribute_values(":completed", AttributeValue::S("completed".into()))
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
                .expression_attribute_values(":rs", AttributeValue::N(response.status.to_string()))
                .expression_attribute_values(":rb", AttributeValue::S(response.body.clone()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into())),
        )
        .await
    }

    async fn release(&self, operation: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        update(
            self.idempotency_update(operation, key)
                .update_expression("SET #u = :zero")
                .condition_expression("#s = :in_progress AND #o = :owner")
                .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into())),
        )
        .await
    }
}
