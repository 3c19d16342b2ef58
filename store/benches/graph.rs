//! Cost per hop of causal-graph walks on a graph of 1,000,000 events.
//!
//! Two shapes: one chain (each event caused by the one before it), walked
//! up with `causes` from its last event and down with `effects` from its
//! first; and a binary tree (event i caused by event i/2), walked down from
//! its root. Run: `cargo bench -p shale-store --bench graph`
//! (`-- --quick` for 100,000 events).

use std::time::Instant;

use shale_store::{Batch, Cause, Coordinate, Core, EventId, NewEvent, Options, RealEnv};

const BATCH: u64 = 1_000;

fn build(dir: &std::path::Path, events: u64, parent: impl Fn(u64) -> Option<u64>) -> (Core<RealEnv>, u64) {
    let (mut core, _) = Core::open(RealEnv::default(), dir, &Options::default()).unwrap();
    let store = core.reader().store_id();
    let id = |g: u64| EventId((u128::from(store) << 64) | u128::from(g));
    let coordinate = Coordinate::new("graph", "bench").unwrap();
    for first in (1..=events).step_by(BATCH as usize) {
        let items = (first..first + BATCH)
            .map(|g| {
                let event = NewEvent::new(coordinate.clone(), "node", g.to_le_bytes().to_vec());
                match parent(g) {
                    Some(p) if p >= first => event.caused_by(Cause::Item((p - first) as usize)),
                    Some(p) => event.caused_by(Cause::Event(id(p))),
                    None => event,
                }
            })
            .collect();
        core.commit(&[Batch::new(items)]).remove(0).unwrap();
    }
    (core, store)
}

fn per_hop(hops: usize, start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64 / hops as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: u64 = if quick { 100_000 } else { 1_000_000 };
    let base = std::env::temp_dir().join(format!("shale-graph-{}", std::process::id()));

    let (chain, store) = build(&base.join("chain"), events, |g| (g > 1).then(|| g - 1));
    let id = |g: u64| EventId((u128::from(store) << 64) | u128::from(g));
    let reader = chain.reader();
    let start = Instant::now();
    let up = reader.causes(id(events), usize::MAX).unwrap().unwrap();
    let up_ns = per_hop(up.events.len(), start);
    let start = Instant::now();
    let down = reader.effects(id(1), u32::MAX, usize::MAX).unwrap().unwrap();
    let down_ns = per_hop(down.events.len(), start);
    assert_eq!((up.events.len() as u64, down.events.len() as u64), (events - 1, events - 1));
    drop(chain);

    let (tree, store) = build(&base.join("tree"), events, |g| (g > 1).then_some(g / 2));
    let id = |g: u64| EventId((u128::from(store) << 64) | u128::from(g));
    let reader = tree.reader();
    let start = Instant::now();
    let wide = reader.effects(id(1), u32::MAX, usize::MAX).unwrap().unwrap();
    let wide_ns = per_hop(wide.events.len(), start);
    let start = Instant::now();
    let mut hops = 0;
    for leaf in (events / 2..=events).step_by(97) {
        hops += reader.causes(id(leaf), usize::MAX).unwrap().unwrap().events.len();
    }
    let leaf_ns = per_hop(hops, start);
    assert_eq!(wide.events.len() as u64, events - 1);

    println!("graph of {events} events            ns per hop   hops");
    println!("chain: causes from the last event   {up_ns:>10.0}   {}", up.events.len());
    println!("chain: effects from the first event {down_ns:>10.0}   {}", down.events.len());
    println!("tree:  effects from the root        {wide_ns:>10.0}   {}", wide.events.len());
    println!("tree:  causes from leaves           {leaf_ns:>10.0}   {hops}");
    println!("(each hop returns a full event: metadata and payload)");
    drop(tree);
    let _ = std::fs::remove_dir_all(&base);
}
