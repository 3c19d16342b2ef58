//! `report.md`: the sweep for people, failures first.

use std::fmt::Write;

use super::hist::QUANTILES;
use super::{Report, ScenarioReport, SeedStats, Verdict, PLOTS, SWARM_SHARE_MIN};
use crate::faults::FaultClass;
use crate::run::stats::Request;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    headline(&mut out, report);
    failures(&mut out, report);
    scenarios(&mut out, report);
    canaries(&mut out, report);
    let all = report.all_stats();
    faults(&mut out, &all, report);
    swarm(&mut out, report);
    crash_points(&mut out, &all);
    latency(&mut out, &all);
    excused(&mut out, &all);
    out.push_str("## Plots\n\n");
    for (file, title) in PLOTS {
        let _ = writeln!(out, "![{title}]({file})\n");
    }
    out
}

fn headline(out: &mut String, r: &Report) {
    let t = &r.totals;
    let verdict = match r.verdict {
        Verdict::Pass => "PASS".to_owned(),
        Verdict::Fail => format!("FAIL (exit {})", r.exit_code),
    };
    let _ = writeln!(out, "# Sweep report\n");
    let _ = writeln!(
        out,
        "**{verdict}**: {} of {} seeds passed over {} scenarios; {} of {} canaries caught.\n",
        t.passed,
        t.seeds,
        t.scenarios - t.canaries,
        t.canaries_caught,
        t.canaries
    );
    let p = &r.plan;
    let extent = match (p.seeds, p.time_limit_s) {
        (Some(n), _) => format!("{n} seeds per scenario from {}", p.first_seed),
        (None, Some(s)) => format!("seeds from {} for {s} s", p.first_seed),
        (None, None) => format!("seeds from {}", p.first_seed),
    };
    let shards: Vec<String> = p.shards.iter().map(|k| format!("{k}/{}", p.shards_of)).collect();
    let _ = writeln!(
        out,
        "- Plan: {extent}, shards {}{}",
        shards.join(", "),
        if p.stopped_early { ", stopped at the first failure (--fail-fast)" } else { "" }
    );
    let determinism = match p.determinism_every {
        0 => "no seed run twice".to_owned(),
        n => format!("1 seed in {n} run twice to compare traces ({} compared)", r.all_stats().determinism_checked),
    };
    let _ = writeln!(out, "- Determinism: {determinism}");
    let _ = writeln!(
        out,
        "- Simulated: {:.1} s in {} steps; wall: {:.1} s on {} jobs, {:.1} seeds/s\n",
        t.sim_ns as f64 / 1e9,
        t.steps,
        r.timing.wall_s,
        r.timing.jobs,
        r.timing.seeds_per_s
    );
}

fn failures(out: &mut String, r: &Report) {
    let real: Vec<&ScenarioReport> = r.scenarios.iter().filter(|s| !s.is_canary() && s.failed > 0).collect();
    let blind: Vec<&ScenarioReport> =
        r.scenarios.iter().filter(|s| s.is_canary() && !s.met_expectation && r.is_whole()).collect();
    out.push_str("## Failures\n\n");
    if real.is_empty() && blind.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    for s in real {
        let classes: Vec<String> = s.by_class.iter().map(|(c, n)| format!("{n} {}", c.name())).collect();
        let _ = writeln!(out, "### {} ({} of {} seeds: {})\n", s.name, s.failed, s.seeds_run, classes.join(", "));
        out.push_str("| seed | class | step | what |\n|---|---|---:|---|\n");
        for f in &s.failures {
            let _ = writeln!(out, "| `{}` | {} | {} | {} |", f.seed, f.class.name(), f.step, cell(&f.summary));
        }
        if s.failed > s.failures.len() as u64 {
            let _ = writeln!(out, "\n({} more not listed.)", s.failed - s.failures.len() as u64);
        }
        if let Some(f) = s.failures.first() {
            let _ = writeln!(
                out,
                "\nReproduce the first, and shrink it to a small scenario file:\n\n    {}\n    {}\n",
                f.repro, f.shrink
            );
        }
    }
    for s in blind {
        let _ = writeln!(
            out,
            "### canary {} was not caught in {} seeds\n\nThe planted bug `{}` went unnoticed: a checker is blind to it.\n",
            s.name,
            s.seeds_run,
            s.canary.as_deref().unwrap_or("?")
        );
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn scenarios(out: &mut String, r: &Report) {
    out.push_str("## Scenarios\n\n| scenario | seeds | passed | failed | seeds/s (one job) | simulated s | crashes |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for s in r.scenarios.iter().filter(|s| !s.is_canary()) {
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {:.1} | {:.1} | {} |",
            if s.met_expectation { "" } else { "**FAIL** " },
            s.name,
            s.seeds_run,
            s.passed,
            s.failed,
            s.seeds_run as f64 / s.run_s.max(1e-9),
            s.stats.sim_ns as f64 / 1e9,
            s.stats.crashes
        );
    }
    out.push('\n');
}

fn canaries(out: &mut String, r: &Report) {
    let canaries: Vec<&ScenarioReport> = r.scenarios.iter().filter(|s| s.is_canary()).collect();
    if canaries.is_empty() {
        return;
    }
    out.push_str("## Canaries\n\nPlanted bugs; each must be caught somewhere in the sweep.\n\n| canary | planted bug | caught | at seed | as | seeds until caught |\n|---|---|---|---|---|---:|\n");
    for s in canaries {
        let (seed, what) = match s.failures.first() {
            Some(f) => (format!("`{}`", f.seed), f.promise.clone().unwrap_or_else(|| f.class.name().to_owned())),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {seed} | {what} | {} |",
            s.name,
            s.canary.as_deref().unwrap_or("?"),
            match (s.met_expectation, r.is_whole()) {
                (true, _) => "yes",
                (false, true) => "**NO**",
                (false, false) => "not in this shard (judged when the shards merge)",
            },
            s.seeds_run
        );
    }
    out.push('\n');
}

fn faults(out: &mut String, all: &SeedStats, r: &Report) {
    out.push_str("## Faults: injected and noticed\n\nNoticed: the store reported the fault's mark (a recovery cut, set aside, could not read or repaired the bytes it touched; an open was refused there) or returned a typed error for it.\n\n| class | injected | in seeds | noticed | in seeds | |\n|---|---:|---:|---:|---:|---|\n");
    for class in FaultClass::ALL {
        let t = all.faults.get(&class).cloned().unwrap_or_default();
        let flag = match (t.injected, t.observed) {
            (0, _) => "**never injected**",
            (_, 0) => "never noticed",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| {class:?} | {} | {} | {} | {} | {flag} |",
            t.injected, t.seeds_injected, t.observed, t.seeds_observed
        );
    }
    let _ = writeln!(out, "\nOver {} seeds of real scenarios.\n", r.totals.seeds);
}

fn swarm(out: &mut String, r: &Report) {
    for s in r.scenarios.iter().filter(|s| !s.is_canary() && s.name.contains("swarm")) {
        let _ = writeln!(
            out,
            "## Coverage of {} ({} seeds; marked: under {:.0} %)\n",
            s.name,
            s.seeds_run,
            SWARM_SHARE_MIN * 100.0
        );
        out.push_str("| fault class or feature | share of seeds |\n|---|---:|\n");
        let seeds = s.seeds_run.max(1) as f64;
        for (name, n) in s.stats.coverage() {
            let share = n as f64 / seeds;
            let mark = if share < SWARM_SHARE_MIN { " **low**" } else { "" };
            let _ = writeln!(out, "| {name} | {:.0} %{mark} |", share * 100.0);
        }
        out.push('\n');
    }
}

fn crash_points(out: &mut String, all: &SeedStats) {
    let total: u64 = all.crash_points.values().sum();
    let _ =
        writeln!(out, "## Crash points\n\nWhere {total} crashes struck: the phase, the disk operation and the file.\n");
    out.push_str("| where | crashes | share |\n|---|---:|---:|\n");
    let mut points: Vec<(&String, &u64)> = all.crash_points.iter().collect();
    points.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (point, n) in points {
        let _ = writeln!(out, "| {point} | {n} | {:.1} % |", *n as f64 * 100.0 / total.max(1) as f64);
    }
    out.push('\n');
}

fn latency(out: &mut String, all: &SeedStats) {
    out.push_str("## Simulated latency (ms)\n\n| request | count |");
    for (name, _) in QUANTILES {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---|---:|");
    out.push_str(&"---:|".repeat(QUANTILES.len()));
    out.push('\n');
    for request in Request::ALL {
        let Some(hist) = all.latency.get(&request) else { continue };
        let _ = write!(out, "| {} | {} |", request.name(), hist.count());
        for (_, q) in QUANTILES {
            let _ = write!(out, " {:.3} |", hist.quantile(q) as f64 / 1e6);
        }
        out.push('\n');
    }
    out.push('\n');
}

fn excused(out: &mut String, all: &SeedStats) {
    out.push_str("## Excused losses\n\nAcknowledged batches a lossy fault destroyed (each excused by the fault that touched it):\n\n");
    if all.excused.is_empty() {
        out.push_str("None.\n\n");
        return;
    }
    out.push_str("| why | batches |\n|---|---:|\n");
    for (why, n) in &all.excused {
        let _ = writeln!(out, "| {why} | {n} |");
    }
    out.push('\n');
}
