//! Opening the persistent table: fingerprint key, snapshot, then journal.

use std::path::Path;

use crate::affinity::journal::{self, Fsync, Journal, ReplayReport};
use crate::affinity::snapshot::{self, LoadReport};
use crate::affinity::{AffinityError, FingerprintKey, NodeId, Table};

/// What [`open_persistent`] restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// From the snapshot.
    pub snapshot: LoadReport,
    /// From the journal segments replayed over it.
    pub journal: ReplayReport,
}

/// Opens the learned table persisted at `snapshot_path`: loads (or creates) the fingerprint key beside it,
/// restores the snapshot, replays the journal over it (truncating a torn tail), and attaches a journal so
/// that every later mutation is appended before it returns. `node_names` maps the pool's ids to names, by
/// which persisted owners are matched. Saving a snapshot of the returned table
/// ([`snapshot::save`]) compacts the journal.
pub fn open_persistent(
    snapshot_path: &Path,
    max_entries: usize,
    node_names: &[(NodeId, String)],
    fsync: Fsync,
    now: u64,
) -> Result<(Table, FingerprintKey, RestoreReport), AffinityError> {
    let key = snapshot::load_key(snapshot_path)?;
    let (table, report) =
        open_persistent_with_key(snapshot_path, &key, max_entries, node_names, fsync, now)?;
    Ok((table, key, report))
}

/// [`open_persistent`] with a fingerprint key read elsewhere (`affinity.fingerprint_key_file`, shared by every
/// instance of a Redis-backed deployment); a snapshot or journal written under another key is refused.
pub fn open_persistent_with_key(
    snapshot_path: &Path,
    key: &FingerprintKey,
    max_entries: usize,
    node_names: &[(NodeId, String)],
    fsync: Fsync,
    now: u64,
) -> Result<(Table, RestoreReport), AffinityError> {
    let table = Table::new(max_entries);
    let snapshot = snapshot::load(snapshot_path, key, &table, node_names, now)?;
    let journal = journal::replay(snapshot_path, key, &table, node_names, now)?;
    table.attach_journal(Journal::open(snapshot_path, key, node_names, fsync)?);
    Ok((table, RestoreReport { snapshot, journal }))
}
