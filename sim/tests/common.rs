//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use shale_sim::scenario::{Expect, Scenario};

pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every scenario file with the given expectation, by path.
pub fn scenarios(expect: Expect) -> Vec<(PathBuf, Scenario)> {
    let mut found: Vec<(PathBuf, Scenario)> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let s = Scenario::load(&p).unwrap();
            (p, s)
        })
        .filter(|(_, s)| s.expect == expect)
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Runs the `shale-sim` binary from the repository root: its exit code and
/// standard output.
pub fn shale_sim(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shale-sim"))
        .args(args)
        .current_dir(scenarios_dir().join(".."))
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}
