//! One request through the proxy, stage by stage; each stage has its own file:
//!
//! 1. [`edge`] and [`headers`]: check the request head (target, Host, framing, limits) and rewrite its
//!    hop-by-hop and forwarding headers;
//! 2. [`classify`]: read the credentials it carries, look them up, and decide where it may go ([`route`] is the
//!    pure decision; [`classify::plan_key_route`] the consumer-key strategy);
//! 3. [`forward`]: send it to a node (one retry elsewhere when the connect failed);
//! 4. [`repair`]: after a stale-credential answer, replay it once on a node that can answer;
//! 5. [`learn`]: learn what the node's answer issued, before a byte of it is relayed;
//! 6. [`tunnel`]: or, when the node switched protocols (101) on an upgrade request, splice the two connections.
//!
//! [`error`] is the one place errors become statuses. [`generation`] holds the configuration in force and
//! swaps it on reload.
//!
//! [`Proxy`] is the shared handle every connection task holds. A request reads the [`Generation`] once and
//! keeps it to the end, so a reload never changes the rules under a request in flight. The learned table and
//! its fingerprint key live beside the generation, not in it: they outlive reloads.

mod access;
mod classify;
mod edge;
mod error;
mod forward;
mod generation;
mod headers;
mod learn;
mod repair;
mod route;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::affinity::{
    self, snapshot, unix_now, AffinityError, FingerprintKey, RedisStore, StoreError, Table,
};
use crate::config::Config;
use crate::metrics::{Metrics, RouteReason};
use crate::oauth::Specificity;
use crate::refresh::Refreshes;
use crate::transport::body::{BodyError, Prefix, ProxyBody, Relay};
use crate::upstream::balance::Basis;
use crate::upstream::Pool;
use classify::Lookups;
use error::ProxyError;
pub use generation::{Generation, NotReady, ReloadReport, ReloadStatus};
use headers::ClientSide;

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
    /// Learned credentials. Sharded locks, held only inside a synchronous call: per-request path.
    table: Table,
    /// `store = "redis"`: the table shared with other instances, this one's `table` being its local cache.
    /// Awaited on the response path (learn) and on a local miss (read-through); `None`: memory store.
    redis: Option<RedisStore>,
    /// Keys the fingerprints; fixed for the life of the table (persisted beside the snapshot).
    key: FingerprintKey,
    /// Every refresh trigger, with single flight per node; touched only when a refresh is needed.
    refreshes: Refreshes,
    /// Counters and histograms; relaxed atomics in fixed arrays: per-request path, lock-free.
    metrics: Arc<Metrics>,
    /// Reload bookkeeping and the health probers of the pool in force; reloads only.
    reloads: generation::Reloads,
    /// The task tracker and cancellation tree upgraded connections are spliced under; touched once per 101.
    tunnels: tunnel::Tunnels,
    /// Set once when shutdown begins (readiness turns 503); an atomic flag, read by `/ready` only.
    stopping: std::sync::atomic::AtomicBool,
}

impl Proxy {
    /// A proxy for `config`, whose background work (probers, refreshes) is spawned on `tasks` and stops when
    /// `cancel` is cancelled. With a snapshot configured, loads (or creates) the fingerprint key beside it and
    /// restores the learned table, so flows in progress survive a restart.
    pub fn new(
        config: Config,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Proxy, AffinityError> {
        let pool = Arc::new(Pool::new(&config.upstream, config.health.as_ref()));
        let affinity = &config.affinity;
        let max_entries = affinity.max_entries.get();
        let key = match (&affinity.fingerprint_key_file, &affinity.snapshot_path) {
            (Some(file), _) => FingerprintKey::load_or_create(file)?,
            (None, Some(path)) => snapshot::load_key(path)?,
            (None, None) => FingerprintKey::generate(),
        };
        let table = match &affinity.snapshot_path {
            Some(path) => {
                let names = generation::node_names(&pool);
                let (table, report) = affinity::open_persistent_with_key(
                    path,
                    &key,
                    max_entries,
                    &names,
                    affinity.journal_fsync,
                    unix_now(),
                )?;
                tracing::info!(path = %path.display(), ?report, "learned table restored");
                table
            }
            None => Table::new(max_entries),
        };
        let redis = match &affinity.redis {
            Some(settings) => {
                let nodes = generation::node_names(&pool)
                    .into_iter()
                    .map(|(id, name)| (name, id))
                    .collect();
                let store =
                    RedisStore::new(settings.clone(), table.clone(), key.check_value(), nodes)
                        .map_err(AffinityError::Store)?;
                Some(store)
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let refreshes = Refreshes::new(
            table.clone(),
            redis.clone(),
            metrics.clone(),
            tasks.clone(),
            cancel.clone(),
        );
        let generation = Arc::new(Generation {
            config: Arc::new(config),
            pool,
        });
        let proxy = Proxy {
            shared: Arc::new(Shared {
                current: ArcSwap::new(generation.clone()),
                table,
                redis,
                key,
                refreshes,
                metrics,
                reloads: generation::Reloads::new(tasks.clone(), cancel.clone()),
                tunnels: tunnel::Tunnels::new(tasks, cancel),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        proxy.start_probers(&generation);
        Ok(proxy)
    }

    /// The generation in force.
    pub fn current(&self) -> Arc<Generation> {
        self.shared.current.load_full()
    }

    /// The learned table.
    pub fn table(&self) -> &Table {
        &self.shared.table
    }

    /// The shared store, with `store = "redis"`.
    pub fn redis(&self) -> Option<&RedisStore> {
        self.shared.redis.as_ref()
    }

    /// Joins the shared store (with `store = "redis"`) and starts its supervisor on `tasks`. Refused when the
    /// instances already sharing it use another fingerprint key or other node ids; Redis being unreachable is
    /// not an error (the instance starts on its own table and joins when Redis answers).
    pub async fn start_store(
        &self,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        match &self.shared.redis {
            Some(store) => store.start(tasks, cancel).await,
            None => Ok(()),
        }
    }

    /// The fingerprint of a credential value under this proxy's key.
    pub fn fingerprint(&self, value: &str) -> affinity::Fingerprint {
        self.shared.key.fingerprint(value)
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Every refresh trigger (the admin API's and the background ones start here).
    pub fn refreshes(&self) -> &Refreshes {
        &self.shared.refreshes
    }

    /// Writes the snapshot, when one is configured.
    pub fn save_snapshot(&self) -> Result<Option<snapshot::SaveReport>, AffinityError> {
        let generation = self.current();
        let Some(path) = &generation.config.affinity.snapshot_path else {
            return Ok(None);
        };
        let names = generation::node_names(&generation.pool);
        snapshot::save(
            &self.shared.table,
            &self.shared.key,
            path,
            &names,
            unix_now(),
        )
        .map(Some)
    }

    /// Handles one request; never fails (errors become responses).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let generation = self.current();
        let arrived = tokio::time::Instant::now();
        // Decided for every request, logged or not: the node always sees one plain id.
        let request_id = access::request_id(request.headers());
        // The access log costs two body wrappers and a line; nothing at all when it is off.
        let line = generation.config.log.access.then(|| access::Line {
            started: arrived,
            peer: connection.peer,
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
            request_id: request_id.clone(),
            bytes_in: Arc::default(),
        });
        let request = request.map(|b| b.map_err(BodyError::from).boxed());
        let request = match &line {
            Some(line) => request.map(|b| access::Counted::new(b, line.bytes_in.clone()).boxed()),
            None => request,
        };
        let mut notes = access::Notes::default();
        let response = match self
            .proxy(&generation, request, connection, request_id, &mut notes)
            .await
        {
            Ok(response) => response,
            Err(e) => {
                if matches!(e, ProxyError::BodyTooLarge { .. }) {
                    self.shared.metrics.observe_body_too_large();
                }
                self.shared.metrics.observe_response(None, e.status());
                e.into_response()
            }
        };
        self.shared
            .metrics
            .observe_request_duration(arrived.elapsed());
        match line {
            Some(line) => {
                let status = response.status();
                response.map(|body| access::Logged::new(body, line, notes, status).boxed())
            }
            None => response,
        }
    }

    /// check → classify → route → forward → repair → learn → relay.
    async fn proxy(
        &self,
        generation: &Arc<Generation>,
        request: Request<ProxyBody>,
        connection: ConnectionInfo,
        request_id: http::HeaderValue,
        notes: &mut access::Notes,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::CONNECT {
            return Err(ProxyError::BadTarget);
        }
        let host = edge::check_request(&parts, &config.limits)?;
        let upgrade = headers::upgrade_request(
            &parts.method,
            parts.version,
            &parts.headers,
            !http_body::Body::is_end_stream(&body),
        );
        headers::strip_hop_by_hop(&mut parts.headers);
        // The client's side of an upgrade, taken only when the request may be tunnelled.
        let client_upgrade = match upgrade {
            Some(protocol) => {
                headers::set_upgrade(&mut parts.headers, protocol);
                parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
            }
            None => None,
        };
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
        headers::set_forwarding(&mut parts.headers, client, &host, &config.forwarding);
        // `insert` replaces every field of that name: the node sees exactly the id the access log prints.
        parts.headers.insert(access::X_REQUEST_ID, request_id);
        edge::check_sent(
            &parts.headers,
            !http_body::Body::is_end_stream(&body),
            &config.limits,
        )?;
        // A request with no body (most GETs) needs no idle timer.
        let mut body = if http_body::Body::is_end_stream(&body) {
            body
        } else {
            Relay::new(body, config.limits.body_idle_timeout).boxed()
        };

        let routing = &config.routing;
        let rules = &routing.rules;
        let role = routing
            .token_aware
            .then(|| rules.role_for(parts.uri.path()))
            .flatten();
        let mut buffered = None;
        let empty_body = http_body::Body::is_end_stream(&body);
        if routing.token_aware
            && rules.wants_request_body(
                &parts.method,
                parts.uri.path(),
                parts.headers.get(CONTENT_TYPE),
            )
        {
            // An OAuth endpoint's body must be read whole (413 over the cap); any other form body is read only
            // if it is small, and otherwise streamed on untouched.
            let read = forward::read_request_body(&parts, body, rules.max_body(), role.is_some());
            match Box::pin(read).await? {
                Prefix::Complete(bytes) => {
                    body = Full::new(bytes.clone())
                        .map_err(|never| match never {})
                        .boxed();
                    buffered = Some(bytes);
                }
                Prefix::TooLarge { head, rest } => {
                    body = crate::transport::body::Prefixed::new(head, rest).boxed()
                }
            }
        }
        // A request can be replayed only if its whole body is in hand.
        let replayable = buffered.clone().or_else(|| empty_body.then(Bytes::new));
        let classify =
            |lookups| self.classify(generation, &parts, role, buffered.as_deref(), lookups);
        let mut classified = if routing.token_aware || routing.session_affinity {
            classify(Lookups::ToRoute)
        } else {
            classify::Classified::by_policy(generation.pool.healthy())
        };
        if let (Some(redis), false) = (&self.shared.redis, classified.misses.is_empty()) {
            // A credential this instance does not know may have been learned by another one an instant ago:
            // one round trip reads it through, then the request is classified again.
            if Box::pin(redis.read_through(&classified.misses, unix_now())).await > 0 {
                classified = classify(Lookups::ToRoute);
            }
        }
        let route = classified.route;
        self.shared.metrics.observe_route(route.reason);
        notes.route = Some(route.reason);
        if route.reason == RouteReason::OwnerDown {
            tracing::debug!(owners = ?route.owners, "every owner of the credential is down; using a healthy node");
        }
        // The rare stages (a consumer-key strategy, a repair) are boxed where taken: inline, their states would
        // make every request's future larger, and hyper moves that future around per request (issue 12).
        let (allowed, refresh) = if route
            .credential
            .is_some_and(|(_, kind)| kind.specificity() == Specificity::Key)
        {
            Box::pin(self.apply_key_strategy(generation, &route)).await
        } else {
            (route.allowed, None)
        };
        notes.refresh = refresh;

        let started = tokio::time::Instant::now();
        // Requests routed by a credential do not take a turn of the balancing policy.
        let basis = match route.reason {
            RouteReason::Policy | RouteReason::OwnerDown => Basis::Policy,
            _ => Basis::Affinity,
        };
        let answer = forward::forward(generation, &parts, allowed, basis, body).await?;
        let upstream = started.elapsed();
        self.shared
            .metrics
            .observe_upstream_latency(answer.node.id, upstream);
        notes.upstream = Some(upstream);
        let first = answer.node.id;
        let answer = match (client_upgrade, answer) {
            (
                Some(client),
                forward::NodeAnswer {
                    node,
                    guard,
                    response: forward::Relayed::Fresh(response),
                },
            ) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                return Ok(self.tunnel(
                    node,
                    guard,
                    response,
                    client,
                    config.limits.tunnel_idle_timeout,
                ));
            }
            (_, answer) => answer,
        };
        // Only a 400, 401 or 403 can be a stale-credential answer (`repair` hands anything else back untouched).
        let may_be_stale = repair::may_be_stale(answer.response.status());
        let answer = match (&replayable, config.repair.enabled) {
            (Some(replay), true) if may_be_stale => {
                if !classified.complete {
                    // Repair reads every credential the request carries, not only the one that routed it.
                    classified = classify::Classified {
                        route,
                        ..classify(Lookups::All)
                    };
                }
                Box::pin(self.repair(generation, &parts, &classified, replay, answer)).await?
            }
            _ => answer,
        };
        notes.replayed = answer.node.id != first;
        notes.node = Some(answer.node.clone());
        self.learn_then_relay(generation, &parts, role, answer)
            .await
    }
}
