//! The fault model's knobs and counters: every rate of the simulated disk in
//! one options struct, the ten fault classes, and what was injected.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Every fault rate of the simulated disk. Probabilities are per operation
/// of the kind named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimDiskOptions {
    pub sector_size: u64,
    /// Bytes the disk holds before writes fail with `StorageFull`.
    pub capacity: u64,
    /// At a crash, each pending operation is persisted whole with this
    /// probability, torn with `crash_torn`, else dropped.
    pub crash_persist: f64,
    pub crash_torn: f64,
    /// Within a torn write, each sector is kept with this probability,
    /// turned to garbage with `torn_garbage`, else dropped.
    pub torn_keep: f64,
    pub torn_garbage: f64,
    pub fsync_fail: f64,
    pub fsync_lie: f64,
    pub dir_sync_fail: f64,
    pub read_latent_error: f64,
    pub read_bit_rot: f64,
    pub misdirected_write: f64,
    pub read_short: f64,
    /// A read fails with a transient error (one that passes when the same
    /// read is tried again: never more than twice in a row).
    pub read_error: f64,
    pub write_error: f64,
    /// A rename fails with an I/O error and changes nothing.
    pub rename_error: f64,
    /// Per write a sync persists: the medium keeps the older bytes although
    /// the sync succeeds (a lost write).
    pub lost_write: f64,
    /// Per write reaching the medium: it lands with the bytes of an earlier
    /// write of the same file instead (a stale frame).
    pub stale_frame: f64,
    /// Crash at any I/O operation with this probability.
    pub crash_per_op: f64,
    pub read_latency_ns: u64,
    pub write_latency_ns: u64,
    pub sync_latency_ns: u64,
}

impl Default for SimDiskOptions {
    fn default() -> Self {
        Self {
            sector_size: 512,
            capacity: 1 << 30,
            crash_persist: 0.5,
            crash_torn: 0.25,
            torn_keep: 0.5,
            torn_garbage: 0.2,
            fsync_fail: 0.0,
            fsync_lie: 0.0,
            dir_sync_fail: 0.0,
            read_latent_error: 0.0,
            read_bit_rot: 0.0,
            misdirected_write: 0.0,
            read_short: 0.0,
            read_error: 0.0,
            write_error: 0.0,
            rename_error: 0.0,
            lost_write: 0.0,
            stale_frame: 0.0,
            crash_per_op: 0.0,
            read_latency_ns: 20_000,
            write_latency_ns: 30_000,
            sync_latency_ns: 500_000,
        }
    }
}

/// The fault classes: the ten of DESIGN.md §4, with lost writes and stale
/// frames apart from misdirected writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    UnsyncedLost,
    TornWrite,
    OutOfOrder,
    DirEntryLost,
    FsyncFail,
    FsyncLie,
    SectorError,
    MisdirectedWrite,
    DiskFull,
    ShortOrTransient,
    LostWrite,
    StaleFrame,
}

impl FaultClass {
    pub const ALL: [FaultClass; 12] = [
        FaultClass::UnsyncedLost,
        FaultClass::TornWrite,
        FaultClass::OutOfOrder,
        FaultClass::DirEntryLost,
        FaultClass::FsyncFail,
        FaultClass::FsyncLie,
        FaultClass::SectorError,
        FaultClass::MisdirectedWrite,
        FaultClass::DiskFull,
        FaultClass::ShortOrTransient,
        FaultClass::LostWrite,
        FaultClass::StaleFrame,
    ];

    /// Faults that may legitimately lose acknowledged data: the store must
    /// detect the loss, not prevent it.
    pub fn may_lose_acked(self) -> bool {
        matches!(
            self,
            FaultClass::FsyncLie
                | FaultClass::SectorError
                | FaultClass::MisdirectedWrite
                | FaultClass::LostWrite
                | FaultClass::StaleFrame
        )
    }
}

/// How many faults of each class were injected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    pub injected: BTreeMap<FaultClass, u64>,
}

impl FaultStats {
    pub(crate) fn add(&mut self, class: FaultClass) {
        *self.injected.entry(class).or_default() += 1;
    }
    pub fn count(&self, class: FaultClass) -> u64 {
        self.injected.get(&class).copied().unwrap_or(0)
    }
    /// True if any fault that may lose acknowledged data was injected.
    pub fn any_lossy(&self) -> bool {
        self.injected.iter().any(|(c, &n)| n > 0 && c.may_lose_acked())
    }
}

/// Durable bytes a lossy fault touched: lost, damaged or unreadable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub inode: u64,
    pub range: Range<u64>,
    pub class: FaultClass,
    /// Which fault of its class it was (1 for the first), so that marks of
    /// one fault in several places count once.
    pub fault: u64,
    /// The disk operation count when it happened.
    pub op: u64,
}

/// A write as issued (to the page cache), for the harness's map of where
/// each acknowledged batch lives.
#[derive(Clone, Debug)]
pub struct WriteRecord {
    pub inode: u64,
    /// The file's name when it was written.
    pub path: PathBuf,
    pub offset: u64,
    pub data: Arc<[u8]>,
    /// The disk operation count when it was issued.
    pub op: u64,
}

/// A targeted fault: fail or lie about the n-th sync of files whose name
/// contains `file`, or crash at the n-th I/O operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    FailSync { file: String, nth: u64 },
    LieSync { file: String, nth: u64 },
    CrashAtOp { op: u64 },
}
