//! The billing endpoint's health record (`ENDPOINT#billing` / `HEALTH`, keys in
//! [`super::keys`]): consecutive failures and the last success across all notifications.
//!
//! Every attempt changes it with one `UpdateItem` whose arithmetic DynamoDB does (`ADD`,
//! `if_not_exists`), so concurrent attempts in many workers never overwrite each other's count —
//! there is no read-modify-write. Conditions keep answers that arrive out of order from rewriting
//! history: a failure older than the latest success is not counted, and a success older than the
//! latest failure does not reset the count (it still moves `last_success_at` forward).
//!
//! One item takes every attempt's write: DynamoDB allows about 1,000 writes a second to one item,
//! far above the rate at which billing notifications are delivered.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Deserialize;

use super::{Item, Table, classify, key_attributes, keys};
use crate::domain::{EndpointAttempt, EndpointHealth};
use crate::ports::StoreError;

#[derive(Deserialize)]
struct HealthItem {
    #[serde(default)]
    consecutive_failures: u32,
    last_success_at: Option<i64>,
    failing_since: Option<i64>,
    last_failure_at: Option<i64>,
    last_failure_status: Option<u16>,
}

fn read(item: Item) -> Result<EndpointHealth, StoreError> {
    let i: HealthItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Invalid(format!("unreadable endpoint health: {e}")))?;
    Ok(EndpointHealth {
        consecutive_failures: i.consecutive_failures,
        last_success_at: i.last_success_at,
        failing_since: i.failing_since,
        last_failure_at: i.last_failure_at,
        last_failure_status: i.last_failure_status,
    })
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// `Some(item after the update)`, or `None` if the condition did not hold.
async fn updated(request: UpdateItemFluentBuilder) -> Result<Option<Item>, StoreError> {
    match request.return_values(ReturnValue::AllNew).send().await {
        Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(classify(e).into()),
    }
}

impl Table {
    fn update_health(&self, now: i64) -> UpdateItemFluentBuilder {
        self.client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(key_attributes(keys::billing_endpoint_health())))
            .expression_attribute_values(":now", number(now))
    }

    /// Records one attempt's outcome at `now` and returns the health after it.
    pub(crate) async fn record_billing_attempt(
        &self,
        attempt: EndpointAttempt,
        now: i64,
    ) -> Result<EndpointHealth, StoreError> {
        const NO_LATER_SUCCESS: &str =
            "(attribute_not_exists(last_success_at) OR last_success_at <= :now)";
        let after = match attempt {
            EndpointAttempt::Accepted => {
                let reset = self
                    .update_health(now)
                    .update_expression(
                        "SET consecutive_failures = :zero, last_success_at = :now REMOVE failing_since",
                    )
                    .condition_expression(format!(
                        "{NO_LATER_SUCCESS} AND (attribute_not_exists(last_failure_at) OR last_failure_at <= :now)"
                    ))
                    .expression_attribute_values(":zero", number(0));
                match updated(reset).await? {
                    Some(item) => Some(item),
                    // A failure (or success) later than this one is recorded: keep its count,
                    // only move the last success forward if this one is later.
                    None => {
                        let later = self
                            .update_health(now)
                            .update_expression("SET last_success_at = :now")
                            .condition_expression(
                                "attribute_not_exists(last_success_at) OR last_success_at < :now",
                            );
                        updated(later).await?
                    }
                }
            }
            EndpointAttempt::NotAccepted { status } => {
                let mut failed = self
                    .update_health(now)
                    .condition_expression(NO_LATER_SUCCESS)
                    .expression_attribute_values(":one", number(1));
                failed = match status {
                    Some(s) => failed
                        .update_expression(
                            "SET last_failure_at = :now, failing_since = if_not_exists(failing_since, :now), \
                             last_failure_status = :status ADD consecutive_failures :one",
                        )
                        .expression_attribute_values(":status", number(i64::from(s))),
                    None => failed.update_expression(
                        "SET last_failure_at = :now, failing_since = if_not_exists(failing_since, :now) \
                         REMOVE last_failure_status ADD consecutive_failures :one",
                    ),
                };
                updated(failed).await?
            }
        };
        match after {
            Some(item) => read(item),
            None => Ok(self.billing_health().await?.unwrap_or_default()),
        }
    }

    /// The health record, if any attempt was ever recorded.
    pub(crate) async fn billing_health(&self) -> Result<Option<EndpointHealth>, StoreError> {
        (self.get_at(keys::billing_endpoint_health()).await?)
            .map(read)
            .transpose()
    }
}
