//! The in-memory table (`paybridge::services::fakes::MemStore`, DynamoDB's conditions) as the
//! functions reach it: every call through the fault injector.

use std::sync::Arc;

use paybridge::domain::event::EventRecord;
use paybridge::domain::idempotency::{IdempotencyRecord, StoredResponse};
use paybridge::domain::{
    Charge, ChargeId, DeliveryStatus, DisputeId, EndpointAttempt, EndpointHealth, EventStatus,
    Gateway, Notification, NotificationId, Publication, Refund, RefundId,
};
use paybridge::ports::{
    ChargeInserted, ChargeStore, Claimed, CreatedFrom, EventStore, GatewayObject, GatewayRefLookup,
    IdempotencyStore, Inserted, InvoiceCharges, NotificationStore, Page, Parked, PublicationStore,
    ReconcileItem, ReconcileStore, RefundStore, Reserved, ResumePoint, StoreError,
};
use paybridge::services::fakes::MemStore;

use crate::faults::Faults;

#[derive(Clone)]
pub struct SimStore {
    pub mem: Arc<MemStore>,
    pub faults: Arc<Faults>,
}

fn unavailable(why: &'static str) -> StoreError {
    StoreError::Unavailable(why.into())
}

/// Each method: the same call on the table, through the injector.
macro_rules! through {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty;)*) => {
        $(
            async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                self.faults.call("store", self.mem.$name($($arg),*), unavailable).await
            }
        )*
    };
}

impl EventStore for SimStore {
    through! {
        insert_event(record: &EventRecord) -> Inserted;
        get_event(gateway: Gateway, event_id: &str) -> Option<EventRecord>;
        claim_enqueue_lease(gateway: Gateway, event_id: &str, seen_lease: i64, new_lease: i64) -> ();
        finish_event(gateway: Gateway, event_id: &str, status: EventStatus) -> ();
    }
}

impl ChargeStore for SimStore {
    through! {
        invoice_charges(invoice_id: &str) -> InvoiceCharges;
        insert_charge(charge: &Charge, seen: &InvoiceCharges) -> ChargeInserted;
        get_charge(id: &ChargeId) -> Option<Charge>;
        save_charge(charge: &Charge, notifications: &[Notification]) -> ();
        charge_of_dispute(id: &DisputeId) -> Option<Charge>;
        charges_for_invoice(invoice_id: &str) -> Vec<Charge>;
    }
}

impl RefundStore for SimStore {
    through! {
        reserve_refund(refund: &Refund) -> Reserved;
        adopt_refund(refund: &Refund, charge: &Charge, notifications: &[Notification]) -> ();
        get_refund(id: &RefundId) -> Option<Refund>;
        refunds_for_charge(charge: &ChargeId) -> Vec<Refund>;
        save_refund(refund: &Refund, charge: Option<&Charge>, notifications: &[Notification]) -> ();
    }
}

impl IdempotencyStore for SimStore {
    through! {
        claim(record: &IdempotencyRecord) -> Claimed;
        resume(operation: &str, key: &str, seen_until: i64, owner: &str, until: i64) -> ();
        complete(operation: &str, key: &str, owner: &str, response: &StoredResponse) -> ();
        release(operation: &str, key: &str, owner: &str) -> ();
    }
}

impl GatewayRefLookup for SimStore {
    through! {
        find_gateway_ref(gateway: Gateway, reference: &str) -> Option<GatewayObject>;
    }
}

impl NotificationStore for SimStore {
    through! {
        get_notification(id: &NotificationId) -> Option<Notification>;
        save_notification(notification: &Notification) -> ();
        notifications_for_charge(charge: &ChargeId) -> Vec<Notification>;
        pending_notifications(before: i64, limit: i32) -> Vec<Notification>;
        undelivered_notifications(status: DeliveryStatus, from: CreatedFrom<'_>, limit: i32) -> Vec<Notification>;
        record_endpoint_attempt(attempt: EndpointAttempt, now: i64) -> EndpointHealth;
        endpoint_health() -> Option<EndpointHealth>;
    }
}

impl PublicationStore for SimStore {
    through! {
        get_publication(charge: &ChargeId, id: &NotificationId) -> Option<Publication>;
        save_publication(publication: &Publication) -> ();
        pending_publications(before: i64, limit: i32) -> Vec<Publication>;
    }
}

impl ReconcileStore for SimStore {
    through! {
        open_charges(before: i64, after: Option<&str>, limit: i32) -> Page<Charge>;
        open_refunds(before: i64, after: Option<&str>, limit: i32) -> Page<Refund>;
        open_events(before: i64, after: Option<&str>, limit: i32) -> Page<EventRecord>;
        claim_for_reconcile(item: ReconcileItem<'_>, now: i64, until: i64) -> bool;
        claim_charge(id: &ChargeId, now: i64, until: i64) -> Option<Charge>;
        claim_refund(charge: &ChargeId, id: &RefundId, now: i64, until: i64) -> Option<Refund>;
        park(item: ReconcileItem<'_>, reason: &str, now: i64) -> bool;
        unpark(item: ReconcileItem<'_>) -> bool;
        resume_point() -> ResumePoint;
        save_resume_point(point: &ResumePoint) -> ();
        parked() -> Vec<Parked>;
        count_parked() -> usize;
    }
}
