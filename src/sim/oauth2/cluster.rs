//! Several authorization-server nodes on `127.0.0.1`, each with its own memory, sharing one user directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::node::{Node, NodeConfig, NodeStats};
use crate::sim::repository::Repository;
use crate::sim::SimError;

/// Builds a [`Cluster`]: `Cluster::builder().nodes(3).start().await?`.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    name_prefix: String,
    configure: fn(&mut NodeConfig),
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: 3,
            name_prefix: "as".to_string(),
            configure: |_| {},
        }
    }
}

impl ClusterBuilder {
    /// Number of nodes (default 3).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Nodes are named `<prefix>_1..` (default `as`).
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = prefix.into();
        self
    }

    /// Adjusts every node's configuration after the defaults (TTLs, poll interval, client id prefix).
    pub fn configure(mut self, f: fn(&mut NodeConfig)) -> Self {
        self.configure = f;
        self
    }

    /// Binds and starts every node on an ephemeral port.
    pub async fn start(self) -> Result<Cluster, SimError> {
        let users = Arc::new(Repository::with_demo_users());
        let mut nodes = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let mut config = NodeConfig::new(format!("{}_{}", self.name_prefix, i + 1));
            (self.configure)(&mut config);
            let stats = Arc::new(NodeStats::default());
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let node = Node::start(config, users.clone(), stats.clone(), addr).await?;
            nodes.push((node, stats));
        }
        Ok(Cluster { nodes })
    }
}

/// Running nodes. Dropping the cluster aborts them; [`Cluster::shutdown`] waits until they are closed.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<(Node, Arc<NodeStats>)>,
}

impl Cluster {
    /// A builder with the defaults (3 nodes `as_1..3`).
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `http://127.0.0.1:PORT` per node, in node order.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.url()).collect()
    }

    /// Node names, in node order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(n, _)| n.name().to_string())
            .collect()
    }

    /// Node `i`, if any.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).map(|(n, _)| n)
    }

    /// Counters of node `i`, if any.
    pub fn stats(&self, i: usize) -> Option<&NodeStats> {
        self.nodes.get(i).map(|(_, s)| s.as_ref())
    }

    /// Stops every node and waits until their listeners and connections are closed.
    pub async fn shutdown(self) {
        for (node, _) in self.nodes {
            node.stop().await;
        }
    }
}
