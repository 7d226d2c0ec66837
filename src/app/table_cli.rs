//! `tokenroute table export|import`: the learned table as JSON lines of fingerprints, for moving a deployment
//! from the memory store (snapshot and journal) to Redis.
//!
//! The lines are the snapshot's own format ([`snapshot`]): a header naming the fingerprint key's check value
//! and the nodes by name, then one line per entry (fingerprint, kind, owner bits over those names, expiry).
//! No credential is ever in it. Import maps owners by node name to the importing config's pool and refuses a
//! header written under another fingerprint key: point `affinity.fingerprint_key_file` of the Redis deployment
//! at the memory store's `<snapshot>.key` (or a copy of it).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::affinity::{
    journal, snapshot, unix_now, AffinityError, FingerprintKey, NodeId, RedisStore, StoreError,
    Table,
};
use crate::config::Config;
use crate::upstream::Pool;

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TableCliError {
    /// Export reads the snapshot and journal of `affinity.snapshot_path`.
    #[error("affinity.snapshot_path is not set: a memory store without a snapshot keeps nothing to export")]
    NoSnapshot,
    /// Import writes into the shared store.
    #[error("affinity.store is not \"redis\": import writes into a Redis store")]
    NotRedis,
    /// Redis did not answer within the connect timeout.
    #[error("Redis at {0} is unavailable; nothing imported")]
    Unavailable(String),
    /// Reading the key, the snapshot, the journal, or the input.
    #[error("cannot read the learned table")]
    Table(#[source] AffinityError),
    /// Writing the output.
    #[error("cannot write the export")]
    Write(#[source] std::io::Error),
    /// The store refused this config (another fingerprint key, other node ids).
    #[error("cannot join the Redis store")]
    Store(#[source] StoreError),
}

/// What an export or import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableReport {
    /// Entries written out (export) or into Redis (import).
    pub entries: usize,
    /// Entries left out: expired, owned only by nodes not in the config, malformed, or refused by Redis.
    pub skipped: usize,
}

/// Writes the table persisted at the config's snapshot path (snapshot, then journal) to `out`. Changes no
/// file: safe while an instance runs on it (a journal record being written is skipped).
pub fn export(config: &Config, out: &mut dyn Write) -> Result<TableReport, TableCliError> {
    let affinity = &config.affinity;
    let path = affinity
        .snapshot_path
        .as_deref()
        .ok_or(TableCliError::NoSnapshot)?;
    let key = key(config, Some(path))?;
    let names = node_names(config);
    let table = Table::new(affinity.max_entries.get());
    let now = unix_now();
    let loaded = snapshot::load(path, &key, &table, &names, now).map_err(TableCliError::Table)?;
    let replayed = journal::read(path, &key, &table, &names, now).map_err(TableCliError::Table)?;
    let written =
        snapshot::write_to(out, &table, &key, &names, now).map_err(TableCliError::Write)?;
    out.flush().map_err(TableCliError::Write)?;
    Ok(TableReport {
        entries: written.written,
        skipped: written.skipped
            + loaded.expired
            + loaded.orphaned
            + loaded.malformed
            + loaded.not_inserted
            + replayed.damaged_segments,
    })
}

/// Reads an export from `input` and writes every entry into the config's Redis store, through the same
/// script as a learn (owners join a live key's, the later expiry wins).
pub async fn import(config: &Config, input: impl BufRead) -> Result<TableReport, TableCliError> {
    let affinity = &config.affinity;
    let settings = affinity.redis.clone().ok_or(TableCliError::NotRedis)?;
    let key = key(config, affinity.snapshot_path.as_deref())?;
    let names = node_names(config);
    let table = Table::new(affinity.max_entries.get());
    let loaded = snapshot::read_from(
        input,
        Path::new("<standard input>"),
        &key,
        &table,
        &names,
        unix_now(),
    )
    .map_err(TableCliError::Table)?;
    let url = settings.url.clone();
    let nodes = names.iter().map(|(id, name)| (name.clone(), *id)).collect();
    let store = RedisStore::new(settings, Table::new(1), key.check_value(), nodes)
        .map_err(TableCliError::Store)?;
    let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
    let joined = store.start(&tasks, cancel.clone()).await;
    let mut report = TableReport {
        skipped: loaded.expired + loaded.orphaned + loaded.malformed + loaded.not_inserted,
        ..TableReport::default()
    };
    let outcome = match joined {
        Err(e) => Err(TableCliError::Store(e)),
        Ok(()) if !store.is_up() => Err(TableCliError::Unavailable(url)),
        Ok(()) => {
            for (fp, entry) in table.entries() {
                if store.import(fp, entry).await {
                    report.entries += 1;
                } else {
                    report.skipped += 1;
                }
            }
            Ok(report)
        }
    };
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    outcome
}

/// The fingerprint key the proxy would use with this config: `fingerprint_key_file`, else the snapshot's.
fn key(config: &Config, snapshot_path: Option<&Path>) -> Result<FingerprintKey, TableCliError> {
    let path: PathBuf = match (&config.affinity.fingerprint_key_file, snapshot_path) {
        (Some(file), _) => file.clone(),
        (None, Some(path)) => snapshot::key_path(path),
        (None, None) => return Err(TableCliError::NoSnapshot),
    };
    FingerprintKey::load_or_create(&path).map_err(TableCliError::Table)
}

/// The pool's node ids and names, as a proxy started from this config numbers them.
fn node_names(config: &Config) -> Vec<(NodeId, String)> {
    Pool::new(&config.upstream, None)
        .nodes()
        .iter()
        .map(|n| (n.id, n.spec.name.clone()))
        .collect()
}
