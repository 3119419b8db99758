//! The simulation in `make test`: a fixed, bounded set of seeded histories must keep the promise
//! (`invariants`). A failure prints the seed and its whole trace; `make simulate` runs many more.
//!
//! `PAYBRIDGE_SIM_SEEDS=N` changes how many (default [`SEEDS`]). The bugs the simulator found
//! have tests of their own next to the code they fixed, and their seeds are kept in
//! [`REGRESSIONS`].

use paybridge_sim::{Config, Outcome, run};

/// Histories in `make test` (a debug build runs about 60 a second on this kind of machine).
const SEEDS: u64 = 2_000;

/// Seeds whose histories broke the promise with a bug the simulator found, each checked to fail
/// again with that bug put back (docs/simulation.md). A history changes whenever the model does:
/// after changing the model, put each bug back and pick its seed again (`make simulate`).
const REGRESSIONS: [(u64, &str); 4] = [
    (
        9,
        "a refund retried with its key after a 503 was refused as more than refundable",
    ),
    (
        404,
        "a dashboard refund that overtook a success after a failure was dropped",
    ),
    (
        6411,
        "a refund's late failure in the same second as its success was stale",
    ),
    (
        54069,
        "a dashboard refund's events came while the charge's own answer was lost: orphaned",
    ),
];

fn explain(out: &Outcome) -> String {
    let mut text = format!(
        "seed {} broke the promise ({} violation(s)):\n",
        out.seed,
        out.violations.len()
    );
    for v in &out.violations {
        text.push_str(&format!("  VIOLATION {v}\n"));
    }
    text.push_str("its history:\n");
    for line in &out.trace.lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("replay: make simulate TRACE={}\n", out.seed));
    text
}

#[test]
fn the_seeds_of_the_bugs_it_found_keep_the_promise() {
    paybridge::telemetry::disable_metrics();
    for (seed, bug) in REGRESSIONS {
        let out = run(seed, Config::default());
        assert!(out.violations.is_empty(), "{bug}\n{}", explain(&out));
    }
}

#[test]
fn a_fixed_set_of_seeded_histories_keeps_the_promise() {
    paybridge::telemetry::disable_metrics();
    let seeds = std::env::var("PAYBRIDGE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let (mut operations, mut faults) = (0, 0);
    for seed in 1..=seeds {
        let out = run(seed, Config::default());
        assert!(out.violations.is_empty(), "{}", explain(&out));
        operations += out.operations;
        faults += out.faults.values().sum::<u64>();
    }
    // A history that does nothing proves nothing: the set must exercise the system.
    assert!(operations > 40 * seeds, "{operations} operations");
    assert!(faults > 5 * seeds, "{faults} faults");
    println!("{seeds} histories, {operations} operations, {faults} faults: promise kept");
}

#[test]
fn a_history_replays_exactly_from_its_seed() {
    paybridge::telemetry::disable_metrics();
    let (a, b) = (run(77, Config::default()), run(77, Config::default()));
    assert_eq!(a.trace.lines, b.trace.lines);
    assert_ne!(a.trace.lines, run(78, Config::default()).trace.lines);
}
