//! The admin API's view of a running proxy: [`AdminBackend`] implemented over [`Proxy`], and the read-only
//! views an operator watches (`/status`, `/metrics`, a table lookup). Nothing here is on the request path.

use std::path::PathBuf;
use tokio::time::Instant;

use serde_json::json;

use crate::admin::{AdminBackend, AdminError, BoxFuture};
use crate::affinity::{self, unix_now, NodeId};
use crate::config::LoadError;
use crate::metrics::{CertificateView, MetricsView, NodeView};
use crate::oauth::Specificity;
use crate::proxy::Proxy;
use crate::server::reload::reload_from_file;

/// The running proxy, and the config file `POST /reload` reads.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    proxy: Proxy,
    config_path: Option<PathBuf>,
    /// When the admin view was made (at start-up, before the listeners serve): `/status`'s uptime.
    started: Instant,
}

impl ProxyAdmin {
    /// The admin view of `proxy`; without a config path, `POST /reload` answers that there is nothing to read.
    pub fn new(proxy: Proxy, config_path: Option<PathBuf>) -> ProxyAdmin {
        ProxyAdmin {
            proxy,
            config_path,
            started: Instant::now(),
        }
    }

    fn node_id(&self, name: &str) -> Result<NodeId, AdminError> {
        self.proxy
            .current()
            .pool
            .by_name(name)
            .map(|n| n.id)
            .ok_or_else(|| AdminError::UnknownNode(name.to_owned()))
    }

    /// Consumer keys and client ids each node is known to hold (one pass over the table).
    fn keys_owned_by_node(&self) -> [usize; affinity::MAX_NODES] {
        let mut counts = [0usize; affinity::MAX_NODES];
        for (_, entry) in self.proxy.table().entries() {
            if entry.kind().specificity() == Specificity::Key {
                for id in entry.owners().iter() {
                    counts[id.index()] += 1;
                }
            }
        }
        counts
    }
}

impl AdminBackend for ProxyAdmin {
    fn ready(&self) -> Result<(), String> {
        self.proxy.readiness().map_err(|why| why.to_string())
    }

    fn status(&self) -> serde_json::Value {
        let generation = self.proxy.current();
        let pool = &generation.pool;
        let keys = self.keys_owned_by_node();
        let nodes: Vec<serde_json::Value> = pool
            .nodes()
            .iter()
            .map(|n| {
                json!({
                    "name": n.spec.name,
                    "url": format!("{}://{}", n.spec.scheme, n.spec.authority),
                    "healthy": pool.checked_healthy().contains(n.id),
                    "draining": pool.draining().contains(n.id),
                    "inflight": n.inflight(),
                    "owned_keys": keys[n.id.index()],
                    // Responses relayed from the node so far: a client computes requests/s from two reads.
                    "requests": self.proxy.metrics().node_responses(n.id),
                    "health": n.health(),
                })
            })
            .collect();
        let table = self.proxy.table();
        let by_kind: serde_json::Map<String, serde_json::Value> = table
            .len_by_kind()
            .iter()
            .map(|(k, n)| (k.as_str().to_owned(), json!(n)))
            .collect();
        let stats = table.stats();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "nodes": nodes,
            "table": {
                "entries": stats.len,
                "max_entries": stats.max_entries,
                "by_kind": by_kind,
                "inserts": stats.inserts,
                "evictions": stats.evictions,
                "expiries": stats.expiries,
            },
            "store": match self.proxy.redis() {
                None => json!({ "kind": "memory" }),
                Some(redis) => {
                    let s = redis.stats();
                    json!({
                        "kind": "redis",
                        "state": if s.up { "shared" } else { "degraded" },
                        "degraded_operations": s.degraded_ops,
                        "outages": s.outages,
                        "read_through": s.read_through,
                        "changes_applied": s.applied,
                        "written_back": s.written_back,
                        "pending_write_back": s.pending,
                        "leases_lost": s.leases_lost,
                    })
                }
            },
            "counters": self.proxy.metrics().counters_json(),
            "config": self.proxy.reload_status(),
            "ready": self.proxy.readiness().err().map_or_else(|| json!(true), |why| json!(why.to_string())),
        })
    }

    fn metrics(&self) -> String {
        let generation = self.proxy.current();
        let pool = &generation.pool;
        let keys = self.keys_owned_by_node();
        let nodes = pool
            .nodes()
            .iter()
            .map(|n| NodeView {
                id: n.id,
                name: &n.spec.name,
                healthy: pool.checked_healthy().contains(n.id),
                draining: pool.draining().contains(n.id),
                inflight: n.inflight(),
                owned_keys: keys[n.id.index()],
                checks: n.checks(),
            })
            .collect();
        let table = self.proxy.table();
        self.proxy.metrics().render(&MetricsView {
            nodes,
            table: table.stats(),
            table_by_kind: table.len_by_kind(),
            store: self.proxy.redis().map(|r| r.stats()),
            // From the generation in force: a reload that swaps a certificate shows its new expiry.
            certificates: generation
                .config
                .listeners
                .iter()
                .flat_map(|l| {
                    l.certificate_expiry.iter().map(|c| CertificateView {
                        listener: &l.name,
                        server_name: &c.server_name,
                        not_after: c.not_after,
                    })
                })
                .collect(),
        })
    }

    fn reload(&self) -> BoxFuture<Result<serde_json::Value, AdminError>> {
        let proxy = self.proxy.clone();
        let path = self.config_path.clone();
        Box::pin(async move {
            let path = path.ok_or_else(|| {
                AdminError::Failed("this proxy was not started from a config file".to_owned())
            })?;
            let report = tokio::task::spawn_blocking(move || reload_from_file(&proxy, &path))
                .await
                .map_err(|e| AdminError::Failed(e.to_string()))?
                .map_err(|e| match e {
                    // The file could not be read: the server's problem, not the caller's input.
                    LoadError::Read { .. } => AdminError::Failed(e.report()),
                    LoadError::Syntax { .. } | LoadError::Invalid { .. } => {
                        AdminError::InvalidConfig(e.report())
                    }
                })?;
            Ok(json!(report))
        })
    }

    fn refresh_node(&self, name: &str) -> BoxFuture<Result<serde_json::Value, AdminError>> {
        let proxy = self.proxy.clone();
        let name = name.to_owned();
        Box::pin(async move {
            let generation = proxy.current();
            let node = generation
                .pool
                .by_name(&name)
                .cloned()
                .ok_or_else(|| AdminError::UnknownNode(name.clone()))?;
            let settings = &generation.config.refresh;
            if !settings.enabled() {
                return Err(AdminError::Failed(
                    "refreshing is not configured: [[refresh.exchange]] is empty".into(),
                ));
            }
            let trigger = crate::metrics::RefreshTrigger::Admin;
            if proxy
                .refreshes()
                .refresh_and_own(&node, settings, trigger)
                .await
            {
                Ok(json!({ "node": name, "refreshed": true }))
            } else {
                Err(AdminError::Failed(format!(
                    "refreshing {name} failed (the log says why)"
                )))
            }
        })
    }

    fn set_draining(&self, name: &str, draining: bool) -> Result<(), AdminError> {
        let id = self.node_id(name)?;
        self.proxy.current().pool.set_draining(id, draining);
        tracing::info!(
            node = name,
            draining,
            "node drain state changed by the admin API"
        );
        Ok(())
    }

    fn lookup(&self, credential: &str) -> Option<serde_json::Value> {
        let entry = self
            .proxy
            .table()
            .lookup(self.proxy.fingerprint(credential), unix_now())?;
        let generation = self.proxy.current();
        let owners: Vec<&str> = entry
            .owners()
            .iter()
            .filter_map(|id| generation.pool.node(id).map(|n| n.spec.name.as_str()))
            .collect();
        Some(json!({
            "kind": entry.kind().as_str(),
            "owners": owners,
            "expires_at": entry.expires_at(),
        }))
    }

    fn forget_node(&self, name: &str) -> Result<usize, AdminError> {
        let id = self.node_id(name)?;
        Ok(self.proxy.table().remove_node(id))
    }
}
