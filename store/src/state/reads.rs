//! Reading events back: every frame read through the segments, checked
//! against the index before anything of it is returned, and turned into
//! the public view (payload opened, shredded or lost marked).

use std::ops::Range;
use std::sync::Arc;

use super::{Slot, State};
use crate::crypto::{event_aad_into, open_into};
use crate::error::ReadError;
use crate::hash::{chain_hash, GENESIS};
use crate::journal::record::{decode_body, decode_event_named, read_frame, EventRecord, Record};
use crate::keys::KeyStatus;
use crate::limits::{FRAME_HEADER_LEN, READ_BLOCK_LEN};
use crate::model::{Coordinate, Event, EventDigest, EventId, Payload, Region};

/// Plaintexts opened by one read: decrypted straight into one buffer
/// (with the associated data built in another), which the events opened
/// into it share once it holds a block's worth ([`READ_BLOCK_LEN`]), as
/// plaintext events share the block they were read from. No allocation
/// per event, and an event kept alive keeps at most a block of others'
/// bytes with it.
#[derive(Default)]
struct Opened {
    plain: Vec<u8>,
    /// Which event's payload lies where in `plain`.
    placed: Vec<(usize, Range<usize>)>,
    aad: Vec<u8>,
}

impl Opened {
    /// Gives the events placed in the buffer their payloads; the next ones
    /// go to a new buffer.
    fn hand_out(&mut self, events: &mut [Event]) {
        if self.placed.is_empty() {
            return;
        }
        let shared = Arc::new(std::mem::take(&mut self.plain));
        for (index, range) in self.placed.drain(..) {
            events[index].payload = Payload::new(shared.clone(), range);
        }
    }
}

/// What `State::frames` hands each frame to.
type EachFrame<'a> = dyn FnMut(u64, Frame<'_>, &Arc<Vec<u8>>) -> Result<(), ReadError> + 'a;

/// An event's frame, read and checked against its slot.
struct Frame<'a> {
    record: EventRecord<'a>,
    /// Where its payload lies in the bytes read.
    payload: Range<usize>,
}
impl State {
    /// Reads the frames of the events `globals` (each must exist) and hands
    /// each, checked against its slot, to `each` with the bytes it lies in
    /// (a cached block, shared, where the frame lies in one).
    fn frames(&self, globals: &[u64], each: &mut EachFrame<'_>) -> Result<(), ReadError> {
        let mut hot = None;
        for &global in globals {
            let slot = self.must_slot(global);
            let (segment, range) = (u64::from(slot.segment), slot.offset..slot.offset + u64::from(slot.len));
            let (bytes, at) = self.files.view(segment, range.clone(), &mut hot).map_err(|e| ReadError::Io {
                id: self.id_of(global),
                file: self.files.path(segment),
                range,
                reason: e.to_string(),
            })?;
            let frame = self.check_frame(global, slot, &bytes, at..at + slot.len as usize)?;
            each(global, frame, &bytes)?;
        }
        Ok(())
    }

    fn must_slot(&self, global: u64) -> &Slot {
        self.slot(global).unwrap_or_else(|| unreachable!("event {global} is indexed"))
    }

    /// The event at `global` from its frame's bytes, `bytes[range]`: the
    /// frame must check and be the one the slot names, never another
    /// (a stale or misplaced frame with a valid checksum).
    fn check_frame<'a>(
        &'a self,
        global: u64,
        slot: &Slot,
        bytes: &'a [u8],
        range: Range<usize>,
    ) -> Result<Frame<'a>, ReadError> {
        let damaged = |reason: String| ReadError::Damaged {
            id: self.id_of(global),
            file: self.files.path(u64::from(slot.segment)),
            range: slot.offset..slot.offset + u64::from(slot.len),
            reason,
        };
        let (header, body) = read_frame(&bytes[range.clone()]).map_err(|e| damaged(e.describe().into()))?;
        if header[4..8] != slot.crc.to_le_bytes() || header[..4] != (slot.len - FRAME_HEADER_LEN as u32).to_le_bytes() {
            return Err(damaged("another frame where the event's was written".into()));
        }
        let (scope, kind) = &self.pairs[slot.names as usize];
        let entity = &self.entities[slot.entity as usize].name;
        let same = |r: &EventRecord<'_>| r.global_seq == global && r.causation.unwrap_or(0) == slot.causation;
        let record = match decode_event_named(body, [kind, entity, scope]) {
            Some(record) if same(&record) => record,
            // Not the event the index names: say what the frame holds.
            _ => {
                return Err(damaged(match decode_body(body) {
                    Ok(Record::Event(other)) => {
                        format!("the frame holds event {} of {}", other.global_seq, other.entity)
                    }
                    _ => "the frame does not hold an event".into(),
                }))
            }
        };
        let payload = range.end - record.payload.len()..range.end;
        Ok(Frame { record, payload })
    }

    /// What the store's keys say of a payload sealed with `key_gen`: `None`
    /// for a plaintext event of a plaintext store; an integrity error if
    /// its key generation does not fit the store's encryption.
    fn key_status(&self, global: u64, entity: &str, key_gen: u32) -> Result<Option<KeyStatus<'_>>, ReadError> {
        match (key_gen, &self.keys) {
            (0, None) => Ok(None),
            (generation, Some(keys)) if generation > 0 => Ok(Some(keys.status(entity, generation))),
            (generation, _) => Err(ReadError::Integrity {
                id: self.id_of(global),
                reason: format!("key generation {generation} does not fit the store's encryption"),
            }),
        }
    }

    /// Up to `limit` digests from global sequence `from` on, with no gaps.
    pub fn digests_from(&self, from: u64, limit: usize) -> Result<Vec<EventDigest>, ReadError> {
        let globals = self.range_from(from, limit);
        let mut digests = Vec::with_capacity(globals.len());
        self.frames(&globals, &mut |global, frame, _| {
            let record = &frame.record;
            let status = self.key_status(global, record.entity, record.key_gen)?;
            digests.push(EventDigest {
                id: self.id_of(global),
                hash: record.hash,
                key_gen: record.key_gen,
                shredded: status == Some(KeyStatus::Shredded),
                key_lost: matches!(status, Some(KeyStatus::Missing | KeyStatus::Lost)),
            });
            Ok(())
        })?;
        Ok(digests)
    }

    fn range_from(&self, from: u64, limit: usize) -> Vec<u64> {
        let start = from.max(1);
        let end = start.saturating_add(limit as u64).min(self.last_global() + 1);
        (start..end).collect()
    }

    /// The public view of an event from its checked frame: its payload
    /// opened with the entity's key (into `opened`), or marked shredded
    /// (with no payload) if the key was shredded, or marked `key_lost`
    /// (with no payload) if a salvage found its key lost to damage.
    fn event_of(
        &self,
        global: u64,
        frame: &Frame<'_>,
        bytes: &Arc<Vec<u8>>,
        opened: &mut Opened,
    ) -> Result<(Event, Option<Range<usize>>), ReadError> {
        let slot = self.must_slot(global);
        let record = &frame.record;
        let id = self.id_of(global);
        let (payload, plain, shredded, key_lost) = match self.key_status(global, record.entity, record.key_gen)? {
            None => (Payload::new(bytes.clone(), frame.payload.clone()), None, false, false),
            Some(KeyStatus::Live(key)) => {
                let aad = &mut opened.aad;
                event_aad_into(aad, record.entity, record.scope, id.0, record.entity_seq, record.kind, record.key_gen);
                let plain = open_into(key, aad, &record.payload, &mut opened.plain)
                    .map_err(|_| ReadError::Integrity { id, reason: "payload does not open with its key".into() })?;
                (Payload::empty(), Some(plain), false, false)
            }
            Some(KeyStatus::Shredded) => (Payload::empty(), None, true, false),
            Some(KeyStatus::Missing | KeyStatus::Lost) => (Payload::empty(), None, false, true),
        };
        let (scope, kind) = &self.pairs[slot.names as usize];
        let entity = &self.entities[slot.entity as usize].name;
        let event = Event {
            id,
            kind: kind.clone(),
            coordinate: Coordinate::from_parts(entity.clone(), scope.clone()),
            entity_seq: record.entity_seq,
            global_seq: global,
            causation: record.causation.map(|c| self.id_of(c)),
            correlation: EventId(record.correlation),
            timestamp_ns: record.timestamp_ns,
            payload,
            key_gen: record.key_gen,
            shredded,
            key_lost,
            hash: record.hash,
        };
        Ok((event, plain))
    }

    /// The events `globals` (each must exist), in that order.
    pub fn events(&self, globals: &[u64]) -> Result<Vec<Event>, ReadError> {
        let mut events = Vec::with_capacity(globals.len());
        let mut opened = Opened::default();
        self.frames(globals, &mut |global, frame, bytes| {
            let (event, plain) = self.event_of(global, &frame, bytes, &mut opened)?;
            if let Some(plain) = plain {
                opened.placed.push((events.len(), plain));
            }
            events.push(event);
            if opened.plain.len() >= READ_BLOCK_LEN {
                opened.hand_out(&mut events);
            }
            Ok(())
        })?;
        opened.hand_out(&mut events);
        Ok(events)
    }

    /// The event at `global`, if it exists.
    pub fn event(&self, global: u64) -> Result<Option<Event>, ReadError> {
        if !self.exists(global) {
            return Ok(None);
        }
        Ok(self.events(&[global])?.pop())
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

    /// Whether the event at `global` is in `region`, by the index alone.
    fn matches(&self, region: &Region, global: u64) -> bool {
        let slot = self.must_slot(global);
        let entity = &self.entities[slot.entity as usize].name;
        let (scope, kind) = &self.pairs[slot.names as usize];
        region.entity.as_deref().is_none_or(|e| **entity == *e)
            && region.entity_prefix.as_deref().is_none_or(|p| entity.starts_with(p))
            && region.scope.as_deref().is_none_or(|s| **scope == *s)
            && region.kind.as_deref().is_none_or(|k| **kind == *k)
            && region.global.as_ref().is_none_or(|r| r.contains(&global))
            && region.entity_seq.as_ref().is_none_or(|r| r.contains(&self.entity_seq_of(global)))
    }

    /// Global sequences worth testing against `region`, in order, using
    /// the entity index when the region names entities.
    fn candidates(&self, region: &Region) -> Vec<u64> {
        if let Some(entity) = &region.entity {
            let Some(state) = self.entity(entity) else {
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
                .filter_map(|name| self.entity(name))
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
        let globals: Vec<u64> = self.candidates(region).into_iter().filter(|&g| self.matches(region, g)).collect();
        self.events(&globals)
    }

    /// Up to `limit` events from global sequence `from` on, with no gaps.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, ReadError> {
        self.events(&self.range_from(from, limit))
    }

    /// Reads the events from global sequence `first` on back and
    /// recomputes their hash chains, each entity's starting from the hash
    /// `head_before` gives for its last event before `first` (which the
    /// caller verified). The first event whose stored hash differs is an
    /// `Integrity` error; an event that cannot be read is its read error.
    pub fn verify_chains(&self, first: u64, head_before: &dyn Fn(&str) -> Option<[u8; 32]>) -> Result<(), ReadError> {
        // In global order, each entity's previous hash kept by its number,
        // so the frames are read front to back.
        let first = first.max(1);
        let mut heads: Vec<[u8; 32]> = self
            .entities
            .iter()
            .map(|e| match e.events.first() {
                Some(&g) if g < first => head_before(&e.name).unwrap_or(GENESIS),
                _ => GENESIS,
            })
            .collect();
        let chunk = 4_096u64;
        let mut from = first;
        while from <= self.last_global() {
            let globals = self.range_from(from, chunk as usize);
            self.frames(&globals, &mut |global, frame, _| {
                let head = &mut heads[self.must_slot(global).entity as usize];
                if chain_hash(head, &frame.record, self.epoch_of(global)) != frame.record.hash {
                    return Err(ReadError::Integrity {
                        id: self.id_of(global),
                        reason: "its hash does not follow from its entity's previous event".into(),
                    });
                }
                *head = frame.record.hash;
                Ok(())
            })?;
            from += chunk;
        }
        Ok(())
    }
}
