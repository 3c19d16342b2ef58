//! Shrinking and scripts: a recorded run replays exactly without its seed
//! (from a seed or from fuzzer bytes), and every planted bug shrinks to a
//! scenario file of at most ten client operations that breaks the same
//! promise by itself.

mod common;

use std::time::{Duration, Instant};

use shale_sim::scenario::{Expect, Scenario};
use shale_sim::shrink::{scenario_file, script_of, shrink, signature, ShrinkOptions, NONDETERMINISM};

/// Client operations a canary's shrunk scenario may have at most.
const SHRUNK_OPERATIONS_MAX: u64 = 10;

#[test]
fn a_recorded_seed_replays_as_a_script_without_it() {
    for (name, seed) in [("swarm", 3), ("encrypted-shreds", 5), ("torn-writes", 9), ("gated-contention", 2)] {
        let scenario = Scenario::load(&common::scenarios_dir().join(format!("{name}.toml"))).unwrap();
        let seeded = shale_sim::run::run(&scenario, seed);
        let (scripted, recorded) = script_of(&scenario, seed);
        assert_eq!(recorded.trace_hash, seeded.trace_hash, "{name}: recording changes nothing");
        // Through its file, as `shrink` writes it.
        let text = toml::to_string(&scripted).unwrap();
        let loaded = Scenario::parse(&text, name).unwrap();
        let replayed = shale_sim::run::run(&loaded, 0xdead);
        assert_eq!(replayed.trace_hash, seeded.trace_hash, "{name} seed {seed}: the script replays the run");
        assert!(loaded.script.as_ref().is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn a_fuzz_input_replays_as_a_script() {
    let mut found = 0;
    for n in 0..40u8 {
        let bytes: Vec<u8> =
            (0..600u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n.wrapping_mul(97)) ^ n).collect();
        let Some(case) = shale_sim::fuzz_case(&bytes) else { continue };
        let direct = case.run();
        let (scenario, recorded) = case.script();
        assert_eq!(recorded.trace_hash, direct.trace_hash);
        let replayed = shale_sim::run::run(&Scenario::parse(&toml::to_string(&scenario).unwrap(), "fuzz").unwrap(), 0);
        assert_eq!(replayed.trace_hash, direct.trace_hash, "input {n}: the script replays the fuzzed run");
        found += 1;
    }
    assert!(found > 30);
    // Bytes that run out make the smallest choices: no fault at all.
    let case = shale_sim::fuzz_case(&[7; 40]).unwrap();
    let report = case.run();
    assert!(report.outcome.passed() && report.faults.injected.values().all(|n| *n == 0), "{:?}", report.faults);
}

#[test]
fn every_canary_shrinks_to_ten_operations_that_break_the_same_promise() {
    let mut times = Vec::new();
    for (path, scenario) in common::scenarios(Expect::MustFail) {
        let determinism = scenario.canary.as_deref() == Some("hidden_state");
        let seed = (1..=64)
            .find(|seed| {
                let report = shale_sim::run::run(&scenario, *seed);
                signature(&report).is_some()
                    || (determinism && shale_sim::runs_differently(&scenario, &report).is_some())
            })
            .unwrap_or_else(|| panic!("{} is caught in no seed", path.display()));
        let started = Instant::now();
        let options = ShrinkOptions { budget: Duration::from_secs(90), ..ShrinkOptions::default() };
        let mut shrunk = shrink(&scenario, seed, determinism, options).unwrap();
        times.push(format!("{} {:.1}s/{} runs", scenario.name, started.elapsed().as_secs_f64(), shrunk.runs));
        let original = shale_sim::run::run(&scenario, seed);
        let wanted = signature(&original).unwrap_or_else(|| NONDETERMINISM.to_owned());
        assert_eq!(shrunk.signature, wanted, "{}", path.display());
        assert!(shrunk.after.operations <= SHRUNK_OPERATIONS_MAX, "{} shrank only to {}", path.display(), shrunk.after);
        // The file it writes fails by itself, the same way; its story is
        // all comments, even a line a panic's message broke in two.
        if let Some(trace) = shrunk.report.trace.as_mut() {
            trace.insert(0, "a gate panicked: assertion failed\n  left: \"explode\"".into());
        }
        let text = scenario_file(&shrunk, &format!("{} seed {seed:#x}", path.display())).unwrap();
        let loaded = Scenario::parse(&text, "shrunk").unwrap();
        assert!(loaded.script.is_some() && loaded.run.operations <= SHRUNK_OPERATIONS_MAX);
        let replay = shale_sim::run::run(&loaded, 0);
        let again = match determinism {
            true => shale_sim::runs_differently(&loaded, &replay).map(|_| NONDETERMINISM.to_owned()),
            false => signature(&replay),
        };
        assert_eq!(again.as_deref(), Some(wanted.as_str()), "{}: the shrunk file fails the same way", path.display());
    }
    eprintln!("shrink times: {}", times.join(", "));
}
