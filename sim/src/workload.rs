//! What the simulated clients do: appends and batches (with expected
//! versions and idempotency keys), gets, queries and cursor reads, drawn
//! from the scenario's weights with the run's seeded stream.

use shale_store::{EventId, Region};

use crate::model::{payload, tag_of, Fate, Model, ModelBatch, ModelCause, ModelItem, PAYLOAD_TAG_LEN};
use crate::rng::SimRng;
use crate::scenario::WorkloadSpec;

const SCOPES: [&str; 2] = ["main", "audit"];
const KINDS: [&str; 4] = ["opened", "deposited", "withdrawn", "noted"];

pub enum Op {
    Write(u64),
    Get(EventId),
    Query(Region),
    ReadFrom { from: u64, limit: usize },
    Shred(String),
    Causes(EventId),
    Effects(EventId),
}

pub struct Workload {
    spec: WorkloadSpec,
    rng: SimRng,
    /// Kinds and payloads for the simulator's gates.
    gated: bool,
}

impl Workload {
    pub fn new(spec: WorkloadSpec, seed: u64, gated: bool) -> Self {
        Self { spec, rng: SimRng::stream(seed, "workload"), gated }
    }

    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    fn entity(&mut self) -> String {
        format!("e{}", self.rng.below(u64::from(self.spec.entities)))
    }

    /// The next operation; a write is added to the model as in flight.
    pub fn next(&mut self, model: &mut Model, store_tag: u32, cursor: u64) -> Op {
        let w = &self.spec.weights;
        let weights = [w.append, w.batch, w.get, w.query, w.read_from, w.shred, w.walk];
        match self.rng.weighted(&weights) {
            Some(0) | None => Op::Write(self.write(model, store_tag, 1)),
            Some(1) => {
                let len = self.rng.between(1, u64::from(self.spec.batch_max)) as usize;
                Op::Write(self.write(model, store_tag, len))
            }
            Some(6) if !model.view.is_empty() => {
                let event = &model.view[self.rng.below(model.view.len() as u64) as usize];
                if self.rng.chance(0.5) {
                    Op::Causes(event.id)
                } else {
                    Op::Effects(event.id)
                }
            }
            Some(2) => {
                let global = self.rng.between(1, model.view.len() as u64 + 2);
                let id = match model.view.get(global as usize - 1) {
                    Some(event) => event.id,
                    None => EventId::from_parts(store_tag, self.epoch(model), global),
                };
                // Now and then an id of another store, or of another epoch
                // at the same position: neither names an event here.
                let id = match self.rng.below(20) {
                    0 => EventId::from_parts(id.store_tag() ^ 1, id.epoch(), id.global_seq()),
                    1 => EventId::from_parts(id.store_tag(), id.epoch() ^ 1, id.global_seq()),
                    _ => id,
                };
                Op::Get(id)
            }
            Some(3) => Op::Query(self.region(model)),
            Some(4) | Some(6) => Op::ReadFrom { from: cursor, limit: self.rng.between(1, 40) as usize },
            _ => Op::Shred(self.entity()),
        }
    }

    fn region(&mut self, model: &Model) -> Region {
        let len = model.view.len() as u64;
        match self.rng.below(5) {
            0 => Region::entity(&self.entity()),
            1 => Region::entity(&self.entity()).entity_seq(self.rng.between(1, 4)..self.rng.between(2, 12)),
            2 => Region::entity_prefix(&format!("e{}", self.rng.below(3))),
            3 => Region::all().kind(KINDS[self.rng.below(4) as usize]).scope(SCOPES[self.rng.below(2) as usize]),
            _ => {
                let start = self.rng.between(1, len + 1);
                Region::all().global(start..start + self.rng.between(0, 30))
            }
        }
    }

    /// An epoch for an id that names no event: the latest one seen, or any.
    fn epoch(&mut self, model: &Model) -> u32 {
        model.view.last().map_or_else(|| self.rng.next_u64() as u32, |e| e.id.epoch())
    }

    /// The cause item `i` names, if any.
    fn cause(&mut self, model: &Model, store_tag: u32, i: usize) -> Option<ModelCause> {
        if !self.rng.chance(self.spec.cause_rate) {
            return None;
        }
        if self.rng.chance(self.spec.bogus_cause_rate) {
            let beyond = model.view.len() as u64 + 1_000 + self.rng.below(1_000);
            let epoch = self.epoch(model);
            return Some(ModelCause::Event { id: EventId::from_parts(store_tag, epoch, beyond), tag: None });
        }
        if i > 0 && self.rng.chance(0.4) {
            return Some(ModelCause::Item(self.rng.below(i as u64) as usize));
        }
        // Mostly the latest events, so that chains grow deep.
        let recent = model.view.len().min(8) as u64;
        let back = 1 + self.rng.below(recent.max(1)) as usize;
        let event = model.view.get(model.view.len().checked_sub(back)?)?;
        Some(ModelCause::Event { id: event.id, tag: tag_of(event) })
    }

    /// Kind and payload filler of an item: random, or money movements in
    /// gated runs (the amount follows the payload's tag).
    fn kind_and_filler(&mut self) -> (String, Vec<u8>) {
        let filler_len = self.rng.below(u64::from(self.spec.payload_max) - PAYLOAD_TAG_LEN as u64 + 1) as usize;
        let mut filler = vec![0u8; filler_len.max(8)];
        self.rng.fill(&mut filler);
        if !self.gated {
            filler.truncate(filler_len);
            return (KINDS[self.rng.below(4) as usize].to_owned(), filler);
        }
        let amount = self.rng.between(1, 100) as i64;
        filler[..8].copy_from_slice(&amount.to_le_bytes());
        let kind = if self.rng.chance(self.spec.explode_rate) {
            "explode"
        } else if self.rng.chance(0.5) {
            "deposited"
        } else {
            "withdrawn"
        };
        (kind.to_owned(), filler)
    }

    fn write(&mut self, model: &mut Model, store_tag: u32, len: usize) -> u64 {
        let uid = model.new_uid();
        let mut items = Vec::with_capacity(len);
        let mut bumps: Vec<(String, u64)> = Vec::new();
        for i in 0..len {
            let entity = self.entity();
            let earlier = bumps.iter().filter(|(e, _)| *e == entity).count() as u64;
            let expected_version = self.rng.chance(self.spec.expected_version_rate).then(|| {
                let version = model.version(&entity) + earlier;
                if self.rng.chance(self.spec.stale_version_rate) {
                    version + 1 + self.rng.below(2)
                } else {
                    version
                }
            });
            bumps.push((entity.clone(), 1));
            let (kind, filler) = self.kind_and_filler();
            let cause = self.cause(model, store_tag, i);
            items.push(ModelItem {
                entity,
                scope: SCOPES[self.rng.below(2) as usize].to_owned(),
                kind,
                payload: payload(uid, i as u32, &filler),
                expected_version,
                cause,
            });
        }
        let key = self.rng.chance(self.spec.idempotency_rate).then(|| format!("key-{uid}"));
        model.add(ModelBatch { uid, items, key, fate: Fate::InFlight, maybe_written: false });
        uid
    }

    /// Whether a client retries a batch that failed or whose outcome is
    /// unknown (only batches with an idempotency key are retried).
    pub fn retries(&mut self) -> bool {
        self.rng.chance(self.spec.retry_rate)
    }
}
