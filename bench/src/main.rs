//! shale-store next to a raw append-only file and SQLite (WAL,
//! `synchronous=FULL`, one transaction per commit), side by side in one run
//! on the same disk: 200-byte payloads over 1,000 entities.
//!
//! - W1 single durable appends, one thread (and again beside two CPU-bound
//!   neighbour threads);
//! - W2 batches of 100 events, W3 batches of 1,000;
//! - W4 single appends from 4 threads;
//! - W5 reopen and read every event back through the public read path;
//! - W6 walks of the causal graph (50 causes deep);
//! - RSS: peak memory of a reopen and full read of a large store.
//!
//! The systems take turns in every workload (a few rounds each), so a
//! noisy neighbour hits all of them alike. Results are printed as a
//! Markdown table with ratios to the raw file and to SQLite, and written to
//! `reports/bench/`. Run: `cargo run --release -p shale-bench -- --quick`.

mod engines;
mod report;
mod rss;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

use engines::{Engine, Ev, System};
use report::{Report, Row};

const PAYLOAD_LEN: usize = 200;
const ENTITIES: u32 = 1_000;
/// Turns each system takes in a workload.
const ROUNDS: usize = 3;
const WALK_DEPTH: usize = 50;

#[derive(Parser)]
#[command(about = "shale-store next to a raw file and SQLite, side by side")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Smaller workloads (about a minute in all).
    #[arg(long)]
    quick: bool,
    /// Where the stores are made (default: the system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "reports/bench")]
    out: PathBuf,
    /// Events for the memory test (default 20,000,000; 500,000 with --quick;
    /// 0 skips it).
    #[arg(long)]
    rss_events: Option<u64>,
    /// Run only these workloads (e.g. `W1,W5`; W1 and W4 include their
    /// busy variants).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// (Internal) one phase of the memory test, in its own process.
    RssChild {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        events: u64,
        #[arg(long)]
        phase: rss::Phase,
    },
}

struct Sizes {
    single: usize,
    batches_100: usize,
    batches_1000: usize,
    per_thread: usize,
    reread: usize,
    chains: usize,
    chain_len: usize,
    walks: usize,
    rss_events: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        match quick {
            true => Self {
                single: 300,
                batches_100: 30,
                batches_1000: 9,
                per_thread: 150,
                reread: 50_000,
                chains: 20,
                chain_len: 60,
                walks: 300,
                rss_events: 500_000,
            },
            false => Self {
                single: 3_000,
                batches_100: 150,
                batches_1000: 45,
                per_thread: 1_500,
                reread: 200_000,
                chains: 100,
                chain_len: 100,
                walks: 3_000,
                rss_events: 20_000_000,
            },
        }
    }
}

/// The `n`th event of a workload: entities in a scattered round robin.
fn ev(n: usize) -> Ev {
    let mut payload = vec![0u8; PAYLOAD_LEN];
    payload[..8].copy_from_slice(&(n as u64).to_le_bytes());
    payload[8..].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 31 + n) as u8);
    Ev { entity: (n as u32).wrapping_mul(7_919) % ENTITIES, payload, cause: None }
}

/// A fresh directory for one system in one workload.
fn workdir(base: &Path, workload: &str, system: System) -> PathBuf {
    let dir = base.join(format!("{workload}-{system:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the bench directory");
    dir
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("a histogram from 1 ns to 10 minutes")
}

/// Commits `commits` commits of `size` events from one thread per turn,
/// each system in turn, `ROUNDS` times; one row per system.
fn commits(base: &Path, workload: &str, commits: usize, size: usize, threads: usize) -> Vec<Row> {
    let engines: Vec<(System, Box<dyn Engine>)> =
        System::ALL.iter().map(|&s| (s, s.open(&workdir(base, workload, s)))).collect();
    let mut totals: Vec<(Duration, Histogram<u64>)> = engines.iter().map(|_| (Duration::ZERO, histogram())).collect();
    let per_round = commits.div_ceil(ROUNDS);
    for round in 0..ROUNDS {
        for ((_, engine), (elapsed, latencies)) in engines.iter().zip(&mut totals) {
            let start = Instant::now();
            let parts: Vec<Histogram<u64>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let engine = &**engine;
                        scope.spawn(move || {
                            let mut commit = engine.committer();
                            let mut latencies = histogram();
                            for c in 0..per_round {
                                let first = ((round * threads + t) * per_round + c) * size;
                                let events: Vec<Ev> = (first..first + size).map(ev).collect();
                                let began = Instant::now();
                                commit(&events);
                                latencies.saturating_record(began.elapsed().as_nanos() as u64);
                            }
                            latencies
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("a bench thread")).collect()
            });
            *elapsed += start.elapsed();
            parts.iter().for_each(|p| latencies.add(p).expect("same histogram bounds"));
        }
    }
    let events = (per_round * ROUNDS * threads * size) as u64;
    engines
        .iter()
        .zip(totals)
        .map(|((system, _), (elapsed, lat))| Row::new(workload, *system, events, elapsed, Some(&lat)))
        .collect()
}

/// Runs `f` with two threads beside it that keep a core busy each.
fn beside_busy_neighbours<T>(f: impl FnOnce() -> T) -> T {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                    }
                }
            });
        }
        let result = f();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Commits events `0..events` to `engine` in batches of 1,000.
fn fill(engine: &dyn Engine, events: usize) {
    let mut commit = engine.committer();
    for first in (0..events).step_by(1_000) {
        commit(&(first..(first + 1_000).min(events)).map(ev).collect::<Vec<_>>());
    }
}

/// W5: fills each store, closes it, then times a reopen and a full read:
/// shale from the checkpoint its close wrote, then again by a full scan of
/// its journal (the others are timed twice the same way, side by side).
fn reread(base: &Path, events: usize) -> Vec<Row> {
    let (mut rows, mut scans) = (Vec::new(), Vec::new());
    for system in System::ALL {
        let dir = workdir(base, "W5", system);
        fill(&*system.open(&dir), events);
        for (workload, full_scan) in [("W5 reopen + read all", false), ("W5 reopen by full scan + read all", true)] {
            let start = Instant::now();
            let engine = system.open_with(&dir, full_scan);
            let read = engine.read_all();
            let elapsed = start.elapsed();
            assert_eq!(read, events, "{} read back every event", system.name());
            let row = Row::new(workload, system, events as u64, elapsed, None);
            if full_scan {
                scans.push(row)
            } else {
                rows.push(row)
            }
        }
    }
    rows.extend(scans);
    rows
}

/// W6: chains of causes, then walks from their tips.
fn walks(base: &Path, sizes: &Sizes) -> Vec<Row> {
    let mut rows = Vec::new();
    for system in System::ALL {
        let engine = system.open(&workdir(base, "W6", system));
        let mut commit = engine.committer();
        let mut tips: Vec<Option<u128>> = vec![None; sizes.chains];
        for n in 0..sizes.chains * sizes.chain_len {
            let chain = n % sizes.chains;
            let mut event = ev(n);
            event.cause = tips[chain];
            tips[chain] = commit(&[event]).first().copied();
        }
        drop(commit);
        let start = Instant::now();
        let mut found = 0;
        for w in 0..sizes.walks {
            let Some(tip) = tips[w % sizes.chains] else { continue };
            match engine.walk(tip, WALK_DEPTH) {
                Some(n) => found += n,
                None => break,
            }
        }
        if found > 0 {
            assert_eq!(
                found,
                sizes.walks * WALK_DEPTH.min(sizes.chain_len - 1),
                "{} walked every chain",
                system.name()
            );
            rows.push(Row::new("W6 causal walks (50 deep)", system, sizes.walks as u64, start.elapsed(), None));
        }
    }
    rows
}

fn main() {
    let cli = Cli::parse();
    if let Some(Command::RssChild { dir, events, phase }) = cli.command {
        rss::child(&dir, events, phase);
        return;
    }
    let sizes = Sizes::new(cli.quick);
    let base = cli.dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("shale-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("make the bench directory");
    let mut report = Report::new(cli.quick);
    let wanted = |name: &str| cli.only.is_empty() || cli.only.iter().any(|w| w.eq_ignore_ascii_case(name));
    let mut run = |name: &str, rows: &dyn Fn() -> Vec<Row>| {
        if wanted(name) {
            report.rows.extend(rows());
            eprintln!("{name}: done");
        }
    };
    run("W1", &|| commits(&base, "W1 single appends", sizes.single, 1, 1));
    run("W1", &|| beside_busy_neighbours(|| commits(&base, "W1 beside 2 busy threads", sizes.single, 1, 1)));
    run("W2", &|| commits(&base, "W2 batches of 100", sizes.batches_100, 100, 1));
    run("W3", &|| commits(&base, "W3 batches of 1,000", sizes.batches_1000, 1_000, 1));
    run("W4", &|| commits(&base, "W4 single appends, 4 threads", sizes.per_thread, 1, 4));
    run("W4", &|| beside_busy_neighbours(|| commits(&base, "W4 beside 2 busy threads", sizes.per_thread, 1, 4)));
    run("W5", &|| reread(&base, sizes.reread));
    run("W6", &|| walks(&base, &sizes));
    let rss_events = cli.rss_events.unwrap_or(sizes.rss_events);
    if rss_events > 0 && wanted("RSS") {
        report.rss = Some(rss::measure(&base.join("rss"), rss_events));
        eprintln!("RSS: done");
    }
    let _ = std::fs::remove_dir_all(&base);
    let markdown = report.markdown();
    println!("{markdown}");
    let name = if cli.quick { "bench-quick" } else { "bench" };
    report.write(&cli.out, name).expect("write the report");
    eprintln!("written to {}", cli.out.join(format!("{name}.md")).display());
}
