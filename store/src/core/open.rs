//! Opening a store: understand the directory, create a store only where
//! nothing could be data, read `META`, the keyset and the journal, and only
//! then carry out recovery's cuts and salvage.

use std::path::Path;

use super::{layout, random_nonce, Core, Options, LOCK_NAME};
use crate::disk::Disk;
use crate::env::{Entropy, Env};
use crate::error::{Corruption, IoError, OpenError};
use crate::fence::{random_key, KeyFence};
use crate::journal::recover::{analyze, move_aside, salvage_dir, RecoveryReport};
use crate::journal::writer::JournalWriter;
use crate::keys::StoreKeys;
use crate::keyset::{publish_keyset, read_keyset, Keyset, KeysetError, KEYS_COPY_NAME, KEYS_NAME};
use crate::limits::SEGMENT_SIZE_MIN;
use crate::meta::{read_meta, write_meta, Meta, FLAG_ENCRYPTED, FLAG_SEALED};
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

/// The keyset as open found it.
struct OpenedKeyset {
    keyset: Keyset,
    /// Copies to write again (both, as `keyset`): one was damaged or behind,
    /// or salvage replaced an unusable keyset.
    republish: Vec<(std::path::PathBuf, String)>,
    /// Salvage only: both copies were unusable; they are set aside and a
    /// fresh keyset replaces them (the keys they wrapped are lost).
    replaced: bool,
}

/// Reads the keyset. Both copies unusable is a typed error, unless
/// salvaging, when a fresh keyset takes their place. A keyset of another
/// store or sealed under another key is refused either way.
fn open_keyset<E: Env>(env: &mut E, dir: &Path, store_id: u64, options: &Options) -> Result<OpenedKeyset, OpenError> {
    match read_keyset(env.disk(), dir, store_id, options.encryption.master_key()) {
        Ok(read) => Ok(OpenedKeyset { keyset: read.keyset, republish: read.problems, replaced: false }),
        Err(KeysetError::Foreign(reason)) => Err(OpenError::Mismatch { path: dir.join(KEYS_NAME), reason }),
        Err(e @ (KeysetError::MasterKeyNeeded | KeysetError::WrongMasterKey | KeysetError::Version(_))) => {
            Err(OpenError::Keyset(e))
        }
        Err(e) if !options.salvage => Err(e.into()),
        Err(e) => Ok(OpenedKeyset {
            keyset: Keyset::fresh(|| random_key(env.entropy())),
            republish: vec![(dir.join(KEYS_NAME), e.to_string())],
            replaced: true,
        }),
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
        let keyset = match flags & FLAG_ENCRYPTED {
            0 => None,
            _ => Some(open_keyset(&mut env, dir, meta.store_id, options)?),
        };
        let keys = keyset.as_ref().map(|k| StoreKeys::new(meta.store_id, k.keyset.clone()));
        let analysis = analyze(env.disk(), dir, meta.store_id, keys, options)?;
        if let Some(refusal) = analysis.refusal().filter(|_| !options.salvage) {
            return Err(refusal);
        }
        let corrupt_keys = |global: u64, reason: String| Corruption {
            file: dir.join(KEYS_NAME),
            offset: 0,
            reason: format!("event {global}: {reason}"),
        };
        analysis.state.check_encryption().map_err(|(global, reason)| corrupt_keys(global, reason))?;
        let keys_lost = analysis.state.missing_keys();
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
        let mut recovered = analysis.apply(env.disk(), dir, options.salvage)?;
        recovered.report.keys_lost = keys_lost;
        let mut fence = keyset.as_ref().map(|_| KeyFence::new(options.encryption.master_key().cloned()));
        if let (Some(opened), Some(fence)) = (keyset, fence.as_mut()) {
            if opened.replaced {
                let aside = salvage_dir(env.disk(), dir)?;
                for name in [KEYS_NAME, KEYS_COPY_NAME] {
                    let path = dir.join(name);
                    if env.disk().exists(&path).map_err(io(format!("looking for {}", path.display())))? {
                        move_aside(env.disk(), dir, &aside, &path, &mut recovered.report)?;
                    }
                }
            }
            if !opened.republish.is_empty() {
                let nonce = random_nonce(env.entropy());
                fence.publish(env.disk(), dir, &opened.keyset, meta.store_id, nonce).map_err(OpenError::Io)?;
                recovered.report.keyset_repaired = opened.republish;
            }
        }
        let epoch = fresh_epoch(env.entropy(), &recovered.state);
        let mut journal = match recovered.tail {
            Some(tail) => JournalWriter::resume(dir, meta.store_id, options.segment_size, epoch, tail),
            None => JournalWriter::empty(dir, meta.store_id, options.segment_size, epoch),
        };
        journal.plant(options.planted());
        if let (Some(fence), true) = (fence.as_mut(), options.planted().is(canary!(KeysetAfterFrames))) {
            fence.plant_late_records();
        }
        let core = Self {
            env,
            dir: dir.to_owned(),
            journal,
            state: std::sync::Arc::new(std::sync::RwLock::new(recovered.state)),
            fence,
            gates: options.gates.clone(),
            planted: options.planted(),
            _lock: lock,
        };
        Ok((core, recovered.report))
    }
}
