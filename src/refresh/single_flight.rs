//! Single flight: one refresh exchange per node at a time; later callers wait for its result.

use std::collections::HashMap;
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
    inflight: Mutex<HashMap<NodeId, watch::Receiver<Option<bool>>>>,
    /// When a node's last refresh failed, for background triggers' backoff.
    failed_at: Mutex<HashMap<NodeId, Instant>>,
    /// Where the exchanges run: in their own tasks, so a caller that gives up does not cancel the exchange
    /// for the others; bounded by `refresh.timeout`.
    tasks: TaskTracker,
}

impl Refresher {
    /// A refresher with nothing in flight, running exchanges on `tasks`.
    pub fn new(tasks: TaskTracker) -> Refresher {
        Refresher {
            inflight: Mutex::default(),
            failed_at: Mutex::default(),
            tasks,
        }
    }

    /// Refreshes `node` (or joins the refresh already in flight for it); `true` on success.
    pub async fn refresh(self: &Arc<Self>, node: &Arc<Node>, settings: &RefreshSettings) -> bool {
        if !settings.enabled() {
            return false;
        }
        let (mut receiver, leader) = {
            let mut inflight = self.inflight.lock();
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
        let failed = self.failed_at.lock();
        failed.get(&node).is_none_or(|at| at.elapsed() >= backoff)
    }

    /// Whether a refresh of `node` is in flight.
    pub fn in_flight(&self, node: NodeId) -> bool {
        self.inflight.lock().contains_key(&node)
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
