//! Observing the store after a step: what became visible, and what the
//! durable disk image holds, checked by every checker.

use super::*;

impl Sim {
    /// Brings the durable key material up to date when a check needs it:
    /// a key needs checking (`events` are about to become visible), or
    /// `search` asks P5 to look at every keyset (after a shred or a
    /// recovery). Returns whether it did.
    pub(super) fn refresh_durable(&mut self, store_id: u64, search: bool, events: &[shale_store::Event]) -> bool {
        let encrypted = self.scenario.run.encryption;
        if !encrypted || (!search && self.model.unverified_keys(events).is_empty()) {
            return false;
        }
        let keys = self
            .durable_keys
            .get_or_insert_with(|| DurableKeys::new(Path::new(STORE_DIR), store_id, self.master_key.clone()));
        keys.refresh(&self.disk, store_id);
        true
    }

    /// What would survive a crash now, as the checkers need it (`fresh`:
    /// the key material was just brought up to date).
    pub(super) fn durable(&self, fresh: bool, search: bool) -> Durable<'_> {
        let shaky = match fresh {
            true => {
                let damage = self.disk.damage().into_iter().map(|d| (d.inode, d.range));
                damage.chain(self.disk.tainted()).collect()
            }
            false => Vec::new(),
        };
        Durable { keys: self.durable_keys.as_ref().filter(|_| fresh), search, shaky }
    }

    pub(super) fn read_violation(&self, e: &ReadError) -> Stop {
        match e {
            ReadError::Integrity { .. } => self.violation(Promise::P2KeyBeforeCiphertext, e.to_string()),
            _ => self.violation(Promise::P9ModelEquivalence, e.to_string()),
        }
    }

    /// A read's value, or `None` when it failed for a reason the run
    /// excuses: the power went out during it (the machine crashes), or the
    /// disk damaged the bytes it names (noted; with `restart`, the machine
    /// restarts, as an operator would on a read error, and recovery finds
    /// the damage). Any other failure is a broken promise.
    pub(super) fn read_ok<T>(&mut self, read: Result<T, ReadError>, restart: bool) -> Result<Option<T>, Stop> {
        let e = match read {
            Ok(value) => return Ok(Some(value)),
            Err(e) => e,
        };
        match crate::excuse::read_trouble(&self.disk, &self.map, &e, &[]) {
            None => Err(self.read_violation(&e)),
            Some(ReadTrouble::PowerLost) => {
                self.note(format!("power lost during a read: {e}"));
                self.crash_point("read");
                self.crash(Vec::new());
                Ok(None)
            }
            Some(ReadTrouble::Damaged { class, inode, range }) => {
                self.note(format!("read failed on damaged bytes ({class:?}): {e}"));
                self.stats.noticed_at(&self.disk, &[(inode, range)]);
                self.full_scan_next = true;
                if restart {
                    self.crash(Vec::new());
                }
                Ok(None)
            }
        }
    }

    /// Reads what became visible since the last observation and checks it.
    pub(super) fn observe_step(&mut self, search: bool) -> Result<(), Stop> {
        self.map.absorb(&self.disk.take_writes());
        let Some(core) = &self.core else { return Ok(()) };
        let reader = core.reader();
        let mut events = Vec::new();
        loop {
            let from = self.model.view.len() as u64 + events.len() as u64 + 1;
            let Some(chunk) = self.read_ok(reader.read_from(from, OBSERVE_CHUNK), true)? else { return Ok(()) };
            if chunk.is_empty() {
                break;
            }
            events.extend(chunk);
        }
        let fresh = self.refresh_durable(reader.store_id(), search, &events);
        let durable = self.durable(fresh, search);
        let snapshot =
            Snapshot { phase: Phase::Step, events: &events, reader: &reader, durable: &durable, map: &self.map };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        if fresh {
            let verified = self.model.unverified_keys(&events);
            self.model.key_checks.verified(verified);
        }
        self.model.absorb(events);
        Ok(())
    }
}
