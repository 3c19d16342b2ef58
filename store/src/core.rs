//! The store's single-threaded core: open (with recovery) and commit. It
//! owns the environment and never spawns a thread or sleeps; the writer
//! thread in `shell.rs` runs it in production and the simulator's scheduler
//! runs it step by step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::crypto::{MasterKey, NONCE_LEN};
use crate::disk::Disk;
use crate::env::{Clock, Entropy, Env};
use crate::error::{AppendError, Corruption, IoError, OpenError, ShredError};
use crate::fence::KeyFence;
use crate::gate::Gates;
use crate::journal::record::{
    encode_begin, encode_commit, encode_event, encode_idempotency, encode_shred, Begin, Commit, IdempotencyRecord,
    ShredRecord,
};
use crate::journal::recover::{analyze, RecoveryReport};
use crate::journal::writer::JournalWriter;
use crate::keyset::{publish_keyset, read_keyset, KeyEntry, Keyset, KEYS_NAME};
use crate::limits::{GROUP_REQUESTS_MAX, SEGMENT_SIZE_DEFAULT, SEGMENT_SIZE_MIN};
use crate::meta::{read_meta, write_meta, Meta, FLAG_ENCRYPTED, FLAG_SEALED};
use crate::model::{Batch, Payload, Receipt, ShredReceipt};
use crate::plan::{plan, receipts, Context, PlannedGroup, Sealer, Slot};
use crate::reader::Reader;
use crate::state::{IdempotencyEntry, State};

mod layout;

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
    /// Key management; `None` for a plaintext store.
    fence: Option<KeyFence>,
    gates: Gates,
    #[cfg(feature = "canaries")]
    canary: crate::canary::Canary,
    _lock: <E::Disk as Disk>::Lock,
}

fn describe(flags: u32) -> &'static str {
    match (flags & FLAG_ENCRYPTED != 0, flags & FLAG_SEALED != 0) {
        (false, _) => "encryption off",
        (true, false) => "per-entity encryption",
        (true, true) => "per-entity encryption under a master key",
    }
}

/// Takes the store's lock (creating the lock file if needed).
fn lock_store<D: Disk>(disk: &mut D, dir: &Path) -> Result<D::Lock, OpenError> {
    match disk.lock(&dir.join(LOCK_NAME)) {
        Ok(lock) => Ok(lock),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(OpenError::Locked { path: dir.to_owned() }),
        Err(e) => Err(io(format!("locking {}", dir.display()))(e)),
    }
}

/// Creates a store in `dir`, which holds nothing that could be data: the
/// keyset (if encrypted), then segment 0, then `META` last, so that a store
/// with `META` always has both.
fn create_store<E: Env>(env: &mut E, dir: &Path, options: &Options) -> Result<(), OpenError> {
    let store_id = loop {
        let id = env.entropy().next_u64();
        if id != 0 {
            break id;
        }
    };
    let meta = Meta { store_id, flags: options.encryption.flags() };
    if meta.flags & FLAG_ENCRYPTED != 0 {
        let nonce = random_nonce(env.entropy());
        let empty = Keyset::default().encode(store_id, options.encryption.master_key(), nonce);
        publish_keyset(env.disk(), dir, &empty).map_err(OpenError::Io)?;
    }
    let mut first = JournalWriter::<E::Disk>::empty(dir, store_id, options.segment_size, 1);
    first.ready(env.disk()).map_err(OpenError::Io)?;
    drop(first);
    write_meta(env.disk(), dir, &meta)
}

/// An epoch for a new writer session: never 0, and none that committed an
/// event still in the store. (An epoch whose events were all lost may come
/// again, by a chance of one in four billion.)
fn fresh_epoch(entropy: &mut impl Entropy, state: &State) -> u32 {
    loop {
        let epoch = entropy.next_u64() as u32;
        if epoch != 0 && state.epochs().all(|e| e != epoch) {
            return epoch;
        }
    }
}

/// A keyset that belongs to another store is a mismatch of the store's
/// files, not damage: salvage cannot help and nothing is touched.
fn keyset_refusal(dir: &Path, e: crate::keyset::KeysetError) -> OpenError {
    match e {
        crate::keyset::KeysetError::Foreign(reason) => OpenError::Mismatch { path: dir.join(KEYS_NAME), reason },
        other => other.into(),
    }
}

fn random_nonce(entropy: &mut impl Entropy) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    entropy.fill(&mut nonce);
    nonce
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
}

impl<E: Env> Core<E> {
    /// Opens (or creates) the store in `dir`, recovering its journal.
    ///
    /// Nothing is written before the directory is understood: a store is
    /// created only in a missing or empty directory (or one holding nothing
    /// but a creation that was interrupted before it could hold data); a
    /// directory with other files and no `META`, or whose files do not
    /// belong together, is refused as it is. Recovery's cuts and salvage
    /// happen only after the journal and the keyset were read and accepted.
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
        // Refuse a foreign directory before the lock file is made in it,
        // and decide again under the lock.
        layout::holds_store(disk, dir)?;
        let lock = lock_store(disk, dir)?;
        if !layout::holds_store(env.disk(), dir)? {
            if !options.create_if_missing {
                return Err(OpenError::Missing { path: dir.to_owned() });
            }
            create_store(&mut env, dir, options)?;
        }
        let flags = options.encryption.flags();
        let Some(meta) = read_meta(env.disk(), dir)? else { unreachable!("the store holds META") };
        if meta.flags != flags {
            return Err(OpenError::Encryption {
                reason: format!("the store was created with {}, not {}", describe(meta.flags), describe(flags)),
            });
        }
        let master = options.encryption.master_key();
        let mut analysis = analyze(env.disk(), dir, meta.store_id, options)?;
        if let Some(refusal) = analysis.refusal().filter(|_| !options.salvage) {
            return Err(refusal);
        }
        let keyset = match flags & FLAG_ENCRYPTED {
            0 => None,
            _ => Some(read_keyset(env.disk(), dir, meta.store_id, master).map_err(|e| keyset_refusal(dir, e))?),
        };
        analysis.state.set_keyset(keyset);
        analysis.state.check_keys().map_err(|(global, reason)| Corruption {
            file: dir.join(KEYS_NAME),
            offset: 0,
            reason: format!("event {global}: {reason}"),
        })?;
        // The names this open builds on (META, the keyset, segments) may be
        // visible without being durable, if an earlier directory fsync in
        // this process failed: make them durable before anything is added.
        env.disk().sync_dir(dir).map_err(io(format!("syncing {}", dir.display())))?;
        let recovered = analysis.apply(env.disk(), dir, options.salvage)?;
        let epoch = fresh_epoch(env.entropy(), &recovered.state);
        let fence = (flags & FLAG_ENCRYPTED != 0).then(|| KeyFence::new(master.cloned()));
        #[cfg_attr(not(feature = "canaries"), expect(unused_mut, reason = "planted only with canaries"))]
        let mut journal = match recovered.tail {
            Some(tail) => JournalWriter::resume(dir, meta.store_id, options.segment_size, epoch, tail),
            None => JournalWriter::empty(dir, meta.store_id, options.segment_size, epoch),
        };
        #[cfg(feature = "canaries")]
        journal.plant(options.canary);
        let core = Self {
            env,
            dir: dir.to_owned(),
            journal,
            state: Arc::new(RwLock::new(recovered.state)),
            fence,
            gates: options.gates.clone(),
            #[cfg(feature = "canaries")]
            canary: options.canary,
            _lock: lock,
        };
        Ok((core, recovered.report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reader(&self) -> Reader {
        Reader::new(self.state.clone())
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
        let shared = self.state.clone();
        let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        #[cfg(feature = "canaries")]
        let (stale_gates, misresolve_causes) = (
            self.canary == crate::canary::Canary::StaleGateSnapshot,
            self.canary == crate::canary::Canary::MisresolvedCause,
        );
        #[cfg(not(feature = "canaries"))]
        let (stale_gates, misresolve_causes) = (false, false);
        let gates = &self.gates;
        let epoch = self.journal.epoch;
        let plan = match self.fence.as_mut() {
            None => plan(
                &state,
                batches,
                &mut Context { now_ns, epoch, sealer: None, gates, stale_gates, misresolve_causes },
            ),
            Some(fence) => {
                fence.mint_for(&state, batches, self.env.entropy());
                let fence = &*fence;
                let key_of = |entity: &str| fence.key_of(&state, entity);
                let entropy = self.env.entropy();
                let mut nonce = || random_nonce(entropy);
                let sealer = Some(&mut Sealer { key_of: &key_of, nonce: &mut nonce });
                plan(&state, batches, &mut Context { now_ns, epoch, sealer, gates, stale_gates, misresolve_causes })
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
        if let Err(e) = self.journal.ready(self.env.disk()) {
            return groups.iter().map(|_| Err(AppendError::Unavailable(copy_io(&e)))).collect();
        }
        if let Err(e) = self.fence_keys() {
            return groups.iter().map(|_| Err(AppendError::Unavailable(copy_io(&e)))).collect();
        }
        let (bytes, payloads) = self.encode(groups);
        if let Err(e) = self.journal.write_flush(self.env.disk(), &bytes) {
            return groups.iter().map(|_| Err(AppendError::OutcomeUnknown(copy_io(&e)))).collect();
        }
        self.journal.next_group += groups.len() as u64;
        let bytes = Arc::new(bytes);
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(fence) = self.fence.as_mut() {
            fence.settle(&mut state);
        }
        let mut payloads = payloads.into_iter();
        let mut results = Vec::with_capacity(groups.len());
        for group in groups {
            for record in &group.records {
                let Some(range) = payloads.next() else { unreachable!("one payload range per record") };
                state.apply(record, Payload::new(bytes.clone(), range), self.journal.epoch);
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

    /// The durability fence: publishes the keyset holding every key the
    /// flush needs before any of its frames is written.
    fn fence_keys(&mut self) -> Result<(), IoError> {
        let Some(fence) = self.fence.as_mut() else { return Ok(()) };
        #[cfg(feature = "canaries")]
        if self.canary == crate::canary::Canary::KeysetAfterFrames {
            // Planted bug: the keyset goes out with some later commit.
            return Ok(());
        }
        if !fence.dirty() {
            return Ok(());
        }
        let nonce = random_nonce(self.env.entropy());
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        fence.publish_if_dirty(self.env.disk(), &self.dir, &state, nonce)
    }

    /// Shreds `entity`: publishes the keyset without its key, and only then
    /// acknowledges; a marker in the journal records the shred. Reads of
    /// the entity's earlier events return `Shredded` from then on, and a
    /// later append gets a new key generation. Shredding an entity with no
    /// key (never written, or already shredded) succeeds and changes
    /// nothing.
    pub fn shred(&mut self, entity: &str) -> Result<ShredReceipt, ShredError> {
        crate::model::validate_name("entity", entity, crate::limits::ENTITY_LEN_MAX).map_err(ShredError::Invalid)?;
        let Some(fence) = self.fence.as_mut() else { return Err(ShredError::NotEncrypted) };
        #[cfg(feature = "canaries")]
        let lazily = self.canary == crate::canary::Canary::ShredAckBeforeKeyset;
        #[cfg(not(feature = "canaries"))]
        let lazily = false;
        let shared = self.state.clone();
        let state = shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = match state.keyset().and_then(|k| k.entry(entity)) {
            Some(entry) if entry.key.is_none() => Some(entry.generation),
            _ => None,
        };
        let nonce = random_nonce(self.env.entropy());
        let shredded = fence
            .shred(self.env.disk(), &self.dir, &state, entity, nonce, lazily)
            .map_err(ShredError::OutcomeUnknown)?;
        drop(state);
        let Some(generation) = shredded else {
            return Ok(ShredReceipt { entity: entity.to_owned(), generation: generation.unwrap_or(0) });
        };
        let mut state = shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(keyset) = state.keyset_mut() {
            keyset.insert(entity, KeyEntry { generation, key: None });
        }
        drop(state);
        self.write_shred_marker(entity, generation);
        Ok(ShredReceipt { entity: entity.to_owned(), generation })
    }

    /// Records a shred in the journal. The keyset is the authority (the
    /// shred is durable once it is published), so a marker that fails to
    /// reach the disk costs only the record of when.
    fn write_shred_marker(&mut self, entity: &str, generation: u32) {
        if self.journal.ready(self.env.disk()).is_err() {
            return;
        }
        let first_global = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).last_global() + 1;
        let group_id = self.journal.next_group;
        let begin = Begin {
            group_id,
            epoch: self.journal.epoch,
            flush: self.journal.next_flush,
            flush_index: 0,
            flush_count: 1,
            event_count: 0,
            first_global,
        };
        let mut buf = Vec::with_capacity(128);
        let mut group_crc = crc32c::crc32c(&encode_begin(&mut buf, &begin));
        group_crc = crc32c::crc32c_append(group_crc, &encode_shred(&mut buf, &ShredRecord { entity, generation }));
        encode_commit(&mut buf, &Commit { group_id, event_count: 0, group_crc });
        if self.journal.write_flush(self.env.disk(), &buf).is_ok() {
            self.journal.next_group += 1;
            self.journal.rotate_if_full(self.env.disk());
        }
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
                epoch: self.journal.epoch,
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
