//! Crypto-shredding an entity (the protocol is in `fence.rs`): rewrap the
//! bucket's other live keys and record the shred in the journal, publish
//! the keyset without the bucket's old wrapping key, then acknowledge. And
//! the journal's other groups of zero events: lost records, written by a
//! salvage that accepted the loss of keys.

use super::{random_nonce, Core};
use crate::env::Env;
use crate::error::{IoError, ShredError};
use crate::fence::ShredPlan;
use crate::journal::record::{
    encode_begin, encode_commit, encode_key, encode_lost, encode_shred, Begin, Commit, GenerationRecord,
};
use crate::limits::FRAME_HEADER_LEN;
use crate::model::ShredReceipt;

impl<E: Env> Core<E> {
    /// Shreds `entity`: from the acknowledgement on, no file holds anything
    /// that opens its key; reads of its earlier events return `Shredded`,
    /// and a later append gets a new key generation. Shredding an entity
    /// with no key (never written, or already shredded) succeeds and changes
    /// nothing. An error means the outcome is unknown: retry (shred is
    /// idempotent).
    pub fn shred(&mut self, entity: &str) -> Result<ShredReceipt, ShredError> {
        crate::model::validate_name("entity", entity, crate::limits::ENTITY_LEN_MAX).map_err(ShredError::Invalid)?;
        if self.fence.is_none() {
            return Err(ShredError::NotEncrypted);
        }
        self.publish_if_dirty().map_err(ShredError::OutcomeUnknown)?;
        let shared = self.state.clone();
        let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(fence) = self.fence.as_ref() else { unreachable!("checked above") };
        let Some(plan) = fence.plan_shred(&state, entity, self.env.entropy()) else {
            let generation = state.keys().map_or(0, |k| k.shredded_through(entity));
            return Ok(ShredReceipt { entity: entity.to_owned(), generation });
        };
        drop(state);
        self.write_shred_group(entity, &plan).map_err(ShredError::OutcomeUnknown)?;
        // The rewrap is durable: from here on the shred takes effect in the
        // store, whatever the publish does. If the publish fails, the keyset
        // is dirty and goes out again before anything else is written, so
        // memory and disk never disagree about a key that is still usable.
        let mut state = shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(keys) = state.keys_mut() else { unreachable!("an encrypted store has keys") };
        keys.set_keyset(plan.keyset.clone());
        keys.shred(entity, plan.generation);
        drop(state);
        let lazily = self.planted.is(canary!(ShredAckBeforeKeyset));
        let store_id = self.journal_store_id();
        let Some(fence) = self.fence.as_mut() else { unreachable!("checked above") };
        fence.forget(entity);
        if lazily {
            // Planted bug: acknowledged with the old wrapping key still
            // durable; the keyset goes out with some later commit.
            fence.defer_publish();
        } else {
            let nonce = random_nonce(self.env.entropy());
            fence
                .publish(self.env.disk(), &self.dir, &plan.keyset, store_id, nonce)
                .map_err(ShredError::OutcomeUnknown)?;
        }
        self.rotate_if_full();
        Ok(ShredReceipt { entity: entity.to_owned(), generation: plan.generation })
    }

    fn journal_store_id(&self) -> u64 {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).store_id()
    }

    /// Publishes the keyset again if the last publish failed (its outcome is
    /// unknown), before anything builds on it.
    pub(super) fn publish_if_dirty(&mut self) -> Result<(), IoError> {
        let Some(fence) = self.fence.as_mut() else { return Ok(()) };
        if !fence.dirty() {
            return Ok(());
        }
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(keys) = state.keys() else { unreachable!("an encrypted store has keys") };
        let keyset = keys.keyset().clone();
        let store_id = state.store_id();
        drop(state);
        let nonce = random_nonce(self.env.entropy());
        fence.publish(self.env.disk(), &self.dir, &keyset, store_id, nonce)
    }

    /// Writes and syncs one group of zero events: the rewrapped keys, then
    /// the shred record.
    fn write_shred_group(&mut self, entity: &str, plan: &ShredPlan) -> Result<(), IoError> {
        self.write_zero_event_group(128 + plan.rewrapped.len() * 128, |buf| {
            let mut headers: Vec<_> = plan.rewrapped.iter().map(|w| encode_key(buf, &w.record())).collect();
            headers.push(encode_shred(buf, &GenerationRecord { entity, generation: plan.generation }));
            headers
        })
    }

    /// Records in the journal that a salvage accepted the loss of `lost`
    /// keys (entity, generation), so that later opens read their events as
    /// lost instead of refusing the store as damaged; then marks them lost
    /// in memory.
    pub(super) fn record_lost_keys(&mut self, lost: &[(String, u32)]) -> Result<(), IoError> {
        self.write_zero_event_group(64 + lost.len() * 64, |buf| {
            lost.iter()
                .map(|(entity, generation)| encode_lost(buf, &GenerationRecord { entity, generation: *generation }))
                .collect()
        })?;
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(keys) = state.keys_mut() else { unreachable!("only an encrypted store loses keys") };
        for (entity, generation) in lost {
            keys.read_lost(entity, *generation);
        }
        Ok(())
    }

    /// Writes and syncs one group of zero events holding the frames
    /// `encode` appends to the buffer (it returns their headers, which the
    /// group checksum covers).
    fn write_zero_event_group(
        &mut self,
        capacity: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Vec<[u8; FRAME_HEADER_LEN]>,
    ) -> Result<(), IoError> {
        self.renew_epoch_after_failed_flush();
        self.journal.ready(self.env.disk())?;
        let first_global = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).last_global() + 1;
        let group_id = self.journal.next_group;
        let begin = Begin {
            group_id,
            epoch: self.journal.epoch,
            flush: self.journal.next_flush,
            flush_index: 0,
            flush_count: 1,
            event_count: 0,
            first_global,
            follows: self.follows(),
        };
        let mut buf = Vec::with_capacity(capacity);
        let mut group_crc = crc32c::crc32c(&encode_begin(&mut buf, &begin));
        for header in encode(&mut buf) {
            group_crc = crc32c::crc32c_append(group_crc, &header);
        }
        encode_commit(&mut buf, &Commit { group_id, event_count: 0, group_crc });
        let (segment, base) = (self.journal.segment(), self.journal.end());
        self.journal.write_flush(self.env.disk(), &buf)?;
        self.journal.next_group += 1;
        let end = self.journal_end_after(segment, base, &buf, 1);
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner).set_journal_end(end);
        Ok(())
    }
}
