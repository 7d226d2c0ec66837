//! Bytes of memory per learned entry in `affinity::Table`, at 1 M and 10 M entries.
//!
//! Each size is measured in a fresh child process (this program re-runs itself), because memory a
//! filled-then-dropped table gave back to the allocator is not always given back to the kernel, and
//! would make the next fill look free. The child reads its resident set size from `/proc/self/statm` before
//! and after filling a table with distinct HMAC fingerprints, and its peak (`VmHWM`, which includes the
//! moment a shard's hash table doubles) from `/proc/self/status`. A plain `HashMap<Fingerprint, Entry>`
//! is measured the same way for comparison.
//!
//! Run: `cargo run --release --example table_memory` (about 20 s and 1 GiB of memory at 10 M).
// Wall-clock time of real work is what this measures: std's clock, not tokio's pausable one.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use tokenroute::affinity::{Entry, Fingerprint, FingerprintKey, NodeId, NodeSet, Table};
use tokenroute::oauth::CredentialKind;

const SIZES: [usize; 2] = [1_000_000, 10_000_000];
const NOW: u64 = 1_700_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [store, n] => measure(store, n.parse().expect("entry count")),
        [] => parent(),
        _ => {
            eprintln!("usage: table_memory [table|hashmap ENTRIES]");
            std::process::exit(2);
        }
    }
}

fn parent() {
    let exe = std::env::current_exe().expect("own path");
    println!("store     entries     rss_bytes_per_entry  peak_bytes_per_entry  fill_s");
    for store in ["table", "hashmap"] {
        for n in SIZES {
            let out = Command::new(&exe)
                .args([store, &n.to_string()])
                .output()
                .expect("child run");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

fn measure(store: &str, n: usize) {
    let key = FingerprintKey::from_bytes([7; 32]);
    let fp = |i: usize| key.fingerprint(&format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15));
    let owner = |i: usize| NodeId::new(i % 3).expect("small id");
    let (rss_before, peak_before) = (rss_bytes(), peak_bytes());
    let start = Instant::now();
    match store {
        "table" => {
            let table = Table::new(n);
            for i in 0..n {
                table.learn(
                    fp(i),
                    CredentialKind::AccessToken,
                    owner(i),
                    Duration::from_secs(3600),
                    NOW,
                );
            }
            report(store, n, rss_before, peak_before, start.elapsed());
            assert_eq!(table.len(), n, "every fingerprint is distinct");
        }
        "hashmap" => {
            let mut map: HashMap<Fingerprint, Entry> = HashMap::new();
            for i in 0..n {
                let entry = Entry::new(
                    CredentialKind::AccessToken,
                    NodeSet::single(owner(i)),
                    NOW + 3600,
                );
                map.insert(fp(i), entry);
            }
            report(store, n, rss_before, peak_before, start.elapsed());
            assert_eq!(map.len(), n, "every fingerprint is distinct");
        }
        other => panic!("unknown store {other}"),
    }
}

/// Prints one row while the store is still alive (the caller holds it).
fn report(store: &str, n: usize, rss_before: u64, peak_before: u64, fill: Duration) {
    let rss = rss_bytes().saturating_sub(rss_before) as f64 / n as f64;
    let peak = peak_bytes().saturating_sub(peak_before) as f64 / n as f64;
    println!(
        "{store:<9} {n:>10}  {rss:>19.1}  {peak:>20.1}  {:>6.1}",
        fill.as_secs_f64()
    );
}

/// Resident set size: the second field of `/proc/self/statm`, in pages.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("resident pages");
    pages * page_size()
}

/// The kernel page size, from the first mapping's `KernelPageSize` (4 KiB when unreadable).
fn page_size() -> u64 {
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("KernelPageSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4096, |kb| kb * 1024)
}

/// Peak resident set size (`VmHWM` in `/proc/self/status`).
fn peak_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
