//! The key material of a durable disk image, read as recovery would read
//! it: the newest valid copy of the keyset, and the key records of the
//! committed groups in the journal's segments. The checkers ask it whether
//! the durable image alone opens an entity's key (P2: it must, for every
//! visible sealed event) or no longer may (P5: after a shred).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shale_store::crypto::{unwrap, wrap_aad, Key, MasterKey, WRAPPED_KEY_LEN};
use shale_store::journal::record::{decode_body, read_frame, Record};
use shale_store::journal::segment::{parse_segment_name, SegmentHeader};
use shale_store::keyset::{bucket_of, Keyset, KEYS_COPY_NAME, KEYS_NAME};
use shale_store::limits::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};

/// A key record of a committed group.
#[derive(Clone, Debug)]
pub struct DurableRecord {
    pub entity: String,
    pub generation: u32,
    pub wrap_generation: u32,
    pub wrapped: [u8; WRAPPED_KEY_LEN],
}

pub struct DurableKeys {
    store_id: u64,
    /// The newest valid copy of the keyset, or why there is none.
    pub keyset: Result<Keyset, String>,
    pub records: Vec<DurableRecord>,
}

/// The key records of the committed groups of one segment's bytes up to
/// `limit` (where its successor says it ends), in order; reading stops at
/// the first frame that is not whole and valid.
fn segment_records(bytes: &[u8], limit: usize, out: &mut Vec<DurableRecord>) {
    let bytes = &bytes[..limit.min(bytes.len())];
    let mut at = SEGMENT_HEADER_LEN;
    let mut group: Vec<DurableRecord> = Vec::new();
    while let Some(rest) = bytes.get(at..) {
        let Ok((_, body)) = read_frame(rest) else { return };
        at += FRAME_HEADER_LEN + body.len();
        match decode_body(body) {
            Ok(Record::Begin(_)) => group.clear(),
            Ok(Record::Key(k)) => {
                if let Some(wrapped) = k.wrapped() {
                    group.push(DurableRecord {
                        entity: k.entity.to_owned(),
                        generation: k.generation,
                        wrap_generation: k.wrap_generation,
                        wrapped: *wrapped,
                    });
                }
            }
            Ok(Record::Commit(_)) => out.append(&mut group),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Every keyset a durable file holds (both copies and their temporary
/// files, in the store and in salvage), each as far as it decodes.
pub fn keysets_in<'a>(
    image: &'a BTreeMap<PathBuf, Vec<u8>>,
    store_id: u64,
    master: Option<&MasterKey>,
) -> Vec<(&'a Path, Keyset)> {
    image
        .iter()
        .filter(|(path, _)| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(KEYS_NAME)))
        .filter_map(|(path, bytes)| Some((path.as_path(), Keyset::decode(bytes, store_id, master).ok()?)))
        .collect()
}

impl DurableKeys {
    /// Reads the key material of the store in `dir` from `image`.
    pub fn read(image: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path, store_id: u64, master: Option<&MasterKey>) -> Self {
        let copy = |name: &str| match image.get(&dir.join(name)) {
            Some(bytes) => Keyset::decode(bytes, store_id, master).map_err(|e| e.to_string()),
            None => Err(format!("there is no durable {name}")),
        };
        let keyset = match (copy(KEYS_NAME), copy(KEYS_COPY_NAME)) {
            (Ok(a), Ok(b)) => Ok(if a.sequence >= b.sequence { a } else { b }),
            (Ok(k), Err(_)) | (Err(_), Ok(k)) => Ok(k),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        };
        let mut records = Vec::new();
        let segments = image
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .filter_map(|(path, bytes)| Some((parse_segment_name(&path.file_name()?.to_string_lossy())?, bytes)));
        let mut segments: Vec<_> = segments.collect();
        segments.sort_by_key(|(number, _)| *number);
        for (i, (_, bytes)) in segments.iter().enumerate() {
            let next = segments.get(i + 1).and_then(|(_, next)| SegmentHeader::decode(next));
            let limit = next.map_or(bytes.len(), |h| usize::try_from(h.prev_end).unwrap_or(usize::MAX));
            segment_records(bytes, limit, &mut records);
        }
        Self { store_id, keyset, records }
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The key `record` wraps, if `keyset` holds its wrapping key.
    pub fn open_with(&self, keyset: &Keyset, record: &DurableRecord) -> Option<Key> {
        let wrapping = keyset.wrap_key(bucket_of(&record.entity), record.wrap_generation)?;
        let aad = wrap_aad(self.store_id, &record.entity, record.generation, record.wrap_generation);
        unwrap(wrapping, &aad, &record.wrapped).ok()
    }

    /// The key of `(entity, generation)` as the durable image opens it.
    pub fn open(&self, entity: &str, generation: u32) -> Option<Key> {
        let keyset = self.keyset.as_ref().ok()?;
        self.records
            .iter()
            .filter(|r| r.entity == entity && r.generation == generation)
            .find_map(|r| self.open_with(keyset, r))
    }

    /// Every key the durable image opens, by (entity, generation).
    pub fn opened(&self) -> BTreeMap<(String, u32), [u8; 32]> {
        let Ok(keyset) = &self.keyset else { return BTreeMap::new() };
        self.records
            .iter()
            .filter_map(|r| Some(((r.entity.clone(), r.generation), *self.open_with(keyset, r)?.expose_secret())))
            .collect()
    }
}
