//! Every planted bug is caught within a few seeds by its must_fail
//! scenario, under the promise it breaks, and at least one canary trips
//! each kind of failure the harness reports. If a checker stopped working, its canary would pass
//! and this test would fail.

mod common;

use shale_sim::scenario::Expect;
use shale_store::canary::Canary;

const SEEDS_MAX: u64 = 64;

#[test]
fn every_canary_is_caught_within_a_few_seeds() {
    let canaries = common::scenarios(Expect::MustFail);
    let planted: Vec<String> = canaries.iter().filter_map(|(_, s)| s.canary.clone()).collect();
    for canary in Canary::ALL {
        assert!(planted.iter().any(|p| p == canary.name()), "canary {} has no must_fail scenario", canary.name());
    }
    for (path, scenario) in canaries {
        let name = scenario.canary.clone().unwrap_or_default();
        let Some((_, promises)) = PROMISE_OF.iter().find(|(canary, _)| *canary == name) else {
            panic!("canary {name} has no expected promise in PROMISE_OF");
        };
        // A seed fails a check, or runs differently the second time.
        let caught = (1..=SEEDS_MAX).find_map(|seed| match shale_sim::check(&scenario, seed) {
            Err(report) => Some(report.outcome.summary()),
            Ok(report) => shale_sim::runs_differently(&scenario, &report),
        });
        let Some(summary) = caught else { panic!("{} was not caught in {SEEDS_MAX} seeds", path.display()) };
        let under = promises.iter().any(|promise| summary.contains(&format!("{promise} ")));
        assert!(under, "{} was caught as {summary:?}, not under {promises:?}", path.display());
    }
}

/// The promise each planted bug breaks first, as its failure names it.
const PROMISE_OF: &[(&str, &[&str])] = &[
    ("ack_before_fsync", &["P3"]),
    ("write_behind_failed_sync", &["P3"]),
    ("keep_uncommitted_group", &["P1"]),
    ("keyset_after_frames", &["P2"]),
    ("shred_ack_before_keyset", &["P5"]),
    // A gate that sees a stale snapshot allows what the model denies (P7)
    // or, in the seed at hand, denies what the model allows (P9).
    ("stale_gate_snapshot", &["P7", "P9"]),
    ("misresolved_cause", &["P6"]),
    ("poisoned_writer", &["P10"]),
    ("panic_on_torn_tail", &["P11"]),
    ("unchained_hash", &["P8"]),
    ("query_drops_last", &["P9"]),
    ("silent_cut", &["P12"]),
    ("replay_past_recorded_end", &["P4"]),
    ("hidden_state", &["nondeterminism:"]),
    ("checkpoint_forgets_idempotency", &["P9"]),
];

#[test]
fn without_the_planted_bug_the_same_scenarios_pass() {
    for (path, mut scenario) in common::scenarios(Expect::MustFail) {
        scenario.canary = None;
        for seed in 1..=20 {
            if let Err(report) = shale_sim::check(&scenario, seed) {
                panic!("{} fails seed {seed} with no bug planted: {:?}", path.display(), report.outcome);
            }
        }
    }
}
