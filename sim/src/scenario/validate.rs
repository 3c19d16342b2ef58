//! What a scenario file may say: every knob in its range, named in the
//! error when it is not.

use super::{Expect, Scenario, ScheduledFault};
use shale_store::canary::Canary;
use shale_store::limits::{GROUP_REQUESTS_MAX, SCAN_WINDOW_MIN, SEGMENT_SIZE_MIN};

/// Most client operations a run may ask for.
pub const OPERATIONS_MAX: u64 = 1_000_000;
/// Most simulated clients.
pub const CLIENTS_MAX: u32 = 64;

impl Scenario {
    /// Every probability the scenario sets, by its name in the file (sums
    /// that are probabilities too included).
    fn probabilities(&self) -> Vec<(&'static str, f64)> {
        let (d, w) = (&self.faults.disk, &self.workload);
        vec![
            ("faults.disk.crash_persist", d.crash_persist),
            ("faults.disk.crash_torn", d.crash_torn),
            ("faults.disk.crash_persist + crash_torn", d.crash_persist + d.crash_torn),
            ("faults.disk.torn_keep", d.torn_keep),
            ("faults.disk.torn_garbage", d.torn_garbage),
            ("faults.disk.torn_keep + torn_garbage", d.torn_keep + d.torn_garbage),
            ("faults.disk.fsync_fail", d.fsync_fail),
            ("faults.disk.fsync_lie", d.fsync_lie),
            ("faults.disk.fsync_fail + fsync_lie", d.fsync_fail + d.fsync_lie),
            ("faults.disk.dir_sync_fail", d.dir_sync_fail),
            ("faults.disk.read_latent_error", d.read_latent_error),
            ("faults.disk.read_bit_rot", d.read_bit_rot),
            ("faults.disk.misdirected_write", d.misdirected_write),
            ("faults.disk.read_short", d.read_short),
            ("faults.disk.read_error", d.read_error),
            ("faults.disk.write_error", d.write_error),
            ("faults.disk.rename_error", d.rename_error),
            ("faults.disk.lost_write", d.lost_write),
            ("faults.disk.stale_frame", d.stale_frame),
            ("faults.disk.crash_per_op", d.crash_per_op),
            ("faults.crash_between_steps", self.faults.crash_between_steps),
            ("run.close_rate", self.run.close_rate),
            ("workload.expected_version_rate", w.expected_version_rate),
            ("workload.stale_version_rate", w.stale_version_rate),
            ("workload.idempotency_rate", w.idempotency_rate),
            ("workload.retry_rate", w.retry_rate),
            ("workload.cause_rate", w.cause_rate),
            ("workload.bogus_cause_rate", w.bogus_cause_rate),
            ("workload.explode_rate", w.explode_rate),
            ("workload.correlation_rate", w.correlation_rate),
            ("workload.key_reuse_rate", w.key_reuse_rate),
            ("workload.invalid_rate", w.invalid_rate),
        ]
    }

    /// Checks every knob a run depends on; the error names the first one
    /// out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sweep_share > 0.0 && self.sweep_share <= 1.0) {
            return Err(format!("sweep_share = {} is outside (0, 1]", self.sweep_share));
        }
        if self.script.is_some() && self.faults.swarm {
            return Err("a script lists every choice of a run: it needs faults.swarm = false".into());
        }
        let r = &self.run;
        if r.clients == 0 || r.clients > CLIENTS_MAX {
            return Err(format!("run.clients = {} is outside 1..={CLIENTS_MAX}", r.clients));
        }
        if r.group_max == 0 || r.group_max as usize > GROUP_REQUESTS_MAX {
            return Err(format!("run.group_max = {} is outside 1..={GROUP_REQUESTS_MAX}", r.group_max));
        }
        if r.segment_size < SEGMENT_SIZE_MIN {
            return Err(format!("run.segment_size = {} is below {SEGMENT_SIZE_MIN}", r.segment_size));
        }
        if r.scan_window < SCAN_WINDOW_MIN {
            return Err(format!("run.scan_window = {} is below {SCAN_WINDOW_MIN}", r.scan_window));
        }
        if r.operations > OPERATIONS_MAX {
            return Err(format!("run.operations = {} is over {OPERATIONS_MAX}", r.operations));
        }
        if r.steps_max == 0 || r.sim_time_max_ns == 0 || r.liveness_ns == 0 {
            return Err("run.steps_max, run.sim_time_max_ns and run.liveness_ns must be positive".into());
        }
        let w = &self.workload;
        if w.batch_max == 0 || w.entities == 0 || w.payload_max < 12 {
            return Err("workload.batch_max and workload.entities must be positive, payload_max at least 12".into());
        }
        if w.weights.append + w.weights.batch == 0 {
            return Err("the workload must write (workload.weights.append or batch above zero)".into());
        }
        if w.weights.shred > 0 && !r.encryption {
            return Err("workload.weights.shred needs run.encryption = true".into());
        }
        if r.master_key && !r.encryption {
            return Err("run.master_key needs run.encryption = true".into());
        }
        let d = &self.faults.disk;
        if d.sector_size == 0 || !d.sector_size.is_power_of_two() {
            return Err(format!("faults.disk.sector_size = {} is not a power of two", d.sector_size));
        }
        for (name, p) in self.probabilities() {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p} is not a probability (0..=1)"));
            }
        }
        for (i, fault) in self.faults.schedule.iter().enumerate() {
            let bad = match fault {
                ScheduledFault::Crash { at_op } => (*at_op == 0).then_some("at_op"),
                ScheduledFault::FailFsync { nth, .. } | ScheduledFault::LieFsync { nth, .. } => {
                    (*nth == 0).then_some("nth")
                }
            };
            if let Some(field) = bad {
                return Err(format!("faults.schedule[{i}].{field} counts from 1"));
            }
        }
        match (&self.canary, self.expect) {
            (Some(canary), _) if Canary::from_name(canary).is_none() => Err(format!("unknown canary {canary:?}")),
            (Some(_), Expect::Pass) => Err("a canary scenario must say expect = \"must_fail\"".into()),
            (None, Expect::MustFail) => Err("expect = \"must_fail\" needs a canary (a planted bug)".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_knob_is_named() {
        let bad = |f: &dyn Fn(&mut Scenario)| {
            let mut s = Scenario::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(&|s| s.faults.disk.read_error = 1.5).contains("faults.disk.read_error"));
        assert!(bad(&|s| s.faults.disk.lost_write = -0.1).contains("faults.disk.lost_write"));
        assert!(bad(&|s| s.workload.retry_rate = 2.0).contains("workload.retry_rate"));
        assert!(
            bad(&|s| s.faults.schedule.push(ScheduledFault::LieFsync { file: "seg".into(), nth: 0 })).contains("nth")
        );
        assert!(bad(&|s| s.expect = Expect::MustFail).contains("needs a canary"));
        assert!(bad(&|s| s.canary = Some("ack_before_fsync".into())).contains("must_fail"));
        assert!(bad(&|s| s.run.steps_max = 0).contains("steps_max"));
        assert_eq!(Scenario::default().validate(), Ok(()));
    }
}
