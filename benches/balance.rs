//! Node picking (`upstream::balance::Balancer::pick`), once per request on the hot path.
//!
//! Compared, for 3 nodes (the technote's cluster) and 16 nodes: round robin and least requests, with every
//! node allowed and with a subset (what routing passes for a consumer key whose owner set is part of the
//! pool: the subset round robin walks the schedule twice).
//!
//! Rejected alternatives, measured beside them:
//! - round robin with a `Mutex<usize>` cursor instead of the relaxed atomic counter: the lock is what a
//!   `&mut self` policy behind a shared handle ends up needing;
//! - least requests by scanning every allowed node for the exact minimum instead of the power of two random
//!   choices: exact, but it reads every node's counter on every request and herds all new requests onto
//!   the same node between updates.

use std::hint::black_box;
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokenroute::affinity::{NodeId, NodeSet};
use tokenroute::upstream::balance::{Balancer, Basis, Policy};

fn id(i: usize) -> NodeId {
    NodeId::new(i).expect("small id")
}

/// Outstanding requests per node: a fixed uneven pattern, as load would be mid-run.
fn load(n: NodeId) -> usize {
    (n.index() * 7) % 5
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer_pick");
    group.throughput(Throughput::Elements(1));
    for nodes in [3usize, 16] {
        let pool: Vec<(NodeId, u32)> = (0..nodes).map(|i| (id(i), 1)).collect();
        let all: NodeSet = (0..nodes).map(id).collect();
        // Every other node, as an owner set that has not spread to the whole pool yet.
        let subset: NodeSet = (0..nodes).step_by(2).map(id).collect();
        for (policy, policy_name) in [
            (Policy::RoundRobin, "round_robin"),
            (Policy::LeastRequests, "least_requests"),
        ] {
            let balancer = Balancer::new(policy, &pool);
            for (allowed, set_name) in [(all, "all"), (subset, "subset")] {
                group.bench_function(
                    BenchmarkId::new(format!("{policy_name}/{set_name}"), nodes),
                    |b| b.iter(|| balancer.pick(black_box(allowed), Basis::Policy, load)),
                );
            }
        }

        let cursor = Mutex::new(0usize);
        let members: Vec<NodeId> = pool.iter().map(|&(n, _)| n).collect();
        group.bench_function(
            BenchmarkId::new("rejected/round_robin_mutex_cursor/all", nodes),
            |b| {
                b.iter(|| {
                    let mut turn = cursor.lock().unwrap();
                    *turn = turn.wrapping_add(1);
                    members[*turn % members.len()]
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("rejected/least_requests_full_scan/all", nodes),
            |b| b.iter(|| black_box(all).iter().min_by_key(|n| load(*n))),
        );
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
