//! When a node is refreshed. Every trigger is a method of [`Refreshes`]:
//!
//! | trigger | method | waits for it? |
//! |---|---|---|
//! | a key registered or approved | [`Refreshes::fan_out`] (in `fanout.rs`) | no |
//! | routing chose a node lacking the key (`refresh` strategy) | [`Refreshes::refresh_for_key`] | yes |
//! | owners serve while the others catch up (`pin+refresh`) | [`Refreshes::refresh_in_background`] | no |
//! | a stale-credential answer | [`Refreshes::after_stale_answer`] | no |
//! | a node came back up | [`Refreshes::run_on_node_up`] | background loop |
//! | the timer | [`Refreshes::run_timer`] | background loop |
//! | an administrator | [`Refreshes::refresh_and_own`] with [`RefreshTrigger::Admin`] | yes |
//!
//! A successful refresh reloads the node's whole registry from the shared repository, so the node becomes an
//! owner of every known consumer key and client id. Background work runs on the application's task tracker
//! and stops with its cancellation token.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{RefreshSettings, Refresher};
use crate::affinity::{Fingerprint, NodeId, NodeSet, RedisStore, Table};
use crate::metrics::{Metrics, RefreshTrigger};
use crate::oauth::CredentialKind;
use crate::upstream::{Node, Pool};

/// The refresh side of the proxy: one `Clone` handle.
#[derive(Debug, Clone)]
pub struct Refreshes {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Single flight per node.
    refresher: Arc<Refresher>,
    /// Learns the new owners of keys after a successful refresh.
    table: Table,
    /// `store = "redis"`: where new owners are also recorded, and the cluster-wide refresh leases are taken.
    redis: Option<RedisStore>,
    /// `tokenroute_refreshes_total{trigger,result}`.
    metrics: Arc<Metrics>,
    /// Where background refreshes run, and what stops them.
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// What the background loops read each time they wake: the pool and refresh settings in force.
pub type CurrentPool = Arc<dyn Fn() -> (Arc<Pool>, RefreshSettings) + Send + Sync>;

impl Refreshes {
    /// Refreshes that update `table`, count in `metrics`, and run in the background on `tasks` until `cancel`.
    pub fn new(
        table: Table,
        redis: Option<RedisStore>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Refreshes {
        Refreshes {
            shared: Arc::new(Shared {
                refresher: Arc::new(Refresher::new(tasks.clone())),
                table,
                redis,
                metrics,
                tasks,
                cancel,
            }),
        }
    }

    /// Refreshes `node` now and, on success, records that it holds every known consumer key and client id.
    pub async fn refresh_and_own(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        trigger: RefreshTrigger,
    ) -> bool {
        let ok = self.refresh(node, settings, trigger).await;
        if ok {
            let kinds = [CredentialKind::ConsumerKey, CredentialKind::ClientId];
            let keys = self.shared.table.add_owner_to_kinds(node.id, &kinds);
            if let Some(redis) = &self.shared.redis {
                redis.add_owner_to_kinds(node.id, &kinds).await;
            }
            // One per node per key event: debug (failures are warnings; the counters have the rest).
            tracing::debug!(node = %node.spec.name, trigger = trigger.as_str(), keys, "node refreshed");
        }
        ok
    }

    /// The `refresh` strategy: `node` was chosen for a request carrying `key` it does not hold; refresh it
    /// first. `true` when it now holds the key.
    pub async fn refresh_for_key(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        key: Fingerprint,
    ) -> bool {
        let ok = self.refresh(node, settings, RefreshTrigger::Route).await;
        if ok {
            self.own(key, node.id).await;
        }
        ok
    }

    /// The `pin+refresh` strategy: refresh `missing` nodes in the background, skipping nodes already being
    /// refreshed (by this instance, or with a shared store by any instance) or whose last refresh failed within
    /// the backoff.
    pub fn refresh_in_background(&self, pool: &Pool, settings: &RefreshSettings, missing: NodeSet) {
        let refresher = &self.shared.refresher;
        for id in missing.iter() {
            let Some(node) = pool.node(id).cloned() else {
                continue;
            };
            if refresher.in_flight(id) || !refresher.may_retry(id, settings.backoff) {
                continue;
            }
            let this = self.clone();
            let settings = settings.clone();
            self.spawn(async move {
                if let Some(redis) = &this.shared.redis {
                    // Another instance's fan-out (or background refresh) of this node is under way.
                    if !redis
                        .refreshing(node.id, settings.fanout_deadline, false)
                        .await
                    {
                        return;
                    }
                }
                this.refresh_and_own(&node, &settings, RefreshTrigger::Route)
                    .await;
            });
        }
    }

    /// `stale` refused a request for lacking `key`: refresh it in the background; on success it owns the key
    /// again.
    pub fn after_stale_answer(
        &self,
        stale: Arc<Node>,
        settings: RefreshSettings,
        key: Fingerprint,
    ) {
        let this = self.clone();
        self.spawn(async move {
            if this
                .refresh_and_own(&stale, &settings, RefreshTrigger::StaleAnswer)
                .await
            {
                this.own(key, stale.id).await;
            }
        });
    }

    /// Refreshes every node that comes back up (it may have restarted and lost its registry), until cancelled.
    pub fn run_on_node_up(&self, current: CurrentPool) {
        let this = self.clone();
        let mut ups = current().0.subscribe_up();
        self.spawn(async move {
            while let Ok(id) = ups.recv().await {
                let (pool, settings) = current();
                if let Some(node) = pool.node(id).cloned() {
                    this.refresh_and_own(&node, &settings, RefreshTrigger::NodeUp)
                        .await;
                }
            }
        });
    }

    /// Refreshes every healthy node each `settings.interval`, until cancelled.
    pub fn run_timer(&self, current: CurrentPool) {
        let Some(interval) = current().1.interval else {
            return;
        };
        let this = self.clone();
        self.spawn(async move {
            let mut tick = crate::time::periodic(interval);
            loop {
                tick.tick().await;
                let (pool, settings) = current();
                for node in pool.nodes() {
                    if pool.healthy().contains(node.id) {
                        this.refresh_and_own(node, &settings, RefreshTrigger::Timer)
                            .await;
                    }
                }
            }
        });
    }

    /// One counted refresh of `node`.
    async fn refresh(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        trigger: RefreshTrigger,
    ) -> bool {
        if !settings.enabled() {
            return false;
        }
        let ok = self.shared.refresher.refresh(node, settings).await;
        self.shared.metrics.observe_refresh(trigger, ok);
        ok
    }

    /// Runs `work` on the tracker until it finishes or the application stops.
    pub(super) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.shared.cancel.clone();
        self.shared.tasks.spawn(async move {
            cancel.run_until_cancelled(work).await;
        });
    }

    /// Marks `node` an owner of `key` (a refresh succeeded), in the shared store too.
    pub(super) async fn own(&self, key: Fingerprint, node: NodeId) {
        self.shared.table.add_owner(key, node);
        if let Some(redis) = &self.shared.redis {
            redis.add_owner(key, node).await;
        }
    }

    /// The shared store, if any.
    pub(super) fn redis(&self) -> Option<&RedisStore> {
        self.shared.redis.as_ref()
    }

    /// Counts and runs one refresh attempt of a fan-out.
    pub(super) async fn fan_out_attempt(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
    ) -> bool {
        self.refresh(node, settings, RefreshTrigger::KeyEvent).await
    }
}
