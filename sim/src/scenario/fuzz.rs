//! Scenarios built from fuzzer bytes.

use super::Scenario;

impl Scenario {
    /// A scenario drawn from fuzzer bytes: every knob within the ranges
    /// `validate` accepts, runs kept short so a fuzzer gets many per second.
    /// Only planted-bug-free, `pass` scenarios: any violation is a finding.
    pub fn from_fuzz(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Scenario> {
        let mut s = Scenario { name: "fuzz".into(), ..Scenario::default() };
        let unit = |u: &mut arbitrary::Unstructured<'_>, max: f64| -> arbitrary::Result<f64> {
            Ok(f64::from(u.int_in_range(0..=1000u32)?) / 1000.0 * max)
        };
        s.run.clients = u.int_in_range(1..=6)?;
        s.run.operations = u.int_in_range(1..=120)?;
        s.run.group_max = u.int_in_range(1..=16)?;
        s.run.segment_size = u.int_in_range(4096..=32768)?;
        s.run.encryption = u.arbitrary()?;
        s.run.master_key = s.run.encryption && u.arbitrary()?;
        s.run.gates = u.arbitrary()?;
        let w = &mut s.workload;
        w.batch_max = u.int_in_range(1..=8)?;
        w.entities = u.int_in_range(1..=8)?;
        w.payload_max = u.int_in_range(20..=200)?;
        w.expected_version_rate = unit(u, 1.0)?;
        w.idempotency_rate = unit(u, 1.0)?;
        w.retry_rate = unit(u, 1.0)?;
        w.cause_rate = unit(u, 1.0)?;
        // libFuzzer aborts on any panic, even one the store contains, so the
        // panicking gate stays out of fuzzed runs (the sweeps cover it).
        w.explode_rate = 0.0;
        w.weights.append = u.int_in_range(1..=6)?;
        w.weights.batch = u.int_in_range(0..=6)?;
        w.weights.read_from = u.int_in_range(0..=3)?;
        w.weights.walk = u.int_in_range(0..=3)?;
        w.weights.shred = if s.run.encryption { u.int_in_range(0..=3)? } else { 0 };
        let d = &mut s.faults.disk;
        d.sector_size = 1 << u.int_in_range(6..=12)?;
        d.crash_persist = unit(u, 1.0)?;
        d.crash_torn = unit(u, 1.0 - d.crash_persist)?;
        d.fsync_fail = unit(u, 0.1)?;
        d.fsync_lie = unit(u, 0.05)?;
        d.dir_sync_fail = unit(u, 0.1)?;
        d.rename_error = unit(u, 0.05)?;
        d.read_bit_rot = unit(u, 0.01)?;
        d.read_latent_error = unit(u, 0.01)?;
        d.misdirected_write = unit(u, 0.02)?;
        d.read_short = unit(u, 0.3)?;
        d.read_error = unit(u, 0.05)?;
        d.write_error = unit(u, 0.05)?;
        d.crash_per_op = unit(u, 0.02)?;
        s.faults.crash_between_steps = unit(u, 0.1)?;
        debug_assert_eq!(s.validate(), Ok(()));
        Ok(s)
    }
}
