//! Scenario files: a replayable experiment, in TOML (documented in
//! `scenarios/README.md`). The same type is built from fuzzer bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::SimDiskOptions;
use crate::rng::SimRng;

/// What a run of the scenario must do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Every seed passes every check.
    #[default]
    Pass,
    /// A planted-bug canary: the harness must catch it.
    MustFail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub expect: Expect,
    /// The planted bug to switch on (`ack_before_fsync`, ...).
    pub canary: Option<String>,
    pub run: RunSpec,
    pub workload: WorkloadSpec,
    pub faults: FaultSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSpec {
    pub clients: u32,
    /// Client operations in the whole run.
    pub operations: u64,
    /// Most requests the writer takes into one group commit.
    pub group_max: u32,
    /// Client think time between operations, in simulated nanoseconds.
    pub think_ns_max: u64,
    /// Simulated time from a crash to the restart.
    pub restart_delay_ns: u64,
    /// The store's segment size.
    pub segment_size: u64,
    /// After faults stop, the store must reopen and commit within this much
    /// simulated time (P10).
    pub liveness_ns: u64,
    /// Per-entity payload encryption.
    pub encryption: bool,
    /// Seal the keyset under a master key (drawn from the seed).
    pub master_key: bool,
    /// Register the simulator's gates: a non-negative balance per entity
    /// (P7 is checked) and one that panics on the kind "explode".
    pub gates: bool,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            clients: 4,
            operations: 400,
            group_max: 8,
            think_ns_max: 2_000_000,
            restart_delay_ns: 10_000_000,
            segment_size: 16 << 10,
            liveness_ns: 10_000_000_000,
            encryption: false,
            master_key: false,
            gates: false,
        }
    }
}

/// Relative weights of client operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub append: u32,
    pub batch: u32,
    pub get: u32,
    pub query: u32,
    pub read_from: u32,
    /// Crypto-shred an entity (needs `run.encryption`).
    pub shred: u32,
    /// Walk the causal graph (causes or effects of a visible event).
    pub walk: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Self { append: 6, batch: 3, get: 2, query: 1, read_from: 2, shred: 0, walk: 1 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadSpec {
    pub weights: Weights,
    pub batch_max: u32,
    pub entities: u32,
    pub payload_max: u32,
    /// Share of appends that carry an expected version.
    pub expected_version_rate: f64,
    /// Share of those whose expected version is deliberately stale.
    pub stale_version_rate: f64,
    pub idempotency_rate: f64,
    /// Share of failed or unknown appends the client retries.
    pub retry_rate: f64,
    /// Share of items that name a cause (an earlier item of the batch, or
    /// a recent visible event, so chains grow deep).
    pub cause_rate: f64,
    /// Share of named causes that are bogus (not a visible event): the
    /// store must refuse them.
    pub bogus_cause_rate: f64,
    /// With `run.gates`: share of items of kind "explode".
    pub explode_rate: f64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            batch_max: 6,
            entities: 12,
            payload_max: 96,
            expected_version_rate: 0.3,
            stale_version_rate: 0.2,
            idempotency_rate: 0.6,
            retry_rate: 0.8,
            cause_rate: 0.3,
            bogus_cause_rate: 0.05,
            explode_rate: 0.0,
        }
    }
}

/// A fault at a planned point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduledFault {
    /// Cut the power at this I/O operation (counted from the start).
    Crash { at_op: u64 },
    /// Fail the `nth` sync of files whose name contains `file`.
    FailFsync { file: String, nth: u64 },
    /// Report success for the `nth` sync of such files, persisting nothing.
    LieFsync { file: String, nth: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Draw the fault rates and the operation mix from the seed.
    pub swarm: bool,
    /// Probability of a crash between two writer steps.
    pub crash_between_steps: f64,
    pub disk: SimDiskOptions,
    pub schedule: Vec<ScheduledFault>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self { swarm: false, crash_between_steps: 0.0, disk: SimDiskOptions::default(), schedule: Vec::new() }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "unnamed".into(),
            description: String::new(),
            expect: Expect::Pass,
            canary: None,
            run: RunSpec::default(),
            workload: WorkloadSpec::default(),
            faults: FaultSpec::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)
            .map_err(|source| ScenarioError::Parse { path: origin.into(), source: Box::new(source) })?;
        scenario.validate().map_err(|reason| ScenarioError::Invalid { path: origin.into(), reason })?;
        Ok(scenario)
    }

    /// Checks ranges a run depends on.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.run;
        if r.clients == 0 || r.clients > 64 {
            return Err(format!("run.clients = {} is outside 1..=64", r.clients));
        }
        if r.group_max == 0 || r.group_max as usize > shale_store::limits::GROUP_REQUESTS_MAX {
            return Err(format!("run.group_max = {} is outside 1..=1024", r.group_max));
        }
        if r.segment_size < shale_store::limits::SEGMENT_SIZE_MIN {
            return Err(format!(
                "run.segment_size = {} is below {}",
                r.segment_size,
                shale_store::limits::SEGMENT_SIZE_MIN
            ));
        }
        if r.operations > 1_000_000 {
            return Err("run.operations is over 1,000,000".into());
        }
        let w = &self.workload;
        if w.batch_max == 0 || w.entities == 0 || w.payload_max < 12 {
            return Err("workload.batch_max and workload.entities must be positive, payload_max at least 12".into());
        }
        if w.weights.append + w.weights.batch == 0 {
            return Err("the workload must write (append or batch weight above zero)".into());
        }
        if w.weights.shred > 0 && !r.encryption {
            return Err("workload.weights.shred needs run.encryption = true".into());
        }
        if r.master_key && !r.encryption {
            return Err("run.master_key needs run.encryption = true".into());
        }
        let d = &self.faults.disk;
        if d.sector_size == 0 || !d.sector_size.is_power_of_two() {
            return Err("faults.disk.sector_size must be a power of two".into());
        }
        let rates = [
            d.crash_persist + d.crash_torn,
            d.torn_keep + d.torn_garbage,
            d.fsync_fail + d.fsync_lie,
            d.read_latent_error,
            d.read_bit_rot,
            d.misdirected_write,
            w.cause_rate,
            w.bogus_cause_rate,
            w.explode_rate,
            d.read_short,
            d.read_error,
            d.write_error,
            d.rename_error,
            d.crash_per_op,
            self.faults.crash_between_steps,
        ];
        if rates.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return Err("fault probabilities (and the sums crash_persist + crash_torn, torn_keep + torn_garbage, fsync_fail + fsync_lie) must lie in 0..=1".into());
        }
        if let Some(canary) = &self.canary {
            if shale_store::canary::Canary::from_name(canary).is_none() {
                return Err(format!("unknown canary {canary:?}"));
            }
        }
        Ok(())
    }

    /// The scenario as this seed runs it: with `swarm`, fault rates and the
    /// operation mix are drawn from the seed (some operations switched off).
    pub fn derive(&self, seed: u64) -> Scenario {
        let mut s = self.clone();
        if !self.faults.swarm {
            return s;
        }
        let mut rng = SimRng::stream(seed, "swarm");
        let mut rate = |max: f64| if rng.chance(0.5) { rng.unit() * max } else { 0.0 };
        let d = &mut s.faults.disk;
        d.fsync_fail = rate(0.05);
        d.fsync_lie = rate(0.02);
        d.dir_sync_fail = rate(0.05);
        d.read_latent_error = rate(0.002);
        d.read_bit_rot = rate(0.002);
        d.misdirected_write = rate(0.01);
        d.read_short = rate(0.2);
        d.read_error = rate(0.02);
        d.write_error = rate(0.02);
        d.rename_error = rate(0.02);
        d.crash_per_op = rate(0.01);
        d.crash_persist = 0.2 + rate(0.7);
        d.crash_torn = (1.0 - d.crash_persist) * rate(1.0);
        s.faults.crash_between_steps = rate(0.05);
        let mut rng = SimRng::stream(seed, "swarm-ops");
        let w = &mut s.workload.weights;
        for weight in [&mut w.batch, &mut w.get, &mut w.query, &mut w.read_from, &mut w.shred, &mut w.walk] {
            if rng.chance(0.3) {
                *weight = 0;
            }
        }
        if w.append + w.batch == 0 {
            w.append = 1;
        }
        s.workload.expected_version_rate = rng.unit() * 0.6;
        s.workload.idempotency_rate = rng.unit();
        s
    }
}

impl Scenario {
    /// A scenario drawn from fuzzer bytes: every knob within the ranges
    /// `validate` accepts, runs kept short so a fuzzer gets many per second.
    /// Only planted-bug-free, `pass` scenarios: any violation is a finding.
    pub fn from_fuzz(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Scenario> {
        let mut s = Scenario { name: "fuzz".into(), ..Scenario::default() };
        let unit = |u: &mut arbitrary::Unstructured<'_>, max: f64| -> arbitrary::Result<f64> {
            Ok(f64::from(u.int_in_range(0..=1000u32)?) / 1000.0 * max)
        };
        s.run.clients = u.int_in_range(1..=6)?;
        s.run.operations = u.int_in_range(1..=120)?;
        s.run.group_max = u.int_in_range(1..=16)?;
        s.run.segment_size = u.int_in_range(4096..=32768)?;
        s.run.encryption = u.arbitrary()?;
        s.run.master_key = s.run.encryption && u.arbitrary()?;
        s.run.gates = u.arbitrary()?;
        let w = &mut s.workload;
        w.batch_max = u.int_in_range(1..=8)?;
        w.entities = u.int_in_range(1..=8)?;
        w.payload_max = u.int_in_range(20..=200)?;
        w.expected_version_rate = unit(u, 1.0)?;
        w.idempotency_rate = unit(u, 1.0)?;
        w.retry_rate = unit(u, 1.0)?;
        w.cause_rate = unit(u, 1.0)?;
        // libFuzzer aborts on any panic, even one the store contains, so the
        // panicking gate stays out of fuzzed runs (the sweeps cover it).
        w.explode_rate = 0.0;
        w.weights.append = u.int_in_range(1..=6)?;
        w.weights.batch = u.int_in_range(0..=6)?;
        w.weights.read_from = u.int_in_range(0..=3)?;
        w.weights.walk = u.int_in_range(0..=3)?;
        w.weights.shred = if s.run.encryption { u.int_in_range(0..=3)? } else { 0 };
        let d = &mut s.faults.disk;
        d.sector_size = 1 << u.int_in_range(6..=12)?;
        d.crash_persist = unit(u, 1.0)?;
        d.crash_torn = unit(u, 1.0 - d.crash_persist)?;
        d.fsync_fail = unit(u, 0.1)?;
        d.fsync_lie = unit(u, 0.05)?;
        d.dir_sync_fail = unit(u, 0.1)?;
        d.rename_error = unit(u, 0.05)?;
        d.read_bit_rot = unit(u, 0.01)?;
        d.read_latent_error = unit(u, 0.01)?;
        d.misdirected_write = unit(u, 0.02)?;
        d.read_short = unit(u, 0.3)?;
        d.read_error = unit(u, 0.05)?;
        d.write_error = unit(u, 0.05)?;
        d.crash_per_op = unit(u, 0.02)?;
        s.faults.crash_between_steps = unit(u, 0.1)?;
        debug_assert_eq!(s.validate(), Ok(()));
        Ok(s)
    }
}
