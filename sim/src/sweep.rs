//! Sweeps: many seeds over many scenarios, parallel across cores and
//! shardable across machines. A canary scenario (`expect = "must_fail"`)
//! meets its expectation as soon as one seed is caught.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::faults::FaultClass;
use crate::run::{run, RunReport, FEATURES};
use crate::scenario::{Expect, Scenario};

/// Which seeds a sweep runs: `first..first + count`, keeping those whose
/// index falls in shard `shard` of `shards` (1-based).
#[derive(Clone, Copy, Debug)]
pub struct SeedPlan {
    pub first: u64,
    pub count: u64,
    pub shard: u64,
    pub shards: u64,
}

impl SeedPlan {
    /// The plan for a scenario that runs `share` of the seeds (at least
    /// one): the first of them.
    pub fn scaled(&self, share: f64) -> SeedPlan {
        let count = ((self.count as f64 * share).ceil() as u64).clamp(1, self.count.max(1));
        SeedPlan { count, ..*self }
    }

    pub fn seeds(&self) -> Vec<u64> {
        (0..self.count).filter(|i| i % self.shards == self.shard - 1).map(|i| self.first.wrapping_add(i)).collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub path: PathBuf,
    pub expect: String,
    pub seeds_run: u64,
    pub passed: u64,
    pub failed: u64,
    /// How many seeds injected each fault class, or exercised each
    /// feature (`run::FEATURES`), by name.
    pub coverage: BTreeMap<String, u64>,
    /// Wall time the scenario's seeds took (the only figure here that
    /// depends on the machine).
    pub wall_s: f64,
    /// The first failing run, with its seed.
    pub first_failure: Option<RunReport>,
    pub met_expectation: bool,
    pub sim_ns: u64,
    pub steps: u64,
}

/// Runs `plan` over one scenario on `jobs` threads.
pub fn sweep_scenario(path: PathBuf, scenario: &Scenario, plan: SeedPlan, jobs: usize) -> ScenarioSummary {
    let start = std::time::Instant::now();
    let seeds = plan.scaled(scenario.sweep_share).seeds();
    let canary = scenario.expect == Expect::MustFail;
    let next = AtomicUsize::new(0);
    let caught = std::sync::atomic::AtomicBool::new(false);
    let results: Mutex<Vec<RunReport>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                if canary && caught.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(i) else { break };
                let report = run(scenario, seed);
                if !report.outcome.passed() {
                    caught.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(report);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Threads finish in any order; the summary must not depend on it.
    results.sort_by_key(|r| r.seed);
    let failed = results.iter().filter(|r| !r.outcome.passed()).count() as u64;
    let first_failure = results.iter().find(|r| !r.outcome.passed()).cloned();
    ScenarioSummary {
        scenario: scenario.name.clone(),
        path,
        expect: if canary { "must_fail".into() } else { "pass".into() },
        seeds_run: results.len() as u64,
        passed: results.len() as u64 - failed,
        failed,
        met_expectation: if canary { failed > 0 } else { failed == 0 },
        first_failure,
        sim_ns: results.iter().map(|r| r.sim_ns).sum(),
        steps: results.iter().map(|r| r.steps).sum(),
        coverage: coverage(&results),
        wall_s: start.elapsed().as_secs_f64(),
    }
}

/// How many of `results` injected each fault class or exercised each
/// feature; every class and feature is listed, zeros included.
fn coverage(results: &[RunReport]) -> BTreeMap<String, u64> {
    let mut coverage = BTreeMap::new();
    for class in FaultClass::ALL {
        let seeds = results.iter().filter(|r| r.faults.count(class) > 0).count() as u64;
        coverage.insert(format!("{class:?}"), seeds);
    }
    for feature in FEATURES {
        let seeds = results.iter().filter(|r| r.features.get(feature).is_some_and(|n| *n > 0)).count() as u64;
        coverage.insert(feature.to_owned(), seeds);
    }
    coverage
}
