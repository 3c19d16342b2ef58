//! The durability fence, as in the original project's test: with
//! per-entity encryption, a batch of two events that mints a fresh key,
//! and the first keyset publish after open made to fail. The batch must
//! fail closed — a typed I/O error, zero events visible, no keyset holding
//! its key published — and the same batch retried over the now-honest disk
//! must re-fence and commit both events with the keyset durable. The honest
//! twin commits at once. A store that wrote frames before the keyset, or
//! forgot the minted key after the failed publish, fails here.

use std::path::Path;

use shale_sim::disk::{Planned, SimDisk, SimDiskOptions, SimTime};
use shale_sim::env::{SimClock, SimEntropy, SimEnv};
use shale_store::keyset::{KeyStatus, Keyset, KEYS_NAME};
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

fn durable_keyset(disk: &SimDisk, store_id: u64) -> Keyset {
    let bytes = disk.durable_file(&Path::new(DIR).join(KEYS_NAME)).expect("a durable keyset");
    Keyset::decode(&bytes, store_id, None).unwrap()
}

/// A store created, closed and reopened; the next keyset publish is the
/// first after this open.
fn reopened() -> (SimDisk, SimTime, Core<SimEnv>) {
    let time = SimTime::default();
    let disk = SimDisk::new(5, SimDiskOptions::default(), time.clone());
    drop(open(&disk, &time, 0));
    let core = open(&disk, &time, 1);
    (disk, time, core)
}

#[test]
fn a_failed_first_publish_fails_the_batch_closed_and_the_retry_commits() {
    let (disk, _time, mut core) = reopened();
    disk.plan(Planned::FailSync { file: "KEYS.tmp".into(), nth: 1 });
    let store_id = core.reader().store_id();

    let failed = core.commit(&[batch()]).remove(0);
    assert!(matches!(failed, Err(AppendError::Unavailable(_))), "a typed I/O error: {failed:?}");
    assert_eq!(core.reader().last_global(), 0, "zero events visible");
    assert_eq!(
        durable_keyset(&disk, store_id).status("patient-7", 1),
        KeyStatus::Missing,
        "no keyset with the key published"
    );
    assert!(disk.durable_file(&Path::new(DIR).join("KEYS.tmp")).is_none(), "no half-written keyset left durable");
    let segment = disk
        .durable_image()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("seg-"))
        .map(|(_, b)| b.len())
        .sum::<usize>();
    assert_eq!(segment, 64, "no frame of the batch was written");

    let receipts = core.commit(&[batch()]).remove(0).unwrap();
    assert_eq!(receipts.len(), 2);
    let keyset = durable_keyset(&disk, store_id);
    assert!(matches!(keyset.status("patient-7", 1), KeyStatus::Live(_)), "the retry re-fenced: the key is durable");
    let events = core.reader().read_from(1, 10).unwrap();
    assert_eq!(events.iter().map(|e| &*e.payload).collect::<Vec<_>>(), vec![&b"ward 3"[..], &b"flu"[..]]);

    // And it all survives a crash that loses everything unsynced.
    drop(core);
    disk.crash();
    let core = open(&disk, &SimTime::default(), 2);
    assert_eq!(core.reader().read_from(1, 10).unwrap().len(), 2);
}

#[test]
fn the_honest_twin_commits_and_publishes_the_keyset() {
    let (disk, _time, mut core) = reopened();
    let store_id = core.reader().store_id();
    let receipts = core.commit(&[batch()]).remove(0).unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(matches!(durable_keyset(&disk, store_id).status("patient-7", 1), KeyStatus::Live(_)));
    assert_eq!(durable_keyset(&disk, store_id).len(), 1, "one key for the entity, minted once for the batch");
}

#[test]
fn a_group_commit_publishes_the_keyset_once_for_all_its_new_keys() {
    let (disk, _time, mut core) = reopened();
    let before = disk.syncs_of("KEYS.tmp");
    let batches: Vec<Batch> = (0..3)
        .map(|b| {
            Batch::new(
                (0..2)
                    .map(|i| NewEvent::new(Coordinate::new(&format!("p{b}-{i}"), "s").unwrap(), "k", b"x".to_vec()))
                    .collect(),
            )
        })
        .collect();
    assert!(core.commit(&batches).iter().all(Result::is_ok));
    assert_eq!(disk.syncs_of("KEYS.tmp") - before, 1, "six new keys, one publish");
    assert_eq!(durable_keyset(&disk, core.reader().store_id()).len(), 6);
    assert!(core.commit(&batches[..1]).iter().all(Result::is_ok));
    assert_eq!(disk.syncs_of("KEYS.tmp") - before, 1, "no new key, no publish");
}
