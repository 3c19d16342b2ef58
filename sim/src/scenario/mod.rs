//! Scenario files: a replayable experiment, in TOML (documented in
//! `scenarios/README.md`). The same type is built from fuzzer bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::SimDiskOptions;
pub use script::Script;

mod fuzz;
pub mod script;
mod swarm;
mod validate;

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
    /// The share of a sweep's seeds this scenario runs (at least one), for
    /// scenarios whose seeds cost far more than most (`long`).
    pub sweep_share: f64,
    pub run: RunSpec,
    pub workload: WorkloadSpec,
    pub faults: FaultSpec,
    /// Every choice of the run, listed: replayed exactly, without a seed.
    pub script: Option<Script>,
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
    /// The run ends with its own outcome (not a pass) after this many
    /// scheduler steps...
    pub steps_max: u64,
    /// ...or this much simulated time, so that no valid file can hang.
    pub sim_time_max_ns: u64,
    /// Seal the keyset under a master key (drawn from the seed).
    pub master_key: bool,
    /// Register the simulator's gates: a non-negative balance per entity
    /// (P7 is checked) and one that panics on the kind "explode".
    pub gates: bool,
    /// The store publishes its index checkpoint every this many segments
    /// (`Options::checkpoint_every`; 0, the default here so that older
    /// scripts replay as they were recorded: only on a clean close).
    pub checkpoint_every: u64,
    /// Bytes of a segment recovery reads and scans at a time
    /// (`Options::scan_window`; the store's default, 4 MiB, reads every
    /// segment of a default scenario whole).
    pub scan_window: usize,
    /// Share of writer steps after which the store is closed cleanly (its
    /// checkpoint published) and opened again, with no power lost.
    pub close_rate: f64,
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
            steps_max: 2_000_000,
            sim_time_max_ns: 3_600_000_000_000,
            master_key: false,
            gates: false,
            checkpoint_every: 0,
            scan_window: shale_store::limits::SCAN_WINDOW_DEFAULT,
            close_rate: 0.0,
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
    /// Share of items with an explicit correlation (else inherited from the
    /// cause, or the event's own id).
    pub correlation_rate: f64,
    /// Share of batches that reuse a committed batch's idempotency key (the
    /// store must answer a conflict).
    pub key_reuse_rate: f64,
    /// Share of batches made invalid on purpose (the store must refuse
    /// them with the exact typed error).
    pub invalid_rate: f64,
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
            correlation_rate: 0.2,
            key_reuse_rate: 0.02,
            invalid_rate: 0.02,
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
            sweep_share: 1.0,
            run: RunSpec::default(),
            workload: WorkloadSpec::default(),
            faults: FaultSpec::default(),
            script: None,
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
}
