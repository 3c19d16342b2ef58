//! shale-sim: deterministic simulation testing for shale-store.
//!
//! The store's own commit path runs against [`disk::SimDisk`], a simulated
//! clock and seeded entropy, driven by a discrete-event scheduler. One u64
//! seed derives everything; checkers compare the store with a reference
//! model after every step and every crash + recovery.

pub mod check;
pub mod disk;
pub mod env;
pub mod faults;
pub mod model;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod sweep;
pub mod trace;
pub mod workload;
