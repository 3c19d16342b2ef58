//! Walks of the causal graph. Every event may name its cause; the state
//! indexes the edges both ways (the cause in the event, the effects in a
//! list per event), so each hop costs one index, not a scan. A shredded
//! event keeps its place in the graph: walks pass through it and count it.

use std::collections::VecDeque;

use crate::error::ReadError;
use crate::model::{Event, EventId};
use crate::state::State;

/// Why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// `causes`: reached an event with no cause.
    Root,
    /// `effects`: no event further down.
    Leaves,
    /// The depth or count limit was reached with more to walk.
    Limit,
}

/// The events a walk visited, in walk order, and why it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    pub events: Vec<Event>,
    /// For `effects`: the depth of each event (1 = a direct effect).
    pub depths: Vec<u32>,
    pub end: WalkEnd,
    /// How many visited events are shredded (metadata only).
    pub shredded: usize,
}

impl Walk {
    fn new() -> Self {
        Self { events: Vec::new(), depths: Vec::new(), end: WalkEnd::Leaves, shredded: 0 }
    }

    fn push(&mut self, event: Event, depth: u32) {
        self.shredded += usize::from(event.shredded);
        self.events.push(event);
        self.depths.push(depth);
    }
}

impl State {
    fn local(&self, id: EventId) -> Option<u64> {
        self.resolve(id)
    }

    fn must_event(&self, global: u64) -> Result<Event, ReadError> {
        match self.event(global)? {
            Some(event) => Ok(event),
            None => unreachable!("graph edges point at committed events"),
        }
    }

    /// The causes of `id` up towards its root: its cause first. `None` if
    /// `id` is not an event of this store.
    pub fn causes(&self, id: EventId, limit: usize) -> Result<Option<Walk>, ReadError> {
        let Some(mut at) = self.local(id) else { return Ok(None) };
        let mut walk = Walk::new();
        walk.end = WalkEnd::Root;
        while let Some(cause) = self.cause_of(at) {
            if walk.events.len() == limit {
                walk.end = WalkEnd::Limit;
                break;
            }
            assert!(cause < at, "causes point backwards");
            walk.push(self.must_event(cause)?, walk.events.len() as u32 + 1);
            at = cause;
        }
        Ok(Some(walk))
    }

    /// The effects of `id`, breadth first, to at most `depth_max` hops and
    /// `count_max` events. `None` if `id` is not an event of this store.
    pub fn effects(&self, id: EventId, depth_max: u32, count_max: usize) -> Result<Option<Walk>, ReadError> {
        let Some(start) = self.local(id) else { return Ok(None) };
        let mut walk = Walk::new();
        let mut frontier: VecDeque<(u64, u32)> = VecDeque::from([(start, 0)]);
        while let Some((at, depth)) = frontier.pop_front() {
            let effects = self.effects_of(at);
            if effects.is_empty() {
                continue;
            }
            if depth == depth_max {
                walk.end = WalkEnd::Limit;
                continue;
            }
            for &effect in effects {
                if walk.events.len() == count_max {
                    walk.end = WalkEnd::Limit;
                    return Ok(Some(walk));
                }
                assert!(effect > at, "effects point forwards");
                walk.push(self.must_event(effect)?, depth + 1);
                frontier.push_back((effect, depth + 1));
            }
        }
        Ok(Some(walk))
    }

    /// Up to `limit` events of correlation `correlation`, in commit order.
    pub fn correlated(&self, correlation: EventId, limit: usize) -> Result<Vec<Event>, ReadError> {
        let root = self.local(correlation).filter(|&g| self.correlation_of(g) == correlation.0);
        let followers = self.correlation_followers(correlation.0);
        let globals: Vec<u64> = root.into_iter().chain(followers.iter().copied()).take(limit).collect();
        self.events(&globals)
    }
}
