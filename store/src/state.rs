//! The committed state in memory: every event, the per-entity index and
//! version, and the idempotency table. Only the writer mutates it, and only
//! with bytes that are already durable; readers share it behind a lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::chunked::ChunkedVec;
use crate::crypto::{event_aad, open};
use crate::error::ReadError;
use crate::hash::{chain_hash, GENESIS};
use crate::journal::record::EventRecord;
use crate::keys::{KeyStatus, StoreKeys};
use crate::model::{Coordinate, Event, EventDigest, EventId, Payload, Region};

/// FxHash: no random seed, the same hashes in every run and process, so
/// nothing about a lookup depends on one (and fast for short names).
pub type FixedHasher = rustc_hash::FxBuildHasher;

/// One committed event, with its names interned.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub entity: Arc<str>,
    pub scope: Arc<str>,
    pub kind: Arc<str>,
    pub entity_seq: u64,
    pub timestamp_ns: u64,
    pub causation: Option<u64>,
    pub correlation: u128,
    pub key_gen: u32,
    pub payload: Payload,
    pub hash: [u8; 32],
    /// The newest effect of this event (0: none).
    pub first_effect: u64,
    /// The next older effect of this event's cause (0: none).
    pub next_effect: u64,
}

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
    events: ChunkedVec<StoredEvent>,
    /// Every entity by name: point lookups only, never iterated (so its
    /// order cannot reach an answer or the disk).
    entities: HashMap<Arc<str>, EntityState, FixedHasher>,
    /// The entity names in order, for prefix queries.
    entity_names: BTreeSet<Arc<str>>,
    /// Every scope and kind, interned: point lookups only.
    names: HashSet<Arc<str>, FixedHasher>,
    /// The last scope and kind interned: most events repeat them.
    recent: [Option<Arc<str>>; 2],
    idempotency: BTreeMap<Box<str>, IdempotencyEntry>,
    /// The store's keys as readers use them: durable entity keys only;
    /// `None` for a plaintext store.
    keys: Option<StoreKeys>,
    /// Events whose correlation is another event's id, by correlation.
    correlations: BTreeMap<u128, Vec<u64>>,
    /// Which writer session committed which events: (first global
    /// sequence, epoch) runs, in order.
    epochs: Vec<(u64, u32)>,
}

impl State {
    pub fn new(store_id: u64) -> Self {
        Self {
            store_id,
            events: ChunkedVec::default(),
            entities: HashMap::default(),
            entity_names: BTreeSet::new(),
            names: HashSet::default(),
            recent: [None, None],
            idempotency: BTreeMap::new(),
            keys: None,
            correlations: BTreeMap::new(),
            epochs: Vec::new(),
        }
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
        self.events.len() as u64
    }

    pub fn entity(&self, entity: &str) -> Option<&EntityState> {
        self.entities.get(entity)
    }

    pub fn version(&self, entity: &str) -> u64 {
        self.entities.get(entity).map_or(0, |e| e.version)
    }

    /// The entity's version and the hash of its last event.
    pub fn version_and_head(&self, entity: &str) -> (u64, [u8; 32]) {
        self.entities.get(entity).map_or((0, GENESIS), |e| (e.version, e.head))
    }

    pub fn stored(&self, global: u64) -> Option<&StoredEvent> {
        let index = usize::try_from(global.checked_sub(1)?).ok()?;
        self.events.get(index)
    }

    /// The effects of the event at `global`, in commit order.
    pub fn effects_of(&self, global: u64) -> Vec<u64> {
        let mut effects = Vec::new();
        let mut at = self.stored(global).map_or(0, |s| s.first_effect);
        while let Some(effect) = self.stored(at) {
            effects.push(at);
            at = effect.next_effect;
        }
        effects.reverse();
        effects
    }

    pub fn correlation_followers(&self, correlation: u128) -> &[u64] {
        self.correlations.get(&correlation).map_or(&[], Vec::as_slice)
    }

    pub fn idempotency(&self, key: &str) -> Option<&IdempotencyEntry> {
        self.idempotency.get(key)
    }

    fn intern(&mut self, name: &str, recent: usize) -> Arc<str> {
        if let Some(hit) = self.recent[recent].as_ref().filter(|r| ***r == *name) {
            return hit.clone();
        }
        let arc = match self.names.get(name) {
            Some(existing) => existing.clone(),
            None => {
                let arc: Arc<str> = name.into();
                self.names.insert(arc.clone());
                arc
            }
        };
        self.recent[recent] = Some(arc.clone());
        arc
    }

    /// Checks that `record` follows on from this state: the next global
    /// sequence, the entity's next sequence, a cause that is an earlier
    /// event. The error says which rule broke.
    fn check(&self, record: &EventRecord<'_>) -> Result<(), String> {
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
        Ok(())
    }

    /// Adds one event read back from the journal, if it follows on from
    /// this state; nothing changes if it does not.
    pub fn try_apply(&mut self, record: &EventRecord<'_>, payload: Payload, epoch: u32) -> Result<(), String> {
        self.check(record)?;
        self.push(record, payload, epoch);
        Ok(())
    }

    /// Adds one durable event the writer planned against this state; a
    /// mismatch is a bug.
    pub fn apply(&mut self, record: &EventRecord<'_>, payload: Payload, epoch: u32) {
        if let Err(reason) = self.check(record) {
            panic!("the writer planned an event that does not follow on: {reason}");
        }
        self.push(record, payload, epoch);
    }

    fn push(&mut self, record: &EventRecord<'_>, payload: Payload, epoch: u32) {
        assert_ne!(epoch, 0, "epoch 0 is never written");
        if self.epochs.last().is_none_or(|&(_, last)| last != epoch) {
            self.epochs.push((record.global_seq, epoch));
        }
        debug_assert_eq!(&payload[..], &record.payload[..], "payload bytes are not the record's");
        let scope = self.intern(record.scope, 0);
        let kind = self.intern(record.kind, 1);
        let state = match self.entities.get_mut(record.entity) {
            Some(state) => state,
            None => {
                let name: Arc<str> = record.entity.into();
                let fresh = EntityState { name: name.clone(), version: 0, head: GENESIS, events: Vec::new() };
                self.entity_names.insert(name.clone());
                self.entities.entry(name).or_insert(fresh)
            }
        };
        let entity = state.name.clone();
        state.version = record.entity_seq;
        state.head = record.hash;
        state.events.push(record.global_seq);
        // Effects are a list through the events, newest first.
        let mut next_effect = 0;
        if let Some(cause) = record.causation {
            let Some(cause) = self.events.get_mut(cause as usize - 1) else { unreachable!("checked above") };
            next_effect = std::mem::replace(&mut cause.first_effect, record.global_seq);
        }
        if record.correlation != EventId::new(self.store_id, epoch, record.global_seq).0 {
            self.correlations.entry(record.correlation).or_default().push(record.global_seq);
        }
        self.events.push(StoredEvent {
            entity,
            scope,
            kind,
            entity_seq: record.entity_seq,
            timestamp_ns: record.timestamp_ns,
            causation: record.causation,
            correlation: record.correlation,
            key_gen: record.key_gen,
            payload,
            hash: record.hash,
            first_effect: 0,
            next_effect,
        });
    }

    /// Takes back the last event applied (a group that turned out not to
    /// follow on is undone whole).
    pub fn undo_last(&mut self) {
        let global = self.last_global();
        if global == 0 {
            return;
        }
        let epoch = self.epoch_of(global);
        let Some(last) = self.events.pop() else { unreachable!("last_global counts the events") };
        if self.epochs.last().is_some_and(|&(first, _)| first == global) {
            self.epochs.pop();
        }
        if let Some(cause) = last.causation {
            if let Some(cause) = self.events.get_mut(cause as usize - 1) {
                assert_eq!(cause.first_effect, global, "the newest effect heads its cause's list");
                cause.first_effect = last.next_effect;
            }
        }
        if last.correlation != EventId::new(self.store_id, epoch, global).0 {
            if let Some(list) = self.correlations.get_mut(&last.correlation) {
                list.pop();
                if list.is_empty() {
                    self.correlations.remove(&last.correlation);
                }
            }
        }
        let Some(entity) = self.entities.get_mut(&*last.entity) else { unreachable!("its entity exists") };
        entity.events.pop();
        entity.version -= 1;
        match entity.events.last() {
            Some(&previous) => {
                let Some(event) = self.events.get(previous as usize - 1) else { unreachable!("indexed events exist") };
                entity.head = event.hash;
            }
            None => {
                self.entities.remove(&*last.entity);
                self.entity_names.remove(&*last.entity);
            }
        }
    }

    pub fn record_idempotency(&mut self, key: &str, entry: IdempotencyEntry) {
        let previous = self.idempotency.insert(key.into(), entry);
        assert!(previous.is_none(), "idempotency key {key:?} committed twice");
    }

    /// What the store's keys say of `stored`'s payload: `None` for a
    /// plaintext event of a plaintext store; an integrity error if its key
    /// generation does not fit the store's encryption.
    fn key_status(&self, global: u64, stored: &StoredEvent) -> Result<Option<KeyStatus<'_>>, ReadError> {
        match (stored.key_gen, &self.keys) {
            (0, None) => Ok(None),
            (generation, Some(keys)) if generation > 0 => Ok(Some(keys.status(&stored.entity, generation))),
            (generation, _) => Err(ReadError::Integrity {
                id: self.id_of(global),
                reason: format!("key generation {generation} does not fit the store's encryption"),
            }),
        }
    }

    /// Up to `limit` digests from global sequence `from` on, with no gaps.
    pub fn digests_from(&self, from: u64, limit: usize) -> Result<Vec<EventDigest>, ReadError> {
        let start = from.max(1);
        let end = start.saturating_add(limit as u64).min(self.last_global() + 1);
        let digest = |global: u64| {
            let stored = self.stored(global)?;
            let status = match self.key_status(global, stored) {
                Ok(status) => status,
                Err(e) => return Some(Err(e)),
            };
            Some(Ok(EventDigest {
                id: self.id_of(global),
                hash: stored.hash,
                key_gen: stored.key_gen,
                shredded: status == Some(KeyStatus::Shredded),
                key_lost: matches!(status, Some(KeyStatus::Missing | KeyStatus::Lost)),
            }))
        };
        (start..end).filter_map(digest).collect()
    }

    /// The public view of the event at `global`: its payload opened with
    /// the entity's key, or marked shredded (with no payload) if the key was
    /// shredded, or marked `key_lost` (with no payload) if a salvage found
    /// its key lost to damage.
    pub fn event(&self, global: u64) -> Result<Option<Event>, ReadError> {
        let Some(stored) = self.stored(global) else { return Ok(None) };
        let id = self.id_of(global);
        let gone = || Payload::from(Vec::new());
        let (payload, shredded, key_lost) = match self.key_status(global, stored)? {
            None => (stored.payload.clone(), false, false),
            Some(KeyStatus::Live(key)) => {
                let aad =
                    event_aad(&stored.entity, &stored.scope, id.0, stored.entity_seq, &stored.kind, stored.key_gen);
                let plain = open(key, &aad, &stored.payload)
                    .map_err(|_| ReadError::Integrity { id, reason: "payload does not open with its key".into() })?;
                (Payload::from(plain), false, false)
            }
            Some(KeyStatus::Shredded) => (gone(), true, false),
            Some(KeyStatus::Missing | KeyStatus::Lost) => (gone(), false, true),
        };
        Ok(Some(Event {
            id,
            kind: stored.kind.clone(),
            coordinate: Coordinate::from_parts(stored.entity.clone(), stored.scope.clone()),
            entity_seq: stored.entity_seq,
            global_seq: global,
            causation: stored.causation.map(|c| self.id_of(c)),
            correlation: EventId(stored.correlation),
            timestamp_ns: stored.timestamp_ns,
            payload,
            key_gen: stored.key_gen,
            shredded,
            key_lost,
            hash: stored.hash,
        }))
    }

    /// The event `id`; a shredded event is the typed error `Shredded`, one
    /// whose key was lost to damage an `Integrity` error.
    pub fn get(&self, id: EventId) -> Result<Option<Event>, ReadError> {
        let Some(global) = self.resolve(id) else { return Ok(None) };
        match self.event(global)? {
            Some(event) if event.shredded => {
                Err(ReadError::Shredded { id, entity: event.coordinate.entity().to_owned() })
            }
            Some(event) if event.key_lost => Err(ReadError::Integrity {
                id,
                reason: format!("key generation {} was lost to damage (see the recovery report)", event.key_gen),
            }),
            other => Ok(other),
        }
    }

    fn matches(&self, region: &Region, global: u64, stored: &StoredEvent) -> bool {
        region.entity.as_deref().is_none_or(|e| *stored.entity == *e)
            && region.entity_prefix.as_deref().is_none_or(|p| stored.entity.starts_with(p))
            && region.scope.as_deref().is_none_or(|s| *stored.scope == *s)
            && region.kind.as_deref().is_none_or(|k| *stored.kind == *k)
            && region.global.as_ref().is_none_or(|r| r.contains(&global))
            && region.entity_seq.as_ref().is_none_or(|r| r.contains(&stored.entity_seq))
    }

    /// Global sequences worth testing against `region`, in order, using
    /// the entity index when the region names entities.
    fn candidates(&self, region: &Region) -> Vec<u64> {
        if let Some(entity) = &region.entity {
            let Some(state) = self.entities.get(entity.as_str()) else {
                return Vec::new();
            };
            let range = region.entity_seq.clone().unwrap_or(1..u64::MAX);
            let lo = usize::try_from(range.start.saturating_sub(1)).unwrap_or(usize::MAX).min(state.events.len());
            let hi = usize::try_from(range.end.saturating_sub(1)).unwrap_or(usize::MAX).clamp(lo, state.events.len());
            return state.events[lo..hi].to_vec();
        }
        if let Some(prefix) = &region.entity_prefix {
            let mut globals: Vec<u64> = self
                .entity_names
                .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                .take_while(|name| name.starts_with(prefix.as_str()))
                .filter_map(|name| self.entities.get(name))
                .flat_map(|state| state.events.iter().copied())
                .collect();
            globals.sort_unstable();
            return globals;
        }
        let range = region.global.clone().unwrap_or(1..u64::MAX);
        (range.start.max(1)..range.end.min(self.last_global() + 1)).collect()
    }

    /// Every event in `region`, in global order; shredded events are
    /// listed with their metadata and `shredded` set.
    pub fn query(&self, region: &Region) -> Result<Vec<Event>, ReadError> {
        self.candidates(region)
            .into_iter()
            .filter(|&g| self.stored(g).is_some_and(|s| self.matches(region, g, s)))
            .filter_map(|g| self.event(g).transpose())
            .collect()
    }

    /// Up to `limit` events from global sequence `from` on, with no gaps.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, ReadError> {
        let start = from.max(1);
        let end = start.saturating_add(limit as u64).min(self.last_global() + 1);
        (start..end).filter_map(|g| self.event(g).transpose()).collect()
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
        let mut missing: Vec<(String, u32)> = Vec::new();
        for stored in self.events.iter() {
            let lost = match (&self.keys, stored.key_gen) {
                (Some(keys), g) if g > 0 => keys.status(&stored.entity, g) == KeyStatus::Missing,
                _ => false,
            };
            if lost && !missing.iter().any(|(e, g)| **e == *stored.entity && *g == stored.key_gen) {
                missing.push((stored.entity.to_string(), stored.key_gen));
            }
        }
        missing
    }

    /// Checks that every event's payload fits the store's encryption
    /// setting; the first event that does not is returned with the reason.
    pub fn check_encryption(&self) -> Result<(), (u64, String)> {
        for (i, stored) in self.events.iter().enumerate() {
            let global = i as u64 + 1;
            match (&self.keys, stored.key_gen) {
                (None, 0) | (Some(_), 1..) => {}
                (None, g) => return Err((global, format!("encrypted (key generation {g}) in a plaintext store"))),
                (Some(_), 0) => return Err((global, "plaintext in an encrypted store".into())),
            }
        }
        Ok(())
    }

    /// Recomputes every entity's hash chain; the first event whose stored
    /// hash differs is returned.
    pub fn verify_chains(&self) -> Result<(), u64> {
        // Entity by entity (each link needs only the entity's previous
        // event), keeping the lowest failure, so the answer does not depend
        // on the order the entities are visited in.
        let mut first_bad: Option<u64> = None;
        for state in self.entities.values() {
            let mut prev = GENESIS;
            for &global in &state.events {
                let Some(stored) = self.stored(global) else { unreachable!("indexed events exist") };
                let record = EventRecord {
                    global_seq: global,
                    entity_seq: stored.entity_seq,
                    timestamp_ns: stored.timestamp_ns,
                    causation: stored.causation,
                    correlation: stored.correlation,
                    kind: &stored.kind,
                    entity: &stored.entity,
                    scope: &stored.scope,
                    key_gen: stored.key_gen,
                    hash: stored.hash,
                    payload: std::borrow::Cow::Borrowed(&stored.payload),
                };
                if chain_hash(&prev, &record, self.epoch_of(global)) != stored.hash {
                    first_bad = Some(first_bad.map_or(global, |bad| bad.min(global)));
                    break;
                }
                prev = stored.hash;
            }
        }
        first_bad.map_or(Ok(()), Err)
    }
}
