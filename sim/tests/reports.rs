//! Sweep reports: shards merge into exactly the unsharded report (through
//! their JSON files), a shard whose canary caught nothing is not red, and
//! the renderers' output is pinned by snapshots.
//!
//! Refresh the snapshots after a deliberate change to a renderer with
//! `UPDATE_SNAPSHOTS=1 cargo test --release -p shale-sim --test reports`.

mod common;

use std::path::{Path, PathBuf};

use shale_sim::report::{merge, Report, Verdict};
use shale_sim::scenario::Scenario;
use shale_sim::sweep::{sweep, Entry, Limit, Quiet, SweepOptions};

fn entries(names: &[&str]) -> Vec<Entry> {
    names
        .iter()
        .map(|name| {
            let path = common::scenarios_dir().join(format!("{name}.toml"));
            Entry { path: format!("scenarios/{name}.toml"), scenario: Scenario::load(&path).unwrap() }
        })
        .collect()
}

fn options(seeds: u64, shard: u64, shards: u64) -> SweepOptions {
    SweepOptions { shard, shards, determinism_every: 5, ..SweepOptions::seeds(1, seeds, 2) }
}

/// Through a file and back, as CI moves shard reports between machines.
fn through_file(report: &Report, dir: &Path, name: &str) -> Report {
    let out = dir.join(name);
    report.write(&out).unwrap();
    Report::read(&out.join("report.json")).unwrap()
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    // Two real scenarios (one with a scenario share below one) and two
    // canaries, one caught at seed 9 (so in one shard only).
    let entries = entries(&["crash-recovery", "swarm", "long", "canary-replay-past-recorded-end", "canary-silent-cut"]);
    let mut entries = entries;
    entries[2].scenario.sweep_share = 0.25;
    entries[2].scenario.run.operations = 200;
    let dir = tempfile::tempdir().unwrap();
    let whole = sweep(&entries, &options(12, 1, 1), &Quiet);
    let shards: Vec<Report> = (1..=3)
        .map(|k| through_file(&sweep(&entries, &options(12, k, 3), &Quiet), dir.path(), &format!("shard-{k}")))
        .collect();
    let merged = merge(&shards).unwrap();
    let mut expected = whole.without_timing();
    expected.plan.shards = vec![1, 2, 3];
    expected.plan.shards_of = 3;
    assert_eq!(serde_json::to_value(merged.without_timing()).unwrap(), serde_json::to_value(&expected).unwrap());
    assert_eq!(merged.verdict, Verdict::Pass);
    assert!(merged.totals.seeds > 24 && merged.all_stats().determinism_checked > 0);
    // The canary caught at seed 9 is caught in one shard only; the other
    // shards wait for the merge instead of failing.
    let late = |r: &Report| r.scenarios.iter().find(|s| s.name == "canary-replay-past-recorded-end").cloned().unwrap();
    assert_eq!(late(&whole).failures[0].seed.0, 9, "the canary's first catch moved; pick another");
    let waiting: Vec<&Report> = shards.iter().filter(|r| !late(r).met_expectation).collect();
    assert!(!waiting.is_empty());
    for r in waiting {
        assert_eq!((r.verdict, r.exit_code), (Verdict::Pass, 0), "a shard without the catch is not red");
    }
    // The same shards, a shard short, are refused as a different sweep:
    // not merged into a report that looks whole.
    assert!(!merge(&shards[..2]).unwrap().is_whole());
    assert!(merge(&[shards[0].clone(), shards[0].clone()]).is_err(), "a shard twice is refused");
}

#[test]
fn a_whole_sweep_with_an_uncaught_canary_fails() {
    let mut entries = entries(&["crash-recovery", "canary-silent-cut"]);
    entries[1].scenario.canary = None;
    let report = sweep(&entries, &options(3, 1, 1), &Quiet);
    assert_eq!((report.verdict, report.exit_code), (Verdict::Fail, 10));
    assert_eq!(report.totals.canaries_caught, 0);
}

#[test]
fn a_timed_sweep_runs_whole_rounds_until_its_time() {
    let entries = entries(&["keyset-fence-seed", "crash-recovery"]);
    let options = SweepOptions { limit: Limit::Time(std::time::Duration::from_millis(300)), ..options(0, 1, 1) };
    let report = sweep(&entries, &options, &Quiet);
    assert!(report.totals.seeds >= 2, "{} seeds", report.totals.seeds);
    for s in &report.scenarios {
        // Seeds are handed out in order: each scenario ran a prefix.
        assert!(s.seeds_run >= s.seeds_planned.saturating_sub(2), "{}: {} of {}", s.name, s.seeds_run, s.seeds_planned);
    }
    assert_eq!(report.plan.seeds, None);
}

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

#[test]
fn renderers_match_their_snapshots() {
    let fixture = snapshots().join("report.json");
    let report = Report::read(&fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    report.write(dir.path()).unwrap();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let written = std::fs::read_to_string(&path).unwrap();
        let snapshot = snapshots().join(&name);
        if update {
            std::fs::write(&snapshot, &written).unwrap();
            continue;
        }
        match std::fs::read_to_string(&snapshot) {
            Ok(expected) if expected == written => {}
            _ => stale.push(name.to_string_lossy().into_owned()),
        }
    }
    assert!(
        stale.is_empty(),
        "renderer output differs from tests/snapshots for {stale:?} (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

#[test]
fn a_report_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, r#"{"schema": "shale-sim/sweep-report/v0"}"#).unwrap();
    let error = Report::read(&path).unwrap_err();
    assert!(error.contains("v0"), "{error}");
    std::fs::write(&path, "[1, 2]").unwrap();
    assert!(Report::read(&path).is_err());
}

#[test]
fn faults_are_noticed_at_most_once_each_and_where_the_store_looks() {
    let entries = entries(&["torn-writes", "sector-errors", "disk-full", "misdirected-writes", "fsync-failure"]);
    let report = sweep(&entries, &options(20, 1, 1), &Quiet);
    let all = report.all_stats();
    for (class, t) in &all.faults {
        // A fault marked in two places (a misdirected write: where it was
        // meant to land and where it landed) is noticed once.
        assert!(t.observed <= t.injected, "{class:?}: noticed {} of {} injected", t.observed, t.injected);
        assert!(t.seeds_observed <= t.seeds_injected, "{class:?}");
    }
    use shale_sim::faults::FaultClass::*;
    for class in [TornWrite, SectorError, DiskFull, MisdirectedWrite, FsyncFail] {
        let t = &all.faults[&class];
        assert!(t.injected > 0 && t.observed > 0, "{class:?} injected {} noticed {}", t.injected, t.observed);
    }
    assert!(all.crash_points.keys().any(|p| p.starts_with("commit: ")), "{:?}", all.crash_points.keys());
    use shale_sim::run::stats::Request;
    for request in [Request::Append, Request::Batch, Request::Recovery] {
        assert!(all.latency[&request].count() > 0, "{request:?} latency recorded");
    }
}
