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
        let ok = probe(&node, &settings).await;
        pool.record_health(&node, ok, "active check");
        pool.note_probed(node.id);
    }
}

/// One active check: GET `path`, expecting `expect_status`, within `timeout`.
pub(crate) async fn probe(node: &Node, settings: &HealthSettings) -> bool {
    let request = http::Request::get(node.uri_for(&settings.path))
        .header(http::header::HOST, node.spec.authority.as_str())
        .header(http::header::USER_AGENT, "tokenroute-health")
        .body(Empty::new().map_err(|never| match never {}).boxed());
    let Ok(request) = request else {
        return false;
    };
    let result = tokio::time::timeout(settings.timeout, async {
        let response = node.client.request(request).await?;
        let status = response.status();
        // Drain the body so the connection goes back to the pool.
        let _ = response.into_body().collect().await;
        Ok::<_, client::ClientError>(status)
    })
    .await;
    matches!(result, Ok(Ok(status)) if status == settings.expect_status)
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
}
