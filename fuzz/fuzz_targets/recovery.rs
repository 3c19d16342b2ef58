//! Recovery of a damaged journal: the store writes a real segment (batches,
//! causes, an idempotency key), then the fuzzer's bytes damage it —
//! truncation, overwritten bytes, appended junk — and the store reopens.
//! Opening must give a store or a typed error, never a panic; an opened
//! store's hash chains must verify and every event must read back.
#![no_main]

use std::path::Path;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use shale_sim::disk::{SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_store::{Batch, Cause, Coordinate, Core, Disk, NewEvent, Options};

const SEGMENT: &str = "/store/seg-0000000000000000.log";

fn env(disk: &SimDisk, time: &SimTime) -> SimEnv {
    SimEnv { disk: disk.clone(), clock: SimClock::new(time.clone()), entropy: SimEntropy::new(1, "fuzz") }
}

fn event(entity: &str, payload: &[u8]) -> NewEvent {
    NewEvent::new(Coordinate::new(entity, "main").unwrap(), "k", payload.to_vec())
}

/// A store with a few groups of every shape; returns its segment bytes.
fn write_store(disk: &SimDisk, time: &SimTime, options: &Options) -> Vec<u8> {
    let (mut core, _) = Core::open(env(disk, time), Path::new("/store"), options).unwrap();
    core.commit(&[Batch::from(event("a", b"one"))]).remove(0).unwrap();
    core.commit(&[
        Batch::new(vec![event("b", b"two"), event("a", b"three").caused_by(Cause::Item(0))]),
        Batch::from(event("c", b"four")).with_idempotency_key("k1"),
    ]);
    core.commit(&[Batch::from(event("a", b"five"))]).remove(0).unwrap();
    drop(core);
    disk.durable_file(Path::new(SEGMENT)).unwrap()
}

fuzz_target!(|bytes: &[u8]| {
    let time = SimTime::default();
    let disk = SimDisk::new(1, SimDiskOptions::default(), time.clone());
    let options = Options { segment_size: 1 << 20, ..Options::default() };
    let mut segment = write_store(&disk, &time, &options);
    let mut u = Unstructured::new(bytes);
    let Ok(cut) = u.int_in_range(0..=segment.len()) else { return };
    segment.truncate(cut);
    let edits: u8 = u.arbitrary().unwrap_or(0);
    for _ in 0..edits % 16 {
        let (Ok(at), Ok(value)) = (u.arbitrary::<u16>(), u.arbitrary::<u8>()) else { break };
        if let Some(byte) = segment.get_mut(usize::from(at)) {
            *byte = value;
        }
    }
    segment.extend_from_slice(u.take_rest());
    let mut d = disk.clone();
    let mut file = d.create(Path::new(SEGMENT)).unwrap();
    d.write_at(&mut file, 0, &segment).unwrap();
    d.sync(&mut file).unwrap();
    for salvage in [false, true] {
        let options = Options { salvage, ..options.clone() };
        if let Ok((core, _)) = Core::open(env(&disk, &time), Path::new("/store"), &options) {
            let reader = core.reader();
            assert_eq!(reader.verify_chains(), Ok(()), "an opened store verifies");
            reader.read_from(1, 100_000).expect("every recovered event reads back");
        }
    }
});
