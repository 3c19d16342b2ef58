//! `FileDisk` with faults on demand, for tests on the real file system:
//! failed syncs (the write still reaches the OS, as with a real failed
//! fsync), sticky unreadable byte ranges (a latent sector error), files that
//! refuse to open for writing, and syncs skipped altogether (to build big
//! stores fast; never for a test of durability).

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shale_store::disk::{OpenRead, ReadAt};
use shale_store::{Disk, Env, FileDisk, OsEntropy, SystemClock};

#[derive(Default)]
pub struct Faults {
    pub fail_syncs: u32,
    pub fail_dir_syncs: u32,
    /// Reads of these bytes of files whose name ends so fail, every time.
    pub unreadable: Vec<(String, Range<u64>)>,
    /// Files whose name ends so cannot be opened for writing.
    pub read_only: Vec<String>,
    pub skip_syncs: bool,
    /// A sync panics (a stand-in for a bug below the shell).
    pub panic_on_sync: bool,
    /// Paths opened for writing, in order.
    pub opened_for_writing: Vec<PathBuf>,
}

pub type Shared = Arc<Mutex<Faults>>;

pub struct FaultyDisk {
    inner: FileDisk,
    faults: Shared,
}

pub struct FaultyFile {
    inner: std::fs::File,
    path: PathBuf,
    faults: Shared,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what}"))
}

fn ends(path: &Path, suffix: &str) -> bool {
    path.to_string_lossy().ends_with(suffix)
}

impl ReadAt for FaultyFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let end = offset + buf.len() as u64;
        let faults = self.faults.lock().unwrap();
        if faults.unreadable.iter().any(|(s, r)| ends(&self.path, s) && r.start < end && offset < r.end) {
            return Err(injected("latent sector error"));
        }
        drop(faults);
        self.inner.read_at(offset, buf)
    }
    fn len(&self) -> io::Result<u64> {
        ReadAt::len(&self.inner)
    }
}

/// Readers' opening of files, through the same faults.
struct FaultyReads(Shared);

impl FaultyReads {
    fn open(&self, p: &Path) -> io::Result<FaultyFile> {
        Ok(FaultyFile { inner: std::fs::File::open(p)?, path: p.to_owned(), faults: self.0.clone() })
    }
}

impl OpenRead for FaultyReads {
    fn open_read(&self, p: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(self.open(p)?))
    }
}

impl Disk for FaultyDisk {
    type File = std::fs::File;
    type ReadFile = FaultyFile;
    type Lock = std::fs::File;
    fn create_dir_all(&mut self, p: &Path) -> io::Result<()> {
        self.inner.create_dir_all(p)
    }
    fn lock(&mut self, p: &Path) -> io::Result<std::fs::File> {
        self.inner.lock(p)
    }
    fn create(&mut self, p: &Path) -> io::Result<std::fs::File> {
        self.faults.lock().unwrap().opened_for_writing.push(p.to_owned());
        self.inner.create(p)
    }
    fn open(&mut self, p: &Path) -> io::Result<std::fs::File> {
        let mut faults = self.faults.lock().unwrap();
        if faults.read_only.iter().any(|s| ends(p, s)) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "injected: read-only file"));
        }
        faults.opened_for_writing.push(p.to_owned());
        self.inner.open(p)
    }
    fn open_read(&mut self, p: &Path) -> io::Result<FaultyFile> {
        FaultyReads(self.faults.clone()).open(p)
    }
    fn reads(&mut self) -> Arc<dyn OpenRead> {
        Arc::new(FaultyReads(self.faults.clone()))
    }
    fn write_at(&mut self, f: &mut std::fs::File, o: u64, d: &[u8]) -> io::Result<()> {
        self.inner.write_at(f, o, d)
    }
    fn len(&mut self, f: &mut std::fs::File) -> io::Result<u64> {
        self.inner.len(f)
    }
    fn set_len(&mut self, f: &mut std::fs::File, l: u64) -> io::Result<()> {
        self.inner.set_len(f, l)
    }
    fn sync(&mut self, f: &mut std::fs::File) -> io::Result<()> {
        let mut faults = self.faults.lock().unwrap();
        if faults.panic_on_sync {
            drop(faults);
            panic!("injected panic in sync");
        }
        if faults.fail_syncs > 0 {
            faults.fail_syncs -= 1;
            return Err(injected("fsync failure"));
        }
        if faults.skip_syncs {
            return Ok(());
        }
        self.inner.sync(f)
    }
    fn sync_dir(&mut self, d: &Path) -> io::Result<()> {
        let mut faults = self.faults.lock().unwrap();
        if faults.fail_dir_syncs > 0 {
            faults.fail_dir_syncs -= 1;
            return Err(injected("directory fsync failure"));
        }
        if faults.skip_syncs {
            return Ok(());
        }
        self.inner.sync_dir(d)
    }
    fn rename(&mut self, a: &Path, b: &Path) -> io::Result<()> {
        self.inner.rename(a, b)
    }
    fn remove(&mut self, p: &Path) -> io::Result<()> {
        self.inner.remove(p)
    }
    fn list(&mut self, d: &Path) -> io::Result<Vec<String>> {
        self.inner.list(d)
    }
    fn exists(&mut self, p: &Path) -> io::Result<bool> {
        self.inner.exists(p)
    }
}

pub struct FaultyEnv {
    disk: FaultyDisk,
    clock: SystemClock,
    entropy: OsEntropy,
}

impl FaultyEnv {
    pub fn new() -> (Self, Shared) {
        let faults = Shared::default();
        let env = Self {
            disk: FaultyDisk { inner: FileDisk, faults: faults.clone() },
            clock: SystemClock,
            entropy: OsEntropy,
        };
        (env, faults)
    }

    pub fn with(faults: &Shared) -> Self {
        Self { disk: FaultyDisk { inner: FileDisk, faults: faults.clone() }, clock: SystemClock, entropy: OsEntropy }
    }
}

impl Env for FaultyEnv {
    type Disk = FaultyDisk;
    type Clock = SystemClock;
    type Entropy = OsEntropy;
    fn disk(&mut self) -> &mut FaultyDisk {
        &mut self.disk
    }
    fn clock(&mut self) -> &mut SystemClock {
        &mut self.clock
    }
    fn entropy(&mut self) -> &mut OsEntropy {
        &mut self.entropy
    }
}
