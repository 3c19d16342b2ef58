//! Corruption before the last committed group is a typed error, never
//! skipped and never returned as data; salvage mode opens the valid prefix
//! and moves the rest aside. A recovery that silently dropped a damaged
//! group with acknowledged groups after it fails here.

mod common;

use common::{event, segments, small_segments};
use shale_store::{OpenError, Options, ReadError, Store};

/// These tests are of the scan: open reads the whole journal, passing
/// over the checkpoint the last close wrote (`checkpoint.rs` tests that).
fn scanning(options: Options) -> Options {
    Options { full_scan: true, ..options }
}

fn store_with_groups(dir: &std::path::Path, options: Options, groups: u32) {
    let store = Store::open(dir, options).unwrap();
    for i in 0..groups {
        store.append(event("a", "tick", format!("payload-{i:04}").as_bytes())).unwrap();
    }
    store.close().unwrap();
}

fn flip(path: &std::path::Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_bad_crc_in_the_middle_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), Options::default(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len() as usize;
    flip(&segment, len / 2);
    match Store::open(dir.path(), scanning(Options::default())) {
        Err(OpenError::Corrupt(c)) => {
            assert_eq!(c.file, segment);
            assert!(c.offset as usize <= len / 2);
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("opened a corrupt store"),
    }
    // Nothing was changed by the refused open.
    assert_eq!(std::fs::metadata(&segment).unwrap().len() as usize, len);
}

#[test]
fn salvage_keeps_the_valid_prefix_and_sets_the_rest_aside() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), Options::default(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len() as usize;
    flip(&segment, len / 2);
    let store = Store::open(dir.path(), Options { salvage: true, ..Options::default() }).unwrap();
    let kept = store.version("a");
    assert!(kept > 0 && kept < 20, "kept {kept} of 20");
    let report = store.recovery_report().clone();
    assert!(report.corruption.is_some());
    assert_eq!(report.set_aside.len(), 1);
    let aside = &report.set_aside[0];
    assert!(std::fs::metadata(&aside.to).unwrap().len() == aside.len && aside.len > 0, "moved aside, not deleted");
    let events = store.read_from(1, 100).unwrap();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(&*e.payload, format!("payload-{i:04}").as_bytes(), "salvage returns only intact data");
    }
    store.append(event("a", "after", b"x")).unwrap();
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.version("a"), kept + 1, "a salvaged store opens normally afterwards");
}

#[test]
fn damage_to_an_earlier_segment_is_refused_or_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), small_segments(), 300);
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    flip(&files[1], 200);
    assert!(matches!(Store::open(dir.path(), scanning(small_segments())), Err(OpenError::Corrupt(_))));
    let store = Store::open(dir.path(), Options { salvage: true, ..small_segments() }).unwrap();
    let report = store.recovery_report();
    assert_eq!(report.set_aside.len(), files.len() - 1, "the damaged tail plus every later segment");
    assert!(store.version("a") < 300);
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), small_segments(), 300);
    let files = segments(dir.path());
    std::fs::remove_file(&files[1]).unwrap();
    assert!(matches!(Store::open(dir.path(), small_segments()), Err(OpenError::Corrupt(_))));
}

#[test]
fn a_shortened_earlier_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), small_segments(), 300);
    let files = segments(dir.path());
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(Store::open(dir.path(), small_segments()), Err(OpenError::Corrupt(_))));
}

#[test]
fn arbitrary_garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    store_with_groups(dir.path(), Options::default(), 5);
    let segment = segments(dir.path()).pop().unwrap();
    let clean = std::fs::read(&segment).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..300 {
        let mut bytes = clean.clone();
        for _ in 0..(round % 7 + 1) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % bytes.len();
            bytes[at] = (seed >> 32) as u8;
        }
        std::fs::write(&segment, &bytes).unwrap();
        // Any outcome but a panic is acceptable; a store opened by a full
        // scan must still verify. One opened from its checkpoint (which
        // covers the damaged bytes) reports the damage when it reads them.
        if let Ok(store) = Store::open(dir.path(), scanning(Options::default())) {
            assert_eq!(store.reader().verify_chains(), Ok(()), "round {round}");
        }
        if let Ok(store) = Store::open(dir.path(), Options::default()) {
            let verified = store.reader().verify_chains();
            assert!(matches!(verified, Ok(()) | Err(ReadError::Damaged { .. })), "round {round}: {verified:?}");
        }
    }
}
