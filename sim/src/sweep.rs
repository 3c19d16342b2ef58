//! Sweeps: many seeds over many scenarios, on every core, shardable across
//! machines, bounded by a seed count or by time.
//!
//! Seeds are handed out in rounds: round `i` offers every scenario its next
//! seed, so no core waits at a scenario's end. A scenario with
//! `sweep_share` below one (its seeds cost far more than most) takes its
//! seeds in the first rounds of a sweep of a seed count, so that its long
//! seeds start first and do not make the sweep's tail; in a sweep bounded
//! by time it takes a seed in that share of rounds. Scenario `s` runs seeds `first + j` for
//! `j` in `0..planned`, and shard `k` of `n` runs the `j` with
//! `j % n == k - 1`. A canary stops at its first catch: seeds after it are
//! skipped, seeds before it still run, so the seed that caught it is the
//! lowest however the work was spread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::report::merge::seeds_in_shards;
use crate::report::{Failure, FailureClass, Plan, Report, ScenarioReport, Seed, Timing, FAILURES_KEPT};
use crate::run::run;
use crate::scenario::{Expect, Scenario};

/// How long a sweep runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// This many seeds per scenario (times its `sweep_share`).
    Seeds(u64),
    /// Rounds of seeds until this much wall time has passed.
    Time(Duration),
}

#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub first_seed: u64,
    pub limit: Limit,
    /// Shard `shard` of `shards`, 1-based.
    pub shard: u64,
    pub shards: u64,
    pub jobs: usize,
    /// Stop handing out seeds at the first failure of a real scenario.
    pub fail_fast: bool,
    /// Run one seed in this many twice and compare the traces (0: never).
    pub determinism_every: u64,
}

impl SweepOptions {
    /// Seeds `first..first + seeds` of every scenario, unsharded.
    pub fn seeds(first_seed: u64, seeds: u64, jobs: usize) -> SweepOptions {
        SweepOptions {
            first_seed,
            limit: Limit::Seeds(seeds),
            shard: 1,
            shards: 1,
            jobs,
            fail_fast: false,
            determinism_every: DETERMINISM_EVERY,
        }
    }
}

/// By default one seed in this many runs twice (a 2 % cost).
pub const DETERMINISM_EVERY: u64 = 50;

/// A scenario to sweep, with the path its repro commands name.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub scenario: Scenario,
}

/// What a sweep tells its watcher as it goes. Called from worker threads.
pub trait Progress: Sync {
    /// Seeds planned in all (grows round by round in a sweep bounded by
    /// time; shrinks when a canary's later seeds are skipped).
    fn planned(&self, _seeds: u64) {}
    fn skipped(&self, _seeds: u64) {}
    fn seed_done(&self, _scenario: &str) {}
    /// A seed failed (for a canary: was caught).
    fn failure(&self, _entry: &Entry, _failure: &Failure) {}
}

/// A watcher that is told nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Whether a scenario with `share` takes a seed in `round` of a sweep
/// bounded by time, and which (its `j`-th).
fn seed_index(round: u64, share: f64) -> Option<u64> {
    let before = (round as f64 * share).ceil() as u64;
    let after = ((round + 1) as f64 * share).ceil() as u64;
    (after > before).then_some(before)
}

/// Seeds a scenario plans in a sweep of `seeds` rounds.
fn planned(seeds: u64, share: f64) -> u64 {
    ((seeds as f64 * share).ceil() as u64).clamp(1, seeds.max(1))
}

fn share(scenario: &Scenario) -> f64 {
    if scenario.sweep_share > 0.0 && scenario.sweep_share < 1.0 {
        scenario.sweep_share
    } else {
        1.0
    }
}

struct Cursor {
    next: u64,
    stopped: bool,
    /// Highest `j + 1` handed out per scenario.
    issued: Vec<u64>,
}

struct Shared<'a> {
    entries: &'a [Entry],
    options: &'a SweepOptions,
    progress: &'a dyn Progress,
    cursor: Mutex<Cursor>,
    deadline: Option<Instant>,
    /// Per canary, the lowest seed index that caught it (`u64::MAX`: none).
    caught: Vec<AtomicU64>,
}

impl Shared<'_> {
    /// The next seed to run, as (scenario, j); `None` when the sweep is done.
    fn next(&self) -> Option<(usize, u64)> {
        let mut cursor = self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = self.entries.len() as u64;
        loop {
            if cursor.stopped || self.deadline.is_some_and(|d| Instant::now() >= d) {
                cursor.stopped = true;
                return None;
            }
            let k = cursor.next;
            cursor.next += 1;
            let (round, s) = (k / n, (k % n) as usize);
            if let Limit::Seeds(seeds) = self.options.limit {
                if round >= seeds {
                    return None;
                }
            }
            // Nothing left to run (scripts ran, canaries caught): the sweep
            // ends instead of turning rounds until its time is up.
            if s == 0 && round > 0 && (0..self.entries.len()).all(|s| self.exhausted(s)) {
                return None;
            }
            let scenario = &self.entries[s].scenario;
            let share = share(scenario);
            let j = match self.options.limit {
                // A script lists every choice: it runs once, whatever the seed.
                _ if scenario.script.is_some() => (round == 0).then_some(0),
                Limit::Seeds(seeds) if share < 1.0 => (round < planned(seeds, share)).then_some(round),
                _ => seed_index(round, share),
            };
            let Some(j) = j else { continue };
            cursor.issued[s] = cursor.issued[s].max(j + 1);
            if j % self.options.shards != self.options.shard - 1 {
                continue;
            }
            if self.deadline.is_some() {
                self.progress.planned(1);
            }
            if self.is_canary(s) && j > self.caught[s].load(Ordering::SeqCst) {
                self.progress.skipped(1);
                continue;
            }
            return Some((s, j));
        }
    }

    /// Scenario `s` takes no more seeds after round 0: a script, or a
    /// canary already caught.
    fn exhausted(&self, s: usize) -> bool {
        self.entries[s].scenario.script.is_some()
            || (self.is_canary(s) && self.caught[s].load(Ordering::SeqCst) != u64::MAX)
    }

    fn is_canary(&self, s: usize) -> bool {
        self.entries[s].scenario.expect == Expect::MustFail
    }

    fn stop(&self) {
        self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stopped = true;
    }

    /// Runs seed `j` of scenario `s` into `part` (this worker's report of
    /// the scenario, failures kept to the lowest seed indexes).
    fn run_one(&self, s: usize, j: u64, part: &mut ScenarioReport) {
        let entry = &self.entries[s];
        let scripted = entry.scenario.script.is_some();
        let seed = if scripted { 0 } else { self.options.first_seed.wrapping_add(j) };
        let started = Instant::now();
        let report = run(&entry.scenario, seed);
        let mut failure = FailureClass::of(&report.outcome).map(|class| (class, report.outcome.summary()));
        let every = self.options.determinism_every;
        let canary = self.is_canary(s);
        // Every canary seed is checked too: one canary plants nondeterminism.
        if every > 0 && (canary || j % every == every - 1) {
            part.stats.determinism_checked += u64::from(!canary);
            if let Some(why) = crate::runs_differently(&entry.scenario, &report) {
                failure = Some((FailureClass::Nondeterminism, why));
            }
        }
        part.run_s += started.elapsed().as_secs_f64();
        part.seeds_run += 1;
        if !canary {
            part.stats.add_run(&report);
        }
        let Some((class, summary)) = failure else {
            self.progress.seed_done(&entry.scenario.name);
            return;
        };
        let failure = Failure::new(j, &entry.path, scripted, &report, class, summary);
        part.failed += 1;
        if canary {
            let before = self.caught[s].fetch_min(j, Ordering::SeqCst);
            if j < before {
                self.progress.failure(entry, &failure);
            }
        } else {
            self.progress.failure(entry, &failure);
            if self.options.fail_fast {
                self.stop();
            }
        }
        *part.by_class.entry(class).or_default() += 1;
        part.failures.push(failure);
        if part.failures.len() > 2 * FAILURES_KEPT {
            part.failures.sort_by_key(|f| f.index);
            part.failures.truncate(FAILURES_KEPT);
        }
        self.progress.seed_done(&entry.scenario.name);
    }
}

/// Sweeps `entries` as `options` say, telling `progress` as it goes.
pub fn sweep(entries: &[Entry], options: &SweepOptions, progress: &dyn Progress) -> Report {
    assert!(options.shard >= 1 && options.shard <= options.shards, "shard {}/{}", options.shard, options.shards);
    let start = Instant::now();
    let deadline = match options.limit {
        Limit::Time(limit) => Some(start + limit),
        Limit::Seeds(_) => None,
    };
    let mut plan = Plan {
        first_seed: Seed(options.first_seed),
        seeds: match options.limit {
            Limit::Seeds(n) => Some(n),
            Limit::Time(_) => None,
        },
        time_limit_s: match options.limit {
            Limit::Time(t) => Some(t.as_secs()),
            Limit::Seeds(_) => None,
        },
        shards: vec![options.shard],
        shards_of: options.shards,
        determinism_every: options.determinism_every,
        stopped_early: false,
    };
    let mut issued = vec![0; entries.len()];
    if let Limit::Seeds(seeds) = options.limit {
        for (s, entry) in entries.iter().enumerate() {
            issued[s] = if entry.scenario.script.is_some() { 1 } else { planned(seeds, share(&entry.scenario)) };
            progress.planned(seeds_in_shards(issued[s], None, &plan));
        }
    }
    let shared = Shared {
        entries,
        options,
        progress,
        cursor: Mutex::new(Cursor { next: 0, stopped: false, issued: vec![0; entries.len()] }),
        deadline,
        caught: entries.iter().map(|_| AtomicU64::new(u64::MAX)).collect(),
    };
    let empty = |e: &Entry| {
        let s = &e.scenario;
        ScenarioReport::empty(&s.name, &e.path, s.expect, s.canary.clone(), Seed(options.first_seed))
    };
    let parts: Vec<Vec<ScenarioReport>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.jobs.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut parts: Vec<ScenarioReport> = entries.iter().map(empty).collect();
                    while let Some((s, j)) = shared.next() {
                        shared.run_one(s, j, &mut parts[s]);
                    }
                    parts
                })
            })
            .collect();
        // A worker panics only on a harness bug outside the contained run.
        workers.into_iter().map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let cursor = shared.cursor.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    if deadline.is_some() {
        issued = cursor.issued;
    }
    plan.stopped_early = options.fail_fast && cursor.stopped && deadline.is_none();
    let mut scenarios = Vec::new();
    let mut seeds_run_all = 0;
    for (s, entry) in entries.iter().enumerate() {
        let mut report = empty(entry);
        report.seeds_planned = issued[s];
        for part in &parts {
            report.add(&part[s]);
        }
        seeds_run_all += report.seeds_run;
        if report.is_canary() {
            let caught = shared.caught[s].load(Ordering::SeqCst);
            let caught = (caught != u64::MAX).then_some(caught);
            report.failures.retain(|f| Some(f.index) == caught);
            report.seeds_run = seeds_in_shards(report.seeds_planned, caught, &plan);
        }
        scenarios.push(report);
    }
    let wall_s = start.elapsed().as_secs_f64();
    let timing = Timing { wall_s, jobs: options.jobs as u64, seeds_per_s: seeds_run_all as f64 / wall_s.max(1e-9) };
    Report::new(plan, scenarios, timing)
}
