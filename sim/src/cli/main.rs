//! `shale-sim`: run one seed of a scenario, or sweep seeds over many.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shale_sim::run::{run, run_traced, Outcome, RunReport, Sim};
use shale_sim::scenario::Scenario;
use shale_sim::sweep::{Limit, SweepOptions, DETERMINISM_EVERY};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod progress;
mod shrink;
mod sweep;

use sweep::{cmd_merge, cmd_render, cmd_sweep, SweepArgs, EXIT_USAGE};

const EXIT_CODES: &str = "\
Exit codes:
  0   every seed passed and every canary was caught
  2   usage or input error (bad flag, unreadable scenario, a sweep of no seed)
  10  a correctness failure: a promise broken, or a canary not caught
  11  a liveness failure: the store did not come back, or a run did not end
  12  a panic, in the store or in the harness
  13  nondeterminism: one seed ran twice with different traces
A sweep exits with the worst class it found (the highest code).";

#[derive(Parser)]
#[command(name = "shale-sim", about = "Deterministic simulation testing for shale-store", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario and check every promise.
    #[command(after_help = EXIT_CODES)]
    Run {
        scenario: PathBuf,
        /// The seed (decimal or 0x-hex); default: $SHALE_SEED, else a fresh one.
        #[arg(long, value_parser = parse_seed)]
        seed: Option<u64>,
        /// Write the whole event trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Run the seed twice and compare the traces.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Run many seeds over scenario files or directories of them.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seeds per scenario (times its sweep_share).
        #[arg(long, default_value_t = 100, conflicts_with = "time")]
        seeds: u64,
        /// Sweep for this long instead (90s, 10m, 1h30m): rounds of one
        /// seed per scenario until the time is up.
        #[arg(long, value_parser = sweep::parse_time)]
        time: Option<std::time::Duration>,
        #[arg(long, default_value_t = 1, value_parser = parse_seed)]
        first_seed: u64,
        /// Run only shard K of N (1-based), e.g. 2/4; merge the shards'
        /// reports with `report merge`.
        #[arg(long, default_value = "1/1", value_parser = parse_shard)]
        shard: (u64, u64),
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop at the first failing seed of a real scenario.
        #[arg(long)]
        fail_fast: bool,
        /// Run one seed in this many twice and compare traces (0: never).
        #[arg(long, default_value_t = DETERMINISM_EVERY)]
        determinism_every: u64,
        /// Write report.json, report.md and SVG plots into this directory
        /// (e.g. reports/nightly).
        #[arg(long)]
        out: Option<PathBuf>,
        /// How to show progress.
        #[arg(long, value_enum, default_value = "auto")]
        progress: progress::Mode,
    },
    /// Shrink a failing seed to the smallest scenario that fails the same
    /// way, and write it as a script (no seed needed) with its story.
    Shrink {
        scenario: PathBuf,
        #[arg(long, value_parser = parse_seed)]
        seed: u64,
        /// Time budget; the smallest failure so far is the answer.
        #[arg(long, default_value = "60s", value_parser = sweep::parse_time)]
        time: std::time::Duration,
        /// The scenario file to write (default: scenarios/regressions/NAME-SEED.toml).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The failure is nondeterminism: the seed runs two ways.
        #[arg(long)]
        determinism: bool,
    },
    /// Turn a crash input of the `scenario` fuzz target into a scenario
    /// file that replays its run exactly.
    FromFuzz {
        artifact: PathBuf,
        /// The scenario file to write (default: scenarios/regressions/fuzz-NAME-script.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Work with sweep reports.
    #[command(subcommand)]
    Report(ReportCommand),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Merge the report.json files of a sharded sweep into one report,
    /// exactly as the unsharded sweep would have written it.
    #[command(after_help = EXIT_CODES)]
    Merge {
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Merge even if some shards are missing (their canaries are then
        /// not judged).
        #[arg(long)]
        partial: bool,
    },
    /// Write report.md and the plots again from a report.json.
    Render {
        report: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_seed(text: &str) -> Result<u64, String> {
    shale_sim::parse_seed(text).ok_or_else(|| format!("{text:?} is not a seed (decimal or 0x-hex)"))
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (k, n) = text.split_once('/').ok_or("shard is K/N, e.g. 1/4")?;
    let k: u64 = k.parse().map_err(|_| "shard K is not a number")?;
    let n: u64 = n.parse().map_err(|_| "shard N is not a number")?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {k}/{n} is outside 1..=N"));
    }
    Ok((k, n))
}

fn fresh_seed() -> u64 {
    // Only the choice of a new seed comes from outside; the run itself is
    // fully determined by it.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes()).update(&std::process::id().to_le_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

fn print_outcome(report: &RunReport, path: &Path, scripted: bool) {
    let stats = format!(
        "steps={} sim_time={:.3}s crashes={} recoveries={} acked_batches={} events={} segments={} trace={}",
        report.steps,
        report.sim_ns as f64 / 1e9,
        report.crashes,
        report.recoveries,
        report.acked_batches,
        report.events_at_end,
        report.segments_at_end,
        report.trace_hash
    );
    match &report.outcome {
        Outcome::Pass => println!("PASS {stats}"),
        Outcome::Violation { .. } => println!("VIOLATION at {}\n{stats}", report.outcome.summary()),
        Outcome::Panic { panic, .. } => {
            println!("PANIC at {}\n{stats}", report.outcome.summary());
            if !panic.backtrace.is_empty() {
                println!("backtrace:\n{}", panic.backtrace);
            }
        }
        Outcome::Budget { .. } => println!("BUDGET USED UP at {}\n{stats}", report.outcome.summary()),
    }
    if !report.excused.is_empty() {
        let excused: Vec<String> = report.excused.iter().map(|(why, n)| format!("{n} {why}")).collect();
        println!("excused acked batches: {}", excused.join(", "));
    }
    let injected: Vec<String> = report.faults.injected.iter().map(|(c, n)| format!("{c:?}={n}")).collect();
    println!("faults injected: {}", if injected.is_empty() { "none".into() } else { injected.join(" ") });
    let noticed: Vec<String> = report.stats.observed.iter().map(|(c, n)| format!("{c:?}={n}")).collect();
    println!("faults noticed by the store: {}", if noticed.is_empty() { "none".into() } else { noticed.join(" ") });
    if !report.stats.crash_points.is_empty() {
        let points: Vec<String> = report.stats.crash_points.iter().map(|(p, n)| format!("{p} x{n}")).collect();
        println!("crashes struck at: {}", points.join(", "));
    }
    if !report.outcome.passed() {
        println!("trace tail:");
        for line in &report.tail {
            println!("  {line}");
        }
        let path = path.display().to_string();
        if scripted {
            println!("reproduce: cargo run --release -p shale-sim -- run {path}");
        } else {
            println!("reproduce: {}", shale_sim::report::repro(&path, report.seed));
            println!("shrink:    {}", shale_sim::report::shrink_command(&path, report.seed));
        }
    }
}

fn cmd_run(path: &Path, seed: Option<u64>, trace: Option<&Path>, determinism: bool) -> Result<ExitCode, String> {
    let scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    let seed = match (seed, &scenario.script) {
        (_, Some(script)) => {
            println!(
                "SCRIPT scenario={} ({}): {} choices listed, no seed",
                scenario.name,
                path.display(),
                script.len()
            );
            0
        }
        (Some(seed), None) => seed,
        (None, None) => match std::env::var(shale_sim::SEED_VAR) {
            Ok(text) => parse_seed(&text)?,
            Err(_) => fresh_seed(),
        },
    };
    if scenario.script.is_none() {
        println!("SEED={seed:#018x} scenario={} ({})", scenario.name, path.display());
    }
    let mut derived = Sim::new(&scenario, seed, false).derived().clone();
    derived.script = None;
    let params = toml::to_string(&derived).map_err(|e| e.to_string())?;
    for line in params.lines().filter(|l| !l.trim().is_empty()) {
        println!("  {line}");
    }
    let report = if trace.is_some() || determinism { run_traced(&scenario, seed) } else { run(&scenario, seed) };
    print_outcome(&report, path, scenario.script.is_some());
    if let (Some(out), Some(lines)) = (trace, &report.trace) {
        std::fs::write(out, lines.join("\n") + "\n").map_err(|e| format!("writing {}: {e}", out.display()))?;
        println!("trace written to {}", out.display());
    }
    if determinism {
        let again = run_traced(&scenario, seed);
        if again.trace_hash == report.trace_hash {
            println!("determinism: the seed ran twice with the same trace {}", report.trace_hash);
        } else {
            let (a, b) = (report.trace.unwrap_or_default(), again.trace.unwrap_or_default());
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            println!(
                "NONDETERMINISM: traces {} and {} first differ at line {at}:",
                report.trace_hash, again.trace_hash
            );
            println!("  first:  {}", a.get(at).map_or("<end>", String::as_str));
            println!("  second: {}", b.get(at).map_or("<end>", String::as_str));
            return Ok(ExitCode::from(13));
        }
    }
    Ok(ExitCode::from(report.outcome.exit_code() as u8))
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok(files)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { scenario, seed, trace, check_determinism } => {
            cmd_run(&scenario, seed, trace.as_deref(), check_determinism)
        }
        Command::Sweep { paths, seeds, time, first_seed, shard, jobs, fail_fast, determinism_every, out, progress } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let options = SweepOptions {
                first_seed,
                limit: time.map_or(Limit::Seeds(seeds), Limit::Time),
                shard: shard.0,
                shards: shard.1,
                jobs: jobs.max(1),
                fail_fast,
                determinism_every,
            };
            cmd_sweep(SweepArgs { paths, options, out, progress })
        }
        Command::Shrink { scenario, seed, time, out, determinism } => {
            shrink::cmd_shrink(&scenario, seed, time, out, determinism)
        }
        Command::FromFuzz { artifact, out } => shrink::cmd_from_fuzz(&artifact, out),
        Command::Report(ReportCommand::Merge { reports, out, partial }) => cmd_merge(&reports, &out, partial),
        Command::Report(ReportCommand::Render { report, out }) => cmd_render(&report, &out),
    };
    result.unwrap_or_else(|message| {
        eprintln!("shale-sim: {message}");
        ExitCode::from(EXIT_USAGE)
    })
}
