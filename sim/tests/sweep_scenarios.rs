//! The bounded seed sweep CI runs: every non-canary scenario passes 200
//! seeds. A seed from SHALE_SEED runs first, so a failure printed by a
//! sweep reproduces under `cargo test` too.

mod common;

use shale_sim::report::SWARM_SHARE_MIN;
use shale_sim::scenario::Expect;
use shale_sim::sweep::{sweep, Entry, Quiet, SweepOptions};

const SEEDS: u64 = 200;

#[test]
fn every_scenario_passes_a_bounded_sweep() {
    let scenarios = common::scenarios(Expect::Pass);
    assert!(scenarios.len() >= 8, "at least eight scenarios ship");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failures = Vec::new();
    if let Some(seed) = shale_sim::seed_from_env() {
        for (path, scenario) in &scenarios {
            if let Err(report) = shale_sim::check(scenario, seed) {
                failures.push(format!("{} seed {seed:#x}: {:?}", path.display(), report.outcome));
            }
        }
    }
    let entries: Vec<Entry> =
        scenarios.iter().map(|(p, s)| Entry { path: p.display().to_string(), scenario: s.clone() }).collect();
    let report = sweep(&entries, &SweepOptions::seeds(1, SEEDS, jobs), &Quiet);
    for s in &report.scenarios {
        if s.name.contains("swarm") {
            // Swarm draws everything: each fault class and feature shows up
            // in a fair share of seeds.
            for (name, seeds) in s.stats.coverage() {
                if (seeds as f64) < s.seeds_run as f64 * SWARM_SHARE_MIN {
                    failures.push(format!("{}: {name} in only {seeds} of {} seeds", s.path, s.seeds_run));
                }
            }
        }
        if let Some(failure) = s.failures.first() {
            failures.push(format!(
                "{}: {} of {} seeds fail; first: seed {}, {}\n  reproduce: SHALE_SEED={} cargo test --release -p shale-sim --test sweep_scenarios",
                s.path, s.failed, s.seeds_run, failure.seed, failure.summary, failure.seed
            ));
        }
    }
    assert!(report.totals.seeds >= SEEDS * 8, "the sweep ran {} seeds", report.totals.seeds);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
