//! The bench's results: rows of (workload, system, rate, latency), the
//! memory test, and their Markdown and JSON forms.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engines::System;
use crate::rss::RssResult;

#[derive(Serialize)]
pub struct Row {
    pub workload: String,
    pub system: System,
    /// Events committed or read (walks, for W6).
    pub count: u64,
    pub seconds: f64,
    /// Per commit, when a workload commits.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

impl Row {
    pub fn new(
        workload: &str,
        system: System,
        count: u64,
        elapsed: Duration,
        latencies: Option<&Histogram<u64>>,
    ) -> Self {
        let quantile = |q: f64| latencies.map(|h| h.value_at_quantile(q) as f64 / 1_000.0);
        Self {
            workload: workload.to_owned(),
            system,
            count,
            seconds: elapsed.as_secs_f64(),
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
        }
    }

    pub fn rate(&self) -> f64 {
        self.count as f64 / self.seconds.max(1e-9)
    }
}

#[derive(Serialize)]
pub struct Report {
    pub quick: bool,
    pub machine: String,
    pub rows: Vec<Row>,
    pub rss: Option<RssResult>,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, Linux {}", kernel.trim())
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.filter(|b| *b > 0.0).map_or("—".into(), |b| format!("{:.2}", a / b))
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

impl Report {
    pub fn new(quick: bool) -> Self {
        Self { quick, machine: machine(), rows: Vec::new(), rss: None }
    }

    fn rate_of(&self, workload: &str, system: System) -> Option<f64> {
        self.rows.iter().find(|r| r.workload == workload && r.system == system).map(Row::rate)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# shale-store benchmark{}\n\n{}. 200-byte payloads over 1,000 entities; every commit durable \
             (fdatasync / `synchronous=FULL`) before it returns. Rates are events/s (walks/s for W6); \
             latencies are per commit.\n\n",
            if self.quick { " (quick)" } else { "" },
            self.machine
        ));
        out.push_str("| workload | system | rate | p50 µs | p99 µs | ÷ raw | ÷ SQLite | encrypted ÷ plain |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            let rate = row.rate();
            let raw = self.rate_of(&row.workload, System::Raw);
            let sqlite = self.rate_of(&row.workload, System::Sqlite);
            let sealed = match row.system {
                System::ShaleSealed => ratio(rate, self.rate_of(&row.workload, System::Shale)),
                _ => "".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
                row.workload,
                row.system.name(),
                rate,
                opt(row.p50_us),
                opt(row.p99_us),
                if row.system == System::Raw { "".into() } else { ratio(rate, raw) },
                if row.system == System::Sqlite { "".into() } else { ratio(rate, sqlite) },
                sealed
            ));
        }
        if let Some(rss) = &self.rss {
            out.push_str(&format!(
                "\nMemory: {} events of 200 bytes written ({:.0} events/s), then a fresh process reopened the \
                 store and read them all ({:.0} events/s): peak RSS {:.2} GiB.\n",
                rss.events,
                rss.write_rate,
                rss.read_rate,
                rss.peak_rss_bytes as f64 / f64::from(1u32 << 30)
            ));
        }
        out
    }

    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.md")), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{name}.json")), json)
    }
}
