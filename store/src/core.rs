//! The store's single-threaded core: open (with recovery) and commit. It
//! owns the environment and never spawns a thread or sleeps; the writer
//! thread in `shell.rs` runs it in production and the simulator's scheduler
//! runs it step by step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::crypto::{MasterKey, NONCE_LEN};
use crate::disk::Disk;
use crate::env::{Clock, Entropy, Env};
use crate::error::{AppendError, CloseError, IoError};
use crate::fence::{KeyFence, WrappedKey};
use crate::gate::Gates;
use crate::journal::record::{
    chain_after, encode_begin, encode_commit, encode_event, encode_idempotency, encode_key, frame_crc, Begin, Commit,
    IdempotencyRecord, COMMIT_FRAME_LEN,
};
use crate::journal::scan::FlushPos;
use crate::journal::writer::JournalWriter;
use crate::limits::{GROUP_REQUESTS_MAX, SEGMENT_SIZE_DEFAULT};
use crate::meta::{FLAG_ENCRYPTED, FLAG_SEALED};
use crate::model::{Batch, Receipt};
use crate::plan::{plan, Context, PlannedGroup, Sealer, Slot};
use crate::reader::Reader;
use crate::state::{FrameLoc, IdempotencyEntry, JournalEnd, State};

mod layout;
mod open;
mod shred;

/// How to open a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Create the directory and an empty store if there is none.
    pub create_if_missing: bool,
    /// The writer starts a new segment once one reaches this many bytes.
    pub segment_size: u64,
    /// On corruption, open the longest valid prefix and move the rest into
    /// `salvage/` instead of failing. Off by default.
    pub salvage: bool,
    /// Per-entity payload encryption, chosen when the store is created.
    pub encryption: Encryption,
    /// Caller-defined checks run at commit time.
    pub gates: Gates,
    /// Read the whole journal on open, passing over the index checkpoint:
    /// after a read reported damage, so that recovery finds and reports it
    /// (salvage always does). Off by default.
    pub full_scan: bool,
    /// Publish the index checkpoint when a segment starts once this many
    /// segments lie past the last one (and at least half as many as it
    /// covered); 0: only when the store is closed. It is always published
    /// on close.
    pub checkpoint_every: u64,
    /// Recovery reads and scans a segment this many bytes at a time (a
    /// group longer than that is read whole): what an open holds of the
    /// journal's bytes, whatever the segment size. At least
    /// `SCAN_WINDOW_MIN` (4 KiB); 4 MiB by default.
    pub scan_window: usize,
    /// A planted bug to switch on (simulator canaries only).
    #[cfg(feature = "canaries")]
    pub canary: crate::canary::Canary,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            segment_size: SEGMENT_SIZE_DEFAULT,
            salvage: false,
            encryption: Encryption::Off,
            gates: Gates::default(),
            full_scan: false,
            checkpoint_every: crate::limits::CHECKPOINT_SEGMENTS_MIN,
            scan_window: crate::limits::SCAN_WINDOW_DEFAULT,
            #[cfg(feature = "canaries")]
            canary: crate::canary::Canary::None,
        }
    }
}

/// Whether payloads are sealed, chosen when the store is created and
/// recorded in its `META`; opening with another setting is an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    #[default]
    Off,
    /// Each entity's payloads sealed with its own AES-256-GCM-SIV key. With
    /// a master key the keyset file is sealed too; without one, the keys sit
    /// in the store's directory beside the data.
    PerEntity { master_key: Option<MasterKey> },
}

impl Encryption {
    fn flags(&self) -> u32 {
        match self {
            Encryption::Off => 0,
            Encryption::PerEntity { master_key: None } => FLAG_ENCRYPTED,
            Encryption::PerEntity { master_key: Some(_) } => FLAG_ENCRYPTED | FLAG_SEALED,
        }
    }

    fn master_key(&self) -> Option<&MasterKey> {
        match self {
            Encryption::PerEntity { master_key } => master_key.as_ref(),
            Encryption::Off => None,
        }
    }
}

impl Options {
    /// The planted bug these options switch on.
    pub(crate) fn planted(&self) -> crate::Planted {
        #[cfg(feature = "canaries")]
        return crate::Planted::new(self.canary);
        #[cfg(not(feature = "canaries"))]
        crate::Planted::default()
    }
}

pub const LOCK_NAME: &str = "LOCK";

pub struct Core<E: Env> {
    env: E,
    dir: PathBuf,
    journal: JournalWriter<E::Disk>,
    state: Arc<RwLock<State>>,
    /// Key management; `None` for a plaintext store.
    fence: Option<KeyFence>,
    gates: Gates,
    planted: crate::Planted,
    nonces: Nonces,
    /// META's flags (a checkpoint records them).
    flags: u32,
    /// Where the journal the last checkpoint covers ends (one written, or
    /// the one open used).
    checkpointed: Option<JournalEnd>,
    checkpoint_every: u64,
    _lock: <E::Disk as Disk>::Lock,
}

/// One nonce for a rare sealing (a keyset copy, a key rewrapped by a shred).
fn random_nonce(entropy: &mut impl Entropy) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut nonce);
    nonce
}

/// Nonces drawn from the environment's entropy this many at a time: one
/// draw (a system call, for the real entropy) per 256 sealed events rather
/// than one each.
const NONCES_PER_DRAW: usize = 256;

/// Random nonces, drawn from the entropy in bulk.
struct Nonces {
    buf: Box<[u8; NONCE_LEN * NONCES_PER_DRAW]>,
    /// Bytes of `buf` already handed out.
    used: usize,
}

impl Nonces {
    fn new() -> Self {
        Self { buf: Box::new([0; NONCE_LEN * NONCES_PER_DRAW]), used: NONCE_LEN * NONCES_PER_DRAW }
    }

    fn next(&mut self, entropy: &mut impl Entropy) -> [u8; NONCE_LEN] {
        if self.used == self.buf.len() {
            entropy.fill(&mut self.buf[..]);
            self.used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&self.buf[self.used..self.used + NONCE_LEN]);
        self.used += NONCE_LEN;
        nonce
    }
}

/// The groups of one flush, encoded: the bytes, where each event's frame
/// lies in them (offset, length, body CRC), and the keys that become the
/// store's once they are durable.
struct Encoded {
    bytes: Vec<u8>,
    frames: Vec<(usize, u32, u32)>,
    settled: Vec<WrappedKey>,
}

impl<E: Env> Core<E> {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reader(&self) -> Reader {
        Reader::new(self.state.clone(), self.planted)
    }

    /// The segment the writer appends to.
    pub fn segment(&self) -> u64 {
        self.journal.segment()
    }

    /// Commits `batches` as one flush: each batch is its own all-or-nothing
    /// group, all groups go out in one write and one sync, and the results
    /// come back in order only after the sync. Nothing becomes visible to
    /// readers before it is durable.
    ///
    /// At most [`GROUP_REQUESTS_MAX`] batches go into one flush.
    pub fn commit(&mut self, batches: &[Batch]) -> Vec<Result<Vec<Receipt>, AppendError>> {
        assert!(batches.len() <= GROUP_REQUESTS_MAX, "{} requests in one flush", batches.len());
        // Before planning: the epoch is part of every id, hash and seal.
        self.renew_epoch_after_failed_flush();
        let now_ns = self.env.clock().wall_ns();
        let shared = self.state.clone();
        let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale_gates = self.planted.is(canary!(StaleGateSnapshot));
        let misresolve_causes = self.planted.is(canary!(MisresolvedCause));
        let unchained_hash = self.planted.is(canary!(UnchainedHash));
        let gates = &self.gates;
        let epoch = self.journal.epoch;
        let plan = match self.fence.as_mut() {
            None => plan(
                &state,
                batches,
                &mut Context { now_ns, epoch, sealer: None, gates, stale_gates, misresolve_causes, unchained_hash },
            ),
            Some(fence) => {
                fence.mint_for(&state, batches, self.env.entropy());
                let fence = &*fence;
                let key_of = |entity: &str| fence.key_of(&state, entity);
                let (entropy, nonces) = (self.env.entropy(), &mut self.nonces);
                let mut nonce = || nonces.next(entropy);
                let sealer = Some(&mut Sealer { key_of: &key_of, nonce: &mut nonce });
                let context = Context { now_ns, epoch, sealer, gates, stale_gates, misresolve_causes, unchained_hash };
                plan(&state, batches, &mut { context })
            }
        };
        drop(state);
        let mut written: Vec<Result<Vec<Receipt>, AppendError>> = Vec::new();
        if !plan.groups.is_empty() {
            written = self.write_groups(&plan.groups);
        }
        let mut written = written.into_iter().map(Some).collect::<Vec<_>>();
        let mut results: Vec<Result<Vec<Receipt>, AppendError>> = Vec::with_capacity(batches.len());
        for slot in plan.slots {
            let result = match slot {
                Slot::Done(result) => result,
                Slot::Write(group) => {
                    let Some(result) = written[group].take() else { unreachable!("group {group} answered twice") };
                    result
                }
                Slot::SameAs(earlier) => clone_result(&results[earlier]),
            };
            results.push(result);
        }
        results
    }

    /// Writes, syncs and applies `groups`; one result per group.
    fn write_groups(&mut self, groups: &[PlannedGroup<'_>]) -> Vec<Result<Vec<Receipt>, AppendError>> {
        if let Err(e) = self.journal.ready(self.env.disk()).and_then(|()| self.publish_if_dirty()) {
            return groups.iter().map(|_| Err(AppendError::Unavailable(copy_io(&e)))).collect();
        }
        let encoded = self.encode(groups);
        let (segment, base) = (self.journal.segment(), self.journal.end());
        if let Err(e) = self.journal.write_flush(self.env.disk(), &encoded.bytes) {
            return groups.iter().map(|_| Err(AppendError::OutcomeUnknown(copy_io(&e)))).collect();
        }
        self.journal.next_group += groups.len() as u64;
        let end = self.journal_end_after(segment, base, &encoded.bytes, groups.len() as u32);
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.set_journal_end(end);
        if let Some(fence) = self.fence.as_mut() {
            fence.settle(&mut state, &encoded.settled);
        }
        let mut frames = encoded.frames.into_iter();
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            for record in &group.records {
                let Some((at, len, crc)) = frames.next() else { unreachable!("one frame per record") };
                let loc = FrameLoc { segment, offset: base + at as u64, len, crc };
                state.apply(record, loc, self.journal.epoch);
            }
            let count = group.records.len() as u32;
            if let Some((key, fingerprint)) = group.idempotency {
                state
                    .record_idempotency(key, IdempotencyEntry { fingerprint, first_global: group.first_global, count });
            }
            // The receipts from the records just applied (a replayed
            // idempotency key looks its receipts up in the state instead).
            let receipts = group.records.iter().map(|r| Receipt {
                id: state.id_of(r.global_seq),
                entity_seq: r.entity_seq,
                global_seq: r.global_seq,
            });
            results.push(Ok(receipts.collect()));
        }
        drop(state);
        self.rotate_if_full();
        results
    }

    /// Where the journal ends after the flush of `groups` groups, `bytes`,
    /// written at `base` of `segment` (the writer has counted it).
    pub(crate) fn journal_end_after(&self, segment: u64, base: u64, bytes: &[u8], groups: u32) -> JournalEnd {
        let Ok(commit) = bytes[bytes.len() - COMMIT_FRAME_LEN..].try_into() else {
            unreachable!("a flush ends with a commit frame")
        };
        JournalEnd {
            segment,
            end: base + bytes.len() as u64,
            group_id: self.journal.next_group - 1,
            flush: FlushPos { flush: self.journal.next_flush - 1, index: groups - 1, count: groups },
            commit,
        }
    }

    /// Starts the next segment once this one is full, and publishes the
    /// index checkpoint when it is due (see [`Options::checkpoint_every`]).
    /// A checkpoint that fails costs nothing but a longer next open: the
    /// journal holds everything it would have.
    pub(crate) fn rotate_if_full(&mut self) {
        let before = self.journal.segment();
        self.journal.rotate_if_full(self.env.disk());
        let segment = self.journal.segment();
        let covered = self.checkpointed.map_or(0, |end| end.segment + 1);
        let due = covered + self.checkpoint_every.max(covered / 2);
        if segment != before && self.checkpoint_every > 0 && segment >= due {
            let _ = self.checkpoint();
        }
    }

    /// What closing the store does once nothing is queued: after a flush
    /// whose outcome is unknown, the next segment is started first, as
    /// the next commit would have (its header records where the durable
    /// bytes end: the failed bytes are never read again, whatever a later
    /// open finds in the page cache or on the medium); then the index
    /// checkpoint is published.
    pub fn close(&mut self) -> Result<(), CloseError> {
        self.journal.ready(self.env.disk()).map_err(CloseError::Segment)?;
        self.checkpoint().map_err(CloseError::Checkpoint)
    }

    /// Publishes the index checkpoint (`journal/checkpoint.rs`): the next
    /// open reads it and only the journal after it. Not while the keyset's
    /// last publish is in doubt (its keys' image would be wrapped under
    /// keys that may not be durable): it is published again first. Nothing
    /// is written if the last checkpoint covers the whole journal already.
    pub fn checkpoint(&mut self) -> Result<(), IoError> {
        self.publish_if_dirty()?;
        let shared = self.state.clone();
        let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.journal_end().is_some() && state.journal_end() == self.checkpointed {
            return Ok(());
        }
        let entropy = self.env.entropy();
        let keys = state.keys().map(|keys| {
            let generations = std::array::from_fn(|bucket| keys.keyset().bucket(bucket).generation);
            (keys.image(|| random_nonce(entropy)), generations)
        });
        let extras = crate::journal::checkpoint::Extras { headers: self.journal.headers(), keys };
        crate::journal::checkpoint::publish(self.env.disk(), &self.dir, self.flags, &state, &extras)?;
        self.checkpointed = state.journal_end();
        Ok(())
    }

    /// After a flush whose outcome is unknown, the writer uses its
    /// positions again, and its bytes may yet come back: past the end the
    /// next segment's header records, they are read again if that header
    /// is lost. Events written from then on take a fresh epoch, so an id
    /// never names two events (a client that guessed the failed events' ids
    /// finds nothing under them, or the failed events themselves).
    pub(crate) fn renew_epoch_after_failed_flush(&mut self) {
        if self.journal.take_failed_flush() {
            let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.journal.epoch = open::fresh_epoch(self.env.entropy(), &state, self.journal.epoch);
        }
    }

    /// The frames of one flush: each group is its begin record, its
    /// idempotency record, the key records of the keys it mints (ahead of
    /// every event sealed with them), its events and its commit record.
    fn encode(&mut self, groups: &[PlannedGroup<'_>]) -> Encoded {
        let (keys, settled) = match self.fence.as_mut() {
            None => (Vec::new(), Vec::new()),
            Some(fence) => {
                let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                fence.records_for(&state, groups.iter().map(|g| g.records.as_slice()), self.env.entropy())
            }
        };
        let mut follows = self.follows();
        let size: usize = groups.iter().flat_map(|g| &g.records).map(|r| r.payload.len() + 128).sum();
        let mut buf = Vec::with_capacity(size + groups.len() * 64);
        let mut frames = Vec::with_capacity(groups.iter().map(|g| g.records.len()).sum());
        let flush_count = groups.len() as u32;
        for (index, group) in groups.iter().enumerate() {
            let group_id = self.journal.next_group + index as u64;
            let event_count = group.records.len() as u32;
            let begin = Begin {
                group_id,
                epoch: self.journal.epoch,
                flush: self.journal.next_flush,
                flush_index: index as u32,
                flush_count,
                event_count,
                first_global: group.first_global,
                follows,
            };
            let mut group_crc = crc32c::crc32c(&encode_begin(&mut buf, &begin));
            if let Some((key, fingerprint)) = group.idempotency {
                let header = encode_idempotency(&mut buf, &IdempotencyRecord { key, fingerprint });
                group_crc = crc32c::crc32c_append(group_crc, &header);
            }
            for wrapped in keys.get(index).into_iter().flatten() {
                group_crc = crc32c::crc32c_append(group_crc, &encode_key(&mut buf, &wrapped.record()));
            }
            for record in &group.records {
                let at = buf.len();
                let (header, _) = encode_event(&mut buf, record);
                group_crc = crc32c::crc32c_append(group_crc, &header);
                let crc = frame_crc(&header);
                frames.push((at, (buf.len() - at) as u32, crc));
            }
            let commit = encode_commit(&mut buf, &Commit { group_id, event_count, group_crc });
            follows = frame_crc(&commit);
        }
        Encoded { bytes: buf, frames, settled }
    }

    /// What the next group written records it follows: the commit frame
    /// of the last durable group (the journal's end in the state).
    pub(crate) fn follows(&self) -> u32 {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.journal_end().map_or(0, |end| chain_after(&end.commit))
    }
}

/// An I/O error told to several callers (io::Error is not Clone).
fn copy_io(e: &IoError) -> IoError {
    IoError::new(e.context.clone(), std::io::Error::new(e.source.kind(), e.source.to_string()))
}

fn clone_result(result: &Result<Vec<Receipt>, AppendError>) -> Result<Vec<Receipt>, AppendError> {
    match result {
        Ok(receipts) => Ok(receipts.clone()),
        Err(AppendError::OutcomeUnknown(e)) => Err(AppendError::OutcomeUnknown(copy_io(e))),
        Err(AppendError::Unavailable(e)) => Err(AppendError::Unavailable(copy_io(e))),
        Err(other) => unreachable!("a request with an earlier twin is only written or failed by I/O, not {other}"),
    }
}
