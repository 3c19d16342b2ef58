//! Throughput of shale-store next to the raw file operations it is built
//! on, measured side by side in one run on the same disk:
//!
//! 1. single durable appends (one commit, one fsync each) vs. a raw
//!    write + fdatasync loop;
//! 2. batches of 1,000 events vs. raw 1,000-record writes + fdatasync;
//! 3. reopen (recovery) + full read vs. a raw sequential read of the file.
//!
//! Run: `cargo bench -p shale-store --bench throughput` (add `-- --quick`
//! for a shorter run). Set SHALE_BENCH_DIR to measure on another disk.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use shale_store::{Batch, Coordinate, Encryption, NewEvent, Options, Store};

const PAYLOAD: [u8; 64] = [0x5a; 64];
/// Bytes a raw record stands for: the payload plus a plausible header.
const RAW_RECORD_LEN: usize = 100;
const BATCH_EVENTS: usize = 1_000;

struct Sizes {
    single_commits: usize,
    batches: usize,
}

fn bench_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("SHALE_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("shale-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rate(count: usize, start: Instant) -> f64 {
    count as f64 / start.elapsed().as_secs_f64()
}

fn raw_single(dir: &Path, commits: usize) -> f64 {
    let mut file = OpenOptions::new().create(true).append(true).open(dir.join("raw.log")).unwrap();
    let record = [0x5au8; RAW_RECORD_LEN];
    let start = Instant::now();
    for _ in 0..commits {
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
    }
    rate(commits, start)
}

fn raw_batches(dir: &Path, batches: usize) -> (f64, f64) {
    let path = dir.join("raw-batch.log");
    let mut file = OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let block = vec![0x5au8; RAW_RECORD_LEN * BATCH_EVENTS];
    let start = Instant::now();
    for _ in 0..batches {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
    }
    let write = rate(batches * BATCH_EVENTS, start);
    let start = Instant::now();
    let mut bytes = Vec::new();
    std::fs::File::open(&path).unwrap().read_to_end(&mut bytes).unwrap();
    let records = bytes.len() / RAW_RECORD_LEN;
    std::hint::black_box(bytes.iter().fold(0u8, |a, b| a ^ b));
    (write, rate(records, start))
}

fn shale_single(dir: &Path, commits: usize) -> f64 {
    let store = Store::open(dir, Options::default()).unwrap();
    let coordinate = Coordinate::new("entity-1", "bench").unwrap();
    let start = Instant::now();
    for _ in 0..commits {
        store.append(NewEvent::new(coordinate.clone(), "tick", PAYLOAD.to_vec())).unwrap();
    }
    let r = rate(commits, start);
    store.close().unwrap();
    r
}

fn shale_batches(dir: &Path, batches: usize, options: Options) -> f64 {
    let store = Store::open(dir, options).unwrap();
    let coordinates: Vec<Coordinate> =
        (0..BATCH_EVENTS).map(|i| Coordinate::new(&format!("entity-{i}"), "bench").unwrap()).collect();
    // Built before the clock starts, as the raw loop's buffer is: this
    // measures the store, not the caller building its events.
    let prepared: Vec<Batch> = (0..batches)
        .map(|_| Batch::new(coordinates.iter().map(|c| NewEvent::new(c.clone(), "tick", PAYLOAD.to_vec())).collect()))
        .collect();
    let start = Instant::now();
    for batch in prepared {
        store.append_batch(batch).unwrap();
    }
    let r = rate(batches * BATCH_EVENTS, start);
    store.close().unwrap();
    r
}

fn shale_reopen_read(dir: &Path, options: Options) -> (f64, usize) {
    let start = Instant::now();
    let store = Store::open(dir, options).unwrap();
    let reader = store.reader();
    let mut from = 1;
    let mut total = 0;
    loop {
        let events = reader.read_from(from, 100_000).unwrap();
        let Some(last) = events.last() else { break };
        from = last.global_seq + 1;
        total += events.len();
        std::hint::black_box(events.iter().map(|e| e.payload.len()).sum::<usize>());
    }
    (rate(total, start), total)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes =
        if quick { Sizes { single_commits: 300, batches: 20 } } else { Sizes { single_commits: 2_000, batches: 200 } };
    let raw_dir = bench_dir("raw");
    let single_dir = bench_dir("single");
    let batch_dir = bench_dir("batch");
    let sealed_dir = bench_dir("sealed");
    let sealed = Options { encryption: Encryption::PerEntity { master_key: None }, ..Options::default() };

    // Interleave raw and shale so both see the same disk weather.
    let raw1 = raw_single(&raw_dir, sizes.single_commits);
    let shale1 = shale_single(&single_dir, sizes.single_commits);
    let (raw2, raw3) = raw_batches(&raw_dir, sizes.batches);
    let shale2 = shale_batches(&batch_dir, sizes.batches, Options::default());
    let sealed2 = shale_batches(&sealed_dir, sizes.batches, sealed.clone());
    let (shale3, read) = shale_reopen_read(&batch_dir, Options::default());
    let (sealed3, _) = shale_reopen_read(&sealed_dir, sealed);

    println!("workload                          raw            shale          shale/raw");
    println!("single durable appends (commits/s) {raw1:>12.0}   {shale1:>12.0}   {:>6.2}", shale1 / raw1);
    println!("batches of 1,000 (events/s)        {raw2:>12.0}   {shale2:>12.0}   {:>6.2}", shale2 / raw2);
    println!("reopen + full read (events/s)      {raw3:>12.0}   {shale3:>12.0}   {:>6.2}", shale3 / raw3);
    println!(
        "({read} events read back; raw records are {RAW_RECORD_LEN} bytes, shale payloads {} bytes)",
        PAYLOAD.len()
    );
    println!();
    println!("encryption                        plaintext      sealed         sealed/plain");
    println!("batches of 1,000 (events/s)        {shale2:>12.0}   {sealed2:>12.0}   {:>6.2}", sealed2 / shale2);
    println!("reopen + full read (events/s)      {shale3:>12.0}   {sealed3:>12.0}   {:>6.2}", sealed3 / shale3);
    for dir in [raw_dir, single_dir, batch_dir, sealed_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
