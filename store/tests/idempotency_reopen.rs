//! Idempotent retries: the same key returns the original receipts and
//! writes nothing, before and after reopen; the same key with different
//! content is a typed conflict. A dedup table that is not rebuilt from the
//! journal, or that compares only keys, fails here.

mod common;

use common::event;
use shale_store::{AppendError, Batch, Options, Store};

fn transfer() -> Batch {
    Batch::new(vec![event("a", "debited", b"10"), event("b", "credited", b"10")]).with_idempotency_key("tx-1")
}

#[test]
fn retries_return_the_original_receipts_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(event("z", "noise", b"")).unwrap();
    let first = store.append_batch(transfer()).unwrap();
    assert_eq!(store.append_batch(transfer()).unwrap(), first);
    assert_eq!(store.reader().last_global(), 3);
    store.close().unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.append_batch(transfer()).unwrap(), first, "dedup survives restart");
    assert_eq!(store.reader().last_global(), 3, "the retry wrote nothing");
    let different = Batch::new(vec![event("a", "debited", b"99")]).with_idempotency_key("tx-1");
    assert!(matches!(store.append_batch(different), Err(AppendError::IdempotencyConflict { key }) if key == "tx-1"));
    assert_eq!(store.reader().last_global(), 3);
}

#[test]
fn the_same_key_twice_in_one_group_commit_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                s.spawn(move || store.append_batch(transfer()).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]), "every caller gets the same receipts");
    assert_eq!(store.reader().last_global(), 2);
}
