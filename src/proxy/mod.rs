//! One request through the proxy: check → route → forward → relay.
//!
//! [`Proxy`] is the shared handle every connection task holds. The current configuration and the pool built
//! from it form a [`Generation`], swapped atomically on reload; a request reads it once and keeps it to the
//! end, so a reload never changes the rules under a request in flight.

pub mod body;
pub mod error;
pub mod headers;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::affinity::NodeSet;
use crate::config::Config;
use crate::upstream::Pool;
use body::{ProxyBody, Reclaimable, Relay};
use error::ProxyError;
use headers::ClientSide;

/// The configuration in force and everything built from it.
#[derive(Debug)]
pub struct Generation {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Nodes, clients, health and balancer.
    pub pool: Arc<Pool>,
}

/// What a connection task knows about its client.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// Client address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The shared proxy handle.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Swapped whole on reload; read once per request (an `Arc` clone, no lock).
    current: ArcSwap<Generation>,
}

impl Proxy {
    /// A proxy for `config`.
    pub fn new(config: Config) -> Proxy {
        let pool = Arc::new(Pool::new(&config.upstream, config.health.as_ref()));
        let generation = Generation {
            config: Arc::new(config),
            pool,
        };
        Proxy {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(generation),
            }),
        }
    }

    /// The generation in force.
    pub fn current(&self) -> Arc<Generation> {
        self.shared.current.load_full()
    }

    /// Handles one request; never fails (errors become responses).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let generation = self.current();
        let request = request.map(|b| b.boxed_like());
        match proxy(&generation, request, connection).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }
}

/// Boxes a hyper body as the proxy body type.
trait BoxedLike {
    fn boxed_like(self) -> ProxyBody;
}

impl BoxedLike for Incoming {
    fn boxed_like(self) -> ProxyBody {
        self.map_err(body::BodyError::from).boxed()
    }
}

async fn proxy(
    generation: &Generation,
    request: Request<ProxyBody>,
    connection: ConnectionInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let config = &generation.config;
    let (mut parts, body) = request.into_parts();
    if parts.method == Method::CONNECT {
        return Err(ProxyError::BadTarget);
    }
    let host = headers::request_host(&parts.headers, parts.uri.authority().map(|a| a.as_str()))?;
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(http::header::HOST, host.clone());
    let client = ClientSide {
        peer: connection.peer.ip(),
        trusted: config
            .forwarding
            .trusted_proxies
            .iter()
            .any(|c| c.contains(connection.peer.ip())),
        tls: connection.tls,
    };
    headers::set_forwarding(
        &mut parts.headers,
        client,
        &host,
        config.forwarding.websphere_private_headers,
    );
    let body = Relay::new(body, config.limits.body_idle_timeout, None).boxed();
    forward(generation, &parts, generation.pool.healthy(), body).await
}

/// Sends the request to a node in `allowed`; a connect failure (nothing sent) is retried once elsewhere.
async fn forward(
    generation: &Generation,
    parts: &http::request::Parts,
    mut allowed: NodeSet,
    mut body: ProxyBody,
) -> Result<Response<ProxyBody>, ProxyError> {
    let limits = &generation.config.limits;
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut retried = false;
    loop {
        let node = generation
            .pool
            .pick(allowed)
            .ok_or(ProxyError::NoHealthyNode)?
            .clone();
        let (sent_body, reclaim) = Reclaimable::new(body);
        let mut upstream = Request::new(sent_body.boxed());
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = node.uri_for(path_and_query);
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.headers_mut() = parts.headers.clone();
        let guard = node.start_request();
        let outcome = tokio::time::timeout(
            limits.response_header_timeout,
            node.client.request(upstream),
        )
        .await;
        match outcome {
            Ok(Ok(response)) => {
                let (mut head, upstream_body) = response.into_parts();
                headers::strip_hop_by_hop(&mut head.headers);
                let relayed = Relay::new(
                    upstream_body.map_err(body::BodyError::from),
                    limits.body_idle_timeout,
                    Some(guard),
                );
                return Ok(Response::from_parts(head, relayed.boxed()));
            }
            Ok(Err(source)) if source.is_connect() => {
                generation
                    .pool
                    .record_health(&node, false, "connect failure");
                match reclaim.take() {
                    Some(unsent) if !retried => {
                        tracing::debug!(node = %node.spec.name, "connect failed; retrying on another node");
                        retried = true;
                        allowed = allowed.without(node.id);
                        body = unsent;
                    }
                    _ => {
                        return Err(ProxyError::Connect {
                            node: node.spec.name.clone(),
                            source,
                        })
                    }
                }
            }
            Ok(Err(source)) => {
                return Err(ProxyError::Upstream {
                    node: node.spec.name.clone(),
                    source,
                })
            }
            Err(_elapsed) => {
                generation
                    .pool
                    .record_health(&node, false, "response timeout");
                return Err(ProxyError::UpstreamTimeout {
                    node: node.spec.name.clone(),
                    timeout: limits.response_header_timeout,
                });
            }
        }
    }
}
