//! Idempotency records in memory, with the DynamoDB store's conditions (`claim` writes only a new
//! record; `resume`, `complete` and `release` only an in-progress one, on its lease or owner).

use super::MemStore;
use crate::domain::idempotency::{IdempotencyRecord, IdempotencyStatus, StoredResponse};
use crate::ports::{Claimed, IdempotencyStore, StoreError};

impl MemStore {
    /// Deletes the records whose TTL (`expires_at`, unix seconds) is before `now`, as DynamoDB's
    /// TTL eventually does.
    pub fn expire_idempotency(&self, now: i64) -> usize {
        let mut map = self.idempotency.lock().unwrap();
        let before = map.len();
        map.retain(|_, r| r.expires_at >= now);
        before - map.len()
    }

    fn update_in_progress(
        &self,
        operation: &str,
        key: &str,
        holds: impl Fn(&IdempotencyRecord) -> bool,
        change: impl FnOnce(&mut IdempotencyRecord),
    ) -> Result<(), StoreError> {
        self.up()?;
        let mut map = self.idempotency.lock().unwrap();
        match map.get_mut(&(operation.to_owned(), key.to_owned())) {
            Some(r) if r.status == IdempotencyStatus::InProgress && holds(r) => {
                change(r);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

impl IdempotencyStore for MemStore {
    async fn claim(&self, record: &IdempotencyRecord) -> Result<Claimed, StoreError> {
        self.up()?;
        let mut map = self.idempotency.lock().unwrap();
        let key = (record.operation.clone(), record.key.as_str().to_owned());
        if let Some(existing) = map.get(&key) {
            return Ok(Claimed::Existing(existing.clone()));
        }
        map.insert(key, record.clone());
        Ok(Claimed::New)
    }

    async fn resume(
        &self,
        operation: &str,
        key: &str,
        seen_until: i64,
        owner: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        let holds = |r: &IdempotencyRecord| r.in_progress_until == seen_until;
        self.update_in_progress(operation, key, holds, |r| {
            r.owner = owner.to_owned();
            r.in_progress_until = until;
        })
    }

    async fn complete(
        &self,
        operation: &str,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let holds = |r: &IdempotencyRecord| r.owner == owner;
        self.update_in_progress(operation, key, holds, |r| {
            r.status = IdempotencyStatus::Completed;
            r.in_progress_until = 0;
            r.response = Some(response.clone());
        })
    }

    async fn release(&self, operation: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        let holds = |r: &IdempotencyRecord| r.owner == owner;
        self.update_in_progress(operation, key, holds, |r| r.in_progress_until = 0)
    }
}
