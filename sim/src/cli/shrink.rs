//! `shale-sim shrink` and `shale-sim from-fuzz`: a failure turned into a
//! small scenario file that fails by itself, without a seed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use shale_sim::scenario::Scenario;
use shale_sim::shrink::{scenario_file, shrink, ShrinkOptions};

/// Where a shrunk scenario goes unless `--out` says: the home of every
/// finding, run by CI.
pub const REGRESSIONS_DIR: &str = "scenarios/regressions";

fn default_out(name: &str, what: &str) -> PathBuf {
    Path::new(REGRESSIONS_DIR).join(format!("{name}-{what}.toml"))
}

fn write(out: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(out, text).map_err(|e| format!("writing {}: {e}", out.display()))
}

pub fn cmd_shrink(
    path: &Path,
    seed: u64,
    budget: Duration,
    out: Option<PathBuf>,
    determinism: bool,
) -> Result<ExitCode, String> {
    let scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    println!("shrinking seed {seed:#018x} of {} (budget {})", path.display(), humantime::format_duration(budget));
    let mut shrunk = shrink(&scenario, seed, determinism, ShrinkOptions { budget, ..ShrinkOptions::default() })?;
    shrunk.scenario.name = format!("{}-{seed:#x}", scenario.name);
    let origin = format!("{} seed {seed:#018x}", path.display());
    let out = out.unwrap_or_else(|| default_out(&scenario.name, &format!("{seed:#x}")));
    write(&out, &scenario_file(&shrunk, &origin)?)?;
    println!("fails with: {}", shrunk.signature);
    println!("before: {}", shrunk.before);
    println!("after:  {}", shrunk.after);
    println!("{} runs in {:.1} s", shrunk.runs, shrunk.elapsed.as_secs_f64());
    println!("the run, step by step:");
    for line in shrunk.report.trace.iter().flatten() {
        println!("  {line}");
    }
    println!("written to {} (replay: cargo run --release -p shale-sim -- run {})", out.display(), out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_from_fuzz(artifact: &Path, out: Option<PathBuf>) -> Result<ExitCode, String> {
    let bytes = std::fs::read(artifact).map_err(|e| format!("reading {}: {e}", artifact.display()))?;
    let case = shale_sim::fuzz_case(&bytes).ok_or("the input is too short to choose a scenario")?;
    let (scenario, report) = case.script();
    let name = artifact.file_name().map_or("fuzz".into(), |n| n.to_string_lossy().into_owned());
    let mut scenario = scenario;
    scenario.name = format!("fuzz-{}", name.trim_start_matches("crash-").chars().take(16).collect::<String>());
    scenario.description = format!("From the fuzz input {}: {}.", artifact.display(), report.outcome.summary());
    let text = toml::to_string(&scenario).map_err(|e| e.to_string())?;
    let out = out.unwrap_or_else(|| default_out(&scenario.name, "script"));
    write(&out, &text)?;
    println!("{}: {}", artifact.display(), report.outcome.summary());
    println!("written to {} ({} choices; replay: cargo run --release -p shale-sim -- run {}; shrink it with shale-sim shrink)", out.display(), scenario.script.as_ref().map_or(0, |s| s.len()), out.display());
    Ok(ExitCode::from(report.outcome.exit_code() as u8))
}
