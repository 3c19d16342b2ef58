//! shale-sim: deterministic simulation testing for shale-store.
//!
//! The store's own commit path runs against [`disk::SimDisk`], a simulated
//! clock and seeded entropy, driven by a discrete-event scheduler. One u64
//! seed derives everything; checkers compare the store with a reference
//! model after every step and every crash + recovery.

pub mod check;
pub mod disk;
pub mod env;
pub mod excuse;
pub mod faults;
pub mod journal_map;
pub mod model;
pub mod panics;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod sweep;
pub mod trace;
pub mod workload;

use run::RunReport;
use scenario::Scenario;

/// The environment variable that names a seed to run (decimal or 0x-hex).
pub const SEED_VAR: &str = "SHALE_SEED";

/// Parses a seed written in decimal or as 0x-hex.
pub fn parse_seed(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The seed `SHALE_SEED` names, if it is set.
pub fn seed_from_env() -> Option<u64> {
    std::env::var(SEED_VAR).ok().as_deref().and_then(parse_seed)
}

/// Runs `first`'s seed again and compares: `Some(why)` if the two runs
/// took different paths (a seed must always run the same).
pub fn runs_differently(scenario: &Scenario, first: &RunReport) -> Option<String> {
    let again = run::run(scenario, first.seed);
    // Outcomes compare by their summary: a panic's backtrace names the thread.
    if again.trace_hash == first.trace_hash && again.outcome.summary() == first.outcome.summary() {
        return None;
    }
    Some(format!(
        "nondeterminism: the seed ran twice with traces {} and {} (outcomes: {}; {}); `run --check-determinism` shows where they part",
        first.trace_hash,
        again.trace_hash,
        first.outcome.summary(),
        again.outcome.summary()
    ))
}

/// A run a fuzzer chose: the first bytes choose the scenario's knobs, the
/// rest is every choice of the run (`rng`: running out means no more
/// faults and the smallest choices).
#[derive(Clone, Debug)]
pub struct FuzzCase {
    pub scenario: Scenario,
    pub choices: Vec<u8>,
}

/// The run `bytes` choose, if there are enough to choose a scenario.
pub fn fuzz_case(bytes: &[u8]) -> Option<FuzzCase> {
    let mut u = arbitrary::Unstructured::new(bytes);
    let scenario = Scenario::from_fuzz(&mut u).ok()?;
    Some(FuzzCase { scenario, choices: u.take_rest().to_vec() })
}

impl FuzzCase {
    fn sim(&self, record: bool) -> run::Sim {
        let choices = run::Choices::Bytes(rng::Bytes::shared(self.choices.clone()));
        run::Sim::with_choices(&self.scenario, 0, choices, false, record)
    }

    /// Runs the case with every checker on.
    pub fn run(&self) -> RunReport {
        self.sim(false).run()
    }

    /// The case as a script scenario that replays the same run, and the
    /// run.
    pub fn script(&self) -> (Scenario, RunReport) {
        let report = self.sim(true).run();
        let mut scenario = self.scenario.clone();
        scenario.script = report.recorded.as_ref().map(|r| r.script());
        (scenario, report)
    }
}

/// Runs one seed of `scenario` and checks every promise: `Ok` with the
/// report if the run passed, `Err` with it (outcome, step, trace tail) if
/// not. For `cargo test`: `check(&scenario, seed_from_env().unwrap_or(1))`.
pub fn check(scenario: &Scenario, seed: u64) -> Result<RunReport, Box<RunReport>> {
    let report = run::run(scenario, seed);
    if report.outcome.passed() {
        Ok(report)
    } else {
        Err(Box::new(report))
    }
}
pub mod gates;
