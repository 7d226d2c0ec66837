//! Startup time with 1 M journalled entries (issue 11: at most 2 s).
//!
//! Writes 1 M learned tokens through a journalled table (one record each, as the proxy would, with
//! `journal_fsync = "never"` so the page cache holds them), drops the table as a `kill -9` would (no snapshot),
//! then times [`open_persistent`]: key, (no) snapshot, and the replay of 1 M records. For comparison in the same
//! run, the same table is then saved as a snapshot, the journal compacted away, and startup timed again: that
//! is the restart after a clean shutdown, and the baseline the journal's replay is compared with.
//!
//! ```sh
//! cargo run --release --example journal_startup            # ~10 s, ~200 MB of temporary files
//! ```
// Wall-clock time of real work is what this measures: std's clock, not tokio's pausable one.
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use tokenroute::affinity::journal::{self, Fsync};
use tokenroute::affinity::{open_persistent, snapshot, NodeId};
use tokenroute::oauth::CredentialKind;

const ENTRIES: usize = 1_000_000;
const TTL: Duration = Duration::from_secs(3600);

fn main() {
    let dir =
        std::env::temp_dir().join(format!("tokenroute-journal-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let base = dir.join("affinity.snapshot");
    let names: Vec<(NodeId, String)> = (0..3)
        .map(|i| (NodeId::new(i).expect("small id"), format!("lbcq_{}", i + 1)))
        .collect();
    let now = tokenroute::affinity::unix_now();

    let (table, key, _) =
        open_persistent(&base, 2 * ENTRIES, &names, Fsync::Never, now).expect("open");
    let fps: Vec<_> = (0..ENTRIES)
        .map(|i| key.fingerprint(&format!("{i:032x}")))
        .collect();
    let started = Instant::now();
    for (i, fp) in fps.iter().enumerate() {
        table.learn(*fp, CredentialKind::AccessToken, names[i % 3].0, TTL, now);
    }
    let write = started.elapsed();
    let journal_bytes = std::fs::metadata(journal::active_path(&base))
        .expect("journal")
        .len();
    drop(table);

    let started = Instant::now();
    let (table, _, report) =
        open_persistent(&base, 2 * ENTRIES, &names, Fsync::Never, now).expect("replay");
    let replay = started.elapsed();
    assert_eq!(table.len(), ENTRIES, "every journalled entry is back");
    assert_eq!(report.journal.records, ENTRIES + 1, "{report:?}");

    let started = Instant::now();
    snapshot::save(&table, &key, &base, &names, now).expect("snapshot");
    let save = started.elapsed();
    drop(table);
    let started = Instant::now();
    let (table, _, report) =
        open_persistent(&base, 2 * ENTRIES, &names, Fsync::Never, now).expect("load");
    let load = started.elapsed();
    assert_eq!(table.len(), ENTRIES);
    assert_eq!(report.snapshot.restored, ENTRIES);
    drop(table);

    let secs = |d: Duration| d.as_secs_f64();
    println!("entries                         {ENTRIES}");
    println!(
        "journal                         {:.1} MB ({} bytes a record)",
        journal_bytes as f64 / 1e6,
        journal_bytes / ENTRIES as u64
    );
    println!(
        "write 1 M learns, journalled    {:.2} s ({:.0} ns a learn)",
        secs(write),
        write.as_nanos() as f64 / ENTRIES as f64
    );
    println!(
        "startup: replay the journal     {:.2} s (target 2 s: {})",
        secs(replay),
        if replay <= Duration::from_secs(2) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!("snapshot save (compaction)      {:.2} s", secs(save));
    println!(
        "startup: load the snapshot      {:.2} s (baseline)",
        secs(load)
    );
    println!(
        "replay / snapshot load          {:.2}x",
        secs(replay) / secs(load)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
