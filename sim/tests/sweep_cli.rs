//! The sweep as CI drives it: exit codes by the worst failure class, an
//! empty sweep refused, `--fail-fast`, `--time`, reports written where
//! `--out` says.

mod common;

use std::path::Path;

use common::shale_sim;
use shale_sim::report::{FailureClass, Report, Verdict};
use shale_sim::scenario::Scenario;
use shale_sim::sweep::{sweep, Entry, Quiet, SweepOptions};

/// A scenario as a real one (expecting every seed to pass) with a planted
/// bug, so that it fails the way a real bug would.
fn failing(canary_file: &str) -> Entry {
    let path = common::scenarios_dir().join(canary_file);
    let mut scenario = Scenario::load(&path).unwrap();
    scenario.expect = shale_sim::scenario::Expect::Pass;
    Entry { path: format!("scenarios/{canary_file}"), scenario }
}

fn write_scenario(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_empty_sweep_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = shale_sim(&["sweep", dir.path().to_str().unwrap(), "--seeds", "3"]);
    assert_eq!(code, 2, "a sweep of no scenario is refused");
    let (code, _) = shale_sim(&["sweep", "scenarios/crash-recovery.toml", "--time", "0s", "--progress", "none"]);
    assert_eq!(code, 2, "a sweep that runs no seed is refused");
}

#[test]
fn a_passing_sweep_exits_zero_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let args = ["sweep", "scenarios/keyset-fence-seed.toml", "scenarios/canary-unchained-hash.toml", "--seeds", "4"];
    let (code, text) = shale_sim(&[&args[..], &["--progress", "plain", "--out", out.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{text}");
    let report = Report::read(&out.join("report.json")).unwrap();
    assert_eq!((report.verdict, report.totals.seeds, report.totals.canaries_caught), (Verdict::Pass, 4, 1));
    for file in ["report.md", "outcomes.svg", "faults.svg", "crash-points.svg", "latency.svg", "seeds-per-second.svg"] {
        assert!(out.join(file).exists(), "{file} written");
    }
}

#[test]
fn an_uncaught_canary_exits_10() {
    // The planted bug of this canary first shows at seed 8.
    let canary = "scenarios/canary-replay-past-recorded-end.toml";
    let (code, text) = shale_sim(&["sweep", canary, "--seeds", "1", "--progress", "none"]);
    assert_eq!(code, 10, "{text}");
    assert!(text.contains("FAIL canary-replay-past-recorded-end"), "{text}");
}

#[test]
fn a_run_that_never_ends_exits_11() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(dir.path(), "tiny-budget.toml", "name = \"tiny-budget\"\n[run]\nsteps_max = 5\n");
    let (code, text) = shale_sim(&["sweep", &path, "--seeds", "2", "--progress", "none"]);
    assert_eq!(code, 11, "{text}");
    assert!(text.contains("budget used up"), "{text}");
}

#[test]
fn the_worst_class_sets_the_exit_code() {
    let cases = [
        ("canary-ack-before-fsync.toml", FailureClass::Correctness, 10),
        ("canary-poisoned-writer.toml", FailureClass::Liveness, 11),
        ("canary-panic-on-torn-tail.toml", FailureClass::Panic, 12),
        ("canary-hidden-state.toml", FailureClass::Nondeterminism, 13),
    ];
    let options = SweepOptions { determinism_every: 1, ..SweepOptions::seeds(1, 12, 2) };
    for (file, class, code) in cases {
        let report = sweep(&[failing(file)], &options, &Quiet);
        assert_eq!(report.exit_code, code, "{file}: {:?}", report.totals.by_class);
        assert!(report.totals.by_class.contains_key(&class), "{file}: {:?}", report.totals.by_class);
    }
    // Together, the worst wins.
    let all: Vec<Entry> = cases.iter().map(|(file, _, _)| failing(file)).collect();
    assert_eq!(sweep(&all, &options, &Quiet).exit_code, 13);
}

#[test]
fn fail_fast_stops_at_the_first_failure() {
    let options = SweepOptions { fail_fast: true, ..SweepOptions::seeds(1, 200, 1) };
    let report = sweep(&[failing("canary-ack-before-fsync.toml")], &options, &Quiet);
    assert!(report.plan.stopped_early);
    assert_eq!((report.totals.seeds, report.totals.failed), (1, 1), "one job stops after the seed that failed");
    let options = SweepOptions { fail_fast: false, ..options };
    let report = sweep(&[failing("canary-ack-before-fsync.toml")], &options, &Quiet);
    assert!(!report.plan.stopped_early && report.totals.seeds == 200);
}

#[test]
fn a_timed_sweep_stops_on_its_own() {
    let args = ["sweep", "scenarios/keyset-fence-seed.toml", "--time", "1s", "--progress", "plain"];
    let started = std::time::Instant::now();
    let (code, text) = shale_sim(&args);
    assert_eq!(code, 0, "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "it stopped");
    assert!(text.contains("every scenario met its expectation"), "{text}");
}

#[test]
fn a_timed_sweep_ends_when_nothing_is_left_to_run() {
    // Scripts run once and shrunk canaries are caught at once: the sweep
    // ends then, without turning empty rounds until its time is up.
    let started = std::time::Instant::now();
    let (code, text) = shale_sim(&["sweep", "scenarios/regressions", "--time", "10m", "--progress", "none"]);
    assert_eq!(code, 0, "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "it ended early: {text}");
}

#[test]
fn help_documents_the_exit_codes() {
    let (code, text) = shale_sim(&["sweep", "--help"]);
    assert_eq!(code, 0);
    for line in ["10  a correctness failure", "11  a liveness failure", "12  a panic", "13  nondeterminism"] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}
