//! Whole-store simulation steered by the fuzzer: the first bytes choose a
//! scenario (every knob within its valid range), the rest are every choice
//! of the run (each client's operation and arguments, every fault, crash
//! point and tie in the schedule). Running out of bytes means no more
//! faults and the smallest choices, so a shorter input is a simpler run.
//! Every checker is on; a violation aborts with the promise it broke.
//! `shale-sim from-fuzz <artifact>` turns a crash input into a scenario
//! file that replays the run, and `shale-sim shrink` makes it small.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some(case) = shale_sim::fuzz_case(bytes) else { return };
    let report = case.run();
    if !report.outcome.passed() {
        panic!(
            "{}\nturn this input into a scenario file: cargo run --release -p shale-sim -- from-fuzz <artifact>",
            report.outcome.summary()
        );
    }
});
