//! The one JSON secret in AWS Secrets Manager, fetched once per execution environment.
//!
//! The first successful fetch is cached for the life of the Lambda execution environment, so a
//! warm invocation makes no Secrets Manager call. A failed fetch is not cached: the next request
//! tries again. A rotated secret reaches a function when its environment is recycled (or on the
//! next deploy); during that window both secrets verify, which is why secrets come in pairs.
//! The functions fetch it on first use, not at init (`adapters::OnFirstUse`). Callers that were
//! waiting on a fetch that failed get that failure rather than a second fetch of their own: a
//! Secrets Manager that does not answer costs the tasks waiting on it one timeout, not one each.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;

use crate::ports::{SecretError, SecretSource};
use crate::secrets::Secrets;

#[derive(Debug)]
pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
    cached: FetchOnce<Arc<Secrets>>,
}

impl SecretsManagerSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource {
            client,
            secret_id: secret_id.into(),
            cached: FetchOnce::default(),
        }
    }

    pub fn from_conf(conf: &super::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(Client::new(conf), secret_id)
    }

    /// Drops the secret read so far, so the next use fetches it again: for a secret that was
    /// read but does not say what the function needs (fixed, it reaches this environment
    /// without waiting for a new one).
    pub async fn forget(&self) {
        self.cached.forget().await;
    }

    /// One GetSecretValue; every error names the secret ("loading secret {id}: …").
    async fn fetch(&self) -> Result<Arc<Secrets>, SecretError> {
        let id = &self.secret_id;
        let out = (self.client.get_secret_value().secret_id(id).send().await).map_err(|e| {
            let why = format!("loading secret {id}: {}", crate::error::chain(&e));
            SecretError::Unavailable(why.into())
        })?;
        let json = out.secret_string().ok_or_else(|| {
            SecretError::Invalid(format!("loading secret {id}: it has no string value"))
        })?;
        Secrets::from_json(json)
            .map(Arc::new)
            .map_err(|e| SecretError::Invalid(format!("loading secret {id}: {e}")))
    }
}

impl SecretSource for SecretsManagerSource {
    async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
        self.cached.get_or_fetch(|| self.fetch()).await
    }
}

/// A value fetched once: the first success is kept; a failure is not, except for the callers
/// that were already waiting on that fetch, who get it instead of making one each.
#[derive(Debug)]
struct FetchOnce<T> {
    state: Mutex<Fetched<T>>,
    /// Fetches that failed so far: a caller that sees it move while it waits was waiting on one.
    failures: AtomicU64,
}

#[derive(Debug)]
struct Fetched<T> {
    value: Option<T>,
    /// The last failure, as (unavailable?, message): errors are not `Clone`.
    last_failure: Option<(bool, String)>,
}

impl<T> Default for FetchOnce<T> {
    fn default() -> Self {
        FetchOnce {
            state: Mutex::new(Fetched {
                value: None,
                last_failure: None,
            }),
            failures: AtomicU64::new(0),
        }
    }
}

impl<T: Clone> FetchOnce<T> {
    async fn forget(&self) {
        self.state.lock().await.value = None;
    }

    async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<T, SecretError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, SecretError>>,
    {
        let seen = self.failures.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(value) = &state.value {
            return Ok(value.clone());
        }
        if self.failures.load(Ordering::Acquire) != seen
            && let Some((unavailable, message)) = &state.last_failure
        {
            return Err(if *unavailable {
                SecretError::Unavailable(message.clone().into())
            } else {
                SecretError::Invalid(message.clone())
            });
        }
        match fetch().await {
            Ok(value) => {
                state.value = Some(value.clone());
                state.last_failure = None;
                Ok(value)
            }
            Err(e) => {
                state.last_failure = Some(match &e {
                    SecretError::Unavailable(source) => (true, source.to_string()),
                    SecretError::Invalid(message) => (false, message.clone()),
                });
                self.failures.fetch_add(1, Ordering::Release);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn unavailable() -> SecretError {
        SecretError::Unavailable("loading secret s: connection refused".into())
    }

    #[tokio::test]
    async fn the_first_success_is_kept_and_no_second_fetch_is_made() {
        let once = FetchOnce::<u32>::default();
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(7)
        };
        assert_eq!(once.get_or_fetch(fetch).await.unwrap(), 7);
        assert_eq!(once.get_or_fetch(fetch).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_the_next_caller_fetches_again() {
        let once = FetchOnce::<u32>::default();
        let err = once.get_or_fetch(|| async { Err(unavailable()) }).await;
        assert!(matches!(err, Err(SecretError::Unavailable(_))));
        assert_eq!(once.get_or_fetch(|| async { Ok(3) }).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn callers_waiting_on_a_fetch_that_fails_get_its_failure_not_a_fetch_of_their_own() {
        let once = Arc::new(FetchOnce::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (once, calls) = (once.clone(), calls.clone());
            tokio::spawn(async move {
                once.get_or_fetch(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _ = wait.await;
                    Err::<u32, _>(unavailable())
                })
                .await
            })
        };
        // The first fetch holds the lock; these wait behind it.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (once, calls) = (once.clone(), calls.clone());
                tokio::spawn(async move {
                    once.get_or_fetch(|| async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(1)
                    })
                    .await
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        assert!(first.await.unwrap().is_err());
        for waiter in waiters {
            let err = waiter.await.unwrap().unwrap_err();
            assert!(err.to_string().contains("could not be fetched"), "{err}");
            assert!(
                crate::error::chain(&err).contains("loading secret s"),
                "{err}"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for all of them");
        // A caller that comes after tries again.
        assert_eq!(once.get_or_fetch(|| async { Ok(5) }).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn an_invalid_secret_stays_invalid_for_the_waiters() {
        let once = FetchOnce::<u32>::default();
        let err = once
            .get_or_fetch(|| async {
                Err(SecretError::Invalid("loading secret s: not JSON".into()))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Invalid(m) if m.contains("not JSON")));
    }
}
