//! `shale-sim sweep` and `shale-sim report`: run seeds over scenarios,
//! print what they found, write and merge reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use shale_sim::report::{Report, ScenarioReport, Verdict, SWARM_SHARE_MIN};
use shale_sim::scenario::{Expect, Scenario};
use shale_sim::sweep::{sweep, Entry, Limit, SweepOptions};

use crate::progress::{Mode, Watcher};

/// The exit code of a usage or input error (bad flag, missing file, a
/// sweep that runs no seed).
pub const EXIT_USAGE: u8 = 2;

pub struct SweepArgs {
    pub paths: Vec<PathBuf>,
    pub options: SweepOptions,
    pub out: Option<PathBuf>,
    pub progress: Mode,
}

pub fn cmd_sweep(args: SweepArgs) -> Result<ExitCode, String> {
    let files = crate::scenario_files(&args.paths)?;
    let mut entries = Vec::new();
    for file in &files {
        let scenario = Scenario::load(file).map_err(|e| e.to_string())?;
        entries.push(Entry { path: file.display().to_string(), scenario });
    }
    if entries.is_empty() {
        let named: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("no scenario files in {}: an empty sweep proves nothing", named.join(", ")));
    }
    // Real scenarios first, then the planted-bug canaries.
    entries.sort_by_key(|e| e.scenario.expect == Expect::MustFail);
    let o = &args.options;
    let extent = match o.limit {
        Limit::Seeds(n) => format!("seeds {:#x}..{:#x}", o.first_seed, o.first_seed.wrapping_add(n)),
        Limit::Time(t) => format!("seeds from {:#x} for {}", o.first_seed, humantime::format_duration(t)),
    };
    println!("sweep: {} scenarios, {extent}, shard {}/{}, {} jobs", entries.len(), o.shard, o.shards, o.jobs);
    let time_limit = match o.limit {
        Limit::Time(t) => Some(t),
        Limit::Seeds(_) => None,
    };
    let watcher = Watcher::new(args.progress, time_limit);
    let report = sweep(&entries, o, &watcher);
    watcher.finish();
    if report.scenarios.iter().all(|s| s.seeds_run == 0) {
        return Err(format!("the sweep ran no seed (shard {}/{} of this plan holds none)", o.shard, o.shards));
    }
    print_summary(&report);
    if let Some(out) = &args.out {
        report.write(out)?;
        println!("report written to {}", out.display());
    }
    Ok(ExitCode::from(report.exit_code))
}

/// One line per scenario, canaries apart, then the totals and the verdict.
pub fn print_summary(report: &Report) {
    let mut canaries_header = false;
    for s in &report.scenarios {
        if s.is_canary() && !canaries_header {
            canaries_header = true;
            println!("canaries (planted bugs; each must be caught):");
        }
        let verdict = match (s.met_expectation, s.is_canary() && !report.is_whole()) {
            (true, _) => "ok  ",
            (false, true) => "wait",
            (false, false) => "FAIL",
        };
        println!(
            "{verdict} {:<28} expect={:<9} seeds={:<6} passed={:<6} failed={:<5}",
            s.name,
            if s.is_canary() { "must_fail" } else { "pass" },
            s.seeds_run,
            s.passed,
            s.failed
        );
        if let Some(first) = s.failures.first() {
            let what = if s.is_canary() { "caught at" } else { "first failure," };
            println!("     {what} seed {}: {}", first.seed, first.summary);
            println!("     reproduce: {}", first.repro);
            if !s.is_canary() {
                println!("     shrink:    {}", first.shrink);
            }
        }
        if s.name.contains("swarm") && !s.is_canary() {
            print_coverage(s);
        }
    }
    let t = &report.totals;
    println!(
        "{} seeds in {:.1}s ({:.1} seeds/s on {} jobs), {:.1}s simulated",
        t.seeds,
        report.timing.wall_s,
        report.timing.seeds_per_s,
        report.timing.jobs,
        t.sim_ns as f64 / 1e9
    );
    match report.verdict {
        Verdict::Pass => println!("sweep: every scenario met its expectation"),
        Verdict::Fail => println!("sweep: FAILED (exit {})", report.exit_code),
    }
}

/// The share of a swarm's seeds that injected each fault class and
/// exercised each feature, flagging any under the share a swarm aims for.
fn print_coverage(s: &ScenarioReport) {
    let min = SWARM_SHARE_MIN * 100.0;
    println!("     coverage over {} seeds (share of seeds; ! under {min:.0} %):", s.seeds_run);
    let cells: Vec<String> = s
        .stats
        .coverage()
        .into_iter()
        .map(|(name, seeds)| {
            let share = seeds as f64 / s.seeds_run.max(1) as f64;
            format!("{}{name} {:.0}%", if share < SWARM_SHARE_MIN { "!" } else { " " }, share * 100.0)
        })
        .collect();
    for row in cells.chunks(4) {
        println!("      {}", row.iter().map(|c| format!("{c:<24}")).collect::<String>().trim_end());
    }
}

/// `report merge`: shard reports into one, judged as a whole.
pub fn cmd_merge(inputs: &[PathBuf], out: &Path, partial: bool) -> Result<ExitCode, String> {
    let reports = inputs.iter().map(|p| Report::read(p)).collect::<Result<Vec<_>, _>>()?;
    let merged = shale_sim::report::merge(&reports)?;
    let plan = &merged.plan;
    let missing: Vec<String> =
        (1..=plan.shards_of).filter(|k| !plan.shards.contains(k)).map(|k| k.to_string()).collect();
    if !missing.is_empty() && !partial {
        return Err(format!(
            "shards {} of {} are missing; --partial merges what there is",
            missing.join(", "),
            plan.shards_of
        ));
    }
    print_summary(&merged);
    merged.write(out)?;
    println!("merged report of {} shards written to {}", reports.len(), out.display());
    Ok(ExitCode::from(merged.exit_code))
}

/// `report render`: writes `report.md` and the plots again from a
/// `report.json`.
pub fn cmd_render(input: &Path, out: &Path) -> Result<ExitCode, String> {
    let report = Report::read(input)?;
    report.write(out)?;
    println!("report rendered to {}", out.display());
    Ok(ExitCode::from(report.exit_code))
}

pub fn parse_time(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration (like 90s, 10m, 1h30m): {e}"))
}
