//! The causal graph: causes walk up to the root, effects walk down breadth
//! first within limits, each walk says why it stopped, correlations list
//! in commit order and default to the cause's, a shredded event keeps its
//! place, and all of it is rebuilt on reopen. An index that lost an edge,
//! walked the wrong way, or was not rebuilt fails here.

mod common;

use common::event;
use shale_store::{Batch, Cause, Encryption, EventId, Options, Store, WalkEnd};

fn ids(walk: &shale_store::Walk) -> Vec<u64> {
    walk.events.iter().map(|e| e.global_seq).collect()
}

#[test]
fn walks_up_and_down_with_their_reasons_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() };
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let root = store.append(event("order-1", "placed", b"")).unwrap().id; // 1
    let chain = store
        .append_batch(Batch::new(vec![
            event("order-1", "paid", b"").caused_by(Cause::Event(root)), // 2
            event("stock", "reserved", b"").caused_by(Cause::Item(0)),   // 3
            event("mail", "sent", b"").caused_by(Cause::Event(root)),    // 4
        ]))
        .unwrap();
    let shipped = store.append(event("order-1", "shipped", b"").caused_by(Cause::Event(chain[1].id))).unwrap(); // 5
    store.append(event("other", "noise", b"")).unwrap(); // 6

    let check = |store: &Store| {
        let up = store.causes(shipped.id, 10).unwrap().unwrap();
        assert_eq!((ids(&up), up.end), (vec![3, 2, 1], WalkEnd::Root));
        let short = store.causes(shipped.id, 2).unwrap().unwrap();
        assert_eq!((ids(&short), short.end), (vec![3, 2], WalkEnd::Limit));
        let down = store.effects(root, 10, 100).unwrap().unwrap();
        assert_eq!((ids(&down), down.depths.clone(), down.end), (vec![2, 4, 3, 5], vec![1, 1, 2, 3], WalkEnd::Leaves));
        let shallow = store.effects(root, 1, 100).unwrap().unwrap();
        assert_eq!((ids(&shallow), shallow.end), (vec![2, 4], WalkEnd::Limit));
        let few = store.effects(root, 10, 3).unwrap().unwrap();
        assert_eq!((ids(&few), few.end), (vec![2, 4, 3], WalkEnd::Limit));
        let correlated: Vec<u64> = store.correlated(root, 100).unwrap().iter().map(|e| e.global_seq).collect();
        assert_eq!(correlated, vec![1, 2, 3, 4, 5], "the correlation follows causes by default");
        assert!(store.causes(EventId(12345), 10).unwrap().is_none());
    };
    check(&store);
    store.close().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    check(&store);

    store.shred("stock").unwrap();
    let up = store.causes(shipped.id, 10).unwrap().unwrap();
    assert_eq!((ids(&up), up.shredded), (vec![3, 2, 1], 1), "a shredded event keeps its place");
    assert!(up.events[0].shredded);
}

#[test]
fn an_explicit_correlation_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let saga = store.append(event("saga", "started", b"")).unwrap().id;
    store.append(event("x", "step", b"").correlated_with(saga)).unwrap();
    store.append(event("y", "unrelated", b"")).unwrap();
    let caused = store.append(event("z", "step", b"").caused_by(Cause::Event(saga))).unwrap();
    let steps: Vec<u64> = store.correlated(saga, 10).unwrap().iter().map(|e| e.global_seq).collect();
    assert_eq!(steps, vec![1, 2, caused.global_seq]);
    assert_eq!(store.correlated(saga, 2).unwrap().len(), 2);
}
