//! Whole-store simulation from fuzzer bytes: the bytes choose a scenario
//! (every knob within its valid range) and a seed; the run must pass every
//! check. A failure prints the scenario and seed to reproduce it with
//! `shale-sim run` (write the scenario as TOML first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shale_sim::scenario::Scenario;

fuzz_target!(|bytes: &[u8]| {
    let mut u = arbitrary::Unstructured::new(bytes);
    let Ok(seed) = u.arbitrary::<u64>() else { return };
    let Ok(scenario) = Scenario::from_fuzz(&mut u) else { return };
    if let Err(report) = shale_sim::check(&scenario, seed) {
        let toml = toml::to_string(&scenario).unwrap_or_default();
        panic!("seed {seed:#x} fails: {:?}\n--- scenario ---\n{toml}", report.outcome);
    }
});
