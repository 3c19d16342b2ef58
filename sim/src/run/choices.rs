//! Where a run's choices come from: seeded streams, a script's values, or
//! fuzzer bytes (see `crate::rng`).

use std::sync::{Arc, Mutex};

use crate::rng::{Bytes, SimRng};
use crate::scenario::Script;

/// Where a run's choices come from.
#[derive(Clone, Debug)]
pub enum Choices {
    /// Seeded ChaCha streams.
    Seed(u64),
    /// The values a script lists.
    Script(Script),
    /// Fuzzer bytes, shared by every stream in draw order.
    Bytes(Arc<Mutex<Bytes>>),
}

impl Choices {
    /// The stream for `label` (one of `script::STREAMS`).
    pub(super) fn stream(&self, label: &str, record: bool) -> SimRng {
        let rng = match self {
            Choices::Seed(seed) => SimRng::stream(*seed, label),
            Choices::Script(script) => script.rng(label),
            Choices::Bytes(bytes) => SimRng::bytes(bytes),
        };
        if record {
            rng.recording()
        } else {
            rng
        }
    }

    /// The seed of the store's own entropy (keys, nonces) and the master
    /// key: no choice of the run.
    pub(super) fn entropy_seed(&self) -> u64 {
        match self {
            Choices::Seed(seed) => *seed,
            Choices::Script(script) => script.entropy_seed.0,
            Choices::Bytes(_) => 0,
        }
    }
}
