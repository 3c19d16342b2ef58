//! What a CI minute buys: wall time and simulated time of one
//! 1,000-operation seed, per scenario, in release mode, with the
//! simulated commit latency percentiles.
//!
//! Run: `cargo bench -p shale-sim --bench seed` (`-- --quick` for fewer
//! seeds).

use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use shale_sim::run::stats::Request;
use shale_sim::scenario::Scenario;

const OPERATIONS: u64 = 1_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seeds: u64 = if quick { 10 } else { 50 };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    println!("{seeds} seeds of {OPERATIONS} operations each");
    println!(
        "{:<22} {:>12} {:>12} {:>10} {:>9} {:>12} {:>12}",
        "scenario", "wall/seed", "sim/seed", "sim/wall", "seeds/s", "commit p50", "commit p99"
    );
    for name in ["crash-recovery", "torn-writes", "fsync-failure", "swarm"] {
        let mut scenario = Scenario::load(&dir.join(format!("{name}.toml"))).expect("scenario loads");
        scenario.run.operations = OPERATIONS;
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        let mut sim_ns = 0u64;
        let start = Instant::now();
        for seed in 1..=seeds {
            let report = shale_sim::run::run(&scenario, seed);
            assert!(report.outcome.passed(), "{name} seed {seed}: {:?}", report.outcome);
            sim_ns += report.sim_ns;
            let commits = [Request::Append, Request::Batch].into_iter();
            for ns in commits.filter_map(|r| report.stats.latency_ns.get(&r)).flatten() {
                latency.record(*ns).expect("latency in range");
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let sim = sim_ns as f64 / 1e9;
        println!(
            "{name:<22} {:>10.2}ms {:>10.1}ms {:>9.0}x {:>9.0} {:>10.2}ms {:>10.2}ms",
            wall * 1e3 / seeds as f64,
            sim * 1e3 / seeds as f64,
            sim / wall,
            seeds as f64 / wall,
            latency.value_at_quantile(0.5) as f64 / 1e6,
            latency.value_at_quantile(0.99) as f64 / 1e6
        );
    }
}
