//! Hot reload of `config.toml`: on SIGHUP, on a change of the file (polled), and on the admin API's request.
//!
//! A reload parses and validates a whole new config; only a valid one is applied (atomically, see
//! [`Proxy::reload`]). An invalid one is logged with every error and counted, and the old config keeps serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::{self, LoadError};
use crate::proxy::{Proxy, ReloadReport};

/// Loads `path` and applies it; on error the running config is kept and the failure recorded.
pub fn reload_from_file(proxy: &Proxy, path: &Path) -> Result<ReloadReport, LoadError> {
    match config::load(path) {
        Ok(config) => {
            let report = proxy.reload(config);
            tracing::info!(
                version = report.version,
                added = %report.nodes_added.join(","),
                removed = %report.nodes_removed.join(","),
                "config reloaded"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::error!(error = %e.report(), "config reload refused; the running config keeps serving");
            proxy.reload_failed(&e.report());
            Err(e)
        }
    }
}

/// Reloads on SIGHUP and whenever the file's modification time or size changes (checked every `poll`).
/// Runs until dropped.
pub async fn watch(proxy: Proxy, path: PathBuf, poll: Duration) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut last = stamp(&path);
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
            None
        }
    };
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let signalled = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signalled => {
                tracing::info!("SIGHUP: reloading config");
                last = stamp(&path);
                let _ = reload_from_file(&proxy, &path);
            }
            _ = tick.tick() => {
                let now = stamp(&path);
                if now != last && now.is_some() {
                    last = now;
                    tracing::info!(path = %path.display(), "config file changed: reloading");
                    let _ = reload_from_file(&proxy, &path);
                }
            }
        }
    }
}
