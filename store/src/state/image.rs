//! The state as bytes, for the index checkpoint (`checkpoint.rs`), and
//! back. The image holds what cannot be rebuilt: every slot (40 bytes,
//! fixed layout), each entity's name, head and key generations, the
//! (scope, kind) pairs, the idempotency table, the correlation values, the
//! epochs and, for an encrypted store, every entity's keys (wrapped).
//! Entity lists, versions, effects and correlation lists are rebuilt from
//! the slots. Nothing in it comes from a hash map's order.
//!
//! Reading an image checks every number in it against the rest (an entity,
//! pair or correlation that exists, a cause before its effect, a frame
//! inside the journal the checkpoint covers): a file whose checksum holds
//! yet does not make sense is refused, never half used.

use std::collections::HashSet;
use std::sync::Arc;

use super::{intern, EntityState, FixedHasher, IdempotencyEntry, JournalEnd, Slot, State};
use crate::hash::RunHasher;
use crate::keys::EntityKeyImage;
use crate::limits::FRAME_HEADER_LEN;

/// Bytes of one slot in an image.
pub const SLOT_IMAGE_LEN: usize = 40;

/// Why an image cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError(pub String);

/// Where an image's bytes come from, in order.
pub trait ImageRead {
    /// The next `n` bytes.
    fn next(&mut self, n: usize) -> Result<&[u8], ImageError>;
}

fn bad(why: impl Into<String>) -> ImageError {
    ImageError(why.into())
}

fn u32_of(src: &mut dyn ImageRead) -> Result<u32, ImageError> {
    Ok(u32::from_le_bytes(src.next(4)?.try_into().map_err(|_| bad("short read"))?))
}

fn u64_of(src: &mut dyn ImageRead) -> Result<u64, ImageError> {
    Ok(u64::from_le_bytes(src.next(8)?.try_into().map_err(|_| bad("short read"))?))
}

fn array_of<const N: usize>(src: &mut dyn ImageRead) -> Result<[u8; N], ImageError> {
    src.next(N)?.try_into().map_err(|_| bad("short read"))
}

/// A count of items, each at least `item_min` bytes, that must fit in what
/// is left of the image (so a damaged count cannot ask for huge memory).
fn count_of(src: &mut dyn ImageRead, left: u64, item_min: u64) -> Result<usize, ImageError> {
    let n = u64_of(src)?;
    if n.saturating_mul(item_min) > left {
        return Err(bad(format!("a count of {n} does not fit in the image")));
    }
    usize::try_from(n).map_err(|_| bad("count too large"))
}

fn string_of(src: &mut dyn ImageRead, len_max: usize) -> Result<Arc<str>, ImageError> {
    str_of(src, len_max).map(Arc::from)
}

/// The next name, borrowed from the image (at most `len_max` bytes).
fn str_of(src: &mut dyn ImageRead, len_max: usize) -> Result<&str, ImageError> {
    let len = u32_of(src)? as usize;
    if len > len_max {
        return Err(bad(format!("a name of {len} bytes")));
    }
    std::str::from_utf8(src.next(len)?).map_err(|_| bad("a name is not UTF-8"))
}

/// The next name, as the one copy `names` holds of it (added if new): a
/// scope or kind shared by many pairs is allocated once.
fn interned_of(
    src: &mut dyn ImageRead,
    len_max: usize,
    names: &mut HashSet<Arc<str>, FixedHasher>,
) -> Result<Arc<str>, ImageError> {
    Ok(intern(names, str_of(src, len_max)?))
}

fn put_str(out: &mut dyn FnMut(&[u8]), s: &str) {
    out(&(s.len() as u32).to_le_bytes());
    out(s.as_bytes());
}

impl Slot {
    fn encode(&self) -> [u8; SLOT_IMAGE_LEN] {
        let mut b = [0u8; SLOT_IMAGE_LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.causation.to_le_bytes());
        b[16..20].copy_from_slice(&self.segment.to_le_bytes());
        b[20..24].copy_from_slice(&self.entity.to_le_bytes());
        b[24..28].copy_from_slice(&self.names.to_le_bytes());
        b[28..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..36].copy_from_slice(&self.crc.to_le_bytes());
        b[36..40].copy_from_slice(&self.correlation.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Self {
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        Self {
            offset: u64_at(0),
            causation: u64_at(8),
            segment: u32_at(16),
            entity: u32_at(20),
            names: u32_at(24),
            len: u32_at(28),
            crc: u32_at(32),
            correlation: u32_at(36),
        }
    }
}

/// An entity as an image holds it: name, head hash, key generations with
/// their first event.
type EntityImage = (Arc<str>, [u8; 32], Vec<(u32, u64)>);

/// The tables after the slots, read whole before the slots are checked
/// against them.
struct Tables {
    entities: Vec<EntityImage>,
    /// Every scope and kind name, once; `pairs` share them.
    names: HashSet<Arc<str>, FixedHasher>,
    pairs: Vec<(Arc<str>, Arc<str>)>,
    idempotency: Vec<(Box<str>, IdempotencyEntry)>,
    correlations: Vec<u128>,
    epochs: Vec<(u64, u32)>,
    first_plain: Option<u64>,
    first_sealed: Option<(u64, u32)>,
    keys: Vec<EntityKeyImage>,
}

impl State {
    /// Writes the image, slots first; `keys` is the keys' image (an
    /// encrypted store's).
    pub fn write_image(&self, keys: &[EntityKeyImage], out: &mut dyn FnMut(&[u8])) {
        for slot in self.slots.iter() {
            out(&slot.encode());
        }
        out(&(self.entities.len() as u64).to_le_bytes());
        for e in &self.entities {
            put_str(out, &e.name);
            out(&e.head);
            out(&(e.key_gens.len() as u64).to_le_bytes());
            for &(generation, first) in &e.key_gens {
                out(&generation.to_le_bytes());
                out(&first.to_le_bytes());
            }
        }
        out(&(self.pairs.len() as u64).to_le_bytes());
        for (scope, kind) in &self.pairs {
            put_str(out, scope);
            put_str(out, kind);
        }
        out(&(self.idempotency.len() as u64).to_le_bytes());
        for (key, entry) in &self.idempotency {
            put_str(out, key);
            out(&entry.fingerprint);
            out(&entry.first_global.to_le_bytes());
            out(&entry.count.to_le_bytes());
        }
        out(&(self.correlations.len() as u64).to_le_bytes());
        for (value, _) in &self.correlations {
            out(&value.to_le_bytes());
        }
        out(&(self.epochs.len() as u64).to_le_bytes());
        for &(first, epoch) in &self.epochs {
            out(&first.to_le_bytes());
            out(&epoch.to_le_bytes());
        }
        out(&self.first_plain.unwrap_or(0).to_le_bytes());
        let (sealed, generation) = self.first_sealed.unwrap_or((0, 0));
        out(&sealed.to_le_bytes());
        out(&generation.to_le_bytes());
        out(&(keys.len() as u64).to_le_bytes());
        for k in keys {
            put_str(out, &k.entity);
            out(&k.recorded.to_le_bytes());
            match &k.wrapped {
                None => out(&[0]),
                Some((wrap_generation, wrapped)) => {
                    out(&[1]);
                    out(&wrap_generation.to_le_bytes());
                    out(wrapped);
                }
            }
            for list in [&k.shreds, &k.lost] {
                out(&(list.len() as u64).to_le_bytes());
                for generation in list {
                    out(&generation.to_le_bytes());
                }
            }
        }
    }

    /// Reads an image of `slots` events, of `len` bytes in all, written by
    /// [`State::write_image`], into `self` (a fresh state, its keys set for
    /// an encrypted store), for a journal that ends at `end` and whose
    /// segments end at `limits` (one per segment up to `end.segment`: where
    /// the next one's header says, and `end.end` for the last). Every
    /// number is checked; on error `self` is to be dropped.
    pub fn read_image(
        &mut self,
        src: &mut dyn ImageRead,
        slots: u64,
        len: u64,
        end: &JournalEnd,
        limits: &[u64],
    ) -> Result<(), ImageError> {
        assert_eq!(self.last_global(), 0, "an image is read into a fresh state");
        let slot_bytes = slots.checked_mul(SLOT_IMAGE_LEN as u64).filter(|&b| b <= len);
        let Some(slot_bytes) = slot_bytes else { return Err(bad(format!("{slots} slots do not fit the image"))) };
        let mut read_slots = crate::chunked::ChunkedVec::default();
        for _ in 0..slots {
            read_slots.push(Slot::decode(src.next(SLOT_IMAGE_LEN)?));
        }
        let tables = read_tables(src, len - slot_bytes)?;
        self.rebuild(read_slots, tables, end, limits)
    }

    fn rebuild(
        &mut self,
        slots: crate::chunked::ChunkedVec<Slot>,
        tables: Tables,
        end: &JournalEnd,
        limits: &[u64],
    ) -> Result<(), ImageError> {
        let Tables { entities, names, pairs, idempotency, correlations, epochs, first_plain, first_sealed, keys } =
            tables;
        assert!(self.entities.is_empty(), "an image is read into a fresh state");
        self.entity_ids.reserve(entities.len());
        self.entities.reserve(entities.len());
        for (name, head, key_gens) in entities {
            let entity = self.entities.len() as u32;
            if self.entity_ids.insert(name.clone(), entity).is_some() {
                return Err(bad(format!("entity {name:?} twice")));
            }
            self.entities.push(EntityState { name, version: 0, head, events: Vec::new(), key_gens });
        }
        self.entity_names = self.entities.iter().map(|e| e.name.clone()).collect();
        assert!(self.names.is_empty(), "an image is read into a fresh state");
        self.names = names;
        self.pair_ids.reserve(pairs.len());
        self.pairs.reserve(pairs.len());
        for (scope, kind) in pairs {
            let id = self.pairs.len() as u32;
            if self.pair_ids.insert((scope.clone(), kind.clone()), id).is_some() {
                return Err(bad("a (scope, kind) pair twice"));
            }
            self.pairs.push((scope, kind));
        }
        for value in correlations {
            let n = self.correlations.len() as u32 + 1;
            if self.correlation_ids.insert(value, n).is_some() {
                return Err(bad("a correlation twice"));
            }
            self.correlations.push((value, Vec::new()));
        }
        let count = slots.len() as u64;
        for (index, slot) in slots.iter().enumerate() {
            let global = index as u64 + 1;
            self.check_slot(global, slot, limits)?;
            self.entities[slot.entity as usize].events.push(global);
            if slot.causation != 0 {
                self.effects.entry(slot.causation).or_default().push(global);
            }
            if slot.correlation != 0 {
                self.correlations[slot.correlation as usize - 1].1.push(global);
            }
        }
        self.slots = slots;
        for e in &mut self.entities {
            e.version = e.events.len() as u64;
            let firsts_known = e.key_gens.iter().all(|(_, first)| e.events.binary_search(first).is_ok());
            if e.events.is_empty() || !firsts_known {
                return Err(bad(format!("entity {:?} does not match its events", e.name)));
            }
        }
        if self.correlations.iter().any(|(_, list)| list.is_empty()) {
            return Err(bad("a correlation with no event"));
        }
        let runs_ordered = epochs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1);
        let runs_fit = epochs.first().is_none_or(|&(first, _)| first == 1)
            && epochs.last().is_none_or(|&(first, _)| first <= count)
            && epochs.iter().all(|&(_, epoch)| epoch != 0)
            && epochs.is_empty() == (count == 0);
        if !runs_ordered || !runs_fit {
            return Err(bad("epochs do not cover the events"));
        }
        self.epochs = epochs;
        for (key, entry) in idempotency {
            let fits =
                entry.first_global >= 1 && entry.first_global.saturating_add(u64::from(entry.count)) <= count + 1;
            if !fits || self.idempotency.insert(key, entry).is_some() {
                return Err(bad("an idempotency entry does not fit"));
            }
        }
        let known = |global: Option<u64>| global.is_none_or(|g| g >= 1 && g <= count);
        if !known(first_plain) || !known(first_sealed.map(|(g, _)| g)) {
            return Err(bad("a first event past the last"));
        }
        self.first_plain = first_plain;
        self.first_sealed = first_sealed;
        match self.keys.as_mut() {
            None if keys.is_empty() => {}
            None => return Err(bad("keys in the image of a plaintext store")),
            Some(store_keys) => store_keys.restore_all(keys).map_err(ImageError)?,
        }
        self.journal_end = Some(*end);
        Ok(())
    }

    /// Checks one slot of an image against the tables read and the journal
    /// the image covers (`limits`: where each of its segments ends).
    fn check_slot(&self, global: u64, slot: &Slot, limits: &[u64]) -> Result<(), ImageError> {
        let frame_end = slot.offset.checked_add(u64::from(slot.len));
        let limit = limits.get(slot.segment as usize);
        let inside = frame_end.zip(limit).is_some_and(|(e, &limit)| e <= limit);
        let fine = (slot.entity as usize) < self.entities.len()
            && (slot.names as usize) < self.pairs.len()
            && (slot.correlation as usize) <= self.correlations.len()
            && slot.causation < global
            && slot.len as usize > FRAME_HEADER_LEN
            && slot.offset >= crate::limits::SEGMENT_HEADER_LEN as u64
            && inside;
        match fine {
            true => Ok(()),
            false => Err(bad(format!("event {global}'s entry does not fit the image"))),
        }
    }

    /// A digest of everything the state knows, derived tables included:
    /// two opens of one store by different roads (a checkpoint, a full
    /// scan) must give the same.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for (_, part) in self.fingerprint_parts() {
            h.update(&part);
        }
        *h.finalize().as_bytes()
    }

    /// [`State::fingerprint`] part by part, each named, to say where two
    /// states differ.
    pub fn fingerprint_parts(&self) -> Vec<(&'static str, [u8; 32])> {
        let mut image = RunHasher::default();
        image.update(&self.store_id.to_le_bytes());
        self.write_image(&[], &mut |bytes| {
            image.update(bytes);
        });
        let mut entities = RunHasher::default();
        for e in &self.entities {
            entities.update(&e.version.to_le_bytes());
            entities.update(&(e.events.len() as u64).to_le_bytes());
            for global in &e.events {
                entities.update(&global.to_le_bytes());
            }
        }
        for name in &self.entity_names {
            entities.update(&(name.len() as u64).to_le_bytes());
            entities.update(name.as_bytes());
        }
        let mut effects = RunHasher::default();
        let mut sorted: Vec<(&u64, &Vec<u64>)> = self.effects.iter().collect();
        sorted.sort_unstable();
        for (cause, list) in sorted {
            effects.update(&cause.to_le_bytes());
            effects.update(&(list.len() as u64).to_le_bytes());
            for global in list {
                effects.update(&global.to_le_bytes());
            }
        }
        let mut correlations = RunHasher::default();
        for (value, list) in &self.correlations {
            correlations.update(&value.to_le_bytes());
            correlations.update(&(list.len() as u64).to_le_bytes());
            for global in list {
                correlations.update(&global.to_le_bytes());
            }
        }
        let mut end = RunHasher::default();
        if let Some(e) = &self.journal_end {
            end.update(&e.segment.to_le_bytes());
            end.update(&e.end.to_le_bytes());
            end.update(&e.group_id.to_le_bytes());
            end.update(&e.flush.flush.to_le_bytes());
            end.update(&e.flush.index.to_le_bytes());
            end.update(&e.flush.count.to_le_bytes());
            end.update(&e.commit);
        }
        let mut keys = RunHasher::default();
        if let Some(k) = &self.keys {
            k.digest(&mut keys);
        }
        let mut idempotency = RunHasher::default();
        for (key, entry) in &self.idempotency {
            idempotency.update(&(key.len() as u64).to_le_bytes());
            idempotency.update(key.as_bytes());
            idempotency.update(&entry.fingerprint);
            idempotency.update(&entry.first_global.to_le_bytes());
            idempotency.update(&entry.count.to_le_bytes());
        }
        [
            ("image", image),
            ("entity lists", entities),
            ("effects", effects),
            ("correlation lists", correlations),
            ("journal end", end),
            ("keys", keys),
            ("idempotency", idempotency),
        ]
        .into_iter()
        .map(|(name, h)| (name, h.finalize()))
        .collect()
    }
}

fn read_tables(src: &mut dyn ImageRead, left: u64) -> Result<Tables, ImageError> {
    use crate::limits::{ENTITY_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX, KIND_LEN_MAX, SCOPE_LEN_MAX};
    let n = count_of(src, left, 44)?;
    let mut entities = Vec::with_capacity(n);
    for _ in 0..n {
        let name = string_of(src, ENTITY_LEN_MAX)?;
        let head = array_of::<32>(src)?;
        let gens = count_of(src, left, 12)?;
        let key_gens = (0..gens).map(|_| Ok((u32_of(src)?, u64_of(src)?))).collect::<Result<_, ImageError>>()?;
        entities.push((name, head, key_gens));
    }
    let n = count_of(src, left, 8)?;
    let mut names = HashSet::default();
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let scope = interned_of(src, SCOPE_LEN_MAX, &mut names)?;
        pairs.push((scope, interned_of(src, KIND_LEN_MAX, &mut names)?));
    }
    let n = count_of(src, left, 32)?;
    let mut idempotency = Vec::with_capacity(n);
    for _ in 0..n {
        let key: Box<str> = (*string_of(src, IDEMPOTENCY_KEY_LEN_MAX)?).into();
        let fingerprint = array_of::<16>(src)?;
        let first_global = u64_of(src)?;
        let count = u32_of(src)?;
        idempotency.push((key, IdempotencyEntry { fingerprint, first_global, count }));
    }
    let n = count_of(src, left, 16)?;
    let correlations =
        (0..n).map(|_| Ok(u128::from_le_bytes(array_of::<16>(src)?))).collect::<Result<_, ImageError>>()?;
    let n = count_of(src, left, 12)?;
    let epochs = (0..n).map(|_| Ok((u64_of(src)?, u32_of(src)?))).collect::<Result<_, ImageError>>()?;
    let first_plain = Some(u64_of(src)?).filter(|&g| g != 0);
    let (sealed, generation) = (u64_of(src)?, u32_of(src)?);
    let first_sealed = (sealed != 0).then_some((sealed, generation));
    let n = count_of(src, left, 21)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let entity = string_of(src, ENTITY_LEN_MAX)?;
        let recorded = u32_of(src)?;
        let wrapped = match src.next(1)?[0] {
            0 => None,
            1 => Some((u32_of(src)?, array_of::<{ crate::crypto::WRAPPED_KEY_LEN }>(src)?)),
            other => return Err(bad(format!("key flag {other}"))),
        };
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = count_of(src, left, 4)?;
            *list = (0..n).map(|_| u32_of(src)).collect::<Result<_, ImageError>>()?;
        }
        let [shreds, lost] = lists;
        keys.push(EntityKeyImage { entity, recorded, wrapped, shreds, lost });
    }
    Ok(Tables { entities, names, pairs, idempotency, correlations, epochs, first_plain, first_sealed, keys })
}
