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

use crate::admin::metrics::{Metrics, RefreshTrigger, ReplayOutcome};
use crate::affinity::{
    self, snapshot, unix_now, AffinityError, Fingerprint, FingerprintKey, NodeId, NodeSet, Table,
};
use crate::config::Config;
use crate::oauth::{self, CandidateClass, CredentialKind, EndpointRole, KeyEvent, Specificity};
use crate::refresh::{stale, Refresher, Strategy};
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
    /// Single-flight refreshes per node; a mutex-guarded map touched only when a refresh is needed.
    refresher: Arc<Refresher>,
    /// Counters and histograms; relaxed atomics in fixed arrays: per-request path, lock-free.
    metrics: Metrics,
    /// Health probers of the current pool, replaced on reload (dropping a `JoinSet` aborts its tasks).
    /// Locked only by start-up and reloads.
    probers: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Announces each applied reload's version (the server rebinds listeners on it).
    reload_events: tokio::sync::watch::Sender<u64>,
    /// Config version (1 at start, +1 per applied reload) and the last reload's result; reloads only.
    reloads: std::sync::Mutex<ReloadStatus>,
}

/// What `/status` reports about reloads.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// 1 for the config loaded at start, +1 per applied reload.
    pub version: u64,
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (the old config kept serving).
    pub failed: u64,
    /// The last refused reload's errors (keys and values; never secrets).
    pub last_error: Option<String>,
}

/// What a reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The new config version.
    pub version: u64,
    /// Nodes added, by name.
    pub nodes_added: Vec<String>,
    /// Nodes removed, by name (their learned ownership is gone).
    pub nodes_removed: Vec<String>,
    /// Listeners were added, removed or moved to another address (the server rebinds them).
    pub listeners_changed: bool,
}

impl Proxy {
    /// A proxy for `config`. With a snapshot configured, loads (or creates) the fingerprint key beside it and
    /// restores the learned table, so flows in progress survive a restart.
    pub fn new(config: Config) -> Result<Proxy, AffinityError> {
        let pool = Arc::new(Pool::new(&config.upstream, config.health.as_ref()));
        let max_entries = config.affinity.max_entries.get();
        let (table, key) = match &config.affinity.snapshot_path {
            Some(path) => {
                let (names, fsync) = (node_names(&pool), config.affinity.journal_fsync);
                let (table, key, report) =
                    affinity::open_persistent(path, max_entries, &names, fsync, unix_now())?;
                tracing::info!(path = %path.display(), ?report, "learned table restored");
                (table, key)
            }
            None => (Table::new(max_entries), FingerprintKey::generate()),
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
                refresher: Arc::new(Refresher::new()),
                metrics: Metrics::new(),
                reload_events: tokio::sync::watch::channel(1).0,
                probers: std::sync::Mutex::new(tokio::task::JoinSet::new()),
                reloads: std::sync::Mutex::new(ReloadStatus {
                    version: 1,
                    ..ReloadStatus::default()
                }),
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

    /// Applies a new, validated config: swaps the generation atomically. Nodes keep their ids (and, when
    /// unchanged, their connections and health) by name; a removed node's entries leave the table. Requests
    /// in flight finish under the generation they started with.
    pub fn reload(&self, config: Config) -> ReloadReport {
        let old = self.current();
        let pool = Arc::new(Pool::build(
            &config.upstream,
            config.health.as_ref(),
            Some(&old.pool),
        ));
        let nodes_removed: Vec<String> = old
            .pool
            .nodes()
            .iter()
            .filter(|n| pool.by_name(&n.spec.name).is_none())
            .map(|n| {
                let dropped = self.shared.table.remove_node(n.id);
                tracing::info!(node = %n.spec.name, dropped, "node removed; its learned ownership is gone");
                n.spec.name.clone()
            })
            .collect();
        self.shared.table.set_node_names(&node_names(&pool));
        let nodes_added = pool
            .nodes()
            .iter()
            .filter(|n| old.pool.by_name(&n.spec.name).is_none())
            .map(|n| n.spec.name.clone())
            .collect();
        let addresses = |c: &Config| {
            c.listeners
                .iter()
                .map(|l| (l.name.clone(), l.address))
                .collect::<Vec<_>>()
        };
        let listeners_changed = addresses(&config) != addresses(&old.config);
        let generation = Arc::new(Generation {
            config: Arc::new(config),
            pool,
        });
        self.shared.current.store(generation.clone());
        self.restart_probers(&generation);
        self.shared.metrics.observe_reload(true);
        let mut status = self
            .shared
            .reloads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        status.version += 1;
        status.applied += 1;
        self.shared.reload_events.send_replace(status.version);
        ReloadReport {
            version: status.version,
            nodes_added,
            nodes_removed,
            listeners_changed,
        }
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The Prometheus exposition of every metric, node names resolved from the generation in force.
    pub fn render_metrics(&self) -> String {
        let generation = self.current();
        let pool = &generation.pool;
        let keys = self.keys_owned_by_node();
        let nodes = pool
            .nodes()
            .iter()
            .map(|n| crate::admin::metrics::NodeView {
                id: n.id,
                name: &n.spec.name,
                healthy: pool.checked_healthy().contains(n.id),
                draining: pool.draining().contains(n.id),
                inflight: n.inflight(),
                owned_keys: keys[n.id.index()],
            })
            .collect();
        self.shared
            .metrics
            .render(&crate::admin::metrics::MetricsView {
                nodes,
                table: self.shared.table.stats(),
                table_by_kind: self.shared.table.len_by_kind(),
            })
    }

    /// Consumer keys and client ids each node is known to hold (one pass over the table: admin use only).
    fn keys_owned_by_node(&self) -> [usize; affinity::MAX_NODES] {
        let mut counts = [0usize; affinity::MAX_NODES];
        for (_, entry) in self.shared.table.entries() {
            if entry.kind().specificity() == Specificity::Key {
                for id in entry.owners().iter() {
                    counts[id.index()] += 1;
                }
            }
        }
        counts
    }

    /// The state an operator watches, as JSON: nodes, table, counters, config version. No credential.
    pub fn status_json(&self) -> serde_json::Value {
        let generation = self.current();
        let pool = &generation.pool;
        let keys = self.keys_owned_by_node();
        let nodes: Vec<serde_json::Value> = pool
            .nodes()
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.spec.name,
                    "url": format!("{}://{}", n.spec.scheme, n.spec.authority),
                    "healthy": pool.checked_healthy().contains(n.id),
                    "draining": pool.draining().contains(n.id),
                    "inflight": n.inflight(),
                    "owned_keys": keys[n.id.index()],
                })
            })
            .collect();
        let by_kind: serde_json::Map<String, serde_json::Value> = self
            .shared
            .table
            .len_by_kind()
            .iter()
            .map(|(k, n)| (k.as_str().to_owned(), serde_json::json!(n)))
            .collect();
        let stats = self.shared.table.stats();
        serde_json::json!({
            "nodes": nodes,
            "table": {
                "entries": stats.len,
                "max_entries": stats.max_entries,
                "by_kind": by_kind,
                "inserts": stats.inserts,
                "evictions": stats.evictions,
                "expiries": stats.expiries,
            },
            "counters": self.shared.metrics.counters_json(),
            "config": self.reload_status(),
        })
    }

    /// Whether the proxy is ready: every node has had its first health check (or checks are off).
    pub fn ready(&self) -> bool {
        let generation = self.current();
        generation.config.health.is_none()
            || generation.pool.probed().is_superset(generation.pool.all())
    }

    /// Refreshes the node called `name` now (admin request); `None` when there is no such node.
    pub async fn refresh_node(&self, name: &str) -> Option<bool> {
        let generation = self.current();
        let node = generation.pool.by_name(name)?.clone();
        Some(
            self.refresh_and_own(&generation, &node, RefreshTrigger::Admin)
                .await,
        )
    }

    /// What the table knows of a credential, by fingerprint: kind, owners (names), expiry. Never the value.
    pub fn lookup(&self, credential: &str) -> Option<serde_json::Value> {
        let entry = self
            .shared
            .table
            .lookup(self.fingerprint(credential), unix_now())?;
        let generation = self.current();
        let owners: Vec<&str> = entry
            .owners()
            .iter()
            .filter_map(|id| generation.pool.node(id).map(|n| n.spec.name.as_str()))
            .collect();
        Some(serde_json::json!({
            "kind": entry.kind().as_str(),
            "owners": owners,
            "expires_at": entry.expires_at(),
        }))
    }

    /// Applied reloads, by config version, as they happen.
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.reload_events.subscribe()
    }

    /// Records a refused reload (the old config keeps serving).
    pub fn reload_failed(&self, error: &str) {
        self.shared.metrics.observe_reload(false);
        let mut status = self
            .shared
            .reloads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        status.failed += 1;
        status.last_error = Some(error.to_owned());
    }

    /// Reload counters and the config version.
    pub fn reload_status(&self) -> ReloadStatus {
        self.shared
            .reloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn restart_probers(&self, generation: &Generation) {
        let set = match &generation.config.health {
            Some(h) => crate::upstream::health::spawn_probers(&generation.pool, h),
            None => tokio::task::JoinSet::new(),
        };
        *self
            .shared
            .probers
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// Starts the background work: health probes, the expiry sweeper, refresh triggers and periodic
    /// snapshots. Dropping the returned set stops them (the probers stop when the proxy is dropped).
    pub fn spawn_background(&self) -> tokio::task::JoinSet<()> {
        let generation = self.current();
        self.restart_probers(&generation);
        let mut set = tokio::task::JoinSet::new();
        if generation.config.refresh.enabled() {
            // A node that comes back up may have restarted and lost its registry.
            let proxy = self.clone();
            let mut ups = generation.pool.subscribe_up();
            set.spawn(async move {
                while let Ok(id) = ups.recv().await {
                    let generation = proxy.current();
                    if let Some(node) = generation.pool.node(id).cloned() {
                        proxy
                            .refresh_and_own(&generation, &node, RefreshTrigger::NodeUp)
                            .await;
                    }
                }
            });
        }
        if let Some(interval) = generation
            .config
            .refresh
            .interval
            .filter(|_| generation.config.refresh.enabled())
        {
            let proxy = self.clone();
            set.spawn(async move {
                let mut tick = periodic(interval);
                loop {
                    tick.tick().await;
                    let generation = proxy.current();
                    for node in generation.pool.nodes() {
                        if generation.pool.healthy().contains(node.id) {
                            proxy
                                .refresh_and_own(&generation, node, RefreshTrigger::Timer)
                                .await;
                        }
                    }
                }
            });
        }
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
                let mut tick = periodic(interval);
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
        // `generation` is an `Arc` so background work (fan-out, refreshes) can keep it.
        match self.proxy(&generation, request, connection).await {
            Ok(response) => response,
            Err(e) => {
                if matches!(e, ProxyError::BodyTooLarge { .. }) {
                    self.shared.metrics.observe_body_too_large();
                }
                self.shared.metrics.observe_response(None, e.status());
                e.into_response()
            }
        }
    }

    async fn proxy(
        &self,
        generation: &Arc<Generation>,
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
        // A request with no body (most GETs) needs no idle timer.
        let mut body = if http_body::Body::is_end_stream(&body) {
            body
        } else {
            Relay::new(body, config.limits.body_idle_timeout, None).boxed()
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
        // A request can be replayed only if its whole body is in hand.
        let replayable = buffered.clone().or_else(|| empty_body.then(Bytes::new));
        let classified = if routing.token_aware || routing.session_affinity {
            self.classify(generation, &parts, buffered.as_deref())
        } else {
            Classified {
                route: route::decide(&[], generation.pool.healthy()),
                key: None,
            }
        };
        let route = classified.route;
        self.shared.metrics.observe_route(route.reason);
        if route.reason == RouteReason::OwnerDown {
            tracing::debug!(owners = ?route.owners, "every owner of the credential is down; using a healthy node");
        }
        let allowed = self.apply_key_strategy(generation, &route).await;

        let started = std::time::Instant::now();
        let (node, guard, response) = forward(generation, &parts, allowed, body).await?;
        self.shared
            .metrics
            .observe_upstream_latency(node.id, started.elapsed());
        let (node, guard, response) = match (&replayable, config.repair.enabled) {
            (Some(replay), true) => {
                self.repair(
                    generation,
                    &parts,
                    &classified,
                    replay,
                    node,
                    guard,
                    response,
                )
                .await?
            }
            _ => (node, guard, Relayed::Fresh(response)),
        };
        self.relay_and_learn(generation, &parts, role, node, guard, response)
            .await
    }

    /// Applies the consumer-key strategy (BRIEF 2.3) and returns the nodes the request may go to.
    async fn apply_key_strategy(&self, generation: &Arc<Generation>, route: &Route) -> NodeSet {
        let settings = &generation.config.refresh;
        let Some((fp, kind)) = route.credential else {
            return route.allowed;
        };
        if kind.specificity() != Specificity::Key || !settings.enabled() {
            return route.allowed;
        }
        let pool = &generation.pool;
        let healthy = pool.healthy();
        let owners = route.owners.unwrap_or(NodeSet::EMPTY);
        let missing = healthy.difference(owners);
        if missing.is_empty() {
            return route.allowed;
        }
        let owner_up = !owners.intersection(healthy).is_empty();
        match settings.strategy {
            Strategy::Pin if owner_up => route.allowed,
            Strategy::PinRefresh if owner_up => {
                for id in missing.iter() {
                    if let Some(node) = pool.node(id).cloned() {
                        if !self.shared.refresher.in_flight(id)
                            && self.shared.refresher.may_retry(id, settings.backoff)
                        {
                            let proxy = self.clone();
                            let generation = generation.clone();
                            tokio::spawn(async move {
                                proxy
                                    .refresh_and_own(&generation, &node, RefreshTrigger::Route)
                                    .await;
                            });
                        }
                    }
                }
                route.allowed
            }
            // `refresh`, or no owner is up: choose by policy; a chosen node that lacks the key is refreshed first.
            _ => {
                let Some(node) = pool.pick(healthy).cloned() else {
                    return route.allowed;
                };
                if owners.contains(node.id) {
                    return NodeSet::single(node.id);
                }
                if self.shared.refresher.refresh(&node, settings).await {
                    self.shared.table.add_owner(fp, node.id);
                    NodeSet::single(node.id)
                } else {
                    route.allowed
                }
            }
        }
    }

    /// Refreshes `node` and, on success, records that it now holds every known consumer key and client id
    /// (a refresh reloads the node's whole registry from the shared repository).
    async fn refresh_and_own(
        &self,
        generation: &Generation,
        node: &Arc<Node>,
        trigger: RefreshTrigger,
    ) -> bool {
        let ok = self
            .shared
            .refresher
            .refresh(node, &generation.config.refresh)
            .await;
        self.shared.metrics.observe_refresh(trigger, ok);
        if ok {
            let keys = self.shared.table.add_owner_to_kinds(
                node.id,
                &[CredentialKind::ConsumerKey, CredentialKind::ClientId],
            );
            tracing::info!(node = %node.spec.name, trigger = trigger.as_str(), keys, "node refreshed");
        }
        ok
    }

    /// Fans a refresh out to every other healthy node after a key was registered or approved on `issuer`.
    fn fan_out(&self, generation: &Arc<Generation>, fp: Fingerprint, issuer: NodeId) {
        let settings = generation.config.refresh.clone();
        if !settings.enabled() {
            return;
        }
        let pool = &generation.pool;
        let targets: Vec<Arc<Node>> = pool
            .healthy()
            .without(issuer)
            .iter()
            .filter_map(|id| pool.node(id).cloned())
            .collect();
        let proxy = self.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for node in targets {
                let proxy = proxy.clone();
                let settings = settings.clone();
                set.spawn(async move {
                    let shared = &proxy.shared;
                    let mut backoff = settings.backoff;
                    for attempt in 0..=settings.retries {
                        let ok = shared.refresher.refresh(&node, &settings).await;
                        shared.metrics.observe_refresh(RefreshTrigger::KeyEvent, ok);
                        if ok {
                            shared.table.add_owner(fp, node.id);
                            tracing::debug!(node = %node.spec.name, "fan-out refresh done");
                            return;
                        }
                        if attempt < settings.retries {
                            tokio::time::sleep(backoff).await;
                            backoff *= 2;
                        }
                    }
                    tracing::warn!(node = %node.spec.name, "fan-out refresh gave up");
                });
            }
            let all = async { while set.join_next().await.is_some() {} };
            if tokio::time::timeout(settings.fanout_deadline, all)
                .await
                .is_err()
            {
                tracing::warn!(deadline = ?settings.fanout_deadline, "fan-out refresh deadline passed");
            }
        });
    }

    /// After a stale-credential answer, replays the request once on a node that can answer it (BRIEF 2.5).
    #[allow(clippy::too_many_arguments)]
    async fn repair(
        &self,
        generation: &Arc<Generation>,
        parts: &http::request::Parts,
        classified: &Classified,
        replay: &Bytes,
        node: Arc<Node>,
        guard: InflightGuard,
        response: Response<Incoming>,
    ) -> Result<(Arc<Node>, InflightGuard, Relayed), ProxyError> {
        let status = response.status();
        if status != http::StatusCode::UNAUTHORIZED && status != http::StatusCode::FORBIDDEN {
            return Ok((node, guard, Relayed::Fresh(response)));
        }
        let (head, body) = response.into_parts();
        let body = Relay::new(
            body.map_err(BodyError::from),
            generation.config.limits.body_idle_timeout,
            None,
        )
        .boxed();
        let (body_head, rest) = match body::read_prefix(body, stale::SCAN_BYTES).await {
            Ok(Prefix::Complete(bytes)) => (
                bytes.clone(),
                Full::new(bytes).map_err(|never| match never {}).boxed(),
            ),
            Ok(Prefix::TooLarge { head: prefix, rest }) => {
                (prefix.clone(), Prefixed::new(prefix, rest).boxed())
            }
            Err(source) => {
                return Err(ProxyError::UpstreamBody {
                    node: node.spec.name.clone(),
                    source,
                })
            }
        };
        let problems = &generation.config.repair.stale_problems;
        let Some(problem) = stale::stale_problem(status, &head.headers, &body_head, problems)
        else {
            return Ok((node, guard, Relayed::Read(Response::from_parts(head, rest))));
        };
        let pool = &generation.pool;
        let route = &classified.route;
        let key_missing = stale::KEY_PROBLEMS.contains(&problem);
        let known = route.credential;
        if known.is_some_and(|(_, k)| k.specificity() == Specificity::Token) && !key_missing {
            // The token's issuer itself no longer holds it (it restarted): no other node can answer.
            self.shared
                .metrics
                .observe_replay(ReplayOutcome::NotReplayable);
            return Ok((node, guard, Relayed::Read(Response::from_parts(head, rest))));
        }
        // The consumer key the stale node lacks: the one that routed, or one the table does not know yet.
        let key_fp = match known {
            Some((fp, kind)) if kind.specificity() == Specificity::Key => Some(fp),
            _ => classified.key,
        }
        .filter(|_| key_missing);
        if let Some(fp) = key_fp {
            self.shared.table.remove_owner(fp, node.id);
            let proxy = self.clone();
            let generation = generation.clone();
            let stale_node = node.clone();
            tokio::spawn(async move {
                if proxy
                    .refresh_and_own(&generation, &stale_node, RefreshTrigger::StaleAnswer)
                    .await
                {
                    proxy.shared.table.add_owner(fp, stale_node.id);
                }
            });
        }
        tracing::info!(node = %node.spec.name, %status, problem, "stale-credential answer; replaying on another node");
        let mut tried = NodeSet::single(node.id);
        let mut last = (node, guard, Relayed::Read(Response::from_parts(head, rest)));
        // What routed is known: one replay on a node that holds it (refreshed first if none is known). Nothing
        // known (the table was lost): each other healthy node at most once, until one answers.
        let attempts = if known.is_some() {
            1
        } else {
            pool.all().len().saturating_sub(1)
        };
        for _ in 0..attempts {
            let candidates = pool.healthy().difference(tried);
            let owners = key_fp
                .and_then(|fp| self.shared.table.lookup(fp, unix_now()))
                .map(|e| e.owners().intersection(candidates))
                .unwrap_or(NodeSet::EMPTY);
            let target = match pool
                .pick(if owners.is_empty() {
                    candidates
                } else {
                    owners
                })
                .cloned()
            {
                Some(target) => target,
                None => break,
            };
            if key_missing && !owners.contains(target.id) {
                self.shared
                    .refresher
                    .refresh(&target, &generation.config.refresh)
                    .await;
            }
            tried = tried.with(target.id);
            let body = Full::new(replay.clone())
                .map_err(|never| match never {})
                .boxed();
            let (node, guard, response) =
                forward(generation, parts, NodeSet::single(target.id), body).await?;
            let refused = matches!(
                response.status(),
                http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN
            );
            last = (node, guard, Relayed::Fresh(response));
            if !refused {
                if let (Some(fp), true) = (key_fp, last.2.is_success()) {
                    // The node answered a request carrying the key: it holds it.
                    let ttl = generation
                        .config
                        .routing
                        .rules
                        .ttl(CredentialKind::ConsumerKey);
                    self.shared.table.learn(
                        fp,
                        CredentialKind::ConsumerKey,
                        target.id,
                        ttl,
                        unix_now(),
                    );
                }
                tracing::info!(node = %last.0.spec.name, "replay repaired a stale answer");
                self.shared.metrics.observe_replay(ReplayOutcome::Repaired);
                return Ok(last);
            }
        }
        self.shared.metrics.observe_replay(ReplayOutcome::Failed);
        Ok(last)
    }

    /// Looks up every credential the request carries and decides where it may go.
    fn classify(
        &self,
        generation: &Generation,
        parts: &http::request::Parts,
        body: Option<&[u8]>,
    ) -> Classified {
        let routing = &generation.config.routing;
        let credentials = oauth::extract_request(parts, body, &routing.rules);
        let now = unix_now();
        // Each value is fingerprinted once: for the lookup, and (a consumer key) for repair.
        let mut key = None;
        let mut hits = Vec::with_capacity(credentials.candidates.len());
        for c in &credentials.candidates {
            let wanted = if c.class == CandidateClass::SessionCookie {
                routing.session_affinity
            } else {
                routing.token_aware
            };
            if !wanted {
                continue;
            }
            let fp = self.fingerprint(c.value.expose());
            if key.is_none()
                && matches!(
                    c.class,
                    CandidateClass::ConsumerKey | CandidateClass::ClientId
                )
            {
                key = Some(fp);
            }
            if let Some(entry) = self.shared.table.lookup(fp, now) {
                if c.class.accepts(entry.kind()) {
                    hits.push((fp, entry));
                }
            }
        }
        Classified {
            route: route::decide(&hits, generation.pool.healthy()),
            key,
        }
    }

    /// Learns what the node's response issued (before a byte of it reaches the client), then relays it.
    async fn relay_and_learn(
        &self,
        generation: &Arc<Generation>,
        request: &http::request::Parts,
        role: Option<EndpointRole>,
        node: Arc<Node>,
        guard: InflightGuard,
        response: Relayed,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let routing = &config.routing;
        let rules = &routing.rules;
        let (mut head, mut body) = match response {
            Relayed::Fresh(response) => {
                let (head, upstream_body) = response.into_parts();
                let body = Relay::new(
                    upstream_body.map_err(BodyError::from),
                    config.limits.body_idle_timeout,
                    Some(guard),
                )
                .boxed();
                (head, body)
            }
            Relayed::Read(response) => {
                drop(guard);
                response.into_parts()
            }
        };
        headers::strip_hop_by_hop(&mut head.headers);
        self.shared
            .metrics
            .observe_response(Some(node.id), head.status);

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
                    self.shared.metrics.observe_learn_skipped();
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
            let (what, value) = match event {
                KeyEvent::Registered(v) => ("registered", v),
                KeyEvent::Approved(v) => ("approved", v),
            };
            let fp = self.fingerprint(value.expose());
            if matches!(event, KeyEvent::Approved(_)) {
                // Nodes that loaded the key before approval hold a stale provisional copy: only the approver
                // is known to hold the approved key until the others are refreshed.
                let kind = self
                    .shared
                    .table
                    .lookup(fp, now)
                    .map_or(CredentialKind::ConsumerKey, |e| e.kind());
                self.shared.table.forget(fp);
                self.shared
                    .table
                    .learn(fp, kind, node.id, rules.ttl(kind), now);
            }
            tracing::info!(node = %node.spec.name, event = what, "consumer key event");
            self.fan_out(generation, fp, node.id);
        }
        Ok(Response::from_parts(head, body))
    }
}

/// A ticker whose first tick is one `period` from now; ticks missed under load are skipped, not bunched.
fn periodic(period: std::time::Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
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

/// A request's routing decision, and the fingerprint of the consumer key it carries (known or not).
#[derive(Debug)]
struct Classified {
    route: Route,
    key: Option<Fingerprint>,
}

/// A node's response: untouched, or with its body already (partly) read by the proxy.
#[derive(Debug)]
enum Relayed {
    Fresh(Response<Incoming>),
    Read(Response<ProxyBody>),
}

impl Relayed {
    fn is_success(&self) -> bool {
        match self {
            Relayed::Fresh(r) => r.status().is_success(),
            Relayed::Read(r) => r.status().is_success(),
        }
    }
}
