//! paybridge's deterministic simulation (issue 17): the real use cases (`paybridge::services`)
//! run single-threaded against in-memory ports with DynamoDB's conditions, a fault injector, an
//! SQS-like queue, a gateway with a ledger, a billing system and a simulated clock — every choice
//! from one seed, so any history replays exactly — and the promise checked against the ledger
//! once the system is quiet (`invariants`).
//!
//! `cargo run -p paybridge-sim --release -- --seeds N` (`make simulate SEEDS=N`) runs many
//! histories; `tests/seeds.rs` runs a fixed set in `make test`.

pub mod billing;
pub mod faults;
pub mod gateway;
pub mod invariants;
pub mod queue;
pub mod rng;
pub mod store;
pub mod world;

use std::collections::BTreeMap;

pub use world::{Config, Trace, World};

/// What one history came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub violations: Vec<String>,
    pub faults: BTreeMap<String, u64>,
    pub operations: u64,
    pub trace: Trace,
    /// paybridge's records of the charges and refunds a violation names (for the trace).
    pub records: Vec<String>,
}

/// Runs the history of `seed`: deterministic, on a current-thread runtime with tokio's clock
/// paused (a use case's short sleeps pass at once, in order).
pub fn run(seed: u64, config: Config) -> Outcome {
    paybridge::domain::entropy::seed(seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let mut world = World::new(seed, config);
    runtime.block_on(world.run());
    let violations = invariants::check(&world);
    let named = |id: &str| violations.iter().any(|v| v.contains(id));
    let mut records: Vec<String> = (world.mem.charges.lock().unwrap().values())
        .filter(|c| named(c.id.as_str()))
        .map(|c| format!("{c:?}"))
        .collect();
    records.extend(
        (world.mem.refunds.lock().unwrap().values())
            .filter(|r| named(r.id.as_str()) || named(r.charge_id.as_str()))
            .map(|r| format!("{r:?}")),
    );
    paybridge::domain::entropy::unseed();
    Outcome {
        seed,
        violations,
        faults: world.faults.counts(),
        operations: world.trace.operations,
        trace: world.trace,
        records,
    }
}
