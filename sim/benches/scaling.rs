//! Sweep scaling: seeds per second of the same sweep on 1 job and on 2
//! jobs (all cores of the CI machine), run alternately so that a noisy
//! neighbour slows both, with the ratio. The sweep covers every real
//! scenario in `scenarios/`, long seeds included.
//!
//! Run: `cargo bench -p shale-sim --bench scaling` (`-- --quick` for a
//! shorter sweep). Writes `reports/bench/sweep-scaling.md`.

use std::fmt::Write;
use std::path::Path;

use shale_sim::scenario::{Expect, Scenario};
use shale_sim::sweep::{sweep, Entry, Quiet, SweepOptions};

/// Rounds of (1 job, 2 jobs) measured.
const ROUNDS: usize = 3;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seeds: u64 = if quick { 20 } else { 60 };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut entries: Vec<Entry> = std::fs::read_dir(root.join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| Entry { path: p.display().to_string(), scenario: Scenario::load(&p).expect("scenario loads") })
        .filter(|e| e.scenario.expect == Expect::Pass)
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{} scenarios, {seeds} seeds each, {ROUNDS} rounds of 1 job then {cores} jobs", entries.len());
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (i, jobs) in [1, cores].into_iter().enumerate() {
            let options = SweepOptions::seeds(1 + round as u64 * seeds, seeds, jobs);
            let report = sweep(&entries, &options, &Quiet);
            assert_eq!(report.exit_code, 0, "the sweep passes");
            let rate = report.totals.seeds as f64 / report.timing.wall_s;
            println!(
                "round {round}: {jobs} jobs, {} seeds in {:.1} s, {rate:.1} seeds/s",
                report.totals.seeds, report.timing.wall_s
            );
            rates[i].push(rate);
        }
    }
    let ratios: Vec<f64> = rates[0].iter().zip(&rates[1]).map(|(one, all)| all / one).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut md = String::new();
    let _ = writeln!(md, "# Sweep scaling\n");
    let _ = writeln!(md, "`cargo bench -p shale-sim --bench scaling`{}: every real scenario in `scenarios/`, {seeds} seeds each (a new range per round), run with 1 job and with {cores} jobs alternately.\n", if quick { " -- --quick" } else { "" });
    let _ = writeln!(md, "| round | 1 job, seeds/s | {cores} jobs, seeds/s | ratio |\n|---:|---:|---:|---:|");
    for (round, ratio) in ratios.iter().enumerate() {
        let _ = writeln!(md, "| {round} | {:.1} | {:.1} | {ratio:.2} |", rates[0][round], rates[1][round]);
    }
    let _ = writeln!(md, "\nMedian ratio: **{median:.2}** ({cores} jobs over 1).");
    println!("{md}");
    let out = root.join("reports/bench");
    std::fs::create_dir_all(&out).expect("reports/bench");
    std::fs::write(out.join("sweep-scaling.md"), md).expect("writing the report");
}
