//! The environment seam: every source of nondeterminism the store has.
//!
//! The store is generic over [`Env`]. [`RealEnv`] is the production world
//! (files, the system clock, the OS CSPRNG); the simulator supplies its own
//! twin with the same shape. Code outside this file, `disk.rs` and
//! `shell.rs` never touches the wall clock, the file system, threads or an
//! unseeded random source; `tests/seam_purity.rs` enforces it.

use crate::disk::{Disk, FileDisk};

/// Time as the store sees it.
pub trait Clock: Send + 'static {
    /// Nanoseconds since the Unix epoch; stamped on events. Need not be
    /// monotonic: the store never orders anything by it.
    fn wall_ns(&mut self) -> u64;
}

/// Key, nonce and identifier material.
pub trait Entropy: Send + 'static {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }
}

/// One world: a disk, a clock and an entropy source.
pub trait Env: Send + 'static {
    type Disk: Disk;
    type Clock: Clock;
    type Entropy: Entropy;

    fn disk(&mut self) -> &mut Self::Disk;
    fn clock(&mut self) -> &mut Self::Clock;
    fn entropy(&mut self) -> &mut Self::Entropy;
}

/// The production environment.
#[derive(Debug, Default)]
pub struct RealEnv {
    pub disk: FileDisk,
    pub clock: SystemClock,
    pub entropy: OsEntropy,
}

impl Env for RealEnv {
    type Disk = FileDisk;
    type Clock = SystemClock;
    type Entropy = OsEntropy;

    fn disk(&mut self) -> &mut FileDisk {
        &mut self.disk
    }
    fn clock(&mut self) -> &mut SystemClock {
        &mut self.clock
    }
    fn entropy(&mut self) -> &mut OsEntropy {
        &mut self.entropy
    }
}

/// The system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ns(&mut self) -> u64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // The OS CSPRNG failing is not something a store can recover from:
        // handing out predictable keys would be worse than stopping.
        #[expect(clippy::expect_used, reason = "no safe fallback for a broken OS CSPRNG")]
        getrandom::fill(buf).expect("the OS random source failed");
    }
}
