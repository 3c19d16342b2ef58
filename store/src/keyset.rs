//! The keyset: the wrapping keys of an encrypted store, in the `KEYS` file
//! and its copy `KEYS.copy`, each published atomically and checksummed,
//! optionally sealed under a caller's master key. The layout is drawn in
//! FORMAT.md.
//!
//! Entities are spread over [`KEY_BUCKETS`] buckets by a hash of their
//! name; each bucket has one wrapping key. An entity's own key lives in the
//! journal, wrapped under its bucket's wrapping key, in the same flush as
//! the first event that needs it, so minting a key costs no extra fsync. A
//! shred rewraps the bucket's other live keys under a fresh wrapping key
//! (in the journal), then publishes a keyset that holds the fresh key in
//! place of the old one: the old wrapping key is gone, and with it every
//! copy of the shredded key. Until that publish lands, the fresh key is in
//! no file and the rewrapped records open nothing, so a shred that stops
//! half way leaves every key as it was.
//!
//! The keyset changes only when the store is created and on shreds, and
//! both copies are written before a shred is acknowledged: a damaged or
//! unreadable copy loses nothing while the other is intact. When both
//! differ, the higher sequence number is the later one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{open, seal, Key, MasterKey, KEY_LEN, NONCE_LEN};
use crate::disk::{publish_atomically, read_small_file, Disk};
use crate::error::IoError;

pub const KEYS_NAME: &str = "KEYS";
/// The second copy of the keyset.
pub const KEYS_COPY_NAME: &str = "KEYS.copy";
/// Buckets of entities; a shred rewraps the live keys of one bucket.
pub const KEY_BUCKETS: usize = 64;
const KEYS_MAGIC: [u8; 8] = *b"SHALEKEY";
const KEYS_VERSION: u32 = 2;
const FLAG_SEALED: u32 = 1;
const HEADER_LEN: usize = 36;
/// The keyset file's size limit: far above a real keyset (a few KiB), low
/// enough that a damaged length cannot make recovery allocate wildly.
const KEYS_LEN_MAX: u64 = 1 << 20;

const _: () = assert!(KEY_BUCKETS.is_power_of_two() && KEY_BUCKETS <= 1 << 16);

/// The bucket of `entity`: fixed by its name.
pub fn bucket_of(entity: &str) -> usize {
    let hash = blake3::hash(entity.as_bytes());
    usize::from(u16::from_le_bytes([hash.as_bytes()[0], hash.as_bytes()[1]])) % KEY_BUCKETS
}

/// One wrapping key and its generation within its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapKey {
    pub generation: u32,
    pub key: Key,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyset {
    /// How many times the keyset was published; the later of two copies
    /// has the higher number.
    pub sequence: u64,
    buckets: Vec<WrapKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredBucket {
    generation: u32,
    key: [u8; KEY_LEN],
}

/// Why a keyset file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysetError {
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("the keyset file is missing although the store is encrypted")]
    Missing,
    #[error("the keyset file is damaged: {0}")]
    Damaged(String),
    #[error("keyset format version {0}; this build reads version 2 only (nothing was changed)")]
    Version(u32),
    #[error("the keyset file belongs to another store: {0}")]
    Foreign(String),
    #[error("the keyset is sealed and no master key was given")]
    MasterKeyNeeded,
    #[error("the keyset does not open with the given master key")]
    WrongMasterKey,
}

/// A keyset file's bytes before its checksum, if the checksum holds.
fn checked_content(bytes: &[u8]) -> Result<&[u8], KeysetError> {
    let damaged = |why: &str| KeysetError::Damaged(why.to_owned());
    if bytes.len() < HEADER_LEN + 4 {
        return Err(damaged("too short"));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(content) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(damaged("checksum mismatch"));
    }
    Ok(content)
}

/// The store id and sealing a whole keyset copy's header names (its
/// checksum holds; nothing is decrypted), whatever store it belongs to.
pub fn header_of(bytes: &[u8]) -> Option<(u64, bool)> {
    let content = checked_content(bytes).ok()?;
    let id = u64::from_le_bytes(content[16..24].try_into().ok()?);
    let flags = u32::from_le_bytes(content[12..16].try_into().ok()?);
    (content[0..8] == KEYS_MAGIC && id != 0).then_some((id, flags & FLAG_SEALED != 0))
}

/// The header of the first whole keyset copy in `dir`.
pub fn read_header<D: Disk>(disk: &mut D, dir: &Path) -> Option<(u64, bool)> {
    [KEYS_NAME, KEYS_COPY_NAME].into_iter().find_map(|name| header_of(&read_copy_bytes(disk, &dir.join(name)).ok()?))
}

impl Keyset {
    /// A keyset with fresh wrapping keys in every bucket.
    pub fn fresh(mut random_key: impl FnMut() -> Key) -> Self {
        let buckets = (0..KEY_BUCKETS).map(|_| WrapKey { generation: 1, key: random_key() }).collect();
        Self { sequence: 1, buckets }
    }

    /// The wrapping key of `bucket`.
    pub fn bucket(&self, bucket: usize) -> &WrapKey {
        &self.buckets[bucket]
    }

    /// The wrapping key of `bucket` with this generation, if the keyset
    /// holds it.
    pub fn wrap_key(&self, bucket: usize, generation: u32) -> Option<&Key> {
        self.buckets.get(bucket).filter(|w| w.generation == generation).map(|w| &w.key)
    }

    /// The keyset after a shred in `bucket`: `fresh` replaces its wrapping
    /// key, and the old one is gone. Its generation is one on, and past
    /// `past` (the generation of the key being shredded): key generations
    /// are minted at or past the bucket's wrapping generation, so none the
    /// shred covered is minted again even if the journal that recorded the
    /// shred is later set aside.
    pub fn rotated(&self, bucket: usize, fresh: Key, past: u32) -> Self {
        let mut next = self.clone();
        let generation = (next.buckets[bucket].generation + 1).max(past + 1);
        next.buckets[bucket] = WrapKey { generation, key: fresh };
        next.sequence += 1;
        next
    }

    /// Every wrapping key, with its bucket.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &WrapKey)> {
        self.buckets.iter().enumerate()
    }

    /// The file's bytes; sealed under `master` (with `nonce`) if given.
    pub fn encode(&self, store_id: u64, master: Option<&MasterKey>, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut stored: Vec<StoredBucket> =
            self.buckets.iter().map(|b| StoredBucket { generation: b.generation, key: *b.key.bytes() }).collect();
        let Ok(body) = postcard::to_allocvec(&stored) else { unreachable!("postcard encodes into a Vec") };
        stored.iter_mut().for_each(|b| b.key.fill(0));
        let body = Zeroizing::new(body);
        let mut header = [0u8; 32];
        header[0..8].copy_from_slice(&KEYS_MAGIC);
        header[8..12].copy_from_slice(&KEYS_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(if master.is_some() { FLAG_SEALED } else { 0 }).to_le_bytes());
        header[16..24].copy_from_slice(&store_id.to_le_bytes());
        header[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        let body: Zeroizing<Vec<u8>> = match master {
            Some(m) => Zeroizing::new(seal(&m.0, nonce, &header, &body)),
            None => body,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + 4);
        out.extend_from_slice(&header);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8], store_id: u64, master: Option<&MasterKey>) -> Result<Self, KeysetError> {
        let damaged = |why: &str| KeysetError::Damaged(why.to_owned());
        let content = checked_content(bytes)?;
        let u32_at = |at: usize| u32::from_le_bytes([content[at], content[at + 1], content[at + 2], content[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&content[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if content[0..8] != KEYS_MAGIC {
            return Err(damaged("not a keyset"));
        }
        if u32_at(8) != KEYS_VERSION {
            return Err(KeysetError::Version(u32_at(8)));
        }
        if u64_at(16) != store_id {
            return Err(KeysetError::Foreign(format!(
                "it names store {:016x}, META names {store_id:016x}",
                u64_at(16)
            )));
        }
        let body = &content[HEADER_LEN..];
        if body.len() != u32_at(32) as usize {
            return Err(damaged("body length mismatch"));
        }
        let plain: Zeroizing<Vec<u8>> = match (u32_at(12) & FLAG_SEALED != 0, master) {
            (true, None) => return Err(KeysetError::MasterKeyNeeded),
            (true, Some(m)) => {
                Zeroizing::new(open(&m.0, &content[..32], body).map_err(|_| KeysetError::WrongMasterKey)?)
            }
            (false, Some(_)) => return Err(damaged("not sealed, but a master key was given")),
            (false, None) => Zeroizing::new(body.to_vec()),
        };
        let stored: Vec<StoredBucket> = postcard::from_bytes(&plain).map_err(|_| damaged("buckets do not decode"))?;
        if stored.len() != KEY_BUCKETS {
            return Err(damaged("wrong number of buckets"));
        }
        let buckets: Vec<WrapKey> =
            stored.iter().map(|b| WrapKey { generation: b.generation, key: Key::from_bytes(b.key) }).collect();
        if buckets.iter().any(|b| b.generation == 0) {
            return Err(damaged("a wrapping key of generation 0"));
        }
        Ok(Self { sequence: u64_at(24), buckets })
    }
}

/// The keyset as read at open, and what was wrong with a copy.
#[derive(Debug)]
pub struct KeysetRead {
    pub keyset: Keyset,
    /// A copy that could not be used, or was behind the other: (file, why).
    /// Open republishes both copies when this is not empty.
    pub problems: Vec<(PathBuf, String)>,
    /// A copy that names another store while the other copy is this
    /// store's (a stale or misplaced write, or a file copied in): only a
    /// salvage may set it aside and write it again.
    pub foreign: Option<PathBuf>,
}

fn read_copy<D: Disk>(
    disk: &mut D,
    path: &Path,
    store_id: u64,
    master: Option<&MasterKey>,
) -> Result<Keyset, KeysetError> {
    Keyset::decode(&read_copy_bytes(disk, path)?, store_id, master)
}

/// A keyset copy's bytes. A read that fails is tried again before the
/// copy counts as unusable.
fn read_copy_bytes<D: Disk>(disk: &mut D, path: &Path) -> Result<Zeroizing<Vec<u8>>, KeysetError> {
    let io = |e| KeysetError::Io(IoError::new(format!("reading {}", path.display()), e));
    if !disk.exists(path).map_err(io)? {
        return Err(KeysetError::Missing);
    }
    let mut attempt = 1;
    loop {
        match read_small_file(disk, path, KEYS_LEN_MAX) {
            Ok(bytes) => return Ok(Zeroizing::new(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(KeysetError::Damaged(e.to_string())),
            Err(e) if attempt == crate::limits::READ_ATTEMPTS => return Err(io(e)),
            Err(_) => attempt += 1,
        }
    }
}

/// Reads both copies of the keyset in `dir` (opened read-only) and takes the
/// later usable one. Both unusable is an error. A copy of another store or
/// format, or sealed without or under another master key, is refused at
/// once: salvage cannot help there, and must not replace it.
pub fn read_keyset<D: Disk>(
    disk: &mut D,
    dir: &Path,
    store_id: u64,
    master: Option<&MasterKey>,
) -> Result<KeysetRead, KeysetError> {
    let primary = dir.join(KEYS_NAME);
    let copy = dir.join(KEYS_COPY_NAME);
    let a = read_copy(disk, &primary, store_id, master);
    let b = read_copy(disk, &copy, store_id, master);
    // One copy of another store beside a usable one of this store.
    let foreign = match (&a, &b) {
        (Err(KeysetError::Foreign(reason)), Ok(_)) => Some((primary.clone(), reason.clone())),
        (Ok(_), Err(KeysetError::Foreign(reason))) => Some((copy.clone(), reason.clone())),
        _ => None,
    };
    if let Some((path, reason)) = foreign {
        let keyset = match (a, b) {
            (Ok(k), _) | (_, Ok(k)) => k,
            _ => unreachable!("one copy is usable"),
        };
        let problems = vec![(path.clone(), format!("it belongs to another store: {reason}"))];
        return Ok(KeysetRead { keyset, problems, foreign: Some(path) });
    }
    for result in [&a, &b] {
        match result {
            Err(KeysetError::Foreign(reason)) => return Err(KeysetError::Foreign(reason.clone())),
            Err(KeysetError::Version(v)) => return Err(KeysetError::Version(*v)),
            Err(KeysetError::MasterKeyNeeded) => return Err(KeysetError::MasterKeyNeeded),
            Err(KeysetError::WrongMasterKey) => return Err(KeysetError::WrongMasterKey),
            _ => {}
        }
    }
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let mut problems = Vec::new();
            let keyset = if a.sequence >= b.sequence { a.clone() } else { b.clone() };
            if a != b {
                let (behind, path) = if a.sequence >= b.sequence { (&b, &copy) } else { (&a, &primary) };
                problems.push((path.clone(), format!("sequence {} is behind {}", behind.sequence, keyset.sequence)));
            }
            Ok(KeysetRead { keyset, problems, foreign: None })
        }
        (Ok(keyset), Err(e)) => Ok(KeysetRead { keyset, problems: vec![(copy, e.to_string())], foreign: None }),
        (Err(e), Ok(keyset)) => Ok(KeysetRead { keyset, problems: vec![(primary, e.to_string())], foreign: None }),
        (Err(e), Err(_)) => Err(e),
    }
}

/// Publishes `bytes` as both copies of the keyset, one after the other,
/// each by temporary file, fsync, rename and fsync of the directory. On
/// failure the temporary file is removed if possible; either copy may then
/// hold the old or the new keyset.
pub fn publish_keyset<D: Disk>(disk: &mut D, dir: &Path, bytes: &[u8]) -> Result<(), IoError> {
    for name in [KEYS_NAME, KEYS_COPY_NAME] {
        let path = dir.join(name);
        publish_atomically(disk, &path, bytes).map_err(|e| {
            let _ = disk.remove(&dir.join(format!("{name}.tmp")));
            IoError::new(format!("publishing {}", path.display()), e)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Keyset {
        let mut n = 0u8;
        Keyset::fresh(|| {
            n = n.wrapping_add(1);
            Key::from_bytes([n; KEY_LEN])
        })
    }

    #[test]
    fn round_trips_plain_and_sealed() {
        let k = sample();
        assert_eq!(Keyset::decode(&k.encode(9, None, [0; 12]), 9, None).unwrap(), k);
        let master = MasterKey::from_bytes([200; KEY_LEN]);
        let sealed = k.encode(9, Some(&master), [3; 12]);
        assert!(!sealed.windows(KEY_LEN).any(|w| w == [1; KEY_LEN]), "sealed keys are not in the clear");
        assert_eq!(Keyset::decode(&sealed, 9, Some(&master)).unwrap(), k);
        assert!(matches!(Keyset::decode(&sealed, 9, None), Err(KeysetError::MasterKeyNeeded)));
        let wrong = MasterKey::from_bytes([6; KEY_LEN]);
        assert!(matches!(Keyset::decode(&sealed, 9, Some(&wrong)), Err(KeysetError::WrongMasterKey)));
        assert!(matches!(Keyset::decode(&sealed, 8, Some(&master)), Err(KeysetError::Foreign(_))));
    }

    #[test]
    fn every_damaged_byte_is_refused() {
        let bytes = sample().encode(9, None, [0; 12]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(Keyset::decode(&bad, 9, None).is_err(), "damage at byte {i}");
        }
    }

    #[test]
    fn a_rotation_forgets_the_wrapping_key() {
        let k = sample();
        let old = k.bucket(5).clone();
        let rotated = k.rotated(5, Key::from_bytes([99; KEY_LEN]), 0);
        assert_eq!(rotated.sequence, k.sequence + 1);
        assert_eq!(rotated.bucket(5).generation, old.generation + 1);
        assert_eq!(rotated.wrap_key(5, old.generation), None, "the old wrapping key is gone");
        assert_eq!(rotated.wrap_key(5, old.generation + 1), Some(&Key::from_bytes([99; KEY_LEN])));
        assert_eq!(rotated.bucket(6), k.bucket(6), "other buckets are untouched");
        assert!(bucket_of("account-1") < KEY_BUCKETS);
        assert_eq!(bucket_of("account-1"), bucket_of("account-1"));
    }
}
