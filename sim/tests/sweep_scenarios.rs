//! The bounded seed sweep CI runs: every non-canary scenario passes 200
//! seeds. A seed from SHALE_SEED runs first, so a failure printed by a
//! sweep reproduces under `cargo test` too.

mod common;

use shale_sim::scenario::Expect;
use shale_sim::sweep::{sweep_scenario, SeedPlan};

const SEEDS: u64 = 200;

/// The least share of swarm seeds, in percent, that must exercise each
/// fault class and store feature.
const SWARM_SHARE_MIN_PERCENT: u64 = 20;

#[test]
fn every_scenario_passes_a_bounded_sweep() {
    let scenarios = common::scenarios(Expect::Pass);
    assert!(scenarios.len() >= 8, "at least eight scenarios ship");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failures = Vec::new();
    for (path, scenario) in &scenarios {
        if let Some(seed) = shale_sim::seed_from_env() {
            if let Err(report) = shale_sim::check(scenario, seed) {
                failures.push(format!("{} seed {seed:#x}: {:?}", path.display(), report.outcome));
            }
        }
        let plan = SeedPlan { first: 1, count: SEEDS, shard: 1, shards: 1 };
        let summary = sweep_scenario(path.clone(), scenario, plan, jobs);
        if scenario.faults.swarm {
            // Swarm draws everything: each fault class and feature shows up
            // in a fair share of seeds (crash-time reordering is the rarest:
            // it needs two writes pending at once).
            for (name, seeds) in &summary.coverage {
                if *seeds * 100 < SEEDS * SWARM_SHARE_MIN_PERCENT {
                    failures.push(format!("{}: {name} in only {seeds} of {SEEDS} seeds", path.display()));
                }
            }
        }
        if let Some(failure) = summary.first_failure {
            let what = failure.outcome.summary();
            failures.push(format!(
                "{}: {} of {SEEDS} seeds fail; first: seed {:#x}, {what}\n  reproduce: SHALE_SEED={:#x} cargo test --release -p shale-sim --test sweep_scenarios",
                path.display(),
                summary.failed,
                failure.seed,
                failure.seed
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
