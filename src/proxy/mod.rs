//! One request through the proxy: check → classify → route → forward → learn → relay.
//!
//! [`Proxy`] is the shared handle every connection task holds. The current configuration and the pool built
//! from it form a [`Generation`], swapped atomically on reload; a request reads it once and keeps it to the
//! end, so a reload never changes the rules under a request in flight. The learned table and its fingerprint
//! key live beside the generation, not in it: they outlive reloads.

pub mod body;
pub mod error;
pub mod headers;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE};
use http::{Method, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::affinity::{
    self, snapshot, unix_now, AffinityError, FingerprintKey, NodeId, NodeSet, Table,
};
use crate::config::Config;
use crate::oauth::{self, CandidateClass, EndpointRole, KeyEvent};
use crate::upstream::{InflightGuard, Node, Pool};
use body::{BodyError, Prefix, Prefixed, ProxyBody, Reclaimable, Relay};
use error::ProxyError;
use headers::ClientSide;
use route::{Route, RouteReason};

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
    /// Learned credentials. Sharded locks (dashmap), held only inside a synchronous call: per-request path.
    table: Table,
    /// Keys the fingerprints; fixed for the life of the table (persisted beside the snapshot).
    key: FingerprintKey,
}

impl Proxy {
    /// A proxy for `config`. With a snapshot configured, loads (or creates) the fingerprint key beside it and
    /// restores the learned table, so flows in progress survive a restart.
    pub fn new(config: Config) -> Result<Proxy, AffinityError> {
        let pool = Arc::new(Pool::new(&config.upstream, config.health.as_ref()));
        let table = Table::new(config.affinity.max_entries.get());
        let key = match &config.affinity.snapshot_path {
            Some(path) => {
                let key = snapshot::load_key(path)?;
                let report = snapshot::load(path, &key, &table, &node_names(&pool), unix_now())?;
                tracing::info!(path = %path.display(), ?report, "learned table restored");
                key
            }
            None => FingerprintKey::generate(),
        };
        let generation = Generation {
            config: Arc::new(config),
            pool,
        };
        Ok(Proxy {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(generation),
                table,
                key,
            }),
        })
    }

    /// The generation in force.
    pub fn current(&self) -> Arc<Generation> {
        self.shared.current.load_full()
    }

    /// The learned table.
    pub fn table(&self) -> &Table {
        &self.shared.table
    }

    /// The fingerprint of a credential value under this proxy's key.
    pub fn fingerprint(&self, value: &str) -> affinity::Fingerprint {
        self.shared.key.fingerprint(value)
    }

    /// Writes the snapshot, when one is configured.
    pub fn save_snapshot(&self) -> Result<Option<snapshot::SaveReport>, AffinityError> {
        let generation = self.current();
        let Some(path) = &generation.config.affinity.snapshot_path else {
            return Ok(None);
        };
        let names = node_names(&generation.pool);
        snapshot::save(
            &self.shared.table,
            &self.shared.key,
            path,
            &names,
            unix_now(),
        )
        .map(Some)
    }

    /// Starts the background work: health probes, the expiry sweeper and periodic snapshots. Dropping the
    /// returned set stops them.
    pub fn spawn_background(&self) -> tokio::task::JoinSet<()> {
        let generation = self.current();
        let mut set = match &generation.config.health {
            Some(h) => crate::upstream::health::spawn_probers(&generation.pool, h),
            None => tokio::task::JoinSet::new(),
        };
        let affinity = generation.config.affinity.clone();
        let table = self.shared.table.clone();
        set.spawn(async move {
            let mut tick = tokio::time::interval(affinity.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let expired = table.sweep(unix_now());
                if expired > 0 {
                    tracing::debug!(expired, "swept expired credentials");
                }
            }
        });
        if let Some(interval) = generation
            .config
            .affinity
            .snapshot_path
            .as_ref()
            .map(|_| affinity.snapshot_interval)
        {
            let proxy = self.clone();
            set.spawn(async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let proxy = proxy.clone();
                    match tokio::task::spawn_blocking(move || proxy.save_snapshot()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %error::error_chain(&e), "snapshot failed")
                        }
                        Err(e) => tracing::warn!(error = %e, "snapshot task failed"),
                    }
                }
            });
        }
        set
    }

    /// Handles one request; never fails (errors become responses).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let generation = self.current();
        let request = request.map(|b| b.map_err(BodyError::from).boxed());
        match self.proxy(&generation, request, connection).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn proxy(
        &self,
        generation: &Generation,
        request: Request<ProxyBody>,
        connection: ConnectionInfo,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::CONNECT {
            return Err(ProxyError::BadTarget);
        }
        let host =
            headers::request_host(&parts.headers, parts.uri.authority().map(|a| a.as_str()))?;
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
        let mut body = Relay::new(body, config.limits.body_idle_timeout, None).boxed();

        let routing = &config.routing;
        let rules = &routing.rules;
        let role = routing
            .token_aware
            .then(|| rules.role_for(parts.uri.path()))
            .flatten();
        let mut buffered = None;
        if routing.token_aware
            && rules.wants_request_body(
                &parts.method,
                parts.uri.path(),
                parts.headers.get(CONTENT_TYPE),
            )
        {
            // An OAuth endpoint's body must be read whole (413 over the cap); any other form body is read only
            // if it is small, and otherwise streamed on untouched.
            match read_request_body(&parts, body, rules.max_body(), role.is_some()).await? {
                Prefix::Complete(bytes) => {
                    body = Full::new(bytes.clone())
                        .map_err(|never| match never {})
                        .boxed();
                    buffered = Some(bytes);
                }
                Prefix::TooLarge { head, rest } => body = Prefixed::new(head, rest).boxed(),
            }
        }
        let route = if routing.token_aware || routing.session_affinity {
            self.route(generation, &parts, buffered.as_deref())
        } else {
            route::decide(&[], generation.pool.healthy())
        };
        if route.reason == RouteReason::OwnerDown {
            tracing::debug!(owners = ?route.owners, "every owner of the credential is down; using a healthy node");
        }

        let (node, guard, response) = forward(generation, &parts, route.allowed, body).await?;
        self.relay_and_learn(generation, &parts, role, node, guard, response)
            .await
    }

    /// Looks up every credential the request carries and decides where it may go.
    fn route(
        &self,
        generation: &Generation,
        parts: &http::request::Parts,
        body: Option<&[u8]>,
    ) -> Route {
        let routing = &generation.config.routing;
        let credentials = oauth::extract_request(parts, body, &routing.rules);
        let now = unix_now();
        let hits: Vec<_> = credentials
            .candidates
            .iter()
            .filter(|c| {
                if c.class == CandidateClass::SessionCookie {
                    routing.session_affinity
                } else {
                    routing.token_aware
                }
            })
            .filter_map(|c| {
                let entry = self
                    .shared
                    .table
                    .lookup(self.fingerprint(c.value.expose()), now)?;
                c.class.accepts(entry.kind()).then_some(entry)
            })
            .collect();
        route::decide(&hits, generation.pool.healthy())
    }

    /// Learns what the node's response issued (before a byte of it reaches the client), then relays it.
    async fn relay_and_learn(
        &self,
        generation: &Generation,
        request: &http::request::Parts,
        role: Option<EndpointRole>,
        node: Arc<Node>,
        guard: InflightGuard,
        response: Response<Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let routing = &config.routing;
        let rules = &routing.rules;
        let (mut head, upstream_body) = response.into_parts();
        headers::strip_hop_by_hop(&mut head.headers);
        let mut body = Relay::new(
            upstream_body.map_err(BodyError::from),
            config.limits.body_idle_timeout,
            Some(guard),
        )
        .boxed();

        let sets_cookie = routing.session_affinity && head.headers.contains_key(SET_COOKIE);
        if role.is_none() && !sets_cookie {
            return Ok(Response::from_parts(head, body));
        }
        let mut learned_body = None;
        if role.is_some()
            && rules.wants_response_body(role, head.status, head.headers.get(CONTENT_TYPE))
        {
            match body::read_prefix(body, rules.max_body()).await {
                Ok(Prefix::Complete(bytes)) => {
                    learned_body = Some(bytes.clone());
                    body = Full::new(bytes).map_err(|never| match never {}).boxed();
                }
                Ok(Prefix::TooLarge { head: prefix, rest }) => {
                    tracing::debug!(node = %node.spec.name, "response too large to learn from; relayed as is");
                    body = Prefixed::new(prefix, rest).boxed();
                }
                Err(source) => {
                    return Err(ProxyError::UpstreamBody {
                        node: node.spec.name.clone(),
                        source,
                    })
                }
            }
        }
        let learned = oauth::learn_from_response(
            role,
            &request.method,
            request.uri.query(),
            head.status,
            &head.headers,
            learned_body.as_deref(),
            rules,
        );
        let now = unix_now();
        for (kind, value) in &learned.credentials {
            let wanted = if *kind == oauth::CredentialKind::SessionCookie {
                routing.session_affinity
            } else {
                routing.token_aware
            };
            if wanted {
                self.shared.table.learn(
                    self.fingerprint(value.expose()),
                    *kind,
                    node.id,
                    rules.ttl(*kind),
                    now,
                );
            }
        }
        if let Some(event) = &learned.key_event {
            let what = match event {
                KeyEvent::Registered(_) => "registered",
                KeyEvent::Approved(_) => "approved",
            };
            tracing::info!(node = %node.spec.name, event = what, "consumer key event");
        }
        Ok(Response::from_parts(head, body))
    }
}

/// Node ids and names, for snapshots.
fn node_names(pool: &Pool) -> Vec<(NodeId, String)> {
    pool.nodes()
        .iter()
        .map(|n| (n.id, n.spec.name.clone()))
        .collect()
}

/// Buffers a form body to read its credentials, under the cap: over it, an OAuth endpoint's request gets 413
/// (`strict`), any other is handed back as its head and unread rest.
async fn read_request_body(
    parts: &http::request::Parts,
    body: ProxyBody,
    limit: usize,
    strict: bool,
) -> Result<Prefix<ProxyBody>, ProxyError> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        if strict {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        return Ok(Prefix::TooLarge {
            head: Bytes::new(),
            rest: body,
        });
    }
    match body::read_prefix(body, limit)
        .await
        .map_err(ProxyError::ClientBody)?
    {
        Prefix::TooLarge { .. } if strict => Err(ProxyError::BodyTooLarge { limit }),
        prefix => Ok(prefix),
    }
}

/// Sends the request to a node in `allowed`; a connect failure (nothing sent) is retried once elsewhere.
async fn forward(
    generation: &Generation,
    parts: &http::request::Parts,
    mut allowed: NodeSet,
    mut body: ProxyBody,
) -> Result<(Arc<Node>, InflightGuard, Response<Incoming>), ProxyError> {
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
            Ok(Ok(response)) => return Ok((node, guard, response)),
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
