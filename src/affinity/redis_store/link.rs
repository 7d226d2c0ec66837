//! The link to Redis: connecting and reconnecting with backoff, subscribing to the other instances' changes
//! and applying them to the local cache, and writing back what was learned while Redis was away.

use super::*;

impl RedisStore {
    pub(super) fn mark_down(&self, why: &StoreError) {
        self.inner.absent.clear();
        if self.inner.up.swap(false, Ordering::AcqRel) {
            self.inner.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %crate::logging::error_chain(why), "Redis store unavailable; routing and learning from this instance's table until it answers");
        }
        self.inner.lost.notify_one();
    }

    /// Connects the pool and the subscription, then joins (key check, node map).
    pub(super) async fn connect(&self) -> Result<Connected, StoreError> {
        let s = &self.inner.settings;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.command_timeout));
        let within = |d: Duration| move |_| StoreError::Timeout(d);
        let mut conns = Vec::with_capacity(s.pool_size.get());
        for _ in 0..s.pool_size.get() {
            let conn = tokio::time::timeout(
                s.connect_timeout,
                self.inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(within(s.connect_timeout))?
            .map_err(StoreError::Unavailable)?;
            conns.push(conn);
        }
        // Subscribe before joining and writing back, so no change published meanwhile is missed.
        let mut pubsub =
            tokio::time::timeout(s.connect_timeout, self.inner.client.get_async_pubsub())
                .await
                .map_err(within(s.connect_timeout))?
                .map_err(StoreError::Unavailable)?;
        tokio::time::timeout(s.connect_timeout, pubsub.subscribe(&self.inner.channel))
            .await
            .map_err(within(s.connect_timeout))?
            .map_err(StoreError::Unavailable)?;
        let mut invocation = self
            .inner
            .scripts
            .join
            .key(format!("{}keycheck", s.key_prefix));
        invocation
            .key(format!("{}nodes", s.key_prefix))
            .arg(&self.inner.key_check);
        for (name, id) in &self.inner.nodes {
            invocation.arg(name).arg(id.index());
        }
        let mut conn = conns[0].clone();
        let (verdict, detail): (String, String) =
            tokio::time::timeout(s.command_timeout, invocation.invoke_async(&mut conn))
                .await
                .map_err(within(s.command_timeout))?
                .map_err(StoreError::Unavailable)?;
        let prefix = s.key_prefix.clone();
        let fresh = match verdict.as_str() {
            "new" => true,
            "ok" => false,
            "key" => return Err(StoreError::KeyDiffers { prefix }),
            "node" => {
                return Err(StoreError::NodeIdsDiffer {
                    name: detail,
                    prefix,
                })
            }
            _ => return Err(StoreError::Protocol),
        };
        Ok(Connected {
            conns,
            changes: pubsub.into_on_message(),
            fresh,
        })
    }

    /// Puts a new connection set in use: writes back what was learned meanwhile, then marks Redis up.
    pub(super) async fn install(&self, connected: Connected) -> redis::aio::PubSubStream {
        let Connected {
            conns,
            changes,
            fresh,
        } = connected;
        *self.inner.conns.write() = conns;
        // Changes published while the subscription was down were missed.
        self.inner.absent.clear();
        let written = self.write_back(fresh).await;
        if !self.inner.up.swap(true, Ordering::AcqRel) {
            tracing::info!(
                written_back = written,
                redis_was_empty = fresh,
                "Redis store in use"
            );
        }
        // Learned between the write-back and `up`: write those too.
        self.write_back(false).await;
        changes
    }

    /// Writes back the entries changed while Redis was unavailable (`all`: every entry of the local table,
    /// because Redis came back without its data). Runs with `up` still false, through the connections just
    /// installed. Returns how many entries were written.
    pub(super) async fn write_back(&self, all: bool) -> usize {
        let fps: Vec<Fingerprint> = if all {
            self.inner.dirty.lock().clear();
            self.inner.table.entries().map(|(fp, _)| fp).collect()
        } else {
            self.inner.dirty.lock().drain().collect()
        };
        let now = crate::affinity::unix_now();
        let mut written = 0;
        for batch in fps.chunks(WRITE_BACK_BATCH) {
            let results = futures_util::future::join_all(batch.iter().filter_map(|&fp| {
                let entry = self.inner.table.lookup(fp, now)?;
                Some(self.write_back_one(fp, entry))
            }))
            .await;
            written += results.into_iter().filter(|ok| *ok).count();
        }
        self.inner
            .written_back
            .fetch_add(written as u64, Ordering::Relaxed);
        written
    }

    /// One entry written back: merged like a learn by each of its owners (a key keeps owners other instances
    /// added meanwhile; a token takes this instance's issuer).
    pub(super) async fn write_back_one(&self, fp: Fingerprint, entry: Entry) -> bool {
        // `run` would refuse while `up` is false: use the installed connections directly.
        let conn = {
            let conns = self.inner.conns.read();
            if conns.is_empty() {
                return false;
            }
            conns[self.inner.next.fetch_add(1, Ordering::Relaxed) % conns.len()].clone()
        };
        let key = self.entry_key(fp);
        let fresh = wire::encode(entry.kind(), entry.owners());
        let mut invocation = self.inner.scripts.learn.key(&key);
        invocation
            .arg(&self.inner.channel)
            .arg(&self.inner.origin)
            .arg(fp.to_string())
            .arg(&fresh[..])
            .arg(wire::key_kind_bytes())
            .arg(entry.expires_at().saturating_mul(1000))
            .arg("learn");
        for id in entry.owners().iter() {
            invocation.arg(id.index());
        }
        let mut conn = conn;
        let result: Result<Result<i64, RedisError>, _> = tokio::time::timeout(
            self.inner.settings.command_timeout,
            invocation.invoke_async(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(_)) => true,
            _ => {
                self.mark_dirty(fp);
                false
            }
        }
    }

    /// Applies the other instances' changes while Redis is up; reconnects with backoff while it is not.
    pub(super) async fn supervise(self, mut changes: Option<redis::aio::PubSubStream>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if let Some(stream) = changes.as_mut() {
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => self.apply(message.get_payload_bytes()),
                            None => break,
                        },
                        () = self.inner.lost.notified() => {
                            if !self.is_up() {
                                break;
                            }
                        }
                    }
                }
                self.mark_down(&StoreError::Protocol);
                self.inner.conns.write().clear();
                changes = None;
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            match self.connect().await {
                Ok(connected) => {
                    self.inner.refused.store(false, Ordering::Relaxed);
                    changes = Some(self.install(connected).await);
                }
                Err(e) if e.is_refusal() => {
                    if !self.inner.refused.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %e, "Redis store refused; this instance keeps its own table");
                    }
                    backoff = MAX_BACKOFF;
                }
                Err(_) => backoff = (backoff * 2).min(MAX_BACKOFF),
            }
        }
    }

    /// Applies one published change made by another instance to the local table.
    pub(super) fn apply(&self, payload: &[u8]) {
        let Some(change) = wire::parse_change(payload) else {
            return;
        };
        if change.origin == self.inner.origin.as_bytes() {
            return;
        }
        self.inner.absent.forget(&change.fp);
        match change.entry {
            Some(entry) => self
                .inner
                .table
                .put(change.fp, entry, crate::affinity::unix_now()),
            None => {
                self.inner.table.forget(change.fp);
            }
        }
        self.inner.applied.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether `e` means the connection (or Redis) is gone, rather than one command being refused.
pub(super) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
