//! Fan-out: a consumer key (or client id) was registered or approved on one node; refresh every other healthy
//! node at once, each with retries and backoff, all under one deadline. A node whose refresh succeeds becomes
//! an owner of the key.

use super::{RefreshSettings, Refreshes};
use crate::affinity::{Fingerprint, NodeId};
use crate::upstream::Pool;

impl Refreshes {
    /// Starts the fan-out for `key`, issued on `issuer`, in the background.
    pub fn fan_out(
        &self,
        pool: &Pool,
        settings: &RefreshSettings,
        key: Fingerprint,
        issuer: NodeId,
    ) {
        if !settings.enabled() {
            return;
        }
        let targets: Vec<_> = pool
            .healthy()
            .without(issuer)
            .iter()
            .filter_map(|id| pool.node(id).cloned())
            .collect();
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
                        if this.fan_out_attempt(&node, &settings).await {
                            this.own(key, node.id);
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
