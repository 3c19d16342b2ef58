//! Every planted bug is caught within a few seeds by its must_fail
//! scenario, and at least one canary trips each kind of failure the
//! harness reports. If a checker stopped working, its canary would pass
//! and this test would fail.

mod common;

use shale_sim::scenario::Expect;
use shale_store::canary::Canary;

const SEEDS_MAX: u64 = 64;

#[test]
fn every_canary_is_caught_within_a_few_seeds() {
    let canaries = common::scenarios(Expect::MustFail);
    let planted: Vec<String> = canaries.iter().filter_map(|(_, s)| s.canary.clone()).collect();
    for canary in Canary::ALL {
        assert!(planted.iter().any(|p| p == canary.name()), "canary {} has no must_fail scenario", canary.name());
    }
    for (path, scenario) in canaries {
        let caught = (1..=SEEDS_MAX).find(|&seed| shale_sim::check(&scenario, seed).is_err());
        assert!(caught.is_some(), "{} was not caught in {SEEDS_MAX} seeds", path.display());
    }
}

#[test]
fn without_the_planted_bug_the_same_scenarios_pass() {
    for (path, mut scenario) in common::scenarios(Expect::MustFail) {
        scenario.canary = None;
        for seed in 1..=20 {
            if let Err(report) = shale_sim::check(&scenario, seed) {
                panic!("{} fails seed {seed} with no bug planted: {:?}", path.display(), report.outcome);
            }
        }
    }
}
