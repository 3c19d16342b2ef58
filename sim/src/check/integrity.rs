//! P8 integrity: every event read back is exactly what the model sent for
//! the (batch, item) its payload names. (That every hash chain verifies
//! after a recovery is checked as the recovery is read back, in
//! `run/recovery.rs`: reading the chains may meet a failing disk.)
//! Corruption may be reported; it may never be returned as data.

use super::{Checker, Phase, Promise, Snapshot};
use crate::model::{tag_of, tagged_scope, Model};

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
                // A key lost to damage: only after a recovery that reported
                // it, with lossy damage to the keyset or the journal (the
                // record of the key, or of a shred, set aside behind it);
                // or one an earlier recovery reported (its salvage recorded
                // the loss), or one an interrupted recovery may have
                // recorded before its report was seen.
                let key = (sent.entity.clone(), event.key_gen);
                let reported = model.lost_keys.contains(&key)
                    || match &snapshot.phase {
                        Phase::Recovery(view) => {
                            (view.report.keys_lost.contains(&key) || view.interrupted)
                                && (view.excuses.keyset_damaged() || view.excuses.journal_damaged())
                        }
                        Phase::Step => false,
                    };
                if !reported || !event.payload.is_empty() {
                    return Err(format!(
                        "event {} reads as having lost its key, and no reported damage explains it",
                        event.global_seq
                    ));
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
                && event.coordinate.scope() == tagged_scope(&sent.scope, uid, item)
                && *event.kind == *sent.kind;
            if !same {
                return Err(format!("event {} differs from item {item} of batch {uid} as sent", event.global_seq));
            }
        }
        Ok(())
    }
}
