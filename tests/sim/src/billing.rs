//! A billing system: it charges invoices and refunds them with idempotency keys (retrying with
//! the same key when an answer is lost, and now and then losing its key and retrying with a new
//! one), is down for long stretches, answers 4xx/5xx, and keeps its view of each charge, refund
//! and dispute built only from the notifications it accepted, applied by `version`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use paybridge::domain::Notification;
use paybridge::ports::{Notifier, NotifyOutcome};

use crate::faults::Faults;

/// One billing request of billing's own, and what became of it.
#[derive(Debug, Clone)]
pub struct Request {
    pub invoice: String,
    /// `charge` or `refund` (then `charge_id` is the charge refunded).
    pub kind: &'static str,
    pub key: String,
    pub body: String,
    pub charge_id: Option<String>,
    /// An answer billing can act on arrived (any final status); until then it retries.
    pub answered: bool,
    pub attempts: u32,
    /// Refused (a final 4xx): the charge or refund paybridge had chosen for its key, if any.
    pub refused: Option<(u16, Option<String>)>,
}

#[derive(Default)]
pub struct BillingState {
    pub down_until_ms: i64,
    /// Every notification id accepted, with its body.
    pub accepted: BTreeMap<String, serde_json::Value>,
    /// The newest view of each object (charge, refund, dispute) by id.
    pub views: BTreeMap<String, serde_json::Value>,
    /// The notification ids that carried each (object id, type, version).
    pub carried: BTreeMap<(String, String, u64), BTreeSet<String>>,
    pub requests: Vec<Request>,
}

#[derive(Clone)]
pub struct SimBilling {
    pub state: Arc<Mutex<BillingState>>,
    pub faults: Arc<Faults>,
    pub now_ms: Arc<AtomicI64>,
    /// Probability of a 5xx or a lost answer per delivery while faults are on.
    pub fault_rate: Arc<Mutex<f64>>,
}

impl SimBilling {
    /// Applies one notification: a new id is kept; an object's view moves only forward in version.
    fn accept(state: &mut BillingState, n: &Notification) {
        let body: serde_json::Value =
            serde_json::from_str(&n.body).expect("a notification body is JSON");
        let data = body["data"].clone();
        let id = data["id"].as_str().unwrap_or_default().to_owned();
        let version = data["version"].as_u64().unwrap_or(0);
        (state
            .carried
            .entry((id.clone(), n.event_type.clone(), version))
            .or_default())
        .insert(n.id.to_string());
        if state.accepted.insert(n.id.to_string(), body).is_some() {
            return;
        }
        let newer =
            (state.views.get(&id)).is_none_or(|v| v["version"].as_u64().unwrap_or(0) < version);
        if newer {
            state.views.insert(id, data);
        }
    }
}

impl Notifier for SimBilling {
    async fn send(&self, notification: &Notification, _timestamp: i64) -> NotifyOutcome {
        let now = self.now_ms.load(Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        if state.down_until_ms > now {
            self.faults.count("billing_down");
            return NotifyOutcome::RetryLater {
                status: Some(503),
                retry_after: None,
                error: "billing is down".into(),
            };
        }
        let rate = *self.fault_rate.lock().unwrap();
        if self.faults.in_invocation() && self.faults.chance(rate) {
            if self.faults.chance(0.5) {
                self.faults.count("billing_5xx");
                return NotifyOutcome::RetryLater {
                    status: Some(500),
                    retry_after: None,
                    error: "500".into(),
                };
            }
            // Applied, but the answer timed out: paybridge must send it again, billing dedupes.
            self.faults.count("billing_timeout_after_apply");
            Self::accept(&mut state, notification);
            return NotifyOutcome::RetryLater {
                status: None,
                retry_after: None,
                error: "timed out".into(),
            };
        }
        Self::accept(&mut state, notification);
        NotifyOutcome::Delivered { status: 200 }
    }
}
