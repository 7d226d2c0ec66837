//! Hot reload of `config.toml`: on SIGHUP, on a change of the file (polled), and on the admin API's request.
//!
//! A reload parses and validates a whole new config; only a valid one is applied (atomically, see
//! [`Proxy::reload`]). An invalid one is logged with every error and counted, once per edit however many
//! triggers see it ([`FileWatch`]), and the old config keeps serving.

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

/// The file's modification time and size: what the watcher compares to see an edit.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// What one trigger of the watcher did.
#[derive(Debug)]
pub enum Attempt {
    /// Nothing to do: the file did not change since it was last read.
    Unchanged,
    /// A new config is in force.
    Applied(ReloadReport),
    /// The file was refused (and counted once).
    Refused,
    /// The file refused last time was read again, unchanged, and refused for the same reasons: not counted
    /// again, because it is the same bad edit (an editor's save is seen by the poll and by the SIGHUP that
    /// the operator or a unit file sends after it).
    RefusedAgain,
}

/// The reload triggers of one config file, with what they have seen: the file as last read, and the last
/// refusal (file stamp and errors), so one bad edit is counted once however many triggers fire for it.
#[derive(Debug)]
pub struct FileWatch {
    proxy: Proxy,
    path: PathBuf,
    /// The stamp of the file as last read (by either trigger).
    seen: Stamp,
    /// The stamp and error report of the last refused read; cleared by a successful one.
    refused: Option<(Stamp, String)>,
}

impl FileWatch {
    /// A watch over `path`, whose current content is taken as already loaded.
    pub fn new(proxy: Proxy, path: PathBuf) -> FileWatch {
        FileWatch {
            seen: stamp(&path),
            proxy,
            path,
            refused: None,
        }
    }

    /// SIGHUP: read the file whatever its stamp (files it names, such as certificates, may have changed).
    pub fn on_hangup(&mut self) -> Attempt {
        tracing::info!("SIGHUP: reloading config");
        self.read(stamp(&self.path))
    }

    /// A poll: read the file only if its stamp changed since it was last read.
    pub fn on_poll(&mut self) -> Attempt {
        let now = stamp(&self.path);
        if now == self.seen || now.is_none() {
            return Attempt::Unchanged;
        }
        tracing::info!(path = %self.path.display(), "config file changed: reloading");
        self.read(now)
    }

    fn read(&mut self, now: Stamp) -> Attempt {
        self.seen = now;
        match config::load(&self.path) {
            Ok(config) => {
                self.refused = None;
                let report = self.proxy.reload(config);
                tracing::info!(version = report.version, added = ?report.nodes_added, removed = ?report.nodes_removed, "config reloaded");
                Attempt::Applied(report)
            }
            Err(e) => {
                let errors = e.report();
                let again = self
                    .refused
                    .as_ref()
                    .is_some_and(|(stamp, report)| *stamp == now && *report == errors);
                if again {
                    tracing::warn!(
                        "config reload refused again: the file is unchanged since its last refusal"
                    );
                    return Attempt::RefusedAgain;
                }
                tracing::error!(error = %errors, "config reload refused; the running config keeps serving");
                self.proxy.reload_failed(&errors);
                self.refused = Some((now, errors));
                Attempt::Refused
            }
        }
    }
}

/// Reloads on SIGHUP and whenever the file's modification time or size changes (checked every `poll`).
/// Runs until dropped.
pub async fn watch(proxy: Proxy, path: PathBuf, poll: Duration) {
    let mut files = FileWatch::new(proxy, path);
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
                files.on_hangup();
            }
            _ = tick.tick() => {
                files.on_poll();
            }
        }
    }
}
