//! The append-only journal beside a snapshot: every learned fact survives `kill -9`.
//!
//! Every table mutation that changes routing appends one checksummed record ([`record`]) with a single
//! `write()` before the mutating call returns. The request path learns before it relays a response, so a
//! fact the client has seen is in the page cache before the client can act on it, and a process crash cannot
//! lose it; [`Fsync`] decides how much a power loss can.
//!
//! # Files
//!
//! - `<snapshot>.journal`: the active segment, mode 0600, appended to.
//! - `<snapshot>.journal.<n>`: sealed segments, waiting for a snapshot to cover them.
//! - `<snapshot>.journal.next`: a segment being created; never holds a mutation (see [`Journal::rotate`]).
//!
//! # Compaction
//!
//! Saving a snapshot of a journalled table ([`crate::affinity::snapshot::save`]) first seals the active
//! segment and starts a new one, then writes the snapshot, and only once the snapshot is renamed into place
//! deletes the sealed segments. So the snapshot on disk always covers every deleted segment, and replaying
//! "snapshot, then every remaining segment in order" rebuilds the table whatever moment a crash hit: records
//! hold states or idempotent operations, so replaying one the snapshot already reflects changes nothing that
//! a later record does not set again. Saves are serialised (one compaction at a time).
//!
//! # Ordering
//!
//! A journalled mutation holds the journal's mutex from before it touches the map until its record is written,
//! so the file's order is the order in which mutations took effect, even for two threads changing one entry.
//! Lookups never take it: the per-request read path is unchanged. Not journalled, on purpose: the expiry
//! sweep (replay skips expired entries anyway) and eviction of a full table (an evicted entry that comes back
//! after a restart is still a true fact, and the replayed table evicts again when full).
//!
//! # Damage
//!
//! Replay stops at the first torn or corrupt record of a segment, logs a warning, truncates the segment there
//! and goes on with the next segment; it never refuses to start for that. A segment written under another
//! fingerprint key is refused (as a snapshot is), and so is one of another format version, which a downgrade
//! must not destroy.
//!
//! Longer than 600 lines: writing, rotating and replaying share the segment-file invariants described above, and
//! a third of the file is the tests that tear and corrupt segments.

pub mod record;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::affinity::table::Entry;
use crate::affinity::{
    AffinityError, Fingerprint, FingerprintKey, NodeId, NodeSet, Table, MAX_NODES,
};
use crate::oauth::Specificity;
pub use record::Record;
use record::{Decoded, Header};

/// When journal writes are forced to disk (`affinity.journal_fsync`). Every policy survives a process crash:
/// a `write()` is in the kernel's page cache before the mutation returns. The policy only decides what a
/// power loss or kernel crash can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Never: the kernel writes back when it likes (usually within 30 s).
    Never,
    /// After every record: nothing is lost, at the price of a disk flush per learned fact, under the journal's
    /// mutex (so every learning response waits for the disk).
    Always,
    /// A background thread flushes at this period when something was written: at most one period is lost.
    Every(Duration),
}

impl Fsync {
    /// The default, `"interval"` every second: Redis's `appendfsync everysec` trade-off. Nothing on the
    /// request path waits for the disk, and a power loss costs at most about a second of learned facts
    /// (flows in that second fail once and are repaired by replay on another node).
    pub const DEFAULT: Fsync = Fsync::Every(Duration::from_secs(1));
}

/// What [`replay`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: usize,
    /// Valid records read.
    pub records: usize,
    /// `Put` records already expired (their entries were dropped).
    pub expired: usize,
    /// Token `Put` records none of whose owners is in the pool any more (their entries were dropped).
    pub orphaned: usize,
    /// Segments with a torn or corrupt tail, truncated.
    pub damaged_segments: usize,
    /// Bytes cut off those tails.
    pub truncated_bytes: u64,
}

/// Counters of a running journal (for `/status` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Records appended since start.
    pub records: u64,
    /// Bytes appended since start.
    pub bytes: u64,
    /// Appends that failed (the fact stays in memory and reaches disk with the next snapshot).
    pub write_errors: u64,
    /// Segments sealed by snapshots.
    pub rotations: u64,
}

/// The path of the active segment for the snapshot at `base`: `<base>.journal`.
pub fn active_path(base: &Path) -> PathBuf {
    suffixed(base, ".journal")
}

fn sealed_path(base: &Path, n: u64) -> PathBuf {
    suffixed(base, &format!(".journal.{n}"))
}

fn next_path(base: &Path) -> PathBuf {
    suffixed(base, ".journal.next")
}

fn suffixed(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The numbers of the sealed segments beside `base`, ascending.
fn sealed_numbers(base: &Path) -> io::Result<Vec<u64>> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(stem) = base.file_name().map(|n| {
        let mut s = n.to_owned();
        s.push(".journal.");
        s.to_string_lossy().into_owned()
    }) else {
        return Ok(Vec::new());
    };
    let mut numbers: Vec<u64> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                name.to_str()?.strip_prefix(&stem)?.parse().ok()
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    numbers.sort_unstable();
    Ok(numbers)
}

/// Every segment beside `base` in replay order: sealed ones by number, then the active one.
pub fn segments(base: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = sealed_numbers(base)?
        .into_iter()
        .map(|n| sealed_path(base, n))
        .collect();
    let active = active_path(base);
    if active.exists() {
        paths.push(active);
    }
    Ok(paths)
}

/// Replays every journal segment beside the snapshot `base` into `table` (which holds the snapshot already),
/// mapping owners to the ids in `node_names` by name. Truncates damaged tails; see the module docs.
pub fn replay(
    base: &Path,
    key: &FingerprintKey,
    table: &Table,
    node_names: &[(NodeId, String)],
    now: u64,
) -> Result<ReplayReport, AffinityError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AffinityError::Io { path, source }
    };
    // A segment still being created when the process died holds no mutation.
    match std::fs::remove_file(next_path(base)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&next_path(base))(e)),
        _ => {}
    }
    replay_segments(base, key, table, node_names, now, true)
}

/// [`replay`] without changing a file: a damaged tail is skipped, not truncated. For reading the journal of
/// an instance that may be running (`tokenroute table export`), whose active segment may end mid-record.
pub fn read(
    base: &Path,
    key: &FingerprintKey,
    table: &Table,
    node_names: &[(NodeId, String)],
    now: u64,
) -> Result<ReplayReport, AffinityError> {
    replay_segments(base, key, table, node_names, now, false)
}

fn replay_segments(
    base: &Path,
    key: &FingerprintKey,
    table: &Table,
    node_names: &[(NodeId, String)],
    now: u64,
    truncate: bool,
) -> Result<ReplayReport, AffinityError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AffinityError::Io { path, source }
    };
    let mut replayer = Replayer {
        table,
        node_names,
        now,
        truncate,
        ids: [None; MAX_NODES],
        report: ReplayReport::default(),
    };
    for path in segments(base).map_err(io_err(base))? {
        replayer.segment(&path, key.check_value())?;
    }
    Ok(replayer.report)
}

struct Replayer<'a> {
    table: &'a Table,
    node_names: &'a [(NodeId, String)],
    now: u64,
    /// Whether a damaged tail is cut off the file (start-up) or only skipped (a read-only export).
    truncate: bool,
    /// `ids[i]`: the current id of the node the segment's id `i` names.
    ids: [Option<NodeId>; MAX_NODES],
    report: ReplayReport,
}

impl Replayer<'_> {
    fn segment(&mut self, path: &Path, key_check: Fingerprint) -> Result<(), AffinityError> {
        let io_err = |source| AffinityError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(self.truncate)
            .open(path)
            .map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        self.report.segments += 1;
        self.ids = [None; MAX_NODES];

        let mut buf = Vec::with_capacity(1 << 20);
        let mut eof = fill(&mut file, &mut buf, record::HEADER_LEN).map_err(io_err)?;
        let mut valid = match record::decode_header(&buf) {
            Header::Valid(check) if check == key_check => record::HEADER_LEN as u64,
            Header::Valid(_) => {
                return Err(AffinityError::KeyMismatch {
                    path: path.to_owned(),
                })
            }
            Header::OtherVersion(version) => {
                return Err(AffinityError::JournalVersion {
                    path: path.to_owned(),
                    version,
                })
            }
            Header::Incomplete | Header::Corrupt => 0,
        };
        if valid > 0 {
            let mut pos = record::HEADER_LEN;
            loop {
                match record::decode(&buf[pos..]) {
                    Decoded::Record(record, used) => {
                        self.apply(record);
                        self.report.records += 1;
                        pos += used;
                        valid += used as u64;
                    }
                    Decoded::Incomplete if !eof => {
                        buf.drain(..pos);
                        pos = 0;
                        eof = fill(&mut file, &mut buf, 1 << 20).map_err(io_err)?;
                    }
                    Decoded::Incomplete | Decoded::Corrupt => break,
                }
            }
        }
        if valid < file_len && !self.truncate {
            self.report.damaged_segments += 1;
        } else if valid < file_len {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = valid,
                dropped_bytes = file_len - valid,
                "journal segment ends in a torn or corrupt record; truncated there"
            );
            file.set_len(valid).map_err(io_err)?;
            self.report.damaged_segments += 1;
            self.report.truncated_bytes += file_len - valid;
        }
        Ok(())
    }

    fn apply(&mut self, record: Record) {
        let table = self.table;
        match record {
            Record::Names(names) => {
                self.ids = [None; MAX_NODES];
                for (old, name) in names {
                    self.ids[old.index()] = self
                        .node_names
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(id, _)| *id);
                }
            }
            Record::Put {
                fp,
                kind,
                owners,
                expires_at,
            } => {
                let owners = self.map(owners);
                if u64::from(expires_at) <= self.now {
                    self.report.expired += 1;
                    table.forget(fp);
                } else if owners.is_empty() && kind.specificity() != Specificity::Key {
                    self.report.orphaned += 1;
                    table.forget(fp);
                } else {
                    table.replay_put(
                        fp,
                        Entry::new(kind, owners, u64::from(expires_at)),
                        self.now,
                    );
                }
            }
            Record::Delete { fp } => {
                table.forget(fp);
            }
            Record::AddOwnerToKinds { node, kinds } => {
                if let Some(node) = self.ids[node.index()] {
                    table.add_owner_to_kinds(node, &kinds, &[]);
                }
            }
            // Owners not in the pool are already dropped by the mapping; a node removed and then re-added
            // under the same name must still lose what it owned before.
            Record::RemoveNode { node } => {
                if let Some(node) = self.ids[node.index()] {
                    table.remove_node(node);
                }
            }
        }
    }

    fn map(&self, owners: NodeSet) -> NodeSet {
        owners
            .iter()
            .filter_map(|old| self.ids[old.index()])
            .collect()
    }
}

/// Reads until `buf` holds at least `want` more bytes or the file ends; whether it ended.
fn fill(file: &mut File, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let target = buf.len() + want;
    let mut chunk = [0u8; 64 * 1024];
    while buf.len() < target {
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(true);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(false)
}

/// The journal writer of one table; clone it freely.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    /// The snapshot path the segments sit beside.
    base: PathBuf,
    key_check: Fingerprint,
    fsync: Fsync,
    /// The active segment and the encode buffer. `Mutex`: held by every journalled table mutation for the
    /// length of the mutation and one `write()` (once per learning response or refresh, never by lookups);
    /// by rotation for a few file operations; by the fsync thread for a pointer copy.
    state: Mutex<State>,
    /// Serialises compactions: two overlapping snapshots could otherwise delete each other's segments.
    /// Held for a whole snapshot save, off the request path.
    compaction: Mutex<()>,
    records: AtomicU64,
    bytes: AtomicU64,
    write_errors: AtomicU64,
    rotations: AtomicU64,
}

struct State {
    file: Arc<File>,
    /// Bytes known written to `file`: a failed write is cut back to it before the next one.
    len: u64,
    buf: Vec<u8>,
    /// The names written at the head of each new segment.
    names: Vec<(NodeId, String)>,
    next_seal: u64,
    /// The last write failed (logged once per change of state).
    failing: bool,
    /// Written since the last fsync.
    dirty: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &active_path(&self.inner.base))
            .field("fsync", &self.inner.fsync)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the active segment beside `base` for appending, after [`replay`] checked and
    /// truncated it, and records `node_names` at its end.
    pub fn open(
        base: &Path,
        key: &FingerprintKey,
        node_names: &[(NodeId, String)],
        fsync: Fsync,
    ) -> Result<Journal, AffinityError> {
        let path = active_path(base);
        let io_err = |source| AffinityError::Io {
            path: path.clone(),
            source,
        };
        let file = open_append(&path).map_err(io_err)?;
        let mut len = file.metadata().map_err(io_err)?.len();
        let mut head = Vec::new();
        if len < record::HEADER_LEN as u64 {
            // Created now, or emptied by replay because its header was torn.
            file.set_len(0).map_err(io_err)?;
            len = 0;
            record::encode_header(key.check_value(), &mut head);
        }
        record::encode(&Record::Names(node_names.to_vec()), &mut head);
        (&file).write_all(&head).map_err(io_err)?;
        len += head.len() as u64;
        let next_seal = sealed_numbers(base)
            .map_err(io_err)?
            .last()
            .map_or(1, |n| n + 1);
        let inner = Arc::new(Inner {
            base: base.to_owned(),
            key_check: key.check_value(),
            fsync,
            state: Mutex::new(State {
                file: Arc::new(file),
                len,
                buf: Vec::with_capacity(64),
                names: node_names.to_vec(),
                next_seal,
                failing: false,
                dirty: true,
            }),
            compaction: Mutex::new(()),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
        });
        if let Fsync::Every(period) = fsync {
            spawn_syncer(Arc::downgrade(&inner), period);
        }
        Ok(Journal { inner })
    }

    /// The snapshot path this journal sits beside.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// Counters since start.
    pub fn stats(&self) -> JournalStats {
        let i = &self.inner;
        JournalStats {
            records: i.records.load(Ordering::Relaxed),
            bytes: i.bytes.load(Ordering::Relaxed),
            write_errors: i.write_errors.load(Ordering::Relaxed),
            rotations: i.rotations.load(Ordering::Relaxed),
        }
    }

    /// Takes the journal for one table mutation: hold it from before the map changes until the record is
    /// appended.
    pub(crate) fn writer(&self) -> Writer<'_> {
        Writer {
            state: self.inner.state.lock().unwrap_or_else(|e| e.into_inner()),
            inner: &self.inner,
        }
    }

    /// Starts a compaction: seals the active segment and starts a new one. Call before the snapshot reads the
    /// table; [`Compaction::finish`] after the snapshot is in place. If sealing fails the snapshot is still
    /// written, and no segment is deleted.
    pub(crate) fn begin_compaction(&self) -> Compaction<'_> {
        let serial = self
            .inner
            .compaction
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let sealed = match self.rotate() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(
                    journal = %active_path(&self.inner.base).display(),
                    error = %e,
                    "cannot start a new journal segment; the old ones stay until a later snapshot"
                );
                None
            }
        };
        Compaction {
            journal: self,
            sealed,
            _serial: serial,
        }
    }

    /// Seals the active segment as `<base>.journal.<n>` and makes a fresh one active; returns `n`.
    ///
    /// The fresh segment is fully written under a temporary name before any rename, and the writer switches
    /// to it only after both renames, so no mutation is ever appended to a file that a crash could leave
    /// unreplayed: a crash between the renames leaves the sealed segment and a `.next` file that holds only a
    /// header and names, which replay deletes.
    fn rotate(&self) -> io::Result<u64> {
        let base = &self.inner.base;
        let (active, next) = (active_path(base), next_path(base));
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = st.next_seal;
        let sealed = sealed_path(base, n);

        let mut head = Vec::new();
        record::encode_header(self.inner.key_check, &mut head);
        record::encode(&Record::Names(st.names.clone()), &mut head);
        let fresh = (|| {
            let _ = std::fs::remove_file(&next);
            let file = open_append(&next)?;
            (&file).write_all(&head)?;
            if self.inner.fsync != Fsync::Never {
                file.sync_data()?;
            }
            Ok::<_, io::Error>(file)
        })();
        let fresh = match fresh {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&next);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&active, &sealed) {
            let _ = std::fs::remove_file(&next);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&next, &active) {
            // Put the old segment back under its active name and keep appending to it.
            let _ = std::fs::rename(&sealed, &active);
            let _ = std::fs::remove_file(&next);
            return Err(e);
        }
        let old = std::mem::replace(&mut st.file, Arc::new(fresh));
        st.len = head.len() as u64;
        st.next_seal += 1;
        let was_dirty = std::mem::replace(&mut st.dirty, false);
        drop(st);
        self.inner.rotations.fetch_add(1, Ordering::Relaxed);
        if self.inner.fsync != Fsync::Never {
            // The sealed segment must be durable until a snapshot covers it; off the lock.
            if was_dirty {
                old.sync_data()?;
            }
            sync_dir(base);
        }
        Ok(n)
    }
}

/// A journal held for one table mutation.
pub(crate) struct Writer<'a> {
    state: MutexGuard<'a, State>,
    inner: &'a Inner,
}

impl Writer<'_> {
    /// Appends the new state of `fp`.
    pub(crate) fn put(&mut self, fp: Fingerprint, entry: Entry) {
        self.append(&Record::Put {
            fp,
            kind: entry.kind(),
            owners: entry.owners(),
            expires_at: u32::try_from(entry.expires_at()).unwrap_or(u32::MAX),
        });
    }

    /// Records that from here on ids mean these names (a reload changed the pool).
    pub(crate) fn names(&mut self, names: &[(NodeId, String)]) {
        self.state.names = names.to_vec();
        self.append(&Record::Names(names.to_vec()));
    }

    /// Appends `record` with one `write()`. A failure is counted and logged once per change of state; the
    /// mutation stands in memory (a store failing never fails a request) and the next snapshot covers it.
    pub(crate) fn append(&mut self, record: &Record) {
        let st = &mut *self.state;
        let file = Arc::clone(&st.file);
        let mut result = Ok(());
        if st.failing {
            // Cut a partly written record off, so later records stay readable.
            result = file.set_len(st.len);
        }
        st.buf.clear();
        record::encode(record, &mut st.buf);
        result = result.and_then(|()| (&*file).write_all(&st.buf));
        if result.is_ok() && self.inner.fsync == Fsync::Always {
            result = file.sync_data();
        }
        match result {
            Ok(()) => {
                st.len += st.buf.len() as u64;
                st.dirty = true;
                self.inner.records.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .bytes
                    .fetch_add(st.buf.len() as u64, Ordering::Relaxed);
                if st.failing {
                    st.failing = false;
                    tracing::info!(journal = %active_path(&self.inner.base).display(), "journal writes work again");
                }
            }
            Err(e) => {
                self.inner.write_errors.fetch_add(1, Ordering::Relaxed);
                if !st.failing {
                    st.failing = true;
                    tracing::warn!(
                        journal = %active_path(&self.inner.base).display(),
                        error = %e,
                        "journal write failed; facts learned meanwhile reach disk with the next snapshot"
                    );
                }
            }
        }
    }
}

/// A compaction in progress (see [`Journal::begin_compaction`]). Dropping it without [`Compaction::finish`]
/// (the snapshot failed) deletes nothing.
pub(crate) struct Compaction<'a> {
    journal: &'a Journal,
    sealed: Option<u64>,
    _serial: MutexGuard<'a, ()>,
}

impl Compaction<'_> {
    /// The snapshot is in place: deletes every sealed segment it covers.
    pub(crate) fn finish(self) {
        let Some(upto) = self.sealed else {
            return;
        };
        let base = &self.journal.inner.base;
        match sealed_numbers(base) {
            Ok(numbers) => {
                for n in numbers.into_iter().filter(|n| *n <= upto) {
                    let path = sealed_path(base, n);
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!(segment = %path.display(), error = %e, "cannot delete a compacted journal segment");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list journal segments"),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn sync_dir(base: &Path) {
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

/// Flushes the active segment every `period` while the journal lives. A plain thread, not a task: the
/// journal is opened before any runtime exists, and a blocking `fsync` has no place on an async worker. It
/// notices the journal is gone at its next tick.
fn spawn_syncer(inner: Weak<Inner>, period: Duration) {
    let spawned = std::thread::Builder::new()
        .name("journal-fsync".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let file = {
                let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                if !std::mem::replace(&mut st.dirty, false) {
                    continue;
                }
                Arc::clone(&st.file)
            };
            if let Err(e) = file.sync_data() {
                tracing::warn!(error = %e, "journal fsync failed");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the journal fsync thread; journal writes are not flushed to disk");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::files::tests::temp_path;
    use crate::affinity::{open_persistent, snapshot};
    use crate::oauth::CredentialKind;

    const NOW: u64 = 1_700_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    /// A fresh directory, removed on drop; the snapshot path is `<dir>/table`.
    struct Dir(PathBuf);

    impl Dir {
        fn new(label: &str) -> Dir {
            let dir = temp_path(label);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn base(&self) -> PathBuf {
            self.0.join("table")
        }

        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn node(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn names(pairs: &[(usize, &str)]) -> Vec<(NodeId, String)> {
        pairs
            .iter()
            .map(|&(i, n)| (node(i), n.to_owned()))
            .collect()
    }

    fn three() -> Vec<(NodeId, String)> {
        names(&[(0, "lbcq_1"), (1, "lbcq_2"), (2, "lbcq_3")])
    }

    fn fp(i: u32) -> Fingerprint {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        bytes[15] = 0xa5;
        Fingerprint::from_bytes(bytes)
    }

    fn open(dir: &Dir, nodes: &[(NodeId, String)]) -> (Table, RestoreReport) {
        let (table, _, report) =
            open_persistent(&dir.base(), 100_000, nodes, Fsync::Never, NOW).unwrap();
        (table, report)
    }

    use crate::affinity::RestoreReport;

    fn sorted(table: &Table) -> Vec<(Fingerprint, Entry)> {
        let mut entries: Vec<_> = table.entries().collect();
        entries.sort_by_key(|(f, _)| *f);
        entries
    }

    /// The entries that differ between two tables, at most ten: a readable failure.
    fn differences(a: &Table, b: &Table) -> Vec<String> {
        let (a, b) = (sorted(a), sorted(b));
        let b_map: std::collections::HashMap<_, _> = b.iter().copied().collect();
        let a_map: std::collections::HashMap<_, _> = a.iter().copied().collect();
        let mut out: Vec<String> = a
            .iter()
            .filter(|(f, e)| b_map.get(f) != Some(e))
            .map(|(f, e)| format!("{f:?}: {e:?} vs {:?}", b_map.get(f)))
            .chain(
                b.iter()
                    .filter(|(f, _)| !a_map.contains_key(f))
                    .map(|(f, e)| format!("{f:?}: missing vs {e:?}")),
            )
            .collect();
        out.truncate(10);
        out
    }

    /// Every kind of journalled mutation, as the proxy makes them.
    fn mutate(table: &Table) {
        use CredentialKind::*;
        table.learn(fp(1), ConsumerKey, node(0), HOUR, NOW);
        table.learn(fp(1), ConsumerKey, node(2), HOUR, NOW);
        table.learn(fp(2), RequestToken, node(1), HOUR, NOW);
        table.learn(fp(3), AccessToken, node(2), HOUR, NOW);
        table.learn(fp(4), ClientId, node(1), HOUR, NOW);
        table.learn(fp(5), SessionCookie, node(0), HOUR, NOW);
        table.learn(fp(6), Verifier, node(0), HOUR, NOW);
        assert!(table.add_owner(fp(4), node(0)));
        assert!(table.remove_owner(fp(1), node(0)));
        assert!(
            table.remove_owner(fp(6), node(0)),
            "a token losing its last owner is dropped"
        );
        // Approval: forget, then learn on the approver.
        assert!(table.forget(fp(4)));
        table.learn(fp(4), ClientId, node(2), HOUR, NOW);
        // A key approved after the refresh of node 1 started: the refresh must not make node 1 its owner.
        table.learn(fp(7), ConsumerKey, node(2), HOUR, NOW);
        assert_eq!(
            table.add_owner_to_kinds(node(1), &[ConsumerKey, ClientId], &[fp(7)]),
            2
        );
        assert_eq!(
            table.lookup(fp(7), NOW).unwrap().owners(),
            NodeSet::single(node(2))
        );
        assert_eq!(table.remove_node(node(0)), 1);
    }

    #[test]
    fn a_killed_table_reopens_with_every_mutation_since_the_last_snapshot() {
        let dir = Dir::new("journal-kill");
        let (table, _) = open(&dir, &three());
        mutate(&table);
        let before = sorted(&table);
        assert_eq!(before.len(), 5);
        assert_eq!(table.journal_stats().unwrap().records, 16);
        // No snapshot, no shutdown: what a `kill -9` leaves.
        drop(table);
        let (reopened, report) = open(&dir, &three());
        assert_eq!(sorted(&reopened), before);
        assert_eq!(report.snapshot.restored, 0);
        assert_eq!(
            report.journal.records, 17,
            "15 mutations, the exception's restoring put and the names record"
        );
        assert_eq!(report.journal.damaged_segments, 0);
        assert_eq!(dir.files(), ["table.journal", "table.key"]);
    }

    #[test]
    fn journal_is_private_and_holds_no_credential() {
        let dir = Dir::new("journal-private");
        let (table, key, _) =
            open_persistent(&dir.base(), 10, &three(), Fsync::Always, NOW).unwrap();
        table.learn(
            key.fingerprint("canary-secret-token"),
            CredentialKind::AccessToken,
            node(0),
            HOUR,
            NOW,
        );
        let path = active_path(&dir.base());
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"canary"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn owners_follow_node_names_across_restarts_and_reloads() {
        let dir = Dir::new("journal-names");
        let (table, _) = open(&dir, &three());
        table.learn(fp(1), CredentialKind::AccessToken, node(1), HOUR, NOW);
        // A reload removes lbcq_2 and gives its id to a new node, which then issues a token.
        table.remove_node(node(1));
        table.set_node_names(&names(&[(0, "lbcq_1"), (1, "lbcq_9"), (2, "lbcq_3")]));
        table.learn(fp(2), CredentialKind::AccessToken, node(1), HOUR, NOW);
        table.learn(fp(3), CredentialKind::AccessToken, node(2), HOUR, NOW);
        drop(table);

        // After a restart the ids are different again.
        let now_ids = names(&[(4, "lbcq_9"), (5, "lbcq_3"), (6, "lbcq_1"), (7, "lbcq_2")]);
        let (reopened, _) = open(&dir, &now_ids);
        assert!(reopened.lookup(fp(1), NOW).is_none());
        assert_eq!(
            reopened.lookup(fp(2), NOW).unwrap().owners(),
            NodeSet::single(node(4))
        );
        assert_eq!(
            reopened.lookup(fp(3), NOW).unwrap().owners(),
            NodeSet::single(node(5))
        );

        // A node missing after the restart: its tokens are orphaned, counted, and not restored.
        drop(reopened);
        let (without, report) = open(&dir, &names(&[(0, "lbcq_3")]));
        assert!(without.lookup(fp(2), NOW).is_none());
        assert_eq!(
            without.lookup(fp(3), NOW).unwrap().owners(),
            NodeSet::single(node(0))
        );
        assert!(report.journal.orphaned >= 1, "{report:?}");
    }

    #[test]
    fn expired_records_are_skipped_at_replay() {
        let dir = Dir::new("journal-expired");
        let (table, _) = open(&dir, &three());
        table.learn(
            fp(1),
            CredentialKind::Code,
            node(0),
            Duration::from_secs(10),
            NOW,
        );
        table.learn(fp(2), CredentialKind::Code, node(0), HOUR, NOW);
        drop(table);
        let (table, _, report) =
            open_persistent(&dir.base(), 10, &three(), Fsync::Never, NOW + 60).unwrap();
        assert!(table.lookup(fp(1), NOW).is_none());
        assert!(table.lookup(fp(2), NOW).is_some());
        assert_eq!(report.journal.expired, 1);
    }

    /// Learns `n` tokens one record each and returns the active segment's bytes and each record's end offset.
    fn journal_of_tokens(dir: &Dir, n: u32) -> (Vec<u8>, Vec<usize>) {
        let (table, _) = open(dir, &three());
        let start = std::fs::metadata(active_path(&dir.base())).unwrap().len() as usize;
        for i in 0..n {
            table.learn(
                fp(i),
                CredentialKind::AccessToken,
                node(i as usize % 3),
                HOUR,
                NOW,
            );
        }
        drop(table);
        let bytes = std::fs::read(active_path(&dir.base())).unwrap();
        let ends = (1..=n as usize)
            .map(|k| start + k * record::PUT_LEN)
            .collect();
        assert_eq!(bytes.len(), start + n as usize * record::PUT_LEN);
        (bytes, ends)
    }

    #[test]
    fn a_tail_torn_at_any_byte_is_truncated_and_the_whole_records_kept() {
        let source = Dir::new("journal-torn-src");
        let (bytes, ends) = journal_of_tokens(&source, 4);
        for cut in 0..=bytes.len() {
            let dir = Dir::new("journal-torn");
            std::fs::write(active_path(&dir.base()), &bytes[..cut]).unwrap();
            // The key the source journal was written under.
            std::fs::copy(
                snapshot::key_path(&source.base()),
                snapshot::key_path(&dir.base()),
            )
            .unwrap();
            let (table, report) = open(&dir, &three());
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(table.len(), whole, "cut at {cut}");
            for i in 0..whole as u32 {
                assert!(
                    table.lookup(fp(i), NOW).is_some(),
                    "cut at {cut}: token {i}"
                );
            }
            let on_a_boundary = cut == 0
                || cut == record::HEADER_LEN
                || ends.contains(&cut)
                || cut == ends[0] - record::PUT_LEN;
            assert_eq!(
                report.journal.damaged_segments == 0,
                on_a_boundary,
                "cut at {cut}: {report:?}"
            );
            // Appending after the truncation leaves a journal that replays whole.
            table.learn(fp(100), CredentialKind::Code, node(0), HOUR, NOW);
            drop(table);
            let (again, report) = open(&dir, &three());
            assert_eq!(again.len(), whole + 1, "cut at {cut}");
            assert_eq!(report.journal.damaged_segments, 0, "cut at {cut}");
        }
    }

    #[test]
    fn a_bad_checksum_drops_that_record_and_everything_after_it() {
        let source = Dir::new("journal-crc");
        let (mut bytes, ends) = journal_of_tokens(&source, 5);
        // Damage the third token's expiry.
        bytes[ends[2] - 6] ^= 0x40;
        std::fs::write(active_path(&source.base()), &bytes).unwrap();
        let (table, report) = open(&source, &three());
        assert_eq!(table.len(), 2);
        assert_eq!(report.journal.damaged_segments, 1);
        assert_eq!(report.journal.truncated_bytes, 3 * record::PUT_LEN as u64);
        assert!(table.lookup(fp(1), NOW).is_some() && table.lookup(fp(2), NOW).is_none());
    }

    #[test]
    fn a_journal_under_another_key_or_version_is_refused() {
        let dir = Dir::new("journal-refuse");
        drop(open(&dir, &three()));
        std::fs::remove_file(snapshot::key_path(&dir.base())).unwrap();
        let err = open_persistent(&dir.base(), 10, &three(), Fsync::Never, NOW).unwrap_err();
        assert!(matches!(err, AffinityError::KeyMismatch { .. }), "{err:?}");

        let dir = Dir::new("journal-version");
        drop(open(&dir, &three()));
        let path = active_path(&dir.base());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6] = 9;
        let crc = crc32fast::hash(&bytes[..24]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = open_persistent(&dir.base(), 10, &three(), Fsync::Never, NOW).unwrap_err();
        assert!(
            matches!(err, AffinityError::JournalVersion { version: 9, .. }),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    }

    #[test]
    fn a_header_that_is_not_a_journal_is_replaced_not_refused() {
        let dir = Dir::new("journal-garbage");
        drop(open(&dir, &three()));
        std::fs::write(
            active_path(&dir.base()),
            b"this is not a journal at all, not at all",
        )
        .unwrap();
        let (table, report) = open(&dir, &three());
        assert_eq!(report.journal.damaged_segments, 1);
        table.learn(fp(1), CredentialKind::Code, node(0), HOUR, NOW);
        drop(table);
        assert_eq!(open(&dir, &three()).0.len(), 1);
    }

    #[test]
    fn a_snapshot_compacts_the_journal_and_later_records_follow_it() {
        let dir = Dir::new("journal-compact");
        let (table, key, _) =
            open_persistent(&dir.base(), 1000, &three(), Fsync::Always, NOW).unwrap();
        mutate(&table);
        snapshot::save(&table, &key, &dir.base(), &three(), NOW).unwrap();
        assert_eq!(dir.files(), ["table", "table.journal", "table.key"]);
        let small = std::fs::metadata(active_path(&dir.base())).unwrap().len();
        assert!(
            small < 64,
            "the new segment holds a header and names only: {small}"
        );
        table.learn(fp(50), CredentialKind::BearerToken, node(2), HOUR, NOW);
        table.remove_owner(fp(3), node(2));
        let before = sorted(&table);
        assert_eq!(table.journal_stats().unwrap().rotations, 1);
        drop(table);
        let (reopened, report) = open(&dir, &three());
        assert_eq!(sorted(&reopened), before);
        assert_eq!(report.journal.records, 3);
    }

    #[test]
    fn a_crash_in_the_middle_of_a_compaction_loses_nothing() {
        let dir = Dir::new("journal-midway");
        let (table, _) = open(&dir, &three());
        mutate(&table);
        let before = sorted(&table);
        drop(table);
        // As if killed between the two renames of a rotation: the segment sealed, the next one not yet active.
        std::fs::rename(active_path(&dir.base()), sealed_path(&dir.base(), 1)).unwrap();
        std::fs::write(next_path(&dir.base()), b"TRJRNL").unwrap();
        let (table, _) = open(&dir, &three());
        assert_eq!(sorted(&table), before);
        assert_eq!(
            dir.files(),
            ["table.journal", "table.journal.1", "table.key"]
        );
        // More mutations, a crash before the snapshot's rename, then a full compaction.
        table.learn(fp(60), CredentialKind::Code, node(1), HOUR, NOW);
        let before = sorted(&table);
        drop(table);
        let (table, key, _) =
            open_persistent(&dir.base(), 1000, &three(), Fsync::Never, NOW).unwrap();
        assert_eq!(sorted(&table), before);
        snapshot::save(&table, &key, &dir.base(), &three(), NOW).unwrap();
        assert_eq!(dir.files(), ["table", "table.journal", "table.key"]);
        drop(table);
        assert_eq!(sorted(&open(&dir, &three()).0), before);
    }

    /// Four threads mutate while snapshots compact the journal over and over; every snapshot moment is a
    /// possible crash, and after the last one the reopened table equals the live one exactly.
    #[test]
    fn rotation_during_writes_loses_no_record() {
        let dir = Dir::new("journal-rotate");
        let (table, key, _) =
            open_persistent(&dir.base(), 100_000, &three(), Fsync::Never, NOW).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let saves = std::thread::scope(|scope| {
            let saver = scope.spawn(|| {
                let mut saves = 0;
                while !done.load(Ordering::Relaxed) && saves < 1_000 {
                    snapshot::save(&table, &key, &dir.base(), &three(), NOW).unwrap();
                    saves += 1;
                }
                saves
            });
            let writers: Vec<_> = (0..4u32)
                .map(|t| {
                    let table = table.clone();
                    scope.spawn(move || write_load(&table, t))
                })
                .collect();
            writers.into_iter().for_each(|w| w.join().unwrap());
            done.store(true, Ordering::Relaxed);
            saver.join().unwrap()
        });
        assert!(saves >= 1);
        let (reopened, report) = open(&dir, &three());
        assert_eq!(
            differences(&table, &reopened),
            Vec::<String>::new(),
            "{report:?}"
        );
        assert_eq!(reopened.len(), table.len());
    }

    /// 2 000 mixed mutations on 500 fingerprints of thread `t`.
    fn write_load(table: &Table, t: u32) {
        for i in 0..2_000u32 {
            let f = fp(t * 1_000_000 + i % 500);
            let owner = node((i % 3) as usize);
            match i % 5 {
                0 | 1 => {
                    table.learn(f, CredentialKind::ConsumerKey, owner, HOUR, NOW);
                }
                2 => {
                    table.learn(f, CredentialKind::AccessToken, owner, HOUR, NOW);
                }
                3 => {
                    table.remove_owner(f, owner);
                }
                _ => {
                    table.add_owner(f, node(((i + 1) % 3) as usize));
                }
            }
            if i % 400 == 0 {
                table.add_owner_to_kinds(node(t as usize % 3), &[CredentialKind::ConsumerKey], &[]);
            }
        }
    }
}
