//! The EventBridge bus billing consumes notifications from: one `PutEvents` entry per
//! notification, `source: "paybridge"`, `detail-type` = the notification's type, `detail` = its
//! body (the same JSON billing's endpoint receives), `time` = when the change happened.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::domain::Publication;
use crate::ports::{BusError, EventBus};

/// The `source` of every event paybridge puts on the bus (billing's rules match on it).
pub const SOURCE: &str = "paybridge";

/// The bus `name` (a name or an ARN).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            name: name.into(),
        }
    }

    pub fn from_conf(conf: &super::SdkConfig, name: impl Into<String>) -> Self {
        Self::new(Client::new(conf), name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl EventBus for EventBridgeBus {
    async fn put(&self, p: &Publication) -> Result<String, BusError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE)
            .detail_type(&p.event_type)
            .detail(&p.body)
            .time(DateTime::from_secs(p.created_at))
            .build();
        let out = (self.client.put_events().entries(entry).send())
            .await
            .map_err(|e| {
                BusError(format!(
                    "PutEvents on {}: {}",
                    self.name,
                    aws_sdk_eventbridge::error::DisplayErrorContext(&e)
                ))
            })?;
        let first = out.entries().first();
        match first.and_then(|e| e.event_id()) {
            Some(id) if out.failed_entry_count() == 0 => Ok(id.to_owned()),
            _ => Err(BusError(format!(
                "PutEvents on {} refused the event: {} {}",
                self.name,
                first
                    .and_then(|e| e.error_code())
                    .unwrap_or("no error code"),
                first.and_then(|e| e.error_message()).unwrap_or("")
            ))),
        }
    }
}
