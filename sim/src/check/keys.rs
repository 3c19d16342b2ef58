//! P2 key before ciphertext and P5 shred is forever.
//!
//! P2, after every step: the durable keyset holds the key of every
//! visible, unshredded sealed event (after a recovery, the runner also
//! reads every event back, so each one must open). P5: once a shred is
//! acknowledged, no read returns the entity's payloads sealed under the
//! shredded generations, and — after the shred and after every recovery —
//! the key bytes are in no durable file.

use std::collections::BTreeMap;

use super::{Checker, Promise, Snapshot};
use crate::model::Model;
use shale_store::keyset::KeyStatus;

pub struct KeyBeforeCiphertext;

impl Checker for KeyBeforeCiphertext {
    fn promise(&self) -> Promise {
        Promise::P2KeyBeforeCiphertext
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let Some(keyset) = &snapshot.durable.keyset else { return Ok(()) };
        let keyset = match keyset {
            Ok(keyset) => keyset,
            Err(_) if snapshot.durable.lossy => return Ok(()),
            Err(reason) => return Err(format!("the durable keyset is unusable: {reason}")),
        };
        let fresh = snapshot
            .events
            .iter()
            .filter(|e| e.key_gen > 0 && !e.shredded)
            .map(|e| (e.coordinate.entity().to_owned(), e.key_gen));
        let visible = model.key_needs.iter().cloned();
        for (entity, generation) in visible.chain(fresh) {
            match keyset.status(&entity, generation) {
                KeyStatus::Live(_) => {}
                KeyStatus::Shredded if model.may_be_shredded(&entity, generation) => {}
                other => {
                    let state = if other == KeyStatus::Missing { "missing from" } else { "shredded in" };
                    return Err(format!("{entity}'s key generation {generation} is {state} the durable keyset, and its events are visible"));
                }
            }
        }
        Ok(())
    }
}

pub struct ShredIsForever;

impl Checker for ShredIsForever {
    fn promise(&self) -> Promise {
        Promise::P5ShredIsForever
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let entity = event.coordinate.entity();
            if event.key_gen > 0 && !event.shredded && model.acked_shred(entity).is_some_and(|g| event.key_gen <= g) {
                return Err(format!(
                    "event {} of {entity} reads in the clear after its shred was acknowledged",
                    event.global_seq
                ));
            }
        }
        let Some(files) = &snapshot.durable.files else { return Ok(()) };
        let mut shredded: BTreeMap<[u8; 32], (&str, u32)> = BTreeMap::new();
        for (entity, generation) in model.shreds.iter().filter_map(|(e, g)| Some((e, (*g)?))) {
            for ((e, g), key) in model.known_keys.range((entity.clone(), 0)..=(entity.clone(), generation)) {
                shredded.insert(*key, (e, *g));
            }
        }
        if shredded.is_empty() {
            return Ok(());
        }
        // Keys are random: a filter on their first two bytes turns away
        // almost every window before the full comparison.
        let mut prefixes = vec![false; 1 << 16];
        for key in shredded.keys() {
            prefixes[usize::from(u16::from_le_bytes([key[0], key[1]]))] = true;
        }
        for (path, bytes) in files {
            for window in bytes.windows(32) {
                if !prefixes[usize::from(u16::from_le_bytes([window[0], window[1]]))] {
                    continue;
                }
                let mut candidate = [0u8; 32];
                candidate.copy_from_slice(window);
                if let Some((entity, generation)) = shredded.get(&candidate) {
                    return Err(format!(
                        "{entity}'s shredded key generation {generation} is still in {}",
                        path.display()
                    ));
                }
            }
        }
        Ok(())
    }
}
