//! The notification bus in memory: the store's publications, and a bus that answers from a
//! script.

use std::sync::Mutex;

use super::{MemStore, listed};
use crate::domain::{ChargeId, NotificationId, Publication, PublicationStatus};
use crate::ports::{BusError, EventBus, PublicationStore, StoreError};

impl PublicationStore for MemStore {
    async fn get_publication(
        &self,
        charge: &ChargeId,
        id: &NotificationId,
    ) -> Result<Option<Publication>, StoreError> {
        self.up()?;
        let map = self.publications.lock().unwrap();
        Ok(map.get(id).filter(|p| &p.charge_id == charge).cloned())
    }

    async fn save_publication(&self, p: &Publication) -> Result<(), StoreError> {
        self.up()?;
        let mut map = self.publications.lock().unwrap();
        Self::check_version(&map, &p.id, p.version, |p| p.version)?;
        map.insert(p.id.clone(), p.clone());
        Ok(())
    }

    async fn pending_publications(
        &self,
        before: i64,
        limit: i32,
    ) -> Result<Vec<Publication>, StoreError> {
        self.up()?;
        let due =
            |p: &Publication| p.status == PublicationStatus::Pending && p.next_attempt_at < before;
        let mut list = listed(&self.publications, due, |p| {
            (p.next_attempt_at, p.id.clone())
        });
        list.truncate(limit.max(0) as usize);
        Ok(list)
    }
}

/// An event bus that answers from a script (then accepts), and keeps every event it took.
#[derive(Default)]
pub struct MemBus {
    /// Answers to the next puts, in order: `Some(error)` refuses.
    pub refusals: Mutex<std::collections::VecDeque<Option<String>>>,
    /// The publications it took, in order.
    pub events: Mutex<Vec<Publication>>,
}

impl EventBus for MemBus {
    async fn put(&self, p: &Publication) -> Result<String, BusError> {
        // A call over the network: other copies of the message run meanwhile.
        tokio::task::yield_now().await;
        if let Some(Some(error)) = self.refusals.lock().unwrap().pop_front() {
            return Err(BusError(error));
        }
        let mut events = self.events.lock().unwrap();
        events.push(p.clone());
        Ok(format!("evb-{}", events.len()))
    }
}
