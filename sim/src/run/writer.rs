//! Writer steps: group commits and shreds run on the store's core, with
//! panics contained (P11) and crashes mid-step handled.

use super::*;
use shale_store::work::{next_work, Work};

impl Sim {
    /// Runs `Core::commit`, containing a panic (P11).
    pub(super) fn commit(
        &mut self,
        batches: &[shale_store::Batch],
    ) -> Result<Vec<Result<Vec<Receipt>, AppendError>>, Stop> {
        let Some(core) = self.core.as_mut() else {
            return Err(self.violation(Promise::P10Liveness, "commit with the store down"));
        };
        self.faults_before = self.disk.stats();
        self.commit_damage = self.disk.damage();
        self.commit_damage_mark = self.disk.damage_mark();
        catching(|| core.commit(batches)).map_err(|panic| Stop(Outcome::Panic { panic, step: self.step }))
    }

    pub(super) fn writer_step(&mut self) -> Result<(), Stop> {
        self.writer_scheduled = false;
        if self.core.is_none() {
            return Ok(());
        }
        // The production writer's own grouping (store/src/work.rs).
        let taken = match next_work(&mut self.inbox, self.scenario.run.group_max as usize) {
            None => return Ok(()),
            Some(Work::Shred((c, entity))) => return self.shred_step(c, entity),
            Some(Work::Commit(taken)) => taken,
        };
        let batches: Vec<_> = taken.iter().map(|&(_, uid)| self.model.batch(uid).to_batch()).collect();
        self.note(format!("writer commits {:?}", taken.iter().map(|t| t.1).collect::<Vec<_>>()));
        let results = self.commit(&batches)?;
        if !self.disk.powered() {
            self.note("power lost during commit".into());
            self.crash_point("commit");
            self.crash(taken);
            return Ok(());
        }
        let mut flush = crate::check::refusals::Flush::new(&self.model);
        for ((c, uid), result) in taken.into_iter().zip(results) {
            self.answer(c, uid, result, &mut flush)?;
        }
        self.observe_step(false)?;
        self.after_step()
    }

    /// A possible crash between steps, and the next writer step.
    pub(super) fn after_step(&mut self) -> Result<(), Stop> {
        if self.core.is_none() {
            // The step ended in a crash (a read met the power going out).
            return Ok(());
        }
        if self.fault_rng.chance(self.scenario.faults.crash_between_steps) && self.faults_stopped_at.is_none() {
            self.note("crash between steps".into());
            self.crash_point("between steps");
            self.crash(Vec::new());
            return Ok(());
        }
        // Drawn only where closes are on, so that older scripts replay.
        let close_rate = self.scenario.run.close_rate;
        if close_rate > 0.0 && self.inbox.is_empty() && self.sched_rng.chance(close_rate) {
            return self.close_cleanly();
        }
        if !self.inbox.is_empty() {
            self.writer_scheduled = true;
            let at = self.time.now();
            self.schedule(at, Event::Writer);
        }
        Ok(())
    }

    /// The store is closed as `Store::close` closes it (nothing queued: its
    /// writer answered everything): `Core::close` (a segment after a failed
    /// flush, the index checkpoint), then the core is dropped with no power
    /// lost, and the store is opened again. A close that fails loses
    /// nothing acknowledged.
    fn close_cleanly(&mut self) -> Result<(), Stop> {
        let Some(core) = self.core.as_mut() else { unreachable!("closes happen with the store up") };
        self.faults_before = self.disk.stats();
        let written = catching(|| core.close()).map_err(|panic| Stop(Outcome::Panic { panic, step: self.step }))?;
        if !self.disk.powered() {
            self.note("power lost during the checkpoint".into());
            self.crash_point("checkpoint");
            self.crash(Vec::new());
            return Ok(());
        }
        match written {
            Ok(()) => self.note("clean close: checkpoint published".into()),
            Err(e) => self.note(format!("clean close failed: {e}")),
        }
        self.exercised("clean close");
        self.shut_down();
        Ok(())
    }

    /// Runs one shred and delivers its result.
    pub(super) fn shred_step(&mut self, c: u32, entity: String) -> Result<(), Stop> {
        self.note(format!("writer shreds {entity}"));
        self.faults_before = self.disk.stats();
        let Some(core) = self.core.as_mut() else { unreachable!("writer steps run with the store up") };
        let result =
            catching(|| core.shred(&entity)).map_err(|panic| Stop(Outcome::Panic { panic, step: self.step }))?;
        if !self.disk.powered() {
            self.note("power lost during shred".into());
            self.model.shred_unknown(&entity);
            self.clients[c as usize].waiting = None;
            self.crash_point("shred");
            self.crash(Vec::new());
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
            return Ok(());
        }
        let searched = match result {
            Ok(receipt) => {
                self.note(format!("client {c} shred of {entity} acked at generation {}", receipt.generation));
                self.exercised("shred acked");
                self.stats.latency(Request::Shred, self.time.now() - self.clients[c as usize].sent_at);
                if receipt.generation > 0 {
                    self.model.shredded(&entity, receipt.generation);
                }
                true
            }
            Err(ShredError::OutcomeUnknown(e)) => {
                self.note(format!("client {c} shred of {entity} outcome unknown: {e}"));
                self.noticed_at_runtime();
                self.model.shred_unknown(&entity);
                self.model.recheck_bucket_of(&entity);
                let Some(core) = &self.core else { unreachable!("the store is up") };
                let now = core.reader().query(&shale_store::Region::entity(&entity));
                match self.read_ok(now, true)? {
                    Some(now) => self
                        .model
                        .adopt_shred(&entity, &now)
                        .map_err(|m| self.violation(Promise::P5ShredIsForever, m))?,
                    // The machine went down: the shred's outcome is
                    // settled by the recovery.
                    None => {
                        self.clients[c as usize].waiting = None;
                        let at = self.time.now() + self.scenario.run.restart_delay_ns;
                        self.schedule(at, Event::Client(c));
                        return Ok(());
                    }
                }
                false
            }
            Err(other) => return Err(self.violation(Promise::P5ShredIsForever, format!("shred of {entity}: {other}"))),
        };
        self.clients[c as usize].waiting = None;
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        self.observe_step(searched)?;
        self.after_step()
    }
}
