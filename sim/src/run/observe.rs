//! Observing the store after a step: what became visible, and what the
//! durable disk image holds, checked by every checker.

use super::*;

impl Sim {
    /// What would survive a crash now, as the checkers need it; `files`
    /// also takes every durable file (to search for shredded keys).
    pub(super) fn durable(&self, store_id: u64, files: bool) -> Durable {
        let keyset = self.scenario.run.encryption.then(|| {
            let path = std::path::Path::new(STORE_DIR).join(shale_store::keyset::KEYS_NAME);
            match self.disk.durable_file(&path) {
                Some(bytes) => Keyset::decode(&bytes, store_id, self.master_key.as_ref()).map_err(|e| e.to_string()),
                None => Err("there is no durable keyset".into()),
            }
        });
        Durable { keyset, files: files.then(|| self.disk.durable_image()), lossy: self.disk.stats().any_lossy() }
    }

    /// Remembers the keys of the durable keyset, so that P5 can look for
    /// them after a shred.
    pub(super) fn learn_keys(&mut self, durable: &Durable) {
        if let Some(Ok(keyset)) = &durable.keyset {
            for (entity, entry) in keyset.iter() {
                if let Some(key) = &entry.key {
                    self.model.known_keys.insert((entity.to_owned(), entry.generation), *key.expose_secret());
                }
            }
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
        let durable = self.durable(reader.store_id(), search_files);
        let snapshot = Snapshot { phase: Phase::Step, events: &events, reader: &reader, durable: &durable };
        check_all(&self.checkers, &self.model, &snapshot)
            .map_err(|v| Stop(Outcome::Violation { violation: v, step: self.step }))?;
        self.learn_keys(&durable);
        self.model.absorb(events);
        Ok(())
    }
}
