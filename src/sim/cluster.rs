//! A cluster of stand-in nodes on `127.0.0.1` around one shared [`Repository`], with the hooks tests and the
//! demo need: stop and restart a node, register a key behind everybody's back, count logins and requests.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::node::{NodeConfig, NodeServer, NodeStats};
use super::repository::{lock, Repository};
use super::SimError;
use crate::secret::Secret;

/// Builds a [`Cluster`]: `Cluster::builder().nodes(3).strict_approval(true).start().await?`.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    name_prefix: String,
    base_port: u16,
    strict_approval: bool,
    request_token_ttl: Option<Duration>,
    access_token_ttl: Option<Duration>,
    repository: Option<Arc<Repository>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: 3,
            name_prefix: "lbcq".to_string(),
            base_port: 0,
            strict_approval: false,
            request_token_ttl: None,
            access_token_ttl: None,
            repository: None,
            tls: None,
        }
    }
}

impl ClusterBuilder {
    /// Number of nodes (default 3).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Nodes are named `<prefix>_1..` (default `lbcq`).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// Node `i` listens on `base_port + i`; 0 (the default) gives every node an ephemeral port.
    pub fn base_port(mut self, port: u16) -> Self {
        self.base_port = port;
        self
    }

    /// A provisional key can be approved only on a node that holds it in memory (default off).
    pub fn strict_approval(mut self, strict: bool) -> Self {
        self.strict_approval = strict;
        self
    }

    /// Lifetime of request tokens (default 10 minutes; zero makes every request token expired at once).
    pub fn request_token_ttl(mut self, ttl: Duration) -> Self {
        self.request_token_ttl = Some(ttl);
        self
    }

    /// Lifetime of access tokens (default: until the node restarts).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = Some(ttl);
        self
    }

    /// Share an existing repository (default: a fresh one with the demo users).
    pub fn repository(mut self, repository: Arc<Repository>) -> Self {
        self.repository = Some(repository);
        self
    }

    /// Serve HTTPS with this configuration (the nodes' scheme becomes `https`).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds and starts every node.
    pub async fn start(self) -> Result<Cluster, SimError> {
        let repository = self
            .repository
            .clone()
            .unwrap_or_else(|| Arc::new(Repository::with_demo_users()));
        let mut slots = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let mut config = NodeConfig::new(format!("{}_{}", self.name_prefix, i + 1));
            config.strict_approval = self.strict_approval;
            if let Some(ttl) = self.request_token_ttl {
                config.request_token_ttl = ttl;
            }
            config.access_token_ttl = self.access_token_ttl;
            let port = if self.base_port == 0 {
                0
            } else {
                let offset = u16::try_from(i).map_err(|_| SimError::NoSuchNode(i))?;
                self.base_port.saturating_add(offset)
            };
            let stats = Arc::new(NodeStats::default());
            let server = NodeServer::start(
                config.clone(),
                repository.clone(),
                stats.clone(),
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                self.tls.clone(),
            )
            .await?;
            slots.push(Slot {
                config,
                stats,
                addr: server.local_addr(),
                server: Mutex::new(Some(server)),
            });
        }
        Ok(Cluster {
            repository,
            tls: self.tls,
            slots,
        })
    }
}

#[derive(Debug)]
struct Slot {
    config: NodeConfig,
    stats: Arc<NodeStats>,
    /// Fixed for the cluster's life: a restarted node takes its port back.
    addr: SocketAddr,
    /// `None` while the node is stopped. Never held across `.await` (the server is taken out first).
    server: Mutex<Option<NodeServer>>,
}

/// Running stand-in nodes. Dropping the cluster aborts every node; [`Cluster::shutdown`] waits for them.
#[derive(Debug)]
pub struct Cluster {
    repository: Arc<Repository>,
    tls: Option<Arc<rustls::ServerConfig>>,
    slots: Vec<Slot>,
}

impl Cluster {
    /// A builder with the defaults (3 nodes `lbcq_1..3`, ephemeral ports, non-strict approval).
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Number of nodes, running or not.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no node at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, i: usize) -> Result<&Slot, SimError> {
        self.slots.get(i).ok_or(SimError::NoSuchNode(i))
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `http://127.0.0.1:PORT` per node, in node order.
    pub fn node_urls(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| format!("{}://{}", self.scheme(), s.addr))
            .collect()
    }

    /// Node addresses, in node order.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// Node names (`lbcq_1`, ...), in node order.
    pub fn node_names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.config.name.clone()).collect()
    }

    /// WebSphere clone ids (the suffix of each node's `JSESSIONID`), in node order.
    pub fn clone_ids(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.config.clone_id.clone())
            .collect()
    }

    /// The shared repository.
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repository
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| lock(&s.server).is_some())
    }

    /// Stops node `i`: its listener and connections close (new connections are refused); memory is lost.
    /// Stopping a stopped node does nothing.
    pub async fn stop_node(&self, i: usize) -> Result<(), SimError> {
        let server = lock(&self.slot(i)?.server).take();
        if let Some(server) = server {
            server.stop().await;
        }
        Ok(())
    }

    /// Restarts node `i` on the same port with empty memory and its registry reloaded from the repository.
    pub async fn restart_node(&self, i: usize) -> Result<(), SimError> {
        self.stop_node(i).await?;
        let slot = self.slot(i)?;
        let server = NodeServer::start(
            slot.config.clone(),
            self.repository.clone(),
            slot.stats.clone(),
            slot.addr,
            self.tls.clone(),
        )
        .await?;
        *lock(&slot.server) = Some(server);
        Ok(())
    }

    /// Registers a consumer key directly on node `i` (repository and that node's registry only), behind any
    /// proxy's back, and returns the provisional key.
    pub fn register_key_on(&self, i: usize, name: &str, secret: &str) -> Result<String, SimError> {
        let slot = self.slot(i)?;
        let guard = lock(&slot.server);
        let server = guard.as_ref().ok_or(SimError::NodeStopped(i))?;
        Ok(server.register_key(name, Secret::new(secret)))
    }

    /// Successful logins on node `i` since the cluster started (survives restarts); 0 for no such node.
    pub fn logins(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.stats.logins())
    }

    /// Requests received by node `i` since the cluster started (survives restarts); 0 for no such node.
    pub fn requests(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.stats.requests())
    }

    /// Stops every node and waits until their listeners and connections are closed.
    pub async fn shutdown(self) {
        for i in 0..self.slots.len() {
            let _ = self.stop_node(i).await;
        }
    }
}
