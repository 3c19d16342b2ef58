//! The durability fence, as in the original project's test: with
//! per-entity encryption, a batch of two events that mints a fresh key,
//! and the first flush after open made to fail. The batch must fail as
//! "outcome unknown" with zero events visible, and the same batch retried
//! over the now-honest disk must commit both events with their key, which
//! the durable image alone then opens (before and after a crash). Minting
//! keys costs no fsync of its own: the key travels wrapped in the flush of
//! the events it seals. A store that wrote frames without their key, forgot
//! the minted key after the failed flush, or published a keyset per mint
//! fails here.

use std::path::Path;

use shale_sim::check::durable_keys::DurableKeys;
use shale_sim::disk::{Planned, SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_store::{AppendError, Batch, Coordinate, Core, Encryption, NewEvent, Options};

const DIR: &str = "/store";

fn options() -> Options {
    Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() }
}

fn open(disk: &SimDisk, time: &SimTime, n: u32) -> Core<SimEnv> {
    let env = SimEnv {
        disk: disk.clone(),
        clock: SimClock::new(time.clone()),
        entropy: SimEntropy::new(5, &format!("open-{n}")),
    };
    Core::open(env, Path::new(DIR), &options()).unwrap().0
}

fn batch() -> Batch {
    let c = Coordinate::new("patient-7", "records").unwrap();
    Batch::new(vec![
        NewEvent::new(c.clone(), "admitted", b"ward 3".to_vec()),
        NewEvent::new(c, "diagnosed", b"flu".to_vec()),
    ])
}

fn durable_keys(disk: &SimDisk, store_id: u64) -> DurableKeys {
    let mut keys = DurableKeys::new(Path::new(DIR), store_id, None);
    keys.refresh(disk, store_id);
    keys
}

/// A store created, closed and reopened; the next flush is the first after
/// this open.
fn reopened() -> (SimDisk, SimTime, Core<SimEnv>) {
    let time = SimTime::default();
    let disk = SimDisk::new(5, SimDiskOptions::default(), time.clone());
    drop(open(&disk, &time, 0));
    let core = open(&disk, &time, 1);
    (disk, time, core)
}

#[test]
fn a_failed_first_flush_fails_the_batch_and_the_retry_commits_with_its_key() {
    let (disk, time, mut core) = reopened();
    disk.plan(Planned::FailSync { file: "seg-".into(), nth: 1 });
    let store_id = core.reader().store_id();
    let failed = core.commit(&[batch()]).remove(0);
    assert!(matches!(failed, Err(AppendError::OutcomeUnknown(_))), "{failed:?}");
    assert_eq!(core.reader().last_global(), 0, "nothing of the failed batch is visible");

    let receipts = core.commit(&[batch()]).remove(0).unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(durable_keys(&disk, store_id).open("patient-7", 1).is_some(), "the key is durable with its events");
    drop(core);
    disk.crash();
    let core = open(&disk, &time, 2);
    let events = core.reader().read_from(1, 10).unwrap();
    assert_eq!(events.iter().map(|e| &*e.payload).collect::<Vec<_>>(), [&b"ward 3"[..], &b"flu"[..]]);
}

#[test]
fn the_honest_twin_commits_at_once() {
    let (disk, _time, mut core) = reopened();
    let store_id = core.reader().store_id();
    core.commit(&[batch()]).remove(0).unwrap();
    let keys = durable_keys(&disk, store_id);
    assert!(keys.open("patient-7", 1).is_some());
    assert_eq!(keys.records().count(), 1, "one key for the entity, minted once for the batch");
}

#[test]
fn new_keys_cost_no_fsync_of_their_own() {
    let (disk, _time, mut core) = reopened();
    let keys_syncs = disk.syncs_of("KEYS.tmp") + disk.syncs_of("KEYS.copy.tmp");
    let journal = || disk.syncs_of("seg-0000000000000000.log") + disk.syncs_of("seg-0000000000000000.log.tmp");
    let journal_syncs = journal();
    let batches: Vec<Batch> = (0..6)
        .map(|i| Batch::from(NewEvent::new(Coordinate::new(&format!("p{i}"), "r").unwrap(), "k", b"x".to_vec())))
        .collect();
    for result in core.commit(&batches) {
        result.unwrap();
    }
    assert_eq!(disk.syncs_of("KEYS.tmp") + disk.syncs_of("KEYS.copy.tmp"), keys_syncs, "no keyset publish");
    assert_eq!(journal(), journal_syncs + 1, "one fsync for the whole commit");
    let keys = durable_keys(&disk, core.reader().store_id());
    let opened = keys.records().filter(|r| keys.open(&r.entity, r.generation).is_some()).count();
    assert_eq!(opened, 6);
}

/// The durable key reader is incremental; what it knows must be what a
/// fresh read of the same image knows, also after the durable bytes of a
/// segment shrink below what it had parsed.
#[test]
fn the_incremental_key_reader_agrees_with_a_fresh_one() {
    use shale_store::Disk;
    let (disk, _time, mut core) = reopened();
    let store_id = core.reader().store_id();
    let mut incremental = DurableKeys::new(Path::new(DIR), store_id, None);
    let summary = |keys: &DurableKeys| {
        let mut all: Vec<(String, u32, bool)> = keys
            .records()
            .map(|r| (r.entity.clone(), r.generation, keys.open(&r.entity, r.generation).is_some()))
            .collect();
        all.sort();
        all
    };
    let mut lens = Vec::new();
    for i in 0..4 {
        let c = Coordinate::new(&format!("p{i}"), "r").unwrap();
        core.commit(&[Batch::from(NewEvent::new(c, "k", b"x".to_vec()))]).remove(0).unwrap();
        incremental.refresh(&disk, store_id);
        assert_eq!(summary(&incremental), summary(&durable_keys(&disk, store_id)));
        let segment = Path::new(DIR).join("seg-0000000000000000.log");
        lens.push(disk.durable_file(&segment).unwrap().len() as u64);
    }
    assert_eq!(summary(&incremental).len(), 4);
    drop(core);
    // Cut the segment back to where it ended after the second commit.
    let mut raw = disk.clone();
    let segment = Path::new(DIR).join("seg-0000000000000000.log");
    let mut file = raw.open(&segment).unwrap();
    raw.set_len(&mut file, lens[1]).unwrap();
    raw.sync(&mut file).unwrap();
    incremental.refresh(&disk, store_id);
    assert_eq!(summary(&incremental).len(), 2, "{:?}", summary(&incremental));
    assert_eq!(summary(&incremental), summary(&durable_keys(&disk, store_id)));
}

/// An entity key written in the clear to any durable file is found.
#[test]
fn a_key_in_the_clear_is_found_wherever_it_lands() {
    use shale_store::Disk;
    let (disk, _time, mut core) = reopened();
    let store_id = core.reader().store_id();
    core.commit(&[batch()]).remove(0).unwrap();
    let mut keys = DurableKeys::new(Path::new(DIR), store_id, None);
    keys.refresh(&disk, store_id);
    assert!(keys.clear().is_empty());
    let key = *keys.open("patient-7", 1).unwrap().expose_secret();
    let mut raw = disk.clone();
    let leak = Path::new(DIR).join("salvage/notes");
    raw.create_dir_all(leak.parent().unwrap()).unwrap();
    raw.sync_dir(Path::new(DIR)).unwrap();
    let mut file = raw.create(&leak).unwrap();
    let mut bytes = b"some bytes before it ".to_vec();
    bytes.extend_from_slice(&key);
    raw.write_at(&mut file, 0, &bytes).unwrap();
    raw.sync(&mut file).unwrap();
    raw.sync_dir(leak.parent().unwrap()).unwrap();
    keys.refresh(&disk, store_id);
    let found = keys.clear();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].entity.as_str(), found[0].generation, found[0].offset), ("patient-7", 1, 21));
}
