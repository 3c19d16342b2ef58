//! Shrinking a failing run to the smallest story of its bug.
//!
//! The failing seed is run once more with every choice recorded, which
//! turns it into a script (`scenario::script`) that fails without the seed.
//! Then, pass after pass until none helps or the budget is spent, the
//! shrinker tries smaller variants and keeps each that still fails with
//! the same signature (the same promise broken, the same panic site, or
//! nondeterminism): fewer client operations and clients, smaller batches,
//! payloads and groups, fault kinds switched off, scheduled faults dropped,
//! and the script's choices cut short or set to their smallest (no fault,
//! the first option, zero). Every step is deterministic: the same failure
//! shrinks to the same scenario (unless the time budget cuts it short; the
//! cap on runs does not depend on the machine).

use std::time::{Duration, Instant};

use crate::rng::Kind;
use crate::run::{Choices, RunReport, Sim};
use crate::scenario::script::{Recorded, Value, STREAMS};
use crate::scenario::{Scenario, ScheduledFault};
use shale_store::limits::SEGMENT_SIZE_MIN;

/// Runs a shrink may make by default, whatever its time budget.
pub const RUNS_MAX: u64 = 20_000;

#[derive(Clone, Debug)]
pub struct ShrinkOptions {
    /// Wall time after which the smallest failure so far is the answer.
    pub budget: Duration,
    pub runs_max: u64,
}

impl Default for ShrinkOptions {
    fn default() -> Self {
        ShrinkOptions { budget: Duration::from_secs(60), runs_max: RUNS_MAX }
    }
}

/// How big a failing run is; smaller is better, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    pub operations: u64,
    pub clients: u32,
    /// Faults injected plus crashes.
    pub faults: u64,
    /// Choices the script lists that are not their smallest.
    pub choices: u64,
    /// Choices the script lists.
    pub script_len: u64,
    pub knobs: u64,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} client operations, {} clients, {} faults and crashes, {} choices ({} not the smallest)",
            self.operations, self.clients, self.faults, self.script_len, self.choices
        )
    }
}

#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing scenario found: a script, no seed needed.
    pub scenario: Scenario,
    pub signature: String,
    pub before: Size,
    pub after: Size,
    pub runs: u64,
    pub elapsed: Duration,
    /// The smallest failure's run, with its whole trace.
    pub report: RunReport,
}

/// What a failure is, for telling whether a smaller run fails the same way.
pub fn signature(report: &RunReport) -> Option<String> {
    use crate::run::Outcome;
    match &report.outcome {
        Outcome::Pass => None,
        Outcome::Violation { violation, .. } => Some(violation.promise.code().to_owned()),
        Outcome::Panic { panic, .. } => Some(format!("panic at {}", panic.location)),
        Outcome::Budget { .. } => Some("budget used up".to_owned()),
    }
}

/// Signature of nondeterminism (a seed that runs two ways).
pub const NONDETERMINISM: &str = "nondeterminism";

struct Shrinker {
    signature: String,
    options: ShrinkOptions,
    started: Instant,
    runs: u64,
    best: Scenario,
    best_size: Size,
    best_recorded: Recorded,
}

impl Shrinker {
    fn spent(&self) -> bool {
        self.runs >= self.options.runs_max || self.started.elapsed() >= self.options.budget
    }

    /// Runs `candidate`: its recording if it fails with the signature.
    fn fails(&mut self, candidate: &Scenario) -> Option<(RunReport, Recorded)> {
        if candidate.validate().is_err() {
            return None;
        }
        self.runs += 1;
        let report = record(candidate);
        let same = match self.signature.as_str() {
            NONDETERMINISM => report.outcome.passed() && crate::runs_differently(candidate, &report).is_some(),
            wanted => signature(&report).as_deref() == Some(wanted),
        };
        let recorded = report.recorded.clone()?;
        same.then_some((report, recorded))
    }

    /// Tries `candidate`; keeps it if it fails the same way and is smaller.
    fn try_keep(&mut self, mut candidate: Scenario) -> bool {
        if self.spent() {
            return false;
        }
        let Some((report, recorded)) = self.fails(&candidate) else { return false };
        // The script as the run consumed it: unused choices fall away.
        candidate.script = Some(recorded.script());
        let size = size(&candidate, &report, &recorded);
        if size >= self.best_size {
            return false;
        }
        self.best = candidate;
        self.best_size = size;
        self.best_recorded = recorded;
        true
    }

    /// The smallest of `values` (ascending) that still fails, set by `set`.
    fn smallest<T: Copy + PartialOrd>(&mut self, values: &[T], current: T, set: impl Fn(&mut Scenario, T)) {
        for &v in values.iter().filter(|v| **v < current) {
            let mut candidate = self.best.clone();
            set(&mut candidate, v);
            if self.try_keep(candidate) {
                return;
            }
        }
    }

    fn shrink_knobs(&mut self) {
        let ops = self.best.run.operations;
        let steps: Vec<u64> = ladder(ops);
        self.smallest(&steps, ops, |s, v| s.run.operations = v);
        let clients = self.best.run.clients;
        self.smallest(&(1..clients).collect::<Vec<_>>(), clients, |s, v| s.run.clients = v);
        let w = &self.best.workload;
        let (batch, payload, entities, group) = (w.batch_max, w.payload_max, w.entities, self.best.run.group_max);
        self.smallest(&ladder_u32(batch), batch, |s, v| s.workload.batch_max = v);
        self.smallest(&[12, 16, 24, 32, 48, 64, 96], payload, |s, v| s.workload.payload_max = v);
        self.smallest(&ladder_u32(entities), entities, |s, v| s.workload.entities = v);
        self.smallest(&ladder_u32(group), group, |s, v| s.run.group_max = v);
        // Smaller segments roll sooner: a bug at a segment's end shows in
        // fewer operations.
        let segment = self.best.run.segment_size;
        let sizes: Vec<u64> = (1..=8).map(|k| k * SEGMENT_SIZE_MIN).collect();
        self.smallest(&sizes, segment, |s, v| s.run.segment_size = v);
        for i in 0..self.best.faults.schedule.len() {
            let mut candidate = self.best.clone();
            if i < candidate.faults.schedule.len() {
                candidate.faults.schedule.remove(i);
                if self.try_keep(candidate) {
                    continue;
                }
            }
            // Or earlier: a lower count of syncs or operations.
            let Some(fault) = self.best.faults.schedule.get(i) else { continue };
            let at = scheduled_at(fault);
            self.smallest(&ladder(at), at, |s, v| {
                if let Some(f) = s.faults.schedule.get_mut(i) {
                    set_scheduled_at(f, v);
                }
            });
        }
        for i in 0..rates(&mut self.best.clone()).len() {
            let mut candidate = self.best.clone();
            if let Some(rate) = rates(&mut candidate).into_iter().nth(i) {
                if *rate > 0.0 {
                    *rate = 0.0;
                    self.try_keep(candidate);
                }
            }
        }
    }

    /// Cuts each stream short, then sets runs of its choices to their
    /// smallest, then deletes runs of them.
    fn shrink_script(&mut self) {
        for label in STREAMS {
            let len = self.stream(label).len();
            for keep in [0, len / 4, len / 2, len * 3 / 4] {
                if keep < self.stream(label).len() {
                    self.edit(label, |values, _| values.truncate(keep));
                }
            }
            // Runs of choices set to their smallest...
            self.by_chunks(label, false, |s, at, end| {
                let kinds = s.kinds(label);
                let stream = s.stream(label);
                if (at..end).all(|i| kinds.get(i).is_none_or(|k| stream[i].0 == k.smallest())) {
                    return false;
                }
                s.edit(label, |values, kinds| {
                    for (i, value) in values.iter_mut().enumerate().take(end).skip(at) {
                        *value = Value(kinds.get(i).map_or(0, |k| k.smallest()));
                    }
                })
            });
            // ...and deleted.
            self.by_chunks(label, true, |s, at, end| s.edit(label, |values, _| drop(values.drain(at..end))));
        }
    }

    /// Walks a stream in chunks from halves down to single choices (or to
    /// a 256th of a long stream: each size costs a run per chunk), calling
    /// `step(at, end)`. With `again`, a step that was kept is tried again
    /// at the same place (the stream moved up under it).
    fn by_chunks(&mut self, label: &str, again: bool, mut step: impl FnMut(&mut Self, usize, usize) -> bool) {
        let len = self.stream(label).len();
        let finest = (len / 256).max(1);
        let mut chunk = len.next_power_of_two() / 2;
        while chunk >= finest && !self.spent() {
            let mut at = 0;
            while at < self.stream(label).len() && !self.spent() {
                let end = (at + chunk).min(self.stream(label).len());
                if !(step(self, at, end) && again) {
                    at += chunk;
                }
            }
            chunk /= 2;
        }
    }

    /// Deletes runs of whole scheduler steps: every choice drawn in them,
    /// from every stream at once (so a fault and the crash after it move
    /// earlier together).
    fn shrink_steps(&mut self) {
        let mut chunk = self.best_recorded.step_marks.len().next_power_of_two() / 2;
        while chunk >= 1 && !self.spent() {
            let mut at = 0;
            while at < self.best_recorded.step_marks.len() && !self.spent() {
                let marks = &self.best_recorded.step_marks;
                let from = marks[at];
                let to = marks.get(at + chunk).copied().unwrap_or([usize::MAX; STREAMS.len()]);
                let mut candidate = self.best.clone();
                let Some(script) = candidate.script.as_mut() else { return };
                for (s, label) in STREAMS.iter().enumerate() {
                    let values = script.stream_mut(label);
                    let (a, b) = (from[s].min(values.len()), to[s].min(values.len()));
                    values.drain(a..b);
                }
                if !self.try_keep(candidate) {
                    at += chunk;
                }
            }
            chunk /= 2;
        }
    }

    fn stream(&self, label: &str) -> &[Value] {
        self.best.script.as_ref().map_or(&[], |s| s.stream(label))
    }

    fn kinds(&self, label: &str) -> Vec<Kind> {
        self.best_recorded.streams.get(label).map_or_else(Vec::new, |c| c.iter().map(|c| c.kind).collect())
    }

    /// Tries the best scenario with one stream of its script edited.
    fn edit(&mut self, label: &str, f: impl FnOnce(&mut Vec<Value>, &[Kind])) -> bool {
        let kinds = self.kinds(label);
        let mut candidate = self.best.clone();
        let Some(script) = candidate.script.as_mut() else { return false };
        f(script.stream_mut(label), &kinds);
        self.try_keep(candidate)
    }
}

fn scheduled_at(fault: &ScheduledFault) -> u64 {
    match fault {
        ScheduledFault::Crash { at_op } => *at_op,
        ScheduledFault::FailFsync { nth, .. } | ScheduledFault::LieFsync { nth, .. } => *nth,
    }
}

fn set_scheduled_at(fault: &mut ScheduledFault, v: u64) {
    match fault {
        ScheduledFault::Crash { at_op } => *at_op = v,
        ScheduledFault::FailFsync { nth, .. } | ScheduledFault::LieFsync { nth, .. } => *nth = v,
    }
}

/// Smaller values to try for a count, smallest first.
fn ladder(n: u64) -> Vec<u64> {
    let mut steps: Vec<u64> =
        [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128].into_iter().filter(|v| *v < n).collect();
    steps.extend([n / 8, n / 4, n / 2, n * 3 / 4, n.saturating_sub(1)].into_iter().filter(|v| *v > 128 && *v < n));
    steps.sort_unstable();
    steps.dedup();
    steps
}

fn ladder_u32(n: u32) -> Vec<u32> {
    ladder(u64::from(n)).into_iter().map(|v| v as u32).collect()
}

/// Every fault and workload rate a shrink may switch off.
fn rates(s: &mut Scenario) -> Vec<&mut f64> {
    let d = &mut s.faults.disk;
    let w = &mut s.workload;
    vec![
        &mut s.faults.crash_between_steps,
        &mut s.run.close_rate,
        &mut d.crash_per_op,
        &mut d.fsync_fail,
        &mut d.fsync_lie,
        &mut d.dir_sync_fail,
        &mut d.read_latent_error,
        &mut d.read_bit_rot,
        &mut d.misdirected_write,
        &mut d.read_short,
        &mut d.read_error,
        &mut d.write_error,
        &mut d.rename_error,
        &mut d.lost_write,
        &mut d.stale_frame,
        &mut w.expected_version_rate,
        &mut w.idempotency_rate,
        &mut w.cause_rate,
        &mut w.bogus_cause_rate,
        &mut w.correlation_rate,
        &mut w.key_reuse_rate,
        &mut w.invalid_rate,
        &mut w.explode_rate,
    ]
}

fn size(scenario: &Scenario, report: &RunReport, recorded: &Recorded) -> Size {
    let choices = recorded.streams.values().flatten().filter(|c| c.value != c.kind.smallest()).count() as u64;
    let mut knobs = scenario.clone();
    let knobs = rates(&mut knobs).iter().filter(|r| ***r > 0.0).count() as u64 + knobs.faults.schedule.len() as u64;
    let w = &scenario.workload;
    Size {
        operations: scenario.run.operations,
        clients: scenario.run.clients,
        faults: report.faults.injected.values().sum::<u64>() + report.crashes,
        choices,
        script_len: scenario.script.as_ref().map_or(0, |s| s.len() as u64),
        knobs: knobs
            + u64::from(w.batch_max)
            + u64::from(w.payload_max)
            + u64::from(w.entities)
            + u64::from(scenario.run.group_max)
            + scenario.run.segment_size / SEGMENT_SIZE_MIN
            + scenario.faults.schedule.iter().map(scheduled_at).sum::<u64>(),
    }
}

/// Runs `scenario` (a script, or its seed 0) recording every choice.
fn record(scenario: &Scenario) -> RunReport {
    let choices = match &scenario.script {
        Some(script) => Choices::Script(script.clone()),
        None => Choices::Seed(0),
    };
    Sim::with_choices(scenario, 0, choices, false, true).run()
}

/// The scenario as `seed` runs it (or its script, if it has one), as a
/// script that replays the run without the seed.
pub fn script_of(scenario: &Scenario, seed: u64) -> (Scenario, RunReport) {
    let choices = match &scenario.script {
        Some(script) => Choices::Script(script.clone()),
        None => Choices::Seed(seed),
    };
    let sim = Sim::with_choices(scenario, seed, choices, false, true);
    let mut scripted = sim.derived().clone();
    let report = sim.run();
    let recorded = report.recorded.clone().unwrap_or_default();
    scripted.faults.swarm = false;
    scripted.script = Some(recorded.script());
    (scripted, report)
}

/// Shrinks the failure `seed` finds in `scenario` (`determinism`: the
/// failure is that the seed runs two ways).
pub fn shrink(scenario: &Scenario, seed: u64, determinism: bool, options: ShrinkOptions) -> Result<Shrunk, String> {
    let started = Instant::now();
    let (scripted, report) = script_of(scenario, seed);
    let signature = match (signature(&report), determinism) {
        (Some(sig), _) => sig,
        (None, true) if crate::runs_differently(scenario, &report).is_some() => NONDETERMINISM.to_owned(),
        (None, _) => return Err(format!("seed {seed:#x} of {} passes: nothing to shrink", scenario.name)),
    };
    let recorded = report.recorded.clone().unwrap_or_default();
    let before = size(&scripted, &report, &recorded);
    let mut s = Shrinker {
        signature,
        options,
        started,
        runs: 1,
        best: scripted.clone(),
        best_size: before,
        best_recorded: recorded,
    };
    // The script must fail by itself, or there is nothing to shrink from.
    if s.fails(&scripted).is_none() {
        return Err(format!(
            "seed {seed:#x} fails ({}), but its recorded script does not fail the same way",
            s.signature
        ));
    }
    loop {
        let at = s.best_size;
        s.shrink_steps();
        s.shrink_knobs();
        s.shrink_script();
        if s.best_size == at || s.spent() {
            break;
        }
    }
    let mut best = s.best.clone();
    best.faults.swarm = false;
    let report = crate::run::run_traced(&best, 0);
    Ok(Shrunk {
        scenario: best,
        signature: s.signature.clone(),
        before,
        after: s.best_size,
        runs: s.runs,
        elapsed: started.elapsed(),
        report,
    })
}

/// The scenario file for a shrunk failure: its story as comments, then
/// the scenario with its script.
pub fn scenario_file(shrunk: &Shrunk, origin: &str) -> Result<String, String> {
    let mut scenario = shrunk.scenario.clone();
    scenario.description = format!(
        "Shrunk from {origin}: fails with {} in {} client operations without a seed.",
        shrunk.signature, scenario.run.operations
    );
    let body = toml::to_string(&scenario).map_err(|e| e.to_string())?;
    let mut text = format!(
        "# {}\n# Before: {}.\n# After:  {}.\n# {} runs in {:.1} s. The run, step by step:\n#\n",
        scenario.description,
        shrunk.before,
        shrunk.after,
        shrunk.runs,
        shrunk.elapsed.as_secs_f64()
    );
    // A trace line may hold line breaks (a panic's message): every line
    // of it is commented, or the file would not parse.
    for line in shrunk.report.trace.iter().flatten().take(STORY_LINES_MAX).flat_map(|l| l.lines()) {
        text.push_str(&format!("#   {line}\n"));
    }
    text.push('\n');
    text.push_str(&body);
    Ok(text)
}

/// Trace lines a shrunk scenario file quotes as its story.
const STORY_LINES_MAX: usize = 200;
