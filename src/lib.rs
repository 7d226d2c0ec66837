//! # tokenroute
//!
//! A reverse proxy and load balancer that learns, from backend responses, which node issued each OAuth
//! credential and routes every later request carrying it to a node that can honour it.
//!
//! # Architecture
//!
//! Bottom layer first; a module uses only modules above it in this list (`tests/it/layers.rs` checks it).
//!
//! - [`secret`]: the redacting newtype every secret travels in; [`logging`]: error chains on one line, the log
//!   subscriber (text or JSON) and the access log's target; `time`: tickers on tokio's clock.
//! - [`oauth`]: pure extraction of credentials from requests and responses (RFC 5849, RFC 6749/6750, RFC 7009,
//!   7662, 8628, 9126, 7592, OpenID Connect); `transport`: body wrappers and TLS configs for both legs.
//! - [`affinity`]: the learned table of credential fingerprints → owner sets, its journal and snapshot, and the
//!   Redis store that shares it between instances.
//! - [`metrics`]: the lock-free registry, its label vocabularies and the Prometheus exposition.
//! - [`upstream`]: nodes, the HTTP/1.1 client and its pool, balancing policies, health checking.
//! - [`refresh`]: when a node is refreshed (every trigger, the fan-out) and single flight per node;
//!   [`admin`]: the admin HTTP API and status page over an `AdminBackend`.
//! - [`config`]: the file layer (serde structs) → validated runtime [`config::Config`]; every finding names its key
//!   and line.
//! - [`proxy`]: one request, a file per stage: check → classify → forward → repair → learn.
//! - [`server`]: listeners, the PROXY protocol, TLS termination, connection caps, graceful drain; `reload`.
//! - [`app`]: the whole application under one cancellation tree ([`app::App`]); `main`, the demo and the tests
//!   run it. [`fuzzing`]: the bodies of the fuzz targets (`fuzz/`), one per parser of untrusted bytes, also
//!   replayed over the committed corpora by `cargo test`.
//! - `sim` and `demo`: the stand-ins (OAuth 1 CQ-Web-like nodes and a signing consumer, an OAuth 2 / OIDC
//!   server and client, the flow load tester) and `tokenroute demo`; compiled only with the cargo feature `sim`
//!   (on by default).

// The docs are built with private items (`cargo doc --document-private-items`): module docs link to the private
// stage files they describe.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod affinity;
pub mod app;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod proxy;
pub mod refresh;
pub mod secret;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub(crate) mod time;
pub(crate) mod transport;
pub mod upstream;
