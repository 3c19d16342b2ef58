//! Every limit of the store, named in one place, with the relations between
//! them asserted at compile time.

/// Longest entity name, in bytes.
pub const ENTITY_LEN_MAX: usize = 256;
/// Longest scope name, in bytes.
pub const SCOPE_LEN_MAX: usize = 128;
/// Longest event kind, in bytes.
pub const KIND_LEN_MAX: usize = 128;
/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
/// Largest payload of one event, in bytes.
pub const PAYLOAD_LEN_MAX: usize = 1 << 20;
/// Most events in one batch.
pub const BATCH_EVENTS_MAX: usize = 10_000;
/// Most requests the writer takes into one group commit (one fsync).
pub const GROUP_REQUESTS_MAX: usize = 1_024;

/// Largest frame body: one event with every field at its maximum, plus room
/// for postcard's length prefixes and the fixed fields.
pub const FRAME_BODY_LEN_MAX: usize = PAYLOAD_LEN_MAX + ENTITY_LEN_MAX + SCOPE_LEN_MAX + KIND_LEN_MAX + 512;
/// Bytes of a frame header: body length (u32) then CRC-32C (u32).
pub const FRAME_HEADER_LEN: usize = 8;

/// Default size at which the writer starts a new segment.
pub const SEGMENT_SIZE_DEFAULT: u64 = 64 << 20;
/// Smallest segment size an option may ask for.
pub const SEGMENT_SIZE_MIN: u64 = 4 << 10;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;

/// Chunk in which recovery reads a segment.
pub const RECOVERY_READ_CHUNK: usize = 4 << 20;
/// Default bytes of a segment recovery holds and scans at a time
/// (`Options::scan_window`).
pub const SCAN_WINDOW_DEFAULT: usize = RECOVERY_READ_CHUNK;
/// Smallest scan window an option may ask for.
pub const SCAN_WINDOW_MIN: usize = 4 << 10;
/// How many times a failed read is tried before its bytes count as
/// unreadable.
pub const READ_ATTEMPTS: u32 = 4;
/// The granule to which recovery narrows an unreadable stretch down: bytes
/// before the first unreadable granule are kept, nothing is guessed.
pub const UNREADABLE_GRANULE: u64 = 512;

/// How far into a damaged `META` salvage looks for a whole, displaced META
/// record.
pub const META_SEARCH_LEN_MAX: u64 = 64 << 10;

/// Readers read segments in aligned blocks of this many bytes.
pub const READ_BLOCK_LEN: usize = 64 << 10;
/// The unit a block is first read in, when only part of it is asked for.
pub const READ_PAGE_LEN: usize = 4 << 10;
/// Blocks readers keep in memory (16 MiB).
pub const READ_CACHE_BLOCKS: usize = 256;
/// Segment files readers keep open at once.
pub const READ_FILES_OPEN_MAX: usize = 64;
/// Segments a store can number: an event's place in the index holds its
/// segment's number in 32 bits.
pub const SEGMENTS_MAX: u64 = u32::MAX as u64;

/// The pieces in which the index checkpoint is written and read.
pub const CHECKPOINT_IO_CHUNK: usize = 1 << 20;
/// The writer publishes a checkpoint when it starts a segment, once at
/// least this many segments (and at least half as many as the last
/// checkpoint covered) lie past the last one: a crash leaves at most about
/// a third of the journal to scan, and checkpoints, which grow with the
/// store, cost a bounded share of what is written.
pub const CHECKPOINT_SEGMENTS_MIN: u64 = 8;

/// Most events `read_from` returns in one call.
pub const READ_LIMIT_MAX: usize = 100_000;

const _: () = assert!(FRAME_BODY_LEN_MAX < u32::MAX as usize);
const _: () = assert!(SEGMENT_SIZE_MIN > SEGMENT_HEADER_LEN as u64);
const _: () = assert!(BATCH_EVENTS_MAX <= u32::MAX as usize);
const _: () = assert!(RECOVERY_READ_CHUNK > FRAME_BODY_LEN_MAX + FRAME_HEADER_LEN);
const _: () = assert!((RECOVERY_READ_CHUNK as u64).is_multiple_of(UNREADABLE_GRANULE));
const _: () = assert!(READ_ATTEMPTS >= 1);
const _: () = assert!(READ_BLOCK_LEN.is_multiple_of(READ_PAGE_LEN));
