//! The event record's postcard encoding, written and read directly: the
//! bytes `postcard` writes and takes (the tests hold the two equal, on
//! valid and broken bodies alike), without serde's per-field and per-byte
//! calls. Every commit encodes its events and every recovery and read
//! decodes them.

use std::borrow::Cow;

use super::{EventRecord, TAG_EVENT};

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
pub(super) fn decode_event_body(body: &[u8]) -> Option<EventRecord<'_>> {
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
pub(super) fn push_event_body(b: &mut Vec<u8>, event: &EventRecord<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
