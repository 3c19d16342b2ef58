//! Caller-defined gates, checked by the writer at commit time.
//!
//! A gate sees each proposed item with a read-only view of the committed
//! state *plus* everything this commit has already accepted: the groups
//! before it in the same group commit and the items before it in the same
//! batch. Check and commit are therefore one atomic step: nothing can
//! commit between a gate's check and its batch. A denial fails the whole
//! batch with the gate's name, the item and the reason; a gate that panics
//! fails it with a typed gate failure, and the writer carries on.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{panic_message, ReadError};
use crate::model::{Event, EventId, NewEvent, Payload};
use crate::state::State;

/// A gate's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(String),
}

/// The item a gate is asked about.
#[derive(Debug)]
pub struct Proposed<'a> {
    pub item: &'a NewEvent,
    /// Its index in its batch.
    pub index: usize,
    /// The global and entity sequence it will get if committed.
    pub global_seq: u64,
    pub entity_seq: u64,
    /// The items before it in the same batch.
    pub earlier: &'a [NewEvent],
}

/// A caller-defined check, registered by name when the store is opened.
pub trait Gate: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn check(&self, proposed: &Proposed<'_>, view: &GateView<'_>) -> Verdict;
}

/// One event as a gate sees it: committed, or accepted earlier in the same
/// commit. The payload is plaintext (empty if shredded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateEvent {
    pub global_seq: u64,
    pub entity_seq: u64,
    pub kind: String,
    pub payload: Payload,
    pub shredded: bool,
}

/// An event accepted earlier in the commit being checked.
#[derive(Clone, Debug)]
pub(crate) struct Pending<'b> {
    pub global_seq: u64,
    pub entity_seq: u64,
    pub kind: &'b str,
    pub payload: &'b [u8],
}

/// The state a gate checks against.
pub struct GateView<'v> {
    pub(crate) state: &'v State,
    pub(crate) pending: &'v BTreeMap<&'v str, Vec<Pending<'v>>>,
    /// The first read that failed while a gate looked: the batch then
    /// fails as `ReadFailed` (nothing written), whatever the gate said,
    /// since it judged without what it asked for.
    pub(crate) failed: std::sync::Mutex<Option<ReadError>>,
}

impl GateView<'_> {
    /// The entity's version, counting what this commit accepted before.
    pub fn version(&self, entity: &str) -> u64 {
        self.state.version(entity) + self.pending.get(entity).map_or(0, |p| p.len() as u64)
    }

    /// Every event of the entity, oldest first.
    pub fn history(&self, entity: &str) -> Result<Vec<GateEvent>, ReadError> {
        self.recent(entity, usize::MAX)
    }

    /// Notes a failed read (see `failed`) and hands it on.
    fn noted<T>(&self, read: Result<T, ReadError>) -> Result<T, ReadError> {
        if let Err(e) = &read {
            self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert_with(|| e.clone());
        }
        read
    }

    /// The first read that failed while the gates looked.
    pub(crate) fn failed_read(&self) -> Option<ReadError> {
        self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The entity's last `n` events, oldest first.
    pub fn recent(&self, entity: &str, n: usize) -> Result<Vec<GateEvent>, ReadError> {
        let pending: &[Pending<'_>] = self.pending.get(entity).map_or(&[], Vec::as_slice);
        let committed: &[u64] = self.state.entity(entity).map_or(&[], |e| e.events.as_slice());
        let from_pending = pending.len().min(n);
        let from_committed = (n - from_pending).min(committed.len());
        let mut out = Vec::with_capacity(from_committed + from_pending);
        for event in self.noted(self.state.events(&committed[committed.len() - from_committed..]))? {
            out.push(GateEvent {
                global_seq: event.global_seq,
                entity_seq: event.entity_seq,
                kind: event.kind.to_string(),
                payload: event.payload,
                shredded: event.shredded,
            });
        }
        for p in &pending[pending.len() - from_pending..] {
            out.push(GateEvent {
                global_seq: p.global_seq,
                entity_seq: p.entity_seq,
                kind: p.kind.to_owned(),
                payload: p.payload.to_vec().into(),
                shredded: false,
            });
        }
        Ok(out)
    }

    /// A committed event by id.
    pub fn get(&self, id: EventId) -> Result<Option<Event>, ReadError> {
        match self.state.get(id) {
            // A shredded or lost event is an answer, not a failed read.
            Err(e @ (ReadError::Io { .. } | ReadError::Damaged { .. })) => self.noted(Err(e)),
            other => other,
        }
    }
}

/// The gates registered on a store, in registration order.
#[derive(Clone, Default)]
pub struct Gates(Vec<Arc<dyn Gate>>);

impl Gates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `gate`; a second gate of the same name replaces the first.
    pub fn with(mut self, gate: Arc<dyn Gate>) -> Self {
        self.0.retain(|g| g.name() != gate.name());
        self.0.push(gate);
        self
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|g| g.name()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs every gate on `proposed`: the first denial or panic, as
    /// (gate name, outcome).
    pub(crate) fn check(
        &self,
        proposed: &Proposed<'_>,
        view: &GateView<'_>,
    ) -> Option<(String, Result<String, String>)> {
        for gate in &self.0 {
            match catch_unwind(AssertUnwindSafe(|| gate.check(proposed, view))) {
                Ok(Verdict::Allow) => {}
                Ok(Verdict::Deny(reason)) => return Some((gate.name().to_owned(), Ok(reason))),
                Err(panic) => return Some((gate.name().to_owned(), Err(panic_message(&*panic)))),
            }
        }
        None
    }
}

impl fmt::Debug for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PartialEq for Gates {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for Gates {}
