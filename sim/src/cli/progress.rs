//! A sweep's progress: an `indicatif` bar on a terminal (seeds done,
//! seeds/s, failures so far, ETA), plain lines every few seconds anywhere
//! else (CI logs). A failure is printed the moment it is found, with its
//! repro command.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shale_sim::report::Failure;
use shale_sim::sweep::{Entry, Progress};

/// How often plain progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    /// Failures and the summary only.
    None,
}

pub struct Watcher {
    bar: Option<ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: Mutex<Instant>,
    planned: AtomicU64,
    done: AtomicU64,
    failures: AtomicU64,
    time_limit: Option<Duration>,
}

impl Watcher {
    pub fn new(mode: Mode, time_limit: Option<Duration>) -> Watcher {
        let terminal = std::io::stderr().is_terminal();
        let bar = matches!(mode, Mode::Bar) || (mode == Mode::Auto && terminal);
        let bar = bar.then(|| {
            let template = match time_limit {
                Some(_) => "{elapsed_precise} {spinner} {pos} seeds, {per_sec}, {msg}",
                None => "{elapsed_precise} [{bar:32}] {pos}/{len} seeds, {per_sec}, ETA {eta}, {msg}",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|e| unreachable!("the template is valid: {e}"))
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()).with_style(style);
            bar.set_message("0 failures");
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        let plain = !matches!(mode, Mode::None) && bar.is_none();
        Watcher {
            bar,
            plain,
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            planned: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            time_limit,
        }
    }

    /// Prints `line` above the bar, or as it is.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn plain_line(&self) {
        let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() < PLAIN_EVERY {
            return;
        }
        *last = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = self.done.load(Ordering::Relaxed);
        let planned = self.planned.load(Ordering::Relaxed);
        let rate = done as f64 / elapsed.max(1e-9);
        let remaining = match self.time_limit {
            Some(limit) => (limit.as_secs_f64() - elapsed).max(0.0),
            None => planned.saturating_sub(done) as f64 / rate.max(1e-9),
        };
        let of = if self.time_limit.is_some() { String::new() } else { format!("/{planned}") };
        println!(
            "sweep: {done}{of} seeds, {rate:.1} seeds/s, {} failures, {:.0} s to go",
            self.failures.load(Ordering::Relaxed),
            remaining
        );
    }
}

impl Progress for Watcher {
    fn planned(&self, seeds: u64) {
        self.planned.fetch_add(seeds, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(seeds);
        }
    }

    fn skipped(&self, seeds: u64) {
        self.planned.fetch_sub(seeds, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(bar.length().unwrap_or(0).saturating_sub(seeds));
        }
    }

    fn seed_done(&self, _scenario: &str) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(1),
            None if self.plain => self.plain_line(),
            None => {}
        }
    }

    fn failure(&self, entry: &Entry, failure: &Failure) {
        if entry.scenario.expect == shale_sim::scenario::Expect::MustFail {
            self.println(&format!(
                "canary {} caught at seed {}: {}",
                entry.scenario.name, failure.seed, failure.summary
            ));
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{n} failures"));
        }
        self.println(&format!(
            "FAIL {} seed {} ({}): {}\n     reproduce: {}\n     shrink:    {}",
            entry.scenario.name,
            failure.seed,
            failure.class.name(),
            failure.summary,
            failure.repro,
            failure.shrink
        ));
    }
}
