//! The simulated environment: `SimDisk`, a clock that reads simulated time,
//! and entropy from the run's seed.

use shale_store::{Clock, Entropy, Env};

use crate::disk::{SimDisk, SimTime};
use crate::rng::SimRng;

/// Wall time the simulated clock starts from: 2026-01-01T00:00:00Z.
pub const SIM_EPOCH_NS: u64 = 1_767_225_600_000_000_000;

#[derive(Clone, Debug)]
pub struct SimClock {
    time: SimTime,
}

impl SimClock {
    pub fn new(time: SimTime) -> Self {
        Self { time }
    }
}

impl Clock for SimClock {
    fn wall_ns(&mut self) -> u64 {
        SIM_EPOCH_NS + self.time.now()
    }
}

#[derive(Clone, Debug)]
pub struct SimEntropy {
    rng: SimRng,
}

impl SimEntropy {
    pub fn new(seed: u64, label: &str) -> Self {
        Self { rng: SimRng::stream(seed, label) }
    }
}

impl Entropy for SimEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill(buf);
    }
}

/// One simulated world for the store.
#[derive(Debug)]
pub struct SimEnv {
    pub disk: SimDisk,
    pub clock: SimClock,
    pub entropy: SimEntropy,
}

impl Env for SimEnv {
    type Disk = SimDisk;
    type Clock = SimClock;
    type Entropy = SimEntropy;

    fn disk(&mut self) -> &mut SimDisk {
        &mut self.disk
    }
    fn clock(&mut self) -> &mut SimClock {
        &mut self.clock
    }
    fn entropy(&mut self) -> &mut SimEntropy {
        &mut self.entropy
    }
}
