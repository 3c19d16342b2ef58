//! The `long` scenario is what it says: one seed makes at least 20,000
//! operations and 100 crashes, and crosses the store's size boundaries
//! (more than one 16,384-event chunk of the store's event table, dozens of
//! segments, keys minted for far more entities than the keyset has
//! buckets), reopens from index checkpoints that cover that much (each
//! open checked against a full scan of the same disk), and passes.

use std::path::Path;

use shale_sim::scenario::Scenario;

#[test]
fn one_long_seed_crosses_every_size_boundary_and_passes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/long.toml");
    let scenario = Scenario::load(&path).unwrap();
    assert!(scenario.run.operations >= 20_000);
    assert!(scenario.run.encryption && scenario.workload.entities as usize > 10 * shale_store::keyset::KEY_BUCKETS);
    let report = shale_sim::run::run_traced(&scenario, 1);
    if !report.outcome.passed() {
        panic!("long seed 1 fails: {}\n{}", report.outcome.summary(), report.tail.join("\n"));
    }
    assert!(report.crashes >= 100, "{} crashes", report.crashes);
    assert!(report.events_at_end > 16_384, "{} events", report.events_at_end);
    assert!(report.segments_at_end >= 50, "{} segments", report.segments_at_end);
    // Most reopens start from a checkpoint, the last ones from a checkpoint
    // of more events than one chunk holds.
    let used = report.features.get("checkpoint used").copied().unwrap_or(0);
    assert!(2 * used > report.recoveries, "{used} of {} recoveries used a checkpoint", report.recoveries);
    let largest = report
        .trace
        .iter()
        .flatten()
        .filter_map(|line| line.split("(checkpoint of ").nth(1)?.split(')').next()?.parse::<u64>().ok())
        .max();
    assert!(largest > Some(16_384), "the largest checkpoint used held {largest:?} events");
}
