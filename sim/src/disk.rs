//! `SimDisk`: the simulated twin of the store's `FileDisk`, fully in memory.
//!
//! # Durability model
//!
//! Each file (inode) has **current** bytes (what reads see: the page
//! cache), **durable** bytes (what survives a crash) and a list of
//! **pending** operations (writes and truncations since the last sync).
//! Each directory has **visible** names (what `open`/`list` see) and
//! **durable** names (what survives a crash).
//!
//! - `write_at` and `set_len` change the current bytes at once and join the
//!   pending list. They reach the durable bytes only through `sync` of that
//!   file, or by chance at a crash.
//! - `create`, `rename` and `remove` change the visible names at once. They
//!   reach the durable names only through `sync_dir` of the directory. A
//!   rename is atomic: after a crash the directory holds the old name or the
//!   new one, as of its last `sync_dir`. Directories themselves are created
//!   durable.
//! - A crash (at a chosen I/O operation, or between steps) powers the disk
//!   off: that operation and every later one fail. `crash()` then applies
//!   the crash: every pending operation of every file is, independently and
//!   so in any order across files, persisted whole, torn at sector
//!   granularity (each sector of the write kept, dropped or turned to
//!   garbage), or dropped; visible names fall back to durable names; files
//!   no durable name reaches are gone; locks are released.
//!
//! # Faults
//!
//! All rates live in [`SimDiskOptions`]; every draw comes from the run's
//! seeded stream; [`FaultStats`] counts each class injected:
//!
//! 1. unsynced data lost at crash (above);
//! 2. torn writes at sector granularity (above);
//! 3. pending writes persisted out of order, across files (above);
//! 4. directory entries durable only after `sync_dir` (above);
//! 5. fsync failure, Linux semantics: `sync` returns an error, each pending
//!    operation was or was not written back, and all are marked clean — the
//!    next `sync` succeeds without them; the page cache keeps the bytes;
//! 6. lying fsync: `sync` returns success and persists nothing;
//! 7. latent sector errors (a read fails, stickily, until the sector is
//!    rewritten) and bit rot (a bit of a stored sector flips, stickily);
//! 8. misdirected writes: a write reaches the durable bytes at another
//!    sector-aligned offset;
//! 9. disk full: writes and creates past the capacity fail with
//!    `StorageFull`;
//! 10. short reads and transient I/O errors on read, write and rename.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shale_store::disk::ReadAt;
use shale_store::Disk;

pub use crate::faults::{FaultClass, FaultStats, Planned, SimDiskOptions};
use crate::rng::SimRng;

/// Simulated time in nanoseconds, shared by the disk, the clock and the
/// scheduler.
#[derive(Clone, Debug, Default)]
pub struct SimTime(Arc<AtomicU64>);

impl SimTime {
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    pub fn set_at_least(&self, ns: u64) {
        self.0.fetch_max(ns, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// Sectors with a latent error: reads of them fail until rewritten.
    bad_sectors: BTreeSet<u64>,
}

#[derive(Clone, Debug, Default)]
struct Dir {
    visible: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct State {
    options: SimDiskOptions,
    faults_on: bool,
    rng: SimRng,
    time: SimTime,
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_inode: u64,
    /// Bumped by every crash: handles from before it are dead.
    generation: u64,
    powered: bool,
    ops: u64,
    /// Successful syncs per file name, for tests that count them.
    syncs_by_name: BTreeMap<String, u64>,
    /// Syncs counted per planned sync fault (index into `planned`).
    syncs_by_plan: BTreeMap<usize, u64>,
    planned: Vec<Planned>,
    locks: BTreeSet<PathBuf>,
    stats: FaultStats,
}

/// The simulated disk. Cloning shares it: the store owns one handle, the
/// harness keeps another to crash it and inspect the durable image.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
pub struct SimFile {
    inode: u64,
    generation: u64,
    name: String,
}

/// A file open for reading only; reads go through the same faults.
#[derive(Debug)]
pub struct SimReadFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    generation: u64,
}

impl ReadAt for SimReadFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.read(self.inode, self.generation, offset, buf)
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.begin(0)?;
        Ok(s.inode_at(self.inode, self.generation)?.current.len() as u64)
    }
}

#[derive(Debug)]
pub struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.generation == self.generation {
            s.locks.remove(&self.path);
        }
    }
}

fn err(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated: {what}"))
}

fn split(path: &Path) -> (PathBuf, String) {
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

impl SimDisk {
    pub fn new(seed: u64, options: SimDiskOptions, time: SimTime) -> Self {
        assert!(options.sector_size > 0 && options.sector_size.is_power_of_two());
        let state = State {
            options,
            faults_on: true,
            rng: SimRng::stream(seed, "disk"),
            time,
            inodes: BTreeMap::new(),
            dirs: BTreeMap::new(),
            next_inode: 1,
            generation: 0,
            powered: true,
            ops: 0,
            syncs_by_plan: BTreeMap::new(),
            syncs_by_name: BTreeMap::new(),
            planned: Vec::new(),
            locks: BTreeSet::new(),
            stats: FaultStats::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn plan(&self, planned: Planned) {
        self.state().planned.push(planned);
    }

    /// Turns every random fault off (or back on). Planned faults and crash
    /// semantics stay.
    pub fn set_faults(&self, on: bool) {
        self.state().faults_on = on;
    }

    pub fn powered(&self) -> bool {
        self.state().powered
    }

    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// How many syncs of files named `name` succeeded (or lied).
    pub fn syncs_of(&self, name: &str) -> u64 {
        self.state().syncs_by_name.get(name).copied().unwrap_or(0)
    }

    pub fn stats(&self) -> FaultStats {
        self.state().stats.clone()
    }

    /// Cuts the power now: every later operation fails until `crash()`.
    pub fn power_off(&self) {
        self.state().powered = false;
    }

    /// Applies crash semantics (see the model above) and powers back on.
    pub fn crash(&self) {
        self.state().crash();
    }

    /// The durable bytes of one file, if a durable name reaches it.
    pub fn durable_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state();
        let (dir, name) = split(path);
        let inode = s.dirs.get(&dir)?.durable.get(&name)?;
        s.inodes.get(inode).map(|i| i.durable.clone())
    }

    /// What would survive a crash right now if every pending operation were
    /// lost: every file a durable name reaches, with its durable bytes.
    pub fn durable_image(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let s = self.state();
        let mut image = BTreeMap::new();
        for (dir, d) in &s.dirs {
            for (name, inode) in &d.durable {
                if let Some(i) = s.inodes.get(inode) {
                    image.insert(dir.join(name), i.durable.clone());
                }
            }
        }
        image
    }
}

impl State {
    /// Counts an operation; fails it if the power is off or a crash is
    /// planned here, and charges its latency.
    fn begin(&mut self, latency_ns: u64) -> io::Result<()> {
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
            return Err(err(io::ErrorKind::Other, "power lost"));
        }
        self.time.advance(latency_ns);
        Ok(())
    }

    fn fault(&mut self, p: f64, class: FaultClass) -> bool {
        if self.faults_on && self.rng.chance(p) {
            self.stats.add(class);
            true
        } else {
            false
        }
    }

    fn fault_with(&mut self, rate: impl Fn(&SimDiskOptions) -> f64, class: FaultClass) -> bool {
        let p = rate(&self.options);
        self.fault(p, class)
    }

    fn inode(&mut self, file: &SimFile) -> io::Result<&mut Inode> {
        self.inode_at(file.inode, file.generation)
    }

    fn inode_at(&mut self, inode: u64, generation: u64) -> io::Result<&mut Inode> {
        if generation != self.generation {
            return Err(err(io::ErrorKind::Other, "handle from before a crash"));
        }
        self.inodes.get_mut(&inode).ok_or_else(|| err(io::ErrorKind::NotFound, "inode gone"))
    }

    /// A read through the page cache, with read faults.
    fn read(&mut self, inode: u64, generation: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let latency = self.options.read_latency_ns;
        self.begin(latency)?;
        let sector = self.options.sector_size;
        let len = self.inode_at(inode, generation)?.current.len() as u64;
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let mut n = buf.len().min((len - offset) as usize);
        if self.fault_with(|o| o.read_error, FaultClass::ShortOrTransient) {
            return Err(err(io::ErrorKind::Other, "transient read error"));
        }
        let first = offset / sector;
        let last = (offset + n as u64 - 1) / sector;
        if self.inode_at(inode, generation)?.bad_sectors.range(first..=last).next().is_some() {
            return Err(err(io::ErrorKind::Other, "latent sector error"));
        }
        if self.fault_with(|o| o.read_latent_error, FaultClass::SectorError) {
            let bad = self.rng.between(first, last);
            self.inode_at(inode, generation)?.bad_sectors.insert(bad);
            return Err(err(io::ErrorKind::Other, "latent sector error"));
        }
        if self.fault_with(|o| o.read_bit_rot, FaultClass::SectorError) {
            let at = self.rng.between(offset, offset + n as u64 - 1) as usize;
            let bit = 1u8 << self.rng.below(8);
            let file = self.inode_at(inode, generation)?;
            file.current[at] ^= bit;
            if at < file.durable.len() {
                file.durable[at] ^= bit;
            }
        }
        if n > 1 && self.fault_with(|o| o.read_short, FaultClass::ShortOrTransient) {
            n = self.rng.between(1, n as u64 - 1) as usize;
        }
        let start = offset as usize;
        buf[..n].copy_from_slice(&self.inode_at(inode, generation)?.current[start..start + n]);
        Ok(n)
    }

    fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory"))
    }

    /// Applies one pending operation to `bytes` as the medium would.
    fn persist(&mut self, bytes: &mut Vec<u8>, op: &Pending) {
        match op {
            Pending::SetLen(len) => bytes.resize(*len as usize, 0),
            Pending::Write { offset, data } => {
                let mut offset = *offset;
                if self.fault(self.options.misdirected_write, FaultClass::MisdirectedWrite) {
                    let sector = self.options.sector_size;
                    let shift = self.rng.between(1, 8) * sector;
                    offset = if self.rng.chance(0.5) { offset + shift } else { offset.saturating_sub(shift) };
                }
                splice(bytes, offset, data);
            }
        }
    }

    /// A pending write that reaches the medium only in part.
    fn persist_torn(&mut self, bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
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

    fn crash(&mut self) {
        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        for id in ids {
            let Some(inode) = self.inodes.get_mut(&id) else { continue };
            let pending = std::mem::take(&mut inode.pending);
            let mut durable = std::mem::take(&mut inode.durable);
            let mut lost_any = false;
            let mut kept_after_loss = false;
            for op in &pending {
                let roll = self.rng.unit();
                if roll < self.options.crash_persist {
                    kept_after_loss |= lost_any;
                    self.persist(&mut durable, op);
                } else if roll < self.options.crash_persist + self.options.crash_torn {
                    if let Pending::Write { offset, data } = op {
                        self.stats.add(FaultClass::TornWrite);
                        self.persist_torn(&mut durable, *offset, data);
                    }
                    lost_any = true;
                } else {
                    self.stats.add(FaultClass::UnsyncedLost);
                    lost_any = true;
                }
            }
            if kept_after_loss {
                self.stats.add(FaultClass::OutOfOrder);
            }
            let Some(inode) = self.inodes.get_mut(&id) else { continue };
            inode.current = durable.clone();
            inode.durable = durable;
        }
        let mut reachable = BTreeSet::new();
        let mut lost_names = 0;
        for dir in self.dirs.values_mut() {
            lost_names += dir.visible.iter().filter(|(n, i)| dir.durable.get(*n) != Some(i)).count();
            dir.visible = dir.durable.clone();
            reachable.extend(dir.durable.values().copied());
        }
        for _ in 0..lost_names {
            self.stats.add(FaultClass::DirEntryLost);
        }
        self.inodes.retain(|id, _| reachable.contains(id));
        self.locks.clear();
        self.generation += 1;
        self.powered = true;
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

    fn sync_file(&mut self, id: u64, name: &str) -> io::Result<()> {
        let planned_fail = self.planned_sync_due(name, false);
        let planned_lie = self.planned_sync_due(name, true);
        let Some(inode) = self.inodes.get_mut(&id) else {
            return Err(err(io::ErrorKind::NotFound, "inode gone"));
        };
        let pending = std::mem::take(&mut inode.pending);
        let mut durable = std::mem::take(&mut inode.durable);
        let result = if planned_fail || self.fault(self.options.fsync_fail, FaultClass::FsyncFail) {
            if planned_fail {
                self.stats.add(FaultClass::FsyncFail);
            }
            // Some pages were written back before the error; all are now
            // marked clean.
            for op in &pending {
                if self.rng.chance(0.5) {
                    self.persist(&mut durable, op);
                }
            }
            Err(err(io::ErrorKind::Other, "fsync failed (EIO)"))
        } else if planned_lie || self.fault(self.options.fsync_lie, FaultClass::FsyncLie) {
            if planned_lie {
                self.stats.add(FaultClass::FsyncLie);
            }
            let Some(inode) = self.inodes.get_mut(&id) else { unreachable!("looked up above") };
            inode.pending = pending;
            inode.durable = durable;
            return Ok(());
        } else {
            for op in &pending {
                self.persist(&mut durable, op);
            }
            Ok(())
        };
        let Some(inode) = self.inodes.get_mut(&id) else { unreachable!("looked up above") };
        inode.durable = durable;
        result
    }
}

impl Disk for SimDisk {
    type File = SimFile;
    type ReadFile = SimReadFile;
    type Lock = SimLock;

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(0)?;
        let mut at = PathBuf::new();
        for part in path.components() {
            at.push(part);
            s.dirs.entry(at.clone()).or_default();
        }
        Ok(())
    }

    fn lock(&mut self, path: &Path) -> io::Result<SimLock> {
        let mut s = self.state();
        s.begin(0)?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(SimLock { state: self.state.clone(), path: path.to_owned(), generation: s.generation })
    }

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        let latency = s.options.write_latency_ns;
        s.begin(latency)?;
        if s.used() >= s.options.capacity && s.fault(1.0, FaultClass::DiskFull) {
            return Err(err(io::ErrorKind::StorageFull, "disk full"));
        }
        let (dir, name) = split(path);
        let existing = s.dir_mut(&dir)?.visible.get(&name).copied();
        let generation = s.generation;
        let inode = match existing {
            Some(id) => {
                let Some(inode) = s.inodes.get_mut(&id) else { unreachable!("visible names reach inodes") };
                inode.current.clear();
                inode.pending.push(Pending::SetLen(0));
                id
            }
            None => {
                let id = s.next_inode;
                s.next_inode += 1;
                s.inodes.insert(id, Inode::default());
                s.dir_mut(&dir)?.visible.insert(name.clone(), id);
                id
            }
        };
        Ok(SimFile { inode, generation, name })
    }

    fn open(&mut self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        s.begin(0)?;
        let (dir, name) = split(path);
        let id =
            s.dir_mut(&dir)?.visible.get(&name).copied().ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        Ok(SimFile { inode: id, generation: s.generation, name })
    }

    fn open_read(&mut self, path: &Path) -> io::Result<SimReadFile> {
        let mut s = self.state();
        s.begin(0)?;
        let (dir, name) = split(path);
        let id =
            s.dir_mut(&dir)?.visible.get(&name).copied().ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        Ok(SimReadFile { state: self.state.clone(), inode: id, generation: s.generation })
    }

    fn write_at(&mut self, file: &mut SimFile, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        let latency = s.options.write_latency_ns;
        s.begin(latency)?;
        if s.fault_with(|o| o.write_error, FaultClass::ShortOrTransient) {
            return Err(err(io::ErrorKind::Other, "transient write error"));
        }
        let grow = (offset + data.len() as u64).saturating_sub(s.inode(file)?.current.len() as u64);
        if s.faults_on && s.used().saturating_add(grow) > s.options.capacity {
            s.stats.add(FaultClass::DiskFull);
            return Err(err(io::ErrorKind::StorageFull, "disk full"));
        }
        let sector = s.options.sector_size;
        let inode = s.inode(file)?;
        splice(&mut inode.current, offset, data);
        let first = offset / sector;
        let last = (offset + data.len().max(1) as u64 - 1) / sector;
        let rewritten: Vec<u64> = inode.bad_sectors.range(first..=last).copied().collect();
        for sector in rewritten {
            inode.bad_sectors.remove(&sector);
        }
        inode.pending.push(Pending::Write { offset, data: data.to_vec() });
        Ok(())
    }

    fn len(&mut self, file: &mut SimFile) -> io::Result<u64> {
        let mut s = self.state();
        s.begin(0)?;
        Ok(s.inode(file)?.current.len() as u64)
    }

    fn set_len(&mut self, file: &mut SimFile, len: u64) -> io::Result<()> {
        let mut s = self.state();
        let latency = s.options.write_latency_ns;
        s.begin(latency)?;
        let inode = s.inode(file)?;
        inode.current.resize(len as usize, 0);
        inode.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync(&mut self, file: &mut SimFile) -> io::Result<()> {
        let mut s = self.state();
        let latency = s.options.sync_latency_ns;
        s.begin(latency)?;
        s.inode(file)?;
        let result = s.sync_file(file.inode, &file.name);
        if result.is_ok() {
            *s.syncs_by_name.entry(file.name.clone()).or_default() += 1;
        }
        result
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        let latency = s.options.sync_latency_ns;
        s.begin(latency)?;
        if s.fault_with(|o| o.dir_sync_fail, FaultClass::FsyncFail) {
            return Err(err(io::ErrorKind::Other, "directory fsync failed (EIO)"));
        }
        let d = s.dir_mut(dir)?;
        d.durable = d.visible.clone();
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(0)?;
        if s.fault_with(|o| o.rename_error, FaultClass::ShortOrTransient) {
            return Err(err(io::ErrorKind::Other, "rename failed (EIO)"));
        }
        let (from_dir, from_name) = split(from);
        let (to_dir, to_name) = split(to);
        s.dir_mut(&to_dir)?;
        let id = s
            .dir_mut(&from_dir)?
            .visible
            .remove(&from_name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        s.dir_mut(&to_dir)?.visible.insert(to_name, id);
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(0)?;
        let (dir, name) = split(path);
        s.dir_mut(&dir)?.visible.remove(&name).map(|_| ()).ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state();
        s.begin(0)?;
        Ok(s.dir_mut(dir)?.visible.keys().cloned().collect())
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        let mut s = self.state();
        s.begin(0)?;
        if s.dirs.contains_key(path) {
            return Ok(true);
        }
        let (dir, name) = split(path);
        Ok(s.dirs.get(&dir).is_some_and(|d| d.visible.contains_key(&name)))
    }
}
