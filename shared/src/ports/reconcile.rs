//! The reconciler's port: work in flight a page at a time, claims, what is set aside, and where
//! the last run stopped.

use std::future::Future;

use super::StoreError;
use crate::domain::event::EventRecord;
use crate::domain::{Charge, ChargeId, Gateway, Refund, RefundId};

/// An item a reconciler run claims so a concurrent run leaves it alone.
#[derive(Debug, Clone, Copy)]
pub enum ReconcileItem<'a> {
    Charge(&'a ChargeId),
    Refund(&'a ChargeId, &'a RefundId),
    Event(Gateway, &'a str),
}

/// One page of work in flight, oldest first, and where the next one starts (`None`: the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// An opaque cursor: pass it back as `after` for the next page.
    pub next: Option<String>,
}

/// Where a reconciler run that ran out of time stopped: the cursor of each kind of work in flight
/// (`None`: from the oldest). The next run goes on from there, then wraps around, so items that
/// stay unresolved at the front never keep a run from the newer ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumePoint {
    pub charges: Option<String>,
    pub refunds: Option<String>,
    pub events: Option<String>,
}

/// An item the reconciler set aside because nothing it can do resolves it: out of the work in
/// flight (so it no longer holds up the rest), listed for a person (`paybridge-ops attention`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Parked {
    /// `charge` or `refund`.
    pub kind: &'static str,
    pub id: String,
    pub charge_id: String,
    pub gateway: Gateway,
    pub gateway_ref: Option<String>,
    pub status: String,
    /// Why, as a code (`no_status_api`, `key_window_passed`, `several_at_gateway`).
    pub reason: String,
    /// When it was set aside (unix seconds).
    pub since: i64,
    pub created_at: i64,
}

/// What the reconciler reads: work in flight for longer than it should be, a page at a time.
pub trait ReconcileStore: Send + Sync {
    /// Charges in flight — pending or processing ones last changed before `before` (unix
    /// seconds), and requires_action ones whose customer was asked before `before` (the
    /// reconciler expires those) — oldest first, from after the cursor `after`, at most `limit`.
    fn open_charges(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> impl Future<Output = Result<Page<Charge>, StoreError>> + Send;
    /// Pending refunds last changed before `before`.
    fn open_refunds(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> impl Future<Output = Result<Page<Refund>, StoreError>> + Send;
    /// Events received before `before` and not yet processed.
    fn open_events(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> impl Future<Output = Result<Page<EventRecord>, StoreError>> + Send;
    /// Claims `item` for this run until `until`; `false` if another run holds it.
    fn claim_for_reconcile(
        &self,
        item: ReconcileItem<'_>,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Claims charge `id` like [`Self::claim_for_reconcile`] and returns it as it is now, read in
    /// the same write (`None`: another run holds it, or it is gone).
    fn claim_charge(
        &self,
        id: &ChargeId,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Option<Charge>, StoreError>> + Send;
    /// The same for a refund.
    fn claim_refund(
        &self,
        charge: &ChargeId,
        id: &RefundId,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Option<Refund>, StoreError>> + Send;
    /// Sets a charge or refund still in flight aside for a person, with `reason`; `false` if it
    /// is no longer in flight (settled meanwhile) or already set aside. The next write of the
    /// object (a webhook) puts it back into the work in flight, or settles it.
    fn park(
        &self,
        item: ReconcileItem<'_>,
        reason: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Puts a set-aside charge or refund back into the work in flight (a person looked);
    /// `false` if it was not set aside.
    fn unpark(
        &self,
        item: ReconcileItem<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Where the last run that ran out of time stopped (all `None`: start at the oldest).
    fn resume_point(&self) -> impl Future<Output = Result<ResumePoint, StoreError>> + Send;
    /// Records where this run stopped (all `None` once a run read everything).
    fn save_resume_point(
        &self,
        point: &ResumePoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every set-aside charge and refund, oldest first.
    fn parked(&self) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send;
    /// How many charges and refunds are set aside.
    fn count_parked(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}
