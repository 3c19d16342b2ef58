//! What a run measures for sweep reports: where its crashes struck, the
//! simulated latency of each kind of request, and which of the injected
//! faults the store noticed (in a recovery's report, a refused open or a
//! typed error to a client).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shale_store::journal::recover::RecoveryReport;
use shale_store::OpenError;

use super::{Sim, STORE_DIR};
use crate::disk::{Damage, SimDisk};
use crate::faults::FaultClass;

/// The kinds of request whose simulated latency a run records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A batch of one event, from send to acknowledgement.
    Append,
    /// A batch of several events.
    Batch,
    /// A crypto-shred, from request to acknowledgement.
    Shred,
    /// A restart's open, recovery included.
    Recovery,
}

impl Request {
    pub const ALL: [Request; 4] = [Request::Append, Request::Batch, Request::Shred, Request::Recovery];

    pub fn name(self) -> &'static str {
        match self {
            Request::Append => "append",
            Request::Batch => "batch",
            Request::Shred => "shred",
            Request::Recovery => "recovery",
        }
    }
}

/// Faults the store can only notice as they happen, as an error it returns.
const RUNTIME_CLASSES: [FaultClass; 3] = [FaultClass::FsyncFail, FaultClass::DiskFull, FaultClass::ShortOrTransient];

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Crashes by where they struck: the run's phase, the disk operation
    /// and the kind of file (`commit: sync segment`).
    pub crash_points: BTreeMap<String, u64>,
    /// Simulated latency of every acknowledged request, by kind, ns.
    #[serde(skip)]
    pub latency_ns: BTreeMap<Request, Vec<u64>>,
    /// Injected faults the store noticed, by class.
    pub observed: BTreeMap<FaultClass, u64>,
    /// Located faults not noticed yet.
    #[serde(skip)]
    unseen: Vec<Damage>,
    /// Located faults noticed, as (class, which of its class).
    #[serde(skip)]
    seen: BTreeSet<(FaultClass, u64)>,
    #[serde(skip)]
    effects_mark: usize,
}

impl RunStats {
    pub fn latency(&mut self, request: Request, ns: u64) {
        self.latency_ns.entry(request).or_default().push(ns);
    }

    fn noticed(&mut self, class: FaultClass, n: u64) {
        if n > 0 {
            *self.observed.entry(class).or_default() += n;
        }
    }

    /// Counts as noticed every located fault (since the last call, or
    /// still unseen) that touched one of `places`.
    pub(super) fn noticed_at(&mut self, disk: &SimDisk, places: &[(u64, Range<u64>)]) {
        self.unseen.extend(disk.effects_since(self.effects_mark));
        self.effects_mark = disk.effects_mark();
        for effect in &self.unseen {
            let hit = places.iter().any(|(inode, range)| {
                *inode == effect.inode && range.start < effect.range.end && effect.range.start < range.end
            });
            if hit && self.seen.insert((effect.class, effect.fault)) {
                *self.observed.entry(effect.class).or_default() += 1;
            }
        }
        let seen = &self.seen;
        self.unseen.retain(|effect| !seen.contains(&(effect.class, effect.fault)));
    }
}

/// The kind of store file disk operation `op` worked on at `path`, for
/// crash points.
fn file_kind(op: &str, path: &Path) -> String {
    use shale_store::{core::LOCK_NAME, journal::recover::SALVAGE_DIR, keyset::KEYS_NAME, meta::META_NAME};
    if matches!(op, "sync_dir" | "create_dir" | "list") || path == Path::new(STORE_DIR) {
        return "directory".into();
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let base = name.strip_suffix(".tmp").unwrap_or(&name);
    let kind = if path.components().any(|c| c.as_os_str() == SALVAGE_DIR) {
        "salvage"
    } else if shale_store::journal::segment::parse_segment_name(base).is_some() {
        "segment"
    } else if base.starts_with(KEYS_NAME) {
        "keyset"
    } else if base.starts_with(META_NAME) {
        "meta"
    } else if base == LOCK_NAME {
        "lock"
    } else if base == shale_store::journal::checkpoint::INDEX_NAME {
        "checkpoint"
    } else {
        "other"
    };
    match base.len() < name.len() {
        true => format!("{kind} (tmp)"),
        false => kind.to_owned(),
    }
}

/// Every place (inode, byte range) a recovery's report says it cut, set
/// aside, could not read, repaired or rebuilt.
fn report_places(disk: &SimDisk, report: &RecoveryReport) -> Vec<(u64, Range<u64>)> {
    let dir = Path::new(STORE_DIR);
    let mut places = Vec::new();
    let mut at = |path: &Path, range: Range<u64>| {
        if let Some(inode) = disk.inode_of(path) {
            places.push((inode, range));
        }
    };
    for cut in &report.truncated {
        at(&cut.file, cut.offset..u64::MAX);
    }
    for aside in &report.set_aside {
        at(&aside.from, aside.offset..aside.offset + aside.len);
        at(&aside.to, 0..u64::MAX);
    }
    for (file, range) in &report.unreadable {
        at(file, range.clone());
    }
    if let Some(corruption) = &report.corruption {
        at(&corruption.file, corruption.offset..u64::MAX);
    }
    for (file, _) in &report.keyset_repaired {
        at(file, 0..u64::MAX);
    }
    if report.meta_rebuilt.is_some() {
        at(&dir.join("META"), 0..u64::MAX);
    }
    if !report.keys_lost.is_empty() {
        for (name, inode) in disk.names_in(dir) {
            if name.starts_with("KEYS") {
                places.push((inode, 0..u64::MAX));
            }
        }
    }
    places
}

/// The places a refused open names: from the damaged byte on, or every
/// file of the store when the refusal names none.
fn refusal_places(disk: &SimDisk, error: &OpenError) -> Vec<(u64, Range<u64>)> {
    let (file, from): (PathBuf, u64) = match error {
        OpenError::Corrupt(c) => (c.file.clone(), c.offset),
        OpenError::Unreadable { file, offset, .. } => (file.clone(), *offset),
        OpenError::Mismatch { .. } | OpenError::Keyset(_) | OpenError::Format { .. } | OpenError::NotAStore { .. } => {
            return disk.names_in(Path::new(STORE_DIR)).into_iter().map(|(_, inode)| (inode, 0..u64::MAX)).collect()
        }
        _ => return Vec::new(),
    };
    disk.inode_of(&file).map(|inode| vec![(inode, from..u64::MAX)]).unwrap_or_default()
}

impl Sim {
    /// Records where the power was lost, in `phase` of the run.
    pub(super) fn crash_point(&mut self, phase: &str) {
        let point = match self.disk.power_lost_at() {
            Some((op, Some(path))) => format!("{phase}: {op} {}", file_kind(op, &path)),
            Some((op, None)) => format!("{phase}: {op}"),
            None => phase.to_owned(),
        };
        *self.stats.crash_points.entry(point).or_default() += 1;
    }

    /// A recovery reported what it found: the faults it touched count as
    /// noticed.
    pub(super) fn noticed_in_recovery(&mut self, report: &RecoveryReport) {
        let places = report_places(&self.disk, report);
        self.stats.noticed_at(&self.disk, &places);
    }

    /// An open was refused: the faults at the place it names count as
    /// noticed, and so do faults of the runtime classes since it began.
    pub(super) fn noticed_in_refusal(&mut self, error: &OpenError) {
        let places = refusal_places(&self.disk, error);
        self.stats.noticed_at(&self.disk, &places);
        if matches!(error, OpenError::Io(_)) {
            self.noticed_at_runtime();
        }
    }

    /// A request failed with an error the store returned: faults of the
    /// runtime classes injected since the store was handed the work count
    /// as noticed (once).
    pub(super) fn noticed_at_runtime(&mut self) {
        let now = self.disk.stats();
        for class in RUNTIME_CLASSES {
            self.stats.noticed(class, now.count(class) - self.faults_before.count(class));
        }
        self.faults_before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_files_are_named_by_kind() {
        let dir = Path::new(STORE_DIR);
        assert_eq!(file_kind("write", &dir.join("KEYS.tmp")), "keyset (tmp)");
        assert_eq!(file_kind("sync", &dir.join("META")), "meta");
        assert_eq!(file_kind("sync_dir", dir), "directory");
        let segment = shale_store::journal::segment::segment_name(3);
        assert_eq!(file_kind("write", &dir.join(&segment)), "segment");
        assert_eq!(file_kind("rename", &dir.join("salvage").join(segment)), "salvage");
    }
}
