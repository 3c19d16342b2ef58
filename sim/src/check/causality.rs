//! P6 causal closure and P7 gates hold.
//!
//! P6: every visible event's cause is visible, earlier, and is the very
//! event the client named (not merely some event at that position: its
//! full id, epoch included, and its tag), and an event has a cause exactly
//! when its client named one. P7 (gated runs):
//! replaying the visible history in commit order, no entity's balance ever
//! goes negative — no visible event was one the balance gate had to deny.

use std::collections::BTreeMap;

use super::{Checker, Promise, Snapshot};
use crate::model::{balance_delta, tag_of, Model, ModelCause};
use shale_store::Event;

/// The event at global sequence `global`, from the view or the snapshot.
fn at<'a>(model: &'a Model, snapshot: &'a Snapshot<'_>, global: u64) -> Option<&'a Event> {
    let index = usize::try_from(global.checked_sub(1)?).ok()?;
    model.view.get(index).or_else(|| snapshot.events.get(index.checked_sub(model.view.len())?))
}

pub struct CausalClosure;

impl Checker for CausalClosure {
    fn promise(&self) -> Promise {
        Promise::P6CausalClosure
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let Some((uid, item)) = tag_of(event) else { continue };
            let Some(named) = model.batches.get(&uid).and_then(|b| b.items.get(item as usize)) else { continue };
            let expected = match &named.cause {
                None => None,
                Some(ModelCause::Item(j)) => Some((uid, *j as u32)),
                Some(ModelCause::Event { tag: None, id }) => {
                    return Err(format!("event {} was committed with the bogus cause {id}", event.global_seq));
                }
                Some(ModelCause::Event { tag: Some(t), .. }) => Some(*t),
            };
            match (event.causation, expected) {
                (None, None) => {}
                (Some(cause), Some(tag)) => {
                    let found = (cause.global_seq() < event.global_seq)
                        .then(|| at(model, snapshot, cause.global_seq()))
                        .flatten()
                        .filter(|c| c.id == cause);
                    match found {
                        Some(c) if tag_of(c) == Some(tag) => {}
                        Some(c) => {
                            return Err(format!(
                                "event {}'s cause {} is not the event its client named ({tag:?}, found {:?})",
                                event.global_seq,
                                cause.global_seq(),
                                tag_of(c)
                            ));
                        }
                        None => return Err(format!("event {}'s cause {cause} is not visible", event.global_seq)),
                    }
                }
                (got, want) => {
                    return Err(format!("event {} has cause {got:?} but its client named {want:?}", event.global_seq));
                }
            }
        }
        Ok(())
    }
}

pub struct GatesHold;

impl Checker for GatesHold {
    fn promise(&self) -> Promise {
        Promise::P7GatesHold
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        if !model.gated {
            return Ok(());
        }
        let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
        for event in snapshot.events {
            let Some(delta) = balance_delta(event) else { continue };
            let entity = event.coordinate.entity();
            let balance = balances.entry(entity).or_insert_with(|| model.balances.get(entity).copied().unwrap_or(0));
            *balance += delta;
            if *balance < 0 {
                return Err(format!(
                    "{entity}'s balance is {balance} after event {}, which the gate had to deny",
                    event.global_seq
                ));
            }
        }
        Ok(())
    }
}
