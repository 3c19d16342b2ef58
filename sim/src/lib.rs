//! shale-sim: the deterministic simulation harness for shale-store.
//!
//! This crate is being built; see the README's status section.
