//! Fan-out: a consumer key (or client id) was registered or approved on one node; refresh every other healthy
//! node at once, each with retries and backoff, all under one deadline. Each refresh is one that started after
//! the event (a refresh in flight from before it is waited out); a node whose refresh succeeds becomes an owner
//! of the key, unless the key had a later event meanwhile (an approval after the registration).
//!
//! With a shared store, one key event triggers one login per other node cluster-wide: before the response that
//! revealed the event is relayed, this instance takes a lease per (key, event, node) in Redis and marks each
//! node it won as being refreshed, so no other instance refreshes it meanwhile; nodes whose lease another
//! instance holds are left to it, and their new owners arrive as published changes.

use super::{RefreshSettings, Refreshes, Tick};
use crate::affinity::{Fingerprint, NodeId};
use crate::upstream::Pool;

impl Refreshes {
    /// Claims the fan-out for `key` (event `event`: "registered" or "approved", at `tick` from
    /// [`Refreshes::key_event`]), issued on `issuer`, and starts it in the background. Returns once the claims
    /// are recorded.
    pub async fn fan_out(
        &self,
        pool: &Pool,
        settings: &RefreshSettings,
        key: Fingerprint,
        (event, tick): (&str, Tick),
        issuer: NodeId,
    ) {
        if !settings.enabled() {
            return;
        }
        let mut targets: Vec<_> = pool
            .healthy()
            .without(issuer)
            .iter()
            .filter_map(|id| pool.node(id).cloned())
            .collect();
        if let Some(redis) = self.redis() {
            let ttl = settings.fanout_deadline;
            let claims = futures_util::future::join_all(targets.iter().map(|node| async move {
                let won = redis.lease(key, event, node.id, ttl).await;
                if won {
                    redis.refreshing(node.id, ttl, true).await;
                }
                won
            }))
            .await;
            let mut claims = claims.into_iter();
            targets.retain(|_| claims.next().unwrap_or(true));
        }
        let this = self.clone();
        let settings = settings.clone();
        self.spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for node in targets {
                let this = this.clone();
                let settings = settings.clone();
                set.spawn(async move {
                    let mut backoff = settings.backoff;
                    for attempt in 0..=settings.retries {
                        if let Some(started) = this.fan_out_attempt(&node, &settings, tick).await {
                            let owns = this.own_since(key, node.id, started).await;
                            tracing::debug!(node = %node.spec.name, owns, "fan-out refresh done");
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
            // Dropping the set at the deadline (or on cancellation) stops the retries still running.
            let all = async { while set.join_next().await.is_some() {} };
            if tokio::time::timeout(settings.fanout_deadline, all)
                .await
                .is_err()
            {
                tracing::warn!(deadline = ?settings.fanout_deadline, "fan-out refresh deadline passed");
            }
        });
    }
}
