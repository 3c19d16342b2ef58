//! A range of a segment that cannot be read however often it is tried (a
//! latent sector error) is reported as a typed error; salvage keeps the
//! readable valid prefix, copies the rest aside (zeros where unreadable,
//! each such range reported), sets later segments aside and opens. A store
//! that stayed unopenable forever, or that salvaged by dropping the range
//! silently, fails here.

mod common;

use common::faulty::{FaultyEnv, Shared};
use common::{event, segments, small_segments, snapshot};
use shale_store::{OpenError, Options, Store};

fn write_store(dir: &std::path::Path, appends: u32) {
    let store = Store::open(dir, small_segments()).unwrap();
    for i in 0..appends {
        store.append(event("a", "tick", format!("payload-{i:04}").as_bytes())).unwrap();
    }
    store.close().unwrap();
}

/// Opens reading the whole journal (a checkpoint would let open skip the
/// unreadable range; the reads that meet it then report it).
fn open(dir: &std::path::Path, faults: &Shared, salvage: bool) -> Result<Store<FaultyEnv>, OpenError> {
    Store::open_in(FaultyEnv::with(faults), dir, Options { salvage, full_scan: true, ..small_segments() })
}

#[test]
fn an_unreadable_range_is_refused_then_salvaged_and_the_store_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 200);
    let files = segments(dir.path());
    assert!(files.len() >= 4, "{} segments", files.len());
    let damaged = files[1].clone();
    let name = damaged.file_name().unwrap().to_string_lossy().into_owned();
    let (_, faults) = FaultyEnv::new();
    faults.lock().unwrap().unreadable = vec![(name.clone(), 1_500..1_600)];

    let before = snapshot(dir.path());
    match open(dir.path(), &faults, false) {
        Err(OpenError::Unreadable { file, offset, .. }) => {
            assert_eq!(file, damaged);
            assert!((1_024..=1_500).contains(&offset), "narrowed to the granule: {offset}");
        }
        Err(other) => panic!("expected an unreadable range, got {other}"),
        Ok(_) => panic!("opened past an unreadable range"),
    }
    assert_eq!(snapshot(dir.path()), before, "the refused open changed nothing");

    let store = open(dir.path(), &faults, true).unwrap();
    let report = store.recovery_report().clone();
    assert!(report.lost_anything());
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].0, damaged);
    assert!(report.unreadable[0].1.contains(&1_500) && report.unreadable[0].1.contains(&1_599));
    assert_eq!(report.set_aside.len(), files.len() - 1, "the damaged rest plus every later segment");
    let aside = &report.set_aside[0];
    let copy_bytes = std::fs::read(&aside.to).unwrap();
    assert_eq!(copy_bytes.len() as u64, aside.len);
    let original = &before[&damaged];
    let cut = aside.offset as usize;
    assert_eq!(cut + copy_bytes.len(), original.len(), "the rest of the segment, from the cut");
    for (i, (&kept, &was)) in copy_bytes.iter().zip(&original[cut..]).enumerate() {
        let at = (cut + i) as u64;
        if !report.unreadable[0].1.contains(&at) {
            assert_eq!(kept, was, "byte {at} set aside as it was");
        }
    }
    let kept = store.version("a");
    assert!(kept > 0 && kept < 200);
    for (i, e) in store.read_from(1, 1_000).unwrap().iter().enumerate() {
        assert_eq!(&*e.payload, format!("payload-{i:04}").as_bytes(), "the prefix is intact");
    }
    store.append(event("a", "after", b"x")).unwrap();
    store.close().unwrap();
    faults.lock().unwrap().unreadable.clear();
    let store = Store::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.version("a"), kept + 1, "a salvaged store opens normally afterwards");
}

#[test]
fn an_unreadable_header_sets_the_whole_segment_aside() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 200);
    let files = segments(dir.path());
    let last = files.last().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let (_, faults) = FaultyEnv::new();
    faults.lock().unwrap().unreadable = vec![(last, 0..10)];
    assert!(matches!(open(dir.path(), &faults, false), Err(OpenError::Unreadable { offset: 0, .. })));
    let store = open(dir.path(), &faults, true).unwrap();
    let report = store.recovery_report();
    assert_eq!(report.set_aside.len(), 1);
    assert_eq!(&report.set_aside[0].from, files.last().unwrap());
    assert!(store.version("a") < 200);
    store.append(event("a", "after", b"x")).unwrap();
}

#[test]
fn an_unreadable_granule_before_the_cut_costs_the_copy_no_readable_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 200);
    let files = segments(dir.path());
    let damaged = files[1].clone();
    let name = damaged.file_name().unwrap().to_string_lossy().into_owned();
    let (_, faults) = FaultyEnv::new();
    // A bad byte at 100: the cut lands right after the header, inside the
    // bad granule (0..512), and every byte from 512 on is readable.
    faults.lock().unwrap().unreadable = vec![(name, 100..101)];
    let original = std::fs::read(&damaged).unwrap();
    let store = open(dir.path(), &faults, true).unwrap();
    let report = store.recovery_report().clone();
    let aside = &report.set_aside[0];
    assert_eq!(aside.offset, 64, "the cut is inside the bad granule");
    let copy = std::fs::read(&aside.to).unwrap();
    assert_eq!(&copy[512 - 64..], &original[512..], "every readable byte after the bad granule is kept");
    assert_eq!(report.unreadable[0].1, 64..512);
}
