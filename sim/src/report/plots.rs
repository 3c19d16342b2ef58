//! The report's SVG plots, drawn with `plotters`: horizontal bars, one row
//! per category, a bar per series (side by side, or stacked). Text is left
//! to the viewer's fonts, so the files are the same on every machine.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::hist::QUANTILES;
use super::{Report, SeedStats};
use crate::faults::FaultClass;
use crate::run::stats::Request;

/// The plots, by file name, with their titles.
pub const PLOTS: [(&str, &str); 5] = [
    ("outcomes.svg", "Outcomes per scenario"),
    ("faults.svg", "Faults injected and noticed, per class"),
    ("crash-points.svg", "Crash points by phase of the commit path"),
    ("latency.svg", "Simulated latency percentiles"),
    ("seeds-per-second.svg", "Seeds per second (one job), per scenario"),
];

/// Crash points shown; the rest are summed into one row.
const CRASH_POINTS_SHOWN: usize = 24;

const WIDTH: u32 = 960;
const ROW_PX: u32 = 22;
const GREEN: RGBColor = RGBColor(46, 139, 87);
const RED: RGBColor = RGBColor(200, 40, 40);
const BLUE: RGBColor = RGBColor(50, 100, 200);
const ORANGE: RGBColor = RGBColor(230, 140, 20);
const GREY: RGBColor = RGBColor(150, 150, 150);
const SHADES: [RGBColor; 5] =
    [RGBColor(198, 219, 239), RGBColor(107, 174, 214), RGBColor(33, 113, 181), RGBColor(8, 48, 107), RGBColor(0, 0, 0)];

struct Series {
    name: String,
    color: RGBColor,
    values: Vec<f64>,
}

struct Bars<'a> {
    title: &'a str,
    x_label: &'a str,
    rows: Vec<String>,
    series: Vec<Series>,
    stacked: bool,
    log: bool,
}

pub fn render(report: &Report) -> Result<Vec<(&'static str, String)>, String> {
    let all = report.all_stats();
    let plots = [outcomes(report), faults(&all), crash_points(&all), latency(&all), seeds_per_second(report)];
    PLOTS.iter().zip(plots).map(|((file, _), bars)| Ok((*file, draw(&bars)?))).collect()
}

fn title(file: &str) -> &'static str {
    PLOTS.iter().find(|(f, _)| *f == file).map_or("", |(_, t)| t)
}

fn outcomes(r: &Report) -> Bars<'static> {
    let rows = r.scenarios.iter().map(|s| s.name.clone());
    let pick = |f: &dyn Fn(&super::ScenarioReport) -> u64| r.scenarios.iter().map(|s| f(s) as f64).collect();
    let series = vec![
        Series { name: "passed".into(), color: GREEN, values: pick(&|s| if s.is_canary() { 0 } else { s.passed }) },
        Series { name: "failed".into(), color: RED, values: pick(&|s| if s.is_canary() { 0 } else { s.failed }) },
        Series {
            name: "canary: seeds until caught".into(),
            color: BLUE,
            values: pick(&|s| if s.is_canary() && s.met_expectation { s.seeds_run } else { 0 }),
        },
        Series {
            name: "canary: seeds, NOT caught".into(),
            color: ORANGE,
            values: pick(&|s| if s.is_canary() && !s.met_expectation { s.seeds_run } else { 0 }),
        },
    ];
    Bars { title: title("outcomes.svg"), x_label: "seeds", rows: rows.collect(), series, stacked: true, log: false }
}

fn faults(all: &SeedStats) -> Bars<'static> {
    let tally = |c: &FaultClass| all.faults.get(c).cloned().unwrap_or_default();
    let rows = FaultClass::ALL.iter().map(|c| match tally(c).injected {
        0 => format!("{c:?} (never injected)"),
        _ => format!("{c:?}"),
    });
    let series = vec![
        Series {
            name: "injected".into(),
            color: GREY,
            values: FaultClass::ALL.iter().map(|c| tally(c).injected as f64).collect(),
        },
        Series {
            name: "noticed".into(),
            color: BLUE,
            values: FaultClass::ALL.iter().map(|c| tally(c).observed as f64).collect(),
        },
    ];
    Bars {
        title: title("faults.svg"),
        x_label: "faults (log scale)",
        rows: rows.collect(),
        series,
        stacked: false,
        log: true,
    }
}

fn crash_points(all: &SeedStats) -> Bars<'static> {
    let mut points: Vec<(String, u64)> = all.crash_points.iter().map(|(p, n)| (p.clone(), *n)).collect();
    points.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if points.len() > CRASH_POINTS_SHOWN {
        let rest: u64 = points[CRASH_POINTS_SHOWN - 1..].iter().map(|p| p.1).sum();
        points.truncate(CRASH_POINTS_SHOWN - 1);
        points.push(("(all others)".into(), rest));
    }
    let series =
        vec![Series { name: "crashes".into(), color: RED, values: points.iter().map(|p| p.1 as f64).collect() }];
    let rows = points.into_iter().map(|p| p.0).collect();
    Bars { title: title("crash-points.svg"), x_label: "crashes", rows, series, stacked: false, log: false }
}

fn latency(all: &SeedStats) -> Bars<'static> {
    let requests: Vec<Request> =
        Request::ALL.into_iter().filter(|r| all.latency.get(r).is_some_and(|h| h.count() > 0)).collect();
    let series = QUANTILES
        .iter()
        .zip(SHADES)
        .map(|((name, q), color)| Series {
            name: (*name).to_owned(),
            color,
            values: requests.iter().map(|r| all.latency[r].quantile(*q) as f64 / 1e6).collect(),
        })
        .collect();
    let rows = requests.iter().map(|r| r.name().to_owned()).collect();
    Bars { title: title("latency.svg"), x_label: "simulated ms (log scale)", rows, series, stacked: false, log: true }
}

fn seeds_per_second(r: &Report) -> Bars<'static> {
    let real: Vec<_> = r.scenarios.iter().filter(|s| !s.is_canary()).collect();
    let values = real.iter().map(|s| s.seeds_run as f64 / s.run_s.max(1e-9)).collect();
    let rows = real.iter().map(|s| s.name.clone()).collect();
    let series = vec![Series { name: "seeds/s".into(), color: GREEN, values }];
    Bars {
        title: title("seeds-per-second.svg"),
        x_label: "seeds per second of one core",
        rows,
        series,
        stacked: false,
        log: false,
    }
}

/// An axis number: whole numbers without decimals.
fn number(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn draw(bars: &Bars) -> Result<String, String> {
    let mut svg = String::new();
    let rows = bars.rows.len().max(1) as u32;
    // A row per category, a slot per series (side by side) and one gap.
    let slots = if bars.stacked { 2 } else { bars.series.len() as u32 + 1 };
    let height = 90 + rows * ROW_PX.max(slots * 6) + 20 * bars.series.len() as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let totals: Vec<f64> = (0..bars.rows.len())
            .map(|i| {
                let v = bars.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0));
                if bars.stacked {
                    v.sum()
                } else {
                    v.fold(0.0, f64::max)
                }
            })
            .collect();
        let top = totals.iter().copied().fold(0.0, f64::max).max(1.0);
        // Room on the right for the legend.
        let max = if bars.log { top * 8.0 } else { top * 1.35 };
        let label_width = bars.rows.iter().map(|r| r.len()).max().unwrap_or(8).min(48) as u32 * 7 + 10;
        let mut builder = ChartBuilder::on(&root);
        builder.caption(bars.title, ("sans-serif", 18)).margin(10).x_label_area_size(35).y_label_area_size(label_width);
        let y = (0..(rows * slots) as i32).into_segmented();
        let names = bars.rows.clone();
        let slot_label = move |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(k) | SegmentValue::Exact(k) if (*k as u32) % slots == (slots - 1) / 2 => {
                let row = (rows as i32 - 1).checked_sub(*k / slots as i32).filter(|r| *r >= 0);
                row.and_then(|r| names.get(r as usize)).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        let rects = |x0: f64, x1: f64, slot: i32, color: RGBColor| {
            Rectangle::new([(x0, SegmentValue::Exact(slot)), (x1, SegmentValue::Exact(slot + 1))], color.filled())
        };
        macro_rules! plot {
            ($chart:expr, $floor:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .y_labels((rows * slots) as usize)
                    .y_label_formatter(&slot_label)
                    .x_label_formatter(&|x: &f64| number(*x))
                    .x_desc(bars.x_label)
                    .label_style(("sans-serif", 12))
                    .draw()
                    .map_err(|e| e.to_string())?;
                for (si, series) in bars.series.iter().enumerate() {
                    let mut boxes = Vec::new();
                    for (row, value) in series.values.iter().enumerate() {
                        if *value <= 0.0 {
                            continue;
                        }
                        // The first row on top.
                        let base = ((rows - 1 - row as u32) * slots) as i32;
                        let (x0, slot) = match bars.stacked {
                            true => (bars.series[..si].iter().map(|s| s.values[row]).sum::<f64>(), base),
                            false => (0.0, base + si as i32),
                        };
                        boxes.push(rects(x0.max($floor), x0 + value, slot, series.color));
                    }
                    let color = series.color;
                    chart
                        .draw_series(boxes)
                        .map_err(|e| e.to_string())?
                        .label(series.name.clone())
                        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }};
        }
        if bars.log {
            let floor =
                bars.series.iter().flat_map(|s| s.values.iter()).copied().filter(|v| *v > 0.0).fold(max, f64::min)
                    / 2.0;
            plot!(
                builder.build_cartesian_2d((floor.min(0.5)..max).log_scale(), y).map_err(|e| e.to_string())?,
                floor.min(0.5)
            );
        } else {
            plot!(builder.build_cartesian_2d(0.0..max, y).map_err(|e| e.to_string())?, 0.0);
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
