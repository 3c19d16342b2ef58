//! The durability fence for keys.
//!
//! A commit that needs a new key mints it here (every key the whole group
//! commit needs). The key goes to disk wrapped, as a key record in the very
//! group of the first event sealed with it, ahead of that event: no frame
//! can become durable and committed without its key. Only once the flush
//! is durable do readers see the new key. If the flush fails, its keys stay
//! pending and go out again, unchanged, with the next flush that uses them.
//!
//! Shredding goes the other way. The bucket's other live keys are rewrapped
//! under a fresh wrapping key and written with a shred record in one flush;
//! then the keyset is published, in both copies, with the fresh wrapping key
//! in place of the old one; only then is the shred acknowledged. From that
//! moment no file holds anything that opens the shredded key. A shred that
//! stops before the publish lands changes no key: the fresh wrapping key is
//! in no file, and the old records still open under the old one. If the
//! publish fails, the keyset is marked dirty (either copy may hold the old
//! or the new keyset) and is published again before anything else is
//! written; a failure there fails that commit as "unavailable".

use std::collections::BTreeMap;
use std::path::Path;

use crate::crypto::{wrap, wrap_aad, Key, MasterKey, KEY_LEN, NONCE_LEN, WRAPPED_KEY_LEN};
use crate::disk::Disk;
use crate::env::Entropy;
use crate::error::IoError;
use crate::journal::record::{EventRecord, KeyRecord};
use crate::keyset::{bucket_of, publish_keyset, Keyset};
use crate::model::Batch;
use crate::state::State;

/// An entity key wrapped for the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    pub entity: String,
    pub generation: u32,
    pub wrap_generation: u32,
    pub wrapped: [u8; WRAPPED_KEY_LEN],
}

impl WrappedKey {
    pub fn record(&self) -> KeyRecord<'_> {
        KeyRecord {
            entity: &self.entity,
            generation: self.generation,
            wrap_generation: self.wrap_generation,
            wrapped: &self.wrapped,
        }
    }
}

/// What a shred writes and publishes.
pub struct ShredPlan {
    pub generation: u32,
    /// The keyset with a fresh wrapping key for the entity's bucket.
    pub keyset: Keyset,
    /// The bucket's other live keys, wrapped under the fresh key.
    pub rewrapped: Vec<WrappedKey>,
}

pub struct KeyFence {
    master: Option<MasterKey>,
    /// Keys minted for commits whose flush is not durable yet.
    minted: BTreeMap<String, (u32, Key)>,
    /// The last keyset publish failed: either copy may hold the old or the
    /// new keyset.
    dirty: bool,
    /// Planted bug (`KeysetAfterFrames`): key records held back to go out
    /// with the flush after the one whose frames need them.
    late: Option<Vec<WrappedKey>>,
}

fn random<const N: usize>(entropy: &mut impl Entropy) -> [u8; N] {
    let mut bytes = [0u8; N];
    entropy.fill(&mut bytes);
    bytes
}

/// A fresh random key.
pub fn random_key(entropy: &mut impl Entropy) -> Key {
    Key::from_bytes(random::<KEY_LEN>(entropy))
}

/// `key` of `(entity, generation)` wrapped under the current wrapping key
/// of its bucket in `keyset`.
pub fn wrap_key(
    keyset: &Keyset,
    store_id: u64,
    entity: &str,
    generation: u32,
    key: &Key,
    entropy: &mut impl Entropy,
) -> WrappedKey {
    let current = keyset.bucket(bucket_of(entity));
    let aad = wrap_aad(store_id, entity, generation, current.generation);
    WrappedKey {
        entity: entity.to_owned(),
        generation,
        wrap_generation: current.generation,
        wrapped: wrap(&current.key, random::<NONCE_LEN>(entropy), &aad, key),
    }
}

impl KeyFence {
    pub fn new(master: Option<MasterKey>) -> Self {
        Self { master, minted: BTreeMap::new(), dirty: false, late: None }
    }

    /// Switches on the planted bug that sends key records one flush late.
    pub fn plant_late_records(&mut self) {
        self.late = Some(Vec::new());
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Mints a key for every entity `batches` write to that has none.
    pub fn mint_for(&mut self, state: &State, batches: &[Batch], entropy: &mut impl Entropy) {
        let Some(keys) = state.keys() else { unreachable!("an encrypted store has keys") };
        for item in batches.iter().flat_map(|b| &b.items) {
            let entity = item.coordinate.entity();
            if keys.live(entity).is_none() && !self.minted.contains_key(entity) {
                let generation = keys.next_generation(entity);
                self.minted.insert(entity.to_owned(), (generation, random_key(entropy)));
            }
        }
    }

    /// The key an append to `entity` is sealed with (the one held here or
    /// in the state: its cipher is built once and kept with it).
    pub fn key_of<'a>(&'a self, state: &'a State, entity: &str) -> Option<(u32, &'a Key)> {
        if let Some((generation, key)) = self.minted.get(entity) {
            return Some((*generation, key));
        }
        state.keys()?.live(entity)
    }

    /// The key records each group of a flush carries, and the keys that
    /// become the store's once the flush is durable: a minted key goes out
    /// with the first group that seals an event with it.
    pub fn records_for<'r>(
        &mut self,
        state: &State,
        groups: impl Iterator<Item = &'r [EventRecord<'r>]>,
        entropy: &mut impl Entropy,
    ) -> (Vec<Vec<WrappedKey>>, Vec<WrappedKey>) {
        let Some(keys) = state.keys() else { unreachable!("an encrypted store has keys") };
        let mut per_group: Vec<Vec<WrappedKey>> = Vec::new();
        let mut settled = Vec::new();
        for records in groups {
            let mut carried = Vec::new();
            for record in records {
                let Some((generation, key)) = self.minted.get(record.entity) else { continue };
                if *generation != record.key_gen || settled.iter().any(|w: &WrappedKey| w.entity == record.entity) {
                    continue;
                }
                let wrapped = wrap_key(keys.keyset(), state.store_id(), record.entity, *generation, key, entropy);
                settled.push(wrapped.clone());
                carried.push(wrapped);
            }
            per_group.push(carried);
        }
        if let Some(late) = self.late.as_mut() {
            let now: Vec<WrappedKey> = per_group.iter_mut().flat_map(std::mem::take).collect();
            if let Some(first) = per_group.first_mut() {
                *first = std::mem::replace(late, now);
            }
        }
        (per_group, settled)
    }

    /// After the flush that carried `settled` is durable: those keys
    /// become the store's, visible to readers.
    pub fn settle(&mut self, state: &mut State, settled: &[WrappedKey]) {
        let Some(keys) = state.keys_mut() else { unreachable!("an encrypted store has keys") };
        for w in settled {
            if let Some((generation, key)) = self.minted.remove(&w.entity) {
                assert_eq!(generation, w.generation, "a settled record is of the minted key");
                keys.insert(&w.entity, generation, key);
            }
        }
    }

    /// What shredding `entity` writes and publishes; `None` if the entity
    /// has no key to shred (never written, or already shredded) and no
    /// shred of it is left unfinished.
    pub fn plan_shred(&self, state: &State, entity: &str, entropy: &mut impl Entropy) -> Option<ShredPlan> {
        let keys = state.keys()?;
        let bucket = bucket_of(entity);
        // With no key to shred, a shred of a generation the bucket's
        // wrapping key has not moved past (its keyset publish was lost to a
        // crash) is finished now: until the rotation is durable, a store
        // that lost its journal could mint that generation again.
        let unfinished = || {
            let through = keys.shredded_through(entity);
            (through > 0 && keys.keyset().bucket(bucket).generation <= through).then_some(through)
        };
        let generation = self
            .minted
            .get(entity)
            .map(|(g, _)| *g)
            .or_else(|| keys.live(entity).map(|(g, _)| g))
            .or_else(unfinished)?;
        let keyset = keys.keyset().rotated(bucket, random_key(entropy), generation);
        let rewrapped = keys
            .live_in_bucket(bucket)
            .into_iter()
            .filter(|(e, _, _)| *e != entity)
            .map(|(e, g, key)| wrap_key(&keyset, state.store_id(), e, g, key, entropy))
            .collect();
        Some(ShredPlan { generation, keyset, rewrapped })
    }

    /// The shred of `entity` is acknowledged: a pending key of it is
    /// forgotten (it was never durable under a live wrapping key).
    pub fn forget(&mut self, entity: &str) {
        self.minted.remove(entity);
    }

    /// Publishes `keyset` in both copies. On failure the keyset is dirty
    /// until a publish succeeds.
    pub fn publish<D: Disk>(
        &mut self,
        disk: &mut D,
        dir: &Path,
        keyset: &Keyset,
        store_id: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), IoError> {
        self.dirty = true;
        publish_keyset(disk, dir, &keyset.encode(store_id, self.master.as_ref(), nonce))?;
        self.dirty = false;
        Ok(())
    }

    /// Marks the keyset dirty without publishing it (a planted bug only).
    pub fn defer_publish(&mut self) {
        self.dirty = true;
    }
}
