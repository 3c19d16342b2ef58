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
