//! Merging the reports of a sharded sweep into the report one unsharded
//! sweep of the same seeds gives (timings aside). A canary is judged on the
//! whole: caught if any shard caught it, at the lowest seed index any shard
//! caught it, with the seeds up to that one counted.

use std::collections::BTreeSet;

use super::{Plan, Report, ScenarioReport, Timing};

/// Merges shard reports of one sweep: same seeds, same scenarios, disjoint
/// shards.
pub fn merge(reports: &[Report]) -> Result<Report, String> {
    let Some(first) = reports.first() else { return Err("nothing to merge".into()) };
    let mut shards = BTreeSet::new();
    for r in reports {
        let (a, b) = (&first.plan, &r.plan);
        if (a.first_seed, a.seeds, a.shards_of, a.determinism_every)
            != (b.first_seed, b.seeds, b.shards_of, b.determinism_every)
        {
            return Err(format!(
                "reports of different sweeps: seeds {:?} from {} in shards of {} and seeds {:?} from {} in shards of {}",
                a.seeds, a.first_seed, a.shards_of, b.seeds, b.first_seed, b.shards_of
            ));
        }
        for shard in &r.plan.shards {
            if !shards.insert(*shard) {
                return Err(format!("shard {shard}/{} is in two of the reports", a.shards_of));
            }
        }
        let names = |r: &Report| r.scenarios.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        if names(r) != names(first) {
            return Err(format!("reports of different scenarios: {:?} and {:?}", names(first), names(r)));
        }
    }
    let plan = Plan {
        shards: shards.iter().copied().collect(),
        time_limit_s: first.plan.time_limit_s,
        stopped_early: reports.iter().any(|r| r.plan.stopped_early),
        ..first.plan.clone()
    };
    let mut scenarios = Vec::new();
    for (i, base) in first.scenarios.iter().enumerate() {
        let parts: Vec<&ScenarioReport> = reports.iter().map(|r| &r.scenarios[i]).collect();
        scenarios.push(merge_scenario(base, &parts, &plan)?);
    }
    let wall_s = reports.iter().map(|r| r.timing.wall_s).fold(0.0, f64::max);
    let seeds: u64 = scenarios.iter().map(|s| s.seeds_run).sum();
    let timing = Timing {
        wall_s,
        jobs: reports.iter().map(|r| r.timing.jobs).sum(),
        seeds_per_s: if wall_s > 0.0 { seeds as f64 / wall_s } else { 0.0 },
    };
    Ok(Report::new(plan, scenarios, timing))
}

fn merge_scenario(base: &ScenarioReport, parts: &[&ScenarioReport], plan: &Plan) -> Result<ScenarioReport, String> {
    let mut merged = ScenarioReport::empty(&base.name, &base.path, base.expect, base.canary.clone(), base.first_seed);
    merged.seeds_planned = parts.iter().map(|p| p.seeds_planned).max().unwrap_or(0);
    for part in parts {
        if (&part.path, part.expect, part.first_seed) != (&base.path, base.expect, base.first_seed) {
            return Err(format!("scenario {} differs between the reports", base.name));
        }
        merged.add(part);
    }
    if merged.is_canary() && plan.seeds.is_some() {
        // Each shard ran its seeds up to its own catch; the whole sweep
        // counts those up to the first catch of all.
        let caught = merged.failures.iter().map(|f| f.index).min();
        merged.seeds_run = seeds_in_shards(merged.seeds_planned, caught, plan);
    }
    merged.finish();
    Ok(merged)
}

/// How many seed indexes below `planned` (and at most `upto`) fall in the
/// plan's shards.
pub fn seeds_in_shards(planned: u64, upto: Option<u64>, plan: &Plan) -> u64 {
    let end = upto.map_or(planned, |u| (u + 1).min(planned));
    let n = plan.shards_of.max(1);
    plan.shards.iter().map(|&k| if k - 1 < end { (end - (k - 1)).div_ceil(n) } else { 0 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Seed;

    #[test]
    fn seeds_in_shards_counts_each_shards_indexes() {
        let plan = |shards: Vec<u64>| Plan {
            first_seed: Seed(1),
            seeds: Some(10),
            time_limit_s: None,
            shards,
            shards_of: 3,
            determinism_every: 0,
            stopped_early: false,
        };
        // Indexes 0..10: shard 1 holds 0,3,6,9; shard 2 holds 1,4,7; shard 3 holds 2,5,8.
        assert_eq!(seeds_in_shards(10, None, &plan(vec![1])), 4);
        assert_eq!(seeds_in_shards(10, None, &plan(vec![2, 3])), 6);
        assert_eq!(seeds_in_shards(10, Some(4), &plan(vec![1, 2, 3])), 5);
        assert_eq!(seeds_in_shards(10, Some(0), &plan(vec![2])), 0);
        assert_eq!(seeds_in_shards(10, Some(99), &plan(vec![1, 2, 3])), 10);
    }
}
