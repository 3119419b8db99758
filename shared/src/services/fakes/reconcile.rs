//! The reconciler's reading in memory, as the DynamoDB store's sparse index gives it: work in
//! flight by when it last moved (a charge waiting for its customer by when it was asked), a claim
//! per item, what is set aside for a person, and where the last run stopped. A whole-object save
//! (`save_charge`, `save_refund`, `adopt_refund`) puts a set-aside object back and drops its
//! claim, as rewriting the item does.

use super::MemStore;
use crate::domain::event::EventRecord;
use crate::domain::{Charge, ChargeId, ChargeStatus, EventStatus, Refund, RefundId, RefundStatus};
use crate::ports::{Page, Parked, ReconcileItem, ReconcileStore, ResumePoint, StoreError};

/// The store's key of a reconcilable item.
pub(super) fn item_key(item: ReconcileItem<'_>) -> String {
    match item {
        ReconcileItem::Charge(id) => format!("charge#{id}"),
        ReconcileItem::Refund(_, id) => format!("refund#{id}"),
        ReconcileItem::Event(gateway, id) => format!("event#{gateway}#{id}"),
    }
}

/// When a charge last moved, for the index (`None`: not in flight).
fn charge_moved(c: &Charge) -> Option<i64> {
    match c.status {
        ChargeStatus::Pending | ChargeStatus::Processing => Some(c.updated_at),
        ChargeStatus::RequiresAction => {
            Some((c.customer_action.as_ref()).map_or(c.updated_at, |a| a.required_at))
        }
        _ => None,
    }
}

/// A page of `items` (sort key, value) before `before`, after the cursor, at most `limit`.
fn page<T: Clone>(
    mut items: Vec<(String, T)>,
    before: i64,
    after: Option<&str>,
    limit: i32,
) -> Page<T> {
    let bound = format!("{before:020}");
    items.retain(|(sk, _)| *sk < bound && after.is_none_or(|a| sk.as_str() > a));
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let limit = limit.max(1) as usize;
    items.truncate(limit);
    // A full page may have more behind it, as a query's page does.
    let next = (items.len() == limit).then(|| items[limit - 1].0.clone());
    Page {
        next,
        items: items.into_iter().map(|(_, v)| v).collect(),
    }
}

impl MemStore {
    fn is_parked(&self, key: &str) -> bool {
        self.parked.lock().unwrap().contains_key(key)
    }

    /// What a whole-object write does to the reconciler's marks: back from the set-aside, no claim.
    pub(super) fn rewritten(&self, item: ReconcileItem<'_>) {
        let key = item_key(item);
        self.parked.lock().unwrap().remove(&key);
        self.reconcile_until.lock().unwrap().remove(&key);
    }

    fn claim(&self, item: ReconcileItem<'_>, now: i64, until: i64) -> bool {
        let mut claims = self.reconcile_until.lock().unwrap();
        let key = item_key(item);
        if claims.get(&key).is_some_and(|held| *held >= now) {
            return false;
        }
        claims.insert(key, until);
        true
    }

    fn in_flight(&self, item: ReconcileItem<'_>) -> bool {
        match item {
            ReconcileItem::Charge(id) => {
                (self.charges.lock().unwrap().get(id)).is_some_and(|c| charge_moved(c).is_some())
            }
            ReconcileItem::Refund(_, id) => (self.refunds.lock().unwrap().get(id))
                .is_some_and(|r| r.status == RefundStatus::Pending),
            ReconcileItem::Event(..) => false,
        }
    }
}

impl ReconcileStore for MemStore {
    async fn open_charges(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<Charge>, StoreError> {
        self.up()?;
        let items = (self.charges.lock().unwrap().values())
            .filter(|c| !self.is_parked(&item_key(ReconcileItem::Charge(&c.id))))
            .filter_map(|c| Some((format!("{:020}#{}", charge_moved(c)?, c.id), c.clone())))
            .collect();
        Ok(page(items, before, after, limit))
    }

    async fn open_refunds(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<Refund>, StoreError> {
        self.up()?;
        let items = (self.refunds.lock().unwrap().values())
            .filter(|r| r.status == RefundStatus::Pending)
            .filter(|r| !self.is_parked(&item_key(ReconcileItem::Refund(&r.charge_id, &r.id))))
            .map(|r| (format!("{:020}#{}", r.updated_at, r.id), r.clone()))
            .collect();
        Ok(page(items, before, after, limit))
    }

    async fn open_events(
        &self,
        before: i64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<Page<EventRecord>, StoreError> {
        self.up()?;
        let open =
            |e: &EventRecord| matches!(e.status, EventStatus::Received | EventStatus::Queued);
        let items = (self.events.lock().unwrap().values())
            .filter(|e| open(e))
            .map(|e| {
                let sk = format!("{:020}#{}#{}", e.received_at, e.gateway, e.event_id);
                (sk, e.clone())
            })
            .collect();
        Ok(page(items, before, after, limit))
    }

    async fn claim_for_reconcile(
        &self,
        item: ReconcileItem<'_>,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        self.up()?;
        let exists = match item {
            ReconcileItem::Charge(id) => self.charges.lock().unwrap().contains_key(id),
            ReconcileItem::Refund(_, id) => self.refunds.lock().unwrap().contains_key(id),
            ReconcileItem::Event(gateway, id) => {
                (self.events.lock().unwrap()).contains_key(&(gateway, id.to_owned()))
            }
        };
        Ok(exists && self.claim(item, now, until))
    }

    async fn claim_charge(
        &self,
        id: &ChargeId,
        now: i64,
        until: i64,
    ) -> Result<Option<Charge>, StoreError> {
        self.up()?;
        let Some(charge) = self.charges.lock().unwrap().get(id).cloned() else {
            return Ok(None);
        };
        Ok(self
            .claim(ReconcileItem::Charge(id), now, until)
            .then_some(charge))
    }

    async fn claim_refund(
        &self,
        charge: &ChargeId,
        id: &RefundId,
        now: i64,
        until: i64,
    ) -> Result<Option<Refund>, StoreError> {
        self.up()?;
        let Some(refund) = self.refunds.lock().unwrap().get(id).cloned() else {
            return Ok(None);
        };
        Ok(self
            .claim(ReconcileItem::Refund(charge, id), now, until)
            .then_some(refund))
    }

    async fn park(
        &self,
        item: ReconcileItem<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.up()?;
        if matches!(item, ReconcileItem::Event(..)) {
            return Err(StoreError::Invalid("events are never set aside".into()));
        }
        let key = item_key(item);
        if !self.in_flight(item) || self.is_parked(&key) {
            return Ok(false);
        }
        self.parked
            .lock()
            .unwrap()
            .insert(key, (reason.to_owned(), now));
        Ok(true)
    }

    async fn unpark(&self, item: ReconcileItem<'_>) -> Result<bool, StoreError> {
        self.up()?;
        let key = item_key(item);
        let was = self.parked.lock().unwrap().remove(&key).is_some();
        if was {
            self.reconcile_until.lock().unwrap().remove(&key);
        }
        Ok(was)
    }

    async fn resume_point(&self) -> Result<ResumePoint, StoreError> {
        self.up()?;
        Ok(self.resume.lock().unwrap().clone())
    }

    async fn save_resume_point(&self, point: &ResumePoint) -> Result<(), StoreError> {
        self.up()?;
        *self.resume.lock().unwrap() = point.clone();
        Ok(())
    }

    async fn parked(&self) -> Result<Vec<Parked>, StoreError> {
        self.up()?;
        let parked = self.parked.lock().unwrap().clone();
        let mut list = Vec::new();
        for c in self.charges.lock().unwrap().values() {
            if let Some((reason, since)) = parked.get(&item_key(ReconcileItem::Charge(&c.id))) {
                list.push(Parked {
                    kind: "charge",
                    id: c.id.to_string(),
                    charge_id: c.id.to_string(),
                    gateway: c.gateway,
                    gateway_ref: c.gateway_ref.clone(),
                    status: c.status.as_str().to_owned(),
                    reason: reason.clone(),
                    since: *since,
                    created_at: c.created_at,
                });
            }
        }
        for r in self.refunds.lock().unwrap().values() {
            let key = item_key(ReconcileItem::Refund(&r.charge_id, &r.id));
            if let Some((reason, since)) = parked.get(&key) {
                list.push(Parked {
                    kind: "refund",
                    id: r.id.to_string(),
                    charge_id: r.charge_id.to_string(),
                    gateway: r.gateway,
                    gateway_ref: r.gateway_ref.clone(),
                    status: r.status.as_str().to_owned(),
                    reason: reason.clone(),
                    since: *since,
                    created_at: r.created_at,
                });
            }
        }
        list.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        Ok(list)
    }

    async fn count_parked(&self) -> Result<usize, StoreError> {
        self.up()?;
        Ok(self.parked.lock().unwrap().len())
    }
}
