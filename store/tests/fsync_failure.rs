//! A failed fsync answers its commit as "outcome unknown", never poisons the
//! writer, and never lets a later commit land behind bytes that could not
//! be synced: the writer moves to a fresh segment. A retry with the same
//! idempotency key commits exactly once, also after reopen. A writer that
//! kept appending to the failed segment would recover the failed batch and
//! its retry both, and fail here.

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{event, segments};
use shale_store::{AppendError, Batch, Disk, Env, FileDisk, Options, OsEntropy, Region, Store, SystemClock};

#[derive(Default)]
struct Faults {
    fail_syncs: u32,
    fail_dir_syncs: u32,
}

/// `FileDisk` with syncs that fail on demand (the write itself still
/// reaches the OS, as with a real failed fsync).
struct FlakyDisk {
    inner: FileDisk,
    faults: Arc<Mutex<Faults>>,
}

fn injected() -> io::Error {
    io::Error::other("injected fsync failure")
}

impl Disk for FlakyDisk {
    type File = std::fs::File;
    type Lock = std::fs::File;
    fn create_dir_all(&mut self, p: &Path) -> io::Result<()> {
        self.inner.create_dir_all(p)
    }
    fn lock(&mut self, p: &Path) -> io::Result<std::fs::File> {
        self.inner.lock(p)
    }
    fn create(&mut self, p: &Path) -> io::Result<std::fs::File> {
        self.inner.create(p)
    }
    fn open(&mut self, p: &Path) -> io::Result<std::fs::File> {
        self.inner.open(p)
    }
    fn read_at(&mut self, f: &mut std::fs::File, o: u64, b: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(f, o, b)
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
        if faults.fail_syncs > 0 {
            faults.fail_syncs -= 1;
            return Err(injected());
        }
        self.inner.sync(f)
    }
    fn sync_dir(&mut self, d: &Path) -> io::Result<()> {
        let mut faults = self.faults.lock().unwrap();
        if faults.fail_dir_syncs > 0 {
            faults.fail_dir_syncs -= 1;
            return Err(injected());
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

struct FlakyEnv {
    disk: FlakyDisk,
    clock: SystemClock,
    entropy: OsEntropy,
}

impl Env for FlakyEnv {
    type Disk = FlakyDisk;
    type Clock = SystemClock;
    type Entropy = OsEntropy;
    fn disk(&mut self) -> &mut FlakyDisk {
        &mut self.disk
    }
    fn clock(&mut self) -> &mut SystemClock {
        &mut self.clock
    }
    fn entropy(&mut self) -> &mut OsEntropy {
        &mut self.entropy
    }
}

fn open(dir: &Path) -> (Store<FlakyEnv>, Arc<Mutex<Faults>>) {
    let faults = Arc::new(Mutex::new(Faults::default()));
    let env = FlakyEnv {
        disk: FlakyDisk { inner: FileDisk, faults: faults.clone() },
        clock: SystemClock,
        entropy: OsEntropy,
    };
    (Store::open_in(env, dir, Options::default()).unwrap(), faults)
}

fn kinds(store: &Store<FlakyEnv>) -> Vec<String> {
    store.query(&Region::all()).unwrap().iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn a_failed_fsync_is_outcome_unknown_and_the_retry_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open(dir.path());
    store.append(event("a", "first", b"")).unwrap();
    let retry = || Batch::new(vec![event("a", "second", b""), event("b", "second", b"")]).with_idempotency_key("k2");

    faults.lock().unwrap().fail_syncs = 1;
    assert!(matches!(store.append_batch(retry()), Err(AppendError::OutcomeUnknown(_))));
    assert_eq!(kinds(&store), vec!["first"], "a commit whose fsync failed is not visible");

    // The writer is not poisoned: the next commit moves to a new segment.
    store.append(event("c", "third", b"")).unwrap();
    assert_eq!(segments(dir.path()).len(), 2, "the writer left the segment it could not sync");
    let receipts = store.append_batch(retry()).unwrap();
    assert_eq!(store.append_batch(retry()).unwrap(), receipts);
    assert_eq!(kinds(&store), vec!["first", "third", "second", "second"]);
    store.close().unwrap();

    // The failed attempt's bytes did reach the old segment (only our fsync
    // "failed"); recovery reads that segment only up to the end its
    // successor records, so the batch is there exactly once.
    let (store, _) = open(dir.path());
    assert_eq!(kinds(&store), vec!["first", "third", "second", "second"]);
    assert_eq!(store.reader().verify_chains(), Ok(()));
}

#[test]
fn a_failed_segment_start_is_unavailable_and_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open(dir.path());
    store.append(event("a", "first", b"")).unwrap();
    {
        let mut f = faults.lock().unwrap();
        f.fail_syncs = 1; // the flush
        f.fail_dir_syncs = 1; // the first attempt at a new segment
    }
    assert!(matches!(store.append(event("a", "lost", b"")), Err(AppendError::OutcomeUnknown(_))));
    assert!(matches!(store.append(event("a", "refused", b"")), Err(AppendError::Unavailable(_))));
    store.append(event("a", "second", b"")).unwrap();
    store.close().unwrap();
    let (store, _) = open(dir.path());
    assert_eq!(kinds(&store), vec!["first", "second"]);
}
