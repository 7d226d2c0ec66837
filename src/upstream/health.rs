//! Health: a pure rise/fall counter, and the cancellable prober loop that feeds it.
//!
//! Active probes and passive failures (connect errors, timeouts seen by real traffic) feed the same
//! [`ConsecutiveCounter`]; a transition flips the node's bit in the pool's healthy mask, which is all the
//! per-request path reads.

use std::num::NonZeroU32;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client;
use super::HealthSettings;
use super::{Node, Pool};

/// A change of a node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The node may receive traffic again.
    Up,
    /// The node receives no new traffic.
    Down,
}

/// Counts consecutive results and reports when `rise` successes or `fall` failures in a row flip the state.
#[derive(Debug, Clone)]
pub(crate) struct ConsecutiveCounter {
    rise: u32,
    fall: u32,
    healthy: bool,
    streak: u32,
}

impl ConsecutiveCounter {
    /// A counter for a node that starts healthy (like HAProxy: traffic flows until checks say otherwise).
    pub(crate) fn new(rise: NonZeroU32, fall: NonZeroU32) -> Self {
        ConsecutiveCounter {
            rise: rise.get(),
            fall: fall.get(),
            healthy: true,
            streak: 0,
        }
    }

    /// Whether the node is healthy now.
    #[cfg(test)]
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Records one result; returns the transition it causes, if any.
    pub(crate) fn record(&mut self, ok: bool) -> Option<Transition> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.healthy = ok;
        self.streak = 0;
        Some(if ok { Transition::Up } else { Transition::Down })
    }
}

/// Why a health result failed, in the words an operator needs (the cause, never a `Debug` dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthFailure {
    /// The TCP connection could not be made (refused, unreachable, DNS): the cause chain.
    Connect(String),
    /// The TLS handshake failed (e.g. `invalid peer certificate: UnknownIssuer`).
    Tls(String),
    /// No answer within the deadline.
    Timeout(std::time::Duration),
    /// The node answered with another status than the one expected.
    Status {
        /// What it answered.
        got: u16,
        /// What `[health] expect_status` asks for.
        expected: u16,
    },
    /// Any other failure of the exchange (the connection broke mid-answer): the cause chain.
    Exchange(String),
}

impl HealthFailure {
    /// Every `result` label value of `tokenroute_health_checks_total`, success first; indexes [`Self::index`].
    pub const RESULTS: [&'static str; 6] = crate::metrics::HEALTH_CHECK_RESULTS;

    /// Position of this failure's label in [`Self::RESULTS`] (0 is success).
    pub fn index(&self) -> usize {
        match self {
            HealthFailure::Connect(_) => 1,
            HealthFailure::Tls(_) => 2,
            HealthFailure::Timeout(_) => 3,
            HealthFailure::Status { .. } => 4,
            HealthFailure::Exchange(_) => 5,
        }
    }

    /// Classifies a client error: a TLS error anywhere in the chain wins, then a connect failure.
    pub fn from_client_error(error: &super::client::ClientError) -> HealthFailure {
        if let Some(tls) = tls_cause(error) {
            return HealthFailure::Tls(tls);
        }
        let chain = crate::logging::error_chain(error);
        if error.is_connect() {
            HealthFailure::Connect(chain)
        } else {
            HealthFailure::Exchange(chain)
        }
    }
}

impl std::fmt::Display for HealthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthFailure::Connect(chain) => write!(f, "connect error: {chain}"),
            HealthFailure::Tls(cause) => write!(f, "TLS error: {cause}"),
            HealthFailure::Timeout(after) => write!(f, "no answer within {after:?}"),
            HealthFailure::Status { got, expected } => {
                write!(f, "unexpected status {got} (expected {expected})")
            }
            HealthFailure::Exchange(chain) => write!(f, "request failed: {chain}"),
        }
    }
}

/// The rustls error in `error`'s cause chain, if any. `io::Error::source` skips the error it wraps (and
/// hyper-rustls wraps tokio-rustls's `io::Error` in another), so an `io::Error` is followed into what it wraps.
fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// One health result, active or passive.
#[derive(Debug, Clone)]
pub struct HealthResult {
    /// `active check`, `connect failure`, `response timeout`.
    pub source: &'static str,
    /// `None` when the node answered as expected.
    pub failure: Option<HealthFailure>,
    /// How long the check took (active checks only).
    pub latency: Option<std::time::Duration>,
}

/// What `/status` shows of a node's health: the last result, the streaks, and since when the node is in its
/// current state. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthView {
    /// Whether checks consider the node up.
    pub healthy: bool,
    /// When the node entered its current state (start-up, or its last transition).
    pub since: u64,
    /// When the last result (active or passive) was recorded; `None` before the first.
    pub last_check: Option<u64>,
    /// Where the last result came from (`active check`, `connect failure`, `response timeout`).
    pub last_source: Option<&'static str>,
    /// `ok`, or the failure's `result` label (`connect_error`, `tls_error`, `timeout`, ...).
    pub last_result: Option<&'static str>,
    /// Why the last result failed; `None` when it passed.
    pub reason: Option<String>,
    /// How long the last active check took, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Results in a row that passed.
    pub consecutive_successes: u32,
    /// Results in a row that failed.
    pub consecutive_failures: u32,
}

/// A node's health: the rise/fall counter and what `/status` shows. Behind the node's mutex, touched only by
/// probes and passive failures.
#[derive(Debug, Clone)]
pub(crate) struct HealthState {
    counter: ConsecutiveCounter,
    view: HealthView,
}

impl HealthState {
    pub(crate) fn new(rise: NonZeroU32, fall: NonZeroU32, now: u64) -> HealthState {
        HealthState {
            counter: ConsecutiveCounter::new(rise, fall),
            view: HealthView {
                healthy: true,
                since: now,
                last_check: None,
                last_source: None,
                last_result: None,
                reason: None,
                latency_ms: None,
                consecutive_successes: 0,
                consecutive_failures: 0,
            },
        }
    }

    /// Records one result at `now`; returns the transition it causes, if any.
    pub(crate) fn record(&mut self, result: &HealthResult, now: u64) -> Option<Transition> {
        let ok = result.failure.is_none();
        let view = &mut self.view;
        if ok {
            view.consecutive_successes = view.consecutive_successes.saturating_add(1);
            view.consecutive_failures = 0;
        } else {
            view.consecutive_failures = view.consecutive_failures.saturating_add(1);
            view.consecutive_successes = 0;
        }
        view.last_check = Some(now);
        view.last_source = Some(result.source);
        view.last_result =
            Some(HealthFailure::RESULTS[result.failure.as_ref().map_or(0, HealthFailure::index)]);
        view.reason = result.failure.as_ref().map(ToString::to_string);
        if let Some(latency) = result.latency {
            view.latency_ms = Some(latency.as_secs_f64() * 1e3);
        }
        let transition = self.counter.record(ok);
        if transition.is_some() {
            view.healthy = ok;
            view.since = now;
        }
        transition
    }

    pub(crate) fn view(&self) -> HealthView {
        self.view.clone()
    }
}

/// Probes every node of `pool`, on `tasks`, until `stop` is cancelled (on reload the new pool's probers take
/// over, and at shutdown the whole tree stops).
pub(crate) fn spawn_probers(
    pool: &Arc<Pool>,
    settings: &HealthSettings,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) {
    for node in pool.nodes() {
        let probing = probe_loop(pool.clone(), node.clone(), settings.clone());
        let stop = stop.clone();
        tasks.spawn(async move { stop.run_until_cancelled(probing).await });
    }
}

async fn probe_loop(pool: Arc<Pool>, node: Arc<Node>, settings: HealthSettings) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let started = tokio::time::Instant::now();
        let failure = probe(&node, &settings).await.err();
        node.count_check(failure.as_ref());
        pool.record_health(
            &node,
            HealthResult {
                source: "active check",
                failure,
                latency: Some(started.elapsed()),
            },
        );
        pool.note_probed(node.id);
    }
}

/// One active check: GET `path`, expecting `expect_status`, within `timeout`; the error says why it failed.
pub(crate) async fn probe(node: &Node, settings: &HealthSettings) -> Result<(), HealthFailure> {
    let request = http::Request::get(node.uri_for(&settings.path))
        .header(http::header::HOST, node.spec.authority.as_str())
        .header(http::header::USER_AGENT, "tokenroute-health")
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .map_err(|e| HealthFailure::Exchange(e.to_string()))?;
    let result = tokio::time::timeout(settings.timeout, async {
        let response = node.client.request(request).await?;
        let status = response.status();
        // Drain the body so the connection goes back to the pool.
        let _ = response.into_body().collect().await;
        Ok::<_, client::ClientError>(status)
    })
    .await;
    match result {
        Err(_elapsed) => Err(HealthFailure::Timeout(settings.timeout)),
        Ok(Err(e)) => Err(HealthFailure::from_client_error(&e)),
        Ok(Ok(status)) if status == settings.expect_status => Ok(()),
        Ok(Ok(status)) => Err(HealthFailure::Status {
            got: status.as_u16(),
            expected: settings.expect_status.as_u16(),
        }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn counter(rise: u32, fall: u32) -> ConsecutiveCounter {
        ConsecutiveCounter::new(
            NonZeroU32::new(rise).unwrap(),
            NonZeroU32::new(fall).unwrap(),
        )
    }

    #[test]
    fn node_goes_down_after_fall_consecutive_failures() {
        let mut c = counter(2, 3);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(Transition::Down));
        assert!(!c.is_healthy());
        assert_eq!(c.record(false), None, "the transition is reported once");
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut c = counter(2, 3);
        c.record(false);
        c.record(false);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert!(c.is_healthy());
    }

    #[test]
    fn node_comes_back_after_rise_consecutive_successes() {
        let mut c = counter(2, 1);
        assert_eq!(c.record(false), Some(Transition::Down));
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(Transition::Up));
        assert!(c.is_healthy());
    }

    fn failed(failure: HealthFailure) -> HealthResult {
        HealthResult {
            source: "active check",
            failure: Some(failure),
            latency: Some(std::time::Duration::from_millis(3)),
        }
    }

    fn passed() -> HealthResult {
        HealthResult {
            source: "active check",
            failure: None,
            latency: Some(std::time::Duration::from_millis(2)),
        }
    }

    #[test]
    fn health_view_keeps_the_last_reason_streaks_and_the_time_of_the_transition() {
        let mut state = HealthState::new(
            NonZeroU32::new(2).unwrap(),
            NonZeroU32::new(2).unwrap(),
            100,
        );
        let refused = HealthFailure::Status {
            got: 404,
            expected: 200,
        };
        assert_eq!(state.record(&failed(refused.clone()), 110), None);
        assert_eq!(state.view().since, 100, "no transition yet");
        assert_eq!(state.record(&failed(refused), 120), Some(Transition::Down));
        let view = state.view();
        assert!(!view.healthy);
        assert_eq!(view.since, 120);
        assert_eq!(view.last_check, Some(120));
        assert_eq!(view.last_result, Some("bad_status"));
        assert_eq!(
            view.reason.as_deref(),
            Some("unexpected status 404 (expected 200)")
        );
        assert_eq!(view.consecutive_failures, 2);
        assert_eq!(view.consecutive_successes, 0);
        assert_eq!(state.record(&passed(), 130), None);
        let view = state.view();
        assert_eq!(
            (view.consecutive_successes, view.consecutive_failures),
            (1, 0)
        );
        assert_eq!(view.reason, None);
        assert_eq!(view.last_result, Some("ok"));
        assert_eq!(state.record(&passed(), 140), Some(Transition::Up));
        assert_eq!(state.view().since, 140);
    }

    #[test]
    fn failures_read_as_their_cause() {
        assert_eq!(
            HealthFailure::Tls("invalid peer certificate: UnknownIssuer".into()).to_string(),
            "TLS error: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            HealthFailure::Timeout(std::time::Duration::from_secs(2)).to_string(),
            "no answer within 2s"
        );
        for (i, label) in HealthFailure::RESULTS.iter().enumerate().skip(1) {
            let failure = [
                HealthFailure::Connect(String::new()),
                HealthFailure::Tls(String::new()),
                HealthFailure::Timeout(std::time::Duration::ZERO),
                HealthFailure::Status {
                    got: 0,
                    expected: 0,
                },
                HealthFailure::Exchange(String::new()),
            ][i - 1]
                .clone();
            assert_eq!(failure.index(), i, "{label}");
        }
    }
}
