//! Payloads stay in the journal and are read when asked for: memory holds
//! an index. Damage the disk does to a committed event after it was read
//! into the index (a flipped bit, another frame written over it, a sector
//! that no longer reads) is a typed read error naming the event and the
//! bytes, never other data; every other event still reads, and a reopen
//! finds the damage. A store that kept payloads in memory, or that trusted
//! the bytes at an event's place without checking them, fails here.

mod common;

use common::faulty::FaultyEnv;
use common::{event, segments, small_segments};
use shale_store::journal::record::read_frame;
use shale_store::limits::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use shale_store::{CheckpointUse, OpenError, Options, ReadError, Region, Store};

const EVENTS: u32 = 300;

fn fill(store: &Store<impl shale_store::Env>) {
    for i in 0..EVENTS {
        store.append(event(&format!("e{}", i % 7), "tick", format!("payload-{i:05}").as_bytes())).unwrap();
    }
}

/// The byte ranges of every frame of a segment file, after its header.
fn frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while let Ok((_, body)) = read_frame(&bytes[at..]) {
        out.push(at..at + FRAME_HEADER_LEN + body.len());
        at += FRAME_HEADER_LEN + body.len();
    }
    out
}

/// The segment and frame range of the event whose payload is `payload`.
fn find(dir: &std::path::Path, payload: &[u8]) -> (std::path::PathBuf, std::ops::Range<usize>) {
    for path in segments(dir) {
        let bytes = std::fs::read(&path).unwrap();
        for frame in frames(&bytes) {
            if bytes[frame.clone()].ends_with(payload) {
                return (path, frame);
            }
        }
    }
    panic!("no frame holds {payload:?}")
}

fn patch(path: &std::path::Path, at: usize, bytes: &[u8]) {
    let mut all = std::fs::read(path).unwrap();
    all[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, all).unwrap();
}

fn all_but(store: &Store<impl shale_store::Env>, bad: u64) {
    for global in (1..=u64::from(EVENTS)).filter(|&g| g != bad) {
        let got = store.read_from(global, 1).unwrap();
        assert_eq!(&*got[0].payload, format!("payload-{:05}", global - 1).as_bytes(), "event {global}");
    }
}

#[test]
fn a_flipped_bit_after_open_is_a_typed_error_for_that_event_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_segments()).unwrap();
    fill(&store);
    // Nothing has read the event since it was written: its bytes come
    // from the disk as the damage left them.
    let (path, frame) = find(dir.path(), b"payload-00099");
    let byte = std::fs::read(&path).unwrap()[frame.end - 1] ^ 0x10;
    patch(&path, frame.end - 1, &[byte]);
    match store.read_from(100, 1) {
        Err(ReadError::Damaged { id, file, range, .. }) => {
            assert_eq!(id.global_seq(), 100);
            assert_eq!(file, path);
            assert_eq!(range, frame.start as u64..frame.end as u64);
        }
        other => panic!("a damaged event reads as {other:?}"),
    }
    assert!(matches!(store.query(&Region::all()), Err(ReadError::Damaged { .. })), "a query meets it too");
    all_but(&store, 100);
    store.close().unwrap();
    // A reopen from the checkpoint (which covers the damaged frame) does
    // not read it; the reads that do report it, as before.
    let store = Store::open(dir.path(), small_segments()).unwrap();
    assert!(matches!(store.recovery_report().checkpoint, CheckpointUse::Used { .. }));
    assert!(matches!(store.read_from(100, 1), Err(ReadError::Damaged { .. })));
    all_but(&store, 100);
    drop(store);
    // A reopen that reads the whole journal finds it.
    let err = Store::open(dir.path(), Options { full_scan: true, ..small_segments() }).map(|_| ()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt(_)), "a full scan finds it: {err}");
}

#[test]
fn another_valid_frame_at_an_events_place_is_never_read_as_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_segments()).unwrap();
    fill(&store);
    // Events 120 and 121 have frames of the same length: copy 120's whole
    // frame (a valid frame, checksum and all) over 121's.
    let (path, from) = find(dir.path(), b"payload-00119");
    let (path_to, to) = find(dir.path(), b"payload-00120");
    assert_eq!(from.len(), to.len());
    let copy = std::fs::read(&path).unwrap()[from.clone()].to_vec();
    patch(&path_to, to.start, &copy);
    match store.read_from(121, 1) {
        Err(ReadError::Damaged { id, .. }) => assert_eq!(id.global_seq(), 121),
        other => panic!("a frame of event 120 at 121's place reads as {other:?}"),
    }
    all_but(&store, 121);
}

#[test]
fn bytes_that_no_longer_read_are_an_io_error_and_the_rest_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (env, faults) = FaultyEnv::new();
    let store = Store::open_in(env, dir.path(), small_segments()).unwrap();
    fill(&store);
    let (path, frame) = find(dir.path(), b"payload-00200");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    faults.lock().unwrap().unreadable = vec![(name, frame.start as u64 + 20..frame.start as u64 + 21)];
    match store.read_from(201, 1) {
        Err(ReadError::Io { id, file, .. }) => {
            assert_eq!(id.global_seq(), 201);
            assert_eq!(file, path);
        }
        other => panic!("an unreadable event reads as {other:?}"),
    }
    // Its neighbours in the same block read on their own.
    all_but(&store, 201);
    faults.lock().unwrap().unreadable.clear();
    assert_eq!(&*store.read_from(201, 1).unwrap()[0].payload, b"payload-00200", "it reads once the disk does");
}

#[test]
fn a_store_reopened_reads_every_payload_from_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options { segment_size: 8192, ..Options::default() }).unwrap();
    fill(&store);
    store.close().unwrap();
    assert!(segments(dir.path()).len() > 3, "the events span segments");
    let store = Store::open(dir.path(), Options { segment_size: 8192, ..Options::default() }).unwrap();
    let all = store.read_from(1, EVENTS as usize).unwrap();
    assert_eq!(all.len(), EVENTS as usize);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(&*e.payload, format!("payload-{i:05}").as_bytes());
    }
    let one = store.query(&Region::entity("e3")).unwrap();
    assert_eq!(one.len(), (0..EVENTS).filter(|i| i % 7 == 3).count());
    assert!(one.iter().enumerate().all(|(i, e)| e.entity_seq == i as u64 + 1));
    assert_eq!(store.reader().verify_chains(), Ok(()));
}
