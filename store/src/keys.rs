//! The keys of an encrypted store as the committed state knows them: the
//! wrapping keys (the keyset) and every entity's key, unwrapped from the
//! journal's key records.
//!
//! An entity's key of generation `g` is live while a record of it opens
//! under a wrapping key the keyset still holds. A generation is shredded
//! once a newer one exists (a new generation is minted only after a shred;
//! numbers may skip, never repeat)
//! or a shred record covers it and its key no longer opens. A generation
//! that neither opens nor is covered is missing: damage, never data. A
//! salvage that finds a key missing writes a lost record for it; the
//! generation is then lost, and later opens read its events as such.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::crypto::{unwrap, wrap, wrap_aad, Key, NONCE_LEN, WRAPPED_KEY_LEN};
use crate::keyset::{bucket_of, Keyset, KEY_BUCKETS};
use crate::state::FixedHasher;

/// What the store knows of the key of `(entity, generation)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStatus<'k> {
    Live(&'k Key),
    Shredded,
    /// Missing, and a salvage recorded that it accepted the loss.
    Lost,
    Missing,
}

/// What the journal says of one entity's keys, as read (the view that
/// counts is [`EntityKey::view`], worked out from it whenever asked, so it
/// never depends on when a record was read: from the journal in one pass,
/// or partly from a checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EntityKey {
    /// The entity's bucket ([`bucket_of`], kept: it costs a hash).
    bucket: u8,
    /// The highest generation a key record names.
    recorded: u32,
    /// That generation's key, if a record of it opens.
    key: Option<Key>,
    /// The generations shred records name, in journal order.
    shreds: Vec<u32>,
    /// Generations a salvage recorded as lost (lost records).
    lost: Vec<u32>,
}

/// An entity's keys as they count.
struct KeyView<'k> {
    /// The entity's newest generation.
    generation: u32,
    /// Its key, if live.
    key: Option<&'k Key>,
    /// Generations up to this one were shredded.
    shredded_through: u32,
}

impl EntityKey {
    /// Whether a record of `generation` would change this entity's keys:
    /// one of a newer generation, or the key of the newest while no record
    /// of it has opened.
    fn takes(&self, generation: u32) -> bool {
        generation > self.recorded || (generation == self.recorded && self.key.is_none())
    }

    /// A record of `generation` whose key (`None`: it did not open).
    fn put(&mut self, generation: u32, key: Option<Key>) {
        if self.takes(generation) {
            self.recorded = generation;
            self.key = key;
        }
    }

    /// A shred counts unless the key it names still opens (a shred whose
    /// keyset publish never became durable was not acknowledged, and the
    /// store went on using the key, maybe rewrapping it for a shred of
    /// another entity of its bucket). A shred of the newest generation,
    /// or past it (a shred of a key that was never durable), ends it.
    fn view(&self) -> KeyView<'_> {
        let mut view = KeyView { generation: self.recorded, key: self.key.as_ref(), shredded_through: 0 };
        for &g in &self.shreds {
            if view.generation == g && view.key.is_some() {
                continue;
            }
            view.shredded_through = view.shredded_through.max(g);
            if view.generation <= g {
                view.key = None;
            }
            view.generation = view.generation.max(g);
        }
        view
    }
}

/// What the journal says of one entity's keys, as a checkpoint keeps it:
/// the highest generation recorded, its key only wrapped (under its
/// bucket's wrapping key of `wrapped.0`, never in the clear), and the
/// shred and lost records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityKeyImage {
    pub entity: Arc<str>,
    pub recorded: u32,
    pub wrapped: Option<(u32, [u8; WRAPPED_KEY_LEN])>,
    pub shreds: Vec<u32>,
    pub lost: Vec<u32>,
}

/// The keyset and every entity's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreKeys {
    store_id: u64,
    wraps: Keyset,
    /// Point lookups only, never iterated.
    entities: HashMap<Arc<str>, EntityKey, FixedHasher>,
    /// The entities of each bucket, in order (a shred rewraps a bucket's
    /// keys in this order).
    members: Vec<BTreeSet<Arc<str>>>,
}

impl StoreKeys {
    pub fn new(store_id: u64, wraps: Keyset) -> Self {
        Self { store_id, wraps, entities: HashMap::default(), members: vec![BTreeSet::new(); KEY_BUCKETS] }
    }

    /// The entity's keys, made empty if it has none yet.
    fn entry(&mut self, entity: &str) -> &mut EntityKey {
        if !self.entities.contains_key(entity) {
            let name: Arc<str> = entity.into();
            let bucket = bucket_of(entity);
            self.members[bucket].insert(name.clone());
            let bucket = u8::try_from(bucket).unwrap_or_else(|_| unreachable!("{KEY_BUCKETS} buckets fit a byte"));
            self.entities.insert(name, EntityKey { bucket, ..EntityKey::default() });
        }
        let Some(e) = self.entities.get_mut(entity) else { unreachable!("inserted above") };
        e
    }

    /// The wrapping keys as last published (or being published).
    pub fn keyset(&self) -> &Keyset {
        &self.wraps
    }

    pub fn set_keyset(&mut self, wraps: Keyset) {
        self.wraps = wraps;
    }

    pub fn status(&self, entity: &str, generation: u32) -> KeyStatus<'_> {
        let Some(e) = self.entities.get(entity) else { return KeyStatus::Missing };
        let view = e.view();
        match view.key {
            Some(key) if generation == view.generation => KeyStatus::Live(key),
            _ if e.lost.contains(&generation) => KeyStatus::Lost,
            _ if generation < view.generation || generation <= view.shredded_through => KeyStatus::Shredded,
            _ => KeyStatus::Missing,
        }
    }

    /// The entity's live key and its generation.
    pub fn live(&self, entity: &str) -> Option<(u32, &Key)> {
        let view = self.entities.get(entity)?.view();
        view.key.map(|k| (view.generation, k))
    }

    /// The highest generation shredded for `entity` (0: none).
    pub fn shredded_through(&self, entity: &str) -> u32 {
        self.entities.get(entity).map_or(0, |e| e.view().shredded_through)
    }

    /// The generation a new key for `entity` gets: past every generation
    /// the store knows of (lost ones included), and at least its bucket's
    /// wrapping generation. Every shred rotates the bucket's wrapping key
    /// past the generation it shreds before it is acknowledged, so the
    /// wrapping generation is past every generation a shred ever covered in
    /// the bucket: a generation number is never
    /// minted twice, even after salvage set aside the journal that recorded
    /// it, as long as the keyset survives.
    pub fn next_generation(&self, entity: &str) -> u32 {
        let known = self.entities.get(entity).map_or(0, |e| {
            let lost = e.lost.iter().copied().max().unwrap_or(0);
            let view = e.view();
            view.generation.max(view.shredded_through).max(lost)
        });
        (known + 1).max(self.wraps.bucket(bucket_of(entity)).generation)
    }

    /// A key the store minted, now durable in the journal.
    pub fn insert(&mut self, entity: &str, generation: u32, key: Key) {
        self.record(entity, generation, Some(key));
    }

    /// A key record read back from the journal: opened with the keyset if
    /// its wrapping key is still there.
    pub fn read_record(
        &mut self,
        entity: &str,
        generation: u32,
        wrap_generation: u32,
        wrapped: &[u8; WRAPPED_KEY_LEN],
    ) {
        assert!(generation > 0, "key generations start at 1");
        // Only a record that would count is opened: most records rewrap a
        // key the entity holds already (each shred of its bucket rewraps
        // it), and opening costs a decryption.
        let e = self.entry(entity);
        if !e.takes(generation) {
            return;
        }
        let bucket = usize::from(e.bucket);
        let key = self.wraps.wrap_key(bucket, wrap_generation).and_then(|w| {
            let aad = wrap_aad(self.store_id, entity, generation, wrap_generation);
            unwrap(w, &aad, wrapped).ok()
        });
        self.record(entity, generation, key);
    }

    fn record(&mut self, entity: &str, generation: u32, key: Option<Key>) {
        assert!(generation > 0, "key generations start at 1");
        self.entry(entity).put(generation, key);
    }

    /// A shred of `entity` up to `generation`, acknowledged: its bucket's
    /// wrapping key was rotated without its key, so no record of it opens
    /// any more.
    pub fn shred(&mut self, entity: &str, generation: u32) {
        let e = self.entry(entity);
        e.key = None;
        e.shreds.push(generation);
    }

    /// A shred read back from the journal; whether it counts is worked out
    /// when asked (see [`EntityKey::view`]).
    pub fn read_shred(&mut self, entity: &str, generation: u32) {
        self.entry(entity).shreds.push(generation);
    }

    /// A salvage accepted that `entity`'s key of `generation` is lost (it
    /// wrote a lost record, or read one back). A key that opens stays live.
    pub fn read_lost(&mut self, entity: &str, generation: u32) {
        let e = self.entry(entity);
        if !e.lost.contains(&generation) {
            e.lost.push(generation);
        }
    }

    /// Every entity's keys, bucket by bucket in name order, each live key
    /// wrapped afresh under its bucket's wrapping key (one `nonce` each).
    pub fn image(&self, mut nonce: impl FnMut() -> [u8; NONCE_LEN]) -> Vec<EntityKeyImage> {
        let mut image = Vec::with_capacity(self.entities.len());
        for (bucket, names) in self.members.iter().enumerate() {
            let wrapping = self.wraps.bucket(bucket);
            for name in names {
                let Some(e) = self.entities.get(name) else { unreachable!("a member has keys") };
                let wrapped = e.key.as_ref().map(|key| {
                    let aad = wrap_aad(self.store_id, name, e.recorded, wrapping.generation);
                    (wrapping.generation, wrap(&wrapping.key, nonce(), &aad, key))
                });
                image.push(EntityKeyImage {
                    entity: name.clone(),
                    recorded: e.recorded,
                    wrapped,
                    shreds: e.shreds.clone(),
                    lost: e.lost.clone(),
                });
            }
        }
        image
    }

    /// Takes back every entity's keys from an image, into keys that know of
    /// no entity yet: each key opens with the keyset as a key record would
    /// (a wrapping key rotated since leaves it closed, as it leaves the
    /// records the journal holds). An entity twice is an error. Each
    /// bucket's members are built at once, not one insert at a time.
    pub fn restore_all(&mut self, images: Vec<EntityKeyImage>) -> Result<(), String> {
        assert!(self.entities.is_empty(), "keys are restored into keys that know of no entity");
        self.entities.reserve(images.len());
        let mut members: Vec<Vec<Arc<str>>> = vec![Vec::new(); KEY_BUCKETS];
        for image in images {
            let bucket = bucket_of(&image.entity);
            let key = image.wrapped.and_then(|(wrap_generation, wrapped)| {
                let aad = wrap_aad(self.store_id, &image.entity, image.recorded, wrap_generation);
                unwrap(self.wraps.wrap_key(bucket, wrap_generation)?, &aad, &wrapped).ok()
            });
            let small = u8::try_from(bucket).unwrap_or_else(|_| unreachable!("{KEY_BUCKETS} buckets fit a byte"));
            let e = EntityKey { bucket: small, recorded: image.recorded, key, shreds: image.shreds, lost: image.lost };
            if self.entities.insert(image.entity.clone(), e).is_some() {
                return Err(format!("entity {:?} has keys twice", image.entity));
            }
            members[bucket].push(image.entity);
        }
        for (set, names) in self.members.iter_mut().zip(members) {
            *set = names.into_iter().collect();
        }
        Ok(())
    }

    /// A digest of what the store knows of every entity's keys (keys
    /// hashed, never shown), to compare two opens of one store by.
    pub fn digest(&self, hasher: &mut crate::hash::RunHasher) {
        for names in &self.members {
            for name in names {
                let Some(e) = self.entities.get(name) else { unreachable!("a member has keys") };
                hasher.update(&(name.len() as u64).to_le_bytes());
                hasher.update(name.as_bytes());
                hasher.update(&e.recorded.to_le_bytes());
                let key = e.key.as_ref().map_or([0; 32], |k| *blake3::hash(k.expose_secret()).as_bytes());
                hasher.update(&key);
                for list in [&e.shreds, &e.lost] {
                    hasher.update(&(list.len() as u64).to_le_bytes());
                    for generation in list {
                        hasher.update(&generation.to_le_bytes());
                    }
                }
            }
        }
        for (_, w) in self.wraps.iter() {
            hasher.update(&w.generation.to_le_bytes());
        }
    }

    /// The live keys of the entities of `bucket`, in entity order.
    pub fn live_in_bucket(&self, bucket: usize) -> Vec<(&str, u32, &Key)> {
        self.members[bucket]
            .iter()
            .filter_map(|entity| {
                let view = self.entities.get(entity)?.view();
                view.key.map(|k| (&**entity, view.generation, k))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{wrap, KEY_LEN};

    fn keyset() -> Keyset {
        let mut n = 0u8;
        Keyset::fresh(|| {
            n += 1;
            Key::from_bytes([n; KEY_LEN])
        })
    }

    #[test]
    fn statuses_follow_records_and_shreds() {
        let ks = keyset();
        let mut keys = StoreKeys::new(7, ks.clone());
        let bucket = bucket_of("a");
        let w = ks.bucket(bucket).clone();
        let k1 = Key::from_bytes([50; KEY_LEN]);
        let wrapped = wrap(&w.key, [1; 12], &wrap_aad(7, "a", 1, w.generation), &k1);
        keys.read_record("a", 1, w.generation, &wrapped);
        assert_eq!(keys.status("a", 1), KeyStatus::Live(&k1));
        assert_eq!(keys.status("a", 2), KeyStatus::Missing);
        assert_eq!(keys.status("b", 1), KeyStatus::Missing);
        keys.read_shred("a", 1);
        assert_eq!(keys.status("a", 1), KeyStatus::Live(&k1), "a shred whose key still opens was not acked");
        keys.shred("a", 1);
        assert_eq!(keys.status("a", 1), KeyStatus::Shredded);
        assert_eq!(keys.next_generation("a"), 2);
        keys.insert("a", 2, Key::from_bytes([51; KEY_LEN]));
        assert!(matches!(keys.status("a", 2), KeyStatus::Live(_)));
        assert_eq!(keys.status("a", 1), KeyStatus::Shredded);

        // A record whose wrapping key is gone does not open: missing
        // unless a shred covers it.
        let mut after = StoreKeys::new(7, ks.rotated(bucket, Key::from_bytes([60; KEY_LEN]), 0));
        after.read_record("a", 1, w.generation, &wrapped);
        assert_eq!(after.status("a", 1), KeyStatus::Missing);
        after.read_shred("a", 1);
        assert_eq!(after.status("a", 1), KeyStatus::Shredded);
    }

    #[test]
    fn an_image_restores_the_same_keys_and_refuses_an_entity_twice() {
        let ks = keyset();
        let mut keys = StoreKeys::new(7, ks.clone());
        for (i, entity) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            keys.insert(entity, 1, Key::from_bytes([40 + i as u8; KEY_LEN]));
        }
        keys.shred("b", 1);
        keys.insert("b", 2, Key::from_bytes([49; KEY_LEN]));
        keys.shred("c", 1);
        let image = keys.image(|| [3; NONCE_LEN]);
        let mut back = StoreKeys::new(7, ks.clone());
        back.restore_all(image.clone()).expect("an image restores");
        let digest = |k: &StoreKeys| {
            let mut h = crate::hash::RunHasher::default();
            k.digest(&mut h);
            h.finalize()
        };
        assert_eq!(digest(&back), digest(&keys));
        assert_eq!(back.members, keys.members);
        assert_eq!(back.status("b", 2), keys.status("b", 2));
        assert_eq!(back.status("c", 1), KeyStatus::Shredded);

        let mut twice = image.clone();
        twice.push(image[0].clone());
        let refused = StoreKeys::new(7, ks).restore_all(twice);
        assert!(refused.is_err_and(|e| e.contains("has keys twice")));
    }

    #[test]
    fn a_generation_is_never_minted_twice_while_the_keyset_survives() {
        let ks = keyset();
        let bucket = bucket_of("a");
        // "a" of generation 1 was shredded: the bucket's wrapping key was
        // rotated. A store that forgot the journal (salvage set it aside)
        // knows nothing of "a", yet mints past the shredded generation.
        let rotated = ks.rotated(bucket, Key::from_bytes([60; KEY_LEN]), 0);
        let forgetful = StoreKeys::new(7, rotated.clone());
        assert_eq!(forgetful.next_generation("a"), 2);
        // Shreds of other entities of the bucket only move it further on.
        let twice = rotated.rotated(bucket, Key::from_bytes([61; KEY_LEN]), 0);
        assert_eq!(StoreKeys::new(7, twice).next_generation("a"), 3);
        // A shred of a generation past the bucket's wrapping generation
        // (keys minted after lost ones, say) moves the bucket past it.
        let past = ks.rotated(bucket, Key::from_bytes([62; KEY_LEN]), 9);
        assert_eq!(StoreKeys::new(7, past).next_generation("a"), 10);
        assert_eq!(StoreKeys::new(7, ks).next_generation("a"), 1, "a fresh keyset starts at 1");
    }

    #[test]
    fn a_lost_generation_reads_as_lost_and_is_never_minted_again() {
        let ks = keyset();
        let mut keys = StoreKeys::new(7, ks.clone());
        let w = ks.bucket(bucket_of("a")).clone();
        // A record whose wrapping key is gone: missing, until a salvage
        // records the loss.
        let wrapped = wrap(
            &Key::from_bytes([60; KEY_LEN]),
            [1; 12],
            &wrap_aad(7, "a", 1, w.generation),
            &Key::from_bytes([50; KEY_LEN]),
        );
        keys.read_record("a", 1, w.generation, &wrapped);
        assert_eq!(keys.status("a", 1), KeyStatus::Missing);
        keys.read_lost("a", 1);
        assert_eq!(keys.status("a", 1), KeyStatus::Lost);
        assert_eq!(keys.next_generation("a"), 2);
        keys.insert("a", 2, Key::from_bytes([51; KEY_LEN]));
        assert_eq!(keys.status("a", 1), KeyStatus::Lost, "a newer generation does not make a lost one shredded");
        // A lost generation of an entity with no record left is not
        // minted again either.
        let mut bare = StoreKeys::new(7, ks);
        bare.read_lost("b", 3);
        assert_eq!(bare.next_generation("b"), 4);
    }
}
