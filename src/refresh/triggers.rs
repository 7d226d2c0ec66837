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
//! owner of every known consumer key and client id, except keys registered or approved after the refresh
//! started (`order.rs`): the proxy records each key event with [`Refreshes::key_event`] while it learns the
//! key. Background triggers may join a refresh already in flight; the others want one that starts after
//! they asked. Background work runs on the application's task tracker and stops with its cancellation token.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::order::KeyEvents;
use super::{RefreshSettings, Refresher, Tick};
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
    /// Recent key events. Held while a key event is learned and while a finished refresh records what its
    /// node owns, so that neither sees the other half done.
    events: tokio::sync::Mutex<KeyEvents>,
}

/// Held while the table learns a key event ([`Refreshes::key_event`]); its [`KeyEventGuard::tick`] is the
/// `not_before` of the fan-out that follows.
#[derive(Debug)]
pub struct KeyEventGuard<'a> {
    _events: tokio::sync::MutexGuard<'a, KeyEvents>,
    tick: Tick,
}

impl KeyEventGuard<'_> {
    /// When the event happened on the refresh clock.
    pub fn tick(&self) -> Tick {
        self.tick
    }
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
                events: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// Records that `key` was just registered or approved (a response said so). Hold the guard while the
    /// table learns it: a refresh that started before this moment will not make its node an owner of `key`.
    pub async fn key_event(&self, key: Fingerprint) -> KeyEventGuard<'_> {
        let mut events = self.shared.events.lock().await;
        let tick = self.shared.refresher.tick();
        events.record(tick, tokio::time::Instant::now(), key);
        KeyEventGuard {
            _events: events,
            tick,
        }
    }

    /// Refreshes `node` now (a refresh that starts after this call) and, on success, records that it holds
    /// every known consumer key and client id.
    pub async fn refresh_and_own(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        trigger: RefreshTrigger,
    ) -> bool {
        let not_before = self.shared.refresher.tick();
        self.refresh_then_own(node, settings, trigger, not_before, None)
            .await
    }

    /// Refreshes `node` (joining a refresh in flight that started at `not_before` or later) and records what
    /// it then owns: every consumer key and client id, and `key`, except keys with an event after the refresh
    /// started. Whether the refresh succeeded.
    async fn refresh_then_own(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        trigger: RefreshTrigger,
        not_before: Tick,
        key: Option<Fingerprint>,
    ) -> bool {
        let Some(started) = self.refresh(node, settings, trigger, not_before).await else {
            return false;
        };
        let events = self.shared.events.lock().await;
        let newer = events.after(started);
        let kinds = [CredentialKind::ConsumerKey, CredentialKind::ClientId];
        let keys = self
            .shared
            .table
            .add_owner_to_kinds(node.id, &kinds, &newer);
        if let Some(redis) = &self.shared.redis {
            redis.add_owner_to_kinds(node.id, &kinds, &newer).await;
        }
        if let Some(key) = key.filter(|key| !newer.contains(key)) {
            self.own(key, node.id).await;
        }
        drop(events);
        // One per node per key event: debug (failures are warnings; the counters have the rest).
        tracing::debug!(node = %node.spec.name, trigger = trigger.as_str(), keys, "node refreshed");
        true
    }

    /// The `refresh` strategy: `node` was chosen for a request carrying `key` it does not hold; refresh it
    /// first. `true` when it now holds the key.
    pub async fn refresh_for_key(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        key: Fingerprint,
    ) -> bool {
        let not_before = self.shared.refresher.tick();
        match self
            .refresh(node, settings, RefreshTrigger::Route, not_before)
            .await
        {
            Some(started) => self.own_since(key, node.id, started).await,
            None => false,
        }
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
                // Any refresh in flight will do: what it may own is decided by when it started.
                this.refresh_then_own(&node, &settings, RefreshTrigger::Route, 0, None)
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
        let not_before = self.shared.refresher.tick();
        self.spawn(async move {
            this.refresh_then_own(
                &stale,
                &settings,
                RefreshTrigger::StaleAnswer,
                not_before,
                Some(key),
            )
            .await;
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
                        this.refresh_then_own(node, &settings, RefreshTrigger::Timer, 0, None)
                            .await;
                    }
                }
            }
        });
    }

    /// One counted refresh of `node` that started at `not_before` or later; its start tick on success.
    async fn refresh(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        trigger: RefreshTrigger,
        not_before: Tick,
    ) -> Option<Tick> {
        if !settings.enabled() {
            return None;
        }
        let started = self
            .shared
            .refresher
            .refresh(node, settings, not_before)
            .await;
        self.shared
            .metrics
            .observe_refresh(trigger, started.is_some());
        started
    }

    /// Runs `work` on the tracker until it finishes or the application stops.
    pub(super) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.shared.cancel.clone();
        self.shared.tasks.spawn(async move {
            cancel.run_until_cancelled(work).await;
        });
    }

    /// Marks `node` an owner of `key` after a refresh that started at `started`, unless `key` had an event
    /// since. Whether it now owns the key.
    pub(super) async fn own_since(&self, key: Fingerprint, node: NodeId, started: Tick) -> bool {
        let events = self.shared.events.lock().await;
        if events.changed_after(&key, started) {
            return false;
        }
        self.own(key, node).await;
        true
    }

    /// Marks `node` an owner of `key` (a refresh succeeded), in the shared store too.
    async fn own(&self, key: Fingerprint, node: NodeId) {
        self.shared.table.add_owner(key, node);
        if let Some(redis) = &self.shared.redis {
            redis.add_owner(key, node).await;
        }
    }

    /// The shared store, if any.
    pub(super) fn redis(&self) -> Option<&RedisStore> {
        self.shared.redis.as_ref()
    }

    /// Counts and runs one refresh attempt of a fan-out: a refresh that started at `not_before` or later.
    pub(super) async fn fan_out_attempt(
        &self,
        node: &Arc<Node>,
        settings: &RefreshSettings,
        not_before: Tick,
    ) -> Option<Tick> {
        self.refresh(node, settings, RefreshTrigger::KeyEvent, not_before)
            .await
    }
}
