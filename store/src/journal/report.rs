//! What recovery found and did, as open reports it: every byte it cut or
//! set aside, and whether it started from the index checkpoint.

use std::ops::Range;
use std::path::PathBuf;

use crate::error::Corruption;

/// Why bytes were cut off the end of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// A torn or uncommitted tail of the last segment: bytes of a flush
    /// whose fsync never completed (nothing acknowledged).
    TornTail,
    /// Bytes past the end the next segment's header records (a flush whose
    /// write or fsync failed, answered "outcome unknown").
    PastRecordedEnd,
}

/// Bytes recovery cut off a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub file: PathBuf,
    /// Where the segment now ends.
    pub offset: u64,
    /// How many bytes were cut.
    pub len: u64,
    pub reason: CutReason,
}

/// Bytes salvage moved or copied out of the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The journal file they were in.
    pub from: PathBuf,
    /// Where they are now.
    pub to: PathBuf,
    /// Where in `from` they started (`to` holds them from its byte 0).
    pub offset: u64,
    pub len: u64,
}

/// What recovery found and did. Every byte it dropped or moved is here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: u64,
    pub groups: u64,
    pub events: u64,
    /// Bytes cut off the end of segments.
    pub truncated: Vec<Truncation>,
    /// Temporary files of interrupted segment starts, removed: a segment is
    /// renamed into place before any frame is written, so they never held
    /// data.
    pub removed: Vec<PathBuf>,
    /// Salvage only: what was set aside.
    pub set_aside: Vec<SetAside>,
    /// Salvage only: bytes that could not be read; the set-aside copy holds
    /// zeros there.
    pub unreadable: Vec<(PathBuf, Range<u64>)>,
    /// Salvage only: the damage that was set aside.
    pub corruption: Option<Corruption>,
    /// Salvage only: keys no key record opens and no shred covers (their
    /// record or wrapping key was damaged), as (entity, generation). Their
    /// events keep their place; their payloads read as an integrity error.
    pub keys_lost: Vec<(String, u32)>,
    /// Keyset copies written again, and why: one was damaged, unreadable or
    /// behind the other (nothing was lost while the other was intact).
    pub keyset_repaired: Vec<(PathBuf, String)>,
    /// Salvage only: `META` was unusable, set aside, and rebuilt from the
    /// segments and the keyset (why).
    pub meta_rebuilt: Option<String>,
    /// Whether open started from the index checkpoint.
    pub checkpoint: CheckpointUse,
}

impl RecoveryReport {
    /// True if recovery dropped or moved anything (leftover temporary files
    /// aside, which never hold data).
    pub fn lost_anything(&self) -> bool {
        !self.truncated.is_empty()
            || !self.set_aside.is_empty()
            || !self.unreadable.is_empty()
            || self.corruption.is_some()
            || !self.keys_lost.is_empty()
    }
}

/// Whether open started from the index checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CheckpointUse {
    /// There was none, or the open salvaged or was asked to scan it all.
    #[default]
    None,
    /// It covered this many events; only the journal after it was read.
    Used { events: u64 },
    /// There was one, and it was passed over (why): the whole journal was
    /// read. Nothing is lost: the journal holds everything it was made of.
    Passed(String),
}
