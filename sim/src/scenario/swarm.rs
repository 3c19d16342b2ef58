//! Swarm testing: a scenario with `faults.swarm` has its fault rates and
//! operation mix drawn per seed, so that a sweep covers many shapes of run
//! (some operations or faults switched off entirely) from one file.

use super::Scenario;
use crate::rng::SimRng;

impl Scenario {
    /// The scenario as this seed runs it: with `swarm`, fault rates and the
    /// operation mix are drawn from the seed (some operations switched off).
    pub fn derive(&self, seed: u64) -> Scenario {
        let mut s = self.clone();
        if !self.faults.swarm {
            return s;
        }
        let mut rng = SimRng::stream(seed, "swarm");
        let mut rate = |max: f64| if rng.chance(0.5) { rng.unit() * max } else { 0.0 };
        let d = &mut s.faults.disk;
        d.fsync_fail = rate(0.05);
        d.fsync_lie = rate(0.02);
        d.dir_sync_fail = rate(0.05);
        d.read_latent_error = rate(0.002);
        d.read_bit_rot = rate(0.002);
        d.misdirected_write = rate(0.01);
        d.read_short = rate(0.2);
        d.read_error = rate(0.02);
        d.write_error = rate(0.02);
        d.rename_error = rate(0.02);
        d.crash_per_op = rate(0.01);
        d.crash_persist = 0.2 + rate(0.7);
        d.crash_torn = (1.0 - d.crash_persist) * rate(1.0);
        s.faults.crash_between_steps = rate(0.05);
        let mut rng = SimRng::stream(seed, "swarm-ops");
        let w = &mut s.workload.weights;
        for weight in [&mut w.batch, &mut w.get, &mut w.query, &mut w.read_from, &mut w.shred, &mut w.walk] {
            if rng.chance(0.3) {
                *weight = 0;
            }
        }
        if w.append + w.batch == 0 {
            w.append = 1;
        }
        s.workload.expected_version_rate = rng.unit() * 0.6;
        s.workload.idempotency_rate = rng.unit();
        s
    }
}
