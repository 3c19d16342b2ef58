//! Observing the store after a step: what became visible, and what the
//! durable disk image holds, checked by every checker.

use super::*;

impl Sim {
    /// What would survive a crash now, as the checkers need it: the key
    /// material when a key needs checking (`events` are about to become
    /// visible), and with `files` every durable file (to search them after a
    /// shred or a recovery).
    pub(super) fn durable(&self, store_id: u64, files: bool, events: &[shale_store::Event]) -> Durable {
        let encrypted = self.scenario.run.encryption;
        let need_keys = encrypted && (files || !self.model.unverified_keys(events).is_empty());
        let image = (need_keys || files).then(|| self.disk.durable_image());
        let keys = match (&image, need_keys) {
            (Some(image), true) => {
                Some(DurableKeys::read(image, Path::new(STORE_DIR), store_id, self.master_key.as_ref()))
            }
            _ => None,
        };
        let shaky = match need_keys {
            true => {
                let damage = self.disk.damage().into_iter().map(|d| (d.inode, d.range));
                damage.chain(self.disk.tainted()).collect()
            }
            false => Vec::new(),
        };
        Durable { keys, files: image.filter(|_| files), shaky }
    }

    /// Remembers every key the durable image opens, so that P5 can look for
    /// them after a shred.
    pub(super) fn learn_keys(&mut self, durable: &Durable) {
        if let Some(keys) = &durable.keys {
            self.model.known_keys.extend(keys.opened());
        }
    }

    pub(super) fn read_violation(&self, e: &ReadError) -> Stop {
        match e {
            ReadError::Integrity { .. } => self.violation(Promise::P2KeyBeforeCiphertext, e.to_string()),
            _ => self.violation(Promise::P9ModelEquivalence, e.to_string()),
        }
    }

    /// Reads what became visible since the last observation and checks it.
    pub(super) fn observe_step(&mut self, search_files: bool) -> Result<(), Stop> {
        self.map.absorb(&self.disk.take_writes());
        let Some(core) = &self.core else { return Ok(()) };
        let reader = core.reader();
        let mut events = Vec::new();
        loop {
            let from = self.model.view.len() as u64 + events.len() as u64 + 1;
            let chunk = reader.read_from(from, OBSERVE_CHUNK).map_err(|e| self.read_violation(&e))?;
            if chunk.is_empty() {
                break;
            }
            events.extend(chunk);
        }
        let durable = self.durable(reader.store_id(), search_files, &events);
        let snapshot =
            Snapshot { phase: Phase::Step, events: &events, reader: &reader, durable: &durable, map: &self.map };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        self.learn_keys(&durable);
        if durable.keys.is_some() {
            let verified = self.model.unverified_keys(&events);
            self.model.verified_keys.extend(verified);
        }
        self.model.absorb(events);
        Ok(())
    }
}
