//! The index checkpoint: open reads it and only the journal after it, and
//! the index it builds is the one a full scan builds (same fingerprint),
//! whatever became of the checkpoint since it was written: one that is
//! missing, damaged, of another store, older than the journal or covering
//! more than is left of it is passed over or used only as far as it
//! matches, and the result is the same. A checkpoint trusted past a journal
//! that no longer matches it, or one that left a table out, fails here.

mod common;

use std::path::Path;

use common::{coord, event, segments};
use shale_store::journal::checkpoint::INDEX_NAME;
use shale_store::{Batch, Cause, CheckpointUse, Core, Encryption, NewEvent, Options, RealEnv, Store};

fn options() -> Options {
    Options { segment_size: 4096, ..Options::default() }
}

fn encrypted() -> Options {
    Options { encryption: Encryption::PerEntity { master_key: None }, ..options() }
}

/// Appends `rounds` of varied work: batches with causes inside and
/// across them, explicit correlations, idempotency keys, many entities and
/// kinds; with `shred`, a shred every so often.
fn work(store: &Store, rounds: std::ops::Range<u32>, shred: bool) {
    let mut last = None;
    for i in rounds {
        let entity = format!("e{}", i % 13);
        let mut first = event(&entity, &format!("k{}", i % 3), format!("payload-{i}").as_bytes());
        if let Some(id) = last.filter(|_| i % 4 == 1) {
            first = first.caused_by(Cause::Event(id));
        }
        let second = NewEvent::new(coord(&format!("f{}", i % 5)), "follow", vec![i as u8; (i % 50) as usize])
            .caused_by(Cause::Item(0));
        let mut batch = Batch::new(vec![first, second]);
        if i % 3 == 0 {
            batch = batch.with_idempotency_key(&format!("key-{i}"));
        }
        if let Some(id) = last.filter(|_| i % 5 == 2) {
            batch.items[1] = batch.items[1].clone().correlated_with(id);
        }
        let receipts = store.append_batch(batch).unwrap();
        last = Some(receipts[0].id);
        if shred && i % 17 == 16 {
            store.shred(&format!("e{}", i % 13)).unwrap();
        }
    }
}

/// The fingerprint of the store in `dir` opened by a full scan, and what
/// it holds.
fn scanned(dir: &Path, options: &Options) -> ([u8; 32], u64) {
    let store = Store::open(dir, Options { full_scan: true, ..options.clone() }).unwrap();
    assert_eq!(store.recovery_report().checkpoint, CheckpointUse::None, "a full scan uses no checkpoint");
    let seen = (store.reader().index_fingerprint(), store.reader().read_from(1, 100_000).unwrap().len() as u64);
    drop(store);
    seen
}

/// Opens `dir` and checks it against a full scan of a copy: the same
/// index. Returns how open used the checkpoint.
fn open_matches_scan(dir: &Path, options: &Options) -> CheckpointUse {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let store = Store::open(dir, options.clone()).unwrap();
    let used = store.recovery_report().checkpoint.clone();
    let fingerprint = store.reader().index_fingerprint();
    let events = store.reader().read_from(1, 100_000).unwrap().len() as u64;
    assert_eq!(store.reader().verify_chains(), Ok(()));
    drop(store);
    assert_eq!(scanned(copy.path(), options), (fingerprint, events), "open ({used:?}) equals a full scan");
    used
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn a_clean_close_lets_open_read_the_checkpoint_and_nothing_else() {
    for (options, shred) in [(options(), false), (encrypted(), true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), options.clone()).unwrap();
        work(&store, 0..300, shred);
        let events = store.reader().read_from(1, 100_000).unwrap().len() as u64;
        store.close().unwrap();
        assert!(segments(dir.path()).len() > 10);
        assert_eq!(open_matches_scan(dir.path(), &options), CheckpointUse::Used { events });
        // The store reopened from it appends and reopens as ever.
        let store = Store::open(dir.path(), options.clone()).unwrap();
        work(&store, 300..320, shred);
        store.close().unwrap();
        assert_eq!(open_matches_scan(dir.path(), &options), CheckpointUse::Used { events: events + 40 });
    }
}

#[test]
fn after_a_crash_open_reads_the_last_checkpoint_and_the_journal_after_it() {
    for options in [options(), encrypted()] {
        let dir = tempfile::tempdir().unwrap();
        let every = Options { checkpoint_every: 2, ..options.clone() };
        let (mut core, _) = Core::open(RealEnv::default(), dir.path(), &every).unwrap();
        for i in 0..400u32 {
            let batch = Batch::new(vec![event(&format!("e{}", i % 7), "tick", format!("p{i}").as_bytes())]);
            core.commit(&[batch]).pop().unwrap().unwrap();
        }
        // A crash: no close, no checkpoint of the end.
        drop(core);
        match open_matches_scan(dir.path(), &options) {
            CheckpointUse::Used { events } => assert!(events > 100 && events < 400, "covered {events}"),
            other => panic!("the periodic checkpoint was not used: {other:?}"),
        }
    }
}

#[test]
fn a_damaged_foreign_or_missing_checkpoint_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 0..100, false);
    store.close().unwrap();
    let index = dir.path().join(INDEX_NAME);
    let clean = std::fs::read(&index).unwrap();
    let mut passed = 0;
    for at in [0, 20, 70, 130, clean.len() / 2, clean.len() - 1] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x04;
        std::fs::write(&index, &bytes).unwrap();
        let used = open_matches_scan(dir.path(), &options());
        assert!(matches!(used, CheckpointUse::Passed(_)), "byte {at} flipped: {used:?}");
        passed += 1;
        // The open wrote nothing, and the close wrote a checkpoint again.
        assert_eq!(std::fs::read(&index).unwrap(), clean);
    }
    assert_eq!(passed, 6);
    // Short, and arbitrary bytes: passed over, never a panic.
    for len in [0, 10, 127, 128, 129, clean.len() - 4] {
        std::fs::write(&index, &clean[..len]).unwrap();
        assert!(matches!(open_matches_scan(dir.path(), &options()), CheckpointUse::Passed(_)), "{len} bytes");
    }
    // Another store's checkpoint.
    let other = tempfile::tempdir().unwrap();
    let store = Store::open(other.path(), options()).unwrap();
    work(&store, 0..100, false);
    store.close().unwrap();
    std::fs::copy(other.path().join(INDEX_NAME), &index).unwrap();
    assert!(matches!(open_matches_scan(dir.path(), &options()), CheckpointUse::Passed(_)));
    // None at all.
    std::fs::remove_file(&index).unwrap();
    assert_eq!(open_matches_scan(dir.path(), &options()), CheckpointUse::None);
}

#[test]
fn an_older_checkpoint_is_used_as_far_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 0..100, false);
    store.close().unwrap();
    let index = dir.path().join(INDEX_NAME);
    let old = std::fs::read(&index).unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 100..200, false);
    store.close().unwrap();
    std::fs::write(&index, &old).unwrap();
    assert_eq!(open_matches_scan(dir.path(), &options()), CheckpointUse::Used { events: 200 });
}

#[test]
fn a_checkpoint_past_what_is_left_of_the_journal_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 0..100, false);
    store.close().unwrap();
    // The last segment loses its last bytes (a torn write the checkpoint
    // never saw, as a lying disk would leave it).
    let last = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 30).unwrap();
    drop(file);
    assert!(matches!(open_matches_scan(dir.path(), &options()), CheckpointUse::Passed(_)));
    // The last segment gone, then the one before rewritten by other groups.
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 100..130, false);
    store.close().unwrap();
    let index = dir.path().join(INDEX_NAME);
    let covering = std::fs::read(&index).unwrap();
    let files = segments(dir.path());
    std::fs::remove_file(files.last().unwrap()).unwrap();
    assert!(matches!(open_matches_scan(dir.path(), &options()), CheckpointUse::Passed(_)));
    let store = Store::open(Path::new(dir.path()), Options { salvage: true, ..options() }).unwrap();
    assert_eq!(store.recovery_report().checkpoint, CheckpointUse::None, "salvage never uses one");
    work(&store, 130..135, false);
    drop(store);
    std::fs::write(&index, &covering).unwrap();
    assert!(matches!(open_matches_scan(dir.path(), &options()), CheckpointUse::Passed(_)));
}

#[test]
fn a_session_that_writes_nothing_leaves_the_checkpoint_as_it_was() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 0..50, false);
    store.close().unwrap();
    let index = dir.path().join(INDEX_NAME);
    let inode = std::fs::metadata(&index).unwrap().ino();
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.reader().read_from(1, 1_000).unwrap().len(), 100);
    store.close().unwrap();
    assert_eq!(std::fs::metadata(&index).unwrap().ino(), inode, "a read-only session publishes nothing");
    let store = Store::open(dir.path(), options()).unwrap();
    work(&store, 50..51, false);
    store.close().unwrap();
    assert_ne!(std::fs::metadata(&index).unwrap().ino(), inode, "one that wrote publishes a new one");
    assert_eq!(open_matches_scan(dir.path(), &options()), CheckpointUse::Used { events: 102 });
}

#[test]
fn a_checkpoint_whose_checksums_hold_over_wrong_bytes_never_panics_nor_returns_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    work(&store, 0..60, true);
    let expected: Vec<_> = store.reader().read_from(1, 1_000).unwrap();
    store.close().unwrap();
    let index = dir.path().join(INDEX_NAME);
    let clean = std::fs::read(&index).unwrap();
    // Bytes 128.. up to the last 4 are the body its last CRC covers.
    let body = 128..clean.len() - 4;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut used, mut passed) = (0, 0);
    for round in 0..300 {
        let mut bytes = clean.clone();
        for _ in 0..(round % 3 + 1) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = body.start + (seed as usize) % body.len();
            bytes[at] ^= 1 << ((seed >> 40) % 8);
        }
        let crc = crc32c::crc32c(&bytes[body.clone()]);
        let end = bytes.len();
        bytes[end - 4..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&index, &bytes).unwrap();
        let store = Store::open(dir.path(), encrypted()).unwrap();
        match store.recovery_report().checkpoint {
            CheckpointUse::Used { .. } => used += 1,
            _ => passed += 1,
        }
        // Whatever it made of the image: every event reads as it was
        // written, or as a typed error, never as other data (every frame
        // is checked against the journal). What the image says of keys is
        // not checked against the journal's key records: a wrong image may
        // mark an event's key shredded or lost (no payload), as a tampered
        // keyset could; it never yields another payload.
        for (global, want) in expected.iter().enumerate() {
            match store.reader().read_from(global as u64 + 1, 1) {
                Ok(got) => {
                    let got = got.first().unwrap_or_else(|| panic!("round {round}: event {} missing", global + 1));
                    let withheld = (got.shredded || got.key_lost) && got.payload.is_empty();
                    assert!(got.payload == want.payload || withheld, "round {round}: event {}", global + 1);
                    assert_eq!((got.id, &got.coordinate, got.hash), (want.id, &want.coordinate, want.hash));
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        shale_store::ReadError::Damaged { .. }
                            | shale_store::ReadError::Integrity { .. }
                            | shale_store::ReadError::Io { .. }
                    ),
                    "round {round}: {e}"
                ),
            }
        }
        drop(store);
        std::fs::write(&index, &clean).unwrap();
    }
    assert!(passed > 0, "{used} used, {passed} passed over");
}
