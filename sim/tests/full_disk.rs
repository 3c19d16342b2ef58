//! A disk that fills for good (the journal never shrinks) must not keep a
//! run from ending: clients that retry every failed batch give up after a
//! retry budget, the run finishes its operations, and its liveness phase
//! (faults off, space back) commits. Swarm seed 0x800314 drew a 16 KiB disk
//! under 16 KiB segments and a retry rate of 0.9999, and ran past its
//! 2,000,000-step budget retrying one batch.

use shale_sim::scenario::Scenario;

#[test]
fn clients_that_always_retry_on_a_disk_full_for_good_let_the_run_end() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/disk-full.toml");
    let mut scenario = Scenario::load(&path).unwrap();
    scenario.run.operations = 200;
    scenario.run.segment_size = 16_384;
    scenario.run.steps_max = 100_000;
    scenario.faults.disk.capacity = 16_384;
    scenario.workload.idempotency_rate = 1.0;
    scenario.workload.retry_rate = 1.0;
    for seed in 1..=3 {
        let report = match shale_sim::check(&scenario, seed) {
            Ok(report) => report,
            Err(report) => panic!("seed {seed}: {}\n{}", report.outcome.summary(), report.tail.join("\n")),
        };
        assert!(report.segments_at_end >= 2, "seed {seed}: the liveness probe went to a new segment");
    }
}
