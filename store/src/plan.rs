//! Planning a flush: deciding, against the committed state, which requests
//! commit and what their events look like, before a byte is written.
//!
//! Requests in one flush see each other: a later request's expected version
//! counts the events of earlier accepted requests, and a repeated
//! idempotency key refers to the earlier request.

use std::collections::{BTreeMap, HashMap};

use crate::crypto::{event_aad, seal, Key, NONCE_LEN};
use crate::error::{AppendError, InvalidInput};
use crate::gate::{GateView, Gates, Pending, Proposed};
use crate::hash::chain_hash;
use crate::journal::record::EventRecord;
use crate::model::{Batch, Cause, EventId, NewEvent, Receipt};
use crate::state::{FixedHasher, State};

/// One request's fate, decided before writing.
pub enum Slot {
    /// Goes out as group `.0` of the flush.
    Write(usize),
    /// Already decided: a rejection, or the receipts of an earlier commit.
    Done(Result<Vec<Receipt>, AppendError>),
    /// Same idempotency key and content as request `.0` of this flush.
    SameAs(usize),
}

/// A group to write.
pub struct PlannedGroup<'b> {
    pub first_global: u64,
    pub idempotency: Option<(&'b str, [u8; 16])>,
    pub records: Vec<EventRecord<'b>>,
}

/// Seals payloads when the store is encrypted.
pub struct Sealer<'s> {
    /// The key (and its generation) an append to an entity is sealed with.
    pub key_of: &'s dyn Fn(&str) -> Option<(u32, &'s Key)>,
    pub nonce: &'s mut dyn FnMut() -> [u8; NONCE_LEN],
}

pub struct Plan<'b> {
    pub slots: Vec<Slot>,
    pub groups: Vec<PlannedGroup<'b>>,
}

/// Entity versions and heads as they stand with the accepted groups (point
/// lookups, and merges whose order does not matter).
type Overlay<'b> = HashMap<&'b str, (u64, [u8; 32]), FixedHasher>;

/// A stable digest of a batch's content, for idempotency.
pub fn fingerprint(batch: &Batch) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&(batch.items.len() as u64).to_le_bytes());
    for item in &batch.items {
        for part in [item.coordinate.entity(), item.coordinate.scope(), item.kind.as_str()] {
            h.update(&(part.len() as u64).to_le_bytes()).update(part.as_bytes());
        }
        h.update(&(item.payload.len() as u64).to_le_bytes()).update(&item.payload);
        h.update(&item.expected_version.map_or([0xff; 9], |v| {
            let mut b = [0u8; 9];
            b[1..].copy_from_slice(&v.to_le_bytes());
            b
        }));
        let cause = match item.cause {
            None => [0u8; 17],
            Some(Cause::Event(id)) => tagged(1, id.0),
            Some(Cause::Item(i)) => tagged(2, i as u128),
        };
        h.update(&cause);
        h.update(&item.correlation.map_or([0u8; 17], |c| tagged(1, c.0)));
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

fn tagged(tag: u8, value: u128) -> [u8; 17] {
    let mut b = [0u8; 17];
    b[0] = tag;
    b[1..].copy_from_slice(&value.to_le_bytes());
    b
}

/// The receipts of events `first..first + count` already committed.
pub fn receipts(state: &State, first: u64, count: u32) -> Vec<Receipt> {
    (first..first + u64::from(count))
        .map(|g| {
            assert!(state.exists(g), "receipt for uncommitted event {g}");
            Receipt { id: state.id_of(g), entity_seq: state.entity_seq_of(g), global_seq: g }
        })
        .collect()
}

pub fn plan<'b>(state: &State, batches: &'b [Batch], ctx: &mut Context<'_, '_>) -> Plan<'b> {
    let mut plan = Plan { slots: Vec::with_capacity(batches.len()), groups: Vec::new() };
    let mut overlay: Overlay<'b> = HashMap::default();
    let mut accepted: Accepted<'b> = BTreeMap::new();
    let mut keys: BTreeMap<&'b str, ([u8; 16], usize)> = BTreeMap::new();
    let mut next_global = state.last_global() + 1;
    for (index, batch) in batches.iter().enumerate() {
        if let Err((item, error)) = batch.validate() {
            plan.slots.push(Slot::Done(Err(AppendError::Invalid { item, error })));
            continue;
        }
        let key = batch.idempotency_key.as_deref().map(|k| (k, fingerprint(batch)));
        if let Some((k, fp)) = key {
            if let Some(entry) = state.idempotency(k) {
                plan.slots.push(Slot::Done(if entry.fingerprint == fp {
                    Ok(receipts(state, entry.first_global, entry.count))
                } else {
                    Err(AppendError::IdempotencyConflict { key: k.to_owned() })
                }));
                continue;
            }
            if let Some(&(earlier_fp, earlier)) = keys.get(k) {
                plan.slots.push(if earlier_fp == fp {
                    Slot::SameAs(earlier)
                } else {
                    Slot::Done(Err(AppendError::IdempotencyConflict { key: k.to_owned() }))
                });
                continue;
            }
        }
        match plan_group(state, &overlay, &mut accepted, batch, next_global, ctx) {
            Ok((records, touched)) => {
                next_global += records.len() as u64;
                if index + 1 < batches.len() {
                    overlay.extend(touched);
                }
                if let Some((k, fp)) = key {
                    keys.insert(k, (fp, index));
                }
                plan.slots.push(Slot::Write(plan.groups.len()));
                plan.groups.push(PlannedGroup { first_global: records[0].global_seq, idempotency: key, records });
            }
            Err(e) => plan.slots.push(Slot::Done(Err(e))),
        }
    }
    plan
}

/// The records of one batch, and the entity versions it leaves behind.
/// What planning needs besides the state and the batches.
pub struct Context<'c, 's> {
    pub now_ns: u64,
    /// The writer session's epoch, part of every new event's id.
    pub epoch: u32,
    pub sealer: Option<&'c mut Sealer<'s>>,
    pub gates: &'c Gates,
    /// Planted bug: gates see only the committed state.
    pub stale_gates: bool,
    /// Planted bug: a named cause is recorded as another event.
    pub misresolve_causes: bool,
    /// Planted bug: hashes chain onto the genesis link.
    pub unchained_hash: bool,
}

/// Entity events accepted so far in this commit, as gates see them.
type Accepted<'b> = BTreeMap<&'b str, Vec<Pending<'b>>>;

/// The stored causation of item `i` and the correlation it inherits.
fn resolve_cause(
    state: &State,
    item: &NewEvent,
    i: usize,
    first_global: u64,
    records: &[EventRecord<'_>],
    misresolve: bool,
) -> Result<(Option<u64>, Option<u128>), AppendError> {
    match item.cause {
        None => Ok((None, None)),
        Some(Cause::Item(j)) => Ok((Some(first_global + j as u64), Some(records[j].correlation))),
        Some(Cause::Event(id)) => {
            let Some(resolved) = state.resolve(id) else {
                return Err(AppendError::Invalid { item: Some(i), error: InvalidInput::UnknownCause { cause: id } });
            };
            let global = if misresolve { resolved % state.last_global() + 1 } else { resolved };
            Ok((Some(global), Some(state.correlation_of(resolved))))
        }
    }
}

/// Runs the gates on item `i`; on a denial or a panic, the batch's error.
fn run_gates(
    ctx: &Context<'_, '_>,
    state: &State,
    accepted: &Accepted<'_>,
    proposed: &Proposed<'_>,
) -> Result<(), AppendError> {
    if ctx.gates.is_empty() {
        return Ok(());
    }
    let stale = BTreeMap::new();
    let view = GateView { state, pending: if ctx.stale_gates { &stale } else { accepted }, failed: Default::default() };
    let verdict = ctx.gates.check(proposed, &view);
    if let Some(error) = view.failed_read() {
        return Err(AppendError::ReadFailed { item: proposed.index, error });
    }
    match verdict {
        None => Ok(()),
        Some((gate, Ok(reason))) => Err(AppendError::Denied { gate, item: proposed.index, reason }),
        Some((gate, Err(message))) => Err(AppendError::GateFailed { gate, item: proposed.index, message }),
    }
}

fn plan_group<'b>(
    state: &State,
    overlay: &Overlay<'b>,
    accepted: &mut Accepted<'b>,
    batch: &'b Batch,
    first_global: u64,
    ctx: &mut Context<'_, '_>,
) -> Result<(Vec<EventRecord<'b>>, Overlay<'b>), AppendError> {
    let mut local: Overlay<'b> = HashMap::with_capacity_and_hasher(batch.items.len(), FixedHasher::default());
    let mut records: Vec<EventRecord<'b>> = Vec::with_capacity(batch.items.len());
    let undo = |accepted: &mut Accepted<'b>, records: &[EventRecord<'b>]| {
        for record in records.iter().rev() {
            if let Some(list) = accepted.get_mut(record.entity) {
                list.pop();
            }
        }
    };
    for (i, item) in batch.items.iter().enumerate() {
        let entity = item.coordinate.entity();
        let (version, head) = local
            .get(entity)
            .or_else(|| overlay.get(entity))
            .copied()
            .unwrap_or_else(|| state.version_and_head(entity));
        let global_seq = first_global + i as u64;
        let checked = match item.expected_version {
            Some(expected) if expected != version => {
                Err(AppendError::VersionConflict { item: i, entity: entity.to_owned(), expected, actual: version })
            }
            _ => resolve_cause(state, item, i, first_global, &records, ctx.misresolve_causes).and_then(|cause| {
                let proposed =
                    Proposed { item, index: i, global_seq, entity_seq: version + 1, earlier: &batch.items[..i] };
                run_gates(ctx, state, accepted, &proposed).map(|()| cause)
            }),
        };
        let (causation, cause_correlation) = match checked {
            Ok(cause) => cause,
            Err(e) => {
                undo(accepted, &records);
                return Err(e);
            }
        };
        let correlation = item
            .correlation
            .map(|c| c.0)
            .or(cause_correlation)
            .unwrap_or_else(|| EventId::new(state.store_id(), ctx.epoch, global_seq).0);
        let mut record = EventRecord {
            global_seq,
            entity_seq: version + 1,
            timestamp_ns: ctx.now_ns,
            causation,
            correlation,
            kind: &item.kind,
            entity,
            scope: item.coordinate.scope(),
            key_gen: 0,
            hash: [0; 32],
            payload: std::borrow::Cow::Borrowed(&item.payload),
        };
        if let Some(sealer) = ctx.sealer.as_deref_mut() {
            let Some((generation, key)) = (sealer.key_of)(entity) else {
                unreachable!("keys are minted before planning")
            };
            let id = EventId::new(state.store_id(), ctx.epoch, global_seq).0;
            let aad = event_aad(entity, item.coordinate.scope(), id, version + 1, &item.kind, generation);
            record.payload = std::borrow::Cow::Owned(seal(key, (sealer.nonce)(), &aad, &item.payload));
            record.key_gen = generation;
        }
        let link = if ctx.unchained_hash { crate::hash::GENESIS } else { head };
        record.hash = chain_hash(&link, &record, ctx.epoch);
        local.insert(entity, (version + 1, record.hash));
        if ctx.gates.is_empty() {
            records.push(record);
            continue;
        }
        accepted.entry(entity).or_default().push(Pending {
            global_seq,
            entity_seq: version + 1,
            kind: &item.kind,
            payload: &item.payload,
        });
        records.push(record);
    }
    Ok((records, local))
}
