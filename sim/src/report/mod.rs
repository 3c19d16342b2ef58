//! Sweep reports: what a sweep ran and found, as `report.json` (a versioned
//! schema that shards merge exactly), `report.md` for people and SVG plots.
//!
//! Every figure is a count or a simulated time and is exact under merge;
//! only `timing` depends on the machine and is left out when reports are
//! compared.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::faults::FaultClass;
use crate::run::stats::Request;
use crate::run::{Outcome, RunReport, FEATURES};
use crate::scenario::Expect;

pub mod hist;
mod markdown;
pub mod merge;
mod plots;
pub use plots::PLOTS;

pub use hist::Hist;
pub use merge::merge;

/// The schema of `report.json`; a reader refuses any other.
pub const SCHEMA: &str = "shale-sim/sweep-report/v1";

/// A swarm aims to exercise each fault class and feature in this share of
/// its seeds; reports mark any below it, and the tests require it.
pub const SWARM_SHARE_MIN: f64 = 0.2;

/// Failures kept in full per scenario: the ones with the lowest seed
/// indexes (the count is always exact).
pub const FAILURES_KEPT: usize = 20;

/// A seed, written in the hex the text output uses (`0x000000000000002a`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seed(pub u64);

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::parse_seed(&text).map(Seed).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a seed")))
    }
}

/// What kind of failure a seed found, worst last; each has its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A promise of DESIGN.md §2 broken (exit 10).
    Correctness,
    /// The store did not come back, or a run did not end (exit 11).
    Liveness,
    /// A panic, in the store or the harness (exit 12).
    Panic,
    /// The same seed ran twice with different traces (exit 13).
    Nondeterminism,
}

impl FailureClass {
    pub const ALL: [FailureClass; 4] =
        [FailureClass::Correctness, FailureClass::Liveness, FailureClass::Panic, FailureClass::Nondeterminism];

    pub fn exit_code(self) -> u8 {
        match self {
            FailureClass::Correctness => 10,
            FailureClass::Liveness => 11,
            FailureClass::Panic => 12,
            FailureClass::Nondeterminism => 13,
        }
    }

    pub fn of(outcome: &Outcome) -> Option<FailureClass> {
        match outcome {
            Outcome::Pass => None,
            Outcome::Violation { violation, .. } if violation.promise == crate::check::Promise::P10Liveness => {
                Some(FailureClass::Liveness)
            }
            Outcome::Violation { .. } => Some(FailureClass::Correctness),
            Outcome::Panic { .. } => Some(FailureClass::Panic),
            Outcome::Budget { .. } => Some(FailureClass::Liveness),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Correctness => "correctness",
            FailureClass::Liveness => "liveness",
            FailureClass::Panic => "panic",
            FailureClass::Nondeterminism => "nondeterminism",
        }
    }
}

/// One failing seed, with what it takes to run it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The seed's place in its scenario's range (`first_seed + index`).
    pub index: u64,
    pub seed: Seed,
    pub class: FailureClass,
    /// The promise broken (`P3`), if a checker found it.
    pub promise: Option<String>,
    pub step: u64,
    pub summary: String,
    pub repro: String,
    /// The command that shrinks it to a small scenario file.
    pub shrink: String,
}

impl Failure {
    /// A failure of seed `index` of the scenario at `path` (`scripted`: a
    /// scenario whose script replays without a seed).
    pub fn new(
        index: u64,
        path: &str,
        scripted: bool,
        report: &RunReport,
        class: FailureClass,
        summary: String,
    ) -> Failure {
        let promise = match &report.outcome {
            Outcome::Violation { violation, .. } => Some(violation.promise.code().to_owned()),
            _ => None,
        };
        let step = match &report.outcome {
            Outcome::Violation { step, .. } | Outcome::Panic { step, .. } | Outcome::Budget { step, .. } => *step,
            Outcome::Pass => report.steps,
        };
        let mut repro = repro(path, report.seed);
        let mut shrink = shrink_command(path, report.seed);
        if scripted {
            repro = format!("cargo run --release -p shale-sim -- run {path}");
        }
        if class == FailureClass::Nondeterminism {
            repro.push_str(" --check-determinism");
            shrink.push_str(" --determinism");
        }
        Failure { index, seed: Seed(report.seed), class, promise, step, summary, repro, shrink }
    }
}

/// The command that runs one seed again.
pub fn repro(path: &str, seed: u64) -> String {
    format!("cargo run --release -p shale-sim -- run {path} --seed {}", Seed(seed))
}

/// The command that shrinks a failing seed to a small scenario file.
pub fn shrink_command(path: &str, seed: u64) -> String {
    format!("cargo run --release -p shale-sim -- shrink {path} --seed {}", Seed(seed))
}

/// One fault class over a scenario's seeds: how often it was injected and
/// how often the store noticed it (in a recovery's report, a refused open
/// or a typed error).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTally {
    pub injected: u64,
    pub seeds_injected: u64,
    pub observed: u64,
    pub seeds_observed: u64,
}

/// What the seeds of a scenario did, added up (real scenarios only: a
/// canary's seeds are not tallied, only whether and where it was caught).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedStats {
    pub faults: BTreeMap<FaultClass, FaultTally>,
    /// Seeds that exercised each store feature (`run::FEATURES`).
    pub features: BTreeMap<String, u64>,
    /// Crashes by where they struck (`commit: sync segment`).
    pub crash_points: BTreeMap<String, u64>,
    /// Simulated latency of acknowledged requests, ns.
    pub latency: BTreeMap<Request, Hist>,
    /// Acknowledged batches whose loss a lossy fault excused, by why.
    pub excused: BTreeMap<String, u64>,
    pub sim_ns: u64,
    pub steps: u64,
    pub crashes: u64,
    pub recoveries: u64,
    pub acked_batches: u64,
    /// Seeds run a second time to compare traces.
    pub determinism_checked: u64,
}

impl SeedStats {
    /// Adds one run.
    pub fn add_run(&mut self, report: &RunReport) {
        for class in FaultClass::ALL {
            let tally = self.faults.entry(class).or_default();
            let (injected, observed) = (report.faults.count(class), report.stats.observed.get(&class).copied());
            tally.injected += injected;
            tally.seeds_injected += u64::from(injected > 0);
            tally.observed += observed.unwrap_or(0);
            tally.seeds_observed += u64::from(observed.unwrap_or(0) > 0);
        }
        for feature in FEATURES {
            let on = report.features.get(feature).is_some_and(|n| *n > 0);
            *self.features.entry(feature.to_owned()).or_default() += u64::from(on);
        }
        for (point, n) in &report.stats.crash_points {
            *self.crash_points.entry(point.clone()).or_default() += n;
        }
        for request in Request::ALL {
            let hist = self.latency.entry(request).or_default();
            for ns in report.stats.latency_ns.get(&request).into_iter().flatten() {
                hist.record(*ns);
            }
        }
        for (why, n) in &report.excused {
            *self.excused.entry(why.clone()).or_default() += n;
        }
        self.sim_ns += report.sim_ns;
        self.steps += report.steps;
        self.crashes += report.crashes;
        self.recoveries += report.recoveries;
        self.acked_batches += report.acked_batches;
    }

    /// Seeds that injected each fault class, then seeds that exercised each
    /// feature, by name: what a swarm's coverage is judged on.
    pub fn coverage(&self) -> Vec<(String, u64)> {
        let classes = self.faults.iter().map(|(c, t)| (format!("{c:?}"), t.seeds_injected));
        classes.chain(self.features.iter().map(|(f, n)| (f.clone(), *n))).collect()
    }

    /// Adds another scenario's (or shard's) stats.
    pub fn add(&mut self, other: &SeedStats) {
        for (class, t) in &other.faults {
            let mine = self.faults.entry(*class).or_default();
            mine.injected += t.injected;
            mine.seeds_injected += t.seeds_injected;
            mine.observed += t.observed;
            mine.seeds_observed += t.seeds_observed;
        }
        add_counts(&mut self.features, &other.features);
        add_counts(&mut self.crash_points, &other.crash_points);
        add_counts(&mut self.excused, &other.excused);
        for (request, hist) in &other.latency {
            self.latency.entry(*request).or_default().add(hist);
        }
        self.sim_ns += other.sim_ns;
        self.steps += other.steps;
        self.crashes += other.crashes;
        self.recoveries += other.recoveries;
        self.acked_batches += other.acked_batches;
        self.determinism_checked += other.determinism_checked;
    }
}

pub(crate) fn add_counts(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (name, n) in from {
        *to.entry(name.clone()).or_default() += n;
    }
}

/// One scenario's part of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub path: String,
    pub expect: Expect,
    pub canary: Option<String>,
    /// The scenario's seeds are `first_seed + i` for `i` in
    /// `0..seeds_planned`, those of the sweep's shards.
    pub first_seed: Seed,
    pub seeds_planned: u64,
    /// Seeds run: for a canary, those up to the one that caught it.
    pub seeds_run: u64,
    pub passed: u64,
    pub failed: u64,
    pub by_class: BTreeMap<FailureClass, u64>,
    /// The failures with the lowest seed indexes (at most
    /// [`FAILURES_KEPT`]); for a canary, the seed that caught it.
    pub failures: Vec<Failure>,
    /// A real scenario: no seed failed. A canary: a seed caught it.
    pub met_expectation: bool,
    pub stats: SeedStats,
    /// Seconds of one core the scenario's seeds took (machine-dependent).
    pub run_s: f64,
}

impl ScenarioReport {
    /// A scenario's report before any seed ran.
    pub fn empty(name: &str, path: &str, expect: Expect, canary: Option<String>, first_seed: Seed) -> Self {
        ScenarioReport {
            name: name.to_owned(),
            path: path.to_owned(),
            expect,
            canary,
            first_seed,
            seeds_planned: 0,
            seeds_run: 0,
            passed: 0,
            failed: 0,
            by_class: BTreeMap::new(),
            failures: Vec::new(),
            met_expectation: false,
            stats: SeedStats::default(),
            run_s: 0.0,
        }
    }

    /// Adds what another part of the same scenario's seeds found (another
    /// worker's, another shard's).
    pub fn add(&mut self, other: &ScenarioReport) {
        self.seeds_run += other.seeds_run;
        self.failed += other.failed;
        for (class, n) in &other.by_class {
            *self.by_class.entry(*class).or_default() += n;
        }
        self.failures.extend(other.failures.iter().cloned());
        self.stats.add(&other.stats);
        self.run_s += other.run_s;
    }

    pub fn is_canary(&self) -> bool {
        self.expect == Expect::MustFail
    }

    /// Derives the counts that follow from the failures and seeds run.
    pub fn finish(&mut self) {
        self.failures.sort_by_key(|f| f.index);
        self.failures.truncate(if self.is_canary() { 1 } else { FAILURES_KEPT });
        if self.is_canary() {
            self.failed = self.failures.len() as u64;
            self.by_class = BTreeMap::new();
            for f in &self.failures {
                *self.by_class.entry(f.class).or_default() += 1;
            }
        }
        self.passed = self.seeds_run - self.failed;
        self.met_expectation = if self.is_canary() { self.failed > 0 } else { self.failed == 0 };
    }
}

/// Which seeds the sweep ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub first_seed: Seed,
    /// Seeds per scenario (before a scenario's `sweep_share`), or none for
    /// a sweep bounded by time.
    pub seeds: Option<u64>,
    pub time_limit_s: Option<u64>,
    /// The shards (1-based) of `shards_of` this report covers.
    pub shards: Vec<u64>,
    pub shards_of: u64,
    /// One seed in this many ran twice to compare traces (0: none).
    pub determinism_every: u64,
    /// `--fail-fast` stopped the sweep at a failure.
    pub stopped_early: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub scenarios: u64,
    pub canaries: u64,
    pub canaries_caught: u64,
    /// Seeds of real scenarios (not canaries).
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    pub by_class: BTreeMap<FailureClass, u64>,
    pub sim_ns: u64,
    pub steps: u64,
}

/// The machine-dependent part of a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub wall_s: f64,
    pub jobs: u64,
    /// Seeds (canaries' included) per second of wall time.
    pub seeds_per_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool: String,
    pub verdict: Verdict,
    /// 0, or the exit code of the worst failure class found (a canary not
    /// caught counts as a correctness failure: a checker is blind).
    pub exit_code: u8,
    pub plan: Plan,
    pub totals: Totals,
    pub scenarios: Vec<ScenarioReport>,
    pub timing: Timing,
}

impl Report {
    pub fn new(plan: Plan, scenarios: Vec<ScenarioReport>, timing: Timing) -> Report {
        let mut report = Report {
            schema: SCHEMA.to_owned(),
            tool: format!("shale-sim {}", env!("CARGO_PKG_VERSION")),
            verdict: Verdict::Pass,
            exit_code: 0,
            plan,
            totals: Totals::default(),
            scenarios,
            timing,
        };
        report.finish();
        report
    }

    /// True if the report covers every shard of its sweep.
    pub fn is_whole(&self) -> bool {
        self.plan.shards.len() as u64 == self.plan.shards_of
    }

    /// Derives the totals, verdict and exit code from the scenarios. A
    /// canary not caught fails only a whole sweep: a shard's canaries are
    /// judged when the shards are merged.
    pub fn finish(&mut self) {
        let mut totals = Totals::default();
        let mut worst: Option<FailureClass> = None;
        let whole = self.is_whole();
        for s in &mut self.scenarios {
            s.finish();
            totals.scenarios += 1;
            if s.is_canary() {
                totals.canaries += 1;
                totals.canaries_caught += u64::from(s.met_expectation);
                if !s.met_expectation && whole {
                    worst = worst.max(Some(FailureClass::Correctness));
                }
                continue;
            }
            totals.seeds += s.seeds_run;
            totals.passed += s.passed;
            totals.failed += s.failed;
            for (class, n) in &s.by_class {
                *totals.by_class.entry(*class).or_default() += n;
                worst = worst.max(Some(*class));
            }
            totals.sim_ns += s.stats.sim_ns;
            totals.steps += s.stats.steps;
        }
        self.totals = totals;
        self.exit_code = worst.map_or(0, FailureClass::exit_code);
        self.verdict = if worst.is_none() { Verdict::Pass } else { Verdict::Fail };
    }

    /// Every scenario's seed stats added up (real scenarios only).
    pub fn all_stats(&self) -> SeedStats {
        let mut all = SeedStats::default();
        for s in self.scenarios.iter().filter(|s| !s.is_canary()) {
            all.add(&s.stats);
        }
        all
    }

    /// The report with its machine-dependent figures zeroed, for comparing
    /// two sweeps of the same seeds.
    pub fn without_timing(&self) -> Report {
        let mut report = self.clone();
        report.timing = Timing::default();
        for s in &mut report.scenarios {
            s.run_s = 0.0;
        }
        report
    }

    pub fn read(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("none");
        if schema != SCHEMA {
            return Err(format!("{} has schema {schema:?}; this shale-sim reads {SCHEMA:?}", path.display()));
        }
        serde_json::from_value(value).map_err(|e| format!("{} is not a sweep report: {e}", path.display()))
    }

    /// Writes `report.json`, `report.md` and the plots into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        write_file(&dir.join("report.json"), &(json + "\n"))?;
        write_file(&dir.join("report.md"), &markdown::render(self))?;
        for (name, svg) in plots::render(self)? {
            write_file(&dir.join(name), &svg)?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
