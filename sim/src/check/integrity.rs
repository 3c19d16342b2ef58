//! P8 integrity: every event read back is exactly what the model sent for
//! the (batch, item) its payload names, and every hash chain verifies after
//! a recovery. Corruption may be reported; it may never be returned as data.

use super::{Checker, Phase, Promise, Snapshot};
use crate::model::{tag_of, Model};

pub struct Integrity;

impl Checker for Integrity {
    fn promise(&self) -> Promise {
        Promise::P8Integrity
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let Some((uid, item)) = tag_of(event) else {
                return Err(format!("event {} has a payload no client wrote", event.global_seq));
            };
            let Some(batch) = model.batches.get(&uid) else {
                return Err(format!("event {} claims batch {uid}, which no client sent", event.global_seq));
            };
            let Some(sent) = batch.items.get(item as usize) else {
                return Err(format!(
                    "event {} claims item {item} of batch {uid}, which has {}",
                    event.global_seq,
                    batch.items.len()
                ));
            };
            if event.key_lost {
                // A key lost to damage (a salvage reported it): never on a
                // disk that lost no acknowledged writes.
                if !snapshot.durable.lossy || !event.payload.is_empty() {
                    return Err(format!("event {} reads as having lost its key on an honest disk", event.global_seq));
                }
            } else if event.shredded {
                if !model.may_be_shredded(&sent.entity, event.key_gen) || !event.payload.is_empty() {
                    return Err(format!(
                        "event {} reads as shredded, but no shred of {} covers it",
                        event.global_seq, sent.entity
                    ));
                }
            } else if *event.payload != *sent.payload {
                return Err(format!("event {} differs from item {item} of batch {uid} as sent", event.global_seq));
            }
            let same = event.coordinate.entity() == sent.entity
                && event.coordinate.scope() == sent.scope
                && *event.kind == *sent.kind;
            if !same {
                return Err(format!("event {} differs from item {item} of batch {uid} as sent", event.global_seq));
            }
        }
        if let Phase::Recovery { .. } = snapshot.phase {
            if let Err(global) = snapshot.reader.verify_chains() {
                return Err(format!("hash chain does not verify at event {global}"));
            }
        }
        Ok(())
    }
}
