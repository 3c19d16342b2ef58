//! A failed fsync answers its commit as "outcome unknown", never poisons the
//! writer, and never lets a later commit land behind bytes that could not
//! be synced: the writer moves to a fresh segment. A retry with the same
//! idempotency key commits exactly once, also after reopen. A writer that
//! kept appending to the failed segment would recover the failed batch and
//! its retry both, and fail here.

mod common;

use std::path::Path;

use common::faulty::{FaultyEnv, Shared};
use common::{event, segments};
use shale_store::{AppendError, Batch, Options, Region, Store};

fn open(dir: &Path) -> (Store<FaultyEnv>, Shared) {
    let (env, faults) = FaultyEnv::new();
    (Store::open_in(env, dir, Options::default()).unwrap(), faults)
}

fn kinds(store: &Store<FaultyEnv>) -> Vec<String> {
    store.query(&Region::all()).unwrap().iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn a_failed_fsync_is_outcome_unknown_and_the_retry_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open(dir.path());
    store.append(event("a", "first", b"")).unwrap();
    let retry = || Batch::new(vec![event("a", "second", b""), event("b", "second", b"")]).with_idempotency_key("k2");

    faults.lock().unwrap().fail_syncs = 1;
    assert!(matches!(store.append_batch(retry()), Err(AppendError::OutcomeUnknown(_))));
    assert_eq!(kinds(&store), vec!["first"], "a commit whose fsync failed is not visible");

    // The writer is not poisoned: the next commit moves to a new segment.
    store.append(event("c", "third", b"")).unwrap();
    assert_eq!(segments(dir.path()).len(), 2, "the writer left the segment it could not sync");
    let receipts = store.append_batch(retry()).unwrap();
    assert_eq!(store.append_batch(retry()).unwrap(), receipts);
    assert_eq!(kinds(&store), vec!["first", "third", "second", "second"]);
    store.close().unwrap();

    // The failed attempt's bytes did reach the old segment (only our fsync
    // "failed"); recovery reads that segment only up to the end its
    // successor records, so the batch is there exactly once.
    let (store, _) = open(dir.path());
    assert_eq!(kinds(&store), vec!["first", "third", "second", "second"]);
    assert_eq!(store.reader().verify_chains(), Ok(()));
}

#[test]
fn a_failed_segment_start_is_unavailable_and_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = open(dir.path());
    store.append(event("a", "first", b"")).unwrap();
    {
        let mut f = faults.lock().unwrap();
        f.fail_syncs = 1; // the flush
        f.fail_dir_syncs = 1; // the first attempt at a new segment
    }
    assert!(matches!(store.append(event("a", "lost", b"")), Err(AppendError::OutcomeUnknown(_))));
    assert!(matches!(store.append(event("a", "refused", b"")), Err(AppendError::Unavailable(_))));
    store.append(event("a", "second", b"")).unwrap();
    store.close().unwrap();
    let (store, _) = open(dir.path());
    assert_eq!(kinds(&store), vec!["first", "second"]);
}
