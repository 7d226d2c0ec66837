//! The backend pool: nodes, their clients, health and balancing.
//!
//! [`Pool`] is built from the validated config. The per-request path reads one atomic (the healthy mask)
//! and the balancer's cursor; health counters sit behind a per-node mutex touched only by probes and failures.

pub mod balance;
pub(crate) mod client;
pub mod clone_id;
mod exchange;
pub(crate) mod health;
mod pool;
mod settings;
pub(crate) mod wire;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use http::Uri;

use crate::affinity::{unix_now, NodeId, NodeSet, MAX_NODES};

use balance::Balancer;
pub use client::ClientError;
use client::{ClientSettings, NodeClient};
pub use health::{HealthFailure, HealthResult, HealthView};
use health::{HealthState, Transition};
pub use settings::{HealthSettings, NodeSpec, PoolSettings};

/// One backend node.
#[derive(Debug)]
pub struct Node {
    /// Stable index (owner sets refer to it).
    pub id: NodeId,
    /// Its configuration.
    pub spec: NodeSpec,
    /// This node's HTTP/1.1 client and its pool of idle connections.
    pub client: NodeClient,
    /// Requests sent and not yet finished (least-requests input); relaxed atomics.
    inflight: AtomicUsize,
    /// Health counter and last result; locked only by probes, passive failures and `/status`, never across
    /// `.await`.
    health: Mutex<HealthState>,
    /// Active checks by [`HealthFailure::RESULTS`] index; relaxed atomics, bumped by the prober only.
    checks: [AtomicU64; HealthFailure::RESULTS.len()],
}

impl Node {
    /// The absolute URI of `path_and_query` on this node (path bytes kept exactly as given).
    pub fn uri_for(&self, path_and_query: &str) -> Uri {
        Uri::builder()
            .scheme(self.spec.scheme.clone())
            .authority(self.spec.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// Outstanding requests.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// What `/status` shows of this node's health.
    pub fn health(&self) -> HealthView {
        self.health.lock().view()
    }

    /// Active checks so far, by [`HealthFailure::RESULTS`] (`tokenroute_health_checks_total`).
    pub fn checks(&self) -> [u64; HealthFailure::RESULTS.len()] {
        std::array::from_fn(|i| self.checks[i].load(Ordering::Relaxed))
    }

    /// Counts one active check's result.
    pub(crate) fn count_check(&self, failure: Option<&HealthFailure>) {
        self.checks[failure.map_or(0, HealthFailure::index)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request as outstanding until the guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.clone())
    }
}

/// Decrements a node's outstanding count when dropped (at the end of the response body).
#[derive(Debug)]
pub struct InflightGuard(Arc<Node>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pool of nodes.
#[derive(Debug)]
pub struct Pool {
    /// In config order.
    nodes: Vec<Arc<Node>>,
    /// Position in `nodes` of each id (`u8::MAX`: none); ids are stable across reloads, so they can be sparse.
    index: [u8; MAX_NODES],
    balancer: Balancer,
    /// Bit per healthy node; with `draining`, the only health state the request path reads.
    healthy: AtomicU64,
    /// Bit per node an administrator drained: no new requests, in-flight ones finish.
    draining: AtomicU64,
    /// Bit per node that has had at least one active health check (readiness).
    probed: AtomicU64,
    /// Every node.
    all: NodeSet,
    /// Announces nodes coming back up (a refresh trigger: a restarted node has lost its memory).
    up_events: tokio::sync::broadcast::Sender<NodeId>,
}

impl Pool {
    /// Builds the pool; node ids follow config order.
    pub fn new(upstream: &PoolSettings, health: Option<&HealthSettings>) -> Pool {
        Pool::build(upstream, health, None)
    }

    /// Builds the pool for a reloaded config. A node whose name is in `previous` keeps its id (owner sets
    /// refer to it); if its settings are unchanged it keeps everything (connections, health, in-flight count).
    /// New names take the lowest free ids.
    pub fn build(
        upstream: &PoolSettings,
        health: Option<&HealthSettings>,
        previous: Option<&Pool>,
    ) -> Pool {
        let (rise, fall) = health
            .map(|h| (h.rise, h.fall))
            .unwrap_or((std::num::NonZeroU32::MIN, std::num::NonZeroU32::MAX));
        let old_by_name = |name: &str| previous.and_then(|p| p.by_name(name));
        let mut taken: NodeSet = upstream
            .nodes
            .iter()
            .filter_map(|spec| old_by_name(&spec.name).map(|n| n.id))
            .collect();
        let mut healthy = NodeSet::EMPTY;
        let mut nodes = Vec::new();
        for spec in &upstream.nodes {
            let old = old_by_name(&spec.name);
            let id = match old {
                Some(n) => n.id,
                None => match (0..MAX_NODES)
                    .filter_map(NodeId::new)
                    .find(|id| !taken.contains(*id))
                {
                    Some(id) => {
                        taken = taken.with(id);
                        id
                    }
                    None => continue,
                },
            };
            let node = match old {
                Some(n) if n.spec == *spec => {
                    if previous.is_some_and(|p| p.healthy().contains(id)) {
                        healthy = healthy.with(id);
                    }
                    n.clone()
                }
                _ => {
                    healthy = healthy.with(id);
                    let client = client::build(&ClientSettings {
                        scheme: spec.scheme.clone(),
                        authority: spec.authority.clone(),
                        tls: upstream.tls.clone(),
                        sni: spec.sni.clone(),
                        connect_timeout: upstream.connect_timeout,
                        pool_idle_timeout: upstream.pool_idle_timeout,
                        pool_max_idle: upstream.pool_max_idle_per_node,
                        workers: upstream.workers,
                    });
                    Arc::new(Node {
                        id,
                        spec: spec.clone(),
                        client,
                        inflight: AtomicUsize::new(0),
                        health: Mutex::new(HealthState::new(rise, fall, unix_now())),
                        checks: Default::default(),
                    })
                }
            };
            nodes.push(node);
        }
        let weights: Vec<(NodeId, u32)> =
            nodes.iter().map(|n| (n.id, n.spec.weight.get())).collect();
        let all: NodeSet = nodes.iter().map(|n| n.id).collect();
        let mut index = [u8::MAX; MAX_NODES];
        for (position, node) in nodes.iter().enumerate() {
            index[node.id.index()] = position as u8;
        }
        let carried = |mask: fn(&Pool) -> NodeSet| {
            previous.map_or(NodeSet::EMPTY, |p| mask(p).intersection(all))
        };
        Pool {
            balancer: Balancer::new(upstream.policy, &weights),
            healthy: AtomicU64::new(healthy.bits()),
            draining: AtomicU64::new(carried(Pool::draining).bits()),
            probed: AtomicU64::new(carried(Pool::probed).bits()),
            all,
            index,
            nodes,
            up_events: previous.map_or_else(
                || tokio::sync::broadcast::channel(64).0,
                |p| p.up_events.clone(),
            ),
        }
    }

    /// Closes the idle upstream connections of every node that idled past `pool_idle_timeout` (or that the
    /// node closed); returns how many.
    pub fn close_expired_idle(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.client.close_expired_idle())
            .sum()
    }

    /// Every node.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Option<&Arc<Node>> {
        self.nodes.get(usize::from(*self.index.get(id.index())?))
    }

    /// The node called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.spec.name == name)
    }

    /// Nodes coming back up, as they do.
    pub fn subscribe_up(&self) -> tokio::sync::broadcast::Receiver<NodeId> {
        self.up_events.subscribe()
    }

    /// Every node's id.
    pub fn all(&self) -> NodeSet {
        self.all
    }

    /// Nodes that may take new requests now: healthy and not drained.
    pub fn healthy(&self) -> NodeSet {
        NodeSet::from_bits(
            self.healthy.load(Ordering::Acquire) & !self.draining.load(Ordering::Acquire),
        )
    }

    /// Nodes whose health checks pass, drained or not.
    pub fn checked_healthy(&self) -> NodeSet {
        NodeSet::from_bits(self.healthy.load(Ordering::Acquire))
    }

    /// Drained nodes.
    pub fn draining(&self) -> NodeSet {
        NodeSet::from_bits(self.draining.load(Ordering::Acquire))
    }

    /// Drains `id` (no new requests) or enables it again.
    pub fn set_draining(&self, id: NodeId, draining: bool) {
        let bit = NodeSet::single(id).bits();
        if draining {
            self.draining.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.draining.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Nodes that have had an active health check.
    pub fn probed(&self) -> NodeSet {
        NodeSet::from_bits(self.probed.load(Ordering::Acquire))
    }

    /// Records that `id` had an active health check.
    pub fn note_probed(&self, id: NodeId) {
        self.probed
            .fetch_or(NodeSet::single(id).bits(), Ordering::AcqRel);
    }

    /// Picks a node among `allowed` with the configured policy; `basis` says whose turn it takes.
    pub fn pick(&self, allowed: NodeSet, basis: balance::Basis) -> Option<&Arc<Node>> {
        let id = self.balancer.pick(allowed, basis, |id| {
            self.node(id).map_or(usize::MAX, |n| n.inflight())
        })?;
        self.node(id)
    }

    /// Feeds one health result (probe or passive failure); logs and applies a transition once, with the
    /// failure that caused it.
    pub fn record_health(&self, node: &Node, result: HealthResult) {
        let transition = node.health.lock().record(&result, unix_now());
        let name = &node.spec.name;
        let source = result.source;
        match (transition, &result.failure) {
            (Some(Transition::Down), failure) => {
                self.healthy
                    .fetch_and(!NodeSet::single(node.id).bits(), Ordering::AcqRel);
                let reason = failure
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::warn!(node = %name, source, reason = %reason, "node is down");
            }
            (Some(Transition::Up), _) => {
                self.healthy
                    .fetch_or(NodeSet::single(node.id).bits(), Ordering::AcqRel);
                tracing::info!(node = %name, source, "node is up");
                let _ = self.up_events.send(node.id);
            }
            (None, Some(failure)) => {
                tracing::debug!(node = %name, source, reason = %failure, "health check failed")
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(nodes: &[(&str, &str)]) -> PoolSettings {
        let mut text = String::from("[[listener]]\naddress = \"127.0.0.1:0\"\n");
        for (name, url) in nodes {
            text.push_str(&format!(
                "[[upstream.node]]\nname = \"{name}\"\nurl = \"{url}\"\n"
            ));
        }
        crate::config::parse(
            &text,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap()
        .upstream
    }

    fn ids(pool: &Pool) -> Vec<(String, usize)> {
        pool.nodes()
            .iter()
            .map(|n| (n.spec.name.clone(), n.id.index()))
            .collect()
    }

    #[tokio::test]
    async fn node_ids_survive_reloads_by_name_and_new_nodes_take_free_ids() {
        let first = Pool::new(
            &upstream(&[
                ("a", "http://127.0.0.1:1"),
                ("b", "http://127.0.0.1:2"),
                ("c", "http://127.0.0.1:3"),
            ]),
            None,
        );
        let second = Pool::build(
            &upstream(&[
                ("c", "http://127.0.0.1:3"),
                ("d", "http://127.0.0.1:4"),
                ("a", "http://127.0.0.1:9"),
            ]),
            None,
            Some(&first),
        );
        assert_eq!(
            ids(&second),
            vec![("c".into(), 2), ("d".into(), 1), ("a".into(), 0)]
        );
        assert_eq!(second.node(NodeId::new(1).unwrap()).unwrap().spec.name, "d");
        assert!(second.by_name("b").is_none());
        // Unchanged nodes are the same objects (connections and health kept); changed ones are rebuilt.
        assert!(Arc::ptr_eq(
            first.by_name("c").unwrap(),
            second.by_name("c").unwrap()
        ));
        assert!(!Arc::ptr_eq(
            first.by_name("a").unwrap(),
            second.by_name("a").unwrap()
        ));
    }

    #[tokio::test]
    async fn a_reload_keeps_an_unchanged_node_down() {
        let first = Pool::new(
            &upstream(&[("a", "http://127.0.0.1:1"), ("b", "http://127.0.0.1:2")]),
            None,
        );
        let a = first.by_name("a").unwrap().clone();
        first
            .healthy
            .fetch_and(!NodeSet::single(a.id).bits(), Ordering::AcqRel);
        let second = Pool::build(
            &upstream(&[("a", "http://127.0.0.1:1"), ("b", "http://127.0.0.1:2")]),
            None,
            Some(&first),
        );
        assert!(!second.healthy().contains(a.id));
        assert_eq!(second.healthy().len(), 1);
    }
}
