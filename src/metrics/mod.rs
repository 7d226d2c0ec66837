//! The metrics registry: counters the proxy bumps on the per-request path, rendered in the Prometheus text
//! exposition format (0.0.4) on demand.
//!
//! Every counter is an `AtomicU64` in a fixed array indexed by a closed enum or by [`NodeId::index`], so an
//! observation is one relaxed `fetch_add`: no lock, no allocation, no map lookup. Names are not stored:
//! node names change on reload while ids do not, so [`Metrics::render`] takes them from a [`MetricsView`]
//! built at scrape time. Gauges (health, in-flight requests, table size) are not stored here either; the
//! view carries their current values.
//!
//! No method takes a string: the only free-form label values in the output are the node names of the view.
//!
//! Longer than 600 lines: two thirds of it is the tests, which parse the real exposition.

mod exposition;
mod labels;
pub mod names;
mod process;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::affinity::{NodeId, StoreStats, TableStats, MAX_NODES};
use crate::oauth::CredentialKind;
pub use labels::{RefreshTrigger, ReplayOutcome, RouteReason};
use names::label;

/// What a scrape shows of the nodes in force now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView<'a> {
    /// Stable id (indexes the counters).
    pub id: NodeId,
    /// Current configured name (the `node` label).
    pub name: &'a str,
    /// Whether health checks consider it up.
    pub healthy: bool,
    /// Whether an administrator drained it.
    pub draining: bool,
    /// Requests sent to it and not yet finished.
    pub inflight: usize,
    /// Consumer keys and client ids it is an owner of.
    pub owned_keys: usize,
    /// Active health checks by result, in [`HEALTH_CHECK_RESULTS`] order.
    pub checks: [u64; HEALTH_CHECK_RESULTS.len()],
}

/// `result` label values of [`names::HEALTH_CHECKS_TOTAL`]: success first, then each kind of failure.
pub const HEALTH_CHECK_RESULTS: [&str; 6] = [
    "ok",
    "connect_error",
    "tls_error",
    "timeout",
    "bad_status",
    "error",
];

/// Everything [`Metrics::render`] needs besides the counters: current names and gauge values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsView<'a> {
    /// The nodes of the configuration in force; counters of other ids are not rendered.
    pub nodes: Vec<NodeView<'a>>,
    /// The learned table's size and counters.
    pub table: TableStats,
    /// Entries per kind ([`crate::affinity::Table::len_by_kind`]).
    pub table_by_kind: [(CredentialKind, usize); CredentialKind::ALL.len()],
    /// The shared store's counters, with `store = "redis"`.
    pub store: Option<StoreStats>,
    /// The certificates the TLS listeners of the configuration in force serve.
    pub certificates: Vec<CertificateView<'a>>,
}

/// When the certificate one TLS listener serves for one server name stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateView<'a> {
    /// The listener's configured name.
    pub listener: &'a str,
    /// The SNI name, or `*` for the default certificate.
    pub server_name: &'a str,
    /// The leaf certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// `class` label values, indexed by the status's first digit minus one.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the latency histogram: nanoseconds (for comparing) and the `le` value (written once here
/// so rendering never formats a float bound).
const LATENCY_BUCKETS: [(u64, &str); 13] = [
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

/// Row of [`Metrics::responses`] for answers the proxy produced itself.
const NO_NODE_ROW: usize = MAX_NODES;

type Counters<const N: usize> = [AtomicU64; N];

fn counters<const N: usize>() -> Counters<N> {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// Reads one gauge's value from a node's view.
type NodeGauge = fn(&NodeView<'_>) -> usize;

/// One node's latency histogram.
struct Histogram {
    /// Observations per bucket, not cumulative; the last slot holds those above the largest bound. The
    /// count is their sum, so buckets and count always agree in a scrape.
    buckets: Counters<{ LATENCY_BUCKETS.len() + 1 }>,
    /// Sum of observations in nanoseconds (overflows after 584 years of latency).
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: counters(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&(bound, _)| nanos <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn reset(&self) {
        self.buckets.iter().for_each(|b| b.store(0, Relaxed));
        self.sum_nanos.store(0, Relaxed);
    }
}

/// The process's metrics. Share it in an `Arc`; every `observe_*` method is lock-free.
pub struct Metrics {
    /// Responses by `[node index, or NO_NODE_ROW][status class]`.
    responses: [Counters<5>; MAX_NODES + 1],
    /// Upstream latency by node index.
    latency: [Histogram; MAX_NODES],
    /// Routing decisions by [`route_index`].
    routes: Counters<5>,
    /// Refreshes by `[trigger][ok = 0, failed = 1]`.
    refreshes: [Counters<2>; RefreshTrigger::ALL.len()],
    /// Replays by outcome.
    replays: Counters<{ ReplayOutcome::ALL.len() }>,
    /// Reloads by `[ok = 0, failed = 1]`.
    reloads: Counters<2>,
    body_too_large: AtomicU64,
    learn_skipped: AtomicU64,
    /// Request durations as clients see them (request head in → response head out).
    requests: Histogram,
    /// Connection counters per listener name, registered when a listener starts (not per request); a mutex
    /// taken only then and at scrape time.
    listeners: parking_lot::Mutex<Vec<(String, Arc<ListenerCounters>)>>,
    /// Open connections per connection worker, shared with the workers that count them (empty until they start).
    workers: parking_lot::Mutex<Arc<[AtomicU64]>>,
}

/// One listener's connection counters; relaxed atomics bumped by its accept loop.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    accepted: AtomicU64,
    open: AtomicU64,
    tls_failures: AtomicU64,
}

impl ListenerCounters {
    /// Counts an accepted connection, open until the guard is dropped.
    pub fn accepted(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts a TLS handshake that failed or timed out.
    pub fn tls_failed(&self) {
        self.tls_failures.fetch_add(1, Relaxed);
    }
}

/// An open connection of a listener; dropping it closes it in the count.
#[derive(Debug)]
pub struct OpenConnection(Arc<ListenerCounters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// `result` label values, indexed by `usize::from(!ok)`.
const RESULTS: [&str; 2] = ["ok", "failed"];

fn result_index(ok: bool) -> usize {
    usize::from(!ok)
}

/// Position of `reason` in [`RouteReason::ALL`]; the exhaustive match breaks the build if a reason is added
/// without a slot.
fn route_index(reason: RouteReason) -> usize {
    match reason {
        RouteReason::Token => 0,
        RouteReason::Key => 1,
        RouteReason::Cookie => 2,
        RouteReason::Policy => 3,
        RouteReason::OwnerDown => 4,
    }
}

fn trigger_index(trigger: RefreshTrigger) -> usize {
    trigger as usize
}

fn outcome_index(outcome: ReplayOutcome) -> usize {
    outcome as usize
}

/// Index of a status's class in [`STATUS_CLASSES`]. `http` admits codes up to 999; RFC 9110 defines none
/// above 599, so they count as server errors.
fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    /// A summary: the full arrays would be thousands of zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let responses: u64 = self
            .responses
            .iter()
            .flatten()
            .map(|c| c.load(Relaxed))
            .sum();
        let routes: u64 = self.routes.iter().map(|c| c.load(Relaxed)).sum();
        f.debug_struct("Metrics")
            .field("responses", &responses)
            .field("routes", &routes)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Metrics {
        Metrics {
            responses: std::array::from_fn(|_| counters()),
            latency: std::array::from_fn(|_| Histogram::new()),
            routes: counters(),
            refreshes: std::array::from_fn(|_| counters()),
            replays: counters(),
            reloads: counters(),
            body_too_large: AtomicU64::new(0),
            learn_skipped: AtomicU64::new(0),
            requests: Histogram::new(),
            listeners: parking_lot::Mutex::new(Vec::new()),
            workers: parking_lot::Mutex::new(Arc::new([])),
        }
    }

    /// The counters of the listener called `name` (a configured name, like node names the only free-form
    /// label values); a listener rebound by a reload keeps its totals.
    pub fn listener(&self, name: &str) -> Arc<ListenerCounters> {
        let mut listeners = self.listeners.lock();
        if let Some((_, counters)) = listeners.iter().find(|(n, _)| n == name) {
            return counters.clone();
        }
        let counters = Arc::new(ListenerCounters::default());
        listeners.push((name.to_owned(), counters.clone()));
        counters
    }

    /// The open-connection counters of `count` connection workers, in worker order, for the workers to keep
    /// (`server::Workers`) and the scrape to read.
    pub fn worker_connections(&self, count: usize) -> Arc<[AtomicU64]> {
        let counters: Arc<[AtomicU64]> = (0..count).map(|_| AtomicU64::new(0)).collect();
        *self.workers.lock() = counters.clone();
        counters
    }

    /// Records how long a client waited for its response head.
    pub fn observe_request_duration(&self, elapsed: Duration) {
        self.requests.observe(elapsed);
    }

    /// Counts a response sent to a client; `node` is `None` when the proxy answered itself (label `-`).
    pub fn observe_response(&self, node: Option<NodeId>, status: StatusCode) {
        let row = node.map_or(NO_NODE_ROW, NodeId::index);
        self.responses[row][class_index(status)].fetch_add(1, Relaxed);
    }

    /// Records the time a node took to send its response head.
    pub fn observe_upstream_latency(&self, node: NodeId, elapsed: Duration) {
        self.latency[node.index()].observe(elapsed);
    }

    /// Counts a routing decision.
    pub fn observe_route(&self, reason: RouteReason) {
        self.routes[route_index(reason)].fetch_add(1, Relaxed);
    }

    /// Counts a finished refresh.
    pub fn observe_refresh(&self, trigger: RefreshTrigger, ok: bool) {
        self.refreshes[trigger_index(trigger)][result_index(ok)].fetch_add(1, Relaxed);
    }

    /// Counts a replay decision.
    pub fn observe_replay(&self, outcome: ReplayOutcome) {
        self.replays[outcome_index(outcome)].fetch_add(1, Relaxed);
    }

    /// Counts a configuration reload attempt.
    pub fn observe_reload(&self, ok: bool) {
        self.reloads[result_index(ok)].fetch_add(1, Relaxed);
    }

    /// Counts a request refused because its body exceeded the buffering cap.
    pub fn observe_body_too_large(&self) {
        self.body_too_large.fetch_add(1, Relaxed);
    }

    /// Counts a response relayed without learning from it because it exceeded the inspection cap.
    pub fn observe_learn_skipped(&self) {
        self.learn_skipped.fetch_add(1, Relaxed);
    }

    /// Responses relayed from `node` so far, every status class together (the status page's requests/s).
    pub fn node_responses(&self, node: NodeId) -> u64 {
        self.responses[node.index()]
            .iter()
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// Zeroes the per-node counters of `node`. Call it when an id is given to a node with a new name, so the
    /// new node's series do not start from its predecessor's totals.
    pub fn reset_node(&self, node: NodeId) {
        self.responses[node.index()]
            .iter()
            .for_each(|c| c.store(0, Relaxed));
        self.latency[node.index()].reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn node(i: usize, name: &str) -> NodeView<'_> {
        NodeView {
            id: id(i),
            name,
            healthy: i % 2 == 0,
            draining: i == 1,
            inflight: i * 3,
            owned_keys: i + 1,
            checks: [i as u64 * 10, 0, 1, 0, 2, 0],
        }
    }

    fn view<'a>(nodes: Vec<NodeView<'a>>) -> MetricsView<'a> {
        MetricsView {
            nodes,
            table: TableStats {
                len: 7,
                max_entries: 1000,
                inserts: 9,
                evictions: 1,
                expiries: 1,
            },
            table_by_kind: CredentialKind::ALL.map(|k| (k, k.index())),
            store: Some(StoreStats::default()),
            certificates: vec![
                CertificateView {
                    listener: "public",
                    server_name: "*",
                    not_after: 1_893_542_400,
                },
                CertificateView {
                    listener: "public",
                    server_name: "lbcq.example",
                    not_after: 2_561_241_600,
                },
            ],
        }
    }

    /// Bumps every counter through every variant, so a render shows every label value the API can produce.
    fn busy_metrics() -> Metrics {
        let m = Metrics::new();
        m.worker_connections(1);
        for (i, status) in [100, 200, 204, 302, 404, 401, 500, 503]
            .into_iter()
            .enumerate()
        {
            let status = StatusCode::from_u16(status).unwrap();
            m.observe_response(Some(id(i % 3)), status);
            m.observe_response(None, status);
        }
        for ms in [0, 1, 3, 40, 700, 2_000, 20_000] {
            m.observe_upstream_latency(id(0), Duration::from_millis(ms));
            m.observe_upstream_latency(id(2), Duration::from_millis(ms / 2));
        }
        RouteReason::ALL
            .into_iter()
            .for_each(|r| m.observe_route(r));
        for trigger in RefreshTrigger::ALL {
            m.observe_refresh(trigger, true);
            m.observe_refresh(trigger, false);
        }
        ReplayOutcome::ALL
            .into_iter()
            .for_each(|o| m.observe_replay(o));
        m.observe_reload(true);
        m.observe_reload(false);
        m.observe_body_too_large();
        m.observe_learn_skipped();
        m.observe_request_duration(Duration::from_millis(7));
        let main = m.listener("main");
        let _closed = main.accepted();
        main.tls_failed();
        m
    }

    type Labels = Vec<(String, String)>;

    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Labels,
        value: f64,
    }

    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// Parses `name{k="v",...} value`, undoing label escapes; panics on anything else.
    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = &line[..name_end];
        assert!(is_name(name, true), "bad metric name in {line:?}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            loop {
                let eq = rest.find("=\"").expect("label=\"value\"");
                let key = &rest[..eq];
                assert!(is_name(key, false), "bad label name in {line:?}");
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next().expect("unterminated label value") {
                        (_, '\\') => match chars.next().expect("dangling escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line:?}"),
                        },
                        (i, '"') => break eq + 2 + i + 1,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_owned(), value));
                rest = &rest[end..];
                match rest.chars().next() {
                    Some(',') => rest = &rest[1..],
                    Some('}') => {
                        rest = &rest[1..];
                        break;
                    }
                    _ => panic!("bad label list in {line:?}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("one space before the value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        Sample {
            name: name.to_owned(),
            labels,
            value,
        }
    }

    /// Checks the text format's rules the way a scraper would, and returns the samples.
    fn parse_exposition(text: &str) -> Vec<Sample> {
        assert!(
            text.ends_with('\n'),
            "the last line must end with a line feed"
        );
        let mut helped = HashSet::new();
        let mut types: HashMap<String, String> = HashMap::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(!help.is_empty(), "empty HELP for {name}");
                assert!(helped.insert(name.to_owned()), "second HELP for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
                if let Some(previous) = current.replace(name.to_owned()) {
                    finished.insert(previous);
                }
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = sample.name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(&sample.name);
            assert!(helped.contains(family), "no HELP for {family}");
            assert!(types.contains_key(family), "no TYPE for {family}");
            assert_eq!(
                current.as_deref(),
                Some(family),
                "{family} is not contiguous"
            );
            assert!(!finished.contains(family));
            if types[family] == "counter" {
                assert!(family.ends_with("_total"), "counter {family} lacks _total");
            }
            samples.push(sample);
        }
        assert_eq!(helped.len(), types.len(), "every metric has HELP and TYPE");
        check_histograms(&samples, &types);
        samples
    }

    /// Buckets cumulative (non-decreasing), ending at `+Inf`, which equals `_count`.
    fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) {
        for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
            let mut series: HashMap<Labels, Vec<(String, f64)>> = HashMap::new();
            for s in samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let le = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .expect("le")
                    .1
                    .clone();
                let rest: Vec<_> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                series.entry(rest).or_default().push((le, s.value));
            }
            for (labels, buckets) in series {
                let bounds: Vec<f64> = buckets
                    .iter()
                    .map(|(le, _)| {
                        if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap()
                        }
                    })
                    .collect();
                assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds increase");
                assert_eq!(bounds.last(), Some(&f64::INFINITY), "last bucket is +Inf");
                assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
                let count = samples
                    .iter()
                    .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                    .expect("_count");
                assert_eq!(count.value, buckets.last().unwrap().1, "+Inf equals _count");
                assert!(samples
                    .iter()
                    .any(|s| s.name == format!("{family}_sum") && s.labels == labels));
            }
        }
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
            .value
    }

    #[test]
    fn exposition_follows_the_text_format() {
        let m = busy_metrics();
        let text = m.render(&view(vec![
            node(0, "lbcq_1"),
            node(1, "lbcq_2"),
            node(2, "lbcq_3"),
        ]));
        let samples = parse_exposition(&text);
        for name in [
            names::REQUESTS_TOTAL,
            &format!("{}_bucket", names::UPSTREAM_LATENCY_SECONDS),
            names::NODE_HEALTHY,
            names::NODE_DRAINING,
            names::NODE_INFLIGHT,
            names::NODE_OWNED_KEYS,
            names::HEALTH_CHECKS_TOTAL,
            names::BUILD_INFO,
            &format!("{}_count", names::REQUEST_DURATION_SECONDS),
            names::CONNECTIONS_ACCEPTED_TOTAL,
            names::CONNECTIONS_OPEN,
            names::TLS_HANDSHAKE_FAILURES_TOTAL,
            names::WORKER_CONNECTIONS_OPEN,
            names::TABLE_ENTRIES,
            names::TABLE_MAX_ENTRIES,
            names::TABLE_INSERTS_TOTAL,
            names::TABLE_EVICTIONS_TOTAL,
            names::TABLE_EXPIRIES_TOTAL,
            names::STORE_UP,
            names::STORE_DEGRADED_OPERATIONS_TOTAL,
            names::STORE_OUTAGES_TOTAL,
            names::STORE_READ_THROUGH_TOTAL,
            names::STORE_CHANGES_APPLIED_TOTAL,
            names::STORE_WRITTEN_BACK_TOTAL,
            names::STORE_LEASES_LOST_TOTAL,
            names::STORE_PENDING_WRITE_BACK,
            names::ROUTE_DECISIONS_TOTAL,
            names::REFRESHES_TOTAL,
            names::REPLAYS_TOTAL,
            names::CONFIG_RELOADS_TOTAL,
            names::REQUEST_BODY_TOO_LARGE_TOTAL,
            names::RESPONSES_NOT_LEARNED_TOTAL,
        ] {
            assert!(samples.iter().any(|s| s.name == name), "{name} missing");
            assert!(name.starts_with("tokenroute_"));
        }
        if process::read().is_some() {
            for name in [
                names::process::CPU_SECONDS_TOTAL,
                names::process::RESIDENT_MEMORY_BYTES,
                names::process::OPEN_FDS,
                names::process::START_TIME_SECONDS,
            ] {
                assert!(samples.iter().any(|s| s.name == name), "{name} missing");
            }
        }
    }

    #[test]
    fn worker_connections_are_a_gauge_per_worker_numbered_from_one() {
        let m = Metrics::new();
        let counters = m.worker_connections(2);
        counters[1].fetch_add(3, Relaxed);
        let samples = parse_exposition(&m.render(&view(Vec::new())));
        let by = |worker| {
            value(
                &samples,
                names::WORKER_CONNECTIONS_OPEN,
                &[("worker", worker)],
            )
        };
        assert_eq!(by("1"), 0.0);
        assert_eq!(by("2"), 3.0);
    }

    #[test]
    fn listener_connections_count_accepted_open_and_tls_failures() {
        let m = Metrics::new();
        let main = m.listener("main");
        let first = main.accepted();
        let second = m.listener("main").accepted();
        drop(first);
        m.listener("tls").tls_failed();
        let samples = parse_exposition(&m.render(&view(Vec::new())));
        let by = |name, listener| value(&samples, name, &[("listener", listener)]);
        assert_eq!(by(names::CONNECTIONS_ACCEPTED_TOTAL, "main"), 2.0);
        assert_eq!(by(names::CONNECTIONS_OPEN, "main"), 1.0);
        assert_eq!(by(names::TLS_HANDSHAKE_FAILURES_TOTAL, "tls"), 1.0);
        assert_eq!(by(names::TLS_HANDSHAKE_FAILURES_TOTAL, "main"), 0.0);
        assert_eq!(
            value(
                &samples,
                names::BUILD_INFO,
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
        drop(second);
    }

    #[test]
    fn exposition_without_nodes_still_parses() {
        let text = Metrics::new().render(&view(Vec::new()));
        let samples = parse_exposition(&text);
        assert_eq!(
            value(
                &samples,
                names::REQUESTS_TOTAL,
                &[("class", "2xx"), ("node", "-")]
            ),
            0.0
        );
    }

    #[test]
    fn label_values_come_only_from_closed_sets_and_view_node_names() {
        // No observe method takes a string, so whatever the proxy sees (credentials, paths, client
        // addresses) has no way into a label. This pins that down: after every method was called with every
        // variant, each label value in the output is a fixed word or a node name from the view.
        let m = busy_metrics();
        let names = ["lbcq_1", "lbcq_2"];
        let text = m.render(&view(vec![node(0, names[0]), node(2, names[1])]));
        let mut allowed: HashSet<&str> = HashSet::from(STATUS_CLASSES);
        allowed.extend(RESULTS);
        allowed.extend(RouteReason::ALL.map(RouteReason::as_str));
        allowed.extend(RefreshTrigger::ALL.map(RefreshTrigger::as_str));
        allowed.extend(ReplayOutcome::ALL.map(ReplayOutcome::as_str));
        allowed.extend(CredentialKind::ALL.map(CredentialKind::as_str));
        allowed.extend(HEALTH_CHECK_RESULTS);
        allowed.extend(["main", env!("CARGO_PKG_VERSION")]);
        allowed.extend(LATENCY_BUCKETS.map(|(_, le)| le));
        allowed.extend(["+Inf", names::NO_NODE]);
        allowed.extend(names);
        // Listener and server names come from the configuration through the view, as node names do.
        allowed.extend(["public", "*", "lbcq.example"]);
        for sample in parse_exposition(&text) {
            for (key, value) in &sample.labels {
                assert!(
                    allowed.contains(value.as_str()),
                    "{}: label {key}={value:?} is outside the closed vocabularies",
                    sample.name
                );
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let text = m.render(&view(vec![node(0, "a\"b\\c\nd")]));
        assert!(text.contains(r#"node="a\"b\\c\nd""#), "{text}");
        let samples = parse_exposition(&text);
        assert_eq!(
            value(&samples, names::NODE_HEALTHY, &[("node", "a\"b\\c\nd")]),
            1.0
        );
    }

    #[test]
    fn responses_are_counted_by_class_and_node() {
        let m = Metrics::new();
        m.observe_response(Some(id(0)), StatusCode::OK);
        m.observe_response(Some(id(0)), StatusCode::CREATED);
        m.observe_response(Some(id(0)), StatusCode::UNAUTHORIZED);
        m.observe_response(None, StatusCode::SERVICE_UNAVAILABLE);
        let samples = parse_exposition(&m.render(&view(vec![node(0, "n1")])));
        let requests = |class, node| {
            value(
                &samples,
                names::REQUESTS_TOTAL,
                &[("class", class), ("node", node)],
            )
        };
        assert_eq!(requests("2xx", "n1"), 2.0);
        assert_eq!(requests("4xx", "n1"), 1.0);
        assert_eq!(requests("5xx", "n1"), 0.0);
        assert_eq!(requests("5xx", "-"), 1.0);
    }

    #[test]
    fn status_codes_above_599_count_as_server_errors() {
        assert_eq!(class_index(StatusCode::from_u16(999).unwrap()), 4);
        assert_eq!(class_index(StatusCode::CONTINUE), 0);
        assert_eq!(class_index(StatusCode::from_u16(599).unwrap()), 4);
    }

    #[test]
    fn latency_lands_in_the_first_bucket_whose_bound_is_not_below_it() {
        let m = Metrics::new();
        m.observe_upstream_latency(id(0), Duration::from_millis(1));
        m.observe_upstream_latency(id(0), Duration::from_micros(1_001));
        m.observe_upstream_latency(id(0), Duration::from_secs(60));
        let samples = parse_exposition(&m.render(&view(vec![node(0, "n1")])));
        let bucket = format!("{}_bucket", names::UPSTREAM_LATENCY_SECONDS);
        let le = |le| value(&samples, &bucket, &[("node", "n1"), ("le", le)]);
        assert_eq!(le("0.001"), 1.0, "bounds are inclusive");
        assert_eq!(le("0.0025"), 2.0);
        assert_eq!(le("10"), 2.0);
        assert_eq!(le("+Inf"), 3.0);
        let sum = format!("{}_sum", names::UPSTREAM_LATENCY_SECONDS);
        assert!((value(&samples, &sum, &[("node", "n1")]) - 60.002001).abs() < 1e-9);
    }

    #[test]
    fn nodes_absent_from_the_view_are_not_rendered() {
        let m = Metrics::new();
        m.observe_response(Some(id(5)), StatusCode::OK);
        m.observe_upstream_latency(id(5), Duration::from_millis(3));
        let text = m.render(&view(vec![node(0, "n1")]));
        assert!(!text.contains("node=\"n6\""));
        let nodes: HashSet<String> = parse_exposition(&text)
            .into_iter()
            .flat_map(|s| s.labels)
            .filter(|(k, _)| k == "node")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(nodes, HashSet::from(["n1".to_owned(), "-".to_owned()]));
    }

    #[test]
    fn a_node_is_rendered_under_its_current_name() {
        let m = Metrics::new();
        m.observe_response(Some(id(1)), StatusCode::OK);
        let before = parse_exposition(&m.render(&view(vec![node(1, "old")])));
        let after = parse_exposition(&m.render(&view(vec![node(1, "renamed")])));
        let ok = [("class", "2xx")];
        assert_eq!(
            value(&before, names::REQUESTS_TOTAL, &[ok[0], ("node", "old")]),
            1.0
        );
        assert_eq!(
            value(&after, names::REQUESTS_TOTAL, &[ok[0], ("node", "renamed")]),
            1.0
        );
    }

    #[test]
    fn reset_node_zeroes_only_that_node() {
        let m = Metrics::new();
        m.observe_response(Some(id(0)), StatusCode::OK);
        m.observe_response(Some(id(1)), StatusCode::OK);
        m.observe_upstream_latency(id(0), Duration::from_millis(3));
        m.reset_node(id(0));
        let samples = parse_exposition(&m.render(&view(vec![node(0, "a"), node(1, "b")])));
        assert_eq!(
            value(
                &samples,
                names::REQUESTS_TOTAL,
                &[("class", "2xx"), ("node", "a")]
            ),
            0.0
        );
        assert_eq!(
            value(
                &samples,
                names::REQUESTS_TOTAL,
                &[("class", "2xx"), ("node", "b")]
            ),
            1.0
        );
        let count = format!("{}_count", names::UPSTREAM_LATENCY_SECONDS);
        assert_eq!(value(&samples, &count, &[("node", "a")]), 0.0);
    }

    #[test]
    fn gauges_and_table_come_from_the_view() {
        let samples = parse_exposition(&Metrics::new().render(&view(vec![node(1, "b")])));
        assert_eq!(value(&samples, names::NODE_HEALTHY, &[("node", "b")]), 0.0);
        assert_eq!(value(&samples, names::NODE_DRAINING, &[("node", "b")]), 1.0);
        assert_eq!(value(&samples, names::NODE_INFLIGHT, &[("node", "b")]), 3.0);
        assert_eq!(
            value(&samples, names::NODE_OWNED_KEYS, &[("node", "b")]),
            2.0
        );
        assert_eq!(
            value(&samples, names::TABLE_ENTRIES, &[("kind", "verifier")]),
            2.0
        );
        assert_eq!(value(&samples, names::TABLE_MAX_ENTRIES, &[]), 1000.0);
        assert_eq!(value(&samples, names::TABLE_INSERTS_TOTAL, &[]), 9.0);
        let checks = |result| {
            value(
                &samples,
                names::HEALTH_CHECKS_TOTAL,
                &[("node", "b"), ("result", result)],
            )
        };
        assert_eq!(checks("ok"), 10.0);
        assert_eq!(checks("tls_error"), 1.0);
        assert_eq!(checks("bad_status"), 2.0);
        let expiry = |server_name| {
            value(
                &samples,
                names::LISTENER_CERTIFICATE_NOT_AFTER_SECONDS,
                &[("listener", "public"), ("server_name", server_name)],
            )
        };
        assert_eq!(expiry("*"), 1_893_542_400.0);
        assert_eq!(expiry("lbcq.example"), 2_561_241_600.0);
    }

    #[test]
    fn node_responses_sums_every_class_of_that_node_only() {
        let m = Metrics::new();
        m.observe_response(Some(id(1)), StatusCode::OK);
        m.observe_response(Some(id(1)), StatusCode::BAD_GATEWAY);
        m.observe_response(Some(id(2)), StatusCode::OK);
        m.observe_response(None, StatusCode::OK);
        assert_eq!(m.node_responses(id(1)), 2);
        assert_eq!(m.node_responses(id(0)), 0);
    }

    #[test]
    fn counters_json_reports_routes_refreshes_replays_and_reloads() {
        let m = Metrics::new();
        m.observe_route(RouteReason::OwnerDown);
        m.observe_refresh(RefreshTrigger::KeyEvent, true);
        m.observe_refresh(RefreshTrigger::KeyEvent, false);
        m.observe_refresh(RefreshTrigger::KeyEvent, false);
        m.observe_replay(ReplayOutcome::Repaired);
        m.observe_reload(false);
        let j = m.counters_json();
        assert_eq!(j["routes"]["owner_down"], 1);
        assert_eq!(j["routes"]["token"], 0);
        assert_eq!(j["refreshes"]["key_event"]["ok"], 1);
        assert_eq!(j["refreshes"]["key_event"]["failed"], 2);
        assert_eq!(j["refreshes"]["timer"]["ok"], 0);
        assert_eq!(j["replays"]["repaired"], 1);
        assert_eq!(j["reloads"]["failed"], 1);
        assert_eq!(j["reloads"]["ok"], 0);
    }

    #[test]
    fn enum_indexes_follow_all_order() {
        for (i, t) in RefreshTrigger::ALL.into_iter().enumerate() {
            assert_eq!(trigger_index(t), i);
        }
        for (i, o) in ReplayOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome_index(o), i);
        }
        for (i, r) in RouteReason::ALL.into_iter().enumerate() {
            assert_eq!(route_index(r), i);
        }
    }

    #[test]
    fn metrics_are_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..1000).for_each(|_| m.observe_response(Some(id(0)), StatusCode::OK))
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let samples = parse_exposition(&m.render(&view(vec![node(0, "a")])));
        assert_eq!(
            value(
                &samples,
                names::REQUESTS_TOTAL,
                &[("class", "2xx"), ("node", "a")]
            ),
            4000.0
        );
    }
}
