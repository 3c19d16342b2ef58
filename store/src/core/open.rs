//! Opening a store: understand the directory, create a store only where
//! nothing could be data, read `META`, the keyset and the journal, and only
//! then carry out recovery's cuts and salvage.

use std::path::Path;

use super::layout::{self, Layout};
use super::{random_nonce, Core, Options, LOCK_NAME};
use crate::disk::{Disk, ReadAt};
use crate::env::{Entropy, Env};
use crate::error::{Corruption, IoError, OpenError};
use crate::fence::{random_key, KeyFence};
use crate::journal::read::read_retrying;
use crate::journal::record::{decode_body, read_frame, Record};
use crate::journal::recover::{analyze, copy_aside, move_aside, salvage_dir, RecoveryReport};
use crate::journal::segment::{parse_segment_name, SegmentHeader};
use crate::journal::writer::JournalWriter;
use crate::keys::StoreKeys;
use crate::keyset::{publish_keyset, read_keyset, Keyset, KeysetError, KeysetRead, KEYS_COPY_NAME, KEYS_NAME};
use crate::limits::{SCAN_WINDOW_MIN, SEGMENT_HEADER_LEN, SEGMENT_SIZE_MIN};
use crate::meta::{read_meta, write_meta, Meta, FLAG_ENCRYPTED, FLAG_SEALED, META_LEN, META_NAME};
use crate::model::store_tag;
use crate::state::State;

fn io(context: String) -> impl FnOnce(std::io::Error) -> OpenError {
    move |e| OpenError::Io(IoError::new(context, e))
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

/// Makes the salvage directory's entries durable, if it exists, before
/// anything syncs the store's directory. An earlier open may have moved a
/// file into it and failed (or lost power) before syncing it: syncing the
/// store's directory first would make the file's departure durable while
/// its arrival was not, and a crash would lose it altogether.
fn settle_salvage<D: Disk>(disk: &mut D, dir: &Path) -> Result<(), OpenError> {
    let aside = dir.join(crate::journal::recover::SALVAGE_DIR);
    if disk.exists(&aside).map_err(io(format!("looking for {}", aside.display())))? {
        disk.sync_dir(&aside).map_err(io(format!("syncing {}", aside.display())))?;
    }
    Ok(())
}

/// Creates a store in `dir`, which holds nothing that could be data: the
/// keyset (if encrypted), then segment 0, then `META` last, so that a store
/// with `META` always has both.
fn create_store<E: Env>(env: &mut E, dir: &Path, options: &Options) -> Result<(), OpenError> {
    let store_id = fresh_store_id(env.entropy());
    let meta = Meta { store_id, flags: options.encryption.flags() };
    if meta.flags & FLAG_ENCRYPTED != 0 {
        let keyset = Keyset::fresh(|| random_key(env.entropy()));
        let nonce = random_nonce(env.entropy());
        let bytes = keyset.encode(store_id, options.encryption.master_key(), nonce);
        publish_keyset(env.disk(), dir, &bytes).map_err(OpenError::Io)?;
    }
    let mut first = JournalWriter::<E::Disk>::empty(dir, store_id, options.segment_size, 1);
    first.ready(env.disk()).map_err(OpenError::Io)?;
    drop(first);
    write_meta(env.disk(), dir, &meta)
}

/// An epoch for a new writer session: never 0, not `retired` (the one a
/// failed flush used), and none that committed an event still in the
/// store. (An epoch whose events were all lost may come again, by a chance
/// of one in four billion.)
pub(crate) fn fresh_epoch(entropy: &mut impl Entropy, state: &State, retired: u32) -> u32 {
    loop {
        let epoch = entropy.next_u64() as u32;
        if epoch != 0 && epoch != retired && state.epochs().all(|e| e != epoch) {
            return epoch;
        }
    }
}

/// A partial store (store files, no `META`) is refused without salvage.
fn partial_refusal(dir: &Path, layout: Layout, salvage: bool) -> Result<Layout, OpenError> {
    match layout {
        Layout::Partial(found) if !salvage => Err(OpenError::NotAStore {
            path: dir.to_owned(),
            reason: format!(
                "it has no META but holds {}; nothing was changed (open with salvage to rebuild META from the segments)",
                found.join(", ")
            ),
        }),
        other => Ok(other),
    }
}

/// Salvage of a partial store that no segment header names: what is there
/// is the leftover of a creation that never finished (or of a store whose
/// every header is gone); it is set aside, and a store is created afresh.
/// False if some segment header names a store (META will be rebuilt).
fn set_leftovers_aside<E: Env>(env: &mut E, dir: &Path, report: &mut RecoveryReport) -> Result<bool, OpenError> {
    if store_id_from_segments(env.disk(), dir)?.is_some() {
        return Ok(false);
    }
    let names = env.disk().list(dir).map_err(io(format!("listing {}", dir.display())))?;
    let aside = salvage_dir(env.disk(), dir)?;
    for name in names.iter().filter(|n| *n != LOCK_NAME && *n != crate::journal::recover::SALVAGE_DIR) {
        move_aside(env.disk(), dir, &aside, &dir.join(name), report)?;
    }
    Ok(true)
}

/// The store id the first readable segment header names.
fn store_id_from_segments<D: Disk>(disk: &mut D, dir: &Path) -> Result<Option<u64>, OpenError> {
    let names = disk.list(dir).map_err(io(format!("listing {}", dir.display())))?;
    for name in names.iter().filter(|n| parse_segment_name(n).is_some()) {
        let Ok(file) = disk.open_read(&dir.join(name)) else { continue };
        if let Some(header) = read_retrying(&file, 0, SEGMENT_HEADER_LEN).ok().and_then(|b| SegmentHeader::decode(&b)) {
            return Ok(Some(header.store_id));
        }
    }
    Ok(None)
}

/// Frames, and bytes, of the first segment looked at for [`writer_tag`].
const WRITER_TAG_FRAMES_MAX: usize = 4_096;
const WRITER_TAG_READ_MAX: u64 = 1 << 20;

/// The store tag of the store that wrote the first segment's events, as
/// their own-id correlations show it (an event with no correlation given
/// and no cause is correlated by its own id, which carries the tag of the
/// store that committed it); `None` if no such event is found. It tells a
/// stale segment header (left by an aborted creation, or a lost write) from
/// a stale META when the two disagree.
fn writer_tag<D: Disk>(disk: &mut D, dir: &Path) -> Option<u32> {
    let names = disk.list(dir).ok()?;
    let first = names.iter().filter_map(|n| parse_segment_name(n)).min()?;
    let file = disk.open_read(&dir.join(crate::journal::segment::segment_name(first))).ok()?;
    let len = file.len().ok()?.min(WRITER_TAG_READ_MAX);
    let (bytes, _) = crate::journal::read::read_range(&file, 0..len);
    let mut at = SEGMENT_HEADER_LEN;
    let mut epoch = None;
    for _ in 0..WRITER_TAG_FRAMES_MAX {
        let Ok((_, body)) = read_frame(bytes.get(at..)?) else { return None };
        at += crate::limits::FRAME_HEADER_LEN + body.len();
        match decode_body(body) {
            Ok(Record::Begin(begin)) => epoch = Some(begin.epoch),
            Ok(Record::Event(event)) => {
                let own = (event.correlation >> 64) as u32 == epoch? && event.correlation as u64 == event.global_seq;
                if own {
                    return Some((event.correlation >> 96) as u32);
                }
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// `META` as read; with salvage, rebuilt if it is missing, damaged or
/// unreadable (with why). Everything in it is repeated elsewhere: the store
/// id in every segment header and in the keyset, the encryption setting in
/// the keyset's presence and sealing. A whole, checksummed META record
/// displaced inside the damaged file (a misdirected write) is used first.
/// If nothing names the store any more, a fresh id is minted: the journal's
/// headers no longer match it, so recovery sets them aside.
fn open_meta<E: Env>(env: &mut E, dir: &Path, options: &Options) -> Result<(Meta, Option<String>), OpenError> {
    let disk = env.disk();
    let unusable = match read_meta(disk, dir) {
        // Salvage rebuilds a META whose store id the segments contradict
        // (a stale or misplaced write, a file copied in), unless the
        // journal's events were written by META's store (then a segment
        // header is the stale one, and recovery sets its segment aside) or
        // the keyset sides with META (then which store this is stays
        // unclear).
        Ok(Some(meta)) if options.salvage => {
            let segments = store_id_from_segments(disk, dir)?;
            let keyset = crate::keyset::read_header(disk, dir).map(|(id, _)| id);
            let mut written_by_meta = || writer_tag(disk, dir) == Some(store_tag(meta.store_id));
            match segments {
                Some(id) if id != meta.store_id && keyset.is_none_or(|k| k == id) && !written_by_meta() => {
                    format!("META names store {:016x}, the segments {id:016x}", meta.store_id)
                }
                _ => return Ok((meta, None)),
            }
        }
        Ok(Some(meta)) => return Ok((meta, None)),
        Ok(None) if options.salvage => "META is missing".to_owned(),
        Ok(None) => unreachable!("a store without META is opened only to salvage it"),
        Err(e @ (OpenError::Format { .. } | OpenError::Io(_))) if options.salvage => e.to_string(),
        Err(e) => return Err(e),
    };
    let keyset = crate::keyset::read_header(disk, dir);
    // Each witness of the store id, in order of trust; one whose tag is not
    // the tag the journal's events carry is passed over.
    let writer = writer_tag(disk, dir);
    let witnesses = [
        store_id_from_segments(disk, dir)?.map(|id| (id, "the segment headers")),
        displaced_meta(disk, dir).map(|meta| (meta.store_id, "a whole record inside the damaged META")),
        keyset.map(|(id, _)| (id, "the keyset")),
    ];
    let found = witnesses.into_iter().flatten().find(|(id, _)| writer.is_none_or(|tag| tag == store_tag(*id)));
    let (store_id, source) = match found {
        Some(found) => found,
        None => (fresh_store_id(env.entropy()), "nothing (a fresh store id; the journal's headers no longer match it)"),
    };
    let flags = match keyset {
        Some((id, sealed)) if id == store_id => FLAG_ENCRYPTED | if sealed { FLAG_SEALED } else { 0 },
        _ => options.encryption.flags(),
    };
    Ok((Meta { store_id, flags }, Some(format!("META was unusable ({unusable}); rebuilt from {source}"))))
}

/// A whole META record anywhere in the damaged `META` file.
fn displaced_meta<D: Disk>(disk: &mut D, dir: &Path) -> Option<Meta> {
    let file = disk.open_read(&dir.join(META_NAME)).ok()?;
    let len = file.len().ok()?.min(crate::limits::META_SEARCH_LEN_MAX);
    let (bytes, _) = crate::journal::read::read_range(&file, 0..len);
    (0..bytes.len().saturating_sub(META_LEN - 1)).find_map(|at| Meta::decode(&bytes[at..at + META_LEN]).ok())
}

fn fresh_store_id(entropy: &mut impl Entropy) -> u64 {
    loop {
        let id = entropy.next_u64();
        if id != 0 {
            return id;
        }
    }
}

/// The keyset as open found it.
struct OpenedKeyset {
    keyset: Keyset,
    /// Copies to write again (both, as `keyset`): one was damaged or behind,
    /// or salvage replaced an unusable keyset.
    republish: Vec<(std::path::PathBuf, String)>,
    /// Salvage only: both copies were unusable; they are set aside and a
    /// fresh keyset replaces them (the keys they wrapped are lost).
    replaced: bool,
    /// Salvage only: a copy of another store, set aside before the usable
    /// one is written over it.
    foreign: Option<std::path::PathBuf>,
}

/// Reads the keyset. Both copies unusable, or of another store, is a typed
/// error, unless salvaging, when a fresh keyset takes their place. A
/// keyset sealed under another key, or without the master key it needs, is
/// refused either way.
fn open_keyset<E: Env>(env: &mut E, dir: &Path, store_id: u64, options: &Options) -> Result<OpenedKeyset, OpenError> {
    match read_keyset(env.disk(), dir, store_id, options.encryption.master_key()) {
        Ok(KeysetRead { foreign: Some(path), problems, .. }) if !options.salvage => {
            let reason = problems.into_iter().map(|(_, why)| why).collect::<Vec<_>>().join("; ");
            Err(OpenError::Mismatch { path, reason })
        }
        Ok(read) => {
            Ok(OpenedKeyset { keyset: read.keyset, republish: read.problems, replaced: false, foreign: read.foreign })
        }
        Err(KeysetError::Foreign(reason)) if !options.salvage => {
            Err(OpenError::Mismatch { path: dir.join(KEYS_NAME), reason })
        }
        Err(e @ (KeysetError::MasterKeyNeeded | KeysetError::WrongMasterKey | KeysetError::Version(_))) => {
            Err(OpenError::Keyset(e))
        }
        Err(e) if !options.salvage => Err(e.into()),
        // Both copies unusable. A keyset of another store is unusable too:
        // salvage has reconciled META with the segments (and with the
        // keyset where it could) by now, so it is the odd one out, and it
        // cannot open this store's key records (they are bound to the store
        // id). Either way the copies are set aside, a fresh keyset takes
        // their place, and the keys are reported lost.
        Err(e) => {
            let why = match e {
                KeysetError::Foreign(reason) => format!("it belongs to another store: {reason}"),
                other => other.to_string(),
            };
            Ok(OpenedKeyset {
                keyset: Keyset::fresh(|| random_key(env.entropy())),
                republish: vec![(dir.join(KEYS_NAME), why)],
                replaced: true,
                foreign: None,
            })
        }
    }
}

impl<E: Env> Core<E> {
    /// Opens (or creates) the store in `dir`, recovering its journal.
    ///
    /// Nothing is written before the directory is understood: a store is
    /// created only in a missing or empty directory (or one holding nothing
    /// but a creation that was interrupted before it could hold data); a
    /// directory with other files and no `META`, or whose files do not
    /// belong together, is refused as it is. Recovery's cuts and salvage
    /// happen only after the keyset and the journal were read and accepted.
    pub fn open(mut env: E, dir: &Path, options: &Options) -> Result<(Self, RecoveryReport), OpenError> {
        if options.segment_size < SEGMENT_SIZE_MIN {
            return Err(crate::error::InvalidInput::Option {
                reason: format!("segment_size {} is below the minimum {SEGMENT_SIZE_MIN}", options.segment_size),
            }
            .into());
        }
        if options.scan_window < SCAN_WINDOW_MIN {
            return Err(crate::error::InvalidInput::Option {
                reason: format!("scan_window {} is below the minimum {SCAN_WINDOW_MIN}", options.scan_window),
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
        partial_refusal(dir, layout::classify(disk, dir)?, options.salvage)?;
        let lock = lock_store(disk, dir)?;
        if options.planted().hidden_state_turn() {
            // The planted bug: one disk operation more on every other open.
            let _ = disk.exists(&dir.join(crate::meta::META_NAME));
        }
        settle_salvage(env.disk(), dir)?;
        let mut report = RecoveryReport::default();
        match partial_refusal(dir, layout::classify(env.disk(), dir)?, options.salvage)? {
            Layout::Store => {}
            Layout::Empty if !options.create_if_missing => return Err(OpenError::Missing { path: dir.to_owned() }),
            Layout::Empty => create_store(&mut env, dir, options)?,
            // Otherwise META is rebuilt below, from the segment headers.
            Layout::Partial(_) if set_leftovers_aside(&mut env, dir, &mut report)? => {
                create_store(&mut env, dir, options)?
            }
            Layout::Partial(_) => {}
        }
        let flags = options.encryption.flags();
        let (meta, meta_rebuilt) = open_meta(&mut env, dir, options)?;
        if meta.flags != flags {
            return Err(OpenError::Encryption {
                reason: format!("the store was created with {}, not {}", describe(meta.flags), describe(flags)),
            });
        }
        let keyset = match flags & FLAG_ENCRYPTED {
            0 => None,
            _ => Some(open_keyset(&mut env, dir, meta.store_id, options)?),
        };
        let keys = keyset.as_ref().map(|k| StoreKeys::new(meta.store_id, k.keyset.clone()));
        let mut analysis = analyze(env.disk(), dir, meta.store_id, meta.flags, keys.clone(), options)?;
        let mut keys_lost = analysis.state.missing_keys();
        if analysis.used_checkpoint() && (analysis.state.check_encryption().is_err() || !keys_lost.is_empty()) {
            // What the checkpoint holds does not add up with the keyset
            // (its checksums held over wrong bytes): the journal decides.
            let scanning = Options { full_scan: true, ..options.clone() };
            analysis = analyze(env.disk(), dir, meta.store_id, meta.flags, keys, &scanning)?;
            analysis.pass_over_checkpoint("its events' keys do not add up with the keyset");
            keys_lost = analysis.state.missing_keys();
        }
        if options.planted().is(canary!(CheckpointForgetsIdempotency)) && analysis.used_checkpoint() {
            // The planted bug: the checkpoint's idempotency table is lost.
            analysis.state.forget_idempotency();
        }
        if let Some(refusal) = analysis.refusal().filter(|_| !options.salvage) {
            return Err(refusal);
        }
        let corrupt_keys = |global: u64, reason: String| Corruption {
            file: dir.join(KEYS_NAME),
            offset: 0,
            reason: format!("event {global}: {reason}"),
        };
        analysis.state.check_encryption().map_err(|(global, reason)| corrupt_keys(global, reason))?;
        if let Some((entity, generation)) = keys_lost.first().filter(|_| !options.salvage) {
            return Err(Corruption {
                file: dir.join(KEYS_NAME),
                offset: 0,
                reason: format!(
                    "entity {entity} needs key generation {generation}, which no key record opens and no shred covers"
                ),
            }
            .into());
        }
        // The names this open builds on (the store's directory itself, META,
        // the keyset, segments) may be visible without being durable, if an
        // earlier directory fsync in this process failed: make them durable
        // before anything is added.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            env.disk().sync_dir(parent).map_err(io(format!("syncing {}", parent.display())))?;
        }
        env.disk().sync_dir(dir).map_err(io(format!("syncing {}", dir.display())))?;
        // Everything that may fail and drops nothing goes before the
        // journal's cuts and set-asides: an open that failed after cutting
        // would leave the cut in no report.
        if let Some(why) = meta_rebuilt {
            // The damaged META is copied aside and replaced in one rename:
            // a crash leaves the old one or the new one, never none.
            let meta_path = dir.join(META_NAME);
            if env.disk().exists(&meta_path).map_err(io(format!("looking for {}", meta_path.display())))? {
                let aside = salvage_dir(env.disk(), dir)?;
                copy_aside(env.disk(), &aside, &meta_path, &mut report)?;
            }
            write_meta(env.disk(), dir, &meta)?;
            report.meta_rebuilt = Some(why);
        }
        let mut fence = keyset.as_ref().map(|_| KeyFence::new(options.encryption.master_key().cloned()));
        if let (Some(opened), Some(fence)) = (keyset, fence.as_mut()) {
            let aside_names: Vec<std::path::PathBuf> = if opened.replaced {
                [KEYS_NAME, KEYS_COPY_NAME].iter().map(|name| dir.join(name)).collect()
            } else {
                opened.foreign.iter().cloned().collect()
            };
            if !aside_names.is_empty() {
                let aside = salvage_dir(env.disk(), dir)?;
                for path in aside_names {
                    if env.disk().exists(&path).map_err(io(format!("looking for {}", path.display())))? {
                        move_aside(env.disk(), dir, &aside, &path, &mut report)?;
                    }
                }
            }
            if !opened.republish.is_empty() {
                let nonce = random_nonce(env.entropy());
                fence.publish(env.disk(), dir, &opened.keyset, meta.store_id, nonce).map_err(OpenError::Io)?;
                report.keyset_repaired = opened.republish;
            }
        }
        let mut recovered = analysis.apply(env.disk(), dir, options.salvage)?;
        recovered.report.keys_lost = keys_lost;
        recovered.report.meta_rebuilt = report.meta_rebuilt;
        recovered.report.keyset_repaired = report.keyset_repaired;
        recovered.report.set_aside.splice(0..0, report.set_aside);
        let checkpointed = recovered.checkpoint_end;
        let epoch = fresh_epoch(env.entropy(), &recovered.state, 0);
        let journal_empty = recovered.tail.is_none();
        let mut journal = match recovered.tail {
            Some(tail) => JournalWriter::resume(dir, meta.store_id, options.segment_size, epoch, tail),
            None => JournalWriter::empty(dir, meta.store_id, options.segment_size, epoch),
        };
        journal.plant(options.planted());
        if journal_empty {
            // Salvage set the whole journal aside: start segment 0 now, so
            // that the next open finds a store, written to or not.
            journal.ready(env.disk()).map_err(OpenError::Io)?;
        }
        if let (Some(fence), true) = (fence.as_mut(), options.planted().is(canary!(KeysetAfterFrames))) {
            fence.plant_late_records();
        }
        let mut core = Self {
            env,
            dir: dir.to_owned(),
            journal,
            state: std::sync::Arc::new(std::sync::RwLock::new(recovered.state)),
            fence,
            gates: options.gates.clone(),
            planted: options.planted(),
            nonces: super::Nonces::new(),
            flags: meta.flags,
            checkpointed,
            checkpoint_every: options.checkpoint_every,
            _lock: lock,
        };
        if !recovered.report.keys_lost.is_empty() {
            core.record_lost_keys(&recovered.report.keys_lost).map_err(OpenError::Io)?;
        }
        Ok((core, recovered.report))
    }
}
