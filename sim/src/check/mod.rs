//! Checkers: each watches the store from outside for one promise of
//! DESIGN.md §2, against the reference model.
//!
//! After every writer step the harness reads the events that became
//! visible and hands them, with the model, to every checker (`Phase::Step`);
//! after every crash + recovery it hands them the recovered events that are
//! not exactly as they were seen before the crash (`Phase::Recovery`): the
//! events that came back unchanged (by id, hash and key state, with every
//! hash chain verified again) stay in the model's view, and checkers that
//! judge the whole history (P3, P4, P12) read them there. Only when every
//! checker passes does the model absorb the events. Client reads are
//! checked against the model's view in `reads.rs`. P10 (liveness) and P11
//! (no panic) are watched by the runner itself.

mod atomicity;
mod causality;
mod durability;
pub use durability::lost;
pub mod durable_keys;
mod equivalence;
mod integrity;
mod keys;
pub mod reads;
pub mod refusals;
mod reported;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use shale_store::{Event, Reader, RecoveryReport};

use crate::excuse::Excuses;
use crate::journal_map::JournalMap;
use durable_keys::DurableKeys;

use crate::model::Model;

/// The store's promises (DESIGN.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Promise {
    P1BatchAtomicity,
    P2KeyBeforeCiphertext,
    P3AckedIsDurable,
    P4Prefix,
    P5ShredIsForever,
    P6CausalClosure,
    P7GatesHold,
    P8Integrity,
    P9ModelEquivalence,
    P10Liveness,
    P11NeverPanic,
    P12LossIsReported,
}

impl Promise {
    pub fn code(self) -> &'static str {
        match self {
            Promise::P1BatchAtomicity => "P1 batch atomicity",
            Promise::P2KeyBeforeCiphertext => "P2 key before ciphertext",
            Promise::P3AckedIsDurable => "P3 acked is durable",
            Promise::P4Prefix => "P4 prefix",
            Promise::P5ShredIsForever => "P5 shred is forever",
            Promise::P6CausalClosure => "P6 causal closure",
            Promise::P7GatesHold => "P7 gates hold",
            Promise::P8Integrity => "P8 integrity",
            Promise::P9ModelEquivalence => "P9 model equivalence",
            Promise::P10Liveness => "P10 liveness",
            Promise::P11NeverPanic => "P11 never panic",
            Promise::P12LossIsReported => "P12 loss is reported",
        }
    }
}

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub promise: Promise,
    pub message: String,
}

impl Violation {
    pub fn new(promise: Promise, message: impl Into<String>) -> Self {
        Self { promise, message: message.into() }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.promise.code(), self.message)
    }
}

pub enum Phase<'a> {
    /// After a writer step, with no crash since the last observation.
    Step,
    /// After a crash and recovery.
    Recovery(&'a RecoveryView),
}

/// A file salvage set aside.
pub struct SalvageFile {
    /// Its inode (lossy damage may hit a set-aside copy too).
    pub inode: u64,
    /// Its durable bytes.
    pub durable: crate::disk::Bytes,
    /// Its length as written (more than durable if its fsync lied).
    pub len: u64,
}

/// What the harness knows of a recovery: what the store reported, what the
/// disk says happened to which bytes, and what salvage left where.
pub struct RecoveryView {
    pub report: RecoveryReport,
    pub excuses: Excuses,
    /// Every file in the salvage directory.
    pub salvaged: BTreeMap<PathBuf, SalvageFile>,
    /// An earlier attempt at this recovery was cut short by a crash or
    /// failed half way: what it set aside is in the salvage directory, but
    /// in no report.
    pub interrupted: bool,
    /// The cuts of earlier recoveries since the disk the checks compare
    /// with, whose own checks a failed read cut short (their reports are
    /// in `report` too): they came before anything this one set aside.
    pub earlier_cuts: Vec<shale_store::Truncation>,
}

impl RecoveryView {
    /// An interrupted attempt at this recovery set files aside (salvage
    /// ran, and found damage, but its report was never seen).
    pub fn salvaged_since(&self) -> bool {
        self.interrupted && self.salvaged.keys().any(|to| !self.excuses.salvaged_before(to))
    }
}

/// What would survive a crash right now, as far as the checkers need it.
#[derive(Default)]
pub struct Durable<'a> {
    /// The durable key material, up to date, when a check needs it (a
    /// plaintext store never does).
    pub keys: Option<&'a DurableKeys>,
    /// Whether P5 looks at every durable keyset now (after a shred or a
    /// recovery).
    pub search: bool,
    /// Bytes acknowledged durable that the medium does not (or may not)
    /// hold: lossy damage, and writes a lying fsync acknowledged that are
    /// still pending. (inode, range)
    pub shaky: Vec<(u64, std::ops::Range<u64>)>,
}

/// What the harness saw of the store this time.
pub struct Snapshot<'a> {
    pub phase: Phase<'a>,
    /// The events not yet in the model's view, gap-free after it (after a
    /// recovery: all but those that came back unchanged, which the view
    /// keeps).
    pub events: &'a [Event],
    pub reader: &'a Reader,
    pub durable: &'a Durable<'a>,
    /// Where every copy of every batch was written.
    pub map: &'a JournalMap,
}

/// One promise, checked from outside.
pub trait Checker {
    fn promise(&self) -> Promise;
    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String>;
}

/// Every checker, in the order their reports are most telling: data first,
/// then shape, then completeness (a hole before a plain loss: it says more).
pub fn checkers() -> Vec<Box<dyn Checker>> {
    vec![
        Box::new(integrity::Integrity),
        Box::new(atomicity::Atomicity),
        Box::new(equivalence::Equivalence),
        Box::new(durability::Prefix),
        Box::new(durability::Durability),
        Box::new(reported::LossIsReported),
        Box::new(keys::KeyBeforeCiphertext),
        Box::new(keys::ShredIsForever),
        Box::new(causality::CausalClosure),
        Box::new(causality::GatesHold),
    ]
}

pub fn check_all(checkers: &[Box<dyn Checker>], model: &Model, snapshot: &Snapshot<'_>) -> Result<(), Violation> {
    for checker in checkers {
        checker.check(model, snapshot).map_err(|message| Violation::new(checker.promise(), message))?;
    }
    Ok(())
}
