//! P6 causal closure and P7 gates hold.
//!
//! P6: every visible event's cause is visible, earlier, and is the very
//! event the client named (not merely some event at that position: its
//! full id, epoch included, and its tag), and an event has a cause exactly
//! when its client named one. A cause that named no event when the batch
//! was made may only be committed if it names that very id by then. Every
//! event's correlation is the one its client gave, else its cause's, else
//! its own id. P7 (gated runs):
//! replaying the visible history in commit order, no entity's balance ever
//! goes negative — no visible event was one the balance gate had to deny.

use std::collections::BTreeMap;

use super::{Checker, Promise, Snapshot};
use crate::model::{balance_delta, tag_of, Model, ModelCause};
use shale_store::{Event, EventId};

/// The event at global sequence `global`, from the view or the snapshot.
fn at<'a>(model: &'a Model, snapshot: &'a Snapshot<'_>, global: u64) -> Option<&'a Event> {
    let index = usize::try_from(global.checked_sub(1)?).ok()?;
    model.view.get(index).or_else(|| snapshot.events.get(index.checked_sub(model.view.len())?))
}

pub struct CausalClosure;

/// What an item's cause must be once it is committed.
enum Named {
    None,
    /// An item of the same batch, or a visible event: this exact id and tag.
    Known {
        id: Option<EventId>,
        tag: (u64, u32),
    },
    /// An id that named nothing when the batch was made: if the store took
    /// it, it must have named this very id.
    Speculative(EventId),
}

impl CausalClosure {
    /// The event's cause, checked against what its client named; `None`
    /// when it has no cause.
    fn cause<'a>(
        model: &'a Model,
        snapshot: &'a Snapshot<'_>,
        event: &Event,
        named: Named,
    ) -> Result<Option<&'a Event>, String> {
        let seq = event.global_seq;
        let cause = match (event.causation, &named) {
            (None, Named::None) => return Ok(None),
            (Some(cause), Named::Known { .. } | Named::Speculative(_)) => cause,
            (got, _) => return Err(format!("event {seq} has cause {got:?} but its client named {}", named.describe())),
        };
        let found = (cause.global_seq() < seq)
            .then(|| at(model, snapshot, cause.global_seq()))
            .flatten()
            .filter(|c| c.id == cause)
            .ok_or_else(|| format!("event {seq}'s cause {cause} is not visible before it"))?;
        let matches = match named {
            Named::None => unreachable!("handled above"),
            Named::Known { id, tag } => id.is_none_or(|id| id == cause) && tag_of(found) == Some(tag),
            Named::Speculative(id) => id == cause,
        };
        if !matches {
            return Err(format!(
                "event {seq}'s cause {cause} (tag {:?}) is not the event its client named: {}",
                tag_of(found),
                named.describe()
            ));
        }
        Ok(Some(found))
    }
}

impl Named {
    fn describe(&self) -> String {
        match self {
            Named::None => "none".into(),
            Named::Known { id: Some(id), tag } => format!("{id} {tag:?}"),
            Named::Known { id: None, tag } => format!("item {tag:?}"),
            Named::Speculative(id) => format!("{id}, which named nothing yet"),
        }
    }
}

impl Checker for CausalClosure {
    fn promise(&self) -> Promise {
        Promise::P6CausalClosure
    }

    fn check(&self, model: &Model, snapshot: &Snapshot<'_>) -> Result<(), String> {
        for event in snapshot.events {
            let Some((uid, item)) = tag_of(event) else { continue };
            let Some(sent) = model.batches.get(&uid).and_then(|b| b.items.get(item as usize)) else { continue };
            let named = match &sent.cause {
                None => Named::None,
                Some(ModelCause::Item(j)) => Named::Known { id: None, tag: (uid, *j as u32) },
                Some(ModelCause::Event { tag: None, id }) => Named::Speculative(*id),
                Some(ModelCause::Event { tag: Some(t), id }) => Named::Known { id: Some(*id), tag: *t },
            };
            let cause = Self::cause(model, snapshot, event, named)?;
            // The correlation: the one given, else the cause's, else its own id.
            let expected = sent.correlation.or(cause.map(|c| c.correlation)).unwrap_or(event.id);
            if event.correlation != expected {
                return Err(format!(
                    "event {}'s correlation is {} but should be {expected} (given {:?}, cause {:?})",
                    event.global_seq,
                    event.correlation,
                    sent.correlation,
                    cause.map(|c| c.id)
                ));
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
