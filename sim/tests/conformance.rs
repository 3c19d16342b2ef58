//! One suite, two disks: the same test bodies (append, batch, crash-free
//! reopen, lock file) run against the real FileDisk and against SimDisk,
//! through the same threaded Store. If SimDisk behaved unlike a file
//! system where the store relies on it, or the store relied on something
//! only one of them does, a body would pass on one and fail on the other.

use std::path::PathBuf;

use shale_sim::disk::{SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_store::{AppendError, Batch, Coordinate, Env, NewEvent, OpenError, Options, RealEnv, Region, Store};

/// Somewhere a store can live, and a way to make its environment.
trait World {
    type E: Env;
    fn env(&mut self) -> Self::E;
    fn dir(&self) -> PathBuf;

    fn open(&mut self) -> Result<Store<Self::E>, OpenError> {
        let env = self.env();
        Store::open_in(env, self.dir(), Options { segment_size: 8192, ..Options::default() })
    }
}

struct Files(tempfile::TempDir);

impl World for Files {
    type E = RealEnv;
    fn env(&mut self) -> RealEnv {
        RealEnv::default()
    }
    fn dir(&self) -> PathBuf {
        self.0.path().join("store")
    }
}

struct Simulated {
    disk: SimDisk,
    time: SimTime,
    opens: u32,
}

impl World for Simulated {
    type E = SimEnv;
    fn env(&mut self) -> SimEnv {
        self.opens += 1;
        SimEnv {
            disk: self.disk.clone(),
            clock: SimClock::new(self.time.clone()),
            entropy: SimEntropy::new(3, &format!("open-{}", self.opens)),
        }
    }
    fn dir(&self) -> PathBuf {
        PathBuf::from("/data/store")
    }
}

fn event(entity: &str, kind: &str) -> NewEvent {
    NewEvent::new(Coordinate::new(entity, "main").unwrap(), kind, kind.as_bytes().to_vec())
}

fn append_and_read_back<W: World>(mut w: W) {
    let store = w.open().unwrap();
    let r = store.append(event("a", "one")).unwrap();
    assert_eq!((r.global_seq, r.entity_seq), (1, 1));
    let got = store.get(r.id).unwrap().unwrap();
    assert_eq!(&*got.payload, b"one");
    assert_eq!(store.query(&Region::entity("a")).unwrap().len(), 1);
}

fn batches_are_all_or_nothing<W: World>(mut w: W) {
    let store = w.open().unwrap();
    store.append(event("a", "one")).unwrap();
    let refused = store.append_batch(Batch::new(vec![event("b", "x"), event("a", "y").expect_version(0)]));
    assert!(matches!(refused, Err(AppendError::VersionConflict { .. })));
    assert_eq!(store.version("b"), 0);
    let receipts = store.append_batch(Batch::new(vec![event("b", "x"), event("a", "y").expect_version(1)])).unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(store.read_from(1, 10).unwrap().len(), 3);
}

fn reopen_recovers_everything<W: World>(mut w: W) {
    let store = w.open().unwrap();
    for i in 0..200u32 {
        let batch = Batch::new(vec![event(&format!("e{}", i % 9), "tick"), event("all", "tick")]);
        store.append_batch(batch.with_idempotency_key(&format!("k{i}"))).unwrap();
    }
    let before = store.read_from(1, 1000).unwrap();
    store.close().unwrap();
    let store = w.open().unwrap();
    assert_eq!(store.read_from(1, 1000).unwrap(), before);
    assert!(store.recovery_report().truncated.is_empty());
    assert!(store.recovery_report().segments > 1, "segments rotated");
    let again = store
        .append_batch(Batch::new(vec![event("e0", "tick"), event("all", "tick")]).with_idempotency_key("k0"))
        .unwrap();
    assert_eq!(again[0].global_seq, 1, "idempotency survived the reopen");
    assert_eq!(store.reader().verify_chains(), Ok(()));
}

fn the_lock_keeps_a_second_store_out<W: World>(mut w: W) {
    let first = w.open().unwrap();
    assert!(matches!(w.open(), Err(OpenError::Locked { .. })));
    first.close().unwrap();
    w.open().unwrap();
}

fn files() -> Files {
    Files(tempfile::tempdir().unwrap())
}

fn simulated() -> Simulated {
    let time = SimTime::default();
    Simulated { disk: SimDisk::new(11, SimDiskOptions::default(), time.clone()), time, opens: 0 }
}

macro_rules! on_both_disks {
    ($($body:ident),* $(,)?) => {
        mod file_disk {
            $( #[test] fn $body() { super::$body(super::files()) } )*
        }
        mod sim_disk {
            $( #[test] fn $body() { super::$body(super::simulated()) } )*
        }
    };
}

on_both_disks!(
    append_and_read_back,
    batches_are_all_or_nothing,
    reopen_recovers_everything,
    the_lock_keeps_a_second_store_out
);
