//! P2 key before ciphertext and P5 shred is forever.
//!
//! P2, after every step: the durable image alone opens the key of every
//! visible, unshredded sealed event (a key record of a committed group,
//! wrapped under a wrapping key the newest valid keyset copy holds). After
//! a recovery, the runner also reads every event back, so each one must
//! open. P5: no durable file ever holds an entity key in the clear; once a
//! shred is acknowledged, no read returns the entity's payloads sealed
//! under the shredded generations, and, after the shred and after every
//! recovery, no durable keyset holds a wrapping key that opens one of their
//! durable key records.

use super::{Checker, Phase, Promise, Snapshot};
use crate::model::{tag_of, Model};

pub struct KeyBeforeCiphertext;

impl Checker for KeyBeforeCiphertext {
    fn promise(&self) -> Promise {
        Promise::P2KeyBeforeCiphertext
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        if let Phase::Recovery(_) = snapshot.phase {
            // The runner read every event back from the disk as the crash
            // left it: each sealed one opened, or the read failed.
            return Ok(());
        }
        let needed = model.unverified_keys(snapshot.events);
        if needed.is_empty() {
            return Ok(());
        }
        let Some(keys) = snapshot.durable.keys else {
            unreachable!("the runner reads the durable keys when a key needs checking")
        };
        for (entity, generation) in needed {
            let opens = keys.open(&entity, generation).is_some();
            if !opens && !model.may_be_shredded(&entity, generation) && !shaky(model, snapshot, &entity, generation) {
                return Err(format!(
                    "the durable image does not open {entity}'s key generation {generation}, and its events are visible"
                ));
            }
        }
        Ok(())
    }
}

/// Whether a batch that carries `(entity, generation)`'s key record may
/// have lost it: its bytes were acknowledged by a lying fsync and are still
/// pending, or lossy damage hit them or its segment before them (a reader
/// of the segment, recovery included, cannot get past damage to reach it).
/// A key travels in the group of the first event sealed with it, so it goes
/// wherever that batch goes.
fn shaky(model: &Model, snapshot: &Snapshot<'_>, entity: &str, generation: u32) -> bool {
    let first_hash = |uid: u64| {
        let fresh = snapshot.events.iter().find(|e| tag_of(e) == Some((uid, 0))).map(|e| e.hash);
        model.copy_hash.get(&uid).copied().or(fresh)
    };
    model
        .view
        .iter()
        .chain(snapshot.events)
        .filter(|e| e.coordinate.entity() == entity && e.key_gen == generation)
        .filter_map(|e| first_hash(tag_of(e)?.0))
        .filter_map(|hash| snapshot.map.copy(&hash))
        .any(|loc| {
            let touched = |(inode, r): &(u64, std::ops::Range<u64>)| *inode == loc.inode && r.start < loc.range.end;
            snapshot.durable.shaky.iter().any(touched)
        })
}

pub struct ShredIsForever;

impl Checker for ShredIsForever {
    fn promise(&self) -> Promise {
        Promise::P5ShredIsForever
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let entity = event.coordinate.entity();
            let acked = model.acked_shred(entity).filter(|g| event.key_gen <= *g);
            let clear = event.key_gen > 0 && !event.shredded && !event.key_lost;
            if let Some(through) = acked.filter(|_| clear) {
                return Err(format!(
                    "event {} of {entity} (key generation {}) reads in the clear after its shred through \
                     generation {through} was acknowledged",
                    event.global_seq, event.key_gen
                ));
            }
        }
        let Some(keys) = snapshot.durable.keys else { return Ok(()) };
        if let Some(clear) = keys.clear().first() {
            return Err(format!(
                "{}'s key generation {} is in the clear in {} at byte {}",
                clear.entity,
                clear.generation,
                clear.path.display(),
                clear.offset
            ));
        }
        if !snapshot.durable.search {
            return Ok(());
        }
        for (entity, through) in model.acked_shreds() {
            for record in keys.records_of(entity, through) {
                if let Some((path, ks)) = keys.keysets().find(|(_, ks)| keys.open_with(ks, record).is_some()) {
                    return Err(format!(
                        "{} (sequence {}) still opens {}'s shredded key generation {} (a record wrapped under \
                         wrapping key {})",
                        path.display(),
                        ks.sequence,
                        record.entity,
                        record.generation,
                        record.wrap_generation
                    ));
                }
            }
        }
        Ok(())
    }
}
