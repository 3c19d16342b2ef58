//! shale-store: an embedded, crash-safe event store.
//!
//! Events are appended to a journal of checksummed frames, one durable group
//! per batch; readers see only whole, durable batches. All nondeterminism
//! (disk, clock, entropy) comes through the [`Env`] seam, so the simulator in
//! `shale-sim` runs this exact code against a faulty simulated disk.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// Names a planted bug; without the `canaries` feature there are none.
#[cfg(feature = "canaries")]
macro_rules! canary {
    ($name:ident) => {
        crate::canary::Canary::$name
    };
}
#[cfg(not(feature = "canaries"))]
macro_rules! canary {
    ($name:ident) => {
        ()
    };
}

#[cfg(feature = "canaries")]
pub mod canary;

/// The planted bug a component runs with: always none without the
/// `canaries` feature, so production code asks `planted.is(canary!(X))`
/// and the question compiles to `false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Planted(#[cfg(feature = "canaries")] canary::Canary);

impl Planted {
    #[cfg(feature = "canaries")]
    pub(crate) fn new(canary: canary::Canary) -> Self {
        Self(canary)
    }

    #[cfg(feature = "canaries")]
    pub(crate) fn is(self, canary: canary::Canary) -> bool {
        self.0 == canary
    }

    #[cfg(not(feature = "canaries"))]
    pub(crate) fn is(self, _: ()) -> bool {
        false
    }

    /// The `HiddenState` canary's turn: true on every other call in the
    /// process while it is planted.
    #[cfg(feature = "canaries")]
    pub(crate) fn hidden_state_turn(self) -> bool {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        self.0 == canary::Canary::HiddenState && CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 1
    }

    #[cfg(not(feature = "canaries"))]
    pub(crate) fn hidden_state_turn(self) -> bool {
        false
    }
}
mod chunked;
pub mod core;
pub mod crypto;
pub mod disk;
pub mod env;
pub mod error;
mod fence;
pub mod gate;
pub mod graph;
mod hash;
pub mod journal;
pub mod keys;
pub mod keyset;
pub mod limits;
pub mod meta;
pub mod model;
mod plan;
pub mod reader;
mod shell;
pub mod state;
pub mod work;

pub use crate::core::{Core, Encryption, Options};
pub use crate::crypto::MasterKey;
pub use crate::disk::{Disk, FileDisk};
pub use crate::env::{Clock, Entropy, Env, OsEntropy, RealEnv, SystemClock};
pub use crate::error::{
    AppendError, CloseError, Corruption, Error, InvalidInput, IoError, OpenError, ReadError, ShredError,
};
pub use crate::gate::{Gate, GateEvent, GateView, Gates, Proposed, Verdict};
pub use crate::graph::{Walk, WalkEnd};
pub use crate::journal::recover::{CheckpointUse, CutReason, RecoveryReport, SetAside, Truncation};
pub use crate::model::{
    Batch, Cause, Coordinate, Event, EventDigest, EventId, NewEvent, Payload, Receipt, Region, ShredReceipt,
};
pub use crate::reader::Reader;
pub use crate::shell::Store;
