//! Frames and the records inside them; the layout is drawn in FORMAT.md.
//!
//! A frame is `[body length: u32 LE][CRC-32C of body: u32 LE][body]`. The
//! body's first byte is the record tag. Begin and commit records have a
//! fixed layout (so recovery can recognise them at any offset when it looks
//! past a tear); idempotency and event records are postcard.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::limits::{FRAME_BODY_LEN_MAX, FRAME_HEADER_LEN};

mod event;

pub use event::decode_event_named;
use event::{decode_event_body, push_event_body};

pub const TAG_BEGIN: u8 = 1;
pub const TAG_EVENT: u8 = 2;
pub const TAG_IDEMPOTENCY: u8 = 3;
pub const TAG_COMMIT: u8 = 4;
pub const TAG_SHRED: u8 = 5;
pub const TAG_KEY: u8 = 6;
pub const TAG_LOST: u8 = 7;

pub const BEGIN_BODY_LEN: usize = 45;
pub const COMMIT_BODY_LEN: usize = 17;
/// A commit record's whole frame: it ends every group, and its group
/// checksum covers every frame header of the group (a checkpoint keeps a
/// copy of the last one it covers, to know the journal again).
pub const COMMIT_FRAME_LEN: usize = crate::limits::FRAME_HEADER_LEN + COMMIT_BODY_LEN;

/// Opens a group. `flush` numbers the write+fsync the group went out in;
/// `flush_index` of `flush_count` places the group within it. `epoch`
/// names the writer session that wrote it (never 0): it is part of every
/// event id, so an id handed out before a loss never names another event.
/// `follows` is the CRC of the commit frame of the group before it in the
/// journal (0 for the first group): a group written over positions used
/// once before, that the disk hands back in place of the later one, does
/// not follow the group now before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Begin {
    pub group_id: u64,
    pub epoch: u32,
    pub flush: u64,
    pub flush_index: u32,
    pub flush_count: u32,
    pub event_count: u32,
    pub first_global: u64,
    pub follows: u32,
}

/// The body CRC a frame's header records (`frame`: at least its header).
pub fn frame_crc(frame: &[u8]) -> u32 {
    u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// What the group after the one ending in `commit` (a whole commit frame)
/// records it follows: that frame's CRC.
pub fn chain_after(commit: &[u8; COMMIT_FRAME_LEN]) -> u32 {
    frame_crc(commit)
}

/// Closes a group: `group_crc` is the CRC-32C of the 8-byte headers of every
/// frame from the begin record up to (not including) this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    pub group_id: u64,
    pub event_count: u32,
    pub group_crc: u32,
}

/// One event as stored. `payload` is the last field, so its bytes are the
/// last bytes of the frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord<'a> {
    pub global_seq: u64,
    pub entity_seq: u64,
    pub timestamp_ns: u64,
    pub causation: Option<u64>,
    pub correlation: u128,
    pub kind: &'a str,
    pub entity: &'a str,
    pub scope: &'a str,
    /// 0 for a plaintext payload.
    pub key_gen: u32,
    pub hash: [u8; 32],
    /// The stored payload: plaintext, or `nonce || ciphertext || tag`.
    #[serde(borrow, with = "serde_bytes")]
    pub payload: Cow<'a, [u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord<'a> {
    pub key: &'a str,
    pub fingerprint: [u8; 16],
}

/// Names one generation of an entity's key. As a shred record it marks a
/// shred (the keyset no longer holds the key; alone in a group of zero
/// events); as a lost record, a salvage's acceptance that no record of the
/// key opens any more (in a group of zero events holding only such
/// records), so that later opens read its events as lost, not as damage
/// they must refuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord<'a> {
    pub entity: &'a str,
    pub generation: u32,
}

/// An entity's key, wrapped under its bucket's wrapping key of generation
/// `wrap_generation`: written in the flush of the first event that needs
/// it, and again (under the next wrapping key) by a shred in its bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord<'a> {
    pub entity: &'a str,
    pub generation: u32,
    pub wrap_generation: u32,
    /// `crypto::WRAPPED_KEY_LEN` bytes: nonce, sealed key, tag.
    #[serde(borrow, with = "serde_bytes")]
    pub wrapped: &'a [u8],
}

impl KeyRecord<'_> {
    /// The wrapped key, if the record has the right length.
    pub fn wrapped(&self) -> Option<&[u8; crate::crypto::WRAPPED_KEY_LEN]> {
        self.wrapped.try_into().ok()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Begin(Begin),
    Event(EventRecord<'a>),
    Idempotency(IdempotencyRecord<'a>),
    Shred(GenerationRecord<'a>),
    Key(KeyRecord<'a>),
    Lost(GenerationRecord<'a>),
    Commit(Commit),
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes remain than the frame needs.
    Truncated,
    /// The length field is zero or over the limit.
    BadLength,
    /// The body fails its CRC.
    BadChecksum,
    /// The body passes its CRC but does not decode.
    BadBody,
}

impl FrameError {
    pub fn describe(self) -> &'static str {
        match self {
            FrameError::Truncated => "frame runs past the end of the file",
            FrameError::BadLength => "frame length out of range",
            FrameError::BadChecksum => "frame checksum mismatch",
            FrameError::BadBody => "frame body does not decode",
        }
    }
}

/// Appends one frame whose body `write_body` produces; returns the frame's
/// 8-byte header (for the group checksum).
fn push_frame(buf: &mut Vec<u8>, write_body: impl FnOnce(&mut Vec<u8>)) -> [u8; FRAME_HEADER_LEN] {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    write_body(buf);
    let body = &buf[start + FRAME_HEADER_LEN..];
    assert!(!body.is_empty() && body.len() <= FRAME_BODY_LEN_MAX, "frame body of {} bytes", body.len());
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
    buf[start..start + FRAME_HEADER_LEN].copy_from_slice(&header);
    header
}

pub fn encode_begin(buf: &mut Vec<u8>, begin: &Begin) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| {
        b.push(TAG_BEGIN);
        b.extend_from_slice(&begin.group_id.to_le_bytes());
        b.extend_from_slice(&begin.epoch.to_le_bytes());
        b.extend_from_slice(&begin.flush.to_le_bytes());
        b.extend_from_slice(&begin.flush_index.to_le_bytes());
        b.extend_from_slice(&begin.flush_count.to_le_bytes());
        b.extend_from_slice(&begin.event_count.to_le_bytes());
        b.extend_from_slice(&begin.first_global.to_le_bytes());
        b.extend_from_slice(&begin.follows.to_le_bytes());
    })
}

pub fn encode_commit(buf: &mut Vec<u8>, commit: &Commit) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| {
        b.push(TAG_COMMIT);
        b.extend_from_slice(&commit.group_id.to_le_bytes());
        b.extend_from_slice(&commit.event_count.to_le_bytes());
        b.extend_from_slice(&commit.group_crc.to_le_bytes());
    })
}

fn push_postcard<T: Serialize>(b: &mut Vec<u8>, tag: u8, value: &T) {
    b.push(tag);
    let taken = std::mem::take(b);
    #[expect(clippy::expect_used, reason = "postcard into a Vec fails only on allocation failure")]
    let extended = postcard::to_extend(value, taken).expect("postcard encodes into a Vec");
    *b = extended;
}

/// Appends an event frame; returns its header and the byte range of the
/// payload within `buf`.
pub fn encode_event(buf: &mut Vec<u8>, event: &EventRecord<'_>) -> ([u8; FRAME_HEADER_LEN], std::ops::Range<usize>) {
    let header = push_frame(buf, |b| push_event_body(b, event));
    let end = buf.len();
    let payload = end - event.payload.len()..end;
    debug_assert_eq!(&buf[payload.clone()], &event.payload[..]);
    (header, payload)
}

pub fn encode_shred(buf: &mut Vec<u8>, record: &GenerationRecord<'_>) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| push_postcard(b, TAG_SHRED, record))
}

pub fn encode_lost(buf: &mut Vec<u8>, record: &GenerationRecord<'_>) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| push_postcard(b, TAG_LOST, record))
}

pub fn encode_key(buf: &mut Vec<u8>, record: &KeyRecord<'_>) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| push_postcard(b, TAG_KEY, record))
}

pub fn encode_idempotency(buf: &mut Vec<u8>, record: &IdempotencyRecord<'_>) -> [u8; FRAME_HEADER_LEN] {
    push_frame(buf, |b| push_postcard(b, TAG_IDEMPOTENCY, record))
}

/// Reads the frame at the start of `bytes`: its header and its body, checked
/// against the CRC. Never panics, whatever the bytes.
pub fn read_frame(bytes: &[u8]) -> Result<([u8; FRAME_HEADER_LEN], &[u8]), FrameError> {
    let Some(header) = bytes.get(..FRAME_HEADER_LEN) else {
        return Err(FrameError::Truncated);
    };
    let mut head = [0u8; FRAME_HEADER_LEN];
    head.copy_from_slice(header);
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > FRAME_BODY_LEN_MAX {
        return Err(FrameError::BadLength);
    }
    let Some(body) = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
        return Err(FrameError::Truncated);
    };
    if crc32c::crc32c(body) != crc {
        return Err(FrameError::BadChecksum);
    }
    Ok((head, body))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Decodes a body that passed its CRC.
pub fn decode_body(body: &[u8]) -> Result<Record<'_>, FrameError> {
    match body.first() {
        Some(&TAG_BEGIN) if body.len() == BEGIN_BODY_LEN && le_u32(body, 9) != 0 => Ok(Record::Begin(Begin {
            group_id: le_u64(body, 1),
            epoch: le_u32(body, 9),
            flush: le_u64(body, 13),
            flush_index: le_u32(body, 21),
            flush_count: le_u32(body, 25),
            event_count: le_u32(body, 29),
            first_global: le_u64(body, 33),
            follows: le_u32(body, 41),
        })),
        Some(&TAG_COMMIT) if body.len() == COMMIT_BODY_LEN => Ok(Record::Commit(Commit {
            group_id: le_u64(body, 1),
            event_count: le_u32(body, 9),
            group_crc: le_u32(body, 13),
        })),
        // The payload must end the body (recovery takes its bytes from
        // there), so nothing may follow the record.
        Some(&TAG_EVENT) => decode_event_body(&body[1..]).map(Record::Event).ok_or(FrameError::BadBody),
        Some(&TAG_SHRED) => postcard::from_bytes(&body[1..]).map(Record::Shred).map_err(|_| FrameError::BadBody),
        Some(&TAG_LOST) => match postcard::from_bytes::<GenerationRecord<'_>>(&body[1..]) {
            Ok(lost) if lost.generation > 0 => Ok(Record::Lost(lost)),
            _ => Err(FrameError::BadBody),
        },
        Some(&TAG_KEY) => match postcard::from_bytes::<KeyRecord<'_>>(&body[1..]) {
            Ok(key) if key.wrapped().is_some() && key.generation > 0 => Ok(Record::Key(key)),
            _ => Err(FrameError::BadBody),
        },
        Some(&TAG_IDEMPOTENCY) => {
            postcard::from_bytes(&body[1..]).map(Record::Idempotency).map_err(|_| FrameError::BadBody)
        }
        _ => Err(FrameError::BadBody),
    }
}

/// If a valid begin frame starts at `bytes[0]`, returns it. Used to look for
/// committed data past a bad frame.
pub fn begin_at(bytes: &[u8]) -> Option<Begin> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if len != BEGIN_BODY_LEN || bytes.get(FRAME_HEADER_LEN) != Some(&TAG_BEGIN) {
        return None;
    }
    match read_frame(bytes) {
        Ok((_, body)) => match decode_body(body) {
            Ok(Record::Begin(begin)) => Some(begin),
            _ => None,
        },
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_event(payload: &[u8]) -> EventRecord<'_> {
        EventRecord {
            global_seq: 7,
            entity_seq: 3,
            timestamp_ns: 99,
            causation: Some(5),
            correlation: 5,
            kind: "deposited",
            entity: "account-1",
            scope: "main",
            key_gen: 0,
            hash: [9; 32],
            payload: Cow::Borrowed(payload),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let begin = Begin {
            group_id: 4,
            epoch: 9,
            flush: 2,
            flush_index: 1,
            flush_count: 3,
            event_count: 1,
            first_global: 7,
            follows: 0xdead_beef,
        };
        encode_begin(&mut buf, &begin);
        let event = sample_event(b"hello");
        let (_, payload) = encode_event(&mut buf, &event);
        assert_eq!(&buf[payload], b"hello");
        let idem = IdempotencyRecord { key: "k", fingerprint: [3; 16] };
        encode_idempotency(&mut buf, &idem);
        let wrapped = [8u8; crate::crypto::WRAPPED_KEY_LEN];
        let key = KeyRecord { entity: "account-1", generation: 2, wrap_generation: 5, wrapped: &wrapped };
        encode_key(&mut buf, &key);
        let shred = GenerationRecord { entity: "account-2", generation: 3 };
        encode_shred(&mut buf, &shred);
        let lost = GenerationRecord { entity: "account-3", generation: 1 };
        encode_lost(&mut buf, &lost);
        let commit = Commit { group_id: 4, event_count: 1, group_crc: 77 };
        encode_commit(&mut buf, &commit);

        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            let (_, body) = read_frame(&buf[at..]).unwrap();
            at += FRAME_HEADER_LEN + body.len();
            seen.push(decode_body(body).unwrap());
        }
        assert_eq!(
            seen,
            vec![
                Record::Begin(begin),
                Record::Event(event),
                Record::Idempotency(idem),
                Record::Key(key),
                Record::Shred(shred),
                Record::Lost(lost),
                Record::Commit(commit)
            ]
        );
        assert_eq!(begin_at(&buf), Some(begin));
        assert_eq!(begin_at(&buf[1..]), None);
    }

    #[test]
    fn an_event_body_with_bytes_after_the_record_is_refused() {
        let mut buf = Vec::new();
        encode_event(&mut buf, &sample_event(b"payload"));
        let mut body = buf[FRAME_HEADER_LEN..].to_vec();
        assert!(matches!(decode_body(&body), Ok(Record::Event(_))));
        body.push(0);
        assert_eq!(decode_body(&body), Err(FrameError::BadBody));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let mut buf = Vec::new();
        encode_event(&mut buf, &sample_event(b"payload"));
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(read_frame(&bad).is_err(), "flip of bit {bit} in byte {byte} went unnoticed");
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            if let Ok((_, body)) = read_frame(&bytes) {
                let _ = decode_body(body);
            }
            let _ = decode_body(&bytes);
            let _ = begin_at(&bytes);
        }
    }
}
