//! Balancing policies: pure choice of a node among an allowed set.
//!
//! The caller passes the set of nodes it may use (healthy, and for a consumer key also owners), so one
//! policy serves both ordinary and affinity-constrained picks. `pick` never panics and returns `None` only
//! when the allowed set has no node the policy knows.
//!
//! # Whose turn a pick takes
//!
//! Only new work moves round robin along: a request that a learned credential pins to its issuer (an allowed
//! set of one) takes no turn, and a request a credential spreads over several owners ([`Basis::Affinity`])
//! walks a cursor of its own. Otherwise the pinned steps of a flow would consume turns, and flows whose length
//! is a multiple of the node count would start every flow (a client registration, a consumer key request) on
//! the same node. HAProxy likewise does not balance requests that stickiness already placed. Least requests
//! keeps no turn, so the basis does not change it.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::affinity::{NodeId, NodeSet, MAX_NODES};

/// The largest weight a node may have; keeps the round-robin schedule small.
pub const MAX_WEIGHT: u32 = 256;

/// Which balancing policy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Smooth weighted round robin (all weights 1: plain round robin).
    RoundRobin,
    /// Least outstanding requests, power of two random choices, weights honoured.
    LeastRequests,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round_robin" => Ok(Policy::RoundRobin),
            "least_requests" => Ok(Policy::LeastRequests),
            _ => Err("expected \"round_robin\" or \"least_requests\"".into()),
        }
    }
}

/// Why the caller is picking, which decides whose round-robin turn the pick takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Nothing known about the request chose its nodes (routing by policy, or every owner down): the pick takes
    /// the policy's next turn.
    Policy,
    /// A learned credential chose the allowed set (its owners): the pick spreads over them with a separate
    /// cursor and leaves the policy's turn to new work.
    Affinity,
}

/// A policy with its state.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Smooth weighted round-robin order, one entry per unit of weight.
    schedule: Vec<NodeId>,
    /// Every node in the schedule.
    members: NodeSet,
    weights: [u32; MAX_NODES],
    /// Round-robin position of policy picks; relaxed ordering is enough, it only spreads load.
    cursor: AtomicUsize,
    /// Round-robin position of picks among a credential's several owners (relaxed, as `cursor`).
    affinity_cursor: AtomicUsize,
}

impl Balancer {
    /// A balancer over `(node, weight)` pairs; weights are clamped to `1..=MAX_WEIGHT`.
    pub fn new(policy: Policy, nodes: &[(NodeId, u32)]) -> Balancer {
        let mut weights = [0u32; MAX_NODES];
        for &(id, w) in nodes {
            weights[id.index()] = w.clamp(1, MAX_WEIGHT);
        }
        Balancer {
            policy,
            schedule: smooth_schedule(nodes, &weights),
            members: nodes.iter().map(|&(id, _)| id).collect(),
            weights,
            cursor: AtomicUsize::new(0),
            affinity_cursor: AtomicUsize::new(0),
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Chooses a node in `allowed`; `basis` says whose turn it takes (see the module doc); `load` gives a
    /// node's outstanding requests (used by least requests). A set of one is its node, and takes no turn.
    pub fn pick(
        &self,
        allowed: NodeSet,
        basis: Basis,
        load: impl Fn(NodeId) -> usize,
    ) -> Option<NodeId> {
        let allowed = allowed.intersection(self.members);
        if allowed.len() <= 1 {
            return allowed.iter().next();
        }
        match self.policy {
            Policy::RoundRobin => {
                let cursor = match basis {
                    Basis::Policy => &self.cursor,
                    Basis::Affinity => &self.affinity_cursor,
                };
                self.pick_round_robin(allowed, cursor.fetch_add(1, Ordering::Relaxed))
            }
            Policy::LeastRequests => self.pick_least_requests(allowed, load),
        }
    }

    fn pick_round_robin(&self, allowed: NodeSet, turn: usize) -> Option<NodeId> {
        if allowed == self.members {
            return Some(self.schedule[turn % self.schedule.len()]);
        }
        // A subset: take the n-th allowed entry of the schedule so the subset is itself balanced by weight.
        let count = self
            .schedule
            .iter()
            .filter(|id| allowed.contains(**id))
            .count();
        let n = turn % count;
        self.schedule
            .iter()
            .filter(|id| allowed.contains(**id))
            .nth(n)
            .copied()
    }

    fn pick_least_requests(
        &self,
        allowed: NodeSet,
        load: impl Fn(NodeId) -> usize,
    ) -> Option<NodeId> {
        let count = allowed.len();
        let mut first = allowed.iter();
        if count == 1 {
            return first.next();
        }
        let i = rand::random::<usize>() % count;
        let mut j = rand::random::<usize>() % (count - 1);
        if j >= i {
            j += 1;
        }
        let a = allowed.iter().nth(i)?;
        let b = allowed.iter().nth(j)?;
        // Compare load / weight without division: la * wb vs lb * wa.
        let score =
            |id: NodeId, other: NodeId| load(id) as u64 * u64::from(self.weights[other.index()]);
        Some(if score(a, b) <= score(b, a) { a } else { b })
    }
}

/// The nginx smooth weighted round-robin sequence: spreads heavy nodes out instead of bunching them.
fn smooth_schedule(nodes: &[(NodeId, u32)], weights: &[u32; MAX_NODES]) -> Vec<NodeId> {
    let total: i64 = nodes
        .iter()
        .map(|&(id, _)| i64::from(weights[id.index()]))
        .sum();
    let mut current = vec![0i64; nodes.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (k, &(id, _)) in nodes.iter().enumerate() {
            current[k] += i64::from(weights[id.index()]);
        }
        let Some(best) = (0..nodes.len()).max_by_key(|&k| (current[k], std::cmp::Reverse(k)))
        else {
            break;
        };
        current[best] -= total;
        out.push(nodes[best].0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn all(n: usize) -> NodeSet {
        (0..n).map(id).collect()
    }

    fn counts(b: &Balancer, allowed: NodeSet, picks: usize) -> Vec<usize> {
        let mut c = vec![0; MAX_NODES];
        for _ in 0..picks {
            c[b.pick(allowed, Basis::Policy, |_| 0).unwrap().index()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_visits_nodes_in_turn() {
        let b = Balancer::new(Policy::RoundRobin, &[(id(0), 1), (id(1), 1), (id(2), 1)]);
        let seq: Vec<_> = (0..6)
            .map(|_| b.pick(all(3), Basis::Policy, |_| 0).unwrap().index())
            .collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_round_robin_is_proportional_and_interleaved() {
        let b = Balancer::new(Policy::RoundRobin, &[(id(0), 5), (id(1), 1), (id(2), 1)]);
        assert_eq!(b.schedule.len(), 7);
        // Smooth: the heavy node never takes more than 3 turns in a row.
        let seq: Vec<_> = b.schedule.iter().map(|i| i.index()).collect();
        assert!(
            !seq.windows(4).any(|w| w.iter().all(|&x| x == 0)),
            "{seq:?}"
        );
        let c = counts(&b, all(3), 700);
        assert_eq!(&c[..3], &[500, 100, 100]);
    }

    #[test]
    fn round_robin_over_a_subset_spreads_evenly() {
        let b = Balancer::new(Policy::RoundRobin, &[(id(0), 1), (id(1), 1), (id(2), 1)]);
        let c = counts(&b, NodeSet::single(id(0)).with(id(2)), 100);
        assert_eq!(&c[..3], &[50, 0, 50]);
    }

    #[test]
    fn empty_or_unknown_allowed_set_picks_nothing() {
        for policy in [Policy::RoundRobin, Policy::LeastRequests] {
            let b = Balancer::new(policy, &[(id(0), 1)]);
            for basis in [Basis::Policy, Basis::Affinity] {
                assert_eq!(b.pick(NodeSet::EMPTY, basis, |_| 0), None);
                assert_eq!(b.pick(NodeSet::single(id(5)), basis, |_| 0), None);
                let empty = Balancer::new(policy, &[]);
                assert_eq!(empty.pick(all(3), basis, |_| 0), None);
            }
        }
    }

    #[test]
    fn least_requests_prefers_the_idle_node() {
        let b = Balancer::new(Policy::LeastRequests, &[(id(0), 1), (id(1), 1)]);
        for _ in 0..50 {
            assert_eq!(
                b.pick(all(2), Basis::Policy, |n| if n.index() == 0 {
                    10
                } else {
                    0
                }),
                Some(id(1))
            );
        }
    }

    #[test]
    fn least_requests_weighs_load_by_weight() {
        let b = Balancer::new(Policy::LeastRequests, &[(id(0), 4), (id(1), 1)]);
        // 6 outstanding on a weight-4 node is lighter than 2 on a weight-1 node.
        assert_eq!(
            b.pick(all(2), Basis::Policy, |n| if n.index() == 0 {
                6
            } else {
                2
            }),
            Some(id(0))
        );
    }

    /// Plays `flows` flows of `len` requests each, one after the other: the first request of a flow (a client
    /// registration) is routed by policy, the rest are pinned to the node it landed on (its issuer). Returns
    /// how many flows started on each node.
    fn flow_starts(b: &Balancer, nodes: usize, flows: usize, len: usize) -> Vec<usize> {
        let mut starts = vec![0; nodes];
        for _ in 0..flows {
            let issuer = b.pick(all(nodes), Basis::Policy, |_| 0).unwrap();
            starts[issuer.index()] += 1;
            for _ in 1..len {
                let pinned = NodeSet::single(issuer);
                assert_eq!(b.pick(pinned, Basis::Affinity, |_| 0), Some(issuer));
                assert_eq!(b.pick(pinned, Basis::Policy, |_| 0), Some(issuer));
            }
        }
        starts
    }

    #[test]
    fn flows_of_a_multiple_of_the_node_count_spread_their_policy_requests_over_all_nodes() {
        for nodes in [2, 3, 5] {
            let weights: Vec<(NodeId, u32)> = (0..nodes).map(|i| (id(i), 1)).collect();
            for k in 1..=4 {
                let b = Balancer::new(Policy::RoundRobin, &weights);
                let starts = flow_starts(&b, nodes, 10 * nodes, k * nodes);
                assert_eq!(
                    starts,
                    vec![10; nodes],
                    "{nodes} nodes, flows of {}",
                    k * nodes
                );
            }
        }
    }

    #[test]
    fn pinned_picks_take_no_turn_and_affinity_picks_keep_their_own() {
        let b = Balancer::new(Policy::RoundRobin, &[(id(0), 1), (id(1), 1), (id(2), 1)]);
        let owners = NodeSet::single(id(1)).with(id(2));
        let mut policy = Vec::new();
        let mut affinity = Vec::new();
        for _ in 0..6 {
            policy.push(b.pick(all(3), Basis::Policy, |_| 0).unwrap().index());
            // Key-routed requests in between: spread over the owners, and no shift of the policy's sequence.
            for _ in 0..2 {
                affinity.push(b.pick(owners, Basis::Affinity, |_| 0).unwrap().index());
            }
            b.pick(NodeSet::single(id(0)), Basis::Policy, |_| 0);
        }
        assert_eq!(policy, [0, 1, 2, 0, 1, 2]);
        assert_eq!(affinity.iter().filter(|&&n| n == 1).count(), 6);
        assert_eq!(affinity.iter().filter(|&&n| n == 2).count(), 6);
    }

    #[test]
    fn least_requests_ignores_the_basis() {
        let b = Balancer::new(Policy::LeastRequests, &[(id(0), 1), (id(1), 1)]);
        let busy_first = |n: NodeId| if n.index() == 0 { 5 } else { 0 };
        for basis in [Basis::Policy, Basis::Affinity] {
            for _ in 0..20 {
                assert_eq!(b.pick(all(2), basis, busy_first), Some(id(1)));
            }
            assert_eq!(
                b.pick(NodeSet::single(id(0)), basis, busy_first),
                Some(id(0))
            );
        }
    }

    #[test]
    fn policy_names_parse() {
        assert_eq!("round_robin".parse(), Ok(Policy::RoundRobin));
        assert_eq!("least_requests".parse(), Ok(Policy::LeastRequests));
        assert!("random".parse::<Policy>().is_err());
    }
}
