//! Single flight: one refresh exchange per node at a time; later callers wait for its result.
//!
//! A caller says how recent a refresh it needs (`not_before`, a [`Tick`] of the refresh clock): a refresh in
//! flight that started earlier may have read the repository before the event the caller cares about (a key
//! registered or approved), so the caller waits it out and starts, or joins, a newer one. The result carries
//! the tick at which the refresh started, which decides what it may make the node own
//! ([`super::Refreshes`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::RefreshSettings;
use crate::affinity::NodeId;
use crate::upstream::Node;

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
        source: crate::upstream::ClientError,
    },
    /// The exchanges took longer than `refresh.timeout`.
    #[error("refresh timed out")]
    Timeout,
}

/// Runs refreshes with single flight per node.
#[derive(Debug)]
pub struct Refresher {
    /// Refreshes in flight, by node: later callers wait on the first one's result. Locked briefly, never
    /// across `.await`; not on the per-request path unless a request needs a refresh.
    inflight: Mutex<HashMap<NodeId, InFlight>>,
    /// When a node's last refresh failed, for background triggers' backoff.
    failed_at: Mutex<HashMap<NodeId, Instant>>,
    /// Where the exchanges run: in their own tasks, so a caller that gives up does not cancel the exchange
    /// for the others; bounded by `refresh.timeout`.
    tasks: TaskTracker,
    /// The refresh clock: orders refresh starts and key events ([`Refresher::tick`]).
    clock: AtomicU64,
}

/// A reading of the refresh clock. Ticks only grow; 0 is before everything.
pub type Tick = u64;

/// A refresh under way: when it started, and where its result will appear.
#[derive(Debug)]
struct InFlight {
    started: Tick,
    result: watch::Receiver<Option<bool>>,
}

impl Refresher {
    /// A refresher with nothing in flight, running exchanges on `tasks`.
    pub fn new(tasks: TaskTracker) -> Refresher {
        Refresher {
            inflight: Mutex::default(),
            failed_at: Mutex::default(),
            tasks,
            clock: AtomicU64::new(0),
        }
    }

    /// Reads the refresh clock and advances it: a refresh that starts later gets a greater tick.
    pub fn tick(&self) -> Tick {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Refreshes `node`, or joins the refresh in flight for it if that one started at `not_before` or later
    /// (one that started earlier is waited out first). On success, the tick at which the refresh that
    /// answered started.
    pub async fn refresh(
        self: &Arc<Self>,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        not_before: Tick,
    ) -> Option<Tick> {
        if !settings.enabled() {
            return None;
        }
        let (mut receiver, started, leader) = loop {
            let older = {
                let mut inflight = self.inflight.lock();
                match inflight.get(&node.id) {
                    Some(f) if f.started >= not_before => {
                        break (f.result.clone(), f.started, None)
                    }
                    Some(f) => f.result.clone(),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let started = self.tick();
                        inflight.insert(
                            node.id,
                            InFlight {
                                started,
                                result: rx.clone(),
                            },
                        );
                        break (rx, started, Some(tx));
                    }
                }
            };
            wait_for(older).await;
        };
        if let Some(sender) = leader {
            let this = self.clone();
            let node = node.clone();
            let settings = settings.clone();
            self.tasks.spawn(async move {
                let result =
                    tokio::time::timeout(settings.timeout, exchange_all(&node, &settings)).await;
                let ok = match result {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(node = %node.spec.name, error = %crate::logging::error_chain(&e), "refresh failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(node = %node.spec.name, timeout = ?settings.timeout, "refresh timed out");
                        false
                    }
                };
                {
                    let mut failed = this.failed_at.lock();
                    if ok {
                        failed.remove(&node.id);
                    } else {
                        failed.insert(node.id, Instant::now());
                    }
                }
                this.inflight
                    .lock()
                    .remove(&node.id);
                let _ = sender.send(Some(ok));
            });
        }
        let ok = loop {
            if let Some(ok) = *receiver.borrow_and_update() {
                break ok;
            }
            if receiver.changed().await.is_err() {
                break false;
            }
        };
        ok.then_some(started)
    }

    /// Whether a background trigger may refresh `node` now (its last refresh did not fail within `backoff`).
    pub fn may_retry(&self, node: NodeId, backoff: Duration) -> bool {
        let failed = self.failed_at.lock();
        failed.get(&node).is_none_or(|at| at.elapsed() >= backoff)
    }

    /// Whether a refresh of `node` is in flight.
    pub fn in_flight(&self, node: NodeId) -> bool {
        self.inflight.lock().contains_key(&node)
    }
}

/// Waits until the refresh behind `result` has finished, whatever its outcome.
async fn wait_for(mut result: watch::Receiver<Option<bool>>) {
    while result.borrow_and_update().is_none() {
        if result.changed().await.is_err() {
            return;
        }
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
