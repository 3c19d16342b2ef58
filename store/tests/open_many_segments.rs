//! Recovery keeps at most two segment files open at once: a store of
//! 10,000 segments opens and reads back under a limit of 256 open files.
//! A recovery that held every segment open failed with "too many open
//! files" here. (Alone in its binary: it lowers the process's limit.)

mod common;

use common::faulty::FaultyEnv;
use common::{event, segments};
use shale_store::{Options, Store};

const SEGMENTS: usize = 10_000;
const OPEN_FILES_MAX: u64 = 256;

#[cfg(unix)]
#[test]
fn ten_thousand_segments_open_under_a_low_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { segment_size: 4096, ..Options::default() };
    // Built without fsyncs (this test is about descriptors, not
    // durability): one payload fills one minimum-size segment.
    let (env, faults) = FaultyEnv::new();
    faults.lock().unwrap().skip_syncs = true;
    let store = Store::open_in(env, dir.path(), options.clone()).unwrap();
    let payload = vec![7u8; 4_000];
    for _ in 0..SEGMENTS - 1 {
        store.append(event("a", "tick", &payload)).unwrap();
    }
    store.close().unwrap();
    assert_eq!(segments(dir.path()).len(), SEGMENTS);

    let limit = libc::rlimit { rlim_cur: OPEN_FILES_MAX, rlim_max: OPEN_FILES_MAX * 4 };
    // SAFETY: setrlimit with a valid, initialised struct; it only lowers
    // this process's own limit.
    let lowered = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(lowered, 0, "lowering the open-file limit");
    let store = Store::open(dir.path(), options).unwrap();
    assert_eq!(store.recovery_report().segments, SEGMENTS as u64);
    assert_eq!(store.version("a"), SEGMENTS as u64 - 1);
    let mut from = 1;
    while let Some(last) = store.read_from(from, 1_000).unwrap().last() {
        from = last.global_seq + 1;
    }
    assert_eq!(from, SEGMENTS as u64);
    store.append(event("a", "after", b"x")).unwrap();
}
