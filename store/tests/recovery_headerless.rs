//! A segment file by its real name always had a durable header (segments
//! are started under a temporary name and renamed), so a last segment cut
//! below its header size or with a damaged header is damage: refused, or
//! set aside by salvage and reported, never removed as "being created".
//! A recovery that deleted such a segment would open an empty store here,
//! with every acknowledged event gone and no error.

mod common;

use common::{event, segments, small_segments, snapshot};
use shale_store::{OpenError, Options, Store};

fn store_with_segments(dir: &std::path::Path, groups: u32, options: Options) {
    let store = Store::open(dir, options).unwrap();
    for i in 0..groups {
        store.append(event("a", "tick", format!("payload-{i:04}").as_bytes())).unwrap();
    }
    store.close().unwrap();
}

#[test]
fn a_single_segment_cut_below_its_header_is_refused_then_salvaged_and_reported() {
    for damage in [|b: &mut Vec<u8>| b.truncate(30), |b: &mut Vec<u8>| b[..64].fill(0)] {
        let dir = tempfile::tempdir().unwrap();
        store_with_segments(dir.path(), 10, Options::default());
        let segment = segments(dir.path()).remove(0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let original_len = bytes.len() as u64;
        damage(&mut bytes);
        std::fs::write(&segment, &bytes).unwrap();
        let before = snapshot(dir.path());
        assert!(matches!(Store::open(dir.path(), Options::default()), Err(OpenError::Corrupt(_))));
        assert_eq!(snapshot(dir.path()), before, "the refused open changed nothing");

        let store = Store::open(dir.path(), Options { salvage: true, ..Options::default() }).unwrap();
        let report = store.recovery_report().clone();
        assert!(report.lost_anything());
        assert!(report.corruption.is_some());
        assert_eq!(report.set_aside.len(), 1, "{report:?}");
        let aside = &report.set_aside[0];
        assert_eq!((&aside.from, aside.offset), (&segment, 0));
        assert_eq!(std::fs::read(&aside.to).unwrap(), bytes, "set aside whole and readable");
        assert!(aside.len <= original_len);
        store.append(event("a", "after", b"x")).unwrap();
        store.close().unwrap();
        assert_eq!(Store::open(dir.path(), Options::default()).unwrap().version("a"), 1);
    }
}

#[test]
fn a_short_last_segment_after_others_is_damage_too() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 200, small_segments());
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    let last = files.last().unwrap();
    std::fs::write(last, &std::fs::read(last).unwrap()[..20]).unwrap();
    assert!(matches!(Store::open(dir.path(), small_segments()), Err(OpenError::Corrupt(_))));
    let store = Store::open(dir.path(), Options { salvage: true, ..small_segments() }).unwrap();
    assert!(store.recovery_report().lost_anything());
    assert!(store.version("a") < 200);
}

#[test]
fn a_leftover_temporary_segment_is_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    store_with_segments(dir.path(), 3, Options::default());
    let leftover = dir.path().join("seg-0000000000000001.log.tmp");
    std::fs::write(&leftover, [0u8; 40]).unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.recovery_report().removed, vec![leftover.clone()]);
    assert!(!store.recovery_report().lost_anything(), "a temporary segment never holds data");
    assert!(!leftover.exists());
    assert_eq!(store.version("a"), 3);
}
