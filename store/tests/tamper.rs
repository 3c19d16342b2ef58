//! A sealed payload moved under another event's identity never opens. For
//! every ordered pair of stored events, the test copies one's ciphertext
//! into the other's frame on disk (same length, every checksum made valid
//! again, so that only the payload's own binding stands in the way) and
//! reopens the store: reading the target is an integrity error, never the
//! moved plaintext. The pairs differ in entity, scope, kind, id, entity
//! sequence and key generation, in every combination a store can hold
//! (two events of one entity always differ in sequence as well as id);
//! `crypto.rs` shows each part binding the payload alone.

mod common;

use std::borrow::Cow;

use common::segments;
use shale_store::journal::record::{
    decode_body, encode_begin, encode_commit, encode_event, frame_crc, read_frame, Begin, Commit, Record,
};
use shale_store::limits::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use shale_store::{Coordinate, Encryption, EventId, NewEvent, Options, ReadError, Store};

fn encrypted() -> Options {
    Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() }
}

/// One event frame in a segment: where it is, and its global sequence.
struct Placed {
    global: u64,
    frame: std::ops::Range<usize>,
}

/// The range of every whole frame of `bytes` after the header.
fn frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while let Ok((_, body)) = read_frame(&bytes[at..]) {
        let end = at + FRAME_HEADER_LEN + body.len();
        out.push(at..end);
        at = end;
    }
    out
}

fn events(bytes: &[u8]) -> Vec<Placed> {
    let mut placed = Vec::new();
    for range in frames(bytes) {
        let (_, body) = read_frame(&bytes[range.start..]).unwrap();
        if let Record::Event(e) = decode_body(body).unwrap() {
            placed.push(Placed { global: e.global_seq, frame: range.clone() });
        }
    }
    placed
}

/// `bytes` with `to`'s payload replaced by `from`'s, its frame and group
/// checksums made valid again.
fn moved(bytes: &[u8], from: &Placed, to: &Placed) -> Vec<u8> {
    let payload_of = |p: &Placed| match decode_body(read_frame(&bytes[p.frame.start..]).unwrap().1).unwrap() {
        Record::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    };
    let source = payload_of(from).payload.into_owned();
    let mut target = payload_of(to);
    assert_eq!(source.len(), target.payload.len(), "the test keeps every payload the same length");
    target.payload = Cow::Owned(source);
    let mut frame = Vec::new();
    encode_event(&mut frame, &target);
    assert_eq!(frame.len(), to.frame.len());
    let mut out = bytes.to_vec();
    out[to.frame.clone()].copy_from_slice(&frame);
    rechain(&mut out);
    out
}

/// Makes every group checksum, and every begin record's link to the commit
/// before it (`follows`), valid again, in order (the segment's first group
/// keeps its link to the segment before).
fn rechain(out: &mut [u8]) {
    let mut follows = None;
    let mut crc = 0;
    for range in frames(out) {
        let (_, body) = read_frame(&out[range.start..]).unwrap();
        let mut frame = Vec::new();
        match decode_body(body).unwrap() {
            Record::Begin(begin) => {
                let header = encode_begin(&mut frame, &Begin { follows: follows.unwrap_or(begin.follows), ..begin });
                crc = crc32c::crc32c(&header);
            }
            Record::Commit(commit) => {
                let header = encode_commit(&mut frame, &Commit { group_crc: crc, ..commit });
                follows = Some(frame_crc(&header));
            }
            _ => {
                crc = crc32c::crc32c_append(crc, &out[range.start..range.start + FRAME_HEADER_LEN]);
                continue;
            }
        }
        out[range].copy_from_slice(&frame);
    }
}

#[test]
fn a_payload_moved_under_another_identity_never_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), encrypted()).unwrap();
    let mut plaintexts: Vec<(EventId, Vec<u8>)> = Vec::new();
    let mut append = |store: &Store<_>, entity: &str, scope: &str, kind: &str| {
        let plain = format!("{entity:>5}{scope:>5}{kind:>5}{:>5}", plaintexts.len()).into_bytes();
        let receipt =
            store.append(NewEvent::new(Coordinate::new(entity, scope).unwrap(), kind, plain.clone())).unwrap();
        plaintexts.push((receipt.id, plain));
    };
    append(&store, "a", "main", "k1");
    append(&store, "a", "main", "k1"); // the same but for id and sequence
    append(&store, "a", "main", "k2"); // another kind
    append(&store, "a", "audit", "k1"); // another scope
    append(&store, "b", "main", "k1"); // another entity (and key)
    store.shred("b").unwrap();
    append(&store, "b", "main", "k1"); // another generation of b's key
    append(&store, "b", "main", "k1");
    store.close().unwrap();

    let segment = segments(dir.path()).pop().unwrap();
    let original = std::fs::read(&segment).unwrap();
    let placed = events(&original);
    assert_eq!(placed.len(), plaintexts.len());
    let mut tried = 0;
    for from in &placed {
        for to in placed.iter().filter(|t| t.global != from.global) {
            std::fs::write(&segment, moved(&original, from, to)).unwrap();
            let (id, _) = &plaintexts[to.global as usize - 1];
            // Opened from the checkpoint (if the journal still ends where
            // it says), the moved frame is not the one the index names:
            // damage, never data.
            let store = Store::open(dir.path(), encrypted()).unwrap();
            let read = store.get(*id);
            let refused = matches!(read, Err(ReadError::Damaged { .. } | ReadError::Integrity { .. }))
                || (to.global == 5 && matches!(read, Err(ReadError::Shredded { .. })));
            assert!(refused, "event {} read as {read:?}", to.global);
            drop(store);
            // Opened by a full scan, its frame checks and its seal does not.
            let store = Store::open(dir.path(), Options { full_scan: true, ..encrypted() }).unwrap();
            let moved_plain = &plaintexts[from.global as usize - 1].1;
            match store.get(*id) {
                // b's first event was shredded: no key opens anything there.
                Err(ReadError::Shredded { .. }) => assert_eq!(to.global, 5),
                Err(ReadError::Integrity { .. }) => tried += 1,
                Ok(event) => panic!(
                    "event {} read {:?} with event {}'s ciphertext (moved plaintext {:?})",
                    to.global,
                    event.map(|e| e.payload),
                    from.global,
                    String::from_utf8_lossy(moved_plain)
                ),
                Err(other) => panic!("unexpected {other}"),
            }
            store.close().unwrap();
        }
    }
    assert_eq!(tried, 7 * 6 - 6, "every pair but those into the shredded event");
    // And the untouched store still reads every live event. (Its last
    // checkpoint indexes the last tampered journal: opened from it, the
    // restored frames read as damage, never as data; a full scan reads
    // the journal as it is.)
    std::fs::write(&segment, &original).unwrap();
    let store = Store::open(dir.path(), Options { full_scan: true, ..encrypted() }).unwrap();
    for (global, (id, plain)) in plaintexts.iter().enumerate().filter(|(g, _)| *g != 4) {
        assert_eq!(&*store.get(*id).unwrap().unwrap().payload, &plain[..], "event {}", global + 1);
    }
}
