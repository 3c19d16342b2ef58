//! Eight threads appending at once all get durable receipts, and the
//! journal holds every event exactly once, in one gap-free order. A group
//! commit that lost, duplicated or misrouted a request fails here.

mod common;

use std::collections::BTreeSet;

use common::event;
use shale_store::{Options, Store};

const THREADS: u32 = 8;
const PER_THREAD: u32 = 250;

#[test]
fn eight_threads_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path(), Options::default()).unwrap());
    let receipts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let payload = format!("{t}:{i}");
                            (payload.clone(), store.append(event(&format!("t{t}"), "n", payload.as_bytes())).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = (THREADS * PER_THREAD) as usize;
    assert_eq!(receipts.len(), total);
    let globals: BTreeSet<u64> = receipts.iter().map(|(_, r)| r.global_seq).collect();
    assert_eq!(globals.len(), total, "no two receipts share a position");
    let store = std::sync::Arc::into_inner(store).unwrap();
    store.close().unwrap();

    let store = Store::open(dir.path(), Options::default()).unwrap();
    let all = store.read_from(1, total + 10).unwrap();
    assert_eq!(all.len(), total);
    let payloads: BTreeSet<Vec<u8>> = all.iter().map(|e| e.payload.to_vec()).collect();
    assert_eq!(payloads.len(), total, "every event exactly once");
    for (payload, receipt) in &receipts {
        assert_eq!(&*all[receipt.global_seq as usize - 1].payload, payload.as_bytes());
    }
    for t in 0..THREADS {
        assert_eq!(store.version(&format!("t{t}")), u64::from(PER_THREAD));
    }
}

/// Shreds among appends from many threads, so that shreds are queued
/// behind appends, lead, and hand the lead on: each shred forgets the
/// events appended before it, and an append after the last one gets a new
/// key.
#[test]
fn shreds_among_concurrent_appends_forget_what_came_before() {
    const ROUNDS: u32 = 30;
    let dir = tempfile::tempdir().unwrap();
    let options = Options { encryption: shale_store::Encryption::PerEntity { master_key: None }, ..Options::default() };
    let store = Store::open(dir.path(), options.clone()).unwrap();
    let last = std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || {
                for i in 0..PER_THREAD / 5 {
                    store.append(event(&format!("t{t}"), "n", format!("{t}:{i}").as_bytes())).unwrap();
                }
            });
        }
        s.spawn(|| {
            for round in 0..ROUNDS {
                store.append(event("x", "n", format!("gone {round}").as_bytes())).unwrap();
                store.shred("x").unwrap();
            }
            store.append(event("x", "n", b"kept")).unwrap().global_seq
        })
        .join()
        .unwrap()
    });
    store.close().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    let xs = store.query(&shale_store::Region { entity: Some("x".into()), ..Default::default() }).unwrap();
    assert_eq!(xs.len(), ROUNDS as usize + 1);
    for e in &xs {
        match e.global_seq == last {
            true => assert!(!e.shredded && &*e.payload == b"kept", "the append after the last shred is kept"),
            false => assert!(e.shredded, "event {} came before a shred", e.global_seq),
        }
    }
    for t in 0..4 {
        let ts = store.query(&shale_store::Region { entity: Some(format!("t{t}")), ..Default::default() }).unwrap();
        assert_eq!(ts.len(), (PER_THREAD / 5) as usize);
        assert!(ts.iter().all(|e| !e.shredded && e.payload.starts_with(format!("{t}:").as_bytes())));
    }
}
