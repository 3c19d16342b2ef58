//! One simulation run: a discrete-event scheduler in simulated time drives
//! the store's single-threaded core (the same core the production writer
//! thread runs) against the simulated disk, with simulated clients,
//! crashes and restarts, and checks every promise after every step.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Serialize;
use shale_store::canary::Canary;
use shale_store::keyset::Keyset;
use shale_store::{
    AppendError, Core, Encryption, Gates, InvalidInput, MasterKey, OpenError, Options, ReadError, Receipt, ShredError,
};

use crate::check::{check_all, checkers, reads, Checker, Durable, Phase, Promise, Snapshot, Violation};
use crate::disk::{FaultStats, Planned, SimDisk, SimTime};
use crate::env::{SimClock, SimEntropy, SimEnv};
use crate::gates::{simulator_gates, EXPLODING_GATE};
use crate::model::{Fate, Model};
use crate::rng::SimRng;
use crate::scenario::{Scenario, ScheduledFault};
use crate::trace::Trace;
use crate::workload::{Op, Workload};

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
    Violation { violation: Violation, step: u64 },
    Panic { message: String, step: u64 },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Pass => 0,
            Outcome::Violation { violation, .. } if violation.promise == Promise::P10Liveness => 11,
            Outcome::Violation { .. } => 10,
            Outcome::Panic { .. } => 12,
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
    pub faults: FaultStats,
    /// Simulated commit latency of every acknowledged request, ns.
    #[serde(skip)]
    pub commit_latencies_ns: Vec<u64>,
    #[serde(skip)]
    pub tail: Vec<String>,
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
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
    cursor: u64,
    sent_at: u64,
}

struct Stop(Outcome);

/// A request waiting for the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Batch(u64),
    Shred(String),
}

pub struct Sim {
    scenario: Scenario,
    seed: u64,
    time: SimTime,
    disk: SimDisk,
    core: Option<Core<SimEnv>>,
    model: Model,
    workload: Workload,
    clients: Vec<Client>,
    inbox: VecDeque<(u32, Req)>,
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
    failed_opens: u32,
    faults_stopped_at: Option<u64>,
    checkers: Vec<Box<dyn Checker>>,
    latencies: Vec<u64>,
    canary: Canary,
    master_key: Option<MasterKey>,
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl Sim {
    pub fn new(scenario: &Scenario, seed: u64, keep_trace: bool) -> Self {
        let scenario = scenario.derive(seed);
        let time = SimTime::default();
        let disk = SimDisk::new(seed, scenario.faults.disk.clone(), time.clone());
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
            SimRng::stream(seed, "master-key").fill(&mut key);
            MasterKey::from_bytes(key)
        });
        Self {
            workload: Workload::new(scenario.workload.clone(), seed, scenario.run.gates),
            scenario,
            seed,
            time,
            disk,
            core: None,
            model: Model::new(gated),
            clients,
            inbox: VecDeque::new(),
            queue: BinaryHeap::new(),
            sched_rng: SimRng::stream(seed, "scheduler"),
            fault_rng: SimRng::stream(seed, "crashes"),
            queued: 0,
            writer_scheduled: false,
            restart_scheduled: false,
            trace: Trace::new(keep_trace),
            step: 0,
            crashes: 0,
            recoveries: 0,
            salvage_next: false,
            failed_opens: 0,
            faults_stopped_at: None,
            checkers: checkers(),
            latencies: Vec::new(),
            canary,
            master_key,
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
            canary: self.canary,
        }
    }

    /// Runs to the end; the report says how it went.
    pub fn run(mut self) -> RunReport {
        let outcome = match self.drive() {
            Ok(()) => Outcome::Pass,
            Err(Stop(outcome)) => outcome,
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
            faults: self.disk.stats(),
            commit_latencies_ns: std::mem::take(&mut self.latencies),
            tail: self.trace.tail(),
            trace: self.trace.take_full(),
        }
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

    /// Faults stop: a failed write must not have poisoned the writer, and
    /// after one more crash the store must reopen and accept writes.
    fn stop_faults(&mut self) -> Result<(), Stop> {
        self.disk.set_faults(false);
        self.faults_stopped_at = Some(self.time.now());
        self.note("faults stop".into());
        if self.core.is_some() {
            self.probe("after faults stop")?;
        }
        self.crash(Vec::new());
        Ok(())
    }

    fn final_checks(&mut self) -> Result<(), Stop> {
        if self.core.is_none() {
            return Err(self.violation(Promise::P10Liveness, "the store never came back after the faults stopped"));
        }
        self.probe("after the final recovery")
    }

    /// Appends one batch with faults off: it must commit.
    fn probe(&mut self, when: &str) -> Result<(), Stop> {
        let uid = self.model.new_uid();
        let batch = crate::model::ModelBatch {
            uid,
            items: vec![crate::model::ModelItem {
                entity: "probe".into(),
                scope: "main".into(),
                kind: "probe".into(),
                payload: crate::model::payload(uid, 0, b"probe"),
                expected_version: None,
                cause: None,
            }],
            key: None,
            fate: Fate::InFlight,
            maybe_written: false,
        };
        let request = batch.to_batch();
        self.model.add(batch);
        let result = self.commit(&[request])?;
        match result.into_iter().next() {
            Some(Ok(receipts)) => {
                self.model.set_fate(uid, Fate::Acked(receipts.iter().map(|r| r.global_seq).collect()));
                self.note(format!("probe {when}: committed"));
                self.observe_step(false)
            }
            Some(Err(e)) => Err(self.violation(Promise::P10Liveness, format!("probe append {when} failed: {e}"))),
            None => Err(self.violation(Promise::P10Liveness, format!("probe append {when} got no answer"))),
        }
    }

    fn client_acts(&mut self, c: u32) -> Result<(), Stop> {
        let client = &self.clients[c as usize];
        if client.waiting.is_some() {
            return Ok(());
        }
        if self.core.is_none() {
            // The store is down; come back later.
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
            return Ok(());
        }
        if let Some(uid) = client.retry {
            self.clients[c as usize].retry = None;
            self.model.set_fate(uid, Fate::InFlight);
            self.note(format!("client {c} retries batch {uid}"));
            self.send(c, uid);
            return Ok(());
        }
        if client.ops_left == 0 {
            return Ok(());
        }
        let Some(core) = &self.core else { unreachable!("checked above") };
        let reader = core.reader();
        let cursor = client.cursor;
        self.clients[c as usize].ops_left -= 1;
        let op = self.workload.next(&mut self.model, reader.store_id(), cursor);
        let checked = match op {
            Op::Write(uid) => {
                let len = self.model.batch(uid).items.len();
                self.note(format!("client {c} sends batch {uid} of {len}"));
                self.send(c, uid);
                return Ok(());
            }
            Op::Shred(entity) => {
                self.note(format!("client {c} shreds {entity}"));
                self.enqueue(c, Req::Shred(entity), None);
                return Ok(());
            }
            Op::Causes(id) => {
                self.note(format!("client {c} causes of {id}"));
                reads::check_causes(&self.model, id, reader.causes(id, reads::WALK_COUNT_MAX))
            }
            Op::Effects(id) => {
                self.note(format!("client {c} effects of {id}"));
                reads::check_effects(&self.model, id, reader.effects(id, reads::WALK_DEPTH_MAX, reads::WALK_COUNT_MAX))
            }
            Op::Get(id) => {
                self.note(format!("client {c} get {id}"));
                reads::check_get(&self.model, id, reader.get(id))
            }
            Op::Query(region) => {
                self.note(format!("client {c} query {region:?}"));
                match reader.query(&region) {
                    Ok(got) => reads::check_query(&self.model, &region, &got),
                    Err(e) => Err(format!("query failed: {e}")),
                }
            }
            Op::ReadFrom { from, limit } => {
                self.note(format!("client {c} read_from {from} limit {limit}"));
                match reader.read_from(from, limit) {
                    Ok(got) => {
                        let checked = reads::check_read_from(&self.model, from, limit, &got);
                        if let Some(last) = got.last() {
                            self.clients[c as usize].cursor = last.global_seq + 1;
                        }
                        checked
                    }
                    Err(e) => Err(format!("read_from failed: {e}")),
                }
            }
        };
        checked.map_err(|m| self.violation(Promise::P9ModelEquivalence, m))?;
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    fn send(&mut self, c: u32, uid: u64) {
        self.enqueue(c, Req::Batch(uid), Some(uid));
    }

    fn enqueue(&mut self, c: u32, req: Req, uid: Option<u64>) {
        let client = &mut self.clients[c as usize];
        client.waiting = Some(uid.unwrap_or(0));
        client.sent_at = self.time.now();
        self.inbox.push_back((c, req));
        if !self.writer_scheduled && self.core.is_some() {
            self.writer_scheduled = true;
            let at = self.time.now();
            self.schedule(at, Event::Writer);
        }
    }

    /// Runs `Core::commit`, containing a panic (P11).
    fn commit(&mut self, batches: &[shale_store::Batch]) -> Result<Vec<Result<Vec<Receipt>, AppendError>>, Stop> {
        let Some(core) = self.core.as_mut() else {
            return Err(self.violation(Promise::P10Liveness, "commit with the store down"));
        };
        match catch_unwind(AssertUnwindSafe(|| core.commit(batches))) {
            Ok(results) => Ok(results),
            Err(panic) => Err(Stop(Outcome::Panic { message: panic_message(&panic), step: self.step })),
        }
    }

    fn writer_step(&mut self) -> Result<(), Stop> {
        self.writer_scheduled = false;
        if self.core.is_none() || self.inbox.is_empty() {
            return Ok(());
        }
        if let Some((c, Req::Shred(entity))) = self.inbox.front().cloned() {
            self.inbox.pop_front();
            return self.shred_step(c, entity);
        }
        let take = self
            .inbox
            .iter()
            .take(self.scenario.run.group_max as usize)
            .take_while(|(_, r)| matches!(r, Req::Batch(_)))
            .count();
        let taken: Vec<(u32, u64)> = self
            .inbox
            .drain(..take)
            .map(|(c, r)| match r {
                Req::Batch(uid) => (c, uid),
                Req::Shred(_) => unreachable!("taken only up to the first shred"),
            })
            .collect();
        let batches: Vec<_> = taken.iter().map(|&(_, uid)| self.model.batch(uid).to_batch()).collect();
        self.note(format!("writer commits {:?}", taken.iter().map(|t| t.1).collect::<Vec<_>>()));
        let results = self.commit(&batches)?;
        if !self.disk.powered() {
            self.note("power lost during commit".into());
            self.crash(taken);
            return Ok(());
        }
        for ((c, uid), result) in taken.into_iter().zip(results) {
            self.answer(c, uid, result)?;
        }
        self.observe_step(false)?;
        self.after_step()
    }

    /// A possible crash between steps, and the next writer step.
    fn after_step(&mut self) -> Result<(), Stop> {
        if self.fault_rng.chance(self.scenario.faults.crash_between_steps) && self.faults_stopped_at.is_none() {
            self.note("crash between steps".into());
            self.crash(Vec::new());
            return Ok(());
        }
        if !self.inbox.is_empty() {
            self.writer_scheduled = true;
            let at = self.time.now();
            self.schedule(at, Event::Writer);
        }
        Ok(())
    }

    /// Whether `item` named `cause` and that cause is not (or no longer)
    /// visible as the event the client meant: bogus from the start, or lost
    /// with a crash on a lossy disk since the client saw it.
    fn cause_not_visible(&self, item: Option<&crate::model::ModelItem>, cause: shale_store::EventId) -> bool {
        let Some(crate::model::ModelCause::Event { id, tag }) = item.and_then(|i| i.cause.as_ref()) else {
            return false;
        };
        let now = self.model.view.get(cause.global_seq().wrapping_sub(1) as usize);
        *id == cause && (tag.is_none() || now.is_none_or(|e| e.id != cause || crate::model::tag_of(e) != *tag))
    }

    /// Runs one shred and delivers its result.
    fn shred_step(&mut self, c: u32, entity: String) -> Result<(), Stop> {
        self.note(format!("writer shreds {entity}"));
        let Some(core) = self.core.as_mut() else { unreachable!("writer steps run with the store up") };
        let result = match catch_unwind(AssertUnwindSafe(|| core.shred(&entity))) {
            Ok(result) => result,
            Err(panic) => return Err(Stop(Outcome::Panic { message: panic_message(&panic), step: self.step })),
        };
        if !self.disk.powered() {
            self.note("power lost during shred".into());
            self.model.shreds.push((entity, None));
            self.clients[c as usize].waiting = None;
            self.crash(Vec::new());
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
            return Ok(());
        }
        let searched = match result {
            Ok(receipt) => {
                self.note(format!("client {c} shred of {entity} acked at generation {}", receipt.generation));
                if receipt.generation > 0 {
                    self.model.shredded(&entity, receipt.generation);
                }
                true
            }
            Err(ShredError::OutcomeUnknown(e)) => {
                self.note(format!("client {c} shred of {entity} outcome unknown: {e}"));
                self.model.shreds.push((entity, None));
                false
            }
            Err(other) => return Err(self.violation(Promise::P5ShredIsForever, format!("shred of {entity}: {other}"))),
        };
        self.clients[c as usize].waiting = None;
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        self.observe_step(searched)?;
        self.after_step()
    }

    /// Delivers one commit result to its client and records it in the model.
    fn answer(&mut self, c: u32, uid: u64, result: Result<Vec<Receipt>, AppendError>) -> Result<(), Stop> {
        let batch = self.model.batch(uid).clone();
        let has_key = batch.key.is_some();
        let was_acked = matches!(batch.fate, Fate::Acked(_));
        let retry = match &result {
            Ok(receipts) => {
                let globals: Vec<u64> = receipts.iter().map(|r| r.global_seq).collect();
                let contiguous = globals.windows(2).all(|w| w[1] == w[0] + 1);
                if globals.len() != batch.items.len() || !contiguous {
                    return Err(
                        self.violation(Promise::P9ModelEquivalence, format!("batch {uid}: receipts {globals:?}"))
                    );
                }
                if let Fate::Acked(earlier) = &batch.fate {
                    if *earlier != globals {
                        return Err(self.violation(
                            Promise::P9ModelEquivalence,
                            format!("retry of batch {uid} got receipts {globals:?}, first ack was {earlier:?}"),
                        ));
                    }
                }
                self.note(format!("client {c} batch {uid} acked at {globals:?}"));
                self.latencies.push(self.time.now() - self.clients[c as usize].sent_at);
                self.model.set_fate(uid, Fate::Acked(globals));
                false
            }
            Err(AppendError::VersionConflict { item, expected, actual, .. }) => {
                let sent = batch.items.get(*item).and_then(|i| i.expected_version);
                if sent != Some(*expected) || expected == actual {
                    return Err(
                        self.violation(Promise::P9ModelEquivalence, format!("batch {uid}: bogus conflict {result:?}"))
                    );
                }
                self.note(format!("client {c} batch {uid} refused: version conflict"));
                self.model.set_fate(uid, Fate::Refused);
                false
            }
            Err(AppendError::Denied { gate, item, reason }) => {
                self.note(format!("client {c} batch {uid} denied by {gate} at item {item}: {reason}"));
                self.model.set_fate(uid, Fate::Refused);
                false
            }
            Err(AppendError::GateFailed { gate, item, .. })
                if gate == EXPLODING_GATE && batch.items.get(*item).is_some_and(|i| i.kind == "explode") =>
            {
                self.note(format!("client {c} batch {uid} failed in gate {gate} (contained)"));
                self.model.set_fate(uid, Fate::Refused);
                false
            }
            Err(AppendError::Invalid { item: Some(item), error: InvalidInput::UnknownCause { cause } })
                if self.cause_not_visible(batch.items.get(*item), *cause) =>
            {
                self.note(format!("client {c} batch {uid} refused: cause {cause} is not visible"));
                self.model.set_fate(uid, Fate::Refused);
                false
            }
            Err(AppendError::Unavailable(e)) => {
                self.note(format!("client {c} batch {uid} unavailable: {e}"));
                if !was_acked {
                    self.model.set_fate(uid, Fate::Refused);
                }
                has_key
            }
            Err(AppendError::OutcomeUnknown(e)) => {
                self.note(format!("client {c} batch {uid} outcome unknown: {e}"));
                if !was_acked {
                    self.model.set_fate(uid, Fate::Maybe);
                }
                has_key
            }
            Err(other) => {
                return Err(
                    self.violation(Promise::P9ModelEquivalence, format!("batch {uid}: unexpected error {other}"))
                );
            }
        };
        let client = &mut self.clients[c as usize];
        client.waiting = None;
        if retry && self.workload.retries() {
            self.clients[c as usize].retry = Some(uid);
        }
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    /// What would survive a crash now, as the checkers need it; `files`
    /// also takes every durable file (to search for shredded keys).
    fn durable(&self, store_id: u64, files: bool) -> Durable {
        let keyset = self.scenario.run.encryption.then(|| {
            let path = std::path::Path::new(STORE_DIR).join(shale_store::keyset::KEYS_NAME);
            match self.disk.durable_file(&path) {
                Some(bytes) => Keyset::decode(&bytes, store_id, self.master_key.as_ref()).map_err(|e| e.to_string()),
                None => Err("there is no durable keyset".into()),
            }
        });
        Durable { keyset, files: files.then(|| self.disk.durable_image()), lossy: self.disk.stats().any_lossy() }
    }

    /// Remembers the keys of the durable keyset, so that P5 can look for
    /// them after a shred.
    fn learn_keys(&mut self, durable: &Durable) {
        if let Some(Ok(keyset)) = &durable.keyset {
            for (entity, entry) in keyset.iter() {
                if let Some(key) = &entry.key {
                    self.model.known_keys.insert((entity.to_owned(), entry.generation), *key.expose_secret());
                }
            }
        }
    }

    fn read_violation(&self, e: &ReadError) -> Stop {
        match e {
            ReadError::Integrity { .. } => self.violation(Promise::P2KeyBeforeCiphertext, e.to_string()),
            _ => self.violation(Promise::P9ModelEquivalence, e.to_string()),
        }
    }

    /// Reads what became visible since the last observation and checks it.
    fn observe_step(&mut self, search_files: bool) -> Result<(), Stop> {
        let Some(core) = &self.core else { return Ok(()) };
        let reader = core.reader();
        let mut events = Vec::new();
        loop {
            let from = self.model.view.len() as u64 + events.len() as u64 + 1;
            let chunk = reader.read_from(from, OBSERVE_CHUNK).map_err(|e| self.read_violation(&e))?;
            if chunk.is_empty() {
                break;
            }
            events.extend(chunk);
        }
        let durable = self.durable(reader.store_id(), search_files);
        let snapshot = Snapshot { phase: Phase::Step, events: &events, reader: &reader, durable: &durable };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        self.learn_keys(&durable);
        self.model.absorb(events);
        Ok(())
    }

    /// The machine loses power: the core dies mid-whatever, the disk applies
    /// its crash semantics, and a restart is scheduled.
    fn crash(&mut self, in_flight: Vec<(u32, u64)>) {
        self.crashes += 1;
        self.disk.power_off();
        self.core = None;
        self.writer_scheduled = false;
        self.disk.crash();
        self.note(format!("crash #{} (disk op {})", self.crashes, self.disk.ops()));
        let mut dropped = Vec::new();
        let queued: Vec<(u32, u64)> = self
            .inbox
            .drain(..)
            .filter_map(|(c, r)| match r {
                Req::Batch(uid) => Some((c, uid)),
                Req::Shred(_) => {
                    // Never handed to the store: the client moves on.
                    dropped.push(c);
                    None
                }
            })
            .collect();
        for (c, uid) in in_flight {
            if !matches!(self.model.batch(uid).fate, Fate::Acked(_)) {
                self.model.set_fate(uid, Fate::Maybe);
            }
            self.unanswered(c, uid);
        }
        for c in dropped {
            self.clients[c as usize].waiting = None;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
        }
        for (c, uid) in queued {
            // Never handed to the store: certainly not written.
            if !matches!(self.model.batch(uid).fate, Fate::Acked(_)) {
                self.model.set_fate(uid, Fate::Refused);
            }
            self.unanswered(c, uid);
        }
        self.model.reset_view();
        for client in &mut self.clients {
            client.cursor = 1;
        }
        if !self.restart_scheduled {
            self.restart_scheduled = true;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Restart);
        }
    }

    /// A client whose request died with the process.
    fn unanswered(&mut self, c: u32, uid: u64) {
        let has_key = self.model.batch(uid).key.is_some();
        self.clients[c as usize].waiting = None;
        if has_key && self.workload.retries() {
            self.clients[c as usize].retry = Some(uid);
        }
        let at = self.time.now()
            + self.scenario.run.restart_delay_ns
            + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
    }

    fn env(&self) -> SimEnv {
        SimEnv {
            disk: self.disk.clone(),
            clock: SimClock::new(self.time.clone()),
            entropy: SimEntropy::new(self.seed, &format!("entropy-{}", self.recoveries)),
        }
    }

    /// Opens the store through the (still faulty) disk and checks what
    /// recovery brought back.
    fn restart(&mut self) -> Result<(), Stop> {
        let options = self.options();
        let env = self.env();
        self.recoveries += 1;
        let opened = catch_unwind(AssertUnwindSafe(|| Core::open(env, Path::new(STORE_DIR), &options)));
        let opened = match opened {
            Ok(opened) => opened,
            Err(panic) => return Err(Stop(Outcome::Panic { message: panic_message(&panic), step: self.step })),
        };
        if !self.disk.powered() {
            drop(opened);
            self.note("power lost during recovery".into());
            self.crash(Vec::new());
            return Ok(());
        }
        match opened {
            Ok((core, report)) => {
                self.note(format!(
                    "recovered {} events, truncated {:?}, set aside {}",
                    report.events,
                    report.truncated.iter().map(|t| t.2).collect::<Vec<_>>(),
                    report.set_aside.len()
                ));
                self.salvage_next = false;
                self.failed_opens = 0;
                let reader = core.reader();
                self.core = Some(core);
                self.check_recovery(&reader, &report)?;
                for c in 0..self.clients.len() as u32 {
                    if self.clients[c as usize].retry.is_some() {
                        let at = self.time.now();
                        self.schedule(at, Event::Client(c));
                    }
                }
                if !self.inbox.is_empty() && !self.writer_scheduled {
                    self.writer_scheduled = true;
                    let at = self.time.now();
                    self.schedule(at, Event::Writer);
                }
                Ok(())
            }
            Err(e) => self.open_failed(e),
        }
    }

    fn check_recovery(
        &mut self,
        reader: &shale_store::Reader,
        report: &shale_store::RecoveryReport,
    ) -> Result<(), Stop> {
        self.model.reset_view();
        let mut events = Vec::new();
        loop {
            let chunk =
                reader.read_from(events.len() as u64 + 1, OBSERVE_CHUNK).map_err(|e| self.read_violation(&e))?;
            if chunk.is_empty() {
                break;
            }
            events.extend(chunk);
        }
        let lossy = self.disk.stats().any_lossy();
        let search = self.scenario.run.encryption && self.model.shreds.iter().any(|(_, g)| g.is_some());
        let durable = self.durable(reader.store_id(), search);
        let snapshot =
            Snapshot { phase: Phase::Recovery { report, lossy }, events: &events, reader, durable: &durable };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        self.learn_keys(&durable);
        self.model.absorb(events);
        self.model.settle_after_recovery();
        Ok(())
    }

    fn open_failed(&mut self, e: OpenError) -> Result<(), Stop> {
        let lossy = self.disk.stats().any_lossy();
        self.note(format!("open failed: {e}"));
        self.failed_opens += 1;
        let stuck = self.failed_opens >= FAILED_OPENS_MAX;
        if stuck && self.faults_stopped_at.is_none() {
            self.disk.set_faults(false);
            self.faults_stopped_at = Some(self.time.now());
            self.failed_opens = 0;
            self.note("faults stop: the store failed to open too often".into());
        }
        match e {
            OpenError::Io(_) if stuck && lossy && self.faults_stopped_at.is_some() => {
                // Sticky damage (a latent sector error) outlives the faults:
                // the store reports it as a typed I/O error, every time.
                self.note("damage the store cannot read past persists; it is reported, and the run ends".into());
                return Err(Stop(Outcome::Pass));
            }
            OpenError::Io(_) => {}
            OpenError::Corrupt(_) if lossy => {
                // Detected, as it must be; the operator opens in salvage mode.
                self.salvage_next = true;
            }
            OpenError::Format { .. } | OpenError::Keyset(_) if lossy => {
                self.note("detected damage the store cannot open past; run ends".into());
                return Err(Stop(Outcome::Pass));
            }
            other => {
                return Err(self.violation(Promise::P3AckedIsDurable, format!("the store refused to open: {other}")));
            }
        }
        if !self.restart_scheduled {
            self.restart_scheduled = true;
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Restart);
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

/// The directory of the store, for tools that inspect the disk image.
pub fn store_dir() -> PathBuf {
    PathBuf::from(STORE_DIR)
}

/// Counts by outcome, for summaries.
pub fn tally<'a>(reports: impl Iterator<Item = &'a RunReport>) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for r in reports {
        let key = match &r.outcome {
            Outcome::Pass => "pass",
            Outcome::Violation { violation, .. } if violation.promise == Promise::P10Liveness => "liveness",
            Outcome::Violation { .. } => "violation",
            Outcome::Panic { .. } => "panic",
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}
