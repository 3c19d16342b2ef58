//! `SimDisk`: the simulated twin of the store's `FileDisk`, fully in memory.
//!
//! # Durability model
//!
//! Each file (inode) has **current** bytes (what reads see: the page
//! cache), **durable** bytes (what survives a crash) and a list of
//! **pending** operations (writes and truncations since the last sync).
//! Each directory has **visible** names (what `open`/`list` see) and
//! **durable** names (what survives a crash), for files and subdirectories
//! alike.
//!
//! - `write_at` and `set_len` change the current bytes at once and join the
//!   pending list. They reach the durable bytes only through `sync` of that
//!   file, or by chance at a crash.
//! - `create`, `rename` and `remove` change the visible names at once. They
//!   reach the durable names only through `sync_dir` of the directory. A
//!   rename is atomic: after a crash the directory holds the old name or the
//!   new one, as of its last `sync_dir`. A new directory's own entry is
//!   durable only after a `sync_dir` of its parent (the root always is).
//! - A crash (at a chosen I/O operation, or between steps) powers the disk
//!   off: that operation and every later one fail. `crash()` then applies
//!   the crash: every pending operation of every file is, independently and
//!   so in any order across files, persisted whole, torn at sector
//!   granularity (each sector of the write kept, dropped or turned to
//!   garbage), or dropped; visible names fall back to durable names;
//!   directories and files no durable name reaches are gone; locks are
//!   released.
//!
//! # Faults
//!
//! All rates live in [`SimDiskOptions`]; every draw comes from the run's
//! seeded stream; [`FaultStats`] counts each class injected:
//!
//! 1. unsynced data lost at crash (above);
//! 2. torn writes at sector granularity (above);
//! 3. pending writes persisted out of order, within a file or across files
//!    (above);
//! 4. file and directory entries durable only after `sync_dir` (above);
//! 5. fsync failure, Linux semantics: `sync` returns an error, each pending
//!    write was or was not written back, and all are marked clean — the
//!    next `sync` succeeds without them; the page cache keeps the bytes. A
//!    length change (`set_len`) not written back stays pending, and so does
//!    everything issued after it, in order: it is the inode's metadata,
//!    which the file system commits later, and never after the writes that
//!    followed it;
//! 6. lying fsync: `sync` returns success and persists nothing (the writes
//!    stay pending, and a crash may lose them);
//! 7. latent sector errors (reads of a logical block, at least 512 bytes,
//!    fail stickily until it is rewritten) and bit rot (a bit of a stored sector flips, stickily);
//! 8. misdirected writes: a write reaches the durable bytes at another
//!    sector-aligned offset;
//! 9. disk full: writes and creates past the capacity fail with
//!    `StorageFull`;
//! 10. short reads and transient I/O errors on read, write and rename;
//! 11. lost writes: a sync reports a write durable, but the medium keeps the
//!     older bytes (reads see the new ones until a crash, then the old);
//! 12. stale frames: a write reaches the medium with the bytes of an earlier
//!     write of the same file in its place (an older, valid frame at a later
//!     offset).
//!
//! Classes 6, 7, 8, 11 and 12 can destroy acknowledged data. Each records
//! exactly which durable bytes it touched ([`Damage`]: a write a lying sync
//! acknowledged and a crash then lost, a flipped or unreadable sector, both
//! ends of a misdirected write, a lost write, a stale frame), until those
//! bytes are rewritten or cut off. The harness excuses lost acknowledged
//! data by that record and by nothing else.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shale_store::disk::{OpenRead, ReadAt};
use shale_store::Disk;

pub use crate::faults::{Damage, FaultClass, FaultStats, Planned, SimDiskOptions, WriteRecord};

mod medium;

pub use medium::Bytes;
use medium::{err, split, At, Medium};

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

/// The simulated disk. Cloning shares it: the store owns one handle, the
/// harness keeps another to crash it and inspect the durable image.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<Medium>>,
}

#[derive(Debug)]
pub struct SimFile {
    inode: u64,
    generation: u64,
    name: String,
}

/// A file open for reading only; reads go through the same faults. A
/// reader's file (opened through [`Disk::reads`]) draws them from the
/// disk's stream for readers.
#[derive(Debug)]
pub struct SimReadFile {
    state: Arc<Mutex<Medium>>,
    inode: u64,
    generation: u64,
    reader: bool,
}

fn lock(state: &Mutex<Medium>) -> MutexGuard<'_, Medium> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReadAt for SimReadFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.state).drawing(self.reader, |s| s.read(self.inode, self.generation, offset, buf))
    }

    fn len(&self) -> io::Result<u64> {
        lock(&self.state).drawing(self.reader, |s| {
            s.begin(0, "len", At::Inode(self.inode))?;
            Ok(s.inode_at(self.inode, self.generation)?.current.len() as u64)
        })
    }
}

#[derive(Debug)]
pub struct SimLock {
    state: Arc<Mutex<Medium>>,
    path: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if s.generation == self.generation {
            s.locks.remove(&self.path);
        }
    }
}

impl SimDisk {
    pub fn new(seed: u64, options: SimDiskOptions, time: SimTime) -> Self {
        let rng = |label| crate::rng::SimRng::stream(seed, label);
        Self::with_rngs(rng("disk"), rng("reads"), options, time)
    }

    /// A disk whose faults and their details are drawn from `rng`, those
    /// of readers' reads from `reads`.
    pub fn with_rngs(
        rng: crate::rng::SimRng,
        reads: crate::rng::SimRng,
        options: SimDiskOptions,
        time: SimTime,
    ) -> Self {
        Self { state: Arc::new(Mutex::new(Medium::new(rng, reads, options, time))) }
    }

    /// How many draws the disk's two choice streams recorded so far.
    pub fn rng_record_lens(&self) -> (usize, usize) {
        let s = self.state();
        (s.rng.record_len(), s.reads_rng.record_len())
    }

    /// What the disk's choice stream drew, if it records.
    pub fn take_rng_records(&self) -> (Vec<crate::rng::Choice>, Vec<crate::rng::Choice>) {
        let mut s = self.state();
        (s.rng.take_record(), s.reads_rng.take_record())
    }

    fn state(&self) -> MutexGuard<'_, Medium> {
        lock(&self.state)
    }

    /// An independent copy of this disk as it is now, with faults off: what
    /// happens to one never touches the other.
    pub fn fork(&self) -> SimDisk {
        let mut copy = self.state().clone();
        copy.rng = copy.rng.detached();
        copy.reads_rng = copy.reads_rng.detached();
        copy.faults_on = false;
        copy.planned.clear();
        // Another machine's copy: no process holds its locks.
        copy.locks.clear();
        copy.time = SimTime::default();
        SimDisk { state: Arc::new(Mutex::new(copy)) }
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

    /// The lossy damage still on the medium.
    pub fn damage(&self) -> Vec<Damage> {
        self.state().damage.clone()
    }

    /// How much damage was ever recorded: a mark for [`Self::damage_since`].
    pub fn damage_mark(&self) -> usize {
        self.state().damage_log.len()
    }

    /// Every damage recorded since `mark`, healed since or not.
    pub fn damage_since(&self, mark: usize) -> Vec<Damage> {
        self.state().damage_log.get(mark..).map_or_else(Vec::new, <[Damage]>::to_vec)
    }

    /// The operation, and the file it worked on, at which the power was
    /// lost (until the crash that follows).
    pub fn power_lost_at(&self) -> Option<(&'static str, Option<PathBuf>)> {
        self.state().power_lost_at.clone()
    }

    /// How many fault marks were ever recorded: a mark for
    /// [`Self::effects_since`].
    pub fn effects_mark(&self) -> usize {
        self.state().effects.len()
    }

    /// Where every fault since `mark` left its mark (lossy damage, torn and
    /// dropped writes, lost names), healed since or not.
    pub fn effects_since(&self, mark: usize) -> Vec<Damage> {
        self.state().effects.get(mark..).map_or_else(Vec::new, <[Damage]>::to_vec)
    }

    /// Writes a lying fsync acknowledged that are still pending (a crash
    /// may yet lose them): (inode, range).
    pub fn tainted(&self) -> Vec<(u64, std::ops::Range<u64>)> {
        let s = self.state();
        let mut out = Vec::new();
        for (&inode, i) in &s.inodes {
            for p in i.pending.iter().filter(|p| p.tainted) {
                if let medium::Op::Write { offset, data } = &p.op {
                    out.push((inode, *offset..offset + data.len() as u64));
                }
            }
        }
        out
    }

    /// Every name visible in `dir`, with the inode it reaches.
    pub fn names_in(&self, dir: &Path) -> Vec<(String, u64)> {
        let s = self.state();
        s.dirs.get(dir).map_or_else(Vec::new, |d| d.visible.iter().map(|(n, &i)| (n.clone(), i)).collect())
    }

    /// Takes the writes issued since the last call.
    pub fn take_writes(&self) -> Vec<WriteRecord> {
        std::mem::take(&mut self.state().writes)
    }

    /// Cuts the power now: every later operation fails until `crash()`.
    pub fn power_off(&self) {
        self.state().powered = false;
    }

    /// Applies crash semantics (see the model above) and powers back on.
    pub fn crash(&self) {
        self.state().crash();
    }

    /// The inode a visible name reaches.
    pub fn inode_of(&self, path: &Path) -> Option<u64> {
        let s = self.state();
        let (dir, name) = split(path);
        s.dirs.get(&dir)?.visible.get(&name).copied()
    }

    /// Every visible path that reaches `inode`.
    pub fn paths_of(&self, inode: u64) -> Vec<PathBuf> {
        let s = self.state();
        let mut paths = Vec::new();
        for (dir, d) in &s.dirs {
            paths.extend(d.visible.iter().filter(|(_, &i)| i == inode).map(|(n, _)| dir.join(n)));
        }
        paths
    }

    /// The durable bytes of `inode`, if it is still there (shared, not
    /// copied: see [`Bytes`]).
    pub fn durable_of(&self, inode: u64) -> Option<Bytes> {
        self.state().inodes.get(&inode).map(|i| i.durable.clone())
    }

    /// The current length of `inode` (as reads see it), if it is there.
    pub fn len_of(&self, inode: u64) -> Option<u64> {
        self.state().inodes.get(&inode).map(|i| i.current.len() as u64)
    }

    /// The durable bytes of one file, if a durable name reaches it.
    pub fn durable_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state();
        let (dir, name) = split(path);
        let inode = s.dirs.get(&dir)?.durable.get(&name)?;
        s.inodes.get(inode).map(|i| i.durable.to_vec())
    }

    /// Every file a durable name reaches, by path, with its inode.
    pub fn durable_files(&self) -> Vec<(PathBuf, u64)> {
        let s = self.state();
        let mut files = Vec::new();
        for (dir, d) in &s.dirs {
            files.extend(d.durable.iter().filter(|(_, i)| s.inodes.contains_key(i)).map(|(n, &i)| (dir.join(n), i)));
        }
        files
    }

    /// Calls `f` with the durable bytes of `inode`, without copying them.
    pub fn with_durable<R>(&self, inode: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.state().inodes.get(&inode).map(|i| f(&i.durable))
    }

    /// A mark of the durable bytes as they are now, for
    /// [`Self::durable_changed_since`].
    pub fn durable_mark(&self) -> u64 {
        self.state().durable_changes
    }

    /// The lowest offset of `inode`'s durable bytes that changed since
    /// `mark` (an append changes them from the old end on); `None` if none
    /// did. Incremental readers of the durable image re-read from there.
    pub fn durable_changed_since(&self, inode: u64, mark: u64) -> Option<u64> {
        self.state().changed_since(inode, mark)
    }

    /// What would survive a crash right now if every pending operation were
    /// lost: every file a durable name reaches, with its durable bytes.
    pub fn durable_image(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let s = self.state();
        let mut image = BTreeMap::new();
        for (dir, d) in &s.dirs {
            for (name, inode) in &d.durable {
                if let Some(i) = s.inodes.get(inode) {
                    image.insert(dir.join(name), i.durable.to_vec());
                }
            }
        }
        image
    }
}

/// Opening files to read: for the store's writer and recovery, or for its
/// readers (`reader`: faults drawn from the disk's stream for readers).
struct SimReads {
    state: Arc<Mutex<Medium>>,
    reader: bool,
}

impl SimReads {
    fn open(&self, path: &Path) -> io::Result<SimReadFile> {
        lock(&self.state).drawing(self.reader, |s| {
            s.begin(0, "open", At::Path(path))?;
            let (dir, name) = split(path);
            let visible = s.dir_mut(&dir)?.visible.get(&name).copied();
            let id = visible.ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
            Ok(SimReadFile { state: self.state.clone(), inode: id, generation: s.generation, reader: self.reader })
        })
    }
}

impl OpenRead for SimReads {
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(self.open(path)?))
    }
}

impl Disk for SimDisk {
    type File = SimFile;
    type ReadFile = SimReadFile;
    type Lock = SimLock;

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        self.state().create_dir_all(path)
    }

    fn lock(&mut self, path: &Path) -> io::Result<SimLock> {
        let mut s = self.state();
        s.begin(0, "lock", At::Path(path))?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(SimLock { state: self.state.clone(), path: path.to_owned(), generation: s.generation })
    }

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        let latency = s.options.write_latency_ns;
        s.begin(latency, "create", At::Path(path))?;
        if s.used() >= s.options.capacity && s.fault(1.0, FaultClass::DiskFull) {
            return Err(err(io::ErrorKind::StorageFull, "disk full"));
        }
        let (dir, name) = split(path);
        let existing = s.dir_mut(&dir)?.visible.get(&name).copied();
        let generation = s.generation;
        let inode = match existing {
            Some(id) => {
                s.cache_len(id, generation, 0)?;
                id
            }
            None => {
                let id = s.next_inode;
                s.next_inode += 1;
                s.inodes.insert(id, medium::Inode::default());
                s.dir_mut(&dir)?.visible.insert(name.clone(), id);
                id
            }
        };
        Ok(SimFile { inode, generation, name })
    }

    fn open(&mut self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        s.begin(0, "open", At::Path(path))?;
        let (dir, name) = split(path);
        let id =
            s.dir_mut(&dir)?.visible.get(&name).copied().ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))?;
        Ok(SimFile { inode: id, generation: s.generation, name })
    }

    fn open_read(&mut self, path: &Path) -> io::Result<SimReadFile> {
        SimReads { state: self.state.clone(), reader: false }.open(path)
    }

    fn reads(&mut self) -> Arc<dyn OpenRead> {
        Arc::new(SimReads { state: self.state.clone(), reader: true })
    }

    fn write_at(&mut self, file: &mut SimFile, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        let path = s
            .dirs
            .iter()
            .find_map(|(dir, d)| d.visible.iter().find(|(_, &i)| i == file.inode).map(|(n, _)| dir.join(n)))
            .unwrap_or_else(|| PathBuf::from(&file.name));
        s.write(file.inode, file.generation, path, offset, data)
    }

    fn len(&mut self, file: &mut SimFile) -> io::Result<u64> {
        let mut s = self.state();
        s.begin(0, "len", At::Inode(file.inode))?;
        Ok(s.inode_at(file.inode, file.generation)?.current.len() as u64)
    }

    fn set_len(&mut self, file: &mut SimFile, len: u64) -> io::Result<()> {
        self.state().set_len(file.inode, file.generation, len)
    }

    fn sync(&mut self, file: &mut SimFile) -> io::Result<()> {
        let mut s = self.state();
        let latency = s.options.sync_latency_ns;
        s.begin(latency, "sync", At::Inode(file.inode))?;
        s.inode_at(file.inode, file.generation)?;
        let result = s.sync_file(file.inode, &file.name);
        if result.is_ok() {
            *s.syncs_by_name.entry(file.name.clone()).or_default() += 1;
        }
        result
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.state().sync_dir(dir)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.begin(0, "rename", At::Path(from))?;
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
        s.begin(0, "remove", At::Path(path))?;
        let (dir, name) = split(path);
        s.dir_mut(&dir)?.visible.remove(&name).map(|_| ()).ok_or_else(|| err(io::ErrorKind::NotFound, "no such file"))
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state();
        s.begin(0, "list", At::Path(dir))?;
        let d = s.dir_mut(dir)?;
        let mut names: Vec<String> = d.visible.keys().chain(d.visible_dirs.iter()).cloned().collect();
        names.sort();
        Ok(names)
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        let mut s = self.state();
        s.begin(0, "exists", At::Path(path))?;
        if s.dirs.contains_key(path) {
            return Ok(true);
        }
        let (dir, name) = split(path);
        Ok(s.dirs.get(&dir).is_some_and(|d| d.visible.contains_key(&name)))
    }
}
