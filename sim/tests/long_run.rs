//! The `long` scenario is what it says: one seed makes at least 20,000
//! operations and 100 crashes, and crosses the store's size boundaries
//! (more than one 16,384-event chunk of the store's event table, dozens of
//! segments, keys minted for far more entities than the keyset has
//! buckets), and passes.

use std::path::Path;

use shale_sim::scenario::Scenario;

#[test]
fn one_long_seed_crosses_every_size_boundary_and_passes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/long.toml");
    let scenario = Scenario::load(&path).unwrap();
    assert!(scenario.run.operations >= 20_000);
    assert!(scenario.run.encryption && scenario.workload.entities as usize > 10 * shale_store::keyset::KEY_BUCKETS);
    let report = match shale_sim::check(&scenario, 1) {
        Ok(report) => report,
        Err(report) => panic!("long seed 1 fails: {}\n{}", report.outcome.summary(), report.tail.join("\n")),
    };
    assert!(report.crashes >= 100, "{} crashes", report.crashes);
    assert!(report.events_at_end > 16_384, "{} events", report.events_at_end);
    assert!(report.segments_at_end >= 50, "{} segments", report.segments_at_end);
}
