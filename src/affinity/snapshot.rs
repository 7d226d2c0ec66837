//! Snapshots of the learned table, so that a restart keeps in-flight flows working.
//!
//! # Format (version 1)
//!
//! JSON lines, UTF-8, chosen over a binary layout so an administrator can inspect a snapshot with `head` and
//! `jq`; at about 90 bytes an entry, a full table of a million entries is under 100 MB.
//!
//! ```text
//! {"format":"tokenroute-affinity","version":1,"saved_at":1700000000,"key_check":"<32 hex>","nodes":["lbcq_1","lbcq_2"]}
//! {"fp":"<32 hex>","kind":"access_token","owners":1,"expires_at":1700003600}
//! ...
//! ```
//!
//! - `nodes` lists node **names**; bit `i` of an entry's `owners` means `nodes[i]`. Node ids are remapped by
//!   name on load, so a snapshot survives a pool whose ids changed; owners no longer in the pool are dropped.
//! - `key_check` is [`FingerprintKey::check_value`]: loading under another key is refused, since every
//!   fingerprint would then be meaningless.
//! - Only fingerprints are written, never a credential. The file is written atomically (temporary file, then
//!   rename) with mode 0600; the fingerprint key lives beside it in `<snapshot>.key` ([`key_path`]).
//! - Expired entries are skipped on save and on load; an unreadable line is skipped and counted.
//! - Saving a table that has a journal compacts it: the journal segments the snapshot covers are deleted
//!   once it is in place ([`crate::affinity::journal`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::affinity::files::{self, Replace};
use crate::affinity::table::Entry;
use crate::affinity::{
    AffinityError, Fingerprint, FingerprintKey, NodeId, NodeSet, Table, MAX_NODES,
};
use crate::oauth::{CredentialKind, Specificity};

/// The `format` field of the header line.
pub const FORMAT: &str = "tokenroute-affinity";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    saved_at: u64,
    key_check: String,
    nodes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    fp: String,
    kind: CredentialKind,
    owners: u64,
    expires_at: u64,
}

/// What [`save`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaveReport {
    /// Entries written.
    pub written: usize,
    /// Entries left out: expired, or only owned by nodes missing from `node_names`.
    pub skipped: usize,
}

/// What [`load`] restored and why the rest was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Entries put back into the table.
    pub restored: usize,
    /// Entries already expired.
    pub expired: usize,
    /// Token entries none of whose owners is in the pool any more.
    pub orphaned: usize,
    /// Lines that could not be read.
    pub malformed: usize,
    /// Entries left out because the table was full or already held them.
    pub not_inserted: usize,
}

/// Where the fingerprint key of the snapshot at `path` is kept: `<path>.key`.
pub fn key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Loads the fingerprint key kept beside the snapshot at `path`, creating it on first start.
pub fn load_key(path: &Path) -> Result<FingerprintKey, AffinityError> {
    FingerprintKey::load_or_create(&key_path(path))
}

/// Writes a snapshot of `table` to `path`. `node_names` maps the pool's current node ids to names; owners not
/// listed there are left out.
pub fn save(
    table: &Table,
    key: &FingerprintKey,
    path: &Path,
    node_names: &[(NodeId, String)],
    now: u64,
) -> Result<SaveReport, AffinityError> {
    // A journalled table: start a new segment before reading the table, delete the old ones only once the
    // snapshot covering them is in place (see `journal`).
    let compaction = table
        .journal()
        .filter(|j| j.base() == path)
        .map(|j| j.begin_compaction());
    let mut report = SaveReport::default();
    files::write_private(path, Replace::Yes, |w| {
        report = write_to(w, table, key, node_names, now)?;
        Ok(())
    })?;
    if let Some(compaction) = compaction {
        compaction.finish();
    }
    Ok(report)
}

/// Writes `table` in the snapshot format to `w` (the snapshot file, or `tokenroute table export`'s output).
pub fn write_to(
    w: &mut dyn Write,
    table: &Table,
    key: &FingerprintKey,
    node_names: &[(NodeId, String)],
    now: u64,
) -> std::io::Result<SaveReport> {
    // Bit i of a written owner set is nodes[i].
    let nodes: Vec<&(NodeId, String)> = node_names.iter().take(MAX_NODES).collect();
    let mut report = SaveReport::default();
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        saved_at: now,
        key_check: key.check_value().to_string(),
        nodes: nodes.iter().map(|(_, name)| name.clone()).collect(),
    };
    serde_json::to_writer(&mut *w, &header)?;
    w.write_all(b"\n")?;
    for (fp, entry) in table.entries() {
        let owners = nodes
            .iter()
            .enumerate()
            .filter(|(_, (id, _))| entry.owners().contains(*id))
            .fold(0u64, |bits, (i, _)| bits | 1 << i);
        let orphan = owners == 0 && !entry.owners().is_empty();
        if entry.is_expired(now) || (orphan && !is_key(entry.kind())) {
            report.skipped += 1;
            continue;
        }
        let line = Line {
            fp: fp.to_string(),
            kind: entry.kind(),
            owners,
            expires_at: entry.expires_at(),
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
        report.written += 1;
    }
    Ok(report)
}

/// Restores the snapshot at `path` into `table`, mapping owner names to the ids in `node_names`. A missing
/// file is an empty snapshot (first start).
pub fn load(
    path: &Path,
    key: &FingerprintKey,
    table: &Table,
    node_names: &[(NodeId, String)],
    now: u64,
) -> Result<LoadReport, AffinityError> {
    let io_err = |source| AffinityError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoadReport::default()),
        Err(e) => return Err(io_err(e)),
    };
    read_from(BufReader::new(file), path, key, table, node_names, now)
}

/// Restores a snapshot read from `input` (`origin` names it in errors: the file, or `tokenroute table
/// import`'s input) into `table`, mapping owner names to the ids in `node_names`.
pub fn read_from(
    input: impl BufRead,
    origin: &Path,
    key: &FingerprintKey,
    table: &Table,
    node_names: &[(NodeId, String)],
    now: u64,
) -> Result<LoadReport, AffinityError> {
    let path = origin;
    let io_err = |source| AffinityError::Io {
        path: path.to_owned(),
        source,
    };
    let format_err = |reason: &'static str| AffinityError::SnapshotFormat {
        path: path.to_owned(),
        reason,
    };
    let mut lines = input.lines();
    let first = lines
        .next()
        .transpose()
        .map_err(io_err)?
        .ok_or_else(|| format_err("empty file"))?;
    let header: Header = serde_json::from_str(&first).map_err(|_| format_err("bad header line"))?;
    if header.format != FORMAT {
        return Err(format_err("not a tokenroute affinity snapshot"));
    }
    if header.version != VERSION {
        return Err(AffinityError::SnapshotVersion {
            path: path.to_owned(),
            version: header.version,
        });
    }
    if header.key_check != key.check_value().to_string() {
        return Err(AffinityError::KeyMismatch {
            path: path.to_owned(),
        });
    }
    // ids[i] is the current id of the header's nodes[i], if that node is still in the pool.
    let ids: Vec<Option<NodeId>> = header
        .nodes
        .iter()
        .take(MAX_NODES)
        .map(|name| {
            node_names
                .iter()
                .find(|(_, n)| n == name)
                .map(|(id, _)| *id)
        })
        .collect();

    let mut report = LoadReport::default();
    for line in lines {
        let line = line.map_err(io_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((fp, line)) = serde_json::from_str::<Line>(&line)
            .ok()
            .and_then(|l| Some((Fingerprint::from_hex(&l.fp)?, l)))
        else {
            report.malformed += 1;
            continue;
        };
        if line.expires_at <= now {
            report.expired += 1;
            continue;
        }
        let owners: NodeSet = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| line.owners & (1 << i) != 0)
            .filter_map(|(_, id)| *id)
            .collect();
        if owners.is_empty() && !is_key(line.kind) {
            report.orphaned += 1;
            continue;
        }
        if table.restore(fp, Entry::new(line.kind, owners, line.expires_at)) {
            report.restored += 1;
        } else {
            report.not_inserted += 1;
        }
    }
    Ok(report)
}

fn is_key(kind: CredentialKind) -> bool {
    kind.specificity() == Specificity::Key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::files::tests::temp_path;
    use std::time::Duration;

    const NOW: u64 = 1_700_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn node(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn names(pairs: &[(usize, &str)]) -> Vec<(NodeId, String)> {
        pairs
            .iter()
            .map(|&(i, n)| (node(i), n.to_owned()))
            .collect()
    }

    struct Files(PathBuf);

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_file(key_path(&self.0));
        }
    }

    #[test]
    fn round_trip_remaps_owners_by_name_and_skips_the_dead() {
        let files = Files(temp_path("snap"));
        let path = &files.0;
        let key = load_key(path).unwrap();
        let table = Table::new(100);
        let (ck, rt, at, old, gone) = (
            key.fingerprint("consumer-key"),
            key.fingerprint("request-token"),
            key.fingerprint("access-token"),
            key.fingerprint("old-code"),
            key.fingerprint("token-of-removed-node"),
        );
        table.learn(ck, CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.learn(ck, CredentialKind::ConsumerKey, node(2), HOUR, NOW);
        table.learn(rt, CredentialKind::RequestToken, node(1), HOUR, NOW);
        table.learn(at, CredentialKind::AccessToken, node(2), HOUR, NOW);
        table.learn(
            old,
            CredentialKind::Code,
            node(0),
            Duration::from_secs(5),
            NOW,
        );
        table.learn(gone, CredentialKind::AccessToken, node(3), HOUR, NOW);

        let before = names(&[(0, "lbcq_1"), (1, "lbcq_2"), (2, "lbcq_3")]);
        let saved = save(&table, &key, path, &before, NOW + 10).unwrap();
        assert_eq!(
            saved,
            SaveReport {
                written: 3,
                skipped: 2
            }
        );

        // After a restart lbcq_2 is gone and the others have new ids.
        let key = load_key(path).unwrap();
        let after = names(&[(5, "lbcq_3"), (7, "lbcq_1")]);
        let restored = Table::new(100);
        let report = load(path, &key, &restored, &after, NOW + 20).unwrap();
        assert_eq!(
            report,
            LoadReport {
                restored: 2,
                orphaned: 1,
                ..LoadReport::default()
            }
        );
        let ck_entry = restored.lookup(ck, NOW + 20).unwrap();
        assert_eq!(ck_entry.kind(), CredentialKind::ConsumerKey);
        assert_eq!(ck_entry.owners(), [node(5), node(7)].into_iter().collect());
        assert_eq!(ck_entry.expires_at(), NOW + 3600);
        assert_eq!(
            restored.lookup(at, NOW + 20).unwrap().owners(),
            NodeSet::single(node(5))
        );
        assert!(restored.lookup(rt, NOW + 20).is_none());
        assert_eq!(restored.stats().inserts, 0);
    }

    #[test]
    fn snapshot_is_private_and_holds_no_credential() {
        let files = Files(temp_path("private"));
        let path = &files.0;
        let key = load_key(path).unwrap();
        let table = Table::new(10);
        table.learn(
            key.fingerprint("canary-secret-token"),
            CredentialKind::AccessToken,
            node(0),
            HOUR,
            NOW,
        );
        save(&table, &key, path, &names(&[(0, "n")]), NOW).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("canary"));
        assert_eq!(text.lines().count(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [path.clone(), key_path(path)] {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", p.display());
            }
        }
    }

    #[test]
    fn expired_entries_are_skipped_on_load() {
        let files = Files(temp_path("expired"));
        let key = load_key(&files.0).unwrap();
        let table = Table::new(10);
        table.learn(
            key.fingerprint("v"),
            CredentialKind::Verifier,
            node(0),
            HOUR,
            NOW,
        );
        save(&table, &key, &files.0, &names(&[(0, "n")]), NOW).unwrap();
        let report = load(
            &files.0,
            &key,
            &Table::new(10),
            &names(&[(0, "n")]),
            NOW + 3600,
        )
        .unwrap();
        assert_eq!((report.restored, report.expired), (0, 1));
    }

    #[test]
    fn missing_snapshot_is_empty() {
        let path = temp_path("missing");
        let report = load(&path, &FingerprintKey::generate(), &Table::new(1), &[], NOW).unwrap();
        assert_eq!(report, LoadReport::default());
    }

    #[test]
    fn another_key_version_or_format_is_refused() {
        let files = Files(temp_path("refuse"));
        let path = &files.0;
        let key = load_key(path).unwrap();
        save(&Table::new(1), &key, path, &[], NOW).unwrap();
        let err = load(path, &FingerprintKey::generate(), &Table::new(1), &[], NOW).unwrap_err();
        assert!(matches!(err, AffinityError::KeyMismatch { .. }), "{err:?}");

        let text = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, text.replace("\"version\":1", "\"version\":9")).unwrap();
        let err = load(path, &key, &Table::new(1), &[], NOW).unwrap_err();
        assert!(
            matches!(err, AffinityError::SnapshotVersion { version: 9, .. }),
            "{err:?}"
        );

        for bad in [
            "",
            "not json\n",
            "{\"format\":\"other\",\"version\":1,\"saved_at\":0,\"key_check\":\"\",\"nodes\":[]}\n",
        ] {
            std::fs::write(path, bad).unwrap();
            let err = load(path, &key, &Table::new(1), &[], NOW).unwrap_err();
            assert!(
                matches!(err, AffinityError::SnapshotFormat { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let files = Files(temp_path("lines"));
        let path = &files.0;
        let key = load_key(path).unwrap();
        let table = Table::new(10);
        table.learn(
            key.fingerprint("k"),
            CredentialKind::ConsumerKey,
            node(0),
            HOUR,
            NOW,
        );
        save(&table, &key, path, &names(&[(0, "n")]), NOW).unwrap();
        let mut text = std::fs::read_to_string(path).unwrap();
        text.push_str(
            "garbage\n\n{\"fp\":\"zz\",\"kind\":\"code\",\"owners\":1,\"expires_at\":9999999999}\n",
        );
        text.push_str("{\"fp\":\"00000000000000000000000000000000\",\"kind\":\"nope\",\"owners\":1,\"expires_at\":1}\n");
        std::fs::write(path, text).unwrap();
        let report = load(path, &key, &Table::new(10), &names(&[(0, "n")]), NOW).unwrap();
        assert_eq!((report.restored, report.malformed), (1, 3));
    }

    #[test]
    fn load_respects_the_table_bound() {
        let files = Files(temp_path("bound"));
        let key = load_key(&files.0).unwrap();
        let table = Table::new(10);
        for i in 0..10 {
            table.learn(
                key.fingerprint(&i.to_string()),
                CredentialKind::Code,
                node(0),
                HOUR,
                NOW,
            );
        }
        save(&table, &key, &files.0, &names(&[(0, "n")]), NOW).unwrap();
        let small = Table::new(4);
        let report = load(&files.0, &key, &small, &names(&[(0, "n")]), NOW).unwrap();
        assert_eq!((report.restored, report.not_inserted), (4, 6));
        assert_eq!(small.len(), 4);
    }
}
