//! # tokenroute
//!
//! A reverse proxy and load balancer that learns, from backend responses, which node issued each OAuth
//! credential and routes every later request carrying it to a node that can honour it.
//!
//! # Architecture
//!
//! - [`config`]: the file layer (serde structs) → validated runtime [`config::Config`]; errors name the key.
//! - [`server`]: listeners, the PROXY protocol, TLS termination, connection caps, graceful drain; [`server::run`] is the
//!   entry point.
//! - [`proxy`]: one request: classify → route → forward → learn; header hygiene; the error → status map.
//! - [`upstream`]: nodes, the HTTP(S) client, balancing policies and health checking.
//! - [`oauth`]: pure extraction of credentials from requests and responses (RFC 5849, RFC 6749/6750).
//! - [`affinity`]: the learned table of credential fingerprints → owner sets, and its persistence.
//! - [`refresh`]: refreshing nodes (single flight, fan-out) and recognising stale-credential answers.
//! - [`admin`]: the admin HTTP API (status, reload, drain, table lookup) and the Prometheus metrics registry.
//! - [`sim`]: the stand-in for unmodified ClearQuest-Web-like nodes and a signing OAuth 1.0a consumer.
//! - [`demo`]: `tokenroute demo`, the technote reproduced behind a plain balancer and behind tokenroute.
//!
//! `sim` and `demo` are test and demonstration tools, compiled only with the cargo feature `sim` (on by default).
//! - [`secret`]: the redacting newtype every secret travels in.
//! - [`logging`]: error chains on one line, the log subscriber (text or JSON) and the access log's target.

// The docs are built with private items (`cargo doc --document-private-items`): module docs link to the private
// stage files they describe.
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod affinity;
pub mod app;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
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
