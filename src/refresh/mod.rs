//! Refreshing nodes: the technote's "log in on each server", done by the proxy, directly on one node.
//!
//! [`Refresher`] sends the configured exchanges (e.g. a form login) to a node, bypassing balancing.
//! Concurrent refreshes of one node coalesce into one exchange (single flight); a node whose refresh failed is
//! not retried by background triggers until its backoff passes. [`stale`] recognises the answers that call
//! for a refresh and a replay.

pub mod stale;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;

use crate::affinity::NodeId;
use crate::secret::Secret;
use crate::upstream::Node;

/// How requests carrying a consumer key that not every node holds are routed (BRIEF 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only to nodes that hold the key.
    Pin,
    /// By policy over healthy nodes; a chosen node that lacks the key is refreshed first.
    Refresh,
    /// To nodes that hold the key, while the others are refreshed in the background.
    PinRefresh,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pin" => Ok(Strategy::Pin),
            "refresh" => Ok(Strategy::Refresh),
            "pin+refresh" => Ok(Strategy::PinRefresh),
            _ => Err("expected \"pin\", \"refresh\" or \"pin+refresh\"".into()),
        }
    }
}

/// One HTTP exchange of a refresh, with secrets already interpolated from the environment.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers; values may hold credentials.
    pub headers: Vec<(HeaderName, Secret)>,
    /// Body; may hold credentials.
    pub body: Secret,
    /// Statuses that mean success.
    pub expect: Vec<StatusCode>,
}

/// The `[refresh]` settings, validated.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Consumer-key routing strategy.
    pub strategy: Strategy,
    /// Exchanges of one refresh, in order; empty: refresh is not configured.
    pub exchanges: Vec<Exchange>,
    /// Limit for one refresh of one node.
    pub timeout: Duration,
    /// Limit for a whole fan-out.
    pub fanout_deadline: Duration,
    /// Retries of a failed refresh within a fan-out.
    pub retries: u32,
    /// Wait before the first retry (doubles each time), and before a background trigger retries a failed node.
    pub backoff: Duration,
    /// Refresh every node this often; `None`: no timer.
    pub interval: Option<Duration>,
}

impl RefreshSettings {
    /// Whether refreshing is configured at all.
    pub fn enabled(&self) -> bool {
        !self.exchanges.is_empty()
    }
}

/// Why a refresh failed (logged; never includes a secret).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No exchange is configured.
    #[error("no refresh exchange is configured")]
    NotConfigured,
    /// The node answered an unexpected status.
    #[error("exchange {index} answered {status}")]
    Status {
        /// Which exchange.
        index: usize,
        /// What it answered.
        status: StatusCode,
    },
    /// The node could not be reached or the exchange failed.
    #[error("exchange {index} failed")]
    Transport {
        /// Which exchange.
        index: usize,
        /// The client error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The exchanges took longer than `refresh.timeout`.
    #[error("refresh timed out")]
    Timeout,
}

/// Runs refreshes with single flight per node.
#[derive(Debug, Default)]
pub struct Refresher {
    /// Refreshes in flight, by node: later callers wait on the first one's result. Locked briefly, never
    /// across `.await`; not on the per-request path unless a request needs a refresh.
    inflight: Mutex<HashMap<NodeId, watch::Receiver<Option<bool>>>>,
    /// When a node's last refresh failed, for background triggers' backoff.
    failed_at: Mutex<HashMap<NodeId, Instant>>,
}

impl Refresher {
    /// A refresher with nothing in flight.
    pub fn new() -> Refresher {
        Refresher::default()
    }

    /// Refreshes `node` (or joins the refresh already in flight for it); `true` on success.
    pub async fn refresh(self: &Arc<Self>, node: &Arc<Node>, settings: &RefreshSettings) -> bool {
        if !settings.enabled() {
            return false;
        }
        let (mut receiver, leader) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&node.id) {
                Some(rx) => (rx.clone(), None),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(node.id, rx.clone());
                    (rx, Some(tx))
                }
            }
        };
        if let Some(sender) = leader {
            let this = self.clone();
            let node = node.clone();
            let settings = settings.clone();
            // The exchange runs in its own task so a caller that gives up does not cancel it for the others.
            tokio::spawn(async move {
                let result =
                    tokio::time::timeout(settings.timeout, exchange_all(&node, &settings)).await;
                let ok = match result {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(node = %node.spec.name, error = %crate::proxy::error::error_chain(&e), "refresh failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(node = %node.spec.name, timeout = ?settings.timeout, "refresh timed out");
                        false
                    }
                };
                {
                    let mut failed = this.failed_at.lock().unwrap_or_else(|e| e.into_inner());
                    if ok {
                        failed.remove(&node.id);
                    } else {
                        failed.insert(node.id, Instant::now());
                    }
                }
                this.inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&node.id);
                let _ = sender.send(Some(ok));
            });
        }
        loop {
            if let Some(ok) = *receiver.borrow_and_update() {
                return ok;
            }
            if receiver.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Whether a background trigger may refresh `node` now (its last refresh did not fail within `backoff`).
    pub fn may_retry(&self, node: NodeId, backoff: Duration) -> bool {
        let failed = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed.get(&node).is_none_or(|at| at.elapsed() >= backoff)
    }

    /// Whether a refresh of `node` is in flight.
    pub fn in_flight(&self, node: NodeId) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&node)
    }
}

async fn exchange_all(node: &Node, settings: &RefreshSettings) -> Result<(), RefreshError> {
    if settings.exchanges.is_empty() {
        return Err(RefreshError::NotConfigured);
    }
    for (index, exchange) in settings.exchanges.iter().enumerate() {
        let mut request = Request::new(
            Full::new(Bytes::from(exchange.body.expose().to_owned()))
                .map_err(|never| match never {})
                .boxed(),
        );
        *request.method_mut() = exchange.method.clone();
        *request.uri_mut() = node.uri_for(&exchange.path);
        let headers = request.headers_mut();
        if let Ok(host) = http::HeaderValue::from_str(node.spec.authority.as_str()) {
            headers.insert(HOST, host);
        }
        for (name, value) in &exchange.headers {
            if let Ok(v) = http::HeaderValue::from_str(value.expose()) {
                headers.append(name.clone(), v);
            }
        }
        let response = node
            .client
            .request(request)
            .await
            .map_err(|source| RefreshError::Transport { index, source })?;
        let status = response.status();
        // Drain so the connection returns to the pool; the body is not needed.
        let _ = response.into_body().collect().await;
        if !exchange.expect.contains(&status) {
            return Err(RefreshError::Status { index, status });
        }
    }
    Ok(())
}

/// Replaces every `${NAME}` in `template` with the environment variable `NAME`.
pub fn interpolate(template: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated ${...}")?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad variable name {name:?}"));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "CQ_USER" => Some("admin".into()),
            "CQ_PASSWORD" => Some("p&ss".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_from_the_environment() {
        assert_eq!(
            interpolate("username=${CQ_USER}&password=${CQ_PASSWORD}", env).unwrap(),
            "username=admin&password=p&ss"
        );
        assert_eq!(interpolate("no variables", env).unwrap(), "no variables");
    }

    #[test]
    fn a_missing_or_malformed_variable_is_an_error_naming_it() {
        assert_eq!(
            interpolate("${NOPE}", env).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(interpolate("${CQ_USER", env).is_err());
        assert!(interpolate("${bad-name}", env).is_err());
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("pin".parse(), Ok(Strategy::Pin));
        assert_eq!("refresh".parse(), Ok(Strategy::Refresh));
        assert_eq!("pin+refresh".parse(), Ok(Strategy::PinRefresh));
        assert!("sticky".parse::<Strategy>().is_err());
    }
}
