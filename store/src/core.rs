//! The store's single-threaded core: open (with recovery) and commit. It
//! owns the environment and never spawns a thread or sleeps; the writer
//! thread in `shell.rs` runs it in production and the simulator's scheduler
//! runs it step by step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::disk::Disk;
use crate::env::{Clock, Entropy, Env};
use crate::error::{AppendError, IoError, OpenError};
use crate::journal::record::{
    encode_begin, encode_commit, encode_event, encode_idempotency, Begin, Commit, IdempotencyRecord,
};
use crate::journal::recover::{recover, RecoveryReport};
use crate::journal::writer::JournalWriter;
use crate::limits::{GROUP_REQUESTS_MAX, SEGMENT_SIZE_DEFAULT, SEGMENT_SIZE_MIN};
use crate::meta::{read_meta, write_meta, Meta};
use crate::model::{Batch, Payload, Receipt};
use crate::plan::{plan, receipts, PlannedGroup, Slot};
use crate::reader::Reader;
use crate::state::{IdempotencyEntry, State};

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
            #[cfg(feature = "canaries")]
            canary: crate::canary::Canary::None,
        }
    }
}

impl Options {
    /// True if the planted bug `canary` is switched on.
    #[cfg(feature = "canaries")]
    pub(crate) fn planted(&self, canary: crate::canary::Canary) -> bool {
        self.canary == canary
    }
}

pub const LOCK_NAME: &str = "LOCK";

pub struct Core<E: Env> {
    env: E,
    dir: PathBuf,
    journal: JournalWriter<E::Disk>,
    state: Arc<RwLock<State>>,
    _lock: <E::Disk as Disk>::Lock,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
}

impl<E: Env> Core<E> {
    /// Opens (or creates) the store in `dir`, recovering its journal.
    pub fn open(mut env: E, dir: &Path, options: &Options) -> Result<(Self, RecoveryReport), OpenError> {
        if options.segment_size < SEGMENT_SIZE_MIN {
            return Err(crate::error::InvalidInput::Option {
                reason: format!("segment_size {} is below the minimum {SEGMENT_SIZE_MIN}", options.segment_size),
            }
            .into());
        }
        let disk = env.disk();
        if !disk.exists(dir).map_err(io(format!("looking for {}", dir.display())))? {
            if !options.create_if_missing {
                return Err(OpenError::Missing { path: dir.to_owned() });
            }
            disk.create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent).map_err(io(format!("syncing {}", parent.display())))?;
            }
        }
        let lock = match disk.lock(&dir.join(LOCK_NAME)) {
            Ok(lock) => lock,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(OpenError::Locked { path: dir.to_owned() })
            }
            Err(e) => return Err(io(format!("locking {}", dir.display()))(e)),
        };
        let meta = match read_meta(env.disk(), dir)? {
            Some(meta) => meta,
            None if options.create_if_missing => {
                let meta = Meta { store_id: env.entropy().next_u64(), flags: 0 };
                write_meta(env.disk(), dir, &meta)?;
                meta
            }
            None => return Err(OpenError::Missing { path: dir.to_owned() }),
        };
        let recovered = recover(env.disk(), dir, meta.store_id, options)?;
        #[cfg_attr(not(feature = "canaries"), expect(unused_mut, reason = "planted only with canaries"))]
        let mut journal = match recovered.tail {
            Some(tail) => JournalWriter::resume(dir, meta.store_id, options.segment_size, tail),
            None => JournalWriter::empty(dir, meta.store_id, options.segment_size),
        };
        #[cfg(feature = "canaries")]
        journal.plant(options.canary);
        let core =
            Self { env, dir: dir.to_owned(), journal, state: Arc::new(RwLock::new(recovered.state)), _lock: lock };
        Ok((core, recovered.report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reader(&self) -> Reader {
        Reader::new(self.state.clone())
    }

    pub fn env_mut(&mut self) -> &mut E {
        &mut self.env
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
        let now_ns = self.env.clock().wall_ns();
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plan = plan(&state, batches, now_ns);
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
        if let Err(e) = self.journal.ready(self.env.disk()) {
            return groups.iter().map(|_| Err(AppendError::Unavailable(copy_io(&e)))).collect();
        }
        let (bytes, payloads) = self.encode(groups);
        if let Err(e) = self.journal.write_flush(self.env.disk(), &bytes) {
            return groups.iter().map(|_| Err(AppendError::OutcomeUnknown(copy_io(&e)))).collect();
        }
        self.journal.next_group += groups.len() as u64;
        let bytes = Arc::new(bytes);
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut payloads = payloads.into_iter();
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            for record in &group.records {
                let Some(range) = payloads.next() else { unreachable!("one payload range per record") };
                state.apply(record, Payload::new(bytes.clone(), range));
            }
            let count = group.records.len() as u32;
            if let Some((key, fingerprint)) = group.idempotency {
                state
                    .record_idempotency(key, IdempotencyEntry { fingerprint, first_global: group.first_global, count });
            }
            results.push(Ok(receipts(&state, group.first_global, count)));
        }
        drop(state);
        self.journal.rotate_if_full(self.env.disk());
        results
    }

    /// The frames of one flush, and where each event's payload lies in them.
    fn encode(&self, groups: &[PlannedGroup<'_>]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let size: usize = groups.iter().flat_map(|g| &g.records).map(|r| r.payload.len() + 128).sum();
        let mut buf = Vec::with_capacity(size + groups.len() * 64);
        let mut payloads = Vec::with_capacity(groups.iter().map(|g| g.records.len()).sum());
        let flush_count = groups.len() as u32;
        for (index, group) in groups.iter().enumerate() {
            let group_id = self.journal.next_group + index as u64;
            let event_count = group.records.len() as u32;
            let begin = Begin {
                group_id,
                flush: self.journal.next_flush,
                flush_index: index as u32,
                flush_count,
                event_count,
                first_global: group.first_global,
            };
            let mut group_crc = crc32c::crc32c(&encode_begin(&mut buf, &begin));
            if let Some((key, fingerprint)) = group.idempotency {
                let header = encode_idempotency(&mut buf, &IdempotencyRecord { key, fingerprint });
                group_crc = crc32c::crc32c_append(group_crc, &header);
            }
            for record in &group.records {
                let (header, payload) = encode_event(&mut buf, record);
                group_crc = crc32c::crc32c_append(group_crc, &header);
                payloads.push(payload);
            }
            encode_commit(&mut buf, &Commit { group_id, event_count, group_crc });
        }
        (buf, payloads)
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
