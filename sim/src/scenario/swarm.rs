//! Swarm testing: a scenario with `faults.swarm` has everything but its
//! length drawn per seed, so that a sweep covers many shapes of run from
//! one file: every fault rate (each class off in about half the seeds, disk
//! full included), the store's optional features (encryption, a master
//! key, shreds, gates, a panicking gate), the run's shape (segment size,
//! clients, group size, batch and payload sizes, entities) and the
//! workload's mix and edges. A sweep prints how many seeds exercised each
//! fault class and feature; the sweep test requires 20 % of each over its
//! 200 seeds (crash-time reordering, the rarest, needs two writes pending
//! at one crash: a third of the seeds get a disk that lies often, which
//! leaves writes pending across syncs).

use super::Scenario;
use crate::rng::SimRng;
use shale_store::limits::SCAN_WINDOW_DEFAULT;

/// Picks one of `choices`.
fn pick<T: Copy>(rng: &mut SimRng, choices: &[T]) -> T {
    choices[rng.below(choices.len() as u64) as usize]
}

/// A rate: off in half the seeds, else uniform up to `max`.
fn rate(rng: &mut SimRng, max: f64) -> f64 {
    if rng.chance(0.5) {
        rng.unit() * max
    } else {
        0.0
    }
}

impl Scenario {
    /// The scenario as this seed runs it: with `swarm`, drawn from the seed
    /// (the operation count, budgets and schedule stay as written).
    pub fn derive(&self, seed: u64) -> Scenario {
        let mut s = self.clone();
        if !self.faults.swarm {
            return s;
        }
        s.draw_faults(&mut SimRng::stream(seed, "swarm"));
        s.draw_shape(&mut SimRng::stream(seed, "swarm-shape"));
        s.draw_workload(&mut SimRng::stream(seed, "swarm-ops"));
        if let Err(why) = s.validate() {
            unreachable!("swarm drew an invalid scenario for seed {seed:#x}: {why}");
        }
        s
    }

    fn draw_faults(&mut self, rng: &mut SimRng) {
        let d = &mut self.faults.disk;
        d.fsync_fail = rate(rng, 0.05);
        // Lies leave writes pending across syncs: what a crash then reorders.
        // A third of the seeds get a disk that lies often.
        let lies_often = rng.chance(0.35);
        d.fsync_lie = if lies_often { 0.1 + rng.unit() * 0.3 } else { rate(rng, 0.04) };
        d.dir_sync_fail = rate(rng, 0.05);
        // Disk reads happen in recovery only, a few per run: rates high
        // enough that sector damage shows up in a fair share of seeds.
        d.read_latent_error = rate(rng, 0.03);
        d.read_bit_rot = rate(rng, 0.02);
        d.misdirected_write = rate(rng, 0.02);
        d.lost_write = rate(rng, 0.02);
        d.stale_frame = rate(rng, 0.02);
        d.read_short = rate(rng, 0.2);
        d.read_error = rate(rng, 0.02);
        d.write_error = rate(rng, 0.02);
        d.rename_error = rate(rng, 0.02);
        // Crashes inside operations find unsynced writes to lose, tear and
        // reorder; crashes between steps rarely do.
        d.crash_per_op = if rng.chance(0.8) { rng.unit() * 0.03 } else { 0.0 };
        // Where writes pile up pending, a crash keeps some and loses others.
        d.crash_per_op = if lies_often { d.crash_per_op.max(0.005) } else { d.crash_per_op };
        d.crash_persist = if lies_often { 0.3 + rng.unit() * 0.4 } else { 0.1 + rng.unit() * 0.7 };
        d.crash_torn = (1.0 - d.crash_persist) * if rng.chance(0.85) { 0.3 + 0.7 * rng.unit() } else { 0.0 };
        d.torn_keep = rng.unit();
        d.torn_garbage = (1.0 - d.torn_keep) * rng.unit();
        d.sector_size = pick(rng, &[64, 512, 512, 4096]);
        // Disk full: a disk of 16 to 128 KiB in half the seeds (most runs
        // write more than that).
        if rng.chance(0.5) {
            d.capacity = (16 * 1024) << rng.below(4);
        }
        self.faults.crash_between_steps = if rng.chance(0.6) { rng.unit() * 0.05 } else { 0.0 };
    }

    fn draw_shape(&mut self, rng: &mut SimRng) {
        let r = &mut self.run;
        r.encryption = rng.chance(0.5);
        r.master_key = r.encryption && rng.chance(0.6);
        r.gates = rng.chance(0.5);
        r.clients = rng.between(1, 8) as u32;
        r.group_max = pick(rng, &[1, 2, 4, 8, 16, 32, 64]);
        r.segment_size = pick(rng, &[4096, 8192, 16384, 65536, 1 << 20]);
        let w = &mut self.workload;
        w.batch_max = rng.between(1, 8) as u32;
        w.entities = pick(rng, &[2, 4, 12, 40]);
        w.payload_max = pick(rng, &[12, 32, 96, 256, 512]);
        w.explode_rate = if r.gates && rng.chance(0.6) { 0.02 + rng.unit() * 0.08 } else { 0.0 };
        // The index checkpoint: on close only, or every few segments; clean
        // closes (each publishes one) in most seeds.
        r.checkpoint_every = pick(rng, &[0, 1, 2, 4, 8]);
        r.close_rate = if rng.chance(0.7) { 0.005 + rng.unit() * 0.05 } else { 0.0 };
        // Recovery reads segments whole, or in windows that cut groups.
        r.scan_window = pick(rng, &[4096, 8192, SCAN_WINDOW_DEFAULT]);
    }

    fn draw_workload(&mut self, rng: &mut SimRng) {
        let encrypted = self.run.encryption;
        let w = &mut self.workload;
        let weights = &mut w.weights;
        for weight in [
            &mut weights.append,
            &mut weights.batch,
            &mut weights.get,
            &mut weights.query,
            &mut weights.read_from,
            &mut weights.walk,
        ] {
            *weight = if rng.chance(0.3) { 0 } else { rng.between(1, 8) as u32 };
        }
        if weights.append + weights.batch == 0 {
            weights.append = 1;
        }
        weights.shred = if encrypted && rng.chance(0.7) { rng.between(1, 4) as u32 } else { 0 };
        w.expected_version_rate = rng.unit() * 0.6;
        w.stale_version_rate = rng.unit() * 0.5;
        w.idempotency_rate = rng.unit();
        w.retry_rate = rng.unit();
        w.cause_rate = rng.unit() * 0.6;
        w.bogus_cause_rate = rng.unit() * 0.2;
        w.correlation_rate = rng.unit() * 0.5;
        w.key_reuse_rate = rng.unit() * 0.05;
        w.invalid_rate = rng.unit() * 0.05;
    }
}
