//! The reference model: every batch the workload sent, what became of it,
//! and the store's visible events as last observed and validated.
//!
//! Each event's scope ends in its batch's uid and its item index (metadata,
//! so it survives a shred), and its payload begins with them too: any event
//! read back names the batch it claims to belong to, and the checkers
//! compare everything else against what the model sent.

use std::collections::BTreeMap;

use shale_store::{Batch, Cause, Coordinate, Event, EventId, NewEvent};

/// Bytes at the start of every payload: uid (u64) and item index (u32).
pub const PAYLOAD_TAG_LEN: usize = 12;

pub fn payload(uid: u64, item: u32, filler: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD_TAG_LEN + filler.len());
    p.extend_from_slice(&uid.to_le_bytes());
    p.extend_from_slice(&item.to_le_bytes());
    p.extend_from_slice(filler);
    p
}

/// What a gated run's event does to its entity's balance: the amount is
/// the i64 after the payload's tag, added by "deposited" and taken by
/// "withdrawn".
pub fn balance_delta(event: &Event) -> Option<i64> {
    let amount = i64::from_le_bytes(event.payload.get(PAYLOAD_TAG_LEN..PAYLOAD_TAG_LEN + 8)?.try_into().ok()?);
    match &*event.kind {
        "deposited" => Some(amount),
        "withdrawn" => Some(-amount),
        _ => None,
    }
}

/// The scope the workload gives item `item` of batch `uid` whose base scope
/// is `base`: it names the batch in metadata that survives a shred.
pub fn tagged_scope(base: &str, uid: u64, item: u32) -> String {
    format!("{base}/{uid}/{item}")
}

/// The (uid, item) an event claims through its scope.
pub fn tag_of(event: &Event) -> Option<(u64, u32)> {
    scope_tag(event.coordinate.scope())
}

/// The (uid, item) a scope made by [`tagged_scope`] names.
pub fn scope_tag(scope: &str) -> Option<(u64, u32)> {
    // Checkers ask this of every event they see: read the two numbers off
    // the end by hand rather than splitting and parsing.
    let bytes = scope.as_bytes();
    let (item, rest) = trailing_number(bytes)?;
    let (uid, rest) = trailing_number(rest)?;
    (!rest.is_empty()).then_some((uid, u32::try_from(item).ok()?))
}

/// The decimal number after the last '/' of `bytes`, and what precedes
/// that '/'.
fn trailing_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let slash = bytes.iter().rposition(|&b| b == b'/')?;
    let digits = &bytes[slash + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    Some((n, &bytes[..slash]))
}

/// A visible event whose key was shredded: its payload is gone, and with
/// it what it did to its entity's balance (gates read the same history).
fn forget_payload(balances: &mut BTreeMap<String, i64>, gated: bool, event: &mut Event) {
    if let Some(delta) = balance_delta(event).filter(|_| gated) {
        *balances.entry(event.coordinate.entity().to_owned()).or_default() -= delta;
    }
    event.shredded = true;
    event.payload = Vec::new().into();
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelItem {
    pub entity: String,
    pub scope: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub expected_version: Option<u64>,
    pub cause: Option<ModelCause>,
    /// An explicit correlation (otherwise the cause's, or the event's own).
    pub correlation: Option<EventId>,
}

/// The cause an item names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelCause {
    /// An earlier item of the same batch.
    Item(usize),
    /// An event by id, with the (uid, item) it was when named; `None` for a
    /// bogus id that names no visible event (the store must refuse it).
    Event { id: EventId, tag: Option<(u64, u32)> },
}

/// What became of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sent; no answer yet.
    InFlight,
    /// Acknowledged durable at these global sequences.
    Acked(Vec<u64>),
    /// Outcome unknown (failed fsync, crash mid-commit): after a crash it
    /// may be present, but only whole.
    Maybe,
    /// Refused with nothing written (conflict, unavailable).
    Refused,
    /// Was `Maybe`, and a recovery found it absent: it must never appear.
    Gone,
}

/// How a batch was made invalid on purpose (the store must refuse it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    EmptyBatch,
    /// An idempotency key with a control character.
    Key,
    /// Item `.0` has an empty kind.
    EmptyKind(usize),
    /// Item `.0` names itself as its cause.
    CauseNotEarlier(usize),
}

#[derive(Clone, Debug)]
pub struct ModelBatch {
    pub uid: u64,
    pub items: Vec<ModelItem>,
    pub key: Option<String>,
    pub fate: Fate,
    /// An earlier attempt of this batch may be on disk: it stays possible
    /// until a recovery settles it, whatever later attempts are told.
    pub maybe_written: bool,
    /// Made invalid on purpose.
    pub invalid: Option<Invalid>,
}

impl ModelBatch {
    pub fn to_batch(&self) -> Batch {
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(n, i)| {
                let scope = tagged_scope(&i.scope, self.uid, n as u32);
                let coordinate = Coordinate::new(&i.entity, &scope).expect("the workload makes valid names");
                let mut e = NewEvent::new(coordinate, &i.kind, i.payload.clone());
                e.correlation = i.correlation;
                e.expected_version = i.expected_version;
                e.cause = i.cause.as_ref().map(|c| match c {
                    ModelCause::Item(j) => Cause::Item(*j),
                    ModelCause::Event { id, .. } => Cause::Event(*id),
                });
                e
            })
            .collect();
        let batch = Batch::new(items);
        match &self.key {
            Some(key) => batch.with_idempotency_key(key),
            None => batch,
        }
    }
}

/// The (entity, key generation) of every visible, unshredded sealed
/// event, and those of them the durable image was not yet shown to open
/// since the last crash or the last shred of their bucket (P2 checks each
/// pending one once).
#[derive(Debug, Default)]
pub struct KeyChecks {
    needs: std::collections::BTreeSet<(String, u32)>,
    pending: std::collections::BTreeSet<(String, u32)>,
    /// Each entity's key bucket, worked out once (a hash of its name).
    buckets: std::collections::BTreeMap<String, usize>,
}

impl KeyChecks {
    fn need(&mut self, key: (String, u32)) {
        if self.needs.insert(key.clone()) {
            self.pending.insert(key);
        }
    }

    /// The durable image was shown to open `keys`.
    pub fn verified(&mut self, keys: impl IntoIterator<Item = (String, u32)>) {
        for key in keys {
            self.pending.remove(&key);
        }
    }

    /// `entity`'s generations up to `through` were shredded.
    fn drop_shredded(&mut self, entity: &str, through: u32) {
        let covered = |(e, g): &(String, u32)| e == entity && *g <= through;
        self.needs.retain(|k| !covered(k));
        self.pending.retain(|k| !covered(k));
    }

    /// Every needed key of an entity of `bucket` is checked again.
    fn recheck_bucket(&mut self, bucket: usize) {
        for (entity, generation) in &self.needs {
            let of = match self.buckets.get(entity) {
                Some(&of) => of,
                None => *self.buckets.entry(entity.clone()).or_insert(shale_store::keyset::bucket_of(entity)),
            };
            if of == bucket {
                self.pending.insert((entity.clone(), *generation));
            }
        }
    }
}

/// The shreds of one entity a client asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shreds {
    /// The highest generation an acknowledged shred covers.
    pub acked: Option<u32>,
    /// A shred since the last acknowledged one has an unknown outcome.
    pub unknown: bool,
    /// The highest generation covered by shreds acknowledged before lossy
    /// damage hit the keyset: each may have been undone (an older keyset
    /// copy came back) or may still hold, whatever is acknowledged after
    /// it. A salvage that set aside the records of the later generations
    /// lets the next shred name a lower one, and if the cut is undone
    /// (a lying sync) the old records come back. Cleared by a shred
    /// acknowledged through at least this generation.
    pub doubted: Option<u32>,
    /// Key records of the generations the acknowledged shreds cover were
    /// written under a keyset that salvage has since replaced: no keyset
    /// of the store opens them, and a record of such a generation now is
    /// of a key minted since (generations start again with a fresh
    /// keyset). Cleared by the next acknowledged shred.
    pub before_fresh_keyset: bool,
    /// Batches of a lower uid were made before the last acknowledged
    /// shred; later ones hold new payloads no shred so far covered (even
    /// if a store that lost its keyset minted their generation again).
    pub acked_before_uid: u64,
}

#[derive(Debug, Default)]
pub struct Model {
    pub batches: BTreeMap<u64, ModelBatch>,
    /// The store's visible events, validated, in global order.
    pub view: Vec<Event>,
    /// Batches present in `view`: uid → first global sequence.
    pub present: BTreeMap<u64, u64>,
    /// Entity versions in `view`.
    pub versions: BTreeMap<String, u64>,
    /// The hash of the first event of each batch's visible copy, as first
    /// seen: it tells the acknowledged copy from an earlier attempt that
    /// may land at the same position.
    pub copy_hash: BTreeMap<u64, [u8; 32]>,
    /// Shreds asked for, by entity.
    pub shreds: BTreeMap<String, Shreds>,
    /// Keys a recovery read as lost to damage (and passed the checks): a
    /// salvage records the loss, so later opens read them as lost too.
    pub lost_keys: std::collections::BTreeSet<(String, u32)>,
    /// The master key that seals the keyset, if the run uses one.
    pub master_key: Option<shale_store::MasterKey>,
    /// The keys of visible sealed events, and which P2 has yet to check.
    pub key_checks: KeyChecks,
    /// Balances per entity over `view`, for P7; kept only in gated runs.
    pub balances: BTreeMap<String, i64>,
    /// The run registers the simulator's gates (P7 is checked).
    pub gated: bool,
    /// Batches acknowledged but not yet seen in `view`.
    pub acked_unseen: std::collections::BTreeSet<u64>,
    /// Idempotency keys of the batches in `view`: (uid, first global).
    keys: BTreeMap<String, (u64, u64)>,
    /// The last batch uid issued (uids start at 1).
    last_uid: u64,
    /// What was visible when the machine last crashed, until a recovery
    /// has been checked against it.
    before_crash: Option<SeenView>,
}

/// The view and everything derived from it, as a crash left them.
#[derive(Debug, Default)]
struct SeenView {
    view: Vec<Event>,
    present: BTreeMap<u64, u64>,
    versions: BTreeMap<String, u64>,
    keys: BTreeMap<String, (u64, u64)>,
    key_checks: KeyChecks,
    balances: BTreeMap<String, i64>,
}

impl Model {
    /// An empty model; `gated` if the run registers the simulator's gates,
    /// `master_key` if its keyset is sealed.
    pub fn new(gated: bool, master_key: Option<shale_store::MasterKey>) -> Self {
        Self { gated, master_key, ..Self::default() }
    }

    pub fn new_uid(&mut self) -> u64 {
        self.last_uid += 1;
        self.last_uid
    }

    pub fn add(&mut self, batch: ModelBatch) {
        let previous = self.batches.insert(batch.uid, batch);
        assert!(previous.is_none(), "uid reused");
    }

    pub fn batch(&self, uid: u64) -> &ModelBatch {
        &self.batches[&uid]
    }

    pub fn set_fate(&mut self, uid: u64, fate: Fate) {
        let Some(b) = self.batches.get_mut(&uid) else { return };
        b.fate = match fate {
            Fate::Refused if b.maybe_written => Fate::Maybe,
            other => other,
        };
        if matches!(b.fate, Fate::Acked(_)) && !self.present.contains_key(&uid) {
            self.acked_unseen.insert(uid);
        } else {
            self.acked_unseen.remove(&uid);
        }
        match b.fate {
            Fate::Maybe => b.maybe_written = true,
            Fate::Acked(_) | Fate::Gone => b.maybe_written = false,
            Fate::InFlight | Fate::Refused => {}
        }
    }

    pub fn acked(&self) -> impl Iterator<Item = &ModelBatch> {
        self.batches.values().filter(|b| matches!(b.fate, Fate::Acked(_)))
    }

    /// Adds validated events to the view.
    pub fn absorb(&mut self, events: Vec<Event>) {
        for event in events {
            assert_eq!(event.global_seq, self.view.len() as u64 + 1, "absorb takes validated, gap-free events");
            if let Some((uid, 0)) = tag_of(&event) {
                self.present.insert(uid, event.global_seq);
                if let Some(key) = self.batches.get(&uid).and_then(|b| b.key.clone()) {
                    self.keys.insert(key, (uid, event.global_seq));
                }
                self.copy_hash.insert(uid, event.hash);
                self.acked_unseen.remove(&uid);
            }
            *self.versions.entry(event.coordinate.entity().to_owned()).or_default() = event.entity_seq;
            if let Some(delta) = balance_delta(&event).filter(|_| self.gated) {
                *self.balances.entry(event.coordinate.entity().to_owned()).or_default() += delta;
            }
            if event.key_gen > 0 && !event.shredded && !event.key_lost {
                self.key_checks.need((event.coordinate.entity().to_owned(), event.key_gen));
            }
            self.view.push(event);
        }
    }

    /// The (entity, key generation) pairs of visible sealed events, and of
    /// `events` about to become visible, that the durable image was not yet
    /// shown to open.
    pub fn unverified_keys(&self, events: &[Event]) -> Vec<(String, u32)> {
        let fresh = events.iter().filter(|e| e.key_gen > 0 && !e.shredded && !e.key_lost);
        let fresh = fresh.map(|e| (e.coordinate.entity().to_owned(), e.key_gen));
        let fresh = fresh.filter(|k| !self.key_checks.needs.contains(k) || self.key_checks.pending.contains(k));
        let mut needed: Vec<(String, u32)> = self.key_checks.pending.iter().cloned().chain(fresh).collect();
        needed.sort();
        needed.dedup();
        needed
    }

    /// Forgets the view (a crash): the next observation rebuilds it.
    /// The machine crashed: nothing is visible until a recovery, and what
    /// was is kept for that recovery (see `restore_view`). After a failed
    /// open nothing became visible, and the view from before stays kept.
    pub fn crash_view(&mut self) {
        let seen = SeenView {
            view: std::mem::take(&mut self.view),
            present: std::mem::take(&mut self.present),
            versions: std::mem::take(&mut self.versions),
            keys: std::mem::take(&mut self.keys),
            key_checks: std::mem::take(&mut self.key_checks),
            balances: std::mem::take(&mut self.balances),
        };
        match &self.before_crash {
            None => self.before_crash = Some(seen),
            Some(_) => assert!(seen.view.is_empty(), "events became visible with no recovery since the crash"),
        }
    }

    /// The events visible when the machine last crashed.
    pub fn seen_before_crash(&self) -> &[Event] {
        self.before_crash.as_ref().map_or(&[], |seen| &seen.view)
    }

    /// A recovery brought back the first `keep` events seen before the
    /// crash unchanged (whole batches): the view is those events again,
    /// with all that was derived from them.
    pub fn restore_view(&mut self, keep: usize) {
        let Some(mut seen) = self.before_crash.take() else { return };
        assert!(self.view.is_empty(), "the view is restored only after a crash");
        if keep == seen.view.len() {
            self.view = seen.view;
            self.present = seen.present;
            self.versions = seen.versions;
            self.keys = seen.keys;
            self.key_checks = seen.key_checks;
            self.balances = seen.balances;
        } else {
            seen.view.truncate(keep);
            self.absorb(seen.view);
        }
    }

    /// The visible batch committed with idempotency key `key`: (uid, first
    /// global sequence).
    pub fn committed_key(&self, key: &str) -> Option<(u64, u64)> {
        self.keys.get(key).copied()
    }

    /// One of the idempotency keys of the batches in `view`, picked by
    /// `pick`, if there is any.
    pub fn random_committed_key(&self, pick: u64) -> Option<String> {
        let n = self.keys.len() as u64;
        (n > 0).then(|| self.keys.keys().nth((pick % n) as usize).cloned()).flatten()
    }

    /// The highest generation of `entity` an acknowledged shred covers.
    pub fn acked_shred(&self, entity: &str) -> Option<u32> {
        self.shreds.get(entity)?.acked
    }

    /// Every entity with an acknowledged shred, and the highest generation
    /// one covers (unless salvage replaced the keyset since: see
    /// `before_fresh_keyset`).
    pub fn acked_shreds(&self) -> impl Iterator<Item = (&str, u32)> {
        self.shreds.iter().filter(|(_, s)| !s.before_fresh_keyset).filter_map(|(e, s)| Some((e.as_str(), s.acked?)))
    }

    /// The highest generation of `entity` an acknowledged shred covers,
    /// unless salvage replaced the keyset since (as `acked_shreds`).
    pub fn shred_through(&self, entity: &str) -> Option<u32> {
        self.shreds.get(entity).filter(|s| !s.before_fresh_keyset)?.acked
    }

    /// Salvage set the keyset aside and started a fresh one: no key record
    /// written before opens with it, and generations are minted from 1
    /// again, so the generations shreds covered no longer name the keys
    /// they shredded. (The keyset set aside is the operator's.)
    pub fn keyset_replaced(&mut self) {
        for shreds in self.shreds.values_mut() {
            shreds.before_fresh_keyset = true;
        }
    }

    /// Lossy damage hit the keyset: every acknowledged shred may have been
    /// undone (an older copy came back), and is in doubt (see `doubted`)
    /// until one of its entity covering as much is acknowledged.
    pub fn shreds_in_doubt(&mut self) {
        for shreds in self.shreds.values_mut() {
            shreds.doubted = shreds.doubted.max(shreds.acked.take());
        }
    }

    /// The generation through which an acknowledged shred covers `event`
    /// (sealed under a generation it covers, in a batch made before it).
    pub fn shred_covering(&self, event: &Event) -> Option<u32> {
        let shreds = self.shreds.get(event.coordinate.entity())?;
        let through = shreds.acked.filter(|g| event.key_gen <= *g)?;
        let made_before = tag_of(event).is_none_or(|(uid, _)| uid < shreds.acked_before_uid);
        made_before.then_some(through)
    }

    /// Whether an event of `entity` sealed under `key_gen` may read as
    /// shredded: an acknowledged shred, or one in doubt, covers it, or a
    /// shred of the entity has an unknown outcome.
    pub fn may_be_shredded(&self, entity: &str, key_gen: u32) -> bool {
        self.shreds.get(entity).is_some_and(|s| s.unknown || s.acked.max(s.doubted).is_some_and(|g| g >= key_gen))
    }

    /// A shred of `entity` whose outcome is unknown (until one is
    /// acknowledged).
    pub fn shred_unknown(&mut self, entity: &str) {
        self.shreds.entry(entity.to_owned()).or_default().unknown = true;
    }

    /// An acknowledged shred of `entity` up to `generation`: the view's
    /// events it covers read as shredded from now on.
    pub fn shredded(&mut self, entity: &str, generation: u32) {
        let shreds = self.shreds.entry(entity.to_owned()).or_default();
        shreds.unknown = false;
        if shreds.doubted.is_some_and(|g| g <= generation) {
            shreds.doubted = None;
        }
        // Past the last uid issued.
        shreds.acked_before_uid = self.last_uid + 1;
        // Generations a shred covered before salvage replaced the keyset
        // name keys that no longer exist (numbering started again).
        let earlier = shreds.acked.filter(|_| !std::mem::take(&mut shreds.before_fresh_keyset));
        shreds.acked = Some(earlier.map_or(generation, |g| g.max(generation)));
        for event in &mut self.view {
            // An event whose key was lost to damage stays lost: that is the
            // truer reason its payload is gone.
            let covered = event.key_gen > 0 && event.key_gen <= generation && !event.key_lost;
            if covered && event.coordinate.entity() == entity {
                forget_payload(&mut self.balances, self.gated, event);
            }
        }
        self.key_checks.drop_shredded(entity, generation);
        self.recheck_bucket_of(entity);
    }

    /// A shred of `entity` rewraps its bucket's keys (if it got that far):
    /// P2 checks each of them again.
    pub fn recheck_bucket_of(&mut self, entity: &str) {
        self.key_checks.recheck_bucket(shale_store::keyset::bucket_of(entity));
    }

    /// A shred of `entity` whose outcome is unknown: the store may show its
    /// events shredded from now on. The view adopts what `now` (the
    /// entity's events as the store reads them) shows, if it is only that.
    pub fn adopt_shred(&mut self, entity: &str, now: &[Event]) -> Result<(), String> {
        for event in now {
            let Some(seen) = self.view.get_mut(event.global_seq as usize - 1) else { continue };
            if seen.shredded || !event.shredded {
                continue;
            }
            if seen.id != event.id || seen.coordinate.entity() != entity || seen.key_gen == 0 {
                return Err(format!("event {} reads as shredded after a shred of {entity}", event.global_seq));
            }
            forget_payload(&mut self.balances, self.gated, seen);
            let generation = seen.key_gen;
            self.key_checks.drop_shredded(entity, generation);
        }
        Ok(())
    }

    /// After a recovery has been checked: batches present are durable now
    /// (as if acknowledged at their positions); `Maybe` batches absent are
    /// gone for good.
    pub fn settle_after_recovery(&mut self) {
        let present = self.present.clone();
        for batch in self.batches.values_mut() {
            match (&batch.fate, present.get(&batch.uid)) {
                (Fate::Maybe | Fate::InFlight | Fate::Gone, Some(&first)) => {
                    batch.fate = Fate::Acked((first..first + batch.items.len() as u64).collect());
                }
                (Fate::Maybe | Fate::InFlight, None) => batch.fate = Fate::Gone,
                (Fate::Acked(_), Some(&first)) => {
                    // Possible only after a detected, legitimate loss moved
                    // things: the batch lives where it was recovered.
                    batch.fate = Fate::Acked((first..first + batch.items.len() as u64).collect());
                }
                (Fate::Acked(_), None) => batch.fate = Fate::Gone,
                _ => {}
            }
        }
        self.acked_unseen.clear();
    }

    pub fn version(&self, entity: &str) -> u64 {
        self.versions.get(entity).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_scope_names_its_batch_and_item() {
        assert_eq!(scope_tag(&tagged_scope("main", 123, 4)), Some((123, 4)));
        assert_eq!(scope_tag(&tagged_scope("a/b", u64::MAX, u32::MAX)), Some((u64::MAX, u32::MAX)));
        for untagged in
            ["main", "main/1", "/1/2", "main/x/2", "main/1/", "main/1/99999999999", "main/99999999999999999999/1"]
        {
            assert_eq!(scope_tag(untagged), None, "{untagged}");
        }
    }
}
