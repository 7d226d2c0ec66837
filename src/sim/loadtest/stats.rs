//! The load test's figures, pure: nearest-rank percentiles, and the run cut into time slices with each
//! slice's latency percentiles, requests and failures.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// One step that ended, as recorded while the flows ran.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Its name, as the protocol's flow report calls it.
    pub(super) step: &'static str,
    /// When it ended, from the start of the run.
    pub(super) ended: Duration,
    pub(super) latency: Duration,
    /// Whether it succeeded; a failed step counts as a request and a failure, never as a latency.
    pub(super) ok: bool,
}

/// What happened within one slice of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the slice, from the start of the run.
    pub start: Duration,
    /// End of the slice.
    pub end: Duration,
    /// Latency of the successful steps (of any kind) that ended in it; `count` 0 when none did, and the chart's
    /// latency lines break there instead of drawing across.
    pub latency: Percentiles,
    /// Steps that ended in it, successful or not; each step is one HTTP request.
    pub requests: usize,
    /// Steps that failed in it.
    pub failures: usize,
}

impl Bucket {
    /// Requests per second over the slice.
    pub fn requests_per_sec(&self) -> f64 {
        rate(self.requests, self.end - self.start)
    }

    /// Failed requests per second over the slice.
    pub fn failures_per_sec(&self) -> f64 {
        rate(self.failures, self.end - self.start)
    }
}

/// `n` per second of `elapsed` (0 for an empty interval).
pub(super) fn rate(n: usize, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        n as f64 / elapsed.as_secs_f64()
    }
}

/// How many slices the chart's time axis is cut into (fewer for a run too short to fill them).
pub const BUCKETS: u32 = 40;

/// Cuts the run into at most [`BUCKETS`] slices of equal width (10 ms at least) covering `elapsed` and every
/// sample, with no slice left out: a slice where nothing ended is a real zero for throughput and a gap for
/// latency.
pub(super) fn timeline(samples: &[Sample], elapsed: Duration) -> Vec<Bucket> {
    let width = (elapsed / BUCKETS).max(Duration::from_millis(10));
    let width_ns = width.as_nanos().max(1);
    let index = |d: Duration| (d.as_nanos() / width_ns) as u64;
    let mut slices: BTreeMap<u64, (Vec<Duration>, usize, usize)> = BTreeMap::new();
    for s in samples {
        let slice = slices.entry(index(s.ended)).or_default();
        slice.1 += 1;
        if s.ok {
            slice.0.push(s.latency);
        } else {
            slice.2 += 1;
        }
    }
    // The slice holding `elapsed` is the last unless it ends exactly on a boundary.
    let covering = (elapsed.as_nanos().div_ceil(width_ns) as u64).max(1);
    let count = slices
        .last_key_value()
        .map_or(covering, |(&last, _)| covering.max(last + 1));
    // The last slice ends with the run, so that its rates are not diluted by time that never happened.
    let run_end = samples.iter().map(|s| s.ended).fold(elapsed, Duration::max);
    (0..count)
        .map(|i| {
            let (mut latencies, requests, failures) = slices.remove(&i).unwrap_or_default();
            let start = width * i as u32;
            let end = (start + width).min(run_end);
            Bucket {
                start,
                end: if end > start { end } else { start + width },
                latency: Percentiles::of(&mut latencies),
                requests,
                failures,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
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

    fn sample(ended_ms: u64, latency_ms: u64, ok: bool) -> Sample {
        Sample {
            step: "read 1",
            ended: Duration::from_millis(ended_ms),
            latency: Duration::from_millis(latency_ms),
            ok,
        }
    }

    #[test]
    fn timeline_buckets_by_end_time_and_keeps_quiet_slices_as_zeros() {
        // 400 ms run: 10 ms buckets (the floor), 40 of them; only three have anything.
        let samples = [
            sample(5, 1, true),
            sample(6, 3, true),
            sample(7, 50, false),
            sample(35, 9, true),
        ];
        let t = timeline(&samples, Duration::from_millis(400));
        assert_eq!(t.len(), 40);
        assert_eq!(
            (t[0].start, t[0].end),
            (Duration::ZERO, Duration::from_millis(10))
        );
        assert_eq!(
            (t[0].latency.count, t[0].requests, t[0].failures),
            (2, 3, 1)
        );
        // The failed step's 50 ms is not a latency.
        assert_eq!(t[0].latency.p99, Duration::from_millis(3));
        assert_eq!((t[1].latency.count, t[1].requests), (0, 0));
        assert_eq!(t[3].start, Duration::from_millis(30));
        assert_eq!(t[3].latency.p50, Duration::from_millis(9));
        assert_eq!(t[39].end, Duration::from_millis(400));
        assert_eq!(t[0].requests_per_sec(), 300.0);
        assert_eq!(t[0].failures_per_sec(), 100.0);
    }

    #[test]
    fn timeline_covers_a_sample_ending_after_the_measured_run_and_an_empty_run() {
        let t = timeline(&[sample(95, 1, true)], Duration::from_millis(40));
        assert_eq!(t.len(), 10);
        assert_eq!(t[9].requests, 1);
        // The last slice stops where the run did: 90-95 ms, so one request in 5 ms is 200/s.
        assert_eq!(t[9].end, Duration::from_millis(95));
        assert_eq!(t[9].requests_per_sec(), 200.0);
        let empty = timeline(&[], Duration::ZERO);
        assert_eq!(empty.len(), 1);
        assert_eq!((empty[0].requests, empty[0].latency.count), (0, 0));
    }
}
