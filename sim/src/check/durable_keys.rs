//! The key material of the durable disk image, read as recovery would read
//! it: the newest valid copy of the keyset, and the key records of the
//! committed groups in the journal's segments. The checkers ask it whether
//! the durable image alone opens an entity's key (P2: it must, for every
//! visible sealed event) or no longer may (P5: after a shred), and whether
//! any durable file holds an entity key in the clear (P5: none may).
//!
//! It is kept up to date incrementally, so that a run's checking cost
//! grows with its length, not with its square: each segment is parsed once,
//! from where the last parse stopped, unless the disk reports its durable
//! bytes changed below that point (then it is parsed again from the
//! start); each durable file is searched for keys in the clear once, as its
//! bytes become durable, for every key known by then. Keys are learned from
//! the key records they travel in, in the same refresh as the flush that
//! made those durable: a key written in the clear no earlier than its own
//! record is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shale_store::crypto::{unwrap, wrap_aad, Key, MasterKey, WRAPPED_KEY_LEN};
use shale_store::journal::record::{decode_body, read_frame, Record};
use shale_store::journal::segment::{parse_segment_name, SegmentHeader};
use shale_store::keyset::{bucket_of, Keyset, KEYS_COPY_NAME, KEYS_NAME};
use shale_store::limits::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};

use crate::disk::SimDisk;

/// A key record of a committed group.
#[derive(Clone, Debug)]
pub struct DurableRecord {
    pub entity: String,
    pub generation: u32,
    pub wrap_generation: u32,
    pub wrapped: [u8; WRAPPED_KEY_LEN],
}

/// An entity key found in the clear in a durable file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearKey {
    pub entity: String,
    pub generation: u32,
    pub path: PathBuf,
    pub offset: u64,
}

/// What is known of one durable segment.
struct Segment {
    /// The disk's durable mark when it was last brought up to date.
    mark: u64,
    /// Bytes parsed: the end of the last whole committed group.
    parsed_to: usize,
    /// Where the next segment's header says this one ends.
    limit: u64,
    /// Key records of committed groups, each with the end of its group.
    records: Vec<(DurableRecord, u64)>,
}

/// A durable copy of the keyset (or its temporary file, or a salvaged one).
struct KeysetFile {
    path: PathBuf,
    mark: u64,
    decoded: Result<Keyset, String>,
}

/// Which known keys begin with which bytes, to turn away almost every
/// window of a file before the full comparison: a bit for each key's first
/// two bytes (8 KiB, which stays in the nearest cache while a file is
/// searched byte by byte), then one for its first three (2 MiB, asked only
/// for the few windows the first lets through).
struct KeyFilter {
    near: Vec<u64>,
    far: Vec<u64>,
}

impl KeyFilter {
    const NEAR_BITS: usize = 1 << 16;
    const FAR_BITS: usize = 1 << 24;

    fn new() -> Self {
        Self { near: vec![0; Self::NEAR_BITS / 64], far: vec![0; Self::FAR_BITS / 64] }
    }

    fn slots(bytes: &[u8]) -> (usize, usize) {
        let near = usize::from(bytes[0]) | usize::from(bytes[1]) << 8;
        (near, near | usize::from(bytes[2]) << 16)
    }

    fn insert(&mut self, key: &[u8]) {
        let (near, far) = Self::slots(key);
        self.near[near / 64] |= 1 << (near % 64);
        self.far[far / 64] |= 1 << (far % 64);
    }

    /// False if no known key begins as `window` does.
    fn may_hold(&self, window: &[u8]) -> bool {
        let (near, far) = Self::slots(window);
        self.near[near / 64] & (1 << (near % 64)) != 0 && self.far[far / 64] & (1 << (far % 64)) != 0
    }
}

pub struct DurableKeys {
    dir: PathBuf,
    store_id: u64,
    master: Option<MasterKey>,
    /// By inode.
    segments: BTreeMap<u64, Segment>,
    /// (entity, generation) -> (segment inode, record index).
    index: BTreeMap<(String, u32), Vec<(u64, usize)>>,
    /// (bucket, wrapping generation) -> (segment inode, record index).
    by_wrap: BTreeMap<(usize, u32), Vec<(u64, usize)>>,
    /// By inode.
    keyset_files: BTreeMap<u64, KeysetFile>,
    /// The newest valid copy of the keyset, or why there is none.
    pub keyset: Result<Keyset, String>,
    /// Every key a durable record was seen to open, and whose it is.
    known: BTreeMap<[u8; 32], (String, u32)>,
    filter: KeyFilter,
    /// How far each durable file was searched: inode -> (mark, length).
    searched: BTreeMap<u64, (u64, usize)>,
    clear: Vec<ClearKey>,
}

/// Parses the committed groups of `bytes` from `from` (a group boundary, or
/// 0 for the header), appending their key records; returns where the last
/// whole group ends. Reading stops at the first frame that is not whole and
/// valid.
fn parse_segment(bytes: &[u8], from: usize, out: &mut Vec<(DurableRecord, u64)>) -> usize {
    let mut at = from.max(SEGMENT_HEADER_LEN);
    let mut parsed_to = at;
    let mut group: Vec<DurableRecord> = Vec::new();
    while let Some(rest) = bytes.get(at..) {
        let Ok((_, body)) = read_frame(rest) else { break };
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
            Ok(Record::Commit(_)) => {
                out.extend(group.drain(..).map(|r| (r, at as u64)));
                parsed_to = at;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    parsed_to
}

impl DurableKeys {
    /// Nothing read yet of the store in `dir`.
    pub fn new(dir: &Path, store_id: u64, master: Option<MasterKey>) -> Self {
        Self {
            dir: dir.to_owned(),
            store_id,
            master,
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            by_wrap: BTreeMap::new(),
            keyset_files: BTreeMap::new(),
            keyset: Err("not read yet".into()),
            known: BTreeMap::new(),
            filter: KeyFilter::new(),
            searched: BTreeMap::new(),
            clear: Vec::new(),
        }
    }

    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// Brings everything up to date with `disk`'s durable image. A store
    /// with another id (a rebuilt META) is read afresh.
    pub fn refresh(&mut self, disk: &SimDisk, store_id: u64) {
        if store_id != self.store_id {
            *self = Self::new(&self.dir.clone(), store_id, self.master.clone());
        }
        let mark = disk.durable_mark();
        let files = disk.durable_files();
        let fresh = self.refresh_segments(disk, mark, &files);
        self.refresh_keysets(disk, mark, &files);
        self.learn(&fresh);
        self.search(disk, mark, &files);
    }

    /// Parses what is new in every durable segment; returns the records
    /// parsed now.
    fn refresh_segments(&mut self, disk: &SimDisk, mark: u64, files: &[(PathBuf, u64)]) -> Vec<(u64, usize)> {
        let mut order: Vec<(u64, u64)> = files
            .iter()
            .filter(|(path, _)| path.parent() == Some(self.dir.as_path()))
            .filter_map(|(path, inode)| Some((parse_segment_name(&path.file_name()?.to_string_lossy())?, *inode)))
            .collect();
        order.sort();
        let gone: Vec<u64> = self.segments.keys().filter(|i| !order.iter().any(|(_, o)| o == *i)).copied().collect();
        for inode in gone {
            self.forget_segment(inode);
        }
        let mut fresh = Vec::new();
        for &(_, inode) in &order {
            let known = self.segments.get(&inode).map(|s| (s.mark, s.parsed_to));
            let from = match known {
                None => 0,
                Some((seen, parsed_to)) => match disk.durable_changed_since(inode, seen) {
                    None => continue,
                    Some(low) if low < parsed_to as u64 => {
                        self.forget_segment(inode);
                        0
                    }
                    Some(_) => parsed_to,
                },
            };
            let segment = self.segments.entry(inode).or_insert_with(|| Segment {
                mark,
                parsed_to: 0,
                limit: u64::MAX,
                records: Vec::new(),
            });
            let first = segment.records.len();
            let parsed = disk.with_durable(inode, |bytes| parse_segment(bytes, from, &mut segment.records));
            segment.parsed_to = parsed.unwrap_or(from);
            segment.mark = mark;
            for (n, (record, _)) in segment.records.iter().enumerate().skip(first) {
                self.index.entry((record.entity.clone(), record.generation)).or_default().push((inode, n));
                let wrap = (bucket_of(&record.entity), record.wrap_generation);
                self.by_wrap.entry(wrap).or_default().push((inode, n));
                fresh.push((inode, n));
            }
        }
        // Each segment ends where its successor's header says it does.
        for pair in order.windows(2) {
            let header = disk.with_durable(pair[1].1, SegmentHeader::decode).flatten();
            if let Some(segment) = self.segments.get_mut(&pair[0].1) {
                segment.limit = header.map_or(u64::MAX, |h| h.prev_end);
            }
        }
        if let Some(segment) = order.last().and_then(|(_, inode)| self.segments.get_mut(inode)) {
            segment.limit = u64::MAX;
        }
        fresh
    }

    fn forget_segment(&mut self, inode: u64) {
        if self.segments.remove(&inode).is_some() {
            let keep = |places: &mut Vec<(u64, usize)>| {
                places.retain(|(i, _)| *i != inode);
                !places.is_empty()
            };
            self.index.retain(|_, places| keep(places));
            self.by_wrap.retain(|_, places| keep(places));
        }
    }

    /// Decodes every durable keyset file that is new or changed (both
    /// copies and their temporary files, in the store and in salvage).
    fn refresh_keysets(&mut self, disk: &SimDisk, mark: u64, files: &[(PathBuf, u64)]) {
        let is_keyset = |path: &Path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(KEYS_NAME));
        let keysets: Vec<&(PathBuf, u64)> = files.iter().filter(|(path, _)| is_keyset(path)).collect();
        self.keyset_files.retain(|inode, _| keysets.iter().any(|(_, i)| i == inode));
        for (path, inode) in keysets {
            let stale = match self.keyset_files.get(inode) {
                Some(file) => disk.durable_changed_since(*inode, file.mark).is_some() || file.path != *path,
                None => true,
            };
            if stale {
                let decoded = disk
                    .with_durable(*inode, |bytes| Keyset::decode(bytes, self.store_id, self.master.as_ref()))
                    .map_or_else(|| Err("gone".to_owned()), |d| d.map_err(|e| e.to_string()));
                self.keyset_files.insert(*inode, KeysetFile { path: path.clone(), mark, decoded });
            }
        }
        let copy = |name: &str| {
            let path = self.dir.join(name);
            match self.keyset_files.values().find(|f| f.path == path) {
                Some(file) => file.decoded.clone(),
                None => Err(format!("there is no durable {name}")),
            }
        };
        self.keyset = match (copy(KEYS_NAME), copy(KEYS_COPY_NAME)) {
            (Ok(a), Ok(b)) => Ok(if a.sequence >= b.sequence { a } else { b }),
            (Ok(k), Err(_)) | (Err(_), Ok(k)) => Ok(k),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        };
    }

    /// Learns the key of every fresh record that a durable keyset opens.
    fn learn(&mut self, fresh: &[(u64, usize)]) {
        for &(inode, n) in fresh {
            let record = &self.segments[&inode].records[n].0;
            let key = self.keysets().find_map(|(_, ks)| self.open_with(ks, record));
            if let Some(key) = key {
                let bytes = *key.expose_secret();
                self.filter.insert(&bytes);
                let who = (record.entity.clone(), record.generation);
                self.known.entry(bytes).or_insert(who);
            }
        }
    }

    /// Searches the durable bytes not searched yet for every known key.
    fn search(&mut self, disk: &SimDisk, mark: u64, files: &[(PathBuf, u64)]) {
        self.searched.retain(|inode, _| files.iter().any(|(_, i)| i == inode));
        for (path, inode) in files {
            let from = match self.searched.get(inode) {
                None => 0,
                Some(&(seen, len)) => match disk.durable_changed_since(*inode, seen) {
                    None => continue,
                    Some(low) => (low as usize).min(len),
                },
            };
            let (filter, known) = (&self.filter, &self.known);
            let found = disk.with_durable(*inode, |bytes| {
                let start = from.saturating_sub(31);
                let mut hits = Vec::new();
                for (at, window) in bytes.get(start..).unwrap_or_default().windows(32).enumerate() {
                    if !filter.may_hold(window) {
                        continue;
                    }
                    if let Some((entity, generation)) = window.try_into().ok().and_then(|k: [u8; 32]| known.get(&k)) {
                        let offset = (start + at) as u64;
                        hits.push(ClearKey {
                            entity: entity.clone(),
                            generation: *generation,
                            path: path.clone(),
                            offset,
                        });
                    }
                }
                (hits, bytes.len())
            });
            let Some((hits, len)) = found else { continue };
            for hit in hits {
                if !self.clear.contains(&hit) {
                    self.clear.push(hit);
                }
            }
            self.searched.insert(*inode, (mark, len));
        }
    }

    /// Every durable keyset file that decodes, with its path.
    pub fn keysets(&self) -> impl Iterator<Item = (&Path, &Keyset)> {
        self.keyset_files.values().filter_map(|f| Some((f.path.as_path(), f.decoded.as_ref().ok()?)))
    }

    /// Whether `inode` is a durable keyset file of the store (a copy or its
    /// temporary file, not one set aside in salvage).
    pub fn is_store_keyset(&self, inode: u64) -> bool {
        self.keyset_files.get(&inode).is_some_and(|f| f.path.parent() == Some(self.dir.as_path()))
    }

    /// Entity keys found in the clear in durable files.
    pub fn clear(&self) -> &[ClearKey] {
        &self.clear
    }

    /// The key `record` wraps, if `keyset` holds its wrapping key.
    pub fn open_with(&self, keyset: &Keyset, record: &DurableRecord) -> Option<Key> {
        let wrapping = keyset.wrap_key(bucket_of(&record.entity), record.wrap_generation)?;
        let aad = wrap_aad(self.store_id, &record.entity, record.generation, record.wrap_generation);
        unwrap(wrapping, &aad, &record.wrapped).ok()
    }

    /// The record at `place` if recovery would read it (it lies within its
    /// segment's end).
    fn readable(&self, &(inode, n): &(u64, usize)) -> Option<&DurableRecord> {
        let segment = self.segments.get(&inode)?;
        let (record, end) = segment.records.get(n)?;
        (*end <= segment.limit).then_some(record)
    }

    /// The records of `entity`'s generations up to `through` that recovery
    /// would read.
    pub fn records_of<'a>(&'a self, entity: &str, through: u32) -> impl Iterator<Item = &'a DurableRecord> + 'a {
        let range = (entity.to_owned(), 0)..=(entity.to_owned(), through);
        self.index.range(range).flat_map(|(_, places)| places.iter()).filter_map(|place| self.readable(place))
    }

    /// The records recovery would read that are wrapped under `bucket`'s
    /// wrapping key of generation `wrap_generation`.
    pub fn records_wrapped_under(&self, bucket: usize, wrap_generation: u32) -> impl Iterator<Item = &DurableRecord> {
        let places = self.by_wrap.get(&(bucket, wrap_generation)).map_or(&[][..], Vec::as_slice);
        places.iter().filter_map(|place| self.readable(place))
    }

    /// Every key record recovery would read (within its segment's end).
    pub fn records(&self) -> impl Iterator<Item = &DurableRecord> {
        self.segments.values().flat_map(|s| s.records.iter().filter(|(_, end)| *end <= s.limit).map(|(r, _)| r))
    }

    /// The key of `(entity, generation)` as the durable image opens it.
    pub fn open(&self, entity: &str, generation: u32) -> Option<Key> {
        let keyset = self.keyset.as_ref().ok()?;
        self.records_of(entity, generation)
            .filter(|r| r.generation == generation)
            .find_map(|r| self.open_with(keyset, r))
    }
}
