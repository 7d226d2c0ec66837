//! The HTTP(S) client used to reach nodes: one pooled keep-alive client per node.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::ServerName;

use crate::transport::body::BodyError;

/// The request body type sent to nodes.
pub(crate) type UpstreamBody = BoxBody<bytes::Bytes, BodyError>;

/// A pooled client for one node.
pub(crate) type NodeClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Settings for one node's client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// TLS trust.
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS name to present and verify instead of the URL host.
    pub sni: Option<String>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept.
    pub pool_max_idle: usize,
}

/// Builds a pooled HTTP/1.1 client (nodes are spoken to in HTTP/1.1 whatever the client used).
pub(crate) fn build(settings: &ClientSettings) -> NodeClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*settings.tls).clone())
        .https_or_http();
    let builder = match settings
        .sni
        .as_ref()
        .and_then(|name| ServerName::try_from(name.clone()).ok())
    {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle)
        .set_host(false)
        .build(connector)
}
