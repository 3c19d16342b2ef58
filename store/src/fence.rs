//! The durability fence for keys.
//!
//! A commit that needs a new key mints it here (every key the whole group
//! commit needs), and the keyset holding it is published durably before
//! any frame of the commit is written; only after the frames are durable do
//! readers see the new keys. If the publish fails, the commit fails closed
//! with nothing written, and the minted keys stay pending with the keyset
//! marked dirty, so the next commit publishes again first.
//!
//! Shredding goes the other way: the keyset without the key is published
//! durably before the shred is acknowledged, then a marker is written to
//! the journal; the keyset's tombstone (the shredded generation) is the
//! authority that recovery and reads consult.

use std::collections::BTreeMap;
use std::path::Path;

use crate::crypto::{Key, MasterKey, KEY_LEN, NONCE_LEN};
use crate::disk::Disk;
use crate::env::Entropy;
use crate::error::IoError;
use crate::keyset::{publish_keyset, KeyEntry, Keyset};
use crate::model::Batch;
use crate::state::State;

pub struct KeyFence {
    master: Option<MasterKey>,
    /// Keys minted for commits whose frames are not durable yet.
    minted: BTreeMap<String, (u32, Key)>,
    /// The published keyset may differ from what the store holds.
    dirty: bool,
}

fn random<const N: usize>(entropy: &mut impl Entropy) -> [u8; N] {
    let mut bytes = [0u8; N];
    entropy.fill(&mut bytes);
    bytes
}

impl KeyFence {
    pub fn new(master: Option<MasterKey>) -> Self {
        Self { master, minted: BTreeMap::new(), dirty: false }
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Mints a key for every entity `batches` write to that has none.
    pub fn mint_for(&mut self, state: &State, batches: &[Batch], entropy: &mut impl Entropy) {
        let Some(keyset) = state.keyset() else { unreachable!("an encrypted store has a keyset") };
        for item in batches.iter().flat_map(|b| &b.items) {
            let entity = item.coordinate.entity();
            if keyset.live(entity).is_none() && !self.minted.contains_key(entity) {
                let generation = keyset.next_generation(entity);
                self.minted.insert(entity.to_owned(), (generation, Key::from_bytes(random::<KEY_LEN>(entropy))));
                self.dirty = true;
            }
        }
    }

    /// The key an append to `entity` is sealed with.
    pub fn key_of(&self, state: &State, entity: &str) -> Option<(u32, Key)> {
        if let Some((generation, key)) = self.minted.get(entity) {
            return Some((*generation, key.clone()));
        }
        state.keyset()?.live(entity).map(|(g, k)| (g, k.clone()))
    }

    /// The keyset as it must be on disk: the store's, plus pending keys,
    /// with `shredding` (if any) tombstoned.
    fn wanted(&self, state: &State, shredding: Option<(&str, u32)>) -> Keyset {
        let mut keyset = state.keyset().cloned().unwrap_or_default();
        for (entity, (generation, key)) in &self.minted {
            keyset.insert(entity, KeyEntry { generation: *generation, key: Some(key.clone()) });
        }
        if let Some((entity, generation)) = shredding {
            keyset.insert(entity, KeyEntry { generation, key: None });
        }
        keyset
    }

    fn publish<D: Disk>(
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

    /// Publishes the keyset if anything in it is not durable yet.
    pub fn publish_if_dirty<D: Disk>(
        &mut self,
        disk: &mut D,
        dir: &Path,
        state: &State,
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), IoError> {
        if !self.dirty {
            return Ok(());
        }
        let keyset = self.wanted(state, None);
        self.publish(disk, dir, &keyset, state.store_id(), nonce)
    }

    /// After the frames that use them are durable: pending keys become the
    /// store's, visible to readers.
    pub fn settle(&mut self, state: &mut State) {
        if self.dirty {
            // Published lazily (only a planted bug does this): keep them
            // pending so that the next publish still carries them.
            for (entity, (generation, key)) in &self.minted {
                if let Some(keyset) = state.keyset_mut() {
                    keyset.insert(entity, KeyEntry { generation: *generation, key: Some(key.clone()) });
                }
            }
            return;
        }
        let Some(keyset) = state.keyset_mut() else { unreachable!("an encrypted store has a keyset") };
        for (entity, (generation, key)) in std::mem::take(&mut self.minted) {
            keyset.insert(&entity, KeyEntry { generation, key: Some(key) });
        }
    }

    /// Publishes the keyset without `entity`'s key. Returns the shredded
    /// generation, or `None` if the entity has no key to shred.
    pub fn shred<D: Disk>(
        &mut self,
        disk: &mut D,
        dir: &Path,
        state: &State,
        entity: &str,
        nonce: [u8; NONCE_LEN],
        lazily: bool,
    ) -> Result<Option<u32>, IoError> {
        let live = self.minted.get(entity).map(|(g, _)| *g).or_else(|| state.keyset()?.live(entity).map(|(g, _)| g));
        let Some(generation) = live else { return Ok(None) };
        let keyset = self.wanted(state, Some((entity, generation)));
        if lazily {
            self.dirty = true;
        } else {
            self.publish(disk, dir, &keyset, state.store_id(), nonce)?;
        }
        // Only now: a pending key may already be in a published keyset and
        // under frames whose outcome is unknown. Forgetting it before the
        // keyset without it is durable would let the next append mint a
        // different key under the same generation.
        self.minted.remove(entity);
        Ok(Some(generation))
    }
}
