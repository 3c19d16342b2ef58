//! The medium behind `SimDisk`: inodes, directories, pending operations,
//! and exactly what a sync and a crash do to them (the rules are written
//! at the top of `disk/mod.rs`). Every lossy effect on durable bytes is
//! recorded as [`Damage`], so the harness can tell exactly which bytes a
//! fault touched.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::SimTime;
use crate::faults::{Damage, FaultClass, FaultStats, Planned, SimDiskOptions, WriteRecord};
use crate::rng::SimRng;

mod read;

/// The smallest unit a read fails in: a block device's logical block is at
/// least 512 bytes, whatever finer unit its writes tear in.
const LOGICAL_BLOCK_MIN: u64 = 512;

/// Earlier writes an inode remembers, for stale frames.
const HISTORY_LEN: usize = 8;

/// What an operation works on, for saying where the power was lost.
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    Inode(u64),
    Path(&'a Path),
}

#[derive(Clone, Debug)]
pub(super) enum Op {
    Write { offset: u64, data: Arc<[u8]> },
    SetLen(u64),
}

/// An operation written to the page cache and not yet to the medium.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    pub op: Op,
    /// Disk operation number at which it was issued (orders it across files).
    pub seq: u64,
    /// A sync that lied reported it durable.
    pub tainted: bool,
}

/// A file's bytes, shared until changed: a crash (the page cache falls
/// back to the medium), a fork of the disk and a capture of its durable
/// image share them, and the first change after copies them.
pub type Bytes = Arc<Vec<u8>>;

#[derive(Clone, Debug, Default)]
pub(super) struct Inode {
    pub current: Bytes,
    pub durable: Bytes,
    pub pending: Vec<Pending>,
    /// Sectors with a latent error: reads of them fail until rewritten.
    pub bad_sectors: BTreeSet<u64>,
    /// The last writes that reached the medium, for stale frames.
    pub history: VecDeque<(u64, Arc<[u8]>)>,
    /// Every change to the durable bytes: (change number, lowest offset
    /// changed), for incremental readers of the durable image.
    pub changes: Vec<(u64, u64)>,
}

impl Inode {
    /// A write of `len` bytes at `offset` rewrites whole logical blocks
    /// (the page cache holds them), so it heals every bad sector of each
    /// block it touches: the same unit reads fail in.
    fn rewrite_sectors(&mut self, offset: u64, len: u64, sector: u64) {
        let block = sector.max(LOGICAL_BLOCK_MIN);
        let first = offset / block * block / sector;
        let last = ((offset + len.max(1) - 1) / block * block + block) / sector - 1;
        let rewritten: Vec<u64> = self.bad_sectors.range(first..=last).copied().collect();
        for s in rewritten {
            self.bad_sectors.remove(&s);
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct Dir {
    pub visible: BTreeMap<String, u64>,
    pub durable: BTreeMap<String, u64>,
    /// Subdirectories by name: created, and durable (after a sync of this
    /// directory).
    pub visible_dirs: BTreeSet<String>,
    pub durable_dirs: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub(super) struct Medium {
    pub options: SimDiskOptions,
    pub faults_on: bool,
    pub rng: SimRng,
    /// The choices of readers' operations (see [`Medium::drawing`]).
    pub reads_rng: SimRng,
    pub time: SimTime,
    pub inodes: BTreeMap<u64, Inode>,
    pub dirs: BTreeMap<PathBuf, Dir>,
    pub next_inode: u64,
    /// Bumped by every crash: handles from before it are dead.
    pub generation: u64,
    pub powered: bool,
    pub ops: u64,
    /// Successful syncs per file name, for tests that count them.
    pub syncs_by_name: BTreeMap<String, u64>,
    /// Syncs counted per planned sync fault (index into `planned`).
    pub syncs_by_plan: BTreeMap<usize, u64>,
    pub planned: Vec<Planned>,
    pub locks: BTreeSet<PathBuf>,
    pub stats: FaultStats,
    /// Lossy damage to durable bytes still on the medium, per inode.
    pub damage: Vec<Damage>,
    /// Every damage ever recorded, healed or not, in order.
    pub damage_log: Vec<Damage>,
    /// Every fault that left a mark at a place in a file (lossy damage,
    /// torn and dropped writes, lost names), for telling which faults a
    /// recovery noticed.
    pub effects: Vec<Damage>,
    /// Transient read failures since the last success, by (inode, offset),
    /// in the order the places first failed.
    transient_runs: VecDeque<((u64, u64), u32)>,
    /// The operation (and file) at which the power was lost, until the
    /// crash that follows.
    pub power_lost_at: Option<(&'static str, Option<PathBuf>)>,
    /// Every write issued, for the harness to map what lives where.
    pub writes: Vec<WriteRecord>,
    /// Changes to durable bytes so far (see `Inode::changes`).
    pub durable_changes: u64,
}

pub(super) fn err(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated: {what}"))
}

pub(super) fn split(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// Writes `data` into `bytes` at `offset`, growing it with zeros as needed.
fn splice(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

impl Medium {
    pub fn new(rng: SimRng, reads_rng: SimRng, options: SimDiskOptions, time: SimTime) -> Self {
        assert!(options.sector_size > 0 && options.sector_size.is_power_of_two());
        Self {
            options,
            faults_on: true,
            rng,
            reads_rng,
            time,
            inodes: BTreeMap::new(),
            dirs: BTreeMap::new(),
            next_inode: 1,
            generation: 0,
            powered: true,
            ops: 0,
            syncs_by_name: BTreeMap::new(),
            syncs_by_plan: BTreeMap::new(),
            planned: Vec::new(),
            locks: BTreeSet::new(),
            stats: FaultStats::default(),
            damage: Vec::new(),
            damage_log: Vec::new(),
            effects: Vec::new(),
            power_lost_at: None,
            transient_runs: VecDeque::new(),
            writes: Vec::new(),
            durable_changes: 0,
        }
    }

    /// Counts an operation; fails it if the power is off or a crash is
    /// planned here, and charges its latency.
    /// Runs `op` drawing its choices from the readers' stream if `reader`:
    /// the store's readers read when the workload says, so their faults
    /// come from a stream of their own, and a read more or less (a
    /// shrinker deleting one, say) moves no fault of a write.
    pub fn drawing<T>(&mut self, reader: bool, op: impl FnOnce(&mut Self) -> T) -> T {
        if !reader {
            return op(self);
        }
        std::mem::swap(&mut self.rng, &mut self.reads_rng);
        let out = op(self);
        std::mem::swap(&mut self.rng, &mut self.reads_rng);
        out
    }

    pub fn begin(&mut self, latency_ns: u64, op: &'static str, at: At<'_>) -> io::Result<()> {
        if !self.powered {
            return Err(err(io::ErrorKind::Other, "power is off"));
        }
        self.ops += 1;
        let ops = self.ops;
        let planned_crash =
            self.faults_on && self.planned.iter().any(|p| matches!(p, Planned::CrashAtOp { op } if *op == ops));
        let random_crash = self.faults_on && self.rng.chance(self.options.crash_per_op);
        if planned_crash || random_crash {
            self.powered = false;
            self.power_lost_at = Some((op, self.path_of(at)));
            return Err(err(io::ErrorKind::Other, "power lost"));
        }
        self.time.advance(latency_ns);
        Ok(())
    }

    /// The path `at` names now, if any.
    fn path_of(&self, at: At<'_>) -> Option<PathBuf> {
        match at {
            At::Path(path) => Some(path.to_owned()),
            At::Inode(inode) => self
                .dirs
                .iter()
                .find_map(|(dir, d)| d.visible.iter().find(|(_, &i)| i == inode).map(|(name, _)| dir.join(name))),
        }
    }

    pub fn fault(&mut self, p: f64, class: FaultClass) -> bool {
        if self.faults_on && self.rng.chance(p) {
            self.stats.add(class);
            true
        } else {
            false
        }
    }

    pub fn fault_with(&mut self, rate: impl Fn(&SimDiskOptions) -> f64, class: FaultClass) -> bool {
        let p = rate(&self.options);
        self.fault(p, class)
    }

    pub fn inode_at(&mut self, inode: u64, generation: u64) -> io::Result<&mut Inode> {
        if generation != self.generation {
            return Err(err(io::ErrorKind::Other, "handle from before a crash"));
        }
        self.inodes.get_mut(&inode).ok_or_else(|| err(io::ErrorKind::NotFound, "inode gone"))
    }

    pub fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    pub fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory"))
    }

    /// Records lossy damage to durable bytes of `inode`.
    fn damaged(&mut self, inode: u64, range: Range<u64>, class: FaultClass) {
        if range.start < range.end {
            let d = Damage { inode, range, class, fault: self.stats.count(class), op: self.ops };
            self.damage_log.push(d.clone());
            self.effects.push(d.clone());
            self.damage.push(d);
        }
    }

    /// Records where a fault that loses nothing acknowledged left its mark.
    fn marked(&mut self, inode: u64, range: Range<u64>, class: FaultClass) {
        self.effects.push(Damage { inode, range, class, fault: self.stats.count(class), op: self.ops });
    }

    /// Durable bytes of `inode` from `low` on may have changed.
    fn changed(&mut self, inode: u64, low: u64) {
        self.durable_changes += 1;
        let n = self.durable_changes;
        if let Some(i) = self.inodes.get_mut(&inode) {
            i.changes.push((n, low));
        }
    }

    /// The lowest offset of `inode`'s durable bytes changed after change
    /// number `mark`, if any.
    pub fn changed_since(&self, inode: u64, mark: u64) -> Option<u64> {
        let changes = &self.inodes.get(&inode)?.changes;
        changes.iter().rev().take_while(|(n, _)| *n > mark).map(|(_, low)| *low).min()
    }

    /// Durable bytes rewritten (or cut off) heal the damage there.
    fn heal(&mut self, inode: u64, range: Range<u64>) {
        let mut kept = Vec::with_capacity(self.damage.len());
        for d in std::mem::take(&mut self.damage) {
            if d.inode != inode || d.range.end <= range.start || range.end <= d.range.start {
                kept.push(d);
                continue;
            }
            if d.range.start < range.start {
                kept.push(Damage { range: d.range.start..range.start, ..d.clone() });
            }
            if range.end < d.range.end {
                kept.push(Damage { range: range.end..d.range.end, ..d });
            }
        }
        self.damage = kept;
    }

    /// Applies one pending operation of `inode` to its durable `bytes` as
    /// the medium would: whole, or misdirected, or with an earlier write's
    /// bytes in its place (a stale frame).
    fn persist(&mut self, inode: u64, bytes: &mut Vec<u8>, op: &Op) {
        match op {
            Op::SetLen(len) => {
                self.changed(inode, (*len).min(bytes.len() as u64));
                bytes.resize(*len as usize, 0);
                self.heal(inode, *len..u64::MAX);
            }
            Op::Write { offset, data } => {
                let intended = *offset..*offset + data.len() as u64;
                if self.fault(self.options.misdirected_write, FaultClass::MisdirectedWrite) {
                    let sector = self.options.sector_size;
                    let shift = self.rng.between(1, 8) * sector;
                    let landed = if self.rng.chance(0.5) { offset + shift } else { offset.saturating_sub(shift) };
                    splice(bytes, landed, data);
                    self.changed(inode, landed);
                    self.damaged(inode, intended, FaultClass::MisdirectedWrite);
                    self.damaged(inode, landed..landed + data.len() as u64, FaultClass::MisdirectedWrite);
                    return;
                }
                let history_len = self.inodes.get(&inode).map_or(0, |i| i.history.len());
                if history_len > 0 && self.fault(self.options.stale_frame, FaultClass::StaleFrame) {
                    let pick = self.rng.below(history_len as u64) as usize;
                    let Some((_, old)) = self.inodes.get(&inode).and_then(|i| i.history.get(pick)).cloned() else {
                        unreachable!("picked within the history")
                    };
                    splice(bytes, *offset, &old);
                    self.changed(inode, *offset);
                    let end = intended.end.max(offset + old.len() as u64);
                    self.damaged(inode, *offset..end, FaultClass::StaleFrame);
                    return;
                }
                splice(bytes, *offset, data);
                self.changed(inode, *offset);
                self.heal(inode, intended);
                let sector = self.options.sector_size;
                if let Some(i) = self.inodes.get_mut(&inode) {
                    // The medium's sectors there are written anew: a
                    // latent error that struck them after the write was
                    // issued is gone with the damage it recorded.
                    i.rewrite_sectors(*offset, data.len() as u64, sector);
                }
                if let Some(i) = self.inodes.get_mut(&inode) {
                    if i.history.len() == HISTORY_LEN {
                        i.history.pop_front();
                    }
                    i.history.push_back((*offset, data.clone()));
                }
            }
        }
    }

    /// A pending write that reaches the medium only in part.
    fn persist_torn(&mut self, inode: u64, bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
        self.changed(inode, offset);
        let sector = self.options.sector_size;
        let mut at = offset;
        let end = offset + data.len() as u64;
        while at < end {
            let next = ((at / sector) + 1) * sector;
            let piece_end = next.min(end);
            let piece = &data[(at - offset) as usize..(piece_end - offset) as usize];
            let roll = self.rng.unit();
            if roll < self.options.torn_keep {
                splice(bytes, at, piece);
            } else if roll < self.options.torn_keep + self.options.torn_garbage {
                let mut garbage = vec![0u8; piece.len()];
                self.rng.fill(&mut garbage);
                splice(bytes, at, &garbage);
            }
            at = piece_end;
        }
    }

    /// Power loss: every pending operation of every file is, independently
    /// (so in any order across files), persisted whole, torn or dropped;
    /// names fall back to their durable state; what no durable name reaches
    /// is gone.
    pub fn crash(&mut self) {
        self.power_lost_at = None;
        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        let (mut first_lost, mut last_kept) = (u64::MAX, 0u64);
        let mut reordered_within = false;
        let mut lost_ranges = Vec::new();
        for id in ids {
            let Some(inode) = self.inodes.get_mut(&id) else { continue };
            let pending = std::mem::take(&mut inode.pending);
            let mut durable = std::mem::take(&mut inode.durable);
            let mut lost_here = false;
            for p in &pending {
                let roll = self.rng.unit();
                if roll < self.options.crash_persist {
                    reordered_within |= lost_here;
                    last_kept = last_kept.max(p.seq);
                    self.persist(id, Arc::make_mut(&mut durable), &p.op);
                    continue;
                }
                first_lost = first_lost.min(p.seq);
                lost_here = true;
                let torn = roll < self.options.crash_persist + self.options.crash_torn;
                let range = match &p.op {
                    Op::Write { offset, data } => *offset..offset + data.len() as u64,
                    Op::SetLen(len) => *len..u64::MAX,
                };
                match &p.op {
                    Op::Write { offset, data } if torn => {
                        self.stats.add(FaultClass::TornWrite);
                        self.marked(id, range.clone(), FaultClass::TornWrite);
                        self.persist_torn(id, Arc::make_mut(&mut durable), *offset, data);
                    }
                    _ => {
                        self.stats.add(FaultClass::UnsyncedLost);
                        self.marked(id, range.clone(), FaultClass::UnsyncedLost);
                    }
                }
                lost_ranges.push((id, range.clone()));
                if p.tainted {
                    // Acknowledged by a sync that lied, and now lost.
                    self.damaged(id, range, FaultClass::FsyncLie);
                }
            }
            let Some(inode) = self.inodes.get_mut(&id) else { continue };
            inode.current = durable.clone();
            inode.durable = durable;
        }
        if reordered_within || last_kept > first_lost {
            self.stats.add(FaultClass::OutOfOrder);
            for (id, range) in lost_ranges {
                self.marked(id, range, FaultClass::OutOfOrder);
            }
        }
        self.crash_names();
        self.locks.clear();
        self.generation += 1;
        self.powered = true;
    }

    /// Names fall back to their durable state; directories whose own entry
    /// was never made durable vanish with everything in them.
    fn crash_names(&mut self) {
        let mut lost_names = 0;
        let mut lost_inodes = Vec::new();
        for dir in self.dirs.values_mut() {
            let lost = dir.visible.iter().filter(|(n, i)| dir.durable.get(*n) != Some(i));
            lost_inodes.extend(lost.map(|(_, &i)| i));
            dir.visible = dir.durable.clone();
            dir.visible_dirs = dir.durable_dirs.clone();
        }
        let paths: Vec<PathBuf> = self.dirs.keys().cloned().collect();
        let mut gone: BTreeSet<PathBuf> = BTreeSet::new();
        for path in paths {
            let (parent, name) = split(&path);
            let parent_gone = gone.contains(&parent);
            let entry_lost = self.dirs.get(&parent).is_some_and(|p| !p.durable_dirs.contains(&name));
            if parent_gone || entry_lost {
                gone.insert(path);
            }
        }
        for path in &gone {
            lost_names += 1;
            self.dirs.remove(path);
        }
        lost_names += lost_inodes.len();
        for _ in 0..lost_names {
            self.stats.add(FaultClass::DirEntryLost);
        }
        for inode in lost_inodes {
            self.marked(inode, 0..u64::MAX, FaultClass::DirEntryLost);
        }
        let reachable: BTreeSet<u64> = self.dirs.values().flat_map(|d| d.durable.values().copied()).collect();
        self.inodes.retain(|id, _| reachable.contains(id));
        self.damage.retain(|d| reachable.contains(&d.inode));
    }

    /// Counts a sync of `name` against every planned sync fault whose
    /// pattern it matches; true if one of kind `lie` is due now.
    fn planned_sync_due(&mut self, name: &str, lie: bool) -> bool {
        let mut due = false;
        for (i, planned) in self.planned.iter().enumerate() {
            let (file, nth, is_lie) = match planned {
                Planned::FailSync { file, nth } => (file, *nth, false),
                Planned::LieSync { file, nth } => (file, *nth, true),
                Planned::CrashAtOp { .. } => continue,
            };
            if is_lie == lie && name.contains(file.as_str()) {
                let count = self.syncs_by_plan.entry(i).or_default();
                *count += 1;
                due |= *count == nth && self.faults_on;
            }
        }
        due
    }

    /// fsync of one file: it fails (Linux semantics), lies, or persists
    /// every pending operation, each of which may still be lost by the
    /// medium (a lost write: reported durable, the older bytes stay).
    pub fn sync_file(&mut self, id: u64, name: &str) -> io::Result<()> {
        let planned_fail = self.planned_sync_due(name, false);
        let planned_lie = self.planned_sync_due(name, true);
        let Some(inode) = self.inodes.get_mut(&id) else {
            return Err(err(io::ErrorKind::NotFound, "inode gone"));
        };
        let mut pending = std::mem::take(&mut inode.pending);
        let mut durable = std::mem::take(&mut inode.durable);
        let result = if planned_fail || self.fault(self.options.fsync_fail, FaultClass::FsyncFail) {
            if planned_fail {
                self.stats.add(FaultClass::FsyncFail);
            }
            // Some pages were written back before the error; all are now
            // marked clean. Those a lying sync acknowledged earlier and that
            // were not written back are lost for good. A length change is
            // the inode's metadata, not a page: one not written back stays
            // pending (the file system commits it later, or a crash loses
            // it like any pending operation), and so does every operation
            // issued after it, in order: the medium never sees them before
            // it.
            let mut held: Vec<Pending> = Vec::new();
            for p in pending {
                let written_back = self.rng.chance(0.5);
                if !held.is_empty() {
                    held.push(p);
                } else if written_back {
                    self.persist(id, Arc::make_mut(&mut durable), &p.op);
                } else if let Op::SetLen(_) = p.op {
                    held.push(p);
                } else if let (true, Op::Write { offset, data }) = (p.tainted, &p.op) {
                    self.damaged(id, *offset..offset + data.len() as u64, FaultClass::FsyncLie);
                }
            }
            let Some(inode) = self.inodes.get_mut(&id) else { unreachable!("looked up above") };
            inode.pending = held;
            Err(err(io::ErrorKind::Other, "fsync failed (EIO)"))
        } else if planned_lie || self.fault(self.options.fsync_lie, FaultClass::FsyncLie) {
            if planned_lie {
                self.stats.add(FaultClass::FsyncLie);
            }
            pending.iter_mut().for_each(|p| p.tainted = true);
            let Some(inode) = self.inodes.get_mut(&id) else { unreachable!("looked up above") };
            inode.pending = pending;
            inode.durable = durable;
            return Ok(());
        } else {
            for p in &pending {
                if let Op::Write { offset, data } = &p.op {
                    if self.fault(self.options.lost_write, FaultClass::LostWrite) {
                        self.damaged(id, *offset..offset + data.len() as u64, FaultClass::LostWrite);
                        continue;
                    }
                }
                self.persist(id, Arc::make_mut(&mut durable), &p.op);
            }
            Ok(())
        };
        let Some(inode) = self.inodes.get_mut(&id) else { unreachable!("looked up above") };
        inode.durable = durable;
        result
    }

    /// A write into the page cache (pending until synced).
    pub fn write(&mut self, inode: u64, generation: u64, path: PathBuf, offset: u64, data: &[u8]) -> io::Result<()> {
        let latency = self.options.write_latency_ns;
        self.begin(latency, "write", At::Inode(inode))?;
        if self.fault_with(|o| o.write_error, FaultClass::ShortOrTransient) {
            return Err(err(io::ErrorKind::Other, "transient write error"));
        }
        let grow = (offset + data.len() as u64).saturating_sub(self.inode_at(inode, generation)?.current.len() as u64);
        if self.faults_on && self.used().saturating_add(grow) > self.options.capacity {
            self.stats.add(FaultClass::DiskFull);
            return Err(err(io::ErrorKind::StorageFull, "disk full"));
        }
        let sector = self.options.sector_size;
        let seq = self.ops;
        let data: Arc<[u8]> = data.into();
        let file = self.inode_at(inode, generation)?;
        splice(Arc::make_mut(&mut file.current), offset, &data);
        file.rewrite_sectors(offset, data.len() as u64, sector);
        file.pending.push(Pending { op: Op::Write { offset, data: data.clone() }, seq, tainted: false });
        self.writes.push(WriteRecord { inode, path, offset, data, op: seq });
        Ok(())
    }

    /// Truncates (or extends) the page cache's copy (pending until synced).
    pub fn set_len(&mut self, inode: u64, generation: u64, len: u64) -> io::Result<()> {
        let latency = self.options.write_latency_ns;
        self.begin(latency, "set_len", At::Inode(inode))?;
        self.cache_len(inode, generation, len)
    }

    /// `set_len` without counting an operation of its own (`create` of an
    /// existing name truncates it as part of the create).
    pub fn cache_len(&mut self, inode: u64, generation: u64, len: u64) -> io::Result<()> {
        let seq = self.ops;
        let sector = self.options.sector_size;
        let file = self.inode_at(inode, generation)?;
        Arc::make_mut(&mut file.current).resize(len as usize, 0);
        let from = len.div_ceil(sector);
        let cut: Vec<u64> = file.bad_sectors.range(from..).copied().collect();
        for s in cut {
            file.bad_sectors.remove(&s);
        }
        file.pending.push(Pending { op: Op::SetLen(len), seq, tainted: false });
        Ok(())
    }

    /// Makes `dir`'s names, and its subdirectories' entries, durable.
    pub fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let latency = self.options.sync_latency_ns;
        self.begin(latency, "sync_dir", At::Path(dir))?;
        if self.fault_with(|o| o.dir_sync_fail, FaultClass::FsyncFail) {
            return Err(err(io::ErrorKind::Other, "directory fsync failed (EIO)"));
        }
        let d = self.dir_mut(dir)?;
        d.durable = d.visible.clone();
        d.durable_dirs = d.visible_dirs.clone();
        Ok(())
    }

    /// Creates `path` and its missing parents; each new directory's entry
    /// is durable only after a sync of its parent (the root always is).
    pub fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        self.begin(0, "create_dir", At::Path(path))?;
        let mut at = PathBuf::new();
        for part in path.components() {
            let parent = at.clone();
            at.push(part);
            if self.dirs.contains_key(&at) {
                continue;
            }
            self.dirs.insert(at.clone(), Dir::default());
            let name = at.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // A directory without a tracked parent is the root: always there.
            if let Some(p) = self.dirs.get_mut(&parent) {
                p.visible_dirs.insert(name);
            }
        }
        Ok(())
    }
}
