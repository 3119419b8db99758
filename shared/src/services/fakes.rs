//! In-memory fakes of the ports, for unit tests of the use cases (the adapters are tested against
//! moto and the gateway fakes in `tests/`). Each keeps what it was asked in plain fields, so a
//! test can assert on it; a store can be told to be down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::event::EventRecord;
use crate::domain::idempotency::IdempotencyRecord;
use crate::domain::{
    Charge, ChargeId, DeliveryStatus, EndpointAttempt, EndpointHealth, EventStatus, Gateway,
    Notification, NotificationId, Publication, Refund, RefundId, WorkMessage,
};
use crate::error::BoxError;
use crate::ports::{
    ChargeInserted, ChargeStore, CreatedFrom, DeadLetters, EventStore, GatewayObject,
    GatewayRefLookup, Inserted, InvoiceCharges, NotificationStore, QueueError, ReceivedMessages,
    ReconcileItem, RefundStore, Reserved, ResumePoint, StoreError,
};

mod bus;
mod idempotency;
mod reconcile;
mod scripted;
pub use bus::MemBus;
pub use scripted::{ScriptedBilling, ScriptedGateway};

/// One table's worth of records, behind a lock.
#[derive(Default)]
pub struct MemStore {
    pub events: Mutex<HashMap<(Gateway, String), EventRecord>>,
    pub charges: Mutex<HashMap<ChargeId, Charge>>,
    /// Each invoice's charge list (the invoice record).
    pub invoices: Mutex<HashMap<String, InvoiceCharges>>,
    pub refunds: Mutex<HashMap<RefundId, Refund>>,
    pub notifications: Mutex<HashMap<NotificationId, Notification>>,
    pub publications: Mutex<HashMap<NotificationId, Publication>>,
    pub gateway_refs: Mutex<HashMap<(Gateway, String), GatewayObject>>,
    pub endpoint_health: Mutex<Option<EndpointHealth>>,
    /// Idempotency records by (operation, key).
    pub idempotency: Mutex<HashMap<(String, String), IdempotencyRecord>>,
    /// The reconciler's claims (`reconcile_until`) by item.
    pub reconcile_until: Mutex<HashMap<String, i64>>,
    /// What the reconciler set aside for a person: (reason, since) by item.
    pub parked: Mutex<HashMap<String, (String, i64)>>,
    pub resume: Mutex<ResumePoint>,
    /// While set, every call answers `StoreError::Unavailable`.
    pub down: Mutex<bool>,
}

/// The values of `map` that `keep`, ordered by `order` (ids are time-ordered, like sort keys).
fn listed<K, V: Clone, O: Ord>(
    map: &Mutex<HashMap<K, V>>,
    keep: impl Fn(&V) -> bool,
    order: impl Fn(&V) -> O,
) -> Vec<V> {
    let mut list: Vec<V> = (map.lock().unwrap().values())
        .filter(|v| keep(v))
        .cloned()
        .collect();
    list.sort_by_key(|v| order(v));
    list
}

/// The store's reading of `pending_notifications`: pending, next attempt due before `before`,
/// earliest due first (then by id, as the index's sort key), at most `limit`.
pub fn due_notifications<'a>(
    all: impl Iterator<Item = &'a Notification>,
    before: i64,
    limit: i32,
) -> Vec<Notification> {
    let due = |n: &Notification| n.series.next_attempt_at.unwrap_or(n.created_at);
    let mut list: Vec<Notification> = all
        .filter(|n| n.status == DeliveryStatus::Pending && due(n) < before)
        .cloned()
        .collect();
    list.sort_by_key(|n| (due(n), n.id.clone()));
    list.truncate(limit.max(0) as usize);
    list
}

/// The store's reading of `undelivered_notifications`: of `status`, by creation (then id) from
/// `from`, at most `limit`.
pub fn undelivered_in<'a>(
    all: impl Iterator<Item = &'a Notification>,
    status: DeliveryStatus,
    from: CreatedFrom<'_>,
    limit: i32,
) -> Vec<Notification> {
    let key = |n: &Notification| (n.created_at, n.id.clone());
    let mut list: Vec<Notification> = all
        .filter(|n| n.status == status && status != DeliveryStatus::Delivered)
        .filter(|n| match from {
            CreatedFrom::Since(t) => n.created_at >= t,
            CreatedFrom::After(last) => key(n) > key(last),
        })
        .cloned()
        .collect();
    list.sort_by_key(key);
    list.truncate(limit.max(0) as usize);
    list
}

fn unavailable() -> StoreError {
    StoreError::Unavailable(BoxError::from("the in-memory store is down"))
}

impl MemStore {
    /// Stores `charge` and lists it on its invoice, as a charge created through the API is.
    pub async fn put_charge(&self, charge: &Charge) {
        let seen = self.invoice_charges(&charge.invoice_id).await.unwrap();
        let done = self.insert_charge(charge, &seen).await.unwrap();
        assert_eq!(done, ChargeInserted::Done, "put_charge of {}", charge.id);
    }

    fn up(&self) -> Result<(), StoreError> {
        if *self.down.lock().unwrap() {
            Err(unavailable())
        } else {
            Ok(())
        }
    }

    /// Versioned replace: the stored version must be one less than `version`.
    fn check_version<K: std::hash::Hash + Eq, V>(
        map: &HashMap<K, V>,
        key: &K,
        version: u64,
        stored: impl Fn(&V) -> u64,
    ) -> Result<(), StoreError> {
        match map.get(key) {
            Some(v) if stored(v) + 1 == version => Ok(()),
            _ => Err(StoreError::Conflict),
        }
    }

    /// What a committed save writes besides the object: its gateway-reference pointer and the
    /// notifications it causes (the outbox).
    fn add_pointer_and_outbox(
        &self,
        gateway: Gateway,
        reference: Option<&str>,
        target: GatewayObject,
        notifications: &[Notification],
    ) {
        if let Some(r) = reference.filter(|r| !r.is_empty()) {
            (self.gateway_refs.lock().unwrap()).insert((gateway, r.to_owned()), target);
        }
        self.add_outbox(notifications);
    }

    /// Each notification's record per target, as the table's transaction writes them.
    pub fn add_outbox(&self, notifications: &[Notification]) {
        let mut map = self.notifications.lock().unwrap();
        let mut publications = self.publications.lock().unwrap();
        for n in notifications {
            if n.targets.http {
                map.insert(n.id.clone(), n.clone());
            }
            if n.targets.event_bus {
                publications.insert(n.id.clone(), Publication::of(n));
            }
        }
    }
}

impl EventStore for MemStore {
    async fn insert_event(&self, record: &EventRecord) -> Result<Inserted, StoreError> {
        self.up()?;
        let key = (record.gateway, record.event_id.clone());
        let mut map = self.events.lock().unwrap();
        if let Some(existing) = map.get(&key) {
            return Ok(Inserted::Existing(existing.clone()));
        }
        map.insert(key, record.clone());
        Ok(Inserted::New)
    }

    async fn get_event(
        &self,
        gateway: Gateway,
        event_id: &str,
    ) -> Result<Option<EventRecord>, StoreError> {
        self.up()?;
        let map = self.events.lock().unwrap();
        Ok(map.get(&(gateway, event_id.to_owned())).cloned())
    }

    async fn claim_enqueue_lease(
        &self,
        gateway: Gateway,
        event_id: &str,
        seen_lease: i64,
        new_lease: i64,
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut map = self.events.lock().unwrap();
        match map.get_mut(&(gateway, event_id.to_owned())) {
            Some(r) if r.status == EventStatus::Received && r.enqueue_lease_until == seen_lease => {
                r.enqueue_lease_until = new_lease;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn finish_event(
        &self,
        gateway: Gateway,
        event_id: &str,
        status: EventStatus,
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut map = self.events.lock().unwrap();
        match map.get_mut(&(gateway, event_id.to_owned())) {
            Some(r) if matches!(r.status, EventStatus::Received | EventStatus::Queued) => {
                r.status = status;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

impl ChargeStore for MemStore {
    async fn invoice_charges(&self, invoice_id: &str) -> Result<InvoiceCharges, StoreError> {
        self.up()?;
        let mut record =
            (self.invoices.lock().unwrap().get(invoice_id).cloned()).unwrap_or_default();
        // As the DynamoDB store: charges stored without the invoice record are found by invoice.
        let of_invoice = |c: &Charge| c.invoice_id == invoice_id;
        for c in listed(&self.charges, of_invoice, |c: &Charge| {
            (c.created_at, c.id.clone())
        }) {
            if !record.charge_ids.contains(&c.id) {
                record.charge_ids.push(c.id);
            }
        }
        Ok(record)
    }

    async fn insert_charge(
        &self,
        charge: &Charge,
        seen: &InvoiceCharges,
    ) -> Result<ChargeInserted, StoreError> {
        self.up()?;
        let mut map = self.charges.lock().unwrap();
        let mut invoices = self.invoices.lock().unwrap();
        if map.contains_key(&charge.id) {
            return Ok(ChargeInserted::Exists);
        }
        let version = invoices.get(&charge.invoice_id).map_or(0, |i| i.version);
        if version != seen.version {
            return Ok(ChargeInserted::InvoiceMoved);
        }
        let mut charge_ids = seen.charge_ids.clone();
        charge_ids.push(charge.id.clone());
        let listed = InvoiceCharges {
            charge_ids,
            version: version + 1,
        };
        invoices.insert(charge.invoice_id.clone(), listed);
        map.insert(charge.id.clone(), charge.clone());
        Ok(ChargeInserted::Done)
    }

    async fn get_charge(&self, id: &ChargeId) -> Result<Option<Charge>, StoreError> {
        self.up()?;
        Ok(self.charges.lock().unwrap().get(id).cloned())
    }

    async fn save_charge(
        &self,
        charge: &Charge,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        self.up()?;
        {
            let mut map = self.charges.lock().unwrap();
            Self::check_version(&map, &charge.id, charge.version, |c| c.version)?;
            map.insert(charge.id.clone(), charge.clone());
        }
        self.rewritten(ReconcileItem::Charge(&charge.id));
        let target = GatewayObject::Charge(charge.id.clone());
        let reference = charge.gateway_ref.as_deref();
        self.add_pointer_and_outbox(charge.gateway, reference, target, notifications);
        Ok(())
    }

    async fn charge_of_dispute(
        &self,
        id: &crate::domain::DisputeId,
    ) -> Result<Option<Charge>, StoreError> {
        self.up()?;
        let map = self.charges.lock().unwrap();
        Ok(map
            .values()
            .find(|c| c.disputes.iter().any(|d| &d.id == id))
            .cloned())
    }

    async fn charges_for_invoice(&self, invoice_id: &str) -> Result<Vec<Charge>, StoreError> {
        self.up()?;
        let of_invoice = |c: &Charge| c.invoice_id == invoice_id;
        Ok(listed(&self.charges, of_invoice, |c| c.id.clone()))
    }
}

impl RefundStore for MemStore {
    async fn reserve_refund(&self, refund: &Refund) -> Result<Reserved, StoreError> {
        self.up()?;
        let mut charges = self.charges.lock().unwrap();
        let mut refunds = self.refunds.lock().unwrap();
        if refunds.contains_key(&refund.id) {
            return Ok(Reserved::Exists);
        }
        let Some(charge) = charges.get_mut(&refund.charge_id) else {
            return Ok(Reserved::Refused);
        };
        if !charge.status.is_captured() || charge.refundable() < refund.amount.minor() {
            return Ok(Reserved::Refused);
        }
        charge.refund_reserved += refund.amount.minor();
        charge.version += 1;
        refunds.insert(refund.id.clone(), refund.clone());
        Ok(Reserved::Done)
    }

    async fn adopt_refund(
        &self,
        refund: &Refund,
        charge: &Charge,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        self.up()?;
        let reference = refund.gateway_ref.clone().unwrap_or_default();
        {
            let mut charges = self.charges.lock().unwrap();
            let mut refunds = self.refunds.lock().unwrap();
            let mut refs = self.gateway_refs.lock().unwrap();
            if refunds.contains_key(&refund.id)
                || refs.contains_key(&(refund.gateway, reference.clone()))
            {
                return Err(StoreError::Conflict);
            }
            Self::check_version(&charges, &charge.id, charge.version, |c| c.version)?;
            charges.insert(charge.id.clone(), charge.clone());
            refunds.insert(refund.id.clone(), refund.clone());
            refs.insert(
                (refund.gateway, reference),
                GatewayObject::Refund(refund.id.clone()),
            );
        }
        self.rewritten(ReconcileItem::Charge(&charge.id));
        self.add_outbox(notifications);
        Ok(())
    }

    async fn get_refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        self.up()?;
        Ok(self.refunds.lock().unwrap().get(id).cloned())
    }

    async fn refunds_for_charge(&self, charge: &ChargeId) -> Result<Vec<Refund>, StoreError> {
        self.up()?;
        let of_charge = |r: &Refund| &r.charge_id == charge;
        Ok(listed(&self.refunds, of_charge, |r| r.id.clone()))
    }

    async fn save_refund(
        &self,
        refund: &Refund,
        charge: Option<&Charge>,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        self.up()?;
        {
            let mut charges = self.charges.lock().unwrap();
            let mut refunds = self.refunds.lock().unwrap();
            Self::check_version(&refunds, &refund.id, refund.version, |r| r.version)?;
            if let Some(c) = charge {
                Self::check_version(&charges, &c.id, c.version, |c| c.version)?;
                charges.insert(c.id.clone(), c.clone());
            }
            refunds.insert(refund.id.clone(), refund.clone());
        }
        self.rewritten(ReconcileItem::Refund(&refund.charge_id, &refund.id));
        if let Some(c) = charge {
            self.rewritten(ReconcileItem::Charge(&c.id));
        }
        let target = GatewayObject::Refund(refund.id.clone());
        let reference = refund.gateway_ref.as_deref();
        self.add_pointer_and_outbox(refund.gateway, reference, target, notifications);
        Ok(())
    }
}

impl GatewayRefLookup for MemStore {
    async fn find_gateway_ref(
        &self,
        gateway: Gateway,
        reference: &str,
    ) -> Result<Option<GatewayObject>, StoreError> {
        self.up()?;
        let map = self.gateway_refs.lock().unwrap();
        Ok(map.get(&(gateway, reference.to_owned())).cloned())
    }
}

impl NotificationStore for MemStore {
    async fn get_notification(
        &self,
        id: &NotificationId,
    ) -> Result<Option<Notification>, StoreError> {
        self.up()?;
        Ok(self.notifications.lock().unwrap().get(id).cloned())
    }

    async fn save_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.up()?;
        let mut map = self.notifications.lock().unwrap();
        Self::check_version(&map, &n.id, n.version, |n| n.version)?;
        map.insert(n.id.clone(), n.clone());
        Ok(())
    }

    async fn notifications_for_charge(
        &self,
        charge: &ChargeId,
    ) -> Result<Vec<Notification>, StoreError> {
        self.up()?;
        let of_charge = |n: &Notification| &n.charge_id == charge;
        Ok(listed(&self.notifications, of_charge, |n| n.id.clone()))
    }

    async fn pending_notifications(
        &self,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        self.up()?;
        let all = self.notifications.lock().unwrap();
        Ok(due_notifications(all.values(), before, limit))
    }

    async fn undelivered_notifications(
        &self,
        status: DeliveryStatus,
        from: CreatedFrom<'_>,
        limit: i32,
    ) -> Result<Vec<Notification>, StoreError> {
        self.up()?;
        let all = self.notifications.lock().unwrap();
        Ok(undelivered_in(all.values(), status, from, limit))
    }

    async fn record_endpoint_attempt(
        &self,
        attempt: EndpointAttempt,
        now: i64,
    ) -> Result<EndpointHealth, StoreError> {
        self.up()?;
        let mut health = self.endpoint_health.lock().unwrap();
        let h = health.get_or_insert_with(EndpointHealth::default);
        h.record(attempt, now);
        Ok(h.clone())
    }

    async fn endpoint_health(&self) -> Result<Option<EndpointHealth>, StoreError> {
        self.up()?;
        Ok(self.endpoint_health.lock().unwrap().clone())
    }
}

/// A queue that records what was sent, dead-lettered and hidden.
#[derive(Default)]
pub struct MemQueue {
    pub sent: Mutex<Vec<(WorkMessage, Duration)>>,
    pub dead_letters: Mutex<Vec<(String, String)>>,
    pub redeliveries: Mutex<Vec<(String, Duration)>>,
    /// While set, every call answers `QueueError`.
    pub down: Mutex<bool>,
}

impl MemQueue {
    fn up(&self) -> Result<(), QueueError> {
        if *self.down.lock().unwrap() {
            Err(QueueError(BoxError::from("the in-memory queue is down")))
        } else {
            Ok(())
        }
    }
}

impl crate::ports::WorkQueue for MemQueue {
    async fn send(&self, message: &WorkMessage, delay: Duration) -> Result<(), QueueError> {
        self.up()?;
        self.sent.lock().unwrap().push((message.clone(), delay));
        Ok(())
    }
}

impl ReceivedMessages for MemQueue {
    async fn redeliver_after(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        self.up()?;
        (self.redeliveries.lock().unwrap()).push((receipt_handle.to_owned(), after));
        Ok(())
    }
}

impl DeadLetters for MemQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.up()?;
        (self.dead_letters.lock().unwrap()).push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}
