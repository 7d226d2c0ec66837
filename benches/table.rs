//! The learned table at 1 M entries: fingerprinting a credential (HMAC-SHA256 truncated to 16 bytes),
//! looking it up, and learning, alone and under contention from 2 threads.
//!
//! Compared: `affinity::Table` (open addressing in sharded `RwLock`s, 32-byte slots sized from `max_entries`)
//! against the rejected alternatives: a `DashMap<Fingerprint, Entry>` (what the table was until it had to fit
//! 64 bytes an entry and 100 ns a lookup at 10 M entries), one `Mutex<HashMap<Fingerprint, Entry>>` and one
//! `RwLock<HashMap<..>>`, the maps with their default hasher. Every proxied request that carries a credential does one fingerprint
//! and one lookup per candidate on whichever worker thread holds it, while learning responses write; a single
//! lock serialises all of that, which is why the table is sharded. The single-threaded rows show what
//! sharding costs when nobody contends; the 2-thread rows (95% lookups of known credentials, 5% learns
//! replacing an entry, so the size stays at 1 M) show what it buys. This machine has 2 cores, so 2 threads is
//! all the contention it can show honestly.
//!
//! A 10 k-entry row shows the same lookup with the table in cache: at 1 M entries (about 40 MB) a lookup hit
//! is dominated by one cache miss to memory, whatever the lock. A 10 M row (about 400 MB) adds TLB misses.
//!
//! The alternatives' `learn` is a plain `insert` (no owner-set merge), which flatters them slightly.
// Wall-clock time of real work is what this measures: std's clock, not tokio's pausable one.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex, RwLock};

use dashmap::DashMap;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokenroute::affinity::{Entry, Fingerprint, FingerprintKey, NodeId, NodeSet, Table};
use tokenroute::oauth::CredentialKind;

const ENTRIES: usize = 1_000_000;
const SMALL: usize = 10_000;
const NOW: u64 = 1_700_000_000;
const TTL: Duration = Duration::from_secs(3600);
const KIND: CredentialKind = CredentialKind::AccessToken;

/// What the three candidates share, so one bench body measures each.
trait Store: Sync {
    fn lookup(&self, fp: Fingerprint) -> Option<Entry>;
    fn learn(&self, fp: Fingerprint, owner: NodeId);
    fn forget(&self, fp: Fingerprint);
}

impl Store for Table {
    fn lookup(&self, fp: Fingerprint) -> Option<Entry> {
        Table::lookup(self, fp, NOW)
    }
    fn learn(&self, fp: Fingerprint, owner: NodeId) {
        Table::learn(self, fp, KIND, owner, TTL, NOW);
    }
    fn forget(&self, fp: Fingerprint) {
        Table::forget(self, fp);
    }
}

fn fresh(owner: NodeId) -> Entry {
    Entry::new(KIND, NodeSet::single(owner), NOW + TTL.as_secs())
}

fn live(entry: Option<&Entry>) -> Option<Entry> {
    entry.copied().filter(|e| !e.is_expired(NOW))
}

impl Store for Mutex<HashMap<Fingerprint, Entry>> {
    fn lookup(&self, fp: Fingerprint) -> Option<Entry> {
        live(self.lock().unwrap().get(&fp))
    }
    fn learn(&self, fp: Fingerprint, owner: NodeId) {
        self.lock().unwrap().insert(fp, fresh(owner));
    }
    fn forget(&self, fp: Fingerprint) {
        self.lock().unwrap().remove(&fp);
    }
}

impl Store for DashMap<Fingerprint, Entry> {
    fn lookup(&self, fp: Fingerprint) -> Option<Entry> {
        live(self.get(&fp).as_deref())
    }
    fn learn(&self, fp: Fingerprint, owner: NodeId) {
        self.insert(fp, fresh(owner));
    }
    fn forget(&self, fp: Fingerprint) {
        self.remove(&fp);
    }
}

impl Store for RwLock<HashMap<Fingerprint, Entry>> {
    fn lookup(&self, fp: Fingerprint) -> Option<Entry> {
        live(self.read().unwrap().get(&fp))
    }
    fn learn(&self, fp: Fingerprint, owner: NodeId) {
        self.write().unwrap().insert(fp, fresh(owner));
    }
    fn forget(&self, fp: Fingerprint) {
        self.write().unwrap().remove(&fp);
    }
}

/// 32 hex digits, the shape of the stand-in's tokens.
fn token(i: usize) -> String {
    format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// A fingerprint no table holds (as uniform as a real one), without paying for an HMAC.
fn synthetic(i: u64) -> Fingerprint {
    Fingerprint::from_bytes(
        (u128::from(i) | 1 << 127)
            .wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
            .to_le_bytes(),
    )
}

fn owner(i: usize) -> NodeId {
    NodeId::new(i % 3).expect("small id")
}

struct Fixture {
    key: FingerprintKey,
    tokens: Vec<String>,
    fps: Vec<Fingerprint>,
    table: Table,
    dashmap: DashMap<Fingerprint, Entry>,
    mutex: Mutex<HashMap<Fingerprint, Entry>>,
    rwlock: RwLock<HashMap<Fingerprint, Entry>>,
}

impl Fixture {
    fn new() -> Fixture {
        let key = FingerprintKey::from_bytes([7; 32]);
        let tokens: Vec<String> = (0..ENTRIES).map(token).collect();
        let fps: Vec<Fingerprint> = tokens.iter().map(|t| key.fingerprint(t)).collect();
        // Bound well above the fill so that the single-threaded learn rows never evict.
        let table = Table::new(2 * ENTRIES);
        let mut map = HashMap::with_capacity(ENTRIES);
        for (i, fp) in fps.iter().enumerate() {
            Store::learn(&table, *fp, owner(i));
            map.insert(*fp, fresh(owner(i)));
        }
        Fixture {
            key,
            tokens,
            fps,
            table,
            dashmap: map.iter().map(|(k, v)| (*k, *v)).collect(),
            mutex: Mutex::new(map.clone()),
            rwlock: RwLock::new(map),
        }
    }

    fn stores(&self) -> [(&'static str, &dyn Store); 4] {
        [
            ("table", &self.table),
            ("rejected/dashmap", &self.dashmap),
            ("rejected/mutex_hashmap", &self.mutex),
            ("rejected/rwlock_hashmap", &self.rwlock),
        ]
    }
}

/// The `i`-th known credential. Fingerprints are uniformly random, so walking them in order already sends
/// successive lookups to unrelated places in the table, as real traffic does; reading the fixture's vectors
/// in order keeps their own cache misses (prefetched) out of the figures.
fn nth(i: usize) -> usize {
    i % ENTRIES
}

fn single_threaded(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("table_1M");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("fingerprint_hmac_sha256", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            f.key.fingerprint(black_box(&f.tokens[nth(i)]))
        })
    });
    group.bench_function("fingerprint+lookup_hit/table", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let fp = f.key.fingerprint(&f.tokens[nth(i)]);
            f.table.lookup(black_box(fp), NOW)
        })
    });
    for (name, store) in f.stores() {
        group.bench_function(BenchmarkId::new("lookup_hit", name), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                store.lookup(black_box(f.fps[nth(i)]))
            })
        });
    }
    for (name, store) in f.stores() {
        group.bench_function(BenchmarkId::new("lookup_miss", name), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                store.lookup(black_box(synthetic(i)))
            })
        });
    }
    for (name, store) in f.stores() {
        // Insert then remove a new entry, so the size stays at 1 M however many iterations run.
        group.bench_function(BenchmarkId::new("learn+forget", name), |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                let fp = synthetic(i);
                store.learn(black_box(fp), owner(i as usize));
                store.forget(fp);
            })
        });
    }
    group.finish();

    // The same lookup in a table small enough to stay in cache: the difference to the 1 M row is memory
    // latency, not code.
    let mut group = c.benchmark_group("table_10k");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    let small = Table::new(SMALL);
    for (i, fp) in f.fps[..SMALL].iter().enumerate() {
        Store::learn(&small, *fp, owner(i));
    }
    group.bench_function("lookup_hit/table", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            small.lookup(black_box(f.fps[i % SMALL]), NOW)
        })
    });
    group.finish();

    // At capacity every new credential makes room: eviction of ~1/32 of the table by sampled expiry,
    // amortised over the inserts between two evictions.
    let mut group = c.benchmark_group("table_1M_full");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    let full = Table::new(ENTRIES);
    for (i, fp) in f.fps.iter().enumerate() {
        full.learn(*fp, KIND, owner(i), TTL, NOW + (i % 600) as u64);
    }
    group.bench_function("learn_new_with_eviction/table", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            full.learn(
                black_box(synthetic(i)),
                KIND,
                owner(i as usize),
                TTL,
                NOW + 600,
            )
        })
    });
    group.finish();
}

/// Each of 2 threads runs `iters` operations (1 in 20 a learn), all starting together; the time returned is
/// the wall time, so the figure reads as "time per operation per thread while the other thread competes".
fn contended(store: &dyn Store, fps: &[Fingerprint], iters: u64) -> Duration {
    const THREADS: usize = 2;
    let barrier = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut hits = 0usize;
                for n in 0..iters as usize {
                    let i = nth(n * THREADS + t);
                    if n % 20 == 19 {
                        store.learn(fps[i], owner(n));
                    } else {
                        hits += usize::from(store.lookup(fps[i]).is_some());
                    }
                }
                black_box(hits);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn two_threads(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("table_1M_2_threads_95pc_lookup");
    // Two operations complete per iteration (one on each thread).
    group.throughput(Throughput::Elements(2));
    group.measurement_time(Duration::from_secs(3));
    for (name, store) in f.stores() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| contended(store, &f.fps, iters))
        });
    }
    group.finish();
}

/// Lookups in a table of 10 M entries, sized for them (`max_entries` = 10 M), as a deployment would be.
fn ten_million(c: &mut Criterion) {
    const BIG: usize = 10_000_000;
    let fps: Vec<Fingerprint> = (0..BIG as u64).map(|i| synthetic(i + (1 << 40))).collect();
    let table = Table::new(BIG);
    for (i, fp) in fps.iter().enumerate() {
        Store::learn(&table, *fp, owner(i));
    }
    let mut group = c.benchmark_group("table_10M");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("lookup_hit/table", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            Store::lookup(&table, black_box(fps[i % BIG]))
        })
    });
    group.bench_function("lookup_miss/table", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            Store::lookup(&table, black_box(synthetic(i)))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fixture = Fixture::new();
    single_threaded(c, &fixture);
    two_threads(c, &fixture);
    drop(fixture);
    ten_million(c);
}

criterion_group!(table, benches);
criterion_main!(table);
