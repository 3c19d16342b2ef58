//! Where every copy of every batch went on the disk, learned from the
//! writes the store issued (the disk's write log), never from the store's
//! own account: each write to a segment is parsed into its groups, and each
//! group is remembered by the hash of its first event (unique to that copy:
//! it chains over everything before it) with the file, the byte range and
//! the moment it was written; and each key record, by the key it holds.
//! The excuses for lost data and the checks of what a salvage set aside are
//! computed against this map.

use std::collections::BTreeMap;
use std::ops::Range;

use shale_store::journal::record::{decode_body, read_frame, Record};
use shale_store::journal::segment::parse_segment_name;
use shale_store::journal::segment::SEGMENT_TEMP_SUFFIX;
use shale_store::limits::FRAME_HEADER_LEN;

use crate::faults::WriteRecord;

/// One copy of a group, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub inode: u64,
    /// The segment it was written to.
    pub segment: u64,
    /// Its bytes in that segment, begin record to commit record.
    pub range: Range<u64>,
    /// The disk operation that wrote it.
    pub op: u64,
    /// The flush it went out in (its begin record says).
    pub flush: u64,
    /// Its first event's global sequence and scope.
    pub first: (u64, String),
    /// The bytes as written.
    pub bytes: Vec<u8>,
}

/// Where a key record was written: (inode, the bytes from the record to
/// the end of its group).
pub type KeyRecordAt = (u64, Range<u64>);

#[derive(Debug, Default)]
pub struct JournalMap {
    /// Copies of groups with events, by the hash of their first event.
    copies: BTreeMap<[u8; 32], Location>,
    /// Every key record of a whole group written, by (entity, generation):
    /// (inode, the bytes from the record to the end of its group, all of
    /// which a reader needs whole to accept it). A key is first written
    /// with the events it seals, then again by each shred in its bucket.
    key_records: BTreeMap<(String, u32), Vec<KeyRecordAt>>,
}

/// The segment number a written path names (its temporary name included).
fn segment_of(path: &std::path::Path) -> Option<u64> {
    let name = path.file_name()?.to_string_lossy();
    parse_segment_name(name.strip_suffix(SEGMENT_TEMP_SUFFIX).unwrap_or(&name))
}

impl JournalMap {
    /// Learns the groups of every journal write in `writes`.
    pub fn absorb(&mut self, writes: &[WriteRecord]) {
        for write in writes {
            let Some(segment) = segment_of(&write.path) else { continue };
            let mut at = 0usize;
            // The group being read: where it starts, its flush, and its
            // first event (hash, global sequence, scope) once seen.
            type FirstEvent = ([u8; 32], u64, String);
            let mut group: Option<(usize, u64, Option<FirstEvent>)> = None;
            let mut keys: Vec<((String, u32), Range<u64>)> = Vec::new();
            while let Ok((_, body)) = read_frame(&write.data[at..]) {
                let end = at + FRAME_HEADER_LEN + body.len();
                let range = write.offset + at as u64..write.offset + end as u64;
                match decode_body(body) {
                    Ok(Record::Begin(begin)) => {
                        group = Some((at, begin.flush, None));
                        keys.clear();
                    }
                    Ok(Record::Key(key)) => keys.push(((key.entity.to_owned(), key.generation), range)),
                    Ok(Record::Event(event)) => {
                        if let Some((_, _, first @ None)) = &mut group {
                            *first = Some((event.hash, event.global_seq, event.scope.to_owned()));
                        }
                    }
                    Ok(Record::Commit(_)) => {
                        for (key, record) in keys.drain(..) {
                            self.key_records.entry(key).or_default().push((write.inode, record.start..range.end));
                        }
                        if let Some((start, flush, Some((hash, global, scope)))) = group.take() {
                            let range = write.offset + start as u64..write.offset + end as u64;
                            let bytes = write.data[start..end].to_vec();
                            let (inode, op, first) = (write.inode, write.op, (global, scope));
                            self.copies.insert(hash, Location { inode, segment, range, op, flush, first, bytes });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
                at = end;
            }
        }
    }

    /// Where every key record of `(entity, generation)` was written, to the
    /// end of its group.
    pub fn key_records(&self, entity: &str, generation: u32) -> &[KeyRecordAt] {
        self.key_records.get(&(entity.to_owned(), generation)).map_or(&[], Vec::as_slice)
    }

    /// Where the copy of a batch whose first event has `hash` was written.
    pub fn copy(&self, hash: &[u8; 32]) -> Option<&Location> {
        self.copies.get(hash)
    }

    /// The hash that names the last copy written of a batch at global
    /// sequence `first_global` whose first event's scope `is_batch` says is
    /// that batch's: the acknowledged one, for a batch acknowledged and
    /// never read back (a copy written later at that position would have
    /// followed a loss of it).
    pub fn last_copy(&self, first_global: u64, is_batch: impl Fn(&str) -> bool) -> Option<[u8; 32]> {
        let copies = self.copies.iter().filter(|(_, l)| l.first.0 == first_global && is_batch(&l.first.1));
        copies.max_by_key(|(_, l)| l.op).map(|(hash, _)| *hash)
    }

    /// Whether `range` of `inode` lies within a group the store wrote there.
    pub fn holds(&self, inode: u64, range: &Range<u64>) -> bool {
        self.copies.values().any(|l| l.inode == inode && l.range.start <= range.start && range.end <= l.range.end)
    }
}
