//! Typed errors: one enum per operation, each converting into [`Error`].
//! Errors are for what the world can do (bad input, a torn file, a failed
//! fsync); a broken invariant of the store itself is a panic.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use crate::model::EventId;

/// Caller input the store refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} bytes, more than the limit of {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} contains a control character")]
    ControlCharacter { field: &'static str },
    #[error("payload is {len} bytes, more than the limit of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("payload could not be encoded or decoded: {reason}")]
    Payload { reason: String },
    #[error("a batch must hold at least one event")]
    EmptyBatch,
    #[error("batch holds {len} events, more than the limit of {max}")]
    BatchTooLarge { len: usize, max: usize },
    #[error("item {item} names item {cause} as its cause, which is not an earlier item")]
    CauseNotEarlier { item: usize, cause: usize },
    #[error("cause {cause} is not a committed event of this store")]
    UnknownCause { cause: EventId },
    #[error("read limit {limit} is outside 1..={max}")]
    ReadLimit { limit: usize, max: usize },
    #[error("invalid option: {reason}")]
    Option { reason: String },
}

/// An I/O error with what the store was doing when it happened.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct IoError {
    pub context: String,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(context: impl Into<String>, source: io::Error) -> Self {
        Self { context: context.into(), source }
    }
}

/// Stored bytes that fail their checksums or the journal's invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corruption in {file} at byte {offset}: {reason}")]
pub struct Corruption {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("the store at {path} is locked by another open store")]
    Locked { path: PathBuf },
    #[error("{0}; open with salvage to keep the valid prefix and set the rest aside")]
    Corrupt(#[from] Corruption),
    #[error("no store at {path} and create_if_missing is off")]
    Missing { path: PathBuf },
    #[error("{path} is not a shale store or has an unsupported format: {reason}")]
    Format { path: PathBuf, reason: String },
    /// The directory holds files but no store `META` (and is not a store
    /// whose creation was interrupted): nothing was changed. A store is
    /// created only in an empty or missing directory.
    #[error("{path} is not a shale store, refusing to touch it: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    /// The store's files do not belong together (a segment or keyset of
    /// another store, or one that disagrees with `META`): nothing was
    /// changed, not even with salvage.
    #[error("the files of the store at {path} do not belong together: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    /// Bytes of the journal cannot be read, however often they are tried
    /// (a latent sector error): nothing was changed.
    #[error("{file} is unreadable from byte {offset}: {reason}; open with salvage to keep the readable prefix and set the rest aside")]
    Unreadable { file: PathBuf, offset: u64, reason: String },
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    #[error("encryption setting mismatch: {reason}")]
    Encryption { reason: String },
    /// The keyset is missing, damaged or sealed under another key. (An I/O
    /// error while reading it is `Io`, like any other.)
    #[error("{0}")]
    Keyset(crate::keyset::KeysetError),
}

impl From<crate::keyset::KeysetError> for OpenError {
    fn from(e: crate::keyset::KeysetError) -> Self {
        match e {
            // An I/O error is an I/O error wherever it happens: retrying may
            // succeed. `Keyset` is for a keyset that is damaged.
            crate::keyset::KeysetError::Io(io) => OpenError::Io(io),
            damage => OpenError::Keyset(damage),
        }
    }
}

/// Why a shred failed.
#[derive(Debug, thiserror::Error)]
pub enum ShredError {
    #[error("{0}")]
    Invalid(InvalidInput),
    #[error("the store is not encrypted: there is no key to shred")]
    NotEncrypted,
    /// Publishing the keyset without the key failed: it may or may not be
    /// durable. The shred is not acknowledged; retry it (shred is
    /// idempotent).
    #[error("shred outcome unknown: {0}")]
    OutcomeUnknown(IoError),
    #[error("the store is closed")]
    Closed,
}

/// Why an append failed. Only `OutcomeUnknown` leaves any doubt: every other
/// variant means nothing of the batch was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("item {item:?}: {error}")]
    Invalid { item: Option<usize>, error: InvalidInput },
    #[error("item {item}: entity {entity} is at version {actual}, expected {expected}")]
    VersionConflict { item: usize, entity: String, expected: u64, actual: u64 },
    #[error("idempotency key {key:?} was used before for a different batch")]
    IdempotencyConflict { key: String },
    /// A gate denied an item; nothing of the batch was written.
    #[error("gate {gate:?} denied item {item}: {reason}")]
    Denied { gate: String, item: usize, reason: String },
    /// A gate panicked on an item; nothing of the batch was written and
    /// the writer carries on.
    #[error("gate {gate:?} failed on item {item}: {message}")]
    GateFailed { gate: String, item: usize, message: String },
    /// A gate asked the store for events it could not read (the disk
    /// failed under them, see [`ReadError::Io`] and [`ReadError::Damaged`]);
    /// nothing of the batch was written, and the writer carries on.
    #[error("item {item}: a gate could not read the store: {error}")]
    ReadFailed { item: usize, error: ReadError },
    /// Nothing of the batch reached the disk; retrying is safe.
    #[error("not committed: {0}")]
    Unavailable(IoError),
    /// The batch's bytes may or may not have reached the disk: after a crash
    /// it is either wholly present or wholly absent. Retry with the same
    /// idempotency key to resolve it without duplicating.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(IoError),
    #[error("the store is closed")]
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    /// The event's entity was shredded: its payload is gone for good.
    #[error("event {id} of entity {entity} was shredded")]
    Shredded { id: EventId, entity: String },
    /// The stored payload does not open: never returned as data.
    #[error("event {id} fails its integrity check: {reason}")]
    Integrity { id: EventId, reason: String },
    /// The event's bytes could not be read from its segment, however often
    /// they were tried (a failing disk). Nothing is returned as data.
    #[error("event {id} could not be read from {} (bytes {range:?}): {reason}", file.display())]
    Io { id: EventId, file: PathBuf, range: Range<u64>, reason: String },
    /// The event's frame on disk no longer checks (its checksum, or it is
    /// another event's frame): the disk damaged it after it was committed.
    /// Nothing is returned as data; a reopen finds the damage (with salvage,
    /// sets it aside and reports it).
    #[error("event {id} is damaged in {} (bytes {range:?}): {reason}", file.display())]
    Damaged { id: EventId, file: PathBuf, range: Range<u64>, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("the store's writer panicked (a bug; every later request was answered Closed): {0}")]
    WriterPanicked(String),
    /// Every acknowledged write is durable; the index checkpoint could not
    /// be published, so the next open reads the journal after the last one
    /// (or all of it).
    #[error("the index checkpoint was not written (nothing is lost; the next open reads more of the journal): {0}")]
    Checkpoint(IoError),
    /// Every acknowledged write is durable; a flush had failed (its
    /// batches were answered `OutcomeUnknown`) and the segment that records
    /// where the durable bytes end could not be started, so a later open
    /// may yet find that flush's batches, or not.
    #[error("the segment after a failed flush was not started (acknowledged writes are durable; the failed flush's batches may come back): {0}")]
    Segment(IoError),
}

/// The crate's error: any operation's error converts into it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Close(#[from] CloseError),
    #[error(transparent)]
    Shred(#[from] ShredError),
}

/// The message a caught panic carried, for typed errors and reports.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
