//! The journal: segment files of checksummed frames, grouped into commits.

pub mod checkpoint;
pub mod files;
pub mod read;
pub mod record;
pub mod recover;
pub mod report;
pub mod salvage;
pub mod scan;
pub mod segment;
pub mod writer;
