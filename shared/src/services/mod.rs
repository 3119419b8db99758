//! Use cases, one per module, generic over the ports.

pub mod apply_event;
pub mod charges;
pub mod deliver;
pub mod disputes;
/// In-memory ports, for unit tests and the deterministic simulation (feature `testkit`).
#[cfg(any(test, feature = "testkit"))]
pub mod fakes;
pub mod idempotency;
#[cfg(test)]
mod no_card_numbers_tests;
pub mod notify;
pub mod publish;
pub mod reconcile;
pub mod record_webhook;
pub mod recover;
pub mod refunds;
pub mod request;
pub mod retry_policy;
pub mod views;
pub mod work;

use crate::domain::idempotency::StoredResponse;

/// A use case's answer to an HTTP caller: status and JSON body (and whether it is a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
    /// Sent again from the idempotency record (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

impl ApiResponse {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        ApiResponse {
            status,
            body: body.to_string(),
            replayed: false,
        }
    }

    pub fn replay(stored: StoredResponse) -> Self {
        ApiResponse {
            status: stored.status,
            body: stored.body,
            replayed: true,
        }
    }

    pub fn to_stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status,
            body: self.body.clone(),
        }
    }
}
