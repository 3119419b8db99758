//! The idempotency layer of billing-facing POST routes (charges, refunds).
//!
//! [`begin`] claims `(operation, key)` for this request — or answers from the record that exists:
//! the stored response for the same request, 422 for a different request under the same key,
//! 409 + `Retry-After` while the first request runs. A request that died half-way leaves its
//! record `in_progress` until its lease (the function's deadline) passes; the next request with
//! the key then *resumes* it, with the same resource id the first one chose.
//!
//! [`run`] is the whole preamble and ending every billing-facing write goes through: claim, then
//! replay or run the operation, then store its answer (or release the key after an error).

use std::future::Future;
use std::time::Duration;

use crate::domain::idempotency::{
    Decision, IdempotencyKey, IdempotencyRecord, IdempotencyStatus, StoredResponse, fingerprint,
};
use crate::error::{Code, Error};
use crate::ports::{Claimed, IdempotencyStore, StoreError};
use crate::services::ApiResponse;

/// What the request wants to do under its key.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// `create_charge`, `capture_charge`, `refund_charge`, …
    pub operation: &'static str,
    pub key: &'a IdempotencyKey,
    pub fingerprint: String,
    /// The id this request would give the resource it creates.
    pub proposed_resource_id: String,
    /// Unix ms now, and when this request's lease ends (the function's deadline).
    pub now_ms: i64,
    pub lease_until_ms: i64,
    /// How long the record is kept.
    pub ttl: Duration,
}

/// A billing-facing write as it arrives: its `Idempotency-Key`, when it arrived and when its
/// lease ends (the function's deadline), both unix ms.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub key: &'a IdempotencyKey,
    pub now_ms: i64,
    pub lease_until_ms: i64,
}

impl<'a> Claim<'a> {
    /// `operation` of `call` on `scope` (the route's path or the resource id) with request JSON
    /// `request`, proposing `proposed_resource_id` for what it creates; kept for `ttl`.
    pub fn new(
        operation: &'static str,
        call: Call<'a>,
        scope: &str,
        request: &serde_json::Value,
        proposed_resource_id: String,
        ttl: Duration,
    ) -> Self {
        Claim {
            operation,
            key: call.key,
            fingerprint: fingerprint(operation, scope, request),
            proposed_resource_id,
            now_ms: call.now_ms,
            lease_until_ms: call.lease_until_ms,
            ttl,
        }
    }
}

/// What the operation [`run`] runs is told about its key.
#[derive(Debug, Clone)]
pub struct Running {
    /// The resource this key is about: new, or the one an earlier request with the key chose.
    pub resource_id: String,
    /// Whether an earlier request with this key got part of the way (it crashed, or its
    /// gateway answer was lost): its effect may already have happened.
    pub resumed: bool,
}

/// Runs `operation` under `claim`: a replay answers from the record without running it;
/// otherwise `operation` learns the resource id to use and whether an earlier request with this
/// key got part of the way, and its answer is stored for replay — or, after an error, the key
/// is released so the caller's retry runs again.
pub async fn run<S, F, Fut>(store: &S, claim: Claim<'_>, operation: F) -> Result<ApiResponse, Error>
where
    S: IdempotencyStore,
    F: FnOnce(Running) -> Fut,
    Fut: Future<Output = Result<ApiResponse, Error>>,
{
    let guard = match begin(store, claim).await? {
        Begun::Replay(stored) => return Ok(ApiResponse::replay(stored)),
        Begun::Run(guard) => guard,
    };
    let running = Running {
        resource_id: guard.resource_id.clone(),
        resumed: guard.resumed,
    };
    let result = operation(running).await;
    guard.finish(store, result).await
}

/// How to proceed.
#[derive(Debug)]
pub enum Begun {
    /// Run the operation; finish with [`Guard::complete`] or [`Guard::release`].
    Run(Guard),
    /// Answer with this stored response (`Idempotent-Replayed: true`).
    Replay(StoredResponse),
}

/// This request's hold on the key.
#[derive(Debug)]
pub struct Guard {
    operation: &'static str,
    key: String,
    owner: String,
    /// The resource this key is about (new, or the one a crashed request chose).
    pub resource_id: String,
    /// Whether an earlier request with this key got part of the way.
    pub resumed: bool,
}

pub async fn begin(store: &impl IdempotencyStore, claim: Claim<'_>) -> Result<Begun, Error> {
    let owner = uuid::Uuid::from_u128(crate::domain::entropy::random_u128())
        .simple()
        .to_string();
    let record = IdempotencyRecord {
        operation: claim.operation.to_owned(),
        key: claim.key.clone(),
        fingerprint: claim.fingerprint.clone(),
        status: IdempotencyStatus::InProgress,
        resource_id: claim.proposed_resource_id.clone(),
        owner: owner.clone(),
        in_progress_until: claim.lease_until_ms,
        response: None,
        expires_at: claim.now_ms / 1000 + claim.ttl.as_secs() as i64,
    };
    // Two rounds cover "someone resumed it between our read and our write".
    for _ in 0..3 {
        let existing = match store.claim(&record).await? {
            Claimed::New => {
                let resource_id = claim.proposed_resource_id.clone();
                return Ok(Begun::Run(Guard::new(&claim, owner, resource_id, false)));
            }
            Claimed::Existing(existing) => existing,
        };
        match existing.decide(&claim.fingerprint, claim.now_ms) {
            Decision::Replay(response) => return Ok(Begun::Replay(response)),
            Decision::Mismatch => {
                return Err(Error::new(
                    Code::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request; use a new key for a new request",
                ));
            }
            Decision::Wait { retry_after_secs } => {
                return Err(Error::new(
                    Code::RequestInProgress,
                    "a request with this Idempotency-Key is still being processed; retry after the indicated time",
                )
                .with_retry_after(retry_after_secs));
            }
            Decision::Resume => {
                match store
                    .resume(
                        claim.operation,
                        claim.key.as_str(),
                        existing.in_progress_until,
                        &owner,
                        claim.lease_until_ms,
                    )
                    .await
                {
                    Ok(()) => {
                        let resource_id = existing.resource_id;
                        return Ok(Begun::Run(Guard::new(&claim, owner, resource_id, true)));
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(Error::new(
        Code::RequestInProgress,
        "a request with this Idempotency-Key is being processed",
    )
    .with_retry_after(1))
}

impl Guard {
    fn new(claim: &Claim<'_>, owner: String, resource_id: String, resumed: bool) -> Self {
        Guard {
            operation: claim.operation,
            key: claim.key.as_str().to_owned(),
            owner,
            resource_id,
            resumed,
        }
    }

    /// Stores `response` for replay. A failure to store is logged, not returned: the operation
    /// itself succeeded, and a retry resumes the same resource and answers from its state.
    pub async fn complete(self, store: &impl IdempotencyStore, response: &StoredResponse) {
        if let Err(e) = store
            .complete(self.operation, &self.key, &self.owner, response)
            .await
        {
            tracing::warn!(operation = self.operation, error = %e, "could not store the idempotent response");
        }
    }

    /// Ends the request: stores a successful response for replay, or releases the key after an
    /// error so the caller's retry runs again. Returns `result` unchanged.
    pub async fn finish(
        self,
        store: &impl IdempotencyStore,
        result: Result<ApiResponse, Error>,
    ) -> Result<ApiResponse, Error> {
        match &result {
            Ok(response) => self.complete(store, &response.to_stored()).await,
            Err(_) => self.release(store).await,
        }
        result
    }

    /// Lets the next request with this key resume at once (this one failed retryably).
    pub async fn release(self, store: &impl IdempotencyStore) {
        if let Err(e) = store.release(self.operation, &self.key, &self.owner).await {
            tracing::warn!(operation = self.operation, error = %e, "could not release the idempotency key");
        }
    }
}
