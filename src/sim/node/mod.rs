//! One stand-in node: a ClearQuest-Web-like server whose OAuth state lives in its own memory.
//!
//! Per node: the consumer registry (a snapshot of the repository's keys, taken at start and on every
//! successful login here), request tokens with their verifiers, access tokens, sessions and used nonces. A
//! node never looks at another node's memory; it reads the shared [`Repository`] only on start, login,
//! consumer registration and approval. That is exactly what makes a plain balancer fail (the technote).
//!
//! By role:
//! - `server`: the listener, connections over HTTP(S), `X-Served-By`, start and stop.
//! - `router`: path and method → handler, and the discovery document.
//! - `session`: form login (which refreshes the registry) and session cookies.
//! - `registry`: consumer registration and approval.
//! - `provider`: the OAuth 1.0a endpoints (request token, authorize, access token) and protected reads.
//! - `verify`: signature, timestamp, token and nonce checks of a signed request.
//! - `exchange`: reading requests and building answers, OAuth Problem Reporting included.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::time::Instant;

use super::random_hex;
use super::repository::{ConsumerRecord, Repository, User};
use crate::secret::Secret;

mod exchange;
mod provider;
mod registry;
mod router;
mod server;
mod session;
mod verify;

pub use server::NodeServer;

/// How one node behaves. Kept across restarts of that node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name, sent in `X-Served-By` (e.g. `lbcq_1`).
    pub name: String,
    /// WebSphere-style clone id appended to session ids (`JSESSIONID=<id>:<clone id>`).
    pub clone_id: String,
    /// A provisional key can be approved only on a node whose registry holds it.
    pub strict_approval: bool,
    /// Lifetime of request tokens.
    pub request_token_ttl: Duration,
    /// Lifetime of access tokens; `None` means "until the node restarts", like the real product.
    pub access_token_ttl: Option<Duration>,
    /// Accepted distance between `oauth_timestamp` and the node's clock.
    pub timestamp_window: Duration,
}

impl NodeConfig {
    /// Defaults for a node called `name`: a random 8-hex-digit clone id, non-strict approval, request tokens
    /// valid 10 minutes, access tokens until restart, a ±600 s timestamp window.
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            clone_id: random_hex(4),
            strict_approval: false,
            request_token_ttl: Duration::from_secs(600),
            access_token_ttl: None,
            timestamp_window: Duration::from_secs(600),
        }
    }
}

/// Counters for tests and the demo; they outlive node restarts. Relaxed atomics, bumped per request.
#[derive(Debug, Default)]
pub struct NodeStats {
    logins: AtomicU64,
    requests: AtomicU64,
}

impl NodeStats {
    /// Successful logins (each refreshed the registry).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Requests received, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

struct RequestToken {
    secret: Secret,
    consumer_key: String,
    callback: String,
    /// Set when a user authorized the token: (user, verifier).
    authorized: Option<(String, Secret)>,
    expires_at: Instant,
}

struct AccessToken {
    secret: Secret,
    consumer_key: String,
    user: String,
    expires_at: Option<Instant>,
}

/// Everything a node keeps in memory; lost on restart.
#[derive(Default)]
struct Memory {
    registry: HashMap<String, ConsumerRecord>,
    request_tokens: HashMap<String, RequestToken>,
    access_tokens: HashMap<String, AccessToken>,
    sessions: HashMap<String, User>,
    /// (consumer key, nonce, timestamp) seen within the timestamp window.
    nonces: HashSet<(String, String, u64)>,
}

/// The state a running node serves from. One `std::sync::Mutex` over the node's memory: every handler is
/// synchronous between reading the body and building the response, so the lock is never held across
/// `.await`, and a single lock keeps check-then-consume (single-use request tokens, nonces) atomic.
pub(crate) struct NodeState {
    config: NodeConfig,
    scheme: &'static str,
    repository: Arc<Repository>,
    stats: Arc<NodeStats>,
    memory: Mutex<Memory>,
}

type Resp = Response<Full<Bytes>>;

impl NodeState {
    fn new(
        config: NodeConfig,
        repository: Arc<Repository>,
        stats: Arc<NodeStats>,
        tls: bool,
    ) -> Self {
        let memory = Memory {
            registry: repository.consumers(),
            ..Memory::default()
        };
        NodeState {
            config,
            scheme: if tls { "https" } else { "http" },
            repository,
            stats,
            memory: Mutex::new(memory),
        }
    }
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Memory holds secrets; show only what identifies the node.
        f.debug_struct("NodeState")
            .field("name", &self.config.name)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}
