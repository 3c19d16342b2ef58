//! Segment files: names and the 64-byte header (drawn in FORMAT.md).

use crate::limits::SEGMENT_HEADER_LEN;

pub const SEGMENT_MAGIC: [u8; 8] = *b"SHALESEG";
/// The journal format this build writes and reads. Version 1 (event ids
/// without an epoch), version 2 (begin records without `follows`) and
/// version 3 (hash chain in BLAKE3) are refused with a typed error, never
/// misread.
pub const FORMAT_VERSION: u32 = 4;
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
/// A segment is written under this suffix first and renamed into place
/// once its header is durable, so a segment file by its real name always
/// had a durable header.
pub const SEGMENT_TEMP_SUFFIX: &str = ".tmp";

/// What a segment says about itself and about the segment before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment: u64,
    pub store_id: u64,
    /// Length of the previous segment's durable, committed bytes when this
    /// one was started: recovery reads the previous segment up to here and
    /// no further. 0 for the first segment.
    pub prev_end: u64,
    /// Group id of this segment's first group.
    pub first_group_id: u64,
    /// Flush number of this segment's first flush.
    pub first_flush: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.segment.to_le_bytes());
        b[20..28].copy_from_slice(&self.store_id.to_le_bytes());
        b[28..36].copy_from_slice(&self.prev_end.to_le_bytes());
        b[36..44].copy_from_slice(&self.first_group_id.to_le_bytes());
        b[44..52].copy_from_slice(&self.first_flush.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a header; `None` if the bytes are not a valid header of this
    /// format version (see [`header_version`] for telling an old format
    /// from damage).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b = b.get(..SEGMENT_HEADER_LEN)?;
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        if header_version(b)? != FORMAT_VERSION {
            return None;
        }
        Some(Self {
            segment: u64_at(12),
            store_id: u64_at(20),
            prev_end: u64_at(28),
            first_group_id: u64_at(36),
            first_flush: u64_at(44),
        })
    }
}

/// The format version of an intact segment header (magic and checksum
/// valid), whatever that version is; `None` if the bytes are damaged.
pub fn header_version(b: &[u8]) -> Option<u32> {
    let b = b.get(..SEGMENT_HEADER_LEN)?;
    let crc = u32::from_le_bytes(b[60..64].try_into().ok()?);
    if b[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&b[..60]) != crc {
        return None;
    }
    Some(u32::from_le_bytes(b[8..12].try_into().ok()?))
}

pub fn segment_name(segment: u64) -> String {
    format!("{SEGMENT_PREFIX}{segment:016x}{SEGMENT_SUFFIX}")
}

/// The segment number a file name denotes, if it names a segment.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader { segment: 3, store_id: 42, prev_end: 999, first_group_id: 17, first_flush: 12 };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert_eq!(SegmentHeader::decode(&bad), None, "damage at byte {i} went unnoticed");
        }
        assert_eq!(SegmentHeader::decode(&bytes[..10]), None);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("seg-12.log"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
        assert_eq!(parse_segment_name(&format!("{}{SEGMENT_TEMP_SUFFIX}", segment_name(3))), None);
    }
}
