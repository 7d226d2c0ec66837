//! What the journal costs a learn, and that it costs a lookup nothing.
//!
//! Compared, on tables of 100 k entries (filled first, so a learn replaces an entry and the size stays put):
//! `Table::learn` on a plain table (the baseline: no persistence but the periodic snapshot, so `kill -9` loses
//! everything since it) against the same call on a table from `open_persistent`, which appends a 36-byte
//! record with one `write()` under the journal's mutex before returning, with `journal_fsync = "never"` and
//! the default `"interval"` (a background thread flushes once a second; nothing waits for it on this path).
//! `"always"` is left out: it measures the disk, not the code (an `fsync` per learn, milliseconds on most
//! disks). The rejected alternative, a channel to a writer thread, would make the learn cheaper but breaks
//! "learned before relayed": a crash could lose a fact the client has already acted on.
//!
//! The lookup rows check that the hot path did not move: the same lookup on both tables.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tokenroute::affinity::journal::Fsync;
use tokenroute::affinity::{open_persistent, Fingerprint, FingerprintKey, NodeId, Table};
use tokenroute::oauth::CredentialKind;

const ENTRIES: usize = 100_000;
const NOW: u64 = 1_700_000_000;
const TTL: Duration = Duration::from_secs(3600);

fn fill(table: &Table, fps: &[Fingerprint]) {
    for (i, fp) in fps.iter().enumerate() {
        table.learn(*fp, CredentialKind::AccessToken, owner(i), TTL, NOW);
    }
}

fn owner(i: usize) -> NodeId {
    NodeId::new(i % 3).expect("small id")
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("tokenroute-bench-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = FingerprintKey::from_bytes([7; 32]);
    let fps: Vec<Fingerprint> = (0..ENTRIES)
        .map(|i| key.fingerprint(&format!("{i:032x}")))
        .collect();
    let names: Vec<(NodeId, String)> = (0..3).map(|i| (owner(i), format!("n{i}"))).collect();

    let plain = Table::new(2 * ENTRIES);
    fill(&plain, &fps);
    let open = |label: &str, fsync: Fsync| {
        let (table, _, _) =
            open_persistent(&dir.join(label), 2 * ENTRIES, &names, fsync, NOW).expect("open");
        fill(&table, &fps);
        table
    };
    let never = open("never", Fsync::Never);
    let interval = open("interval", Fsync::DEFAULT);

    let mut group = c.benchmark_group("journal_100k");
    group.measurement_time(Duration::from_secs(4));
    for (name, table) in [
        ("learn/unjournalled", &plain),
        ("learn/journalled_fsync_never", &never),
        ("learn/journalled_fsync_interval_1s", &interval),
    ] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % ENTRIES;
                black_box(table.learn(fps[i], CredentialKind::AccessToken, owner(i + 1), TTL, NOW))
            })
        });
    }
    for (name, table) in [
        ("lookup_hit/unjournalled", &plain),
        ("lookup_hit/journalled", &never),
    ] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % ENTRIES;
                black_box(table.lookup(fps[i], NOW))
            })
        });
    }
    group.finish();
    drop((never, interval));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
