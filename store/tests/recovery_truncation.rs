//! Batch atomicity across a crash: truncating the journal at every byte
//! offset of the last group recovers exactly the groups before it, never a
//! part of a group. A recovery that kept a partly written batch, or dropped
//! a whole one before the tear, fails here.

mod common;

use common::{event, segments};
use shale_store::{Batch, Options, Region, Store};

#[test]
fn every_truncation_of_the_last_group_recovers_the_previous_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(event("a", "one", b"first")).unwrap();
    store.append_batch(Batch::new(vec![event("a", "two", b"x"), event("b", "two", b"y")])).unwrap();
    store.close().unwrap();
    let segment = segments(dir.path()).pop().unwrap();
    let before_last = std::fs::metadata(&segment).unwrap().len();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    store
        .append_batch(
            Batch::new(vec![event("a", "three", b"p"), event("c", "three", b"q"), event("b", "three", b"r")])
                .with_idempotency_key("last"),
        )
        .unwrap();
    store.close().unwrap();
    let full = std::fs::read(&segment).unwrap();
    assert!(full.len() as u64 > before_last);

    for cut in before_last..full.len() as u64 {
        std::fs::write(&segment, &full[..cut as usize]).unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let all = store.query(&Region::all()).unwrap();
        assert_eq!(all.len(), 3, "cut at {cut}: only the first two groups survive");
        assert_eq!(store.version("c"), 0, "cut at {cut}: nothing of the torn batch is visible");
        let report = store.recovery_report();
        if cut > before_last {
            assert_eq!(report.truncated.len(), 1, "cut at {cut}: the tear is reported");
            assert_eq!(report.truncated[0].offset, before_last);
        }
        store.close().unwrap();
        // Recovery truncated the tail for real: the file is back to the end
        // of the last whole group.
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), before_last);
    }

    std::fs::write(&segment, &full).unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.query(&Region::all()).unwrap().len(), 6, "the whole file recovers every group");
}

#[test]
fn appends_continue_after_a_truncated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(event("a", "one", b"1")).unwrap();
    store.append(event("a", "two", b"2")).unwrap();
    store.close().unwrap();
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..bytes.len() - 3]).unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.version("a"), 1);
    let receipt = store.append(event("a", "two-again", b"2")).unwrap();
    assert_eq!((receipt.global_seq, receipt.entity_seq), (2, 2));
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.version("a"), 2);
    assert!(store.recovery_report().truncated.is_empty());
    assert_eq!(store.reader().verify_chains(), Ok(()));
}
