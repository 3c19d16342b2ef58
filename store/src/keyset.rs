//! The keyset: every entity's live key (and, for shredded entities, the
//! generation that was shredded), in the `KEYS` file, published atomically
//! and checksummed; optionally sealed under a caller's master key. The
//! layout is drawn in FORMAT.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{open, seal, Key, MasterKey, KEY_LEN, NONCE_LEN};
use crate::disk::{publish_atomically, read_small_file, Disk};
use crate::error::IoError;

pub const KEYS_NAME: &str = "KEYS";
const KEYS_MAGIC: [u8; 8] = *b"SHALEKEY";
const KEYS_VERSION: u32 = 1;
const FLAG_SEALED: u32 = 1;
const HEADER_LEN: usize = 28;
/// The keyset file's size limit: far above any real keyset, low enough
/// that a damaged length field cannot make recovery allocate wildly.
const KEYS_LEN_MAX: u64 = 1 << 30;

/// One entity's key state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub generation: u32,
    /// `None` once shredded.
    pub key: Option<Key>,
}

/// What the keyset says about the key of `(entity, generation)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStatus<'k> {
    Live(&'k Key),
    Shredded,
    Missing,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyset {
    entries: BTreeMap<String, KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry<'a> {
    entity: &'a str,
    generation: u32,
    key: Option<[u8; KEY_LEN]>,
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
    #[error("the keyset file belongs to another store: {0}")]
    Foreign(String),
    #[error("the keyset is sealed and no master key was given")]
    MasterKeyNeeded,
    #[error("the keyset does not open with the given master key")]
    WrongMasterKey,
}

impl Keyset {
    pub fn entry(&self, entity: &str) -> Option<&KeyEntry> {
        self.entries.get(entity)
    }

    pub fn status(&self, entity: &str, generation: u32) -> KeyStatus<'_> {
        match self.entries.get(entity) {
            Some(KeyEntry { generation: g, key: Some(key) }) if *g == generation => KeyStatus::Live(key),
            Some(KeyEntry { generation: g, key: Some(_) }) if *g > generation => KeyStatus::Shredded,
            Some(KeyEntry { generation: g, key: None }) if *g >= generation => KeyStatus::Shredded,
            _ => KeyStatus::Missing,
        }
    }

    /// The entity's live key, if it has one.
    pub fn live(&self, entity: &str) -> Option<(u32, &Key)> {
        let entry = self.entries.get(entity)?;
        entry.key.as_ref().map(|k| (entry.generation, k))
    }

    /// The generation a new key for `entity` gets.
    pub fn next_generation(&self, entity: &str) -> u32 {
        self.entries.get(entity).map_or(1, |e| e.generation + 1)
    }

    pub fn insert(&mut self, entity: &str, entry: KeyEntry) {
        self.entries.insert(entity.to_owned(), entry);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyEntry)> {
        self.entries.iter().map(|(e, k)| (e.as_str(), k))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's bytes; sealed under `master` (with `nonce`) if given.
    pub fn encode(&self, store_id: u64, master: Option<&MasterKey>, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let stored: Vec<StoredEntry<'_>> = self
            .entries
            .iter()
            .map(|(entity, e)| StoredEntry {
                entity,
                generation: e.generation,
                key: e.key.as_ref().map(|k| *k.bytes()),
            })
            .collect();
        let Ok(body) = postcard::to_allocvec(&stored) else { unreachable!("postcard encodes into a Vec") };
        let body = Zeroizing::new(body);
        let mut header = [0u8; 24];
        header[0..8].copy_from_slice(&KEYS_MAGIC);
        header[8..12].copy_from_slice(&KEYS_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(if master.is_some() { FLAG_SEALED } else { 0 }).to_le_bytes());
        header[16..24].copy_from_slice(&store_id.to_le_bytes());
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
        if bytes.len() < HEADER_LEN + 4 {
            return Err(damaged("too short"));
        }
        let (content, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(content) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(damaged("checksum mismatch"));
        }
        let u32_at = |at: usize| u32::from_le_bytes([content[at], content[at + 1], content[at + 2], content[at + 3]]);
        if content[0..8] != KEYS_MAGIC || u32_at(8) != KEYS_VERSION {
            return Err(damaged("not a version 1 keyset"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&content[16..24]);
        if u64::from_le_bytes(id) != store_id {
            return Err(KeysetError::Foreign(format!(
                "it names store {:016x}, META names {store_id:016x}",
                u64::from_le_bytes(id)
            )));
        }
        let body = &content[HEADER_LEN..];
        if body.len() != u32_at(24) as usize {
            return Err(damaged("body length mismatch"));
        }
        let plain: Zeroizing<Vec<u8>> = match (u32_at(12) & FLAG_SEALED != 0, master) {
            (true, None) => return Err(KeysetError::MasterKeyNeeded),
            (true, Some(m)) => {
                Zeroizing::new(open(&m.0, &content[..24], body).map_err(|_| KeysetError::WrongMasterKey)?)
            }
            (false, Some(_)) => return Err(damaged("not sealed, but a master key was given")),
            (false, None) => Zeroizing::new(body.to_vec()),
        };
        let stored: Vec<StoredEntry<'_>> =
            postcard::from_bytes(&plain).map_err(|_| damaged("entries do not decode"))?;
        let mut keyset = Keyset::default();
        for s in stored {
            let entry = KeyEntry { generation: s.generation, key: s.key.map(Key::from_bytes) };
            if s.generation == 0 || keyset.entries.insert(s.entity.to_owned(), entry).is_some() {
                return Err(damaged("an entity is listed twice or with generation 0"));
            }
        }
        Ok(keyset)
    }
}

/// Reads `dir/KEYS`, opened read-only.
pub fn read_keyset<D: Disk>(
    disk: &mut D,
    dir: &Path,
    store_id: u64,
    master: Option<&MasterKey>,
) -> Result<Keyset, KeysetError> {
    let path = dir.join(KEYS_NAME);
    let io = |e| KeysetError::Io(IoError::new(format!("reading {}", path.display()), e));
    if !disk.exists(&path).map_err(io)? {
        return Err(KeysetError::Missing);
    }
    let bytes = match read_small_file(disk, &path, KEYS_LEN_MAX) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(KeysetError::Damaged(e.to_string())),
        Err(e) => return Err(io(e)),
    };
    Keyset::decode(&bytes, store_id, master)
}

/// Publishes `bytes` as `dir/KEYS`: temporary file, fsync, rename, fsync of
/// the directory. On failure the old keyset stays in place, and the
/// temporary file is removed if possible.
pub fn publish_keyset<D: Disk>(disk: &mut D, dir: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let path = dir.join(KEYS_NAME);
    publish_atomically(disk, &path, bytes).map_err(|e| {
        let _ = disk.remove(&dir.join(format!("{KEYS_NAME}.tmp")));
        IoError::new(format!("publishing {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Keyset {
        let mut k = Keyset::default();
        k.insert("a", KeyEntry { generation: 1, key: Some(Key::from_bytes([1; KEY_LEN])) });
        k.insert("b", KeyEntry { generation: 2, key: None });
        k
    }

    #[test]
    fn round_trips_plain_and_sealed() {
        let k = sample();
        assert_eq!(Keyset::decode(&k.encode(9, None, [0; 12]), 9, None).unwrap(), k);
        let master = MasterKey::from_bytes([5; KEY_LEN]);
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
    fn statuses() {
        let k = sample();
        assert!(matches!(k.status("a", 1), KeyStatus::Live(_)));
        assert_eq!(k.status("a", 2), KeyStatus::Missing);
        assert_eq!(k.status("b", 1), KeyStatus::Shredded);
        assert_eq!(k.status("b", 2), KeyStatus::Shredded);
        assert_eq!(k.status("b", 3), KeyStatus::Missing);
        assert_eq!(k.status("c", 1), KeyStatus::Missing);
        assert_eq!(k.next_generation("b"), 3);
    }
}
