//! The configuration in force and everything built from it, swapped whole on reload.
//!
//! [`Proxy::reload`] applies a new, validated config atomically: nodes keep their ids (and, when unchanged,
//! their connections and health) by name; a removed node's entries leave the table and its metrics slot is
//! cleared before a new node can take its id. Requests in flight finish under the generation they started with.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Proxy;
use crate::affinity::NodeId;
use crate::config::Config;
use crate::upstream::Pool;

/// The configuration in force and the pool built from it.
#[derive(Debug)]
pub struct Generation {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Nodes, clients, health and balancer.
    pub pool: Arc<Pool>,
}

/// What `/status` reports about reloads.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// 1 for the config loaded at start, +1 per applied reload.
    pub version: u64,
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (the old config kept serving).
    pub failed: u64,
    /// The last refused reload's errors (keys and values; never secrets).
    pub last_error: Option<String>,
}

/// Why the proxy is not ready ([`Proxy::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// A shutdown signal arrived; in-flight requests are draining.
    #[error("draining: shutting down")]
    Draining,
    /// Some node has not had its first health check yet.
    #[error("waiting for the first health checks")]
    FirstChecks,
    /// No node is healthy and enabled.
    #[error("no healthy node")]
    NoHealthyNode,
}

/// What a reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The new config version.
    pub version: u64,
    /// Nodes added, by name.
    pub nodes_added: Vec<String>,
    /// Nodes removed, by name (their learned ownership is gone).
    pub nodes_removed: Vec<String>,
    /// Listeners were added, removed or moved to another address (the server rebinds them).
    pub listeners_changed: bool,
}

/// Reload bookkeeping and the health probers of the pool in force. Locked only by start-up and reloads.
#[derive(Debug)]
pub(super) struct Reloads {
    /// Config version and the last reload's result.
    status: Mutex<ReloadStatus>,
    /// Announces each applied reload's version (the server rebinds listeners on it).
    events: tokio::sync::watch::Sender<u64>,
    /// Where the probers run, and the token that stops the current pool's probers (a child of the proxy's).
    tasks: TaskTracker,
    cancel: CancellationToken,
    probers: Mutex<CancellationToken>,
}

impl Reloads {
    pub(super) fn new(tasks: TaskTracker, cancel: CancellationToken) -> Reloads {
        Reloads {
            status: Mutex::new(ReloadStatus {
                version: 1,
                ..ReloadStatus::default()
            }),
            events: tokio::sync::watch::channel(1).0,
            probers: Mutex::new(cancel.child_token()),
            tasks,
            cancel,
        }
    }
}

impl Proxy {
    /// Applies a new, validated config: swaps the generation atomically (see the module doc).
    pub fn reload(&self, config: Config) -> ReloadReport {
        let old = self.current();
        let pool = Arc::new(Pool::build(
            &config.upstream,
            config.health.as_ref(),
            Some(&old.pool),
        ));
        let nodes_removed: Vec<String> = old
            .pool
            .nodes()
            .iter()
            .filter(|n| pool.by_name(&n.spec.name).is_none())
            .map(|n| {
                let dropped = self.shared.table.remove_node(n.id);
                tracing::info!(node = %n.spec.name, dropped, "node removed; its learned ownership is gone");
                n.spec.name.clone()
            })
            .collect();
        // After the removals, before a request can use a reused id: journal records name the new owners.
        self.shared.table.set_node_names(&node_names(&pool));
        let nodes_added: Vec<String> = pool
            .nodes()
            .iter()
            .filter(|n| old.pool.by_name(&n.spec.name).is_none())
            .map(|n| {
                // Ids are reused: a new node must not inherit the counters of the one that had its id.
                self.shared.metrics.reset_node(n.id);
                n.spec.name.clone()
            })
            .collect();
        let addresses = |c: &Config| {
            c.listeners
                .iter()
                .map(|l| (l.name.clone(), l.address))
                .collect::<Vec<_>>()
        };
        let listeners_changed = addresses(&config) != addresses(&old.config);
        // The connection workers are started once, with the process.
        let (from, to) = (old.config.runtime.workers(), config.runtime.workers());
        if from != to {
            tracing::warn!(
                from,
                to,
                "runtime.worker_threads changed; it applies at the next restart"
            );
        }
        let generation = Arc::new(Generation {
            config: Arc::new(config),
            pool,
        });
        self.shared.current.store(generation.clone());
        self.start_probers(&generation);
        self.shared.metrics.observe_reload(true);
        let mut status = self.shared.reloads.status.lock();
        status.version += 1;
        status.applied += 1;
        self.shared.reloads.events.send_replace(status.version);
        ReloadReport {
            version: status.version,
            nodes_added,
            nodes_removed,
            listeners_changed,
        }
    }

    /// Records a refused reload (the old config keeps serving).
    pub fn reload_failed(&self, error: &str) {
        self.shared.metrics.observe_reload(false);
        let mut status = self.shared.reloads.status.lock();
        status.failed += 1;
        status.last_error = Some(error.to_owned());
    }

    /// Reload counters and the config version.
    pub fn reload_status(&self) -> ReloadStatus {
        self.shared.reloads.status.lock().clone()
    }

    /// Applied reloads, by config version, as they happen.
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.reloads.events.subscribe()
    }

    /// Whether the proxy should be sent traffic ([`Proxy::readiness`] is `Ok`).
    pub fn ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Ready when not shutting down, every node has had its first health check (when checks are on), and at
    /// least one node can take requests (healthy and not drained). What `/ready` answers.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(NotReady::Draining);
        }
        let generation = self.current();
        let pool = &generation.pool;
        if generation.config.health.is_some() && !pool.probed().is_superset(pool.all()) {
            return Err(NotReady::FirstChecks);
        }
        if pool.healthy().is_empty() {
            return Err(NotReady::NoHealthyNode);
        }
        Ok(())
    }

    /// Marks the proxy as shutting down: `/ready` answers 503 from now on, while in-flight requests drain.
    pub fn begin_shutdown(&self) {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Stops the previous pool's probers and starts probing `generation`'s pool.
    pub(super) fn start_probers(&self, generation: &Generation) {
        let reloads = &self.shared.reloads;
        let token = reloads.cancel.child_token();
        if let Some(settings) = &generation.config.health {
            crate::upstream::health::spawn_probers(
                &generation.pool,
                settings,
                &reloads.tasks,
                &token,
            );
        }
        std::mem::replace(&mut *reloads.probers.lock(), token).cancel();
    }
}

/// Node ids and names, for snapshots.
pub(super) fn node_names(pool: &Pool) -> Vec<(NodeId, String)> {
    pool.nodes()
        .iter()
        .map(|n| (n.id, n.spec.name.clone()))
        .collect()
}
