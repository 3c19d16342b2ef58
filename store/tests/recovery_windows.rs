//! Recovery reads a segment a window at a time (`Options::scan_window`):
//! whatever the window, an open finds what a read of the whole segment
//! finds, the same events, the same torn tail cut, the same damage at the
//! same offset. Groups longer than the window and windows that end inside
//! a frame are both crossed here.

mod common;

use common::{event, segments};
use shale_store::{Batch, InvalidInput, OpenError, Options, Reader, Store};

const SMALL: usize = 4096;

/// Reads the whole journal on every open, so that the scan is what runs.
fn scanning(scan_window: usize) -> Options {
    Options { full_scan: true, scan_window, ..Options::default() }
}

/// One segment of about 150 KiB: single events of many sizes, and batches
/// of up to 16 KiB, some longer than a small window.
fn fill(dir: &std::path::Path) {
    let store = Store::open(dir, Options::default()).unwrap();
    for i in 0..300u32 {
        let payload = vec![i as u8; (i as usize * 37) % 700];
        store.append(event(&format!("e{}", i % 13), "tick", &payload)).unwrap();
        if i % 40 == 7 {
            let batch = (0..16).map(|j| event(&format!("b{j}"), "bulk", &[j as u8; 1000])).collect();
            store.append_batch(Batch::new(batch)).unwrap();
        }
    }
    store.close().unwrap();
    assert_eq!(segments(dir).len(), 1, "one segment, read in many windows");
}

/// Each event's global sequence, payload and hash.
type Events = Vec<(u64, Vec<u8>, [u8; 32])>;

/// Everything a reader gives back, to compare two opens.
fn contents(reader: &Reader) -> (u64, [u8; 32], Events) {
    let events = reader.read_from(1, 100_000).unwrap();
    let events = events.into_iter().map(|e| (e.global_seq, e.payload.to_vec(), e.hash)).collect();
    (reader.last_global(), reader.index_fingerprint(), events)
}

fn opened(dir: &std::path::Path, scan_window: usize) -> Result<(Store, Vec<String>), OpenError> {
    let store = Store::open(dir, scanning(scan_window))?;
    let report = store.recovery_report();
    let cuts = report.truncated.iter().map(|t| format!("{}@{}+{}", t.file.display(), t.offset, t.len)).collect();
    assert_eq!(report.events, store.reader().last_global(), "the report counts every event");
    Ok((store, cuts))
}

fn copy(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    to
}

#[test]
fn a_segment_read_in_windows_recovers_what_a_whole_read_does() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let copied = copy(dir.path());
    let (whole, _) = opened(copied.path(), 4 << 20).unwrap();
    let expected = contents(&whole.reader());
    assert!(expected.0 > 400, "{} events", expected.0);
    for window in [SMALL, SMALL + 1, 5_000, 65_536] {
        let copied = copy(dir.path());
        let (store, cuts) = opened(copied.path(), window).unwrap();
        assert!(cuts.is_empty(), "window {window}: cut {cuts:?}");
        assert!(contents(&store.reader()) == expected, "window {window}: another index or other events");
    }
}

#[test]
fn a_torn_tail_is_cut_alike_whatever_the_window() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let segment = segments(dir.path()).remove(0);
    let len = std::fs::metadata(&segment).unwrap().len();
    // Into the last group: its commit frame, and some bytes before it.
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 20).unwrap();
    let outcome = |window| {
        let dir = copy(dir.path());
        let (store, cuts) = opened(dir.path(), window).unwrap();
        let cuts: Vec<String> = cuts.iter().map(|c| c.replace(&dir.path().display().to_string(), "")).collect();
        (contents(&store.reader()), cuts)
    };
    let whole = outcome(4 << 20);
    assert_eq!(whole.1.len(), 1, "the torn group is cut");
    for window in [SMALL, 7_000] {
        assert!(outcome(window) == whole, "window {window}: another cut or other events");
    }
}

#[test]
fn damage_in_a_later_window_is_found_where_a_whole_read_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let segment = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() * 3 / 4;
    bytes[at] ^= 0x10;
    std::fs::write(&segment, bytes).unwrap();
    let refusal = |window| match opened(copy(dir.path()).path(), window) {
        Err(OpenError::Corrupt(c)) => (c.offset, c.reason),
        Err(other) => panic!("window {window}: expected corruption, got {other}"),
        Ok(_) => panic!("window {window}: opened a damaged store"),
    };
    let whole = refusal(4 << 20);
    assert!(whole.0 <= at as u64 && whole.0 > SMALL as u64 * 4, "damage found at {}", whole.0);
    for window in [SMALL, 6_000] {
        assert_eq!(refusal(window), whole, "window {window}");
    }
    // Salvage keeps the same prefix.
    let kept = |window| {
        let dir = copy(dir.path());
        let store = Store::open(dir.path(), Options { salvage: true, ..scanning(window) }).unwrap();
        contents(&store.reader())
    };
    let whole = kept(4 << 20);
    assert!(whole.0 > 0);
    assert!(kept(SMALL) == whole, "salvage kept another prefix");
}

#[test]
fn a_window_below_the_minimum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    match Store::open(dir.path(), Options { scan_window: 100, ..Options::default() }) {
        Err(OpenError::Invalid(InvalidInput::Option { reason })) => assert!(reason.contains("scan_window"), "{reason}"),
        Err(other) => panic!("expected an invalid option, got {other}"),
        Ok(_) => panic!("opened with a 100-byte scan window"),
    }
}
