//! Runs that once failed, found by sweeps or the fuzzer, each kept as a
//! scenario file and the seed that failed: they must pass now. A fix that
//! regressed would fail here with the original seed. (A case can also be a
//! harness fix: a legitimate outcome the checkers first called a failure.)

use std::path::Path;

use shale_sim::scenario::Scenario;

/// (file under tests/regressions/, failing seed)
const CASES: &[(&str, u64)] = &[
    ("keyset-read-error.toml", 0x0807_0605_5203_0201),
    ("shred-forgot-pending-key.toml", 0x0201_068c_0403_0201),
    ("salvage-resurrects-gone-batch.toml", 0x7575_0407_0201_0201),
];

#[test]
fn every_recorded_failure_now_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    for (file, seed) in CASES {
        let scenario = Scenario::load(&dir.join(file)).unwrap();
        if let Err(report) = shale_sim::check(&scenario, *seed) {
            panic!("{file} seed {seed:#x} fails again: {:?}\n{}", report.outcome, report.tail.join("\n"));
        }
    }
}
