//! P3 acked is durable and P4 prefix, after every recovery.
//!
//! P3: every acknowledged batch comes back, as the very copy that was
//! acknowledged, at the position its receipt named, unless a lossy fault
//! excuses its loss (`excuse.rs`): damage on its own bytes, or damage
//! earlier in the journal, behind which salvage had to set it aside. No
//! other loss is excused, on any disk, ever.
//!
//! P4: whatever is lost is a suffix of the commit order. A store that came
//! back with a hole (a lost batch and a later one kept) should have refused
//! to open instead. Wrong data is never allowed; P8 checks that.

use std::collections::BTreeMap;

use super::{Checker, Phase, Promise, Snapshot};
use crate::journal_map::Location;
use crate::model::{tag_of, Fate, Model};

/// An acknowledged batch that did not come back as its acknowledged copy.
pub struct Lost<'a> {
    pub uid: u64,
    /// The first global sequence of its receipt.
    pub acked_at: u64,
    /// Where another copy of it came back, if one did.
    pub other_copy_at: Option<u64>,
    /// Where its acknowledged copy was written.
    pub location: Option<&'a Location>,
}

/// Acknowledged batches by the first global sequence of their receipt, and
/// whether each came back as the acknowledged copy at that position
/// (`Ok`), or not (`Err` with where another copy came back, if one did).
fn recovered(model: &Model, snapshot: &Snapshot<'_>) -> BTreeMap<u64, (u64, Result<(), Option<u64>>)> {
    // The view holds what came back unchanged (after a recovery); the
    // snapshot the rest.
    let mut found: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
    for event in snapshot.events {
        if let Some((uid, 0)) = tag_of(event) {
            let same_copy = model.copy_hash.get(&uid).is_none_or(|h| *h == event.hash);
            found.insert(uid, (event.global_seq, same_copy));
        }
    }
    let found = |uid: &u64| model.present.get(uid).map(|&at| (at, true)).or_else(|| found.get(uid).copied());
    model
        .acked()
        .filter_map(|b| {
            let Fate::Acked(globals) = &b.fate else { return None };
            let acked_at = *globals.first()?;
            let outcome = match found(&b.uid) {
                Some((at, true)) if at == acked_at => Ok(()),
                Some((at, _)) => Err(Some(at)),
                None => Err(None),
            };
            Some((acked_at, (b.uid, outcome)))
        })
        .collect()
}

/// Every acknowledged batch the recovery in `snapshot` did not bring back
/// as its acknowledged copy.
pub fn lost<'a>(model: &Model, snapshot: &Snapshot<'a>) -> Vec<Lost<'a>> {
    recovered(model, snapshot)
        .into_iter()
        .filter_map(|(acked_at, (uid, outcome))| {
            let other_copy_at = outcome.err()?;
            let location = model.copy_hash.get(&uid).and_then(|h| snapshot.map.copy(h));
            Some(Lost { uid, acked_at, other_copy_at, location })
        })
        .collect()
}

pub struct Durability;

impl Checker for Durability {
    fn promise(&self) -> Promise {
        Promise::P3AckedIsDurable
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        let Phase::Recovery(view) = snapshot.phase else { return Ok(()) };
        for lost in lost(model, snapshot) {
            let Some(location) = lost.location else {
                return Err(format!("batch {} was acknowledged, but no write ever carried it", lost.uid));
            };
            if view.excuses.of(location).is_none() {
                let how = match lost.other_copy_at {
                    Some(at) => format!("came back as another copy at {at}"),
                    None => "is lost".into(),
                };
                return Err(format!(
                    "batch {} acknowledged at {} {how}, and no lossy fault touched its bytes or anything before them",
                    lost.uid, lost.acked_at
                ));
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
        let Phase::Recovery(_) = snapshot.phase else { return Ok(()) };
        // A batch survives only as its acknowledged copy at its position.
        // Found elsewhere, it is another physical copy: an earlier attempt
        // whose outcome was unknown (a failed fsync), which may come back
        // when the segment holding the acknowledged copy is set aside.
        let mut first_lost: Option<(u64, u64)> = None;
        for (acked_at, (uid, outcome)) in recovered(model, snapshot) {
            match (outcome.is_ok(), first_lost) {
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
