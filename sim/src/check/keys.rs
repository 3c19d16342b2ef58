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

use std::path::Path;

use super::durable_keys::DurableRecord;
use super::{Checker, Phase, Promise, Snapshot};
use crate::model::Model;

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
        // A keyset published under a lying fsync may be an older one on the
        // medium, without the wrapping key a new record needs.
        let keyset_shaky = snapshot.durable.shaky.iter().any(|(inode, _)| keys.is_store_keyset(*inode));
        for (entity, generation) in needed {
            let opens = keys.open(&entity, generation).is_some();
            let excused = keyset_shaky || shaky(snapshot, &entity, generation);
            if !opens && !model.may_be_shredded(&entity, generation) && !excused {
                return Err(format!(
                    "the durable image does not open {entity}'s key generation {generation}, and its events are visible"
                ));
            }
        }
        Ok(())
    }
}

/// Whether every durable copy of `(entity, generation)`'s key may have been
/// lost: some record of it the store wrote (with the first events sealed
/// with it, or rewrapped by a shred in its bucket) was acknowledged by a
/// lying fsync and is still pending, or lossy damage hit it, its group, or
/// its segment before it (a reader of the segment, recovery included,
/// accepts a record only in a whole group and cannot get past damage).
fn shaky(snapshot: &Snapshot<'_>, entity: &str, generation: u32) -> bool {
    snapshot
        .map
        .key_records(entity, generation)
        .iter()
        .any(|(inode, record)| snapshot.durable.shaky.iter().any(|(i, r)| i == inode && r.start < record.end))
}

pub struct ShredIsForever;

impl Checker for ShredIsForever {
    fn promise(&self) -> Promise {
        Promise::P5ShredIsForever
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let entity = event.coordinate.entity();
            let acked = model.shred_covering(event);
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
        // A keyset salvage set aside (both copies were unusable, and a
        // fresh keyset took their place) is the operator's, out of a later
        // shred's reach, as FORMAT.md says: the store never reads it again.
        // Entity keys in the clear anywhere, salvage included, are caught
        // above. Each wrapping key a keyset holds is tried on the records
        // written under its bucket and generation that a shred covers.
        let salvage = Path::new(crate::run::STORE_DIR).join(shale_store::journal::recover::SALVAGE_DIR);
        for (path, ks) in keys.keysets().filter(|(path, _)| !path.starts_with(&salvage)) {
            for (bucket, wrap) in ks.iter() {
                let shredded = |r: &&DurableRecord| model.shred_through(&r.entity).is_some_and(|t| r.generation <= t);
                let records = keys.records_wrapped_under(bucket, wrap.generation).filter(shredded);
                if let Some(record) = records.into_iter().find(|record| keys.open_with(ks, record).is_some()) {
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
