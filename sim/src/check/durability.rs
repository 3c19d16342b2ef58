//! P3 acked is durable and P4 prefix, after every recovery.
//!
//! On an honest disk every acknowledged batch comes back at the position
//! its receipt named. When faults that may legitimately lose acknowledged
//! data were injected (lying fsync, sector errors, bit rot, misdirected
//! writes), loss is allowed but only of a suffix of the commit order (P4):
//! a store that came back with a hole — a lost batch and a later one kept —
//! should have refused to open instead. (Loss of the very tail under a
//! lying fsync leaves no trace on disk for any store to detect; a hole
//! always does.) Wrong data is never allowed; P8 checks that.

use std::collections::BTreeMap;

use super::{Checker, Phase, Promise, Snapshot};
use crate::model::{tag_of, Fate, Model};

/// Acknowledged batches by the first global sequence of their receipt, and
/// where each was recovered (if at all). A copy at the acknowledged
/// position whose hash differs from the acknowledged copy's (an earlier
/// attempt of the same batch) is reported one position off, as a copy
/// recovered elsewhere.
fn recovered(model: &Model, snapshot: &Snapshot<'_>) -> BTreeMap<u64, (u64, Option<u64>)> {
    let mut found: BTreeMap<u64, u64> = BTreeMap::new();
    for event in snapshot.events {
        if let Some((uid, 0)) = tag_of(event) {
            let same_copy = model.copy_hash.get(&uid).is_none_or(|h| *h == event.hash);
            found.insert(uid, if same_copy { event.global_seq } else { u64::MAX });
        }
    }
    model
        .acked()
        .filter_map(|b| match &b.fate {
            Fate::Acked(globals) => Some((*globals.first()?, (b.uid, found.get(&b.uid).copied()))),
            _ => None,
        })
        .collect()
}

pub struct Durability;

impl Checker for Durability {
    fn promise(&self) -> Promise {
        Promise::P3AckedIsDurable
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let Phase::Recovery { lossy, .. } = snapshot.phase else { return Ok(()) };
        for (acked_at, (uid, found_at)) in recovered(model, snapshot) {
            match found_at {
                Some(at) if at == acked_at => {}
                Some(u64::MAX) if !lossy => {
                    return Err(format!("batch {uid} acknowledged at {acked_at} came back as a different copy"));
                }
                Some(at) if !lossy => {
                    return Err(format!("batch {uid} acknowledged at {acked_at} recovered at {at}"));
                }
                None if !lossy => {
                    return Err(format!("batch {uid} acknowledged at {acked_at} is lost on an honest disk"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub struct Prefix;

impl Checker for Prefix {
    fn promise(&self) -> Promise {
        Promise::P4Prefix
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let Phase::Recovery { .. } = snapshot.phase else { return Ok(()) };
        // A batch survives only at the position its receipt named. Found
        // elsewhere, it is another physical copy: an earlier attempt whose
        // outcome was unknown (a failed fsync), which may legitimately come
        // back when the segment holding the acknowledged copy is lost.
        let mut first_lost: Option<(u64, u64)> = None;
        for (acked_at, (uid, found_at)) in recovered(model, snapshot) {
            let survived = found_at == Some(acked_at);
            match (survived, first_lost) {
                (false, None) => first_lost = Some((uid, acked_at)),
                (true, Some((lost, lost_at))) => {
                    return Err(format!(
                        "hole: batch {lost} (acknowledged at {lost_at}) is lost but the later batch {uid} (at {acked_at}) survived"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
