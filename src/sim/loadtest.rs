//! `tokenroute loadtest`: many concurrent signed OAuth friendship flows against a deployment, with a live
//! progress line, a summary (flows/s, per-step latency percentiles, failures by reason) and an SVG chart of
//! step latency percentiles over the run.
//!
//! The flows are the scripted consumer's ([`super::consumer`]); this module only watches them through a
//! [`StepObserver`] and turns what it sees into figures. Latency figures count successful steps only: a
//! failed step is counted by reason instead, since a fast `401` would otherwise flatter the percentiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::consumer::{run_flows, FlowOptions, ParamMode, Step, StepEvent, StepObserver};
use super::repository::lock;
use super::SimError;

/// `tokenroute loadtest`: drive signed OAuth flows against a target and chart step latency.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of the provider or proxy, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub target: String,
    /// Number of flows.
    #[arg(long, default_value_t = 200)]
    pub flows: usize,
    /// Flows in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Where OAuth parameters travel.
    #[arg(long, value_enum, default_value_t = ParamMode::Mixed)]
    pub params: ParamMode,
    /// Start no flow after this long, e.g. "30s" (flows in flight finish, for at most a minute more).
    #[arg(long, value_parser = crate::config::units::parse_duration)]
    pub duration: Option<Duration>,
    /// Where to write the SVG chart of step latency percentiles over the run.
    #[arg(long, default_value = "loadtest.svg")]
    pub svg: PathBuf,
    /// PEM file of CA certificates to trust for an https target.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// How long flows still running at the `--duration` deadline may take before the run is cut.
pub const DRAIN_CAP: Duration = Duration::from_secs(60);

/// p50, p90 and p99 of a set of latencies (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// How many latencies.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Percentiles {
    /// The percentiles of `latencies` (sorted here); all zero for an empty set.
    pub fn of(latencies: &mut [Duration]) -> Percentiles {
        latencies.sort_unstable();
        let at = |p| percentile(latencies, p).unwrap_or_default();
        Percentiles {
            count: latencies.len(),
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
        }
    }
}

/// The nearest-rank `p`-th percentile (`0 < p <= 100`) of ascending `sorted`: the smallest value with at least
/// `p`% of the values at or below it. `None` for an empty slice.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency of one step across the run's flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLatency {
    /// The step.
    pub step: Step,
    /// Its successful latencies.
    pub latency: Percentiles,
}

/// Latency of the steps that ended within one slice of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the slice, from the start of the run.
    pub start: Duration,
    /// End of the slice.
    pub end: Duration,
    /// Successful steps (of any kind) that ended in it.
    pub latency: Percentiles,
}

/// What a load test measured.
#[derive(Debug, Clone)]
pub struct LoadtestReport {
    /// The base URL.
    pub target: String,
    /// Flows asked for.
    pub flows: usize,
    /// Flows whose every step succeeded.
    pub passed: usize,
    /// Flows that stopped at a failed step.
    pub failed: usize,
    /// Wall time of the run, from before the first flow to after the last.
    pub elapsed: Duration,
    /// Per step, in flow order.
    pub steps: Vec<StepLatency>,
    /// Every successful step together.
    pub all_steps: Percentiles,
    /// `step: reason` → flows that failed so.
    pub failures: BTreeMap<String, usize>,
    /// Step latency over time, one bucket per slice of the run (empty slices left out).
    pub timeline: Vec<Bucket>,
    /// Where the chart was written.
    pub svg: PathBuf,
}

impl LoadtestReport {
    /// Flows that never finished: not started before the deadline, or cut at [`DRAIN_CAP`].
    pub fn not_run(&self) -> usize {
        self.flows.saturating_sub(self.passed + self.failed)
    }

    /// Flows that passed, per second of the run.
    pub fn flows_per_sec(&self) -> f64 {
        per_sec(self.passed, self.elapsed)
    }

    /// The summary as text: totals, a per-step latency table, failures by reason.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} flows against {}: {} passed, {} failed, {} not run in {:.1} s ({:.1} flows/s)",
            self.flows,
            self.target,
            self.passed,
            self.failed,
            self.not_run(),
            self.elapsed.as_secs_f64(),
            self.flows_per_sec()
        );
        let _ = writeln!(
            out,
            "{:<16}{:>8}{:>11}{:>11}{:>11}",
            "step", "ok", "p50 ms", "p90 ms", "p99 ms"
        );
        let rows = self
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.latency))
            .chain([("all steps", self.all_steps)]);
        for (name, p) in rows {
            let _ = writeln!(
                out,
                "{name:<16}{:>8}{:>11.2}{:>11.2}{:>11.2}",
                p.count,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99)
            );
        }
        if self.failures.is_empty() {
            out.push_str("no failures\n");
        } else {
            out.push_str("failures by reason:\n");
            let mut reasons: Vec<_> = self.failures.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (reason, count) in reasons {
                let _ = writeln!(out, "{count:>8}  {reason}");
            }
        }
        let _ = write!(out, "chart: {}", self.svg.display());
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_sec(n: usize, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        n as f64 / elapsed.as_secs_f64()
    }
}

/// One successful step as recorded.
#[derive(Debug, Clone, Copy)]
struct Sample {
    step: Step,
    /// When it ended, from the start of the run.
    ended: Duration,
    latency: Duration,
}

/// What the observer collects while flows run.
#[derive(Debug)]
struct Recorder {
    start: Instant,
    passed: AtomicUsize,
    failed: AtomicUsize,
    samples: Mutex<Vec<Sample>>,
    failures: Mutex<BTreeMap<String, usize>>,
}

impl Recorder {
    fn record(&self, event: &StepEvent<'_>) {
        match event.failure {
            None => {
                lock(&self.samples).push(Sample {
                    step: event.step,
                    ended: self.start.elapsed(),
                    latency: event.latency,
                });
                if event.step == Step::Read3 {
                    self.passed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(failure) => {
                let reason = format!("{}: {}", event.step.as_str(), failure.reason());
                *lock(&self.failures).entry(reason).or_default() += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Runs the load test: flows with a progress line on stderr, then the summary on stdout and the chart in
/// `args.svg`. Errors when the run cannot start (bad target, CA file) or the chart cannot be written; failures
/// of the target are in the report.
pub async fn loadtest(args: LoadtestArgs) -> Result<LoadtestReport, SimError> {
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        passed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        samples: Mutex::new(Vec::with_capacity(
            args.flows.min(100_000) * Step::ALL.len(),
        )),
        failures: Mutex::new(BTreeMap::new()),
    });
    let observer = {
        let recorder = recorder.clone();
        StepObserver::new(move |event| recorder.record(event))
    };
    let mut opts = FlowOptions::new(args.target.clone())
        .flows(args.flows)
        .concurrency(args.concurrency)
        .params(args.params)
        .observer(observer);
    if let Some(path) = &args.ca {
        opts = opts.ca_pem(super::consumer::read_ca_file(path).await?);
    }
    if let Some(duration) = args.duration {
        opts = opts.deadline(tokio::time::Instant::now() + duration);
    }

    let progress = tokio::spawn(show_progress(recorder.clone(), args.flows));
    let run = run_flows(opts);
    let outcome = match args.duration {
        Some(duration) => match tokio::time::timeout(duration + DRAIN_CAP, run).await {
            Ok(result) => result.map(drop),
            Err(_elapsed) => {
                tracing::warn!(cap = ?DRAIN_CAP, "flows still running after the drain cap were cut");
                Ok(())
            }
        },
        None => run.await.map(drop),
    };
    let elapsed = recorder.start.elapsed();
    progress.abort();
    let _ = progress.await;
    draw_progress(&recorder, args.flows, true);
    outcome?;

    let samples = std::mem::take(&mut *lock(&recorder.samples));
    let report = LoadtestReport {
        target: args.target,
        flows: args.flows,
        passed: recorder.passed.load(Ordering::Relaxed),
        failed: recorder.failed.load(Ordering::Relaxed),
        elapsed,
        steps: Step::ALL
            .iter()
            .map(|&step| StepLatency {
                step,
                latency: Percentiles::of(
                    &mut samples
                        .iter()
                        .filter(|s| s.step == step)
                        .map(|s| s.latency)
                        .collect::<Vec<_>>(),
                ),
            })
            .collect(),
        all_steps: Percentiles::of(&mut samples.iter().map(|s| s.latency).collect::<Vec<_>>()),
        failures: std::mem::take(&mut *lock(&recorder.failures)),
        timeline: timeline(&samples, elapsed),
        svg: args.svg,
    };
    let svg = render_svg(
        &report.timeline,
        &format!(
            "Step latency, {} flows against {}",
            report.flows, report.target
        ),
    );
    tokio::fs::write(&report.svg, svg)
        .await
        .map_err(|source| SimError::Write {
            path: report.svg.display().to_string(),
            source,
        })?;
    println!("{}", report.render());
    Ok(report)
}

/// How many slices the chart's time axis is cut into (fewer for a run too short to fill them).
pub const BUCKETS: u32 = 40;

/// Slices `elapsed` into at most [`BUCKETS`] buckets (10 ms at least each) and takes the percentiles of the
/// samples ending in each; empty buckets are left out.
fn timeline(samples: &[Sample], elapsed: Duration) -> Vec<Bucket> {
    let width = (elapsed / BUCKETS).max(Duration::from_millis(10));
    let mut slices: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
    let width_ns = width.as_nanos().max(1);
    for s in samples {
        let index = (s.ended.as_nanos() / width_ns) as u64;
        slices.entry(index).or_default().push(s.latency);
    }
    slices
        .into_iter()
        .map(|(index, mut latencies)| {
            let start = width * index as u32;
            Bucket {
                start,
                end: start + width,
                latency: Percentiles::of(&mut latencies),
            }
        })
        .collect()
}

/// Redraws the progress line every 200 ms on a terminal; elsewhere (a log, CI) prints a line every 5 s.
async fn show_progress(recorder: Arc<Recorder>, flows: usize) {
    let terminal = std::io::stderr().is_terminal();
    let period = Duration::from_millis(if terminal { 200 } else { 5_000 });
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        draw_progress(&recorder, flows, false);
    }
}

fn draw_progress(recorder: &Recorder, flows: usize, last: bool) {
    const WIDTH: usize = 30;
    let passed = recorder.passed.load(Ordering::Relaxed);
    let failed = recorder.failed.load(Ordering::Relaxed);
    let done = passed + failed;
    let elapsed = recorder.start.elapsed();
    let filled = (done * WIDTH)
        .checked_div(flows)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let line = format!(
        "[{}{}] {done}/{flows} flows  {:.1} flows/s  {failed} failed  {:.1} s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        per_sec(done, elapsed),
        elapsed.as_secs_f64()
    );
    let mut err = std::io::stderr().lock();
    let _ = if std::io::stderr().is_terminal() {
        // \r back to column 0, then clear the rest of the line (ANSI EL).
        write!(err, "\r{line}\x1b[K{}", if last { "\n" } else { "" })
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}

/// An SVG line chart of p50, p90 and p99 step latency per time bucket: time since the start on x, latency in
/// milliseconds on y, with ticks, axis labels and a legend. Hand-written: one chart does not justify a
/// plotting dependency.
pub fn render_svg(timeline: &[Bucket], title: &str) -> String {
    const W: f64 = 820.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 72.0;
    const RIGHT: f64 = 110.0;
    const TOP: f64 = 44.0;
    const BOTTOM: f64 = 56.0;
    const SERIES: [(&str, &str); 3] = [("p50", "#1f77b4"), ("p90", "#ff7f0e"), ("p99", "#d62728")];
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;

    let x_max = nice_ceil(timeline.last().map_or(1.0, |b| b.end.as_secs_f64()));
    let y_max = nice_ceil(
        timeline
            .iter()
            .map(|b| ms(b.latency.p99))
            .fold(0.0, f64::max),
    );
    let x = |secs: f64| LEFT + secs / x_max * plot_w;
    let y = |millis: f64| TOP + plot_h - millis / y_max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        xml_escape(title)
    );
    // Grid, ticks and tick labels: 5 steps on each axis.
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let (gx, gy) = (x(f * x_max), y(f * y_max));
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            gy + 4.0,
            tick_label(f * y_max)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#eee"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            tick_label(f * x_max)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"#,
        LEFT + plot_w / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{0:.1}" text-anchor="middle" transform="rotate(-90 18 {0:.1})">step latency (ms)</text>"#,
        TOP + plot_h / 2.0
    );
    // One line per percentile, a point at the middle of each bucket.
    for (k, (name, colour)) in SERIES.iter().enumerate() {
        let value = |b: &Bucket| match k {
            0 => b.latency.p50,
            1 => b.latency.p90,
            _ => b.latency.p99,
        };
        let points: Vec<String> = timeline
            .iter()
            .map(|b| {
                let mid = (b.start + b.end).as_secs_f64() / 2.0;
                format!("{:.1},{:.1}", x(mid), y(ms(value(b))))
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = TOP + 14.0 + 20.0 * k as f64;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
    if timeline.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no successful step</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (1 for anything not positive).
fn nice_ceil(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&n| n >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick value with no more decimals than it needs.
fn tick_label(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn arguments_parse_with_their_defaults_and_a_duration() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: LoadtestArgs,
        }
        let a = Cli::try_parse_from(["t", "--target", "http://x:1"])
            .unwrap()
            .args;
        assert_eq!(
            (a.flows, a.concurrency, a.params),
            (200, 16, ParamMode::Mixed)
        );
        assert_eq!((a.duration, a.svg.to_str()), (None, Some("loadtest.svg")));
        let a = Cli::try_parse_from([
            "t",
            "--target",
            "x",
            "--duration",
            "1m30s",
            "--svg",
            "o.svg",
        ])
        .unwrap()
        .args;
        assert_eq!(a.duration, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["t", "--target", "x", "--duration", "soon"]).is_err());
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted = ms_list(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 90.0), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        let three = ms_list(&[10, 20, 30]);
        assert_eq!(percentile(&three, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&three, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&three, 0.0), Some(Duration::from_millis(10)));
    }

    #[test]
    fn percentile_of_nothing_is_none_and_of_one_value_is_that_value() {
        assert_eq!(percentile(&[], 50.0), None);
        let one = ms_list(&[7]);
        for p in [1.0, 50.0, 99.0] {
            assert_eq!(percentile(&one, p), Some(Duration::from_millis(7)));
        }
    }

    #[test]
    fn percentiles_sort_their_input() {
        let mut values = ms_list(&[9, 1, 5, 3, 7, 2, 8, 4, 6, 10]);
        let p = Percentiles::of(&mut values);
        assert_eq!(p.count, 10);
        assert_eq!(p.p50, Duration::from_millis(5));
        assert_eq!(p.p90, Duration::from_millis(9));
        assert_eq!(p.p99, Duration::from_millis(10));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    fn sample(ended_ms: u64, latency_ms: u64) -> Sample {
        Sample {
            step: Step::Read1,
            ended: Duration::from_millis(ended_ms),
            latency: Duration::from_millis(latency_ms),
        }
    }

    #[test]
    fn timeline_buckets_by_end_time_and_skips_empty_slices() {
        // 4 s run: 100 ms buckets.
        let samples = [sample(50, 1), sample(60, 3), sample(350, 9)];
        let t = timeline(&samples, Duration::from_secs(4));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].start, Duration::ZERO);
        assert_eq!(t[0].end, Duration::from_millis(100));
        assert_eq!(t[0].latency.count, 2);
        assert_eq!(t[0].latency.p99, Duration::from_millis(3));
        assert_eq!(t[1].start, Duration::from_millis(300));
        assert_eq!(t[1].latency.p50, Duration::from_millis(9));
    }

    #[test]
    fn nice_ceil_rounds_up_to_a_readable_axis_end() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(f64::NAN), 1.0);
        assert_eq!(nice_ceil(3.2), 5.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(21.0), 25.0);
        assert_eq!(nice_ceil(0.013), 0.02);
        assert_eq!(nice_ceil(7.0), 10.0);
    }

    #[test]
    fn tick_labels_drop_needless_decimals() {
        assert_eq!(tick_label(5.0), "5");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(0.004), "0.004");
    }

    fn bucket(start_ms: u64, p50: u64, p90: u64, p99: u64) -> Bucket {
        Bucket {
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(start_ms + 100),
            latency: Percentiles {
                count: 10,
                p50: Duration::from_millis(p50),
                p90: Duration::from_millis(p90),
                p99: Duration::from_millis(p99),
            },
        }
    }

    #[test]
    fn svg_has_one_line_per_percentile_with_a_point_per_bucket_and_labelled_axes() {
        let svg = render_svg(
            &[
                bucket(0, 2, 4, 8),
                bucket(100, 3, 5, 9),
                bucket(300, 1, 2, 3),
            ],
            "t",
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        let lines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
        assert_eq!(lines.len(), 3);
        for line in &lines {
            assert_eq!(line.matches(',').count(), 3, "{line}");
        }
        for label in [
            "p50",
            "p90",
            "p99",
            "time since start (s)",
            "step latency (ms)",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        // y axis ends at 10 ms (max p99 9 ms), x axis at 0.5 s (last bucket ends at 0.4 s).
        assert!(svg.contains(">10</text>"));
        assert!(svg.contains(">0.5</text>"));
    }

    #[test]
    fn svg_places_higher_latency_higher_on_the_chart() {
        let svg = render_svg(&[bucket(0, 1, 5, 10)], "t");
        let y_of = |colour: &str| -> f64 {
            let line = svg
                .lines()
                .find(|l| l.starts_with("<polyline") && l.contains(colour))
                .unwrap();
            let points = line.split("points=\"").nth(1).unwrap();
            points.split([',', '"']).nth(1).unwrap().parse().unwrap()
        };
        // SVG y grows downwards.
        assert!(y_of("#1f77b4") > y_of("#ff7f0e"));
        assert!(y_of("#ff7f0e") > y_of("#d62728"));
    }

    #[test]
    fn svg_escapes_the_title_and_says_when_there_is_no_data() {
        let svg = render_svg(&[], "a<b & \"c\"");
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(svg.contains("no successful step"));
    }

    #[test]
    fn report_renders_totals_steps_and_failures() {
        let mut failures = BTreeMap::new();
        failures.insert("read 1: 401 token_rejected".to_string(), 2);
        let report = LoadtestReport {
            target: "http://127.0.0.1:1".into(),
            flows: 10,
            passed: 7,
            failed: 2,
            elapsed: Duration::from_secs(2),
            steps: vec![StepLatency {
                step: Step::Discovery,
                latency: Percentiles::of(&mut ms_list(&[1, 2, 3])),
            }],
            all_steps: Percentiles::of(&mut ms_list(&[1, 2, 3])),
            failures,
            timeline: Vec::new(),
            svg: "x.svg".into(),
        };
        assert_eq!(report.not_run(), 1);
        assert_eq!(report.flows_per_sec(), 3.5);
        let text = report.render();
        assert!(
            text.starts_with("10 flows against http://127.0.0.1:1: 7 passed, 2 failed, 1 not run"),
            "{text}"
        );
        assert!(text.contains("discovery"));
        assert!(
            text.contains("       2  read 1: 401 token_rejected"),
            "{text}"
        );
        assert!(text.ends_with("chart: x.svg"));
    }
}
