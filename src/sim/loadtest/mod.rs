//! `tokenroute loadtest`: many concurrent OAuth flows against a deployment, with a live progress line, a
//! summary (flows/s, per-step latency percentiles, failures by reason) and an SVG chart of step latency
//! percentiles, requests and failures per second over the run.
//!
//! The flows are the scripted OAuth 1 consumer's ([`super::consumer`], signed friendship flows) or the
//! OAuth 2 / OpenID Connect client's ([`super::oauth2::client`], every grant); this module only watches them
//! through the client's step observer and turns what it sees into figures, knowing steps by name. Latency
//! figures count successful steps only: a failed step is counted by reason (and in the failures per second)
//! instead, since a fast `401` would otherwise flatter the percentiles.
//!
//! - this file: the arguments, the run, the summary and the progress line;
//! - `flows`: each protocol's flows, hooked to the recorder;
//! - `stats`: percentiles and the run cut into time slices;
//! - `chart`: the SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::consumer::{ParamMode, Resolve};
use super::repository::lock;
use super::{Protocol, SimError};

mod chart;
mod flows;
mod stats;

pub use chart::render_svg;
pub use stats::{percentile, Bucket, Percentiles, BUCKETS};

use stats::{rate, timeline, Sample};

/// `tokenroute loadtest`: drive OAuth flows against a target and chart step latency and throughput.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of the provider or proxy, e.g. http://127.0.0.1:8080 (an http:// URL for oauth2).
    #[arg(long)]
    pub target: String,
    /// The flows to play: signed OAuth 1.0a friendship flows, or OAuth 2 / OpenID Connect grants (code with
    /// PKCE, client credentials, device; both client authentications in turn).
    #[arg(long, value_enum, default_value_t = Protocol::OAuth1)]
    pub protocol: Protocol,
    /// Number of flows [default: 200, or as many as fit in --duration when that is given].
    #[arg(long)]
    pub flows: Option<usize>,
    /// Flows in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Where OAuth parameters travel (OAuth 1 only; OAuth 2 flows put each where its RFC says, and ignore it).
    #[arg(long, value_enum, default_value_t = ParamMode::Mixed)]
    pub params: ParamMode,
    /// Start no flow after this long, e.g. "30s" (flows in flight finish, for at most a minute more).
    #[arg(long, value_parser = crate::config::units::parse_duration)]
    pub duration: Option<Duration>,
    /// Where to write the SVG chart of latency percentiles, requests and failures per second over the run.
    #[arg(long, default_value = "loadtest.svg")]
    pub svg: PathBuf,
    /// PEM file of CA certificates to trust for an https target (OAuth 1 only).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Connect to HOST:PORT at ADDR instead, keeping HOST in URLs, `Host` and the TLS name (curl's --resolve);
    /// repeatable (OAuth 1 only).
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<Resolve>,
    /// Accept any server certificate: encrypted but not authenticated (curl's --insecure); overrides --ca
    /// (OAuth 1 only).
    #[arg(long, short = 'k')]
    pub insecure: bool,
}

/// Flows a run starts when neither `--flows` nor `--duration` says otherwise.
pub const DEFAULT_FLOWS: usize = 200;

/// How many flows a run may start: `--flows` when given; without it [`DEFAULT_FLOWS`], or no limit (`None`)
/// when `--duration` ends the run.
pub fn flow_limit(flows: Option<usize>, duration: Option<Duration>) -> Option<usize> {
    match (flows, duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_FLOWS),
    }
}

/// How long flows still running at the `--duration` deadline may take before the run is cut.
pub const DRAIN_CAP: Duration = Duration::from_secs(60);

/// Latency of one step across the run's flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLatency {
    /// The step's name, as the protocol's flow report calls it.
    pub step: &'static str,
    /// Its successful latencies.
    pub latency: Percentiles,
}

/// What a load test measured.
#[derive(Debug, Clone)]
pub struct LoadtestReport {
    /// The base URL.
    pub target: String,
    /// The flows played.
    pub protocol: Protocol,
    /// Flows asked for; `None` when only the duration bounded the run.
    pub flows: Option<usize>,
    /// Flows whose every step succeeded.
    pub passed: usize,
    /// Flows that stopped at a failed step.
    pub failed: usize,
    /// Wall time of the run, from before the first flow to after the last.
    pub elapsed: Duration,
    /// Per step the flows plan, in flow order.
    pub steps: Vec<StepLatency>,
    /// Every successful step together.
    pub all_steps: Percentiles,
    /// `step: reason` → flows that failed so.
    pub failures: BTreeMap<String, usize>,
    /// The run cut into slices: latency, requests and failures of each.
    pub timeline: Vec<Bucket>,
    /// Where the chart goes.
    pub svg: PathBuf,
}

impl LoadtestReport {
    /// Flows that ran to their end, passed or failed.
    pub fn ran(&self) -> usize {
        self.passed + self.failed
    }

    /// Flows asked for that never finished: not started before the deadline, or cut at [`DRAIN_CAP`].
    pub fn not_run(&self) -> usize {
        self.flows.map_or(0, |n| n.saturating_sub(self.ran()))
    }

    /// Flows that passed, per second of the run.
    pub fn flows_per_sec(&self) -> f64 {
        rate(self.passed, self.elapsed)
    }

    /// The chart's title; it counts the flows that ran, not those asked for.
    pub fn chart_title(&self) -> String {
        format!(
            "Step latency and throughput, {} {} against {}",
            self.ran(),
            self.flows_noun(),
            self.target
        )
    }

    /// `flows` or `OAuth 2 flows`: OAuth 1 flows are the technote's, unnamed as in every other tool.
    fn flows_noun(&self) -> &'static str {
        match self.protocol {
            Protocol::OAuth1 => "flows",
            Protocol::OAuth2 => "OAuth 2 flows",
        }
    }

    /// The summary as text: totals, a per-step latency table, failures by reason.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let noun = self.flows_noun();
        let asked = match self.flows {
            Some(n) => format!("{n} {noun}"),
            None => format!("{} {noun} (until the time was up)", self.ran()),
        };
        let _ = writeln!(
            out,
            "{asked} against {}: {} passed, {} failed, {} not run in {:.1} s ({:.1} flows/s)",
            self.target,
            self.passed,
            self.failed,
            self.not_run(),
            self.elapsed.as_secs_f64(),
            self.flows_per_sec()
        );
        // OAuth 2 names ("introspect revoked") are longer than OAuth 1's.
        let w = self
            .steps
            .iter()
            .map(|s| s.step.len() + 2)
            .fold(16, usize::max);
        let _ = writeln!(
            out,
            "{:<w$}{:>8}{:>11}{:>11}{:>11}",
            "step", "ok", "p50 ms", "p90 ms", "p99 ms"
        );
        let rows = self
            .steps
            .iter()
            .map(|s| (s.step, s.latency))
            .chain([("all steps", self.all_steps)]);
        for (name, p) in rows {
            let _ = writeln!(
                out,
                "{name:<w$}{:>8}{:>11.2}{:>11.2}{:>11.2}",
                p.count,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99)
            );
        }
        if self.failures.is_empty() {
            out.push_str("no failures");
        } else {
            out.push_str("failures by reason:");
            let mut reasons: Vec<_> = self.failures.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (reason, count) in reasons {
                let _ = write!(out, "\n{count:>8}  {reason}");
            }
        }
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    /// One step of a flow ended after `latency`, failed for `failure` or succeeded; `last`: the flow ends with
    /// it, and passed if it succeeded.
    fn record(&self, step: &'static str, latency: Duration, failure: Option<String>, last: bool) {
        lock(&self.samples).push(Sample {
            step,
            ended: self.start.elapsed(),
            latency,
            ok: failure.is_none(),
        });
        match failure {
            None if last => {
                self.passed.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
            Some(failure) => {
                let reason = format!("{step}: {failure}");
                *lock(&self.failures).entry(reason).or_default() += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Runs the load test: flows with a progress line on stderr, then the chart in `args.svg` and the summary on
/// stdout. Errors when the run cannot start (bad target, CA file), or, after the summary is printed, when the
/// chart cannot be written; failures of the target are in the report.
pub async fn loadtest(args: LoadtestArgs) -> Result<LoadtestReport, SimError> {
    let report = run(&args).await?;
    let written = write_chart(&report).await;
    let chart = match &written {
        Ok(()) => format!("chart: {}", report.svg.display()),
        Err(e) => format!("chart: not written: {}", error_chain(e)),
    };
    println!("{}\n{chart}", report.render());
    written.map(|()| report)
}

/// Runs the flows and turns what the observer saw into a report.
async fn run(args: &LoadtestArgs) -> Result<LoadtestReport, SimError> {
    let limit = flow_limit(args.flows, args.duration);
    let expected = limit.unwrap_or(1_000).min(100_000);
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        passed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        samples: Mutex::new(Vec::new()),
        failures: Mutex::new(BTreeMap::new()),
    });
    let prepared = flows::prepare(args, limit, recorder.clone()).await?;
    // A flow takes at most every step once.
    lock(&recorder.samples).reserve(expected * prepared.steps.len());

    let goal = Goal {
        flows: limit,
        duration: args.duration,
    };
    let progress = tokio::spawn(show_progress(recorder.clone(), goal));
    let run = prepared.run;
    let outcome = match args.duration {
        Some(duration) => match tokio::time::timeout(duration + DRAIN_CAP, run).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(cap = ?DRAIN_CAP, "flows still running after the drain cap were cut");
                Ok(())
            }
        },
        None => run.await,
    };
    let elapsed = recorder.start.elapsed();
    progress.abort();
    let _ = progress.await;
    draw_progress(&recorder, goal, true);
    outcome?;

    let samples = std::mem::take(&mut *lock(&recorder.samples));
    let failures = std::mem::take(&mut *lock(&recorder.failures));
    let latencies = |keep: &dyn Fn(&Sample) -> bool| {
        let mut l: Vec<Duration> = samples
            .iter()
            .filter(|s| s.ok && keep(s))
            .map(|s| s.latency)
            .collect();
        Percentiles::of(&mut l)
    };
    Ok(LoadtestReport {
        target: args.target.clone(),
        protocol: args.protocol,
        flows: limit,
        passed: recorder.passed.load(Ordering::Relaxed),
        failed: recorder.failed.load(Ordering::Relaxed),
        elapsed,
        steps: prepared
            .steps
            .iter()
            .map(|&step| StepLatency {
                step,
                latency: latencies(&|s| s.step == step),
            })
            .collect(),
        all_steps: latencies(&|_| true),
        failures,
        timeline: timeline(&samples, elapsed),
        svg: args.svg.clone(),
    })
}

async fn write_chart(report: &LoadtestReport) -> Result<(), SimError> {
    let svg = render_svg(&report.timeline, &report.chart_title());
    tokio::fs::write(&report.svg, svg)
        .await
        .map_err(|source| SimError::Write {
            path: report.svg.display().to_string(),
            source,
        })
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// What ends the run, for the progress bar: a number of flows, a duration, or both.
#[derive(Debug, Clone, Copy)]
struct Goal {
    flows: Option<usize>,
    duration: Option<Duration>,
}

/// Redraws the progress line every 200 ms on a terminal; elsewhere (a log, CI) prints a line every 5 s.
async fn show_progress(recorder: Arc<Recorder>, goal: Goal) {
    let terminal = std::io::stderr().is_terminal();
    let period = Duration::from_millis(if terminal { 200 } else { 5_000 });
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        draw_progress(&recorder, goal, false);
    }
}

fn draw_progress(recorder: &Recorder, goal: Goal, last: bool) {
    const WIDTH: usize = 30;
    let passed = recorder.passed.load(Ordering::Relaxed);
    let failed = recorder.failed.load(Ordering::Relaxed);
    let done = passed + failed;
    let elapsed = recorder.start.elapsed();
    // The bar follows the flow count when there is one, else the clock.
    let (fraction, count) = match (goal.flows, goal.duration) {
        (Some(n), _) => (
            if n == 0 { 1.0 } else { done as f64 / n as f64 },
            format!("{done}/{n} flows"),
        ),
        (None, Some(d)) => (
            elapsed.as_secs_f64() / d.as_secs_f64().max(f64::EPSILON),
            format!("{done} flows"),
        ),
        (None, None) => (1.0, format!("{done} flows")),
    };
    let filled = ((fraction * WIDTH as f64) as usize).min(WIDTH);
    let line = format!(
        "[{}{}] {count}  {:.1} flows/s  {failed} failed  {:.1} s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        rate(done, elapsed),
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
            (a.flows, a.concurrency, a.params, a.protocol),
            (None, 16, ParamMode::Mixed, Protocol::OAuth1)
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
        let a = Cli::try_parse_from(["t", "--target", "x", "--protocol", "oauth2"]).unwrap();
        assert_eq!(a.args.protocol, Protocol::OAuth2);
    }

    #[test]
    fn a_duration_without_a_flow_count_sets_no_flow_limit() {
        let secs = Some(Duration::from_secs(30));
        let cases = [
            (None, None, Some(DEFAULT_FLOWS)),
            (None, secs, None),
            (Some(50), None, Some(50)),
            (Some(50), secs, Some(50)),
            (Some(0), secs, Some(0)),
        ];
        for (flows, duration, limit) in cases {
            assert_eq!(flow_limit(flows, duration), limit, "{flows:?} {duration:?}");
        }
    }

    fn report(flows: Option<usize>, passed: usize, failed: usize) -> LoadtestReport {
        let mut failures = BTreeMap::new();
        if failed > 0 {
            failures.insert("read 1: 401 token_rejected".to_string(), failed);
        }
        LoadtestReport {
            target: "http://127.0.0.1:1".into(),
            protocol: Protocol::OAuth1,
            flows,
            passed,
            failed,
            elapsed: Duration::from_secs(2),
            steps: vec![StepLatency {
                step: "discovery",
                latency: Percentiles::of(&mut ms_list(&[1, 2, 3])),
            }],
            all_steps: Percentiles::of(&mut ms_list(&[1, 2, 3])),
            failures,
            timeline: Vec::new(),
            svg: "x.svg".into(),
        }
    }

    #[test]
    fn report_renders_totals_steps_and_failures() {
        let report = report(Some(10), 7, 2);
        assert_eq!(report.not_run(), 1);
        assert_eq!(report.flows_per_sec(), 3.5);
        let text = report.render();
        assert!(
            text.starts_with("10 flows against http://127.0.0.1:1: 7 passed, 2 failed, 1 not run"),
            "{text}"
        );
        assert!(text.contains("discovery"));
        assert!(
            text.ends_with("       2  read 1: 401 token_rejected"),
            "{text}"
        );
    }

    #[test]
    fn a_run_bounded_by_time_only_counts_what_ran_and_nothing_as_not_run() {
        let report = report(None, 41, 0);
        assert_eq!(report.not_run(), 0);
        let text = report.render();
        assert!(
            text.starts_with(
                "41 flows (until the time was up) against http://127.0.0.1:1: 41 passed"
            ),
            "{text}"
        );
        assert!(text.ends_with("no failures"));
    }

    #[test]
    fn an_oauth2_report_names_its_protocol_and_fits_long_step_names() {
        let mut report = report(Some(4), 4, 0);
        report.protocol = Protocol::OAuth2;
        report.steps[0].step = "introspect revoked";
        let text = report.render();
        assert!(
            text.starts_with("4 OAuth 2 flows against http://127.0.0.1:1: 4 passed"),
            "{text}"
        );
        assert!(text.contains("\nintrospect revoked         3"), "{text}");
        assert!(report.chart_title().contains(", 4 OAuth 2 flows against "));
    }

    #[test]
    fn the_chart_title_counts_flows_that_ran_not_flows_asked_for() {
        assert_eq!(
            report(Some(1_000), 3, 1).chart_title(),
            "Step latency and throughput, 4 flows against http://127.0.0.1:1"
        );
        assert!(report(Some(1_000), 0, 0)
            .chart_title()
            .contains(", 0 flows "));
    }
}
