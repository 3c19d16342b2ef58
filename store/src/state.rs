//! The committed state in memory: a compact index of every event, the
//! per-entity index and version, and the idempotency table. An event's
//! payload, hash, timestamp and the rest stay in its journal frame and are
//! read through the disk seam when asked for (`journal/files.rs`); memory
//! holds [`Slot`]s of 40 bytes plus 8 in the entity's list, so a store
//! grows past RAM. Only the writer mutates the state, and only with bytes
//! that are already durable; readers share it behind a lock. Reading
//! events back, frame by checked frame, is `state/reads.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::chunked::ChunkedVec;
use crate::hash::GENESIS;
use crate::journal::files::SegmentFiles;
use crate::journal::record::EventRecord;
use crate::keys::{KeyStatus, StoreKeys};

mod image;
mod reads;
use crate::limits::SEGMENTS_MAX;
use crate::model::EventId;
pub use image::{ImageError, ImageRead};

/// FxHash: no random seed, the same hashes in every run and process, so
/// nothing about a lookup depends on one (and fast for short names).
pub type FixedHasher = rustc_hash::FxBuildHasher;

/// The one copy of `name` in `names` (added if new), which every pair that
/// has it shares.
fn intern(names: &mut HashSet<Arc<str>, FixedHasher>, name: &str) -> Arc<str> {
    if let Some(known) = names.get(name) {
        return known.clone();
    }
    let name: Arc<str> = name.into();
    names.insert(name.clone());
    name
}

/// Where an event's frame lies in the journal, as the writer wrote it or
/// the scan found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLoc {
    pub segment: u64,
    /// Offset of the frame's header in the segment.
    pub offset: u64,
    /// Bytes of the frame, header included.
    pub len: u32,
    /// The CRC of its body, as its header records it.
    pub crc: u32,
}

/// Where the journal the state was built from ends: its last whole group
/// (the one a checkpoint of the state ends with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalEnd {
    pub segment: u64,
    /// The end of the group's commit frame in the segment.
    pub end: u64,
    pub group_id: u64,
    pub flush: crate::journal::scan::FlushPos,
    /// The group's commit frame.
    pub commit: [u8; crate::journal::record::COMMIT_FRAME_LEN],
}

/// One committed event in the index: where its frame is and what must be
/// found there, its entity, its names, its cause and its correlation.
#[derive(Clone, Copy, Debug)]
struct Slot {
    offset: u64,
    /// Global sequence of its cause; 0 for none.
    causation: u64,
    segment: u32,
    entity: u32,
    /// Its (scope, kind) pair, interned.
    names: u32,
    len: u32,
    crc: u32,
    /// 0: correlated by its own id; n: the correlation `correlations[n - 1]`.
    correlation: u32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 40);

#[derive(Clone, Debug)]
pub struct EntityState {
    /// The entity's name, shared by all its events.
    pub name: Arc<str>,
    /// Number of events the entity has; its last event's `entity_seq`.
    pub version: u64,
    /// Hash of the entity's last event.
    pub head: [u8; 32],
    /// Global sequences of its events, in order.
    pub events: Vec<u64>,
    /// The key generations its events are sealed with, each with the
    /// first event sealed with it, in that order.
    key_gens: Vec<(u32, u64)>,
}

/// A committed idempotency key: the batch's fingerprint and where its
/// events are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyEntry {
    pub fingerprint: [u8; 16],
    pub first_global: u64,
    pub count: u32,
}

#[derive(Debug)]
pub struct State {
    store_id: u64,
    files: Arc<SegmentFiles>,
    slots: ChunkedVec<Slot>,
    /// Every entity by name: point lookups only, never iterated (so its
    /// order cannot reach an answer or the disk).
    entity_ids: HashMap<Arc<str>, u32, FixedHasher>,
    /// Every entity, numbered in the order of its first event.
    entities: Vec<EntityState>,
    /// The entity names in order, for prefix queries.
    entity_names: BTreeSet<Arc<str>>,
    /// Every (scope, kind) pair, numbered.
    pairs: Vec<(Arc<str>, Arc<str>)>,
    pair_ids: hashbrown::HashMap<(Arc<str>, Arc<str>), u32, FixedHasher>,
    /// Every scope and kind name, interned: point lookups only.
    names: HashSet<Arc<str>, FixedHasher>,
    idempotency: BTreeMap<Box<str>, IdempotencyEntry>,
    /// The store's keys as readers use them: durable entity keys only;
    /// `None` for a plaintext store.
    keys: Option<StoreKeys>,
    /// Every correlation that is not its event's own id, numbered, with the
    /// events it correlates in order.
    correlations: Vec<(u128, Vec<u64>)>,
    correlation_ids: HashMap<u128, u32, FixedHasher>,
    /// The effects of every event that has one, in commit order.
    effects: HashMap<u64, Vec<u64>, FixedHasher>,
    /// Which writer session committed which events: (first global
    /// sequence, epoch) runs, in order.
    epochs: Vec<(u64, u32)>,
    /// The first plaintext event, and the first sealed one with its key
    /// generation (an encrypted store has no plaintext event, and the
    /// reverse).
    first_plain: Option<u64>,
    first_sealed: Option<(u64, u32)>,
    /// The last whole group applied; `None` before the first.
    journal_end: Option<JournalEnd>,
}

/// A (scope, kind) pair looked up by borrowed names: it hashes as the
/// pair of `Arc<str>` it stands for.
#[derive(Hash)]
struct PairRef<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(Arc<str>, Arc<str>)> for PairRef<'_> {
    fn equivalent(&self, key: &(Arc<str>, Arc<str>)) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

impl State {
    pub fn new(store_id: u64, files: Arc<SegmentFiles>) -> Self {
        Self {
            store_id,
            files,
            slots: ChunkedVec::default(),
            entity_ids: HashMap::default(),
            entities: Vec::new(),
            entity_names: BTreeSet::new(),
            pairs: Vec::new(),
            pair_ids: hashbrown::HashMap::default(),
            names: HashSet::default(),
            idempotency: BTreeMap::new(),
            keys: None,
            correlations: Vec::new(),
            correlation_ids: HashMap::default(),
            effects: HashMap::default(),
            epochs: Vec::new(),
            first_plain: None,
            first_sealed: None,
            journal_end: None,
        }
    }

    /// The last whole group applied (by the scan, or by the writer once
    /// its flush is durable).
    pub fn journal_end(&self) -> Option<JournalEnd> {
        self.journal_end
    }

    pub fn set_journal_end(&mut self, end: JournalEnd) {
        assert!(
            self.journal_end.is_none_or(|e| (e.segment, e.end, e.group_id) < (end.segment, end.end, end.group_id)),
            "the journal's end moves forward"
        );
        self.journal_end = Some(end);
    }

    /// The epoch of the writer session that committed the event at
    /// `global` (which must exist).
    pub fn epoch_of(&self, global: u64) -> u32 {
        let run = self.epochs.partition_point(|&(first, _)| first <= global);
        assert!(run > 0 && global <= self.last_global(), "epoch of event {global}, which does not exist");
        self.epochs[run - 1].1
    }

    /// Every epoch that committed an event still here.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        self.epochs.iter().map(|&(_, epoch)| epoch)
    }

    /// The id of the event at `global` (which must exist).
    pub fn id_of(&self, global: u64) -> EventId {
        EventId::new(self.store_id, self.epoch_of(global), global)
    }

    /// The global sequence of the event `id` names, if it is an event of
    /// this store that is here now: right store, existing position, and
    /// the epoch that committed it. An id from before a loss whose position
    /// now holds another event resolves to nothing.
    pub fn resolve(&self, id: EventId) -> Option<u64> {
        let global = id.global_seq();
        let here = id.store_tag() == crate::model::store_tag(self.store_id)
            && global >= 1
            && global <= self.last_global()
            && self.epoch_of(global) == id.epoch();
        here.then_some(global)
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The global sequence of the last committed event (0 if none).
    pub fn last_global(&self) -> u64 {
        self.slots.len() as u64
    }

    pub fn entity(&self, entity: &str) -> Option<&EntityState> {
        self.entity_ids.get(entity).map(|&e| &self.entities[e as usize])
    }

    pub fn version(&self, entity: &str) -> u64 {
        self.entity(entity).map_or(0, |e| e.version)
    }

    /// The entity's version and the hash of its last event.
    pub fn version_and_head(&self, entity: &str) -> (u64, [u8; 32]) {
        self.entity(entity).map_or((0, GENESIS), |e| (e.version, e.head))
    }

    fn slot(&self, global: u64) -> Option<&Slot> {
        let index = usize::try_from(global.checked_sub(1)?).ok()?;
        self.slots.get(index)
    }

    /// Whether the event at `global` exists.
    pub fn exists(&self, global: u64) -> bool {
        self.slot(global).is_some()
    }

    /// The cause of the event at `global`, if it has one.
    pub fn cause_of(&self, global: u64) -> Option<u64> {
        self.slot(global).and_then(|s| (s.causation != 0).then_some(s.causation))
    }

    /// The correlation of the event at `global` (which must exist).
    pub fn correlation_of(&self, global: u64) -> u128 {
        let Some(slot) = self.slot(global) else { unreachable!("correlation of event {global}, which does not exist") };
        match slot.correlation {
            0 => self.id_of(global).0,
            n => self.correlations[n as usize - 1].0,
        }
    }

    /// The entity sequence of the event at `global` (which must exist).
    pub fn entity_seq_of(&self, global: u64) -> u64 {
        let Some(slot) = self.slot(global) else {
            unreachable!("entity sequence of event {global}, which does not exist")
        };
        let events = &self.entities[slot.entity as usize].events;
        match events.binary_search(&global) {
            Ok(index) => index as u64 + 1,
            Err(_) => unreachable!("an event is in its entity's list"),
        }
    }

    /// The effects of the event at `global`, in commit order.
    pub fn effects_of(&self, global: u64) -> &[u64] {
        self.effects.get(&global).map_or(&[], Vec::as_slice)
    }

    pub fn correlation_followers(&self, correlation: u128) -> &[u64] {
        self.correlation_ids.get(&correlation).map_or(&[], |&n| self.correlations[n as usize - 1].1.as_slice())
    }

    pub fn idempotency(&self, key: &str) -> Option<&IdempotencyEntry> {
        self.idempotency.get(key)
    }

    fn intern_pair(&mut self, scope: &str, kind: &str) -> u32 {
        if let Some(&id) = self.pair_ids.get(&PairRef(scope, kind)) {
            return id;
        }
        let (scope, kind) = (intern(&mut self.names, scope), intern(&mut self.names, kind));
        let id = u32::try_from(self.pairs.len()).unwrap_or_else(|_| unreachable!("fewer pairs than events"));
        self.pairs.push((scope.clone(), kind.clone()));
        self.pair_ids.insert((scope, kind), id);
        id
    }

    /// Checks that `record` follows on from this state: the next global
    /// sequence, the entity's next sequence, a cause that is an earlier
    /// event. The error says which rule broke.
    fn check(&self, record: &EventRecord<'_>, loc: &FrameLoc) -> Result<(), String> {
        let due = self.last_global() + 1;
        if record.global_seq != due {
            return Err(format!("global sequence {} where {due} was due", record.global_seq));
        }
        let version = self.version(record.entity);
        if record.entity_seq != version + 1 {
            return Err(format!(
                "entity {} sequence {} where {} was due",
                record.entity,
                record.entity_seq,
                version + 1
            ));
        }
        if let Some(cause) = record.causation {
            if cause == 0 || cause >= record.global_seq {
                return Err(format!("event {} names cause {cause}, not an earlier event", record.global_seq));
            }
        }
        if loc.segment >= SEGMENTS_MAX {
            return Err(format!("segment {} is past the last the index can name", loc.segment));
        }
        Ok(())
    }

    /// Adds one event read back from the journal, if it follows on from
    /// this state; nothing changes if it does not.
    pub fn try_apply(&mut self, record: &EventRecord<'_>, loc: FrameLoc, epoch: u32) -> Result<(), String> {
        self.check(record, &loc)?;
        self.push(record, loc, epoch);
        Ok(())
    }

    /// Adds one durable event the writer planned against this state; a
    /// mismatch is a bug.
    pub fn apply(&mut self, record: &EventRecord<'_>, loc: FrameLoc, epoch: u32) {
        if let Err(reason) = self.check(record, &loc) {
            panic!("the writer planned an event that does not follow on: {reason}");
        }
        self.push(record, loc, epoch);
    }

    fn push(&mut self, record: &EventRecord<'_>, loc: FrameLoc, epoch: u32) {
        assert_ne!(epoch, 0, "epoch 0 is never written");
        let global = record.global_seq;
        if self.epochs.last().is_none_or(|&(_, last)| last != epoch) {
            self.epochs.push((global, epoch));
        }
        let names = self.intern_pair(record.scope, record.kind);
        let entity = match self.entity_ids.get(record.entity) {
            Some(&entity) => entity,
            None => {
                let name: Arc<str> = record.entity.into();
                let entity =
                    u32::try_from(self.entities.len()).unwrap_or_else(|_| unreachable!("fewer entities than events"));
                self.entities.push(EntityState {
                    name: name.clone(),
                    version: 0,
                    head: GENESIS,
                    events: Vec::new(),
                    key_gens: Vec::new(),
                });
                self.entity_names.insert(name.clone());
                self.entity_ids.insert(name, entity);
                entity
            }
        };
        let state = &mut self.entities[entity as usize];
        state.version = record.entity_seq;
        state.head = record.hash;
        state.events.push(global);
        match record.key_gen {
            0 => _ = self.first_plain.get_or_insert(global),
            generation => {
                self.first_sealed.get_or_insert((global, generation));
                if !state.key_gens.iter().any(|&(g, _)| g == generation) {
                    state.key_gens.push((generation, global));
                }
            }
        }
        if let Some(cause) = record.causation {
            self.effects.entry(cause).or_default().push(global);
        }
        let mut correlation = 0;
        if record.correlation != EventId::new(self.store_id, epoch, global).0 {
            let next = self.correlations.len() as u32 + 1;
            correlation = *self.correlation_ids.entry(record.correlation).or_insert(next);
            if correlation == next {
                self.correlations.push((record.correlation, Vec::new()));
            }
            self.correlations[correlation as usize - 1].1.push(global);
        }
        self.slots.push(Slot {
            offset: loc.offset,
            causation: record.causation.unwrap_or(0),
            segment: loc.segment as u32,
            entity,
            names,
            len: loc.len,
            crc: loc.crc,
            correlation,
        });
    }

    /// Takes back the last event applied (a group that turned out not to
    /// follow on is undone whole); `head` is its entity's hash before it.
    pub fn undo_last(&mut self, head: [u8; 32]) {
        let global = self.last_global();
        let Some(last) = self.slots.pop() else { return };
        if self.epochs.last().is_some_and(|&(first, _)| first == global) {
            self.epochs.pop();
        }
        if last.causation != 0 {
            let Some(effects) = self.effects.get_mut(&last.causation) else {
                unreachable!("a cause lists its effects")
            };
            assert_eq!(effects.pop(), Some(global), "the newest effect ends its cause's list");
            if effects.is_empty() {
                self.effects.remove(&last.causation);
            }
        }
        if last.correlation != 0 {
            let n = last.correlation as usize;
            let list = &mut self.correlations[n - 1].1;
            assert_eq!(list.pop(), Some(global), "the newest event ends its correlation's list");
            if list.is_empty() {
                // Created by this event, so the newest correlation.
                assert_eq!(n, self.correlations.len(), "an emptied correlation is the newest");
                let (value, _) = self.correlations.pop().unwrap_or_else(|| unreachable!("checked above"));
                self.correlation_ids.remove(&value);
            }
        }
        if self.first_plain == Some(global) {
            self.first_plain = None;
        }
        if self.first_sealed.is_some_and(|(g, _)| g == global) {
            self.first_sealed = None;
        }
        let state = &mut self.entities[last.entity as usize];
        state.events.pop();
        state.version -= 1;
        state.head = head;
        if state.key_gens.last().is_some_and(|&(_, first)| first == global) {
            state.key_gens.pop();
        }
        if state.events.is_empty() {
            assert_eq!(last.entity as usize + 1, self.entities.len(), "an entity emptied is the newest");
            let Some(gone) = self.entities.pop() else { unreachable!("checked above") };
            self.entity_ids.remove(&*gone.name);
            self.entity_names.remove(&*gone.name);
        }
    }

    /// Forgets every idempotency key: the planted bug
    /// `CheckpointForgetsIdempotency` only.
    pub fn forget_idempotency(&mut self) {
        self.idempotency.clear();
    }

    pub fn record_idempotency(&mut self, key: &str, entry: IdempotencyEntry) {
        let previous = self.idempotency.insert(key.into(), entry);
        assert!(previous.is_none(), "idempotency key {key:?} committed twice");
    }

    pub fn keys(&self) -> Option<&StoreKeys> {
        self.keys.as_ref()
    }

    pub fn keys_mut(&mut self) -> Option<&mut StoreKeys> {
        self.keys.as_mut()
    }

    /// Sets the store's keys (an encrypted store has them, even if none
    /// is minted yet).
    pub fn set_keys(&mut self, keys: Option<StoreKeys>) {
        self.keys = keys;
    }

    /// Every (entity, key generation) some event needs whose key is
    /// neither live nor shredded, in event order, each once.
    pub fn missing_keys(&self) -> Vec<(String, u32)> {
        let Some(keys) = &self.keys else { return Vec::new() };
        let mut missing: Vec<(u64, &str, u32)> = self
            .entities
            .iter()
            .flat_map(|e| e.key_gens.iter().map(move |&(generation, first)| (first, &*e.name, generation)))
            .filter(|&(_, entity, generation)| keys.status(entity, generation) == KeyStatus::Missing)
            .collect();
        missing.sort_unstable();
        missing.into_iter().map(|(_, entity, generation)| (entity.to_owned(), generation)).collect()
    }

    /// Checks that every event's payload fits the store's encryption
    /// setting; the first event that does not is returned with the reason.
    pub fn check_encryption(&self) -> Result<(), (u64, String)> {
        match (&self.keys, self.first_plain, self.first_sealed) {
            (None, _, Some((global, g))) => {
                Err((global, format!("encrypted (key generation {g}) in a plaintext store")))
            }
            (Some(_), Some(global), _) => Err((global, "plaintext in an encrypted store".into())),
            _ => Ok(()),
        }
    }
}
