//! `shale-sim`: run one seed of a scenario, or sweep seeds over many.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shale_sim::run::{run, run_traced, Outcome, RunReport, Sim};
use shale_sim::scenario::Scenario;
use shale_sim::sweep::{sweep_scenario, SeedPlan};

#[derive(Parser)]
#[command(name = "shale-sim", about = "Deterministic simulation testing for shale-store", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario and check every promise.
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
    Sweep {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        #[arg(long, default_value_t = 1, value_parser = parse_seed)]
        first_seed: u64,
        /// Run only shard K of N (1-based), e.g. 2/4.
        #[arg(long, default_value = "1/1", value_parser = parse_shard)]
        shard: (u64, u64),
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Write the summary as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
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

fn repro(path: &Path, seed: u64) -> String {
    format!("cargo run --release -p shale-sim -- run {} --seed {seed:#018x}", path.display())
}

fn print_outcome(report: &RunReport, path: &Path) {
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
    if !report.outcome.passed() {
        println!("trace tail:");
        for line in &report.tail {
            println!("  {line}");
        }
        println!("reproduce: {}", repro(path, report.seed));
    }
}

fn cmd_run(path: &Path, seed: Option<u64>, trace: Option<&Path>, determinism: bool) -> Result<ExitCode, String> {
    let scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    let seed = match seed {
        Some(seed) => seed,
        None => match std::env::var(shale_sim::SEED_VAR) {
            Ok(text) => parse_seed(&text)?,
            Err(_) => fresh_seed(),
        },
    };
    println!("SEED={seed:#018x} scenario={} ({})", scenario.name, path.display());
    let derived = Sim::new(&scenario, seed, false).derived().clone();
    let params = toml::to_string(&derived).map_err(|e| e.to_string())?;
    for line in params.lines().filter(|l| !l.trim().is_empty()) {
        println!("  {line}");
    }
    let report = if trace.is_some() || determinism { run_traced(&scenario, seed) } else { run(&scenario, seed) };
    print_outcome(&report, path);
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
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn cmd_sweep(paths: &[PathBuf], plan: SeedPlan, jobs: usize, json: Option<&Path>) -> Result<ExitCode, String> {
    let files = scenario_files(paths)?;
    if files.is_empty() {
        return Err(format!(
            "no scenario files in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    if plan.seeds().is_empty() {
        return Err(format!("shard {}/{} of {} seeds holds no seed", plan.shard, plan.shards, plan.count));
    }
    let start = std::time::Instant::now();
    let mut summaries = Vec::new();
    let mut all_met = true;
    println!(
        "sweep: {} scenarios, seeds {}..{} shard {}/{}, {jobs} jobs",
        files.len(),
        plan.first,
        plan.first + plan.count,
        plan.shard,
        plan.shards
    );
    // Real scenarios first, then the planted-bug canaries apart.
    let mut loaded = Vec::new();
    for file in files {
        let scenario = Scenario::load(&file).map_err(|e| e.to_string())?;
        loaded.push((file, scenario));
    }
    loaded.sort_by_key(|(_, s)| s.expect == shale_sim::scenario::Expect::MustFail);
    let mut canaries_header = false;
    for (file, scenario) in loaded {
        if scenario.expect == shale_sim::scenario::Expect::MustFail && !canaries_header {
            canaries_header = true;
            println!("canaries (planted bugs; each must be caught):");
        }
        let summary = sweep_scenario(file.clone(), &scenario, plan, jobs);
        let verdict = if summary.met_expectation { "ok  " } else { "FAIL" };
        println!(
            "{verdict} {:<28} expect={:<9} seeds={:<5} passed={:<5} failed={:<5}",
            summary.scenario, summary.expect, summary.seeds_run, summary.passed, summary.failed
        );
        if let Some(failure) = &summary.first_failure {
            let what = failure.outcome.summary();
            println!("     first failure, seed {:#018x}: {what}", failure.seed);
            println!("     reproduce: {}", repro(&file, failure.seed));
        }
        if scenario.faults.swarm {
            print_coverage(&summary);
        }
        all_met &= summary.met_expectation;
        summaries.push(summary);
    }
    let seeds: u64 = summaries.iter().map(|s| s.seeds_run).sum();
    let sim_ns: u64 = summaries.iter().map(|s| s.sim_ns).sum();
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds in {wall:.1}s ({:.1} seeds/s), {:.1}s simulated ({:.1}x wall)",
        seeds as f64 / wall,
        sim_ns as f64 / 1e9,
        sim_ns as f64 / 1e9 / wall
    );
    if let Some(out) = json {
        let text = serde_json::to_string_pretty(&summaries).map_err(|e| e.to_string())?;
        std::fs::write(out, text).map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    println!("{}", if all_met { "sweep: every scenario met its expectation" } else { "sweep: FAILED" });
    Ok(if all_met { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The share of a swarm's seeds that injected each fault class and
/// exercised each feature, flagging any under the 20 % a swarm aims for.
fn print_coverage(summary: &shale_sim::sweep::ScenarioSummary) {
    println!("     coverage over {} seeds (share of seeds; ! under 20 %):", summary.seeds_run);
    let cells: Vec<String> = summary
        .coverage
        .iter()
        .map(|(name, seeds)| {
            let share = *seeds as f64 / summary.seeds_run.max(1) as f64;
            format!("{}{name} {:.0}%", if share < 0.2 { "!" } else { " " }, share * 100.0)
        })
        .collect();
    for row in cells.chunks(4) {
        println!("      {}", row.iter().map(|c| format!("{c:<24}")).collect::<String>().trim_end());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { scenario, seed, trace, check_determinism } => {
            cmd_run(&scenario, seed, trace.as_deref(), check_determinism)
        }
        Command::Sweep { paths, seeds, first_seed, shard, jobs, json } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let plan = SeedPlan { first: first_seed, count: seeds, shard: shard.0, shards: shard.1 };
            cmd_sweep(&paths, plan, jobs, json.as_deref())
        }
    };
    result.unwrap_or_else(|message| {
        eprintln!("shale-sim: {message}");
        ExitCode::from(2)
    })
}
