//! What the store holds and what callers hand it: coordinates, events,
//! batches, receipts and query regions.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::InvalidInput;
use crate::limits::{
    BATCH_EVENTS_MAX, ENTITY_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX, KIND_LEN_MAX, PAYLOAD_LEN_MAX, SCOPE_LEN_MAX,
};

/// Checks a name: not empty, at most `max` bytes, no control characters.
pub(crate) fn validate_name(field: &'static str, value: &str, max: usize) -> Result<(), InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Empty { field });
    }
    if value.len() > max {
        return Err(InvalidInput::TooLong { field, len: value.len(), max });
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidInput::ControlCharacter { field });
    }
    Ok(())
}

/// Where an event lives: an entity (the stream whose version it advances)
/// and a scope within it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Coordinate {
    entity: Arc<str>,
    scope: Arc<str>,
}

impl Coordinate {
    pub fn new(entity: &str, scope: &str) -> Result<Self, InvalidInput> {
        validate_name("entity", entity, ENTITY_LEN_MAX)?;
        validate_name("scope", scope, SCOPE_LEN_MAX)?;
        Ok(Self { entity: entity.into(), scope: scope.into() })
    }

    /// Builds a coordinate from names already validated (read back from a
    /// checksummed journal frame).
    pub(crate) fn from_parts(entity: Arc<str>, scope: Arc<str>) -> Self {
        debug_assert!(validate_name("entity", &entity, ENTITY_LEN_MAX).is_ok());
        Self { entity, scope }
    }

    pub fn entity(&self) -> &str {
        &self.entity
    }
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

impl fmt::Debug for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.entity, self.scope)
    }
}

/// An event's identity: the store's tag (the low 32 bits of its id) in the
/// top 32 bits, the epoch of the writer session that committed the event in
/// the next 32, and the event's global sequence in the low 64.
///
/// The epoch is drawn anew for every writer session and recorded with every
/// group, so when a damaged disk loses events and their positions are used
/// again, the new events get other ids: an id a client held from before
/// never names a different event (a lookup of it finds nothing).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct EventId(pub u128);

impl EventId {
    pub(crate) fn new(store_id: u64, epoch: u32, global_seq: u64) -> Self {
        Self::from_parts(store_tag(store_id), epoch, global_seq)
    }
    /// The id with these parts (as `store_tag`, `epoch` and `global_seq`
    /// give them back).
    pub fn from_parts(store_tag: u32, epoch: u32, global_seq: u64) -> Self {
        Self((u128::from(store_tag) << 96) | (u128::from(epoch) << 64) | u128::from(global_seq))
    }
    /// The tag of the store that committed the event.
    pub fn store_tag(self) -> u32 {
        (self.0 >> 96) as u32
    }
    /// The writer session that committed the event.
    pub fn epoch(self) -> u32 {
        (self.0 >> 64) as u32
    }
    pub fn global_seq(self) -> u64 {
        self.0 as u64
    }
}

/// The part of a store's id that event ids carry.
pub(crate) fn store_tag(store_id: u64) -> u32 {
    store_id as u32
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{:08x}-{}", self.store_tag(), self.epoch(), self.global_seq())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a batch item names as its cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// An event already committed.
    Event(EventId),
    /// An earlier item of the same batch, by index.
    Item(usize),
}

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub coordinate: Coordinate,
    pub kind: String,
    pub payload: Vec<u8>,
    /// The entity's version this item expects to follow: `Some(0)` means the
    /// entity must have no events yet.
    pub expected_version: Option<u64>,
    pub cause: Option<Cause>,
    /// Groups related events; defaults to the cause's correlation, or to the
    /// event's own id when it has no cause.
    pub correlation: Option<EventId>,
}

impl NewEvent {
    pub fn new(coordinate: Coordinate, kind: &str, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            coordinate,
            kind: kind.to_owned(),
            payload: payload.into(),
            expected_version: None,
            cause: None,
            correlation: None,
        }
    }

    /// An event whose payload is `value` encoded with postcard.
    pub fn encode<T: Serialize>(coordinate: Coordinate, kind: &str, value: &T) -> Result<Self, InvalidInput> {
        let payload = postcard::to_allocvec(value).map_err(|e| InvalidInput::Payload { reason: e.to_string() })?;
        Ok(Self::new(coordinate, kind, payload))
    }

    pub fn expect_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }
    pub fn caused_by(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }
    pub fn correlated_with(mut self, correlation: EventId) -> Self {
        self.correlation = Some(correlation);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        validate_name("kind", &self.kind, KIND_LEN_MAX)?;
        if self.payload.len() > PAYLOAD_LEN_MAX {
            return Err(InvalidInput::PayloadTooLarge { len: self.payload.len(), max: PAYLOAD_LEN_MAX });
        }
        Ok(())
    }
}

/// Events appended all together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub items: Vec<NewEvent>,
    /// A retried batch with the same key returns the original receipts.
    pub idempotency_key: Option<String>,
}

impl Batch {
    pub fn new(items: Vec<NewEvent>) -> Self {
        Self { items, idempotency_key: None }
    }
    pub fn with_idempotency_key(mut self, key: &str) -> Self {
        self.idempotency_key = Some(key.to_owned());
        self
    }

    /// Checks the batch's shape; the item index is in the error.
    pub(crate) fn validate(&self) -> Result<(), (Option<usize>, InvalidInput)> {
        if self.items.is_empty() {
            return Err((None, InvalidInput::EmptyBatch));
        }
        if self.items.len() > BATCH_EVENTS_MAX {
            return Err((None, InvalidInput::BatchTooLarge { len: self.items.len(), max: BATCH_EVENTS_MAX }));
        }
        if let Some(key) = &self.idempotency_key {
            validate_name("idempotency key", key, IDEMPOTENCY_KEY_LEN_MAX).map_err(|e| (None, e))?;
        }
        for (index, item) in self.items.iter().enumerate() {
            item.validate().map_err(|e| (Some(index), e))?;
            if let Some(Cause::Item(cause)) = item.cause {
                if cause >= index {
                    return Err((Some(index), InvalidInput::CauseNotEarlier { item: index, cause }));
                }
            }
        }
        Ok(())
    }
}

impl From<NewEvent> for Batch {
    fn from(item: NewEvent) -> Self {
        Self::new(vec![item])
    }
}

/// Proof that a shred is durable: the keyset without the entity's key of
/// this generation is on disk. Generation 0: the entity had no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShredReceipt {
    pub entity: String,
    pub generation: u32,
}

/// Proof that an event is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub id: EventId,
    pub entity_seq: u64,
    pub global_seq: u64,
}

/// Bytes shared with the journal buffer they were read from or written in.
#[derive(Clone)]
pub struct Payload {
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Payload {
    pub(crate) fn new(buf: Arc<Vec<u8>>, range: Range<usize>) -> Self {
        assert!(range.end <= buf.len());
        Self { buf, range }
    }

    /// No bytes (a shredded event's payload, say), sharing one buffer with
    /// every other empty payload: it costs no allocation.
    pub(crate) fn empty() -> Self {
        static EMPTY: std::sync::LazyLock<Arc<Vec<u8>>> = std::sync::LazyLock::new(|| Arc::new(Vec::new()));
        Self { buf: EMPTY.clone(), range: 0..0 }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Self { buf: Arc::new(bytes), range: 0..len }
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}
impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.range.len())
    }
}

/// A committed event as readers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub kind: Arc<str>,
    pub coordinate: Coordinate,
    pub entity_seq: u64,
    pub global_seq: u64,
    pub causation: Option<EventId>,
    pub correlation: EventId,
    pub timestamp_ns: u64,
    /// The plaintext payload; empty if `shredded` or `key_lost`.
    pub payload: Payload,
    /// The key generation the payload was sealed under; 0 if plaintext.
    pub key_gen: u32,
    /// The entity's key for this event was shredded: the payload is gone
    /// for good, the metadata stays.
    pub shredded: bool,
    /// The key for this event was lost to damage (a salvage reported it in
    /// `RecoveryReport::keys_lost`): the payload cannot be read, the
    /// metadata stays. Never set on an undamaged store.
    pub key_lost: bool,
    /// The entity's hash chain link through this event.
    pub hash: [u8; 32],
}

/// An event's identity and hash-chain link, without its payload: what a
/// replica or an auditor compares to tell whether two stores hold the same
/// history (equal hashes at equal ids mean equal events, payloads
/// included, once [`Reader::verify_chains`](crate::Reader::verify_chains)
/// holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventDigest {
    pub id: EventId,
    /// The entity's hash chain link through this event.
    pub hash: [u8; 32],
    /// The key generation the payload was sealed under; 0 if plaintext.
    pub key_gen: u32,
    /// As [`Event::shredded`].
    pub shredded: bool,
    /// As [`Event::key_lost`].
    pub key_lost: bool,
}

impl EventDigest {
    /// The digest of an event read in full.
    pub fn of(event: &Event) -> Self {
        Self {
            id: event.id,
            hash: event.hash,
            key_gen: event.key_gen,
            shredded: event.shredded,
            key_lost: event.key_lost,
        }
    }
}

impl Event {
    /// Decodes a payload written by [`NewEvent::encode`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, InvalidInput> {
        postcard::from_bytes(&self.payload).map_err(|e| InvalidInput::Payload { reason: e.to_string() })
    }
}

/// A query filter. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub entity: Option<String>,
    pub entity_prefix: Option<String>,
    pub scope: Option<String>,
    pub kind: Option<String>,
    /// Global sequences, half open.
    pub global: Option<Range<u64>>,
    /// Per-entity sequences, half open (with `entity` set).
    pub entity_seq: Option<Range<u64>>,
}

impl Region {
    pub fn all() -> Self {
        Self::default()
    }
    pub fn entity(entity: &str) -> Self {
        Self { entity: Some(entity.to_owned()), ..Self::default() }
    }
    pub fn entity_prefix(prefix: &str) -> Self {
        Self { entity_prefix: Some(prefix.to_owned()), ..Self::default() }
    }
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_owned());
        self
    }
    pub fn global(mut self, range: Range<u64>) -> Self {
        self.global = Some(range);
        self
    }
    pub fn entity_seq(mut self, range: Range<u64>) -> Self {
        self.entity_seq = Some(range);
        self
    }
}
