//! What each Unix signal does to a running proxy (the binary's contract; README "Signals" says the same):
//!
//! | signal             | effect                                                                            |
//! |--------------------|-----------------------------------------------------------------------------------|
//! | SIGTERM, SIGINT    | drain: `/ready` turns 503, no new connections, in-flight requests finish (up to   |
//! |                    | `runtime.drain_timeout`), the snapshot is written; exit 0                         |
//! | a second of those  | write the snapshot now and exit at once ([`Stopped::Forced`], exit 1)             |
//! | SIGQUIT            | exit at once: no drain, no snapshot ([`Stopped::Quit`], exit 131)                 |
//! | SIGHUP             | reload the config file (`server::reload::watch`)                                  |
//! | SIGUSR1            | write each node's health and the table size to the log                            |
//! | SIGUSR2            | nothing (logged): it must never kill the proxy, which is its default action       |
//!
//! Every handler is installed by [`Signals::install`] before the listeners are bound, so a signal that arrives
//! early never takes its default (fatal) action.

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::App;
use crate::logging::error_chain;
use crate::proxy::Proxy;

/// The signal handlers of a running proxy, installed and waiting.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    usr1: Signal,
    usr2: Signal,
    /// Keeps SIGHUP's handler installed from the start; the reload watcher listens for it itself.
    _hangup: Signal,
}

/// How a proxy run under [`App::run_until_signalled`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Drained after SIGTERM/SIGINT; the snapshot was written.
    Drained,
    /// A second SIGTERM/SIGINT cut the drain short; the snapshot was written, requests in flight are abandoned.
    Forced,
    /// SIGQUIT: nothing was drained or written.
    Quit,
}

impl Stopped {
    /// The process exit status for this ending.
    pub fn exit_code(self) -> u8 {
        match self {
            Stopped::Drained => 0,
            Stopped::Forced => 1,
            // What a shell reports for a process SIGQUIT killed (128 + 3), so supervisors read it alike.
            Stopped::Quit => 131,
        }
    }
}

impl Signals {
    /// Installs every handler (needs a tokio runtime).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            _hangup: signal(SignalKind::hangup())?,
        })
    }
}

impl App {
    /// Runs until SIGTERM/SIGINT has drained the proxy, or a second one or SIGQUIT cut it short (see the module
    /// doc). The caller exits the process with [`Stopped::exit_code`]: abandoned tasks end with the runtime.
    pub async fn run_until_signalled(self, signals: Signals) -> Stopped {
        let proxy = self.proxy.clone();
        let Signals {
            mut term,
            mut int,
            mut quit,
            mut usr1,
            mut usr2,
            _hangup,
        } = signals;
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let mut first = Some(first_tx);
        let run = self.run(async {
            let _ = first_rx.await;
        });
        let mut run = std::pin::pin!(run);
        loop {
            let name = tokio::select! {
                () = &mut run => return Stopped::Drained,
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = quit.recv() => {
                    tracing::warn!("SIGQUIT: exiting at once, without draining or writing the snapshot");
                    return Stopped::Quit;
                }
                _ = usr1.recv() => {
                    log_status(&proxy);
                    continue;
                }
                _ = usr2.recv() => {
                    tracing::info!("SIGUSR2 has no meaning here; ignored");
                    continue;
                }
            };
            match first.take() {
                Some(begin_drain) => {
                    tracing::info!(signal = name, "draining; send it again to exit at once");
                    let _ = begin_drain.send(());
                }
                None => {
                    tracing::warn!(
                        signal = name,
                        "second stop signal: writing the snapshot and exiting now"
                    );
                    save_snapshot(&proxy).await;
                    return Stopped::Forced;
                }
            }
        }
    }
}

/// Writes the snapshot off the async workers (it writes a file) and logs the outcome.
pub(super) async fn save_snapshot(proxy: &Proxy) {
    if proxy.current().config.affinity.snapshot_path.is_none() {
        return;
    }
    let proxy = proxy.clone();
    match tokio::task::spawn_blocking(move || proxy.save_snapshot()).await {
        Ok(Ok(Some(report))) => tracing::info!(
            written = report.written,
            skipped = report.skipped,
            "learned table saved"
        ),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!(error = %error_chain(&e), "saving the learned table failed"),
        Err(e) => tracing::error!(error = %e, "the snapshot task failed"),
    }
}

/// SIGUSR1: one line per node (health with its reason, drain, in flight) and one for the table.
fn log_status(proxy: &Proxy) {
    let generation = proxy.current();
    let pool = &generation.pool;
    for node in pool.nodes() {
        let health = node.health();
        tracing::info!(
            node = %node.spec.name,
            healthy = health.healthy,
            since = health.since,
            draining = pool.draining().contains(node.id),
            inflight = node.inflight(),
            reason = health.reason.as_deref().unwrap_or("-"),
            "status on SIGUSR1"
        );
    }
    let stats = proxy.table().stats();
    tracing::info!(
        entries = stats.len,
        max_entries = stats.max_entries,
        ready = %proxy.readiness().err().map_or_else(|| "yes".to_owned(), |why| why.to_string()),
        "status on SIGUSR1"
    );
}
