//! The SQS work queue.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue};

use crate::domain::WorkMessage;
use crate::ports::{DeadLetters, QueueError, ReceivedMessages, WorkQueue};

/// SQS caps a message delay at 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// The work queue (or the DLQ) at `url`.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    url: String,
}

impl SqsWorkQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        SqsWorkQueue {
            client,
            url: url.into(),
        }
    }

    pub fn from_conf(conf: &super::SdkConfig, url: impl Into<String>) -> Self {
        Self::new(Client::new(conf), url)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Puts a raw body on the queue (the DLQ for messages the worker cannot read, redrive).
    pub async fn send_raw(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        // No delay of ours: the queue's own default applies.
        (self.send_body(body, ("dead_letter_reason", reason), None)).await
    }

    /// Sends `body` with one string attribute, visible after `delay` if given (SQS caps it at
    /// 15 minutes).
    async fn send_body(
        &self,
        body: &str,
        (name, value): (&str, &str),
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| QueueError(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_delay_seconds(delay.map(|d| d.min(MAX_DELAY).as_secs() as i32))
            .message_attributes(name, attribute)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(Box::new(e)))
    }

    /// Receives up to `max` (1–10) messages, long-polling up to `wait`.
    pub async fn receive(&self, max: i32, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(Box::new(e)))
    }

    /// Makes a received message visible again after `after` (backoff for a failed attempt).
    pub async fn retry_after(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(after.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(Box::new(e)))
    }
}

/// What a redrive moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub moved: usize,
    /// Messages the worker itself dead-lettered as unreadable, with the reason it gave: moving
    /// them back helps only if a new worker version reads them.
    pub unreadable: Vec<String>,
}

impl SqsWorkQueue {
    /// Moves up to `max` messages from this queue (the DLQ) to `target` (the work queue): send
    /// first, then delete, so a crash in between duplicates a message rather than losing it
    /// (every work message is idempotent).
    pub async fn redrive_to(
        &self,
        target: &SqsWorkQueue,
        max: usize,
    ) -> Result<Redriven, QueueError> {
        let mut report = Redriven::default();
        while report.moved < max {
            let batch = self.receive(10, Duration::from_secs(1)).await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                if report.moved >= max {
                    break;
                }
                let body = message.body().unwrap_or_default();
                let reason = message
                    .message_attributes()
                    .and_then(|a| a.get("dead_letter_reason"))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned);
                target
                    .client
                    .send_message()
                    .queue_url(&target.url)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(|e| QueueError(Box::new(e)))?;
                if let Some(receipt) = message.receipt_handle() {
                    self.delete(receipt).await?;
                }
                if let Some(reason) = reason {
                    report.unreadable.push(reason);
                }
                report.moved += 1;
            }
        }
        Ok(report)
    }
}

impl ReceivedMessages for SqsWorkQueue {
    async fn redeliver_after(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        self.retry_after(receipt_handle, after).await
    }
}

impl DeadLetters for SqsWorkQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.send_raw(body, reason).await
    }
}

impl WorkQueue for SqsWorkQueue {
    async fn send(&self, message: &WorkMessage, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(Box::new(e)))?;
        (self.send_body(&body, ("work_key", &message.dedup_key()), Some(delay))).await
    }
}
