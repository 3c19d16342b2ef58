//! A flush whose fsync failed leaves its bytes in doubt: the writer cuts
//! them from the page cache, but they may have reached the medium. When
//! the store is opened again in the same boot (the page cache still there)
//! before anything else is written, the reopen reads the cut segment and
//! reports the batch gone; a power loss afterwards must not bring it back.
//!
//! Two roads lead there. A clean close starts the next segment, whose
//! header records where the durable bytes end, as the next commit would
//! have (`Core::close`); that holds even if the cut itself never reaches
//! the medium. A process that stops without closing leaves the cut in the
//! page cache, and the next open makes the segment it appends to durable
//! as it read it.

use std::path::Path;

use shale_sim::disk::{Planned, SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_store::{AppendError, Batch, Coordinate, Core, NewEvent, Options};

const DIR: &str = "/store";
const SEGMENT: &str = "seg-0000000000000000.log";

fn batch(kind: &str) -> Batch {
    Batch::from(NewEvent::new(Coordinate::new("a", "main").unwrap(), kind, kind.as_bytes().to_vec()))
}

/// How a run fails its second flush and leaves the store.
#[derive(Clone, Copy)]
enum Road {
    /// Every fsync fails while the second flush is written (its cut too),
    /// then the store is closed.
    Closed,
    /// The flush's fsync fails and the cut's fsync lies, then the process
    /// stops without closing.
    Stopped,
}

/// For one disk seed: how many events a reopen in the same boot found
/// after the failed flush, how many the open after a power loss found, and
/// whether the failed flush's bytes had reached the medium.
fn run(seed: u64, road: Road) -> (u64, u64, bool) {
    let time = SimTime::default();
    let fail = match road {
        Road::Closed => 1.0,
        Road::Stopped => 0.0,
    };
    let options = SimDiskOptions { fsync_fail: fail, crash_persist: 0.0, crash_torn: 0.0, ..SimDiskOptions::default() };
    let disk = SimDisk::new(seed, options, time.clone());
    disk.set_faults(false);
    let mut opens = 0;
    let mut open = || {
        opens += 1;
        let entropy = SimEntropy::new(seed, &format!("{opens}"));
        let env = SimEnv { disk: disk.clone(), clock: SimClock::new(time.clone()), entropy };
        Core::open(env, Path::new(DIR), &Options::default()).unwrap().0
    };
    let mut core = open();
    core.commit(&[batch("one")]).remove(0).unwrap();
    let segment = Path::new(DIR).join(SEGMENT);
    let before = disk.durable_image()[&segment].len();
    if let Road::Stopped = road {
        // Counted from now: the flush's fsync, then the cut's.
        disk.plan(Planned::FailSync { file: SEGMENT.into(), nth: 1 });
        disk.plan(Planned::LieSync { file: SEGMENT.into(), nth: 2 });
    }
    disk.set_faults(true);
    let failed = core.commit(&[batch("two")]).remove(0);
    disk.set_faults(false);
    assert!(matches!(failed, Err(AppendError::OutcomeUnknown(_))), "{failed:?}");
    let written_back = disk.durable_image()[&segment].len() > before;
    match road {
        Road::Closed => core.close().unwrap(),
        Road::Stopped => {}
    }
    drop(core);
    let seen = open().reader().last_global();
    disk.crash();
    let after = open().reader().last_global();
    (seen, after, written_back)
}

fn stays_gone(road: Road) {
    let mut written_back = 0;
    for seed in 1..=32 {
        let (seen, after, back) = run(seed, road);
        assert_eq!(seen, 1, "seed {seed}: the reopen reads the cut segment");
        assert_eq!(after, seen, "seed {seed}: a power loss brought back a batch the reopen reported gone");
        written_back += u32::from(back);
    }
    assert!(written_back > 0, "no seed wrote the failed flush back to the medium: the test shows nothing");
}

#[test]
fn after_a_close_a_batch_a_reopen_reported_gone_stays_gone() {
    stays_gone(Road::Closed);
}

#[test]
fn after_a_stop_without_close_a_batch_a_reopen_reported_gone_stays_gone() {
    stays_gone(Road::Stopped);
}
