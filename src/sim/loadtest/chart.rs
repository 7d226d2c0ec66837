//! The load test's SVG chart, hand-written: one chart does not justify a plotting dependency.
//!
//! Two panels share the time axis: step latency percentiles (p50, p90, p99) above, requests and failures per
//! second below. A slice where no step succeeded has no latency, so the percentile lines break there rather
//! than draw straight across an outage; throughput has a value in every slice, zero included.

use std::fmt::Write as _;

use super::stats::Bucket;

const W: f64 = 820.0;
const H: f64 = 640.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;
/// Vertical space between the two panels (the upper panel's tick labels sit in it).
const GAP: f64 = 44.0;
const LATENCY_H: f64 = 300.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const RATE_TOP: f64 = TOP + LATENCY_H + GAP;
const RATE_H: f64 = H - BOTTOM - RATE_TOP;

/// Series name and colour; the name is also the `class` of the series' elements.
const LATENCY: [(&str, &str); 3] = [("p50", "#1f77b4"), ("p90", "#ff7f0e"), ("p99", "#d62728")];
const RATES: [(&str, &str); 2] = [("requests/s", "#2ca02c"), ("failures/s", "#9467bd")];

/// One panel: its place on the page and the end of its value axis.
struct Panel {
    top: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, secs: f64) -> f64 {
        LEFT + secs / self.x_max * PLOT_W
    }

    fn y(&self, value: f64) -> f64 {
        self.top + self.height - value / self.y_max * self.height
    }

    /// Grid, ticks and their labels (5 steps on each axis), the frame, and the value axis label.
    fn axes(&self, svg: &mut String, y_label: &str) {
        for i in 0..=5 {
            let f = f64::from(i) / 5.0;
            let (gx, gy) = (self.x(f * self.x_max), self.y(f * self.y_max));
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + PLOT_W,
                LEFT - 6.0,
                gy + 4.0,
                tick_label(f * self.y_max)
            );
            let _ = writeln!(
                svg,
                r##"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{:.1}" stroke="#eee"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                self.top,
                self.top + self.height,
                self.top + self.height + 18.0,
                tick_label(f * self.x_max)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{}" width="{PLOT_W}" height="{}" fill="none" stroke="#333"/>"##,
            self.top, self.height
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{0:.1}" text-anchor="middle" transform="rotate(-90 18 {0:.1})">{y_label}</text>"#,
            self.top + self.height / 2.0
        );
    }

    /// A series: a polyline per run of consecutive points, a dot for a point alone, nothing across a gap.
    fn series(
        &self,
        svg: &mut String,
        (name, colour): (&str, &str),
        points: &[Option<(f64, f64)>],
    ) {
        for run in points.split(Option::is_none) {
            let xy: Vec<(f64, f64)> = run
                .iter()
                .flatten()
                .map(|&(t, v)| (self.x(t), self.y(v)))
                .collect();
            match xy.as_slice() {
                [] => {}
                [(x, y)] => {
                    let _ = writeln!(
                        svg,
                        r#"<circle class="{name}" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#
                    );
                }
                _ => {
                    let coords: Vec<String> =
                        xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = writeln!(
                        svg,
                        r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                        coords.join(" ")
                    );
                }
            }
        }
    }

    /// The legend entry `k` of this panel, right of the plot.
    fn legend(&self, svg: &mut String, k: usize, (name, colour): (&str, &str)) {
        let ly = self.top + 14.0 + 20.0 * k as f64;
        let lx = LEFT + PLOT_W + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
}

/// The chart of `timeline` under `title`: time since the start on x; above, p50/p90/p99 step latency in
/// milliseconds; below, requests and failed requests per second.
pub fn render_svg(timeline: &[Bucket], title: &str) -> String {
    let x_max = nice_ceil(timeline.last().map_or(1.0, |b| b.end.as_secs_f64()));
    let mid = |b: &Bucket| (b.start + b.end).as_secs_f64() / 2.0;
    let latency = Panel {
        top: TOP,
        height: LATENCY_H,
        x_max,
        y_max: nice_ceil(
            timeline
                .iter()
                .map(|b| ms(b.latency.p99))
                .fold(0.0, f64::max),
        ),
    };
    let rates = Panel {
        top: RATE_TOP,
        height: RATE_H,
        x_max,
        y_max: nice_ceil(
            timeline
                .iter()
                .map(Bucket::requests_per_sec)
                .fold(0.0, f64::max),
        ),
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        xml_escape(title)
    );
    latency.axes(&mut svg, "step latency (ms)");
    rates.axes(&mut svg, "per second");
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"#,
        LEFT + PLOT_W / 2.0,
        H - 14.0
    );

    for (k, series) in LATENCY.into_iter().enumerate() {
        let points: Vec<Option<(f64, f64)>> = timeline
            .iter()
            .map(|b| {
                let p = match k {
                    0 => b.latency.p50,
                    1 => b.latency.p90,
                    _ => b.latency.p99,
                };
                (b.latency.count > 0).then(|| (mid(b), ms(p)))
            })
            .collect();
        latency.series(&mut svg, series, &points);
        latency.legend(&mut svg, k, series);
    }
    for (k, series) in RATES.into_iter().enumerate() {
        let points: Vec<Option<(f64, f64)>> = timeline
            .iter()
            .map(|b| {
                let rate = if k == 0 {
                    b.requests_per_sec()
                } else {
                    b.failures_per_sec()
                };
                Some((mid(b), rate))
            })
            .collect();
        rates.series(&mut svg, series, &points);
        rates.legend(&mut svg, k, series);
    }
    if timeline.iter().all(|b| b.latency.count == 0) {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no successful step</text>"#,
            LEFT + PLOT_W / 2.0,
            TOP + LATENCY_H / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    use std::time::Duration;

    use super::super::stats::Percentiles;
    use super::*;

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

    /// A 100 ms bucket starting at `start_ms`; `p50 == 0` means no successful step in it.
    fn bucket(start_ms: u64, p50: u64, p90: u64, p99: u64, requests: usize) -> Bucket {
        Bucket {
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(start_ms + 100),
            latency: Percentiles {
                count: if p50 == 0 { 0 } else { 10 },
                p50: Duration::from_millis(p50),
                p90: Duration::from_millis(p90),
                p99: Duration::from_millis(p99),
            },
            requests,
            failures: requests / 4,
        }
    }

    fn elements<'a>(svg: &'a str, tag: &str, class: &str) -> Vec<&'a str> {
        let open = format!("<{tag} class=\"{class}\"");
        svg.lines().filter(|l| l.starts_with(&open)).collect()
    }

    #[test]
    fn every_series_has_a_point_per_bucket_and_the_axes_are_labelled() {
        let svg = render_svg(
            &[
                bucket(0, 2, 4, 8, 40),
                bucket(100, 3, 5, 9, 60),
                bucket(200, 1, 2, 3, 20),
            ],
            "t",
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        for class in ["p50", "p90", "p99", "requests/s", "failures/s"] {
            let lines = elements(&svg, "polyline", class);
            assert_eq!(lines.len(), 1, "{class}");
            assert_eq!(lines[0].matches(',').count(), 3, "{}", lines[0]);
        }
        for label in [
            "p50",
            "p90",
            "p99",
            "requests/s",
            "failures/s",
            "time since start (s)",
            "step latency (ms)",
            "per second",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        // Latency axis ends at 10 ms (max p99 9 ms), time at 0.5 s (last bucket ends at 0.3 s), rate at 1000/s
        // (600 requests/s at most).
        assert!(svg.contains(">10</text>"));
        assert!(svg.contains(">0.5</text>"));
        assert!(svg.contains(">1000</text>"));
    }

    #[test]
    fn latency_lines_break_across_a_slice_with_no_success_and_throughput_drops_to_zero() {
        let svg = render_svg(
            &[
                bucket(0, 2, 4, 8, 40),
                bucket(100, 3, 5, 9, 60),
                bucket(200, 0, 0, 0, 0),
                bucket(300, 2, 3, 4, 50),
                bucket(400, 0, 0, 0, 0),
                bucket(500, 1, 1, 1, 10),
                bucket(600, 1, 1, 1, 10),
            ],
            "t",
        );
        // p50: 0-200 ms as a line, 300 ms alone as a dot, 500-700 ms as a line.
        assert_eq!(elements(&svg, "polyline", "p50").len(), 2);
        assert_eq!(elements(&svg, "circle", "p50").len(), 1);
        // Throughput is one unbroken line through the zeros.
        let rate = elements(&svg, "polyline", "requests/s");
        assert_eq!(rate.len(), 1);
        assert_eq!(rate[0].matches(',').count(), 7);
        assert!(!svg.contains("no successful step"));
    }

    #[test]
    fn higher_latency_is_drawn_higher_on_the_chart() {
        let svg = render_svg(&[bucket(0, 1, 5, 10, 1), bucket(100, 1, 5, 10, 1)], "t");
        let y_of = |class: &str| -> f64 {
            let line = elements(&svg, "polyline", class)[0];
            let points = line.split("points=\"").nth(1).unwrap();
            points
                .split([',', ' ', '"'])
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        };
        // SVG y grows downwards.
        assert!(y_of("p50") > y_of("p90"));
        assert!(y_of("p90") > y_of("p99"));
    }

    #[test]
    fn the_title_is_escaped_and_a_run_without_success_says_so() {
        let svg = render_svg(&[bucket(0, 0, 0, 0, 3)], "a<b & \"c\"");
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(svg.contains("no successful step"));
        assert!(elements(&svg, "polyline", "p50").is_empty());
        assert_eq!(elements(&svg, "circle", "requests/s").len(), 1);
    }
}
