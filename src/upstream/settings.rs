//! What the pool is built from: the validated `[upstream]` and `[health]` settings (the config layer translates
//! the file into these; nothing here reads the file).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use super::balance::Policy;

/// The pool as configured (`[upstream]`, validated).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Balancing policy.
    pub policy: Policy,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Pool idle timeout.
    pub pool_idle_timeout: Duration,
    /// Idle connections per node (and per connection worker).
    pub pool_max_idle_per_node: usize,
    /// Connection workers (`[runtime]`): each keeps its own idle connections.
    pub workers: usize,
    /// TLS client settings for `https://` nodes (trust from `ca_file`).
    pub tls: Arc<rustls::ClientConfig>,
    /// Nodes in file order.
    pub nodes: Vec<NodeSpec>,
}

/// One node as configured (`[[upstream.node]]`, validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Stable name.
    pub name: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Share of requests.
    pub weight: NonZeroU32,
    /// TLS server name override.
    pub sni: Option<String>,
    /// WebSphere clone id: a session cookie ending in `:<clone_id>` routes here even when never learned.
    pub clone_id: Option<String>,
}

/// Active health checks (`[health]`, validated).
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Path probed with GET.
    pub path: String,
    /// Status meaning healthy.
    pub expect_status: http::StatusCode,
    /// Probe period.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Successes to come back.
    pub rise: NonZeroU32,
    /// Failures to go out.
    pub fall: NonZeroU32,
}
