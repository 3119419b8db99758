//! `make simulate SEEDS=N [FROM=S] [STEPS=K]`: runs N histories from seed S and prints the
//! figures; for a violation, the seed and its trace (`--trace SEED` prints one history's trace).

use std::collections::BTreeMap;
use std::time::Instant;

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn main() {
    paybridge::telemetry::disable_metrics();
    let mut config = paybridge_sim::Config::default();
    if let Some(steps) = arg("--steps") {
        config.steps = steps as u32;
    }
    if let Some(seed) = arg("--trace") {
        let out = paybridge_sim::run(seed, config);
        for line in &out.trace.lines {
            println!("{line}");
        }
        for violation in &out.violations {
            println!("VIOLATION {violation}");
        }
        for record in &out.records {
            println!("RECORD {record}");
        }
        std::process::exit(i32::from(!out.violations.is_empty()));
    }
    let seeds = arg("--seeds").unwrap_or(1000);
    let from = arg("--from").unwrap_or(1);
    let started = Instant::now();
    let (mut operations, mut faults, mut failed) =
        (0u64, BTreeMap::<String, u64>::new(), Vec::new());
    for seed in from..from + seeds {
        let out = paybridge_sim::run(seed, config);
        operations += out.operations;
        for (k, n) in out.faults {
            *faults.entry(k).or_default() += n;
        }
        if !out.violations.is_empty() {
            eprintln!(
                "seed {seed}: {} violation(s), first: {}",
                out.violations.len(),
                out.violations[0]
            );
            failed.push(seed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "histories      {seeds} (seeds {from}..{})",
        from + seeds - 1
    );
    println!("operations     {operations}");
    println!(
        "run time       {secs:.1} s ({:.0} histories/s)",
        seeds as f64 / secs
    );
    println!("faults injected, by kind:");
    for (k, n) in &faults {
        println!("  {k:<32} {n}");
    }
    println!("violations     {} histories", failed.len());
    if let Some(seed) = failed.first() {
        println!("replay one:    make simulate TRACE={seed}");
        std::process::exit(1);
    }
}
