//! Appends, batches and every read path return exactly what was written,
//! before and after reopen; a bug in encoding, indexing or recovery shows
//! up as a mismatch here.

mod common;

use common::{coord, event};
use serde::{Deserialize, Serialize};
use shale_store::{AppendError, Batch, Cause, Coordinate, InvalidInput, NewEvent, Options, Region, Store};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Deposit {
    cents: u64,
    memo: String,
}

#[test]
fn append_get_query_read_from_round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let a1 = store.append(event("acct-a", "opened", b"a1")).unwrap();
    let b1 = store.append(event("acct-b", "opened", b"b1")).unwrap();
    let batch = store
        .append_batch(Batch::new(vec![
            NewEvent::new(Coordinate::new("acct-a", "audit").unwrap(), "checked", b"a2".to_vec()),
            NewEvent::encode(coord("acct-a"), "deposited", &Deposit { cents: 500, memo: "pay".into() }).unwrap(),
        ]))
        .unwrap();
    assert_eq!((a1.global_seq, b1.global_seq, batch[0].global_seq, batch[1].global_seq), (1, 2, 3, 4));
    assert_eq!((a1.entity_seq, b1.entity_seq, batch[0].entity_seq, batch[1].entity_seq), (1, 1, 2, 3));

    let check = |store: &Store| {
        let got = store.get(batch[1].id).unwrap().unwrap();
        assert_eq!(got.decode::<Deposit>().unwrap(), Deposit { cents: 500, memo: "pay".into() });
        assert_eq!(&*got.kind, "deposited");
        assert_eq!(got.coordinate, coord("acct-a"));
        let a: Vec<u64> = store.query(&Region::entity("acct-a")).unwrap().iter().map(|e| e.global_seq).collect();
        assert_eq!(a, vec![1, 3, 4]);
        let audit = store.query(&Region::entity("acct-a").scope("audit")).unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(&*audit[0].payload, b"a2");
        let prefix = store.query(&Region::entity_prefix("acct-")).unwrap();
        assert_eq!(prefix.iter().map(|e| e.global_seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        let opened = store.query(&Region::all().kind("opened")).unwrap();
        assert_eq!(opened.iter().map(|e| e.global_seq).collect::<Vec<_>>(), vec![1, 2]);
        let ranged = store.query(&Region::entity("acct-a").entity_seq(2..4)).unwrap();
        assert_eq!(ranged.iter().map(|e| e.entity_seq).collect::<Vec<_>>(), vec![2, 3]);
        let cursor = store.read_from(2, 2).unwrap();
        assert_eq!(cursor.iter().map(|e| e.global_seq).collect::<Vec<_>>(), vec![2, 3]);
        assert!(store.read_from(5, 10).unwrap().is_empty());
        assert_eq!(store.version("acct-a"), 3);
        assert_eq!(store.reader().verify_chains(), Ok(()));
    };
    check(&store);
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.recovery_report().events, 4);
    check(&store);
}

#[test]
fn causes_and_correlations_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let root = store.append(event("order-1", "placed", b"")).unwrap();
    let receipts = store
        .append_batch(Batch::new(vec![
            event("order-1", "paid", b"").caused_by(Cause::Event(root.id)),
            event("order-1", "shipped", b"").caused_by(Cause::Item(0)),
        ]))
        .unwrap();
    let shipped = store.get(receipts[1].id).unwrap().unwrap();
    assert_eq!(shipped.causation, Some(receipts[0].id));
    assert_eq!(shipped.correlation, root.id, "correlation follows the cause");
    let bad = store.append(event("order-1", "x", b"").caused_by(Cause::Event(shale_store::EventId(99))));
    assert!(matches!(bad, Err(AppendError::Invalid { error: InvalidInput::UnknownCause { .. }, .. })));
    let later = store.append_batch(Batch::new(vec![event("order-1", "x", b"").caused_by(Cause::Item(0))]));
    assert!(matches!(later, Err(AppendError::Invalid { error: InvalidInput::CauseNotEarlier { .. }, .. })));
    assert_eq!(store.version("order-1"), 3, "rejected batches wrote nothing");
}

#[test]
fn invalid_input_is_a_typed_error() {
    assert!(matches!(Coordinate::new("", "s"), Err(InvalidInput::Empty { field: "entity" })));
    assert!(matches!(Coordinate::new("a\nb", "s"), Err(InvalidInput::ControlCharacter { .. })));
    assert!(matches!(Coordinate::new(&"x".repeat(300), "s"), Err(InvalidInput::TooLong { .. })));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        store.append_batch(Batch::new(vec![])),
        Err(AppendError::Invalid { error: InvalidInput::EmptyBatch, .. })
    ));
    let huge = NewEvent::new(coord("e"), "k", vec![0; shale_store::limits::PAYLOAD_LEN_MAX + 1]);
    assert!(matches!(
        store.append(huge),
        Err(AppendError::Invalid { error: InvalidInput::PayloadTooLarge { .. }, .. })
    ));
    assert!(matches!(store.append(event("e", "", b"")), Err(AppendError::Invalid { .. })));
    assert!(store.read_from(1, 0).is_err());
    assert_eq!(store.reader().last_global(), 0);
}

#[test]
fn segments_rotate_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), common::small_segments()).unwrap();
    for i in 0..200u32 {
        store.append(event(&format!("e{}", i % 7), "tick", &i.to_le_bytes())).unwrap();
    }
    store.close().unwrap();
    assert!(common::segments(dir.path()).len() > 3, "small segments rotate");
    let store = Store::open(dir.path(), common::small_segments()).unwrap();
    let all = store.read_from(1, 1000).unwrap();
    assert_eq!(all.len(), 200);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(&*e.payload, &(i as u32).to_le_bytes());
    }
    assert!(store.recovery_report().truncated.is_empty());
}
