//! The batches clients write, and the edges they go near: expected
//! versions (some stale), idempotency keys (some another batch's), causes
//! (earlier items, recent events, and ids that name nothing: far past the
//! end, just past it, or this batch's own positions), correlations
//! (explicit, or left to be inherited), and now and then a request the
//! store must refuse as invalid.

use shale_store::EventId;

use super::{Workload, KINDS, SCOPES};
use crate::model::{payload, tag_of, Fate, Invalid, Model, ModelBatch, ModelCause, ModelItem, PAYLOAD_TAG_LEN};

impl Workload {
    /// An epoch for an id that names no event: the latest one seen, or any.
    pub(super) fn epoch(&mut self, model: &Model) -> u32 {
        model.view.last().map_or_else(|| self.rng.next_u64() as u32, |e| e.id.epoch())
    }

    /// An id that names no visible event now: far past the end, just past
    /// it (it may name an event by the time the batch is planned), or where
    /// item `i` of this very batch would land.
    fn bogus_cause(&mut self, model: &Model, store_tag: u32, i: usize) -> ModelCause {
        let end = model.view.len() as u64;
        let global = match self.rng.below(3) {
            0 => end + 1_000 + self.rng.below(1_000),
            1 => end + 1 + self.rng.below(3),
            _ => end + 1 + i as u64,
        };
        let epoch = self.epoch(model);
        ModelCause::Event { id: EventId::from_parts(store_tag, epoch, global), tag: None }
    }

    /// The cause item `i` names, if any.
    fn cause(&mut self, model: &Model, store_tag: u32, i: usize) -> Option<ModelCause> {
        if !self.rng.chance(self.spec.cause_rate) {
            return None;
        }
        if self.rng.chance(self.spec.bogus_cause_rate) {
            return Some(self.bogus_cause(model, store_tag, i));
        }
        if i > 0 && self.rng.chance(0.4) {
            return Some(ModelCause::Item(self.rng.below(i as u64) as usize));
        }
        // Mostly the latest events, so that chains grow deep.
        let recent = model.view.len().min(8) as u64;
        let back = 1 + self.rng.below(recent.max(1)) as usize;
        let event = model.view.get(model.view.len().checked_sub(back)?)?;
        Some(ModelCause::Event { id: event.id, tag: tag_of(event) })
    }

    /// An explicit correlation for an item, if it gets one: a visible
    /// event's id (the usual case), or any id at all.
    fn correlation(&mut self, model: &Model) -> Option<EventId> {
        if !self.rng.chance(self.spec.correlation_rate) {
            return None;
        }
        match model.view.is_empty() || self.rng.chance(0.2) {
            true => Some(EventId(u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64()))),
            false => Some(model.view[self.rng.below(model.view.len() as u64) as usize].id),
        }
    }

    /// Kind and payload filler of an item: random, or money movements in
    /// gated runs (the amount follows the payload's tag).
    fn kind_and_filler(&mut self) -> (String, Vec<u8>) {
        let filler_len = self.rng.below(u64::from(self.spec.payload_max) - PAYLOAD_TAG_LEN as u64 + 1) as usize;
        let mut filler = vec![0u8; filler_len.max(8)];
        self.rng.fill(&mut filler);
        if !self.gated {
            filler.truncate(filler_len);
            return (KINDS[self.rng.below(4) as usize].to_owned(), filler);
        }
        let amount = self.rng.between(1, 100) as i64;
        filler[..8].copy_from_slice(&amount.to_le_bytes());
        let kind = if self.rng.chance(self.spec.explode_rate) {
            "explode"
        } else if self.rng.chance(0.5) {
            "deposited"
        } else {
            "withdrawn"
        };
        (kind.to_owned(), filler)
    }

    /// A new batch of `len` items, added to the model as in flight.
    pub(super) fn write(&mut self, model: &mut Model, store_tag: u32, len: usize) -> u64 {
        let uid = model.new_uid();
        let mut items = Vec::with_capacity(len);
        let mut bumps: Vec<String> = Vec::new();
        for i in 0..len {
            let entity = self.entity();
            let earlier = bumps.iter().filter(|e| **e == entity).count() as u64;
            let expected_version = self.rng.chance(self.spec.expected_version_rate).then(|| {
                let version = model.version(&entity) + earlier;
                if self.rng.chance(self.spec.stale_version_rate) {
                    version + 1 + self.rng.below(2)
                } else {
                    version
                }
            });
            bumps.push(entity.clone());
            let (kind, filler) = self.kind_and_filler();
            let cause = self.cause(model, store_tag, i);
            let correlation = self.correlation(model);
            items.push(ModelItem {
                entity,
                scope: SCOPES[self.rng.below(2) as usize].to_owned(),
                kind,
                payload: payload(uid, i as u32, &filler),
                expected_version,
                cause,
                correlation,
            });
        }
        let mut key = self.rng.chance(self.spec.idempotency_rate).then(|| format!("key-{uid}"));
        if self.rng.chance(self.spec.key_reuse_rate) {
            // Another batch's key, already committed: a conflict.
            key = model.random_committed_key(self.rng.next_u64()).or(key);
        }
        let invalid = self.rng.chance(self.spec.invalid_rate).then(|| self.invalidate(&mut items, &mut key));
        model.add(ModelBatch { uid, items, key, fate: Fate::InFlight, maybe_written: false, invalid });
        uid
    }

    /// Makes the batch one the store must refuse as invalid, and says how.
    fn invalidate(&mut self, items: &mut Vec<ModelItem>, key: &mut Option<String>) -> Invalid {
        let i = self.rng.below(items.len() as u64) as usize;
        match self.rng.below(4) {
            0 => {
                items.clear();
                Invalid::EmptyBatch
            }
            1 => {
                *key = Some("key\u{7}with a bell".into());
                Invalid::Key
            }
            2 => {
                items[i].kind.clear();
                Invalid::EmptyKind(i)
            }
            _ => {
                items[i].cause = Some(ModelCause::Item(i));
                Invalid::CauseNotEarlier(i)
            }
        }
    }
}
