//! Balancing policies: pure choice of a node among an allowed set.
//!
//! The caller passes the set of nodes it may use (healthy, and for a consumer key also owners), so one
//! policy serves both ordinary and affinity-constrained picks. `pick` never panics and returns `None` only
//! when the allowed set has no node the policy knows.

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

/// A policy with its state.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Smooth weighted round-robin order, one entry per unit of weight.
    schedule: Vec<NodeId>,
    /// Every node in the schedule.
    members: NodeSet,
    weights: [u32; MAX_NODES],
    /// Round-robin position; relaxed ordering is enough, it only spreads load.
    cursor: AtomicUsize,
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
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Chooses a node in `allowed`; `load` gives a node's outstanding requests (used by least requests).
    pub fn pick(&self, allowed: NodeSet, load: impl Fn(NodeId) -> usize) -> Option<NodeId> {
        let allowed = allowed.intersection(self.members);
        if allowed.is_empty() {
            return None;
        }
        match self.policy {
            Policy::RoundRobin => self.pick_round_robin(allowed),
            Policy::LeastRequests => self.pick_least_requests(allowed, load),
        }
    }

    fn pick_round_robin(&self, allowed: NodeSet) -> Option<NodeId> {
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
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
            c[b.pick(allowed, |_| 0).unwrap().index()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_visits_nodes_in_turn() {
        let b = Balancer::new(Policy::RoundRobin, &[(id(0), 1), (id(1), 1), (id(2), 1)]);
        let seq: Vec<_> = (0..6)
            .map(|_| b.pick(all(3), |_| 0).unwrap().index())
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
            assert_eq!(b.pick(NodeSet::EMPTY, |_| 0), None);
            assert_eq!(b.pick(NodeSet::single(id(5)), |_| 0), None);
            let empty = Balancer::new(policy, &[]);
            assert_eq!(empty.pick(all(3), |_| 0), None);
        }
    }

    #[test]
    fn least_requests_prefers_the_idle_node() {
        let b = Balancer::new(Policy::LeastRequests, &[(id(0), 1), (id(1), 1)]);
        for _ in 0..50 {
            assert_eq!(
                b.pick(all(2), |n| if n.index() == 0 { 10 } else { 0 }),
                Some(id(1))
            );
        }
    }

    #[test]
    fn least_requests_weighs_load_by_weight() {
        let b = Balancer::new(Policy::LeastRequests, &[(id(0), 4), (id(1), 1)]);
        // 6 outstanding on a weight-4 node is lighter than 2 on a weight-1 node.
        assert_eq!(
            b.pick(all(2), |n| if n.index() == 0 { 6 } else { 2 }),
            Some(id(0))
        );
    }

    #[test]
    fn policy_names_parse() {
        assert_eq!("round_robin".parse(), Ok(Policy::RoundRobin));
        assert_eq!("least_requests".parse(), Ok(Policy::LeastRequests));
        assert!("random".parse::<Policy>().is_err());
    }
}
