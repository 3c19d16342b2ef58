//! A damaged META is a typed error that changes nothing; salvage rebuilds
//! it from what the rest of the store repeats (the store id in every
//! segment header, the encryption setting in the keyset), sets the damaged
//! one aside and opens with every event intact. A store that stayed
//! unopenable forever, or rebuilt META with the wrong encryption setting,
//! fails here.

mod common;

use common::{event, snapshot};
use shale_store::{Encryption, MasterKey, OpenError, Options, Store};

#[test]
fn a_damaged_meta_is_refused_then_rebuilt_by_salvage() {
    let sealed = Encryption::PerEntity { master_key: Some(MasterKey::from_bytes([4; 32])) };
    for encryption in [Encryption::Off, Encryption::PerEntity { master_key: None }, sealed] {
        let options = Options { encryption, ..Options::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), options.clone()).unwrap();
        for i in 0..5 {
            store.append(event("a", "tick", format!("{i}").as_bytes())).unwrap();
        }
        store.close().unwrap();
        let meta = dir.path().join("META");
        let mut bytes = std::fs::read(&meta).unwrap();
        bytes[14] ^= 0xff;
        std::fs::write(&meta, &bytes).unwrap();

        let before = snapshot(dir.path());
        assert!(matches!(Store::open(dir.path(), options.clone()), Err(OpenError::Format { .. })));
        assert_eq!(snapshot(dir.path()), before, "the refused open changed nothing");

        let store = Store::open(dir.path(), Options { salvage: true, ..options.clone() }).unwrap();
        let report = store.recovery_report();
        assert!(report.meta_rebuilt.is_some(), "{report:?}");
        assert_eq!(report.set_aside.len(), 1);
        assert_eq!(std::fs::read(&report.set_aside[0].to).unwrap(), bytes, "the damaged META is kept aside");
        let payloads: Vec<Vec<u8>> = store.read_from(1, 10).unwrap().iter().map(|e| e.payload.to_vec()).collect();
        assert_eq!(payloads, (0..5).map(|i| format!("{i}").into_bytes()).collect::<Vec<_>>());
        store.close().unwrap();
        assert_eq!(Store::open(dir.path(), options).unwrap().version("a"), 5, "it opens normally afterwards");
    }
}

/// With META and every segment header damaged, salvage takes the store id
/// from the keyset, but only from a copy whose checksum holds: a flipped
/// bit in one copy's header must not name the rebuilt META (the other,
/// whole copy would then belong to "another store" and the store would
/// never open again). Salvage sets the whole journal aside here, yet leaves
/// a segment 0 behind, so the store opens normally afterwards.
#[test]
fn a_rebuilt_meta_never_takes_its_id_from_a_damaged_keyset_copy() {
    let options = Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options.clone()).unwrap();
    store.append(event("a", "tick", b"0")).unwrap();
    store.close().unwrap();
    let meta = dir.path().join("META");
    let mut bytes = std::fs::read(&meta).unwrap();
    bytes[14] ^= 0xff;
    std::fs::write(&meta, &bytes).unwrap();
    for segment in common::segments(dir.path()) {
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[21] ^= 0x08; // the store id in the header: its checksum fails
        std::fs::write(&segment, &bytes).unwrap();
    }
    let keys = dir.path().join("KEYS");
    let mut bytes = std::fs::read(&keys).unwrap();
    bytes[17] ^= 0x08; // the store id in KEYS's header: its checksum fails
    std::fs::write(&keys, &bytes).unwrap();
    let copy_id = u64::from_le_bytes(std::fs::read(dir.path().join("KEYS.copy")).unwrap()[16..24].try_into().unwrap());

    let store = Store::open(dir.path(), Options { salvage: true, ..options.clone() }).unwrap();
    let why = store.recovery_report().meta_rebuilt.clone();
    assert!(why.as_deref().is_some_and(|why| why.contains("keyset")), "{why:?}");
    store.close().unwrap();
    let meta = std::fs::read(&meta).unwrap();
    assert_eq!(u64::from_le_bytes(meta[12..20].try_into().unwrap()), copy_id, "META names the whole copy's store");
    Store::open(dir.path(), options).unwrap();
}

/// A segment header naming another store over frames this store wrote (the
/// header of an aborted creation, brought back by a lost write) is the
/// stale one, not META: the events' own-id correlations carry META's store
/// tag. Salvage keeps META and sets the segment aside (reported), instead
/// of rebuilding META around the stale header, which would give every
/// event another store's id.
#[test]
fn a_stale_segment_header_does_not_rebuild_meta_around_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for i in 0..5 {
        store.append(event("a", "tick", format!("{i}").as_bytes())).unwrap();
    }
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    Store::open(other.path(), Options::default()).unwrap().close().unwrap();
    let segment = dir.path().join("seg-0000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let foreign = std::fs::read(other.path().join("seg-0000000000000000.log")).unwrap();
    bytes[..64].copy_from_slice(&foreign[..64]);
    std::fs::write(&segment, &bytes).unwrap();
    let meta_before = std::fs::read(dir.path().join("META")).unwrap();

    let before = snapshot(dir.path());
    assert!(matches!(Store::open(dir.path(), Options::default()), Err(OpenError::Mismatch { .. })));
    assert_eq!(snapshot(dir.path()), before, "the refused open changed nothing");

    let store = Store::open(dir.path(), Options { salvage: true, ..Options::default() }).unwrap();
    let report = store.recovery_report().clone();
    assert!(report.meta_rebuilt.is_none(), "META was right: {report:?}");
    assert_eq!(std::fs::read(dir.path().join("META")).unwrap(), meta_before);
    assert!(report.lost_anything(), "{report:?}");
    let aside = report.set_aside.iter().find(|a| a.from == segment).expect("segment 0 set aside");
    assert_eq!(std::fs::read(&aside.to).unwrap(), bytes, "set aside whole");
    assert_eq!(store.read_from(1, 10).unwrap().len(), 0);
    store.append(event("a", "tick", b"after")).unwrap();
    store.close().unwrap();
    assert_eq!(Store::open(dir.path(), Options::default()).unwrap().version("a"), 1, "it opens normally afterwards");
}
