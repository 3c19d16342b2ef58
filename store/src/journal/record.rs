//! Frames and the records inside them; the layout is drawn in FORMAT.md.
//!
//! A frame is `[body length: u32 LE][CRC-32C of body: u32 LE][body]`. The
//! body's first byte is the record tag. Begin and commit records have a
//! fixed layout (so recovery can recognise them at any offset when it looks
//! past a tear); idempotency and event records are postcard.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::limits::{FRAME_BODY_LEN_MAX, FRAME_HEADER_LEN};

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

/// Postcard's varint: 7 bits a byte, low bits first.
fn push_varint(b: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        b.push((value as u8) | 0x80);
        value >>= 7;
    }
    b.push(value as u8);
}

fn push_bytes(b: &mut Vec<u8>, bytes: &[u8]) {
    push_varint(b, bytes.len() as u128);
    b.extend_from_slice(bytes);
}

/// Postcard's reading of an event record, done directly: the record
/// `push_event_body` writes, taking exactly the bytes postcard would take
/// (a test holds the two equal on valid and broken bodies alike), without
/// serde's per-field and per-byte calls. Recovery and every read decode
/// every event. Nothing may follow the record: the payload ends the frame.
fn decode_event_body(body: &[u8]) -> Option<EventRecord<'_>> {
    decode_event_with(body, |r, _| r.str())
}

/// An event frame's body (tag included) read as the event whose kind,
/// entity and scope are `names` (as the index holds them): each name is
/// compared byte for byte rather than checked as UTF-8. `None` if the body
/// is not that (a reader then decodes it in full to say what it is).
pub fn decode_event_named<'a>(body: &'a [u8], names: [&'a str; 3]) -> Option<EventRecord<'a>> {
    let rest = body.strip_prefix(&[TAG_EVENT])?;
    decode_event_with(rest, |r, i| {
        let bytes = r.bytes()?;
        (bytes == names[i].as_bytes()).then_some(names[i])
    })
}

/// [`decode_event_body`], with the kind, entity and scope (0, 1, 2) each
/// read by `name`.
fn decode_event_with<'a>(
    body: &'a [u8],
    mut name: impl FnMut(&mut Cursor<'a>, usize) -> Option<&'a str>,
) -> Option<EventRecord<'a>> {
    let mut r = Cursor { bytes: body, at: 0 };
    let global_seq = r.varint(64)? as u64;
    let entity_seq = r.varint(64)? as u64;
    let timestamp_ns = r.varint(64)? as u64;
    let causation = match r.take(1)?[0] {
        0 => None,
        1 => Some(r.varint(64)? as u64),
        _ => return None,
    };
    let correlation = r.varint(128)?;
    let (kind, entity, scope) = (name(&mut r, 0)?, name(&mut r, 1)?, name(&mut r, 2)?);
    let key_gen = r.varint(32)? as u32;
    let hash = r.take(32)?.try_into().ok()?;
    let payload = r.bytes()?;
    let record = EventRecord {
        global_seq,
        entity_seq,
        timestamp_ns,
        causation,
        correlation,
        kind,
        entity,
        scope,
        key_gen,
        hash,
        payload: Cow::Borrowed(payload),
    };
    (r.at == body.len()).then_some(record)
}

/// A reading position in a record's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(taken)
    }

    /// A varint of an integer of `bits` bits, as postcard reads one: at
    /// most as many bytes as the bits need, the last holding no bit past
    /// them.
    ///
    /// The first nine bytes (63 bits: every sequence number and time in
    /// practice) are gathered in a `u64`; only longer values (correlation
    /// ids) go on in a `u128`, whose shifts cost several instructions a
    /// byte.
    fn varint(&mut self, bits: u32) -> Option<u128> {
        const IN_U64: usize = 9;
        let max_len = bits.div_ceil(7) as usize;
        let last_max = (1u8 << (bits % 7)) - 1;
        let rest = self.bytes.get(self.at..)?;
        let mut end = |i: usize, byte: u8| {
            self.at += i + 1;
            i + 1 < max_len || byte <= last_max
        };
        let mut low = 0u64;
        for (i, &byte) in rest.iter().take(max_len.min(IN_U64)).enumerate() {
            low |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return end(i, byte).then_some(u128::from(low));
            }
        }
        let mut value = u128::from(low);
        for i in IN_U64..max_len {
            let byte = *rest.get(i)?;
            value |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return end(i, byte).then_some(value);
            }
        }
        None
    }

    /// Bytes with their length first, as a varint of a `usize`.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint(usize::BITS)?).ok()?;
        self.take(len)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

/// The postcard encoding of an event record, written directly: the same
/// bytes `postcard::to_extend` produces (a test holds them equal), without
/// serde's per-byte calls on the commit path.
fn push_event_body(b: &mut Vec<u8>, event: &EventRecord<'_>) {
    b.push(TAG_EVENT);
    push_varint(b, u128::from(event.global_seq));
    push_varint(b, u128::from(event.entity_seq));
    push_varint(b, u128::from(event.timestamp_ns));
    match event.causation {
        None => b.push(0),
        Some(cause) => {
            b.push(1);
            push_varint(b, u128::from(cause));
        }
    }
    push_varint(b, event.correlation);
    push_bytes(b, event.kind.as_bytes());
    push_bytes(b, event.entity.as_bytes());
    push_bytes(b, event.scope.as_bytes());
    push_varint(b, u128::from(event.key_gen));
    b.extend_from_slice(&event.hash);
    push_bytes(b, &event.payload);
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

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A value of random magnitude, so varints of every length occur.
        fn sized(&mut self) -> u64 {
            let v = self.next();
            v >> (self.next() % 64)
        }
    }

    #[test]
    fn the_direct_encoder_writes_exactly_what_postcard_writes() {
        let mut rng = XorShift(0x853c_49e6_748f_ea9b);
        for round in 0..2_000u32 {
            let len = rng.next() % 300;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let entity = "entity-with-a-longer-name-".repeat(round as usize % 7);
            let correlation = (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> (rng.next() % 128);
            let event = EventRecord {
                global_seq: rng.sized(),
                entity_seq: rng.sized(),
                timestamp_ns: rng.sized(),
                causation: if round % 3 == 0 { None } else { Some(rng.sized()) },
                correlation,
                kind: ["k", "deposited", ""][round as usize % 3],
                entity: &entity,
                scope: "main",
                key_gen: rng.sized() as u32,
                hash: [rng.next() as u8; 32],
                payload: Cow::Borrowed(&payload),
            };
            let mut direct = Vec::new();
            push_event_body(&mut direct, &event);
            let reference = postcard::to_extend(&event, vec![TAG_EVENT]).unwrap();
            assert_eq!(direct, reference, "round {round}");
        }
    }

    #[test]
    fn the_direct_decoder_takes_exactly_what_postcard_takes() {
        fn postcard_reads(body: &[u8]) -> Option<EventRecord<'_>> {
            match postcard::take_from_bytes::<EventRecord<'_>>(body) {
                Ok((event, [])) => Some(event),
                _ => None,
            }
        }
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut valid, mut broken) = (0, 0);
        for round in 0..4_000u32 {
            let payload: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
            let kind: &'static str = ["k", "deposited", "", "ü"][round as usize % 4];
            let event = EventRecord {
                global_seq: rng.sized(),
                entity_seq: rng.sized(),
                timestamp_ns: rng.sized(),
                causation: if round % 3 == 0 { None } else { Some(rng.sized()) },
                correlation: u128::from(rng.sized()) << (rng.next() % 64),
                kind,
                entity: "account-7",
                scope: "main",
                key_gen: rng.sized() as u32,
                hash: [rng.next() as u8; 32],
                payload: Cow::Borrowed(&payload),
            };
            let mut body = Vec::new();
            push_event_body(&mut body, &event);
            let mut body = body[1..].to_vec();
            // Every fourth round breaks the bytes: a flipped byte, a cut,
            // a byte more, or a varint's top bits set.
            match round % 8 {
                1 => {
                    let at = (rng.next() % body.len() as u64) as usize;
                    body[at] = rng.next() as u8;
                }
                3 => body.truncate((rng.next() % body.len() as u64) as usize),
                5 => body.push(rng.next() as u8),
                7 => body.splice(0..0, [0xff; 9].into_iter().chain([rng.next() as u8 & 0x7f])).for_each(drop),
                _ => {}
            }
            let direct = decode_event_body(&body);
            assert_eq!(direct, postcard_reads(&body), "round {round}: {body:?}");
            // Read as the event the index names: the same record when the
            // names are the event's own, nothing when any one differs.
            let tagged: Vec<u8> = [TAG_EVENT].into_iter().chain(body.iter().copied()).collect();
            let named = |names: [&'static str; 3]| {
                decode_event_named(&tagged, names).map(|r| (r.kind.to_owned(), r.entity.to_owned(), r.scope.to_owned()))
            };
            // (A broken byte may have changed a name: then it is not the
            // event the index names.)
            let own = direct
                .as_ref()
                .filter(|r| (r.kind, r.entity, r.scope) == (kind, "account-7", "main"))
                .map(|r| (r.kind.to_owned(), r.entity.to_owned(), r.scope.to_owned()));
            assert_eq!(named([kind, "account-7", "main"]), own, "round {round}");
            assert_eq!(named([kind, "account-8", "main"]), None, "round {round}");
            assert_eq!(named(["x", "account-7", "main"]), None, "round {round}");
            match direct {
                Some(_) => valid += 1,
                None => broken += 1,
            }
        }
        assert!(valid > 2_000 && broken > 500, "{valid} valid, {broken} broken");
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
