//! The fault injector, and the store as the use cases see it through it.
//!
//! Every call a function makes to DynamoDB, SQS, the gateway or billing asks the injector first.
//! It may fail the call before it takes effect, or after (the caller sees an error either way, as
//! with a timeout), crash the function there (the invocation never resumes: the simulator drops
//! it), or yield, so that concurrent invocations interleave at that point. Outside an invocation
//! (the simulator's own reads) nothing is injected.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::rng::Rng;

/// How often each fault happens, per call.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// A store call fails before taking effect.
    pub store_fail: f64,
    /// A store call takes effect, then fails (its answer is lost).
    pub store_fail_after: f64,
    /// The function crashes before or after a call.
    pub crash: f64,
    /// A queue send fails (before or after taking effect).
    pub queue_fail: f64,
    /// Concurrent invocations switch at a call.
    pub interleave: f64,
}

impl Rates {
    pub const NONE: Rates = Rates {
        store_fail: 0.0,
        store_fail_after: 0.0,
        crash: 0.0,
        queue_fail: 0.0,
        interleave: 0.0,
    };
}

/// What the injector decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    FailBefore,
    FailAfter,
    CrashBefore,
    CrashAfter,
}

struct State {
    rng: Rng,
    rates: Rates,
    /// The invocation being polled, if any.
    current: Option<u64>,
    crashed: BTreeSet<u64>,
    next_invocation: u64,
    counts: BTreeMap<String, u64>,
}

pub struct Faults(Mutex<State>);

impl Faults {
    pub fn new(seed: u64, rates: Rates) -> Arc<Self> {
        Arc::new(Faults(Mutex::new(State {
            rng: Rng::new(seed ^ 0xFA_u64),
            rates,
            current: None,
            crashed: BTreeSet::new(),
            next_invocation: 1,
            counts: BTreeMap::new(),
        })))
    }

    pub fn set_rates(&self, rates: Rates) {
        self.0.lock().unwrap().rates = rates;
    }

    /// Counts a fault of `kind` (the gateway's and billing's own faults count here too).
    pub fn count(&self, kind: &str) {
        *self
            .0
            .lock()
            .unwrap()
            .counts
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().counts.clone()
    }

    /// Whether a call is made inside an invocation (faults apply).
    pub fn in_invocation(&self) -> bool {
        self.0.lock().unwrap().current.is_some()
    }

    /// The fault for one call to `part` (`store`, `queue`) and whether to yield first.
    pub fn decide(&self, part: &str) -> (Fault, bool) {
        let mut s = self.0.lock().unwrap();
        if s.current.is_none() {
            return (Fault::None, false);
        }
        let r = s.rates;
        let fail = if part == "queue" {
            r.queue_fail
        } else {
            r.store_fail
        };
        let after = if part == "queue" {
            r.queue_fail / 2.0
        } else {
            r.store_fail_after
        };
        let fault = if s.rng.chance(r.crash) {
            if s.rng.chance(0.5) {
                Fault::CrashBefore
            } else {
                Fault::CrashAfter
            }
        } else if s.rng.chance(fail) {
            Fault::FailBefore
        } else if s.rng.chance(after) {
            Fault::FailAfter
        } else {
            Fault::None
        };
        let interleave = s.rng.chance(r.interleave);
        let kind = match fault {
            Fault::None => None,
            Fault::FailBefore => Some(format!("{part}_fail_before")),
            Fault::FailAfter => Some(format!("{part}_fail_after")),
            Fault::CrashBefore | Fault::CrashAfter => Some(format!("crash_at_{part}")),
        };
        if let Some(k) = kind {
            *s.counts.entry(k).or_default() += 1;
        }
        (fault, interleave)
    }

    /// A number from the injector's own sequence (for the gateway's and billing's choices made
    /// inside a call).
    pub fn chance(&self, p: f64) -> bool {
        self.0.lock().unwrap().rng.chance(p)
    }

    /// Marks the invocation being polled as crashed.
    fn crash(&self) {
        let mut s = self.0.lock().unwrap();
        if let Some(id) = s.current {
            s.crashed.insert(id);
        }
    }

    /// Runs a call through the injector: `effect` is the call itself (not started unless it runs).
    pub async fn call<T, E>(
        &self,
        part: &str,
        effect: impl Future<Output = Result<T, E>>,
        error: impl Fn(&'static str) -> E,
    ) -> Result<T, E> {
        let (fault, interleave) = self.decide(part);
        if interleave {
            tokio::task::yield_now().await;
        }
        match fault {
            Fault::FailBefore => return Err(error("injected: failed before taking effect")),
            Fault::CrashBefore => return self.crash_here().await,
            _ => {}
        }
        let out = effect.await;
        match fault {
            Fault::FailAfter => Err(error("injected: took effect, then the answer was lost")),
            Fault::CrashAfter => self.crash_here().await,
            _ => out,
        }
    }

    /// The function dies here: the invocation is marked and never resumes.
    pub async fn crash_here<T>(&self) -> T {
        self.crash();
        std::future::pending().await
    }
}

/// One function invocation: polled with the injector knowing whose calls it sees; `None` if the
/// function crashed.
pub struct Invocation<F: Future> {
    id: u64,
    faults: Arc<Faults>,
    future: Pin<Box<F>>,
}

impl<F: Future> Invocation<F> {
    pub fn new(faults: &Arc<Faults>, future: F) -> Self {
        let id = {
            let mut s = faults.0.lock().unwrap();
            s.next_invocation += 1;
            s.next_invocation
        };
        Invocation {
            id,
            faults: Arc::clone(faults),
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for Invocation<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let outer = {
            let mut s = self.faults.0.lock().unwrap();
            s.current.replace(id)
        };
        let polled = self.future.as_mut().poll(cx);
        let crashed = {
            let mut s = self.faults.0.lock().unwrap();
            s.current = outer;
            s.crashed.contains(&id)
        };
        if crashed {
            return Poll::Ready(None);
        }
        polled.map(Some)
    }
}
