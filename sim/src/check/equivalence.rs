//! P9 model equivalence: global and entity sequences are gap-free, no batch
//! is visible twice, expected versions were honoured, and between crashes
//! the visible batches are exactly the acknowledged ones at the positions
//! their receipts named: nothing visible before its durable ack, nothing
//! acknowledged missing.

use std::collections::BTreeMap;

use super::{Checker, Phase, Promise, Snapshot};
use crate::model::{tag_of, Fate, Model};

pub struct Equivalence;

impl Checker for Equivalence {
    fn promise(&self) -> Promise {
        Promise::P9ModelEquivalence
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
        let mut started: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, event) in snapshot.events.iter().enumerate() {
            let due = model.view.len() as u64 + 1 + i as u64;
            if event.global_seq != due {
                return Err(format!("global sequence {} where {due} was due", event.global_seq));
            }
            let entity = event.coordinate.entity();
            let version = versions.entry(entity).or_insert_with(|| model.version(entity));
            if event.entity_seq != *version + 1 {
                return Err(format!("entity {entity} jumps from version {version} to {}", event.entity_seq));
            }
            *version = event.entity_seq;
            let Some((uid, item)) = tag_of(event) else { continue };
            if let Some(expected) = model.batches.get(&uid).and_then(|b| b.items.get(item as usize)?.expected_version) {
                if event.entity_seq != expected + 1 {
                    return Err(format!(
                        "item {item} of batch {uid} expected version {expected} but landed at {}",
                        event.entity_seq
                    ));
                }
            }
            if item == 0 {
                if model.present.contains_key(&uid) || started.insert(uid, event.global_seq).is_some() {
                    return Err(format!("batch {uid} is visible twice"));
                }
                let fate = &model.batch(uid).fate;
                match (&snapshot.phase, fate) {
                    (Phase::Step, Fate::Acked(globals)) if globals.first() == Some(&event.global_seq) => {}
                    (Phase::Step, Fate::Acked(globals)) => {
                        return Err(format!(
                            "batch {uid} visible at {} but acknowledged at {globals:?}",
                            event.global_seq
                        ));
                    }
                    (Phase::Step, other) => {
                        return Err(format!("batch {uid} visible without a durable ack (fate {other:?})"));
                    }
                    // An outcome-unknown batch a recovery found absent has
                    // real bytes somewhere past a segment's recorded end. A
                    // salvage (after damage lost that record) may bring them
                    // back, reported or in an attempt that failed or was
                    // cut short after setting files aside; nothing else may.
                    (Phase::Recovery(view), Fate::Gone)
                        if view.report.corruption.is_some() || view.salvaged_since() => {}
                    // A batch an earlier recovery lost (its loss excused)
                    // comes back, as a copy the store wrote of it (the one
                    // acknowledged, or an earlier attempt whose flush
                    // failed), where lossy damage hit the place that copy
                    // was written since: a stale frame or lost write
                    // returned its old bytes, or a lying sync's cut was
                    // dropped. The disk did that, not the store.
                    (Phase::Recovery(view), Fate::Gone)
                        if snapshot.map.copy(&event.hash).is_some_and(|at| {
                            matches!(view.excuses.of(at), Some(crate::excuse::Excuse::Destroyed(_)))
                        }) => {}
                    (Phase::Recovery(_), Fate::Gone | Fate::Refused) => {
                        return Err(format!("batch {uid} reappeared after it was {fate:?}"));
                    }
                    (Phase::Recovery(_), _) => {}
                }
            }
        }
        if let Phase::Step = snapshot.phase {
            // Batches seen before cannot vanish between crashes (the view
            // only grows), so only those acknowledged since are checked.
            if let Some(uid) = model.acked_unseen.iter().find(|uid| !started.contains_key(uid)) {
                return Err(format!("acknowledged batch {uid} is not visible"));
            }
        }
        Ok(())
    }
}
