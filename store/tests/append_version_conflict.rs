//! Optimistic concurrency: a stale expected version fails the whole batch
//! with a typed error naming entity, expected and actual version, and
//! writes nothing. A store that checked only the first item, or committed
//! the items before the conflicting one, fails here.

mod common;

use common::event;
use shale_store::{AppendError, Batch, Options, Store};

#[test]
fn a_stale_expected_version_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(event("a", "opened", b"").expect_version(0)).unwrap();
    assert!(matches!(
        store.append(event("a", "again", b"").expect_version(0)),
        Err(AppendError::VersionConflict { item: 0, ref entity, expected: 0, actual: 1 }) if entity == "a"
    ));
    let result = store.append_batch(Batch::new(vec![
        event("b", "fine", b"").expect_version(0),
        event("a", "stale", b"").expect_version(5),
    ]));
    match result {
        Err(AppendError::VersionConflict { item, entity, expected, actual }) => {
            assert_eq!((item, entity.as_str(), expected, actual), (1, "a", 5, 1));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(store.version("b"), 0, "the first item was not written either");
    assert_eq!(store.reader().last_global(), 1);
}

#[test]
fn items_of_one_batch_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let receipts = store
        .append_batch(Batch::new(vec![
            event("a", "one", b"").expect_version(0),
            event("a", "two", b"").expect_version(1),
            event("a", "three", b"").expect_version(2),
        ]))
        .unwrap();
    assert_eq!(receipts.iter().map(|r| r.entity_seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(store
        .append_batch(Batch::new(vec![event("a", "x", b"").expect_version(3), event("a", "y", b"").expect_version(3)]))
        .is_err());
}

#[test]
fn racing_writers_on_one_entity_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let wins: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    (0..50u64)
                        .filter(|&v| store.append(event("hot", "bump", &[t as u8]).expect_version(v)).is_ok())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(wins.iter().sum::<usize>() as u64, store.version("hot"), "every success is one version step");
    assert!(store.version("hot") <= 50);
}
