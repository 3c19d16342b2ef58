//! Open never writes before it understands the directory: a store is
//! created only where nothing could be data, and a directory that is not a
//! store, lacks its META, mixes files of two stores or holds an older
//! format is refused with a typed error and left byte for byte as it was.
//! A store that recreated a missing META (losing every key) or salvaged a
//! foreign store's segments away would fail here; salvage sets aside only
//! what the rest of the store contradicts.

mod common;

use std::path::Path;

use common::faulty::FaultyEnv;
use common::{event, segments, snapshot};
use shale_store::{Encryption, OpenError, Options, Store};

fn encrypted() -> Options {
    Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() }
}

fn store_with_events(dir: &Path, options: Options) {
    let store = Store::open(dir, options).unwrap();
    for i in 0..5 {
        store.append(event("a", "tick", format!("{i}").as_bytes())).unwrap();
    }
    store.close().unwrap();
}

/// Two encrypted stores with events, in their own directories.
fn two_encrypted_stores() -> (tempfile::TempDir, tempfile::TempDir) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    store_with_events(a.path(), encrypted());
    store_with_events(b.path(), encrypted());
    (a, b)
}

/// Opens `dir` with and without salvage; each must fail as `check` says
/// and leave every file as it was.
fn refused_untouched(dir: &Path, options: Options, check: impl Fn(&OpenError) -> bool) {
    refused(dir, options, &[false, true], check)
}

/// Opens `dir` with the given salvage settings; each must fail as `check`
/// says and leave every file as it was.
fn refused(dir: &Path, options: Options, salvage: &[bool], check: impl Fn(&OpenError) -> bool) {
    let before = snapshot(dir);
    for &salvage in salvage {
        match Store::open(dir, Options { salvage, ..options.clone() }) {
            Err(e) => assert!(check(&e), "salvage {salvage}: unexpected error {e}"),
            Ok(_) => panic!("salvage {salvage}: opened"),
        }
        assert_eq!(snapshot(dir), before, "salvage {salvage}: the refused open changed files");
    }
}

#[test]
fn a_missing_meta_is_refused_untouched_and_salvage_rebuilds_it() {
    for options in [Options::default(), encrypted()] {
        let dir = tempfile::tempdir().unwrap();
        store_with_events(dir.path(), options.clone());
        std::fs::remove_file(dir.path().join("META")).unwrap();
        refused(dir.path(), options.clone(), &[false], |e| matches!(e, OpenError::NotAStore { .. }));
        let store = Store::open(dir.path(), Options { salvage: true, ..options.clone() }).unwrap();
        assert!(store.recovery_report().meta_rebuilt.is_some());
        assert_eq!(store.version("a"), 5, "nothing lost");
        store.close().unwrap();
        assert_eq!(Store::open(dir.path(), options).unwrap().version("a"), 5);
    }
}

#[test]
fn salvage_sets_aside_a_creation_that_never_named_a_store_and_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    // Segment 0 with no valid header and more than a header's bytes: what a
    // misdirected header write in a creation that never finished leaves.
    std::fs::write(dir.path().join("seg-0000000000000000.log"), vec![0u8; 1088]).unwrap();
    refused(dir.path(), Options::default(), &[false], |e| matches!(e, OpenError::NotAStore { .. }));
    let store = Store::open(dir.path(), Options { salvage: true, ..Options::default() }).unwrap();
    let aside = &store.recovery_report().set_aside;
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0].to).unwrap(), vec![0u8; 1088], "set aside, not deleted");
    store.append(event("a", "first", b"x")).unwrap();
}

#[test]
fn a_directory_of_other_files_is_refused_without_a_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    refused_untouched(dir.path(), Options::default(), |e| matches!(e, OpenError::NotAStore { .. }));
    assert!(!dir.path().join("LOCK").exists());
}

#[test]
fn meta_or_a_keyset_of_another_store_is_a_mismatch() {
    let (a, b) = two_encrypted_stores();
    std::fs::copy(b.path().join("META"), a.path().join("META")).unwrap();
    let foreign = std::fs::read(a.path().join("META")).unwrap();
    refused(a.path(), encrypted(), &[false], |e| matches!(e, OpenError::Mismatch { .. }));
    // The segments and the keyset agree on the store: salvage sets the
    // foreign META aside and rebuilds it from them, losing nothing.
    let store = Store::open(a.path(), Options { salvage: true, ..encrypted() }).unwrap();
    assert!(store.recovery_report().meta_rebuilt.is_some());
    let aside = store.recovery_report().set_aside.iter().find(|s| s.from == a.path().join("META")).unwrap().to.clone();
    assert_eq!(std::fs::read(aside).unwrap(), foreign, "the foreign META is kept as it was");
    assert_eq!(store.version("a"), 5, "nothing lost");
    store.close().unwrap();
    assert_eq!(Store::open(a.path(), encrypted()).unwrap().version("a"), 5);

    // Both keyset copies of another store, while META and the segments
    // agree: refused untouched; salvage sets both copies aside as they are
    // (they cannot open this store's key records, which are bound to its
    // id), starts a fresh keyset and reports the keys lost. Every event
    // stays, its payload marked lost with its key.
    let (a, b) = two_encrypted_stores();
    for name in ["KEYS", "KEYS.copy"] {
        std::fs::copy(b.path().join(name), a.path().join(name)).unwrap();
    }
    let foreign = std::fs::read(a.path().join("KEYS")).unwrap();
    refused(a.path(), encrypted(), &[false], |e| matches!(e, OpenError::Mismatch { .. }));
    let store = Store::open(a.path(), Options { salvage: true, ..encrypted() }).unwrap();
    let report = store.recovery_report().clone();
    for name in ["KEYS", "KEYS.copy"] {
        let aside = report.set_aside.iter().find(|s| s.from == a.path().join(name)).expect("set aside");
        assert_eq!(std::fs::read(&aside.to).unwrap(), foreign, "{name} is kept as it was");
    }
    assert_eq!(report.keys_lost, [("a".to_owned(), 1)], "{report:?}");
    let events = store.read_from(1, 10).unwrap();
    assert_eq!(events.len(), 5, "every event stays");
    assert!(events.iter().all(|e| e.key_lost && e.payload.is_empty()));
    store.close().unwrap();
    assert_eq!(Store::open(a.path(), encrypted()).unwrap().version("a"), 5, "it opens normally afterwards");
}

#[test]
fn one_keyset_copy_of_another_store_is_set_aside_by_salvage_only() {
    let (a, b) = two_encrypted_stores();
    std::fs::copy(b.path().join("KEYS"), a.path().join("KEYS")).unwrap();
    let foreign = std::fs::read(a.path().join("KEYS")).unwrap();
    refused(a.path(), encrypted(), &[false], |e| matches!(e, OpenError::Mismatch { .. }));
    let store = Store::open(a.path(), Options { salvage: true, ..encrypted() }).unwrap();
    let report = store.recovery_report();
    let aside = report.set_aside.iter().find(|s| s.from == a.path().join("KEYS")).expect("KEYS set aside");
    assert_eq!(std::fs::read(&aside.to).unwrap(), foreign, "the foreign copy is kept as it was");
    assert_eq!(store.version("a"), 5, "nothing lost");
    let events = store.read_from(1, 10).unwrap();
    assert!(events.iter().all(|e| !e.key_lost && !e.shredded && !e.payload.is_empty()), "every payload opens");
    store.close().unwrap();
    let store = Store::open(a.path(), encrypted()).unwrap();
    assert_eq!(store.version("a"), 5);
    assert_ne!(std::fs::read(a.path().join("KEYS")).unwrap(), foreign, "KEYS is this store's again");
}

#[test]
fn an_older_format_is_refused_never_misread() {
    // Version 3 chained hashes in BLAKE3; version 2 begin records are 4
    // bytes shorter (no `follows`); version 1 had no epochs. Each is
    // refused, naming the version it found.
    for old in [1u32, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        store_with_events(dir.path(), Options::default());
        let segment = segments(dir.path()).remove(0);
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[8..12].copy_from_slice(&old.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&segment, bytes).unwrap();
        let named = format!("version {old}");
        refused_untouched(
            dir.path(),
            Options::default(),
            |e| matches!(e, OpenError::Format { reason, .. } if reason.contains(&named)),
        );
    }
}

#[test]
fn an_interrupted_creation_is_completed() {
    // What a creation leaves when it stops before META: an empty keyset
    // and a segment 0 with only its header.
    let source = tempfile::tempdir().unwrap();
    Store::open(source.path(), encrypted()).unwrap().close().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["KEYS", "seg-0000000000000000.log"] {
        std::fs::copy(source.path().join(name), dir.path().join(name)).unwrap();
    }
    let store = Store::open(dir.path(), encrypted()).unwrap();
    store.append(event("a", "first", b"x")).unwrap();
    store.close().unwrap();
    assert_eq!(Store::open(dir.path(), encrypted()).unwrap().version("a"), 1);
}

#[test]
fn a_keyset_and_meta_that_are_only_read_open_fine() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path(), encrypted());
    let (env, faults) = FaultyEnv::new();
    faults.lock().unwrap().read_only = vec!["KEYS".into(), "META".into()];
    let store = Store::open_in(env, dir.path(), encrypted()).unwrap();
    assert_eq!(store.version("a"), 5);
    store.close().unwrap();
    let written = faults.lock().unwrap().opened_for_writing.clone();
    assert!(!written.iter().any(|p| p.ends_with("KEYS") || p.ends_with("META")), "opened for writing: {written:?}");
}
