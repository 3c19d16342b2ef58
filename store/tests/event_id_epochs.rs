//! Event ids are never reused. After a loss (here: the last groups cut off
//! the journal, as a lying disk would), new events take the lost positions,
//! but an id a client held from before names nothing, for reads, walks and
//! causes alike. With ids that were bare positions, the old id would name
//! the new event.

mod common;

use common::{event, segments};
use shale_store::{AppendError, Cause, InvalidInput, Options, Store};

#[test]
fn an_id_from_before_a_loss_never_names_the_event_now_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let kept = store.append(event("a", "kept", b"1")).unwrap();
    let before_loss = std::fs::metadata(&segments(dir.path())[0]).unwrap().len();
    let lost = store.append(event("a", "lost", b"2")).unwrap();
    store.close().unwrap();
    let segment = segments(dir.path()).remove(0);
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..before_loss as usize]).unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get(kept.id).unwrap().map(|e| e.id), Some(kept.id), "ids of kept events still work");
    let taken = store.append(event("b", "new", b"3")).unwrap();
    assert_eq!(taken.global_seq, lost.global_seq, "the lost position is used again");
    assert_ne!(taken.id, lost.id);
    assert_ne!(taken.id.epoch(), lost.id.epoch(), "a new writer session, a new epoch");
    assert_eq!(store.get(lost.id).unwrap(), None, "the held id names nothing");
    assert_eq!(store.causes(lost.id, 10).unwrap(), None);
    assert_eq!(store.effects(lost.id, 3, 10).unwrap(), None);
    let refused = store.append(event("c", "effect", b"4").caused_by(Cause::Event(lost.id)));
    assert!(matches!(
        refused,
        Err(AppendError::Invalid { error: InvalidInput::UnknownCause { cause }, .. }) if cause == lost.id
    ));
    assert_eq!(store.get(taken.id).unwrap().unwrap().kind.as_ref(), "new");
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get(taken.id).unwrap().unwrap().id, taken.id, "epochs survive a reopen");
    assert_eq!(store.get(kept.id).unwrap().unwrap().id, kept.id);
    assert_eq!(store.reader().verify_chains(), Ok(()));
}

#[test]
fn the_positions_of_a_failed_flush_are_used_again_under_a_fresh_epoch() {
    use common::faulty::FaultyEnv;
    let dir = tempfile::tempdir().unwrap();
    let (env, faults) = FaultyEnv::new();
    let store = Store::open_in(env, dir.path(), Options::default()).unwrap();
    let before = store.append(event("a", "kept", b"1")).unwrap();
    faults.lock().unwrap().fail_syncs = 1;
    assert!(matches!(store.append(event("a", "in doubt", b"2")), Err(AppendError::OutcomeUnknown(_))));
    // The failed flush's bytes may come back (its successor segment's
    // header, which records where the durable bytes end, may be lost):
    // the event now at its position must not share the id it would have had.
    let after = store.append(event("a", "retried", b"3")).unwrap();
    assert_eq!(after.global_seq, before.global_seq + 1, "the failed position is used again");
    assert_ne!(after.id.epoch(), before.id.epoch(), "a fresh epoch after the failed flush");
    assert_eq!(store.get(before.id).unwrap().unwrap().id, before.id, "earlier ids still work");
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.get(after.id).unwrap().unwrap().kind.as_ref(), "retried");
    assert_eq!(store.reader().verify_chains(), Ok(()));
}
