//! The memory test: a process writes a large plain store, and a fresh
//! process reopens it and reads every event back; the second one's peak
//! resident set is the figure (a store's memory must not grow with its
//! data).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::engines::System;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Phase {
    Write,
    Read,
}

#[derive(Serialize)]
pub struct RssResult {
    pub events: u64,
    pub write_rate: f64,
    pub read_rate: f64,
    /// Peak resident set of the process that reopened and read the store.
    pub peak_rss_bytes: u64,
}

/// This process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// One phase, in the child process: prints "rate peak_rss".
pub fn child(dir: &Path, events: u64, phase: Phase) {
    let start = Instant::now();
    let engine = System::Shale.open(dir);
    match phase {
        Phase::Write => crate::fill(&*engine, events as usize),
        Phase::Read => assert_eq!(engine.read_all() as u64, events, "every event read back"),
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    println!("{rate} {}", peak_rss());
}

fn run_child(dir: &Path, events: u64, phase: &str) -> (f64, u64) {
    let exe = std::env::current_exe().expect("the bench's own path");
    let out = Command::new(exe)
        .args(["rss-child", "--dir"])
        .arg(dir)
        .args(["--events", &events.to_string(), "--phase", phase])
        .output()
        .expect("run the memory test's child");
    assert!(out.status.success(), "the {phase} phase failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let rate = parts.next().and_then(|r| r.parse().ok()).expect("a rate");
    let rss = parts.next().and_then(|r| r.parse().ok()).expect("a peak RSS");
    (rate, rss)
}

pub fn measure(dir: &Path, events: u64) -> RssResult {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("make the memory test's directory");
    let (write_rate, _) = run_child(dir, events, "write");
    let (read_rate, peak_rss_bytes) = run_child(dir, events, "read");
    let _ = std::fs::remove_dir_all(dir);
    RssResult { events, write_rate, read_rate, peak_rss_bytes }
}
