//! The whole application, assembled in one place: `main`, the demo and the tests all run it through
//! [`App::bind`] and [`App::run`], so tests exercise exactly what production runs.
//!
//! Everything runs under one cancellation tree and one task tracker:
//!
//! ```text
//! App::run(shutdown)
//! ├── server::run          proxy listeners; on shutdown: stop accepting, drain (runtime.drain_timeout)
//! │   └── server::Workers  connections, each served on one worker thread (its own runtime)
//! ├── admin::serve         admin listener; drains its own requests when the tree is cancelled
//! ├── reload::watch        SIGHUP and file changes (when started from a file)
//! ├── health probers       per pool generation (a child token replaced on reload)
//! ├── refresh triggers     node-up and timer loops; fan-outs, background refreshes
//! ├── idle connections     the sweep of idle upstream connections past their timeout
//! └── table upkeep         the expiry sweeper and the periodic snapshot
//! ```
//!
//! Shutdown order: the proxy listeners drain first, then the tree is cancelled and [`App::run`] waits for
//! every task to finish (the barrier), then stops the connection workers and writes the snapshot one last
//! time.

mod admin;
mod signals;
pub mod table_cli;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admin::ProxyAdmin;
pub use signals::{Signals, Stopped};

use crate::admin::AdminSettings;
use crate::affinity::{unix_now, AffinityError, StoreError};
use crate::config::Config;
use crate::logging::error_chain;
use crate::proxy::Proxy;
use crate::refresh::CurrentPool;
use crate::server::{self, BoundListener, Workers};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener (proxy or admin) could not be bound.
    #[error("{0}")]
    Bind(#[source] std::io::Error),
    /// The learned table could not be set up (key, snapshot, shared store settings).
    #[error("cannot set up the learned table")]
    Table(#[source] AffinityError),
    /// The shared store refused this instance (another fingerprint key, other node ids).
    #[error("cannot share the learned table through Redis")]
    Store(#[source] StoreError),
    /// A connection worker's thread or runtime could not be started.
    #[error("cannot start the connection workers")]
    Workers(#[source] std::io::Error),
}

/// A bound, not yet running, application.
#[derive(Debug)]
pub struct App {
    proxy: Proxy,
    listeners: Vec<BoundListener>,
    admin: Option<(TcpListener, AdminSettings)>,
    config_path: Option<PathBuf>,
    workers: Workers,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl App {
    /// Binds every listener of `config` (and the admin listener) and builds the proxy. `config_path` is the
    /// file reloads read; `None` for a config built in memory (no reload watcher, `POST /reload` refuses).
    pub async fn bind(config: Config, config_path: Option<PathBuf>) -> Result<App, StartError> {
        let listeners = server::bind(&config).await.map_err(StartError::Bind)?;
        let admin = match &config.admin {
            Some(settings) => {
                let listener = TcpListener::bind(settings.address).await.map_err(|e| {
                    StartError::Bind(std::io::Error::new(
                        e.kind(),
                        format!("cannot bind the admin API on {}: {e}", settings.address),
                    ))
                })?;
                Some((listener, settings.clone()))
            }
            None => None,
        };
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let proxy = Proxy::new(config, tasks.clone(), cancel.clone()).map_err(StartError::Table)?;
        proxy
            .start_store(&tasks, cancel.clone())
            .await
            .map_err(|e| {
                // The probers Proxy::new started stop with the tree.
                cancel.cancel();
                StartError::Store(e)
            })?;
        let count = proxy.current().config.runtime.workers();
        let workers = Workers::start(proxy.metrics().worker_connections(count)).map_err(|e| {
            cancel.cancel();
            StartError::Workers(e)
        })?;
        tracing::info!(workers = count, "connection workers started");
        Ok(App {
            proxy,
            listeners,
            admin,
            config_path,
            workers,
            tasks,
            cancel,
        })
    }

    /// The proxy (tests read its table and metrics).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The addresses the proxy listeners are bound to, in config order.
    pub fn listener_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The address the admin API is bound to, if it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Runs everything until `shutdown` completes, then drains and stops (see the module doc).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let App {
            proxy,
            listeners,
            admin,
            config_path,
            workers,
            tasks,
            cancel,
        } = self;
        let spawn = |work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
            let cancel = cancel.clone();
            tasks.spawn(async move {
                cancel.run_until_cancelled(work).await;
            });
        };
        if let Some((listener, settings)) = admin {
            let backend = Arc::new(ProxyAdmin::new(proxy.clone(), config_path.clone()));
            // The admin server stops on the tree's cancellation and drains its own requests.
            tasks.spawn(crate::admin::serve(
                listener,
                settings,
                backend,
                cancel.clone().cancelled_owned(),
            ));
        }
        if let Some(path) = config_path {
            spawn(Box::pin(server::reload::watch(
                proxy.clone(),
                path,
                std::time::Duration::from_secs(1),
            )));
        }
        start_refresh_triggers(&proxy);
        spawn(Box::pin(sweep_expired(proxy.clone())));
        spawn(Box::pin(close_idle_connections(proxy.clone())));
        if proxy.current().config.affinity.snapshot_path.is_some() {
            spawn(Box::pin(snapshot_periodically(proxy.clone())));
        }

        let stopping = proxy.clone();
        let shutdown = async move {
            shutdown.await;
            // From here `/ready` answers 503, so a balancer in front stops sending while we drain.
            stopping.begin_shutdown();
        };
        let workers = Arc::new(workers);
        server::run(listeners, proxy.clone(), workers.clone(), shutdown).await;

        // Tracked work on the workers (tunnels, fan-outs) sees the cancellation and ends while they still run.
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        // What is left on the workers (idle upstream connections, detached work) ends with them.
        workers.stop();
        signals::save_snapshot(&proxy).await;
    }
}

/// The node-up and timer refresh loops, reading the generation in force each time they wake.
fn start_refresh_triggers(proxy: &Proxy) {
    if !proxy.current().config.refresh.enabled() {
        return;
    }
    let reader = proxy.clone();
    let current: CurrentPool = Arc::new(move || {
        let generation = reader.current();
        (generation.pool.clone(), generation.config.refresh.clone())
    });
    proxy.refreshes().run_on_node_up(current.clone());
    proxy.refreshes().run_timer(current);
}

/// Removes expired credentials every `affinity.sweep_interval`.
async fn sweep_expired(proxy: Proxy) {
    let mut tick = crate::time::periodic(proxy.current().config.affinity.sweep_interval);
    loop {
        tick.tick().await;
        let expired = proxy.table().sweep(unix_now());
        if expired > 0 {
            tracing::debug!(expired, "swept expired credentials");
        }
    }
}

/// Closes idle upstream connections past `upstream.pool_idle_timeout` every second, whichever worker keeps them
/// (a worker whose traffic to a node stopped would otherwise hold them open).
async fn close_idle_connections(proxy: Proxy) {
    let mut tick = crate::time::periodic(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let closed = proxy.current().pool.close_expired_idle();
        if closed > 0 {
            tracing::debug!(closed, "closed idle upstream connections");
        }
    }
}

/// Writes the snapshot every `affinity.snapshot_interval` (off the async workers: it writes a file).
async fn snapshot_periodically(proxy: Proxy) {
    let mut tick = crate::time::periodic(proxy.current().config.affinity.snapshot_interval);
    loop {
        tick.tick().await;
        let proxy = proxy.clone();
        match tokio::task::spawn_blocking(move || proxy.save_snapshot()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %error_chain(&e), "snapshot failed"),
            Err(e) => tracing::warn!(error = %e, "snapshot task failed"),
        }
    }
}
