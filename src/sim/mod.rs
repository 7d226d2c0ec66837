//! The backend stand-in and the signing OAuth 1.0a consumer: the technote's failure, reproducible on one
//! machine (BRIEF §4).
//!
//! - [`repository`]: what every node shares (consumer keys, secrets, approval, users).
//! - [`node`]: one ClearQuest-Web-like node with its own memory (registry, tokens, sessions, nonces).
//! - [`cluster`]: several nodes on `127.0.0.1` around one repository; stop, restart, test hooks.
//! - [`signature`]: RFC 5849 base string, `HMAC-SHA1` signing and verification.
//! - [`consumer`]: the scripted consumer that plays the whole friendship flow and reports per step.
//! - [`wire`]: the vocabulary both sides speak: paths, header and parameter names, problems, documents.
//! - [`cli`]: the `sim-nodes` and `flow` subcommands' arguments and bodies.
//! - [`loadtest`]: `tokenroute loadtest`, many signed flows with latency and throughput figures and a chart.
//!
//! Nodes of a cluster run in **one process** and share an in-memory `Arc<Repository>`, which stands for the
//! ClearQuest repository database; each node's own memory is a separate value that no other node can reach.
//! One process is simpler than a repository file shared by several processes, deterministic for tests (a
//! test can stop, restart and inspect nodes directly) and lets the demo run without writing any file. The
//! isolation that matters, per-node memory, is the same either way.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use thiserror::Error;

pub mod cli;
pub mod cluster;
pub mod consumer;
pub mod loadtest;
pub mod node;
pub mod oauth2;
pub mod repository;
mod request;
pub mod signature;
pub mod wire;

pub use cluster::{Cluster, ClusterBuilder};
pub use consumer::{run_flows, FlowOptions, FlowReport, ParamMode};

pub use node::{NodeConfig, NodeServer, NodeStats};
pub use repository::Repository;

/// Which stand-in and client a tool plays (`demo`, `loadtest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OAuth 1.0a friendship flows against ClearQuest-Web-like nodes (the technote).
    #[value(name = "oauth1")]
    OAuth1,
    /// OAuth 2 / OpenID Connect grants against in-memory authorization servers.
    #[value(name = "oauth2")]
    OAuth2,
}

/// Errors of the stand-in and the consumer (not the answers a node gives: those are HTTP responses).
#[derive(Debug, Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A node index past the end of the cluster.
    #[error("no node {0} in this cluster")]
    NoSuchNode(usize),
    /// An operation that needs a running node on a stopped one.
    #[error("node {0} is stopped")]
    NodeStopped(usize),
    /// A URL that is not an absolute `http(s)://host:port/...`.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// A report file (the load test's chart) that cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A tool option the chosen protocol's client does not have.
    #[error("{option} does not apply to --protocol {protocol}")]
    Unsupported {
        /// The option, as typed.
        option: &'static str,
        /// The protocol, as typed.
        protocol: &'static str,
    },
    /// A CA certificate file that cannot be read.
    #[error("cannot read CA certificates from {path}")]
    CaFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// PEM that holds no usable certificate.
    #[error("invalid CA certificate PEM")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    /// TLS client configuration failed.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    /// An HTTP exchange failed below the HTTP layer (connect, reset, protocol error).
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// A response body could not be read.
    #[error("reading the response from {url} failed")]
    Body {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// A request timed out.
    #[error("request to {url} timed out")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// OAuth parameters could not be signed into a request.
    #[error("cannot sign request")]
    Sign(#[from] signature::ParamError),
    /// A request that could not be built (bad header value or method).
    #[error("cannot build request: {0}")]
    BuildRequest(#[from] http::Error),
}

/// `bytes` random bytes as lower-case hex: keys, tokens, secrets, nonces, session ids.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch (OAuth timestamps).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
