//! How long each phase of a cold start took, so a benchmark can say where init time goes.
//!
//! A function marks the end of each phase of its init ([`phase`]); [`report`] logs them once,
//! at DEBUG under the target `paybridge::init_phases`, as one line with each phase's
//! microseconds (`RUST_LOG=warn,paybridge::init_phases=debug`; `make bench` reads it with
//! `--breakdown`). At the default level nothing is logged and a mark costs a clock reading.

use std::sync::Mutex;
use std::time::Instant;

/// The last mark and the phases so far (name, µs).
struct Phases {
    last: Instant,
    list: Vec<(&'static str, u64)>,
}

static PHASES: Mutex<Option<Phases>> = Mutex::new(None);

/// Ends phase `name`: the time since the previous mark (or since the first call) is its length.
pub fn phase(name: &'static str) {
    let now = Instant::now();
    let mut phases = PHASES.lock().unwrap_or_else(|e| e.into_inner());
    match phases.as_mut() {
        Some(p) => {
            p.list
                .push((name, now.duration_since(p.last).as_micros() as u64));
            p.last = now;
        }
        None => {
            *phases = Some(Phases {
                last: now,
                list: vec![(name, 0)],
            })
        }
    }
}

/// Logs the phases marked so far (at DEBUG) and forgets them.
pub fn report() {
    let taken = PHASES.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(Phases { list, .. }) = taken {
        let phases: Vec<String> = list.iter().map(|(n, us)| format!("{n}={us}")).collect();
        tracing::debug!(target: "paybridge::init_phases", phases = %phases.join(" "), "init phases (µs)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_measured_from_the_previous_mark_and_forgotten_once_reported() {
        phase("start");
        phase("one");
        phase("two");
        {
            let phases = PHASES.lock().unwrap();
            let list = &phases.as_ref().unwrap().list;
            let names: Vec<_> = list.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, ["start", "one", "two"]);
            assert_eq!(list[0].1, 0);
        }
        report();
        assert!(PHASES.lock().unwrap().is_none());
    }
}
