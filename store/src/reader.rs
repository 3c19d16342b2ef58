//! Reads of the committed state, shared by every reader thread.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use crate::error::{InvalidInput, ReadError};
use crate::graph::Walk;
use crate::limits::READ_LIMIT_MAX;
use crate::model::{Event, EventDigest, EventId, Region};
use crate::state::State;
use crate::Planted;

/// A handle on the committed state. Cheap to clone; every read sees a
/// consistent state that holds whole batches only.
#[derive(Clone, Debug)]
pub struct Reader {
    state: Arc<RwLock<State>>,
    planted: Planted,
}

impl Reader {
    pub(crate) fn new(state: Arc<RwLock<State>>, planted: Planted) -> Self {
        Self { state, planted }
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A digest of the whole index in memory (every event's place, every
    /// table, every key's state): two opens of one store, one from its
    /// checkpoint and one by a full scan, give the same.
    pub fn index_fingerprint(&self) -> [u8; 32] {
        self.state().fingerprint()
    }

    /// [`Reader::index_fingerprint`] part by part, each named ("image",
    /// "keys", ...), to say where two indexes differ.
    pub fn index_fingerprint_parts(&self) -> Vec<(&'static str, [u8; 32])> {
        self.state().fingerprint_parts()
    }

    /// The event `id`; `Err(Shredded)` if its entity was shredded.
    pub fn get(&self, id: EventId) -> Result<Option<Event>, ReadError> {
        self.state().get(id)
    }

    /// Every event in `region`, in global order.
    pub fn query(&self, region: &Region) -> Result<Vec<Event>, ReadError> {
        let mut events = self.state().query(region)?;
        if self.planted.is(canary!(QueryDropsLast)) {
            events.pop();
        }
        Ok(events)
    }

    /// Up to `limit` events from global sequence `from` on, gap-free: a
    /// subscriber that resumes from `last.global_seq + 1` misses nothing.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, ReadError> {
        if limit == 0 || limit > READ_LIMIT_MAX {
            return Err(InvalidInput::ReadLimit { limit, max: READ_LIMIT_MAX }.into());
        }
        self.state().read_from(from, limit)
    }

    /// The digests of up to `limit` events from global sequence `from` on,
    /// gap-free, as [`read_from`](Self::read_from) would list them but
    /// without reading or opening a payload.
    pub fn digests_from(&self, from: u64, limit: usize) -> Result<Vec<EventDigest>, ReadError> {
        if limit == 0 || limit > READ_LIMIT_MAX {
            return Err(InvalidInput::ReadLimit { limit, max: READ_LIMIT_MAX }.into());
        }
        self.state().digests_from(from, limit)
    }

    /// The causes of `id` up to its root (its direct cause first), at most
    /// `limit` of them; `None` if `id` is not an event of this store.
    pub fn causes(&self, id: EventId, limit: usize) -> Result<Option<Walk>, ReadError> {
        self.state().causes(id, limit)
    }

    /// The effects of `id`, breadth first, to at most `depth_max` hops and
    /// `count_max` events; `None` if `id` is not an event of this store.
    pub fn effects(&self, id: EventId, depth_max: u32, count_max: usize) -> Result<Option<Walk>, ReadError> {
        self.state().effects(id, depth_max, count_max)
    }

    /// The events of a correlation, in commit order, at most `limit`.
    pub fn correlated(&self, correlation: EventId, limit: usize) -> Result<Vec<Event>, ReadError> {
        self.state().correlated(correlation, limit)
    }

    /// The entity's version: how many events it has.
    pub fn version(&self, entity: &str) -> u64 {
        self.state().version(entity)
    }

    /// The global sequence of the last committed event.
    pub fn last_global(&self) -> u64 {
        self.state().last_global()
    }

    pub fn store_id(&self) -> u64 {
        self.state().store_id()
    }

    /// The tag this store's event ids carry (see [`EventId::store_tag`]).
    pub fn store_tag(&self) -> u32 {
        crate::model::store_tag(self.store_id())
    }

    /// Reads every event back and recomputes every hash chain: the first
    /// event whose hash does not verify is an `Integrity` error, one that
    /// cannot be read its read error.
    pub fn verify_chains(&self) -> Result<(), ReadError> {
        self.state().verify_chains(1, &|_| None)
    }

    /// [`verify_chains`](Self::verify_chains) of the events from global
    /// sequence `first` on, for a caller that verified those before it:
    /// `head_before` gives the hash of each entity's last event before
    /// `first` (one it does not give is taken as having none, and its
    /// chain fails to verify).
    pub fn verify_chains_from(
        &self,
        first: u64,
        head_before: &dyn Fn(&str) -> Option<[u8; 32]>,
    ) -> Result<(), ReadError> {
        self.state().verify_chains(first, head_before)
    }
}
