//! What the simulated clients do: appends and batches (with expected
//! versions and idempotency keys; `batch.rs`), gets, queries, cursor reads,
//! graph walks and shreds, drawn from the scenario's weights with the run's
//! seeded stream.

use shale_store::{EventId, Region};

use crate::model::Model;
use crate::rng::SimRng;
use crate::scenario::WorkloadSpec;

mod batch;

const SCOPES: [&str; 2] = ["main", "audit"];
const KINDS: [&str; 4] = ["opened", "deposited", "withdrawn", "noted"];

pub enum Op {
    Write(u64),
    Get(EventId),
    Query(Region),
    ReadFrom {
        from: u64,
        limit: usize,
    },
    Shred(String),
    Causes(EventId),
    Effects(EventId),
    /// The events of a correlation.
    Correlated(EventId),
}

pub struct Workload {
    spec: WorkloadSpec,
    rng: SimRng,
    /// Kinds and payloads for the simulator's gates.
    gated: bool,
}

impl Workload {
    pub fn new(spec: WorkloadSpec, rng: SimRng, gated: bool) -> Self {
        Self { spec, rng, gated }
    }

    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    pub fn rng_ref(&self) -> &SimRng {
        &self.rng
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
                match self.rng.below(3) {
                    0 => Op::Causes(event.id),
                    1 => Op::Effects(event.id),
                    _ => Op::Correlated(event.correlation),
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
            // A kind with an event's exact scope (or, rarely, one no event has).
            3 => {
                let scope = match model.view.is_empty() || self.rng.chance(0.2) {
                    true => SCOPES[self.rng.below(2) as usize].to_owned(),
                    false => model.view[self.rng.below(len) as usize].coordinate.scope().to_owned(),
                };
                Region::all().kind(KINDS[self.rng.below(4) as usize]).scope(&scope)
            }
            _ => {
                let start = self.rng.between(1, len + 1);
                Region::all().global(start..start + self.rng.between(0, 30))
            }
        }
    }

    /// Whether a client retries a batch that failed or whose outcome is
    /// unknown (only batches with an idempotency key are retried).
    pub fn retries(&mut self) -> bool {
        self.rng.chance(self.spec.retry_rate)
    }
}
