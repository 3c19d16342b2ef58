//! P1 batch atomicity: the visible events are whole batches, each batch's
//! items contiguous and in order. A reader that ever saw part of a batch,
//! or a recovery that kept part of one, fails here.

use super::{Checker, Promise, Snapshot};
use crate::model::{tag_of, Model};

pub struct Atomicity;

impl Checker for Atomicity {
    fn promise(&self) -> Promise {
        Promise::P1BatchAtomicity
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        // (uid, next item, items in the batch)
        let mut open: Option<(u64, u32, usize)> = None;
        for event in snapshot.events {
            let Some((uid, item)) = tag_of(event) else { continue };
            let len = model.batches.get(&uid).map_or(0, |b| b.items.len());
            match open {
                Some((open_uid, next, _)) if open_uid != uid || next != item => {
                    return Err(format!(
                        "batch {open_uid} is cut short at item {next}: event {} is item {item} of batch {uid}",
                        event.global_seq
                    ));
                }
                None if item != 0 => {
                    return Err(format!(
                        "event {} is item {item} of batch {uid} without its first items",
                        event.global_seq
                    ));
                }
                _ => {}
            }
            open = if item as usize + 1 == len { None } else { Some((uid, item + 1, len)) };
        }
        match open {
            Some((uid, next, len)) => Err(format!("only {next} of the {len} items of batch {uid} are visible")),
            None => Ok(()),
        }
    }
}
