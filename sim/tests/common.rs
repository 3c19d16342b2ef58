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
