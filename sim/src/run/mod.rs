//! One simulation run: a discrete-event scheduler in simulated time drives
//! the store's single-threaded core (the same core the production writer
//! thread runs) against the simulated disk, with simulated clients,
//! crashes and restarts, and checks every promise after every step.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;

use serde::Serialize;
use shale_store::canary::Canary;
use shale_store::{
    AppendError, Core, Encryption, Gates, MasterKey, OpenError, Options, ReadError, Receipt, ShredError,
};

use crate::check::durable_keys::DurableKeys;
use crate::check::{check_all, checkers, reads, Checker, Durable, Phase, Promise, Snapshot, Violation};
use crate::disk::{FaultStats, Planned, SimDisk, SimTime};
use crate::env::{SimClock, SimEntropy, SimEnv};
use crate::excuse::{Before, Excuses, ReadTrouble};
use crate::gates::simulator_gates;
use crate::journal_map::JournalMap;
use crate::model::{Fate, Model};
use crate::panics::{catching, Caught, Culprit};
use crate::rng::SimRng;
use crate::scenario::script::{Recorded, STREAMS};
use crate::scenario::{Scenario, ScheduledFault};
use crate::trace::Trace;
use crate::workload::{Op, Workload};
pub use choices::Choices;
use stats::{Request, RunStats};

mod checkpoint;
mod choices;
mod client;
mod observe;
mod recovery;
pub mod stats;
mod writer;

/// Where the store lives on the simulated disk.
pub const STORE_DIR: &str = "/store";
/// Most events read per call while observing the store.
const OBSERVE_CHUNK: usize = 10_000;
/// Failed opens in a row after which the faults stop (a disk that keeps
/// failing every open would otherwise never let the run end).
const FAILED_OPENS_MAX: u32 = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Violation {
        violation: Violation,
        step: u64,
    },
    /// A panic: in the store (P11) or in the harness.
    Panic {
        panic: Caught,
        step: u64,
    },
    /// The run used up its step or simulated-time budget without ending.
    Budget {
        reason: String,
        step: u64,
    },
}

impl Outcome {
    /// One line: what went wrong, at which step and where.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Pass => "pass".into(),
            Outcome::Violation { violation, step } => format!("step {step}: {violation}"),
            Outcome::Panic { panic, step } => {
                let whose = match panic.culprit {
                    Culprit::Store => "the store (P11 never panic)",
                    Culprit::Harness => "the harness",
                };
                format!("step {step}: panic in {whose} at {}: {}", panic.location, panic.message)
            }
            Outcome::Budget { reason, step } => format!("step {step}: budget used up: {reason}"),
        }
    }

    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Pass => 0,
            Outcome::Violation { violation, .. } if violation.promise == Promise::P10Liveness => 11,
            Outcome::Violation { .. } => 10,
            Outcome::Panic { panic, .. } if panic.culprit == Culprit::Store => 12,
            Outcome::Panic { .. } => 14,
            Outcome::Budget { .. } => 15,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub outcome: Outcome,
    pub trace_hash: String,
    pub steps: u64,
    pub sim_ns: u64,
    pub crashes: u64,
    pub recoveries: u64,
    pub acked_batches: u64,
    pub events_at_end: u64,
    /// Journal segments in the store's directory at the end.
    pub segments_at_end: u64,
    /// How often each feature of the store was exercised (see
    /// [`Sim::features`]).
    pub features: std::collections::BTreeMap<&'static str, u64>,
    /// Acknowledged batches whose loss a lossy fault excused, by why.
    pub excused: std::collections::BTreeMap<String, u64>,
    pub faults: FaultStats,
    /// Crash points, request latencies and the faults the store noticed.
    pub stats: RunStats,
    #[serde(skip)]
    pub tail: Vec<String>,
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
    /// Every choice the run drew, when it recorded them.
    #[serde(skip)]
    pub recorded: Option<Recorded>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Client(u32),
    Writer,
    Restart,
}

#[derive(Default)]
struct Client {
    ops_left: u64,
    waiting: Option<u64>,
    retry: Option<u64>,
    /// How many times in a row the batch in `retry` (or in flight) was
    /// sent again.
    retries: u32,
    cursor: u64,
    sent_at: u64,
}

struct Stop(Outcome);

/// Every feature a run can report exercising (besides fault classes).
pub const FEATURES: [&str; 12] = [
    "encrypted",
    "master key",
    "shred acked",
    "gated",
    "gate panicked",
    "small segments",
    "many clients",
    "big groups",
    "large payloads",
    "clean close",
    "checkpoint used",
    "scan windows",
];

/// A request waiting for the writer: a client's batch (by uid) or shred.
type Req = shale_store::work::Request<(u32, u64), (u32, String)>;

pub struct Sim {
    scenario: Scenario,
    seed: u64,
    /// The seed of the store's keys and nonces.
    entropy_seed: u64,
    /// Every stream records its choices.
    record: bool,
    step_marks: Vec<[usize; STREAMS.len()]>,
    time: SimTime,
    disk: SimDisk,
    core: Option<Core<SimEnv>>,
    model: Model,
    workload: Workload,
    clients: Vec<Client>,
    inbox: VecDeque<Req>,
    queue: BinaryHeap<Reverse<(u64, u64, u64, Event)>>,
    sched_rng: SimRng,
    fault_rng: SimRng,
    queued: u64,
    writer_scheduled: bool,
    restart_scheduled: bool,
    trace: Trace,
    step: u64,
    crashes: u64,
    recoveries: u64,
    salvage_next: bool,
    /// A read met damage: the next open reads the whole journal (passing
    /// over the checkpoint), as an operator told of it would ask.
    full_scan_next: bool,
    failed_opens: u32,
    faults_stopped_at: Option<u64>,
    checkers: Vec<Box<dyn Checker>>,
    /// Where every copy of every batch was written.
    map: JournalMap,
    /// The disk before the first recovery attempt since the last one that
    /// finished.
    before: Option<Before>,
    /// A recovery since the last one that finished was cut short by a crash
    /// (its report was never seen).
    interrupted: bool,
    excused: std::collections::BTreeMap<String, u64>,
    stats: RunStats,
    /// The fault counts when the store was last handed work, for telling
    /// which faults its errors reported.
    faults_before: FaultStats,
    /// The damage on the disk when the last commit began, and the disk's
    /// damage mark then: a gate's read that failed in it is excused by
    /// damage that was there, or recorded since (the commit's own write
    /// may have healed it by the time the commit answers).
    commit_damage: Vec<crate::disk::Damage>,
    commit_damage_mark: usize,
    canary: Canary,
    master_key: Option<MasterKey>,
    /// The reports of recoveries whose checks were cut short (a read met
    /// the power going out, or damage), for the next recovery's checks.
    unchecked_reports: Vec<shale_store::RecoveryReport>,
    /// How many events of the model's view a recovery verified the hash
    /// chains of (P8): events seen since are verified by the next one.
    chains_verified: usize,
    /// The durable key material, read incrementally (encrypted runs).
    durable_keys: Option<DurableKeys>,
    features: std::collections::BTreeMap<&'static str, u64>,
    /// The last open from the index checkpoint a full scan was shown to
    /// match (see `checkpoint.rs`).
    checked_open: Option<checkpoint::CheckedOpen>,
}

impl Sim {
    /// A run of `scenario` with `seed` (a scenario with a script replays
    /// it instead).
    pub fn new(scenario: &Scenario, seed: u64, keep_trace: bool) -> Self {
        let choices = match &scenario.script {
            Some(script) => Choices::Script(script.clone()),
            None => Choices::Seed(seed),
        };
        Self::with_choices(scenario, seed, choices, keep_trace, false)
    }

    /// A run drawing from `choices`; `record` keeps every choice drawn
    /// (see [`RunReport::recorded`]). `seed` derives a swarm scenario's
    /// draws and names the run.
    pub fn with_choices(scenario: &Scenario, seed: u64, choices: Choices, keep_trace: bool, record: bool) -> Self {
        let scenario = scenario.derive(seed);
        let time = SimTime::default();
        let disk = SimDisk::with_rngs(
            choices.stream("disk", record),
            choices.stream("reads", record),
            scenario.faults.disk.clone(),
            time.clone(),
        );
        let entropy_seed = choices.entropy_seed();
        for fault in &scenario.faults.schedule {
            disk.plan(match fault {
                ScheduledFault::Crash { at_op } => Planned::CrashAtOp { op: *at_op },
                ScheduledFault::FailFsync { file, nth } => Planned::FailSync { file: file.clone(), nth: *nth },
                ScheduledFault::LieFsync { file, nth } => Planned::LieSync { file: file.clone(), nth: *nth },
            });
        }
        let clients = scenario.run.clients as u64;
        let per_client = scenario.run.operations / clients;
        let extra = scenario.run.operations % clients;
        let clients = (0..clients)
            .map(|c| Client { ops_left: per_client + u64::from(c < extra), cursor: 1, ..Client::default() })
            .collect();
        let canary = scenario.canary.as_deref().and_then(Canary::from_name).unwrap_or_default();
        let gated = scenario.run.gates;
        let master_key = scenario.run.master_key.then(|| {
            let mut key = [0u8; 32];
            SimRng::stream(entropy_seed, "master-key").fill(&mut key);
            MasterKey::from_bytes(key)
        });
        Self {
            workload: Workload::new(scenario.workload.clone(), choices.stream("workload", record), scenario.run.gates),
            scenario,
            seed,
            time,
            disk,
            core: None,
            model: Model::new(gated, master_key.clone()),
            clients,
            inbox: VecDeque::new(),
            queue: BinaryHeap::new(),
            sched_rng: choices.stream("scheduler", record),
            fault_rng: choices.stream("crashes", record),
            entropy_seed,
            record,
            step_marks: Vec::new(),
            queued: 0,
            writer_scheduled: false,
            restart_scheduled: false,
            trace: Trace::new(keep_trace),
            step: 0,
            crashes: 0,
            recoveries: 0,
            salvage_next: false,
            full_scan_next: false,
            failed_opens: 0,
            faults_stopped_at: None,
            checkers: checkers(),
            map: JournalMap::default(),
            before: None,
            interrupted: false,
            excused: std::collections::BTreeMap::new(),
            stats: RunStats::default(),
            faults_before: FaultStats::default(),
            commit_damage: Vec::new(),
            commit_damage_mark: 0,
            canary,
            master_key,
            durable_keys: None,
            chains_verified: 0,
            unchecked_reports: Vec::new(),
            features: std::collections::BTreeMap::new(),
            checked_open: None,
        }
    }

    /// The scenario as this seed runs it (swarm draws applied).
    pub fn derived(&self) -> &Scenario {
        &self.scenario
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.queued += 1;
        let tie = self.sched_rng.next_u64();
        self.queue.push(Reverse((at, tie, self.queued, event)));
    }

    fn note(&mut self, what: String) {
        let line = format!("{:>6} t={:>12} {what}", self.step, self.time.now());
        self.trace.line(line);
    }

    fn violation(&self, promise: Promise, message: impl Into<String>) -> Stop {
        Stop(Outcome::Violation { violation: Violation::new(promise, message), step: self.step })
    }

    fn options(&self) -> Options {
        Options {
            create_if_missing: true,
            segment_size: self.scenario.run.segment_size,
            salvage: self.salvage_next,
            encryption: if self.scenario.run.encryption {
                Encryption::PerEntity { master_key: self.master_key.clone() }
            } else {
                Encryption::Off
            },
            gates: if self.scenario.run.gates { simulator_gates() } else { Gates::default() },
            full_scan: self.full_scan_next,
            checkpoint_every: self.scenario.run.checkpoint_every,
            scan_window: self.scenario.run.scan_window,
            canary: self.canary,
        }
    }

    /// Runs to the end; the report says how it went.
    pub fn run(mut self) -> RunReport {
        let outcome = match catching(|| self.drive()) {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(Stop(outcome))) => outcome,
            Err(panic) => Outcome::Panic { panic, step: self.step },
        };
        if let Outcome::Violation { violation, .. } = &outcome {
            let line = format!("VIOLATION {violation}");
            self.note(line);
        }
        RunReport {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            outcome,
            trace_hash: self.trace.hash(),
            steps: self.step,
            sim_ns: self.time.now(),
            crashes: self.crashes,
            recoveries: self.recoveries,
            acked_batches: self.model.acked().count() as u64,
            events_at_end: self.model.view.len() as u64,
            segments_at_end: self.segments_at_end(),
            features: self.features(),
            excused: std::mem::take(&mut self.excused),
            faults: self.disk.stats(),
            stats: std::mem::take(&mut self.stats),
            tail: self.trace.tail(),
            trace: self.trace.take_full(),
            recorded: self.record.then(|| self.take_recorded()),
        }
    }

    /// How far each stream's recording has come, in `STREAMS` order.
    fn record_marks(&self) -> [usize; STREAMS.len()] {
        let (disk, reads) = self.disk.rng_record_lens();
        [self.workload.rng_ref().record_len(), self.sched_rng.record_len(), self.fault_rng.record_len(), disk, reads]
    }

    fn take_recorded(&mut self) -> Recorded {
        let mut streams = std::collections::BTreeMap::new();
        streams.insert("workload", self.workload.rng().take_record());
        streams.insert("scheduler", self.sched_rng.take_record());
        streams.insert("crashes", self.fault_rng.take_record());
        let (disk, reads) = self.disk.take_rng_records();
        streams.insert("disk", disk);
        streams.insert("reads", reads);
        Recorded { entropy_seed: self.entropy_seed, streams, step_marks: std::mem::take(&mut self.step_marks) }
    }

    fn exercised(&mut self, feature: &'static str) {
        debug_assert!(FEATURES.contains(&feature), "{feature} is not in FEATURES");
        *self.features.entry(feature).or_default() += 1;
    }

    /// What the run exercised besides fault classes: the store's optional
    /// features and the run's shape, for swarm coverage.
    fn features(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut features = self.features.clone();
        let (r, w) = (&self.scenario.run, &self.scenario.workload);
        let shape = [
            ("encrypted", r.encryption),
            ("master key", r.master_key),
            ("gated", r.gates),
            ("small segments", r.segment_size <= 8192),
            ("many clients", r.clients >= 6),
            ("big groups", r.group_max >= 32),
            ("large payloads", w.payload_max >= 256),
            ("scan windows", r.scan_window < r.segment_size as usize),
        ];
        for (feature, on) in shape {
            if on {
                features.insert(feature, 1);
            }
        }
        features
    }

    fn segments_at_end(&self) -> u64 {
        let names = self.disk.names_in(Path::new(STORE_DIR));
        names.iter().filter(|(name, _)| shale_store::journal::segment::parse_segment_name(name).is_some()).count()
            as u64
    }

    fn drive(&mut self) -> Result<(), Stop> {
        self.restart()?;
        for c in 0..self.clients.len() as u32 {
            let at = self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
            self.schedule(at, Event::Client(c));
        }
        loop {
            while let Some(Reverse((at, _, _, event))) = self.queue.pop() {
                self.time.set_at_least(at);
                self.step += 1;
                if self.record {
                    self.step_marks.push(self.record_marks());
                }
                self.within_budget()?;
                self.liveness_deadline()?;
                match event {
                    Event::Client(c) => self.client_acts(c)?,
                    Event::Writer => self.writer_step()?,
                    Event::Restart => {
                        self.restart_scheduled = false;
                        self.restart()?;
                    }
                }
                if self.faults_stopped_at.is_none() && self.workload_done() {
                    break;
                }
            }
            if self.faults_stopped_at.is_some() {
                return self.final_checks();
            }
            if !self.workload_done() {
                return Err(self.violation(Promise::P10Liveness, "clients still waiting with nothing scheduled"));
            }
            self.stop_faults()?;
        }
    }

    fn workload_done(&self) -> bool {
        self.inbox.is_empty()
            && self.clients.iter().all(|c| c.ops_left == 0 && c.waiting.is_none() && c.retry.is_none())
    }

    /// Every run ends: one that used up its step or simulated-time budget
    /// stops with an outcome of its own.
    fn within_budget(&self) -> Result<(), Stop> {
        let run = &self.scenario.run;
        let reason = if self.step > run.steps_max {
            format!("more than {} steps", run.steps_max)
        } else if self.time.now() > run.sim_time_max_ns {
            format!("more than {} ns of simulated time", run.sim_time_max_ns)
        } else {
            return Ok(());
        };
        Err(Stop(Outcome::Budget { reason, step: self.step }))
    }

    fn liveness_deadline(&self) -> Result<(), Stop> {
        if let Some(stopped) = self.faults_stopped_at {
            let waited = self.time.now() - stopped;
            if waited > self.scenario.run.liveness_ns {
                return Err(self.violation(
                    Promise::P10Liveness,
                    format!("faults stopped {waited} ns ago and the store has not recovered"),
                ));
            }
        }
        Ok(())
    }
}

/// Runs `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> RunReport {
    Sim::new(scenario, seed, false).run()
}

/// Runs `scenario` with `seed`, keeping the whole trace.
pub fn run_traced(scenario: &Scenario, seed: u64) -> RunReport {
    Sim::new(scenario, seed, true).run()
}
