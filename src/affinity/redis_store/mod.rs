//! The learned table shared between tokenroute instances through Redis (`[affinity] store = "redis"`).
//!
//! Each instance keeps its in-process [`Table`] as a local cache: the per-request path reads only that, as with
//! the memory store. Redis holds the shared truth ([`wire`] shows the layout) and every change goes through it:
//!
//! - **Learned before relayed**: [`RedisStore::learn`] runs after the local write and is awaited on the
//!   response path, so the fact is in Redis (with the kind's TTL as its expiry) before the response is relayed.
//! - **Atomic owner-set changes**: learn, add owner, remove owner and the approval reset are each one Lua
//!   script ([`scripts`]) flipping single bits with `SETBIT`; no instance reads, changes and writes back a set.
//! - **Seen by the others**: each script publishes the entry's new state on one channel; every instance applies
//!   what the others publish to its cache (push). A request whose credentials miss the local cache reads them
//!   through from Redis in one round trip (pull), so a change made just before is found even if its message
//!   has not arrived yet. An answer "not there" is remembered for a second or two, until a published change or
//!   a reconnection ends it ([`read_through`]), so a credential no instance learned costs no round trip per request.
//! - **Same key everywhere**: joining records the key's check value (and the node name ↔ id map, since owner
//!   sets are bitsets of ids) and refuses an instance that differs.
//! - **Redis unavailable**: operations fail fast (command timeout), the instance routes and learns from its own
//!   table, counts it, and logs once per change of state; a supervisor reconnects with backoff, writes back
//!   what was learned meanwhile (everything, if Redis came back empty), and resubscribes.

mod link;
mod read_through;
mod scripts;
mod wire;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisError};
use thiserror::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::affinity::{Entry, Fingerprint, NodeId, NodeSet, Table};
use crate::oauth::CredentialKind;
use crate::secret::Secret;
use link::is_connection_error;
use scripts::Scripts;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Entries written back per batch after a reconnection.
const WRITE_BACK_BATCH: usize = 64;

/// `[affinity.redis]`, validated.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL, without a password.
    pub url: String,
    /// CA bundle (PEM) for `rediss://`; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// From the environment variable named in config.
    pub password: Option<Secret>,
    /// Prefix of every key written.
    pub key_prefix: String,
    /// Limit for connecting.
    pub connect_timeout: Duration,
    /// Limit for one command.
    pub command_timeout: Duration,
    /// Multiplexed connections.
    pub pool_size: NonZeroUsize,
}

impl RedisSettings {
    /// Whether `url` is a Redis URL tokenroute accepts (the message says why not).
    pub fn check_url(url: &str) -> Result<(), String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected redis://host:port/db or rediss://host:port/db")?;
        if scheme != "redis" && scheme != "rediss" {
            return Err(format!("scheme {scheme:?}: expected redis or rediss"));
        }
        let authority = rest.split('/').next().unwrap_or("");
        if authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            return Err(
                "holds a password: name an environment variable in password_env instead".into(),
            );
        }
        url.into_connection_info()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Why the shared store refused this instance (or could not be set up).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL or TLS settings could not make a client.
    #[error("invalid Redis settings")]
    Client(#[source] RedisError),
    /// The CA bundle could not be read.
    #[error("cannot read {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another fingerprint key is recorded in Redis: this instance's fingerprints would never match theirs.
    #[error(
        "this instance's fingerprint key differs from the one the instances sharing {prefix}* use (key check \
         value at {prefix}keycheck); give every instance the same affinity.fingerprint_key_file"
    )]
    KeyDiffers {
        /// The key prefix.
        prefix: String,
    },
    /// A node has another id here than in the instances already sharing the table.
    #[error(
        "node {name:?} has another id here than in the instances sharing {prefix}* (owner sets are bitsets of \
         node ids): list the nodes in the same order in every instance's config"
    )]
    NodeIdsDiffer {
        /// The node.
        name: String,
        /// The key prefix.
        prefix: String,
    },
    /// Redis did not answer (it is then used as soon as it does).
    #[error("Redis is unavailable")]
    Unavailable(#[source] RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered something no tokenroute script returns.
    #[error("unexpected answer from Redis")]
    Protocol,
}

impl StoreError {
    /// Whether the instance must not share the table (as opposed to Redis being down for now).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::KeyDiffers { .. } | StoreError::NodeIdsDiffer { .. }
        )
    }
}

/// Counters for `/metrics` and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Whether Redis is in use now.
    pub up: bool,
    /// Operations that ran on the local table only because Redis was unavailable (or failed).
    pub degraded_ops: u64,
    /// Times Redis became unavailable.
    pub outages: u64,
    /// Entries read through from Redis on a local miss.
    pub read_through: u64,
    /// Changes made by other instances applied to the local table.
    pub applied: u64,
    /// Entries written back after Redis came back.
    pub written_back: u64,
    /// Fan-out refreshes left to the instance holding the lease.
    pub leases_lost: u64,
    /// Entries learned while Redis was unavailable, not yet written back.
    pub pending: usize,
}

/// The shared store; one `Clone` handle.
#[derive(Debug, Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: RedisSettings,
    client: redis::Client,
    /// The local cache: the same table the request path reads.
    table: Table,
    /// This instance's fingerprint key check value (hex).
    key_check: String,
    /// Node names and ids, checked against the other instances' on joining.
    nodes: Vec<(String, NodeId)>,
    /// Names this instance in published changes (random), so it skips its own.
    origin: String,
    /// `<prefix>changes`.
    channel: String,
    /// The connections in use; empty while Redis is unavailable. `RwLock` read per operation (a clone of a
    /// handle, never held across an `.await`); written on (re)connection only.
    conns: RwLock<Vec<MultiplexedConnection>>,
    /// Round robin over `conns`.
    next: AtomicUsize,
    /// Whether Redis is in use: read by every operation, which skips Redis at once while it is `false`.
    up: AtomicBool,
    /// Set by an operation that found Redis gone: wakes the supervisor.
    lost: Notify,
    /// Fingerprints Redis just said it does not hold.
    absent: read_through::Absent,
    /// Fingerprints changed while Redis was unavailable: written back on reconnection. Bounded by the table's
    /// size; a `Mutex` taken only on the degraded path and by the write-back.
    dirty: Mutex<HashSet<Fingerprint>>,
    /// Set when Redis holds another key or node map: the instance stays on its own table.
    refused: AtomicBool,
    scripts: Scripts,
    degraded_ops: AtomicU64,
    outages: AtomicU64,
    read_through: AtomicU64,
    applied: AtomicU64,
    written_back: AtomicU64,
    leases_lost: AtomicU64,
}

/// A live connection set and its subscription.
struct Connected {
    conns: Vec<MultiplexedConnection>,
    changes: redis::aio::PubSubStream,
    /// The key check was absent: Redis is empty (new, or restarted without its data).
    fresh: bool,
}

impl RedisStore {
    /// A store over `table` (not yet connected: see [`RedisStore::start`]). `key_check` is the fingerprint
    /// key's check value; `nodes` the pool's names and ids.
    pub fn new(
        settings: RedisSettings,
        table: Table,
        key_check: Fingerprint,
        nodes: Vec<(String, NodeId)>,
    ) -> Result<RedisStore, StoreError> {
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(StoreError::Client)?;
        if let Some(password) = &settings.password {
            let redis = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| StoreError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(info),
        }
        .map_err(StoreError::Client)?;
        let channel = format!("{}changes", settings.key_prefix);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                table,
                key_check: key_check.to_string(),
                nodes,
                origin: format!("{:016x}", rand::random::<u64>()),
                channel,
                conns: RwLock::new(Vec::new()),
                next: AtomicUsize::new(0),
                up: AtomicBool::new(false),
                lost: Notify::new(),
                absent: read_through::Absent::default(),
                dirty: Mutex::new(HashSet::new()),
                refused: AtomicBool::new(false),
                scripts: Scripts::new(),
                degraded_ops: AtomicU64::new(0),
                outages: AtomicU64::new(0),
                read_through: AtomicU64::new(0),
                applied: AtomicU64::new(0),
                written_back: AtomicU64::new(0),
                leases_lost: AtomicU64::new(0),
                settings,
            }),
        })
    }

    /// Joins the shared table and starts the supervisor on `tasks` (it stops with `cancel`). An instance whose
    /// key or node ids differ from those recorded in Redis is refused (the error says which). When Redis
    /// cannot be reached the instance starts anyway on its own table, and joins as soon as Redis answers.
    pub async fn start(
        &self,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        let first = match self.connect().await {
            Ok(connected) => Some(connected),
            Err(e) if e.is_refusal() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %crate::logging::error_chain(&e), "Redis store unavailable at start; routing from this instance's table until it answers");
                self.inner.outages.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        let changes = match first {
            Some(connected) => Some(self.install(connected).await),
            None => None,
        };
        let this = self.clone();
        tasks.spawn(async move {
            cancel.run_until_cancelled(this.supervise(changes)).await;
        });
        Ok(())
    }

    /// Records in Redis that `owner` issued `fp` (the local table has already learned it). Awaited on the
    /// response path: when it returns, every instance can find the fact. Redis unavailable: kept for write-back.
    pub async fn learn(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owner: NodeId,
        ttl: Duration,
        now: u64,
    ) {
        let expires_at = now.saturating_add(ttl.as_secs()).min(u64::from(u32::MAX));
        self.write(fp, kind, NodeSet::single(owner), expires_at, false)
            .await;
    }

    /// The approval reset: `fp` is now owned by `owner` only (every other node holds a stale provisional copy).
    pub async fn reset(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owner: NodeId,
        ttl: Duration,
        now: u64,
    ) {
        let expires_at = now.saturating_add(ttl.as_secs()).min(u64::from(u32::MAX));
        self.write(fp, kind, NodeSet::single(owner), expires_at, true)
            .await;
    }

    /// Writes an entry read from an export (`tokenroute table import`): its owners join any held for `fp`
    /// (a consumer key) or replace it (a token), with the later expiry, by the learn script. Returns whether
    /// Redis took it.
    pub async fn import(&self, fp: Fingerprint, entry: Entry) -> bool {
        self.write(fp, entry.kind(), entry.owners(), entry.expires_at(), false)
            .await
    }

    /// Adds `node` to the owner set of `fp` in Redis (a refresh succeeded).
    pub async fn add_owner(&self, fp: Fingerprint, node: NodeId) {
        self.change_owner(&self.inner.scripts.add_owner, fp, node)
            .await;
    }

    /// Removes `node` from the owner set of `fp` in Redis (it answered stale).
    pub async fn remove_owner(&self, fp: Fingerprint, node: NodeId) {
        self.change_owner(&self.inner.scripts.remove_owner, fp, node)
            .await;
    }

    /// After a refresh of `node`: it holds every key of `kinds` this instance knows, but those of `except`
    /// (events since the refresh started); tells Redis so.
    pub async fn add_owner_to_kinds(
        &self,
        node: NodeId,
        kinds: &[CredentialKind],
        except: &[Fingerprint],
    ) {
        let keys: Vec<Fingerprint> = self
            .inner
            .table
            .entries()
            .filter(|(fp, e)| kinds.contains(&e.kind()) && !except.contains(fp))
            .map(|(fp, _)| fp)
            .collect();
        for batch in keys.chunks(WRITE_BACK_BATCH) {
            futures_util::future::join_all(batch.iter().map(|&fp| self.add_owner(fp, node))).await;
        }
    }

    /// Takes the cluster-wide lease to refresh `node` for the key event `event` of `key`, for `ttl`: `true`
    /// when this instance should run the refresh (it holds the lease, or Redis is unavailable), `false` when
    /// another instance does (its result reaches this one as a published owner change).
    pub async fn lease(&self, key: Fingerprint, event: &str, node: NodeId, ttl: Duration) -> bool {
        let name = format!(
            "{}lease:{key}:{event}:{}",
            self.inner.settings.key_prefix,
            node.index()
        );
        self.set_lease(name, ttl, true).await
    }

    /// Marks `node` as being refreshed cluster-wide for `ttl`: `force` (a fan-out that holds its lease) always
    /// marks it; otherwise (a background refresh) only if no instance has marked it, returning `false` when one
    /// has. `true` while Redis is unavailable: the instance then decides alone.
    pub async fn refreshing(&self, node: NodeId, ttl: Duration, force: bool) -> bool {
        let name = format!(
            "{}refreshing:{}",
            self.inner.settings.key_prefix,
            node.index()
        );
        self.set_lease(name, ttl, !force).await
    }

    async fn set_lease(&self, name: String, ttl: Duration, only_if_absent: bool) -> bool {
        let origin = self.inner.origin.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Option<Option<String>> = self
            .run(|mut conn| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&name).arg(&origin);
                if only_if_absent {
                    cmd.arg("NX");
                }
                cmd.arg("PX").arg(millis).query_async(&mut conn).await
            })
            .await;
        match taken {
            Some(None) => {
                self.inner.leases_lost.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    /// Whether Redis is in use now.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let i = &self.inner;
        StoreStats {
            up: self.is_up(),
            degraded_ops: i.degraded_ops.load(Ordering::Relaxed),
            outages: i.outages.load(Ordering::Relaxed),
            read_through: i.read_through.load(Ordering::Relaxed),
            applied: i.applied.load(Ordering::Relaxed),
            written_back: i.written_back.load(Ordering::Relaxed),
            leases_lost: i.leases_lost.load(Ordering::Relaxed),
            pending: i.dirty.lock().len(),
        }
    }

    fn entry_key(&self, fp: Fingerprint) -> String {
        format!("{}e:{fp}", self.inner.settings.key_prefix)
    }

    /// Runs the learn script for `owners` of `fp` expiring at `expires_at` (unix seconds).
    async fn write(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owners: NodeSet,
        expires_at: u64,
        reset: bool,
    ) -> bool {
        let key = self.entry_key(fp);
        let fresh = wire::encode(kind, owners);
        let script = &self.inner.scripts.learn;
        let (channel, origin) = (&self.inner.channel, &self.inner.origin);
        let done: Option<i64> = self
            .run(|mut conn| async move {
                let mut invocation = script.key(&key);
                invocation
                    .arg(channel)
                    .arg(origin)
                    .arg(fp.to_string())
                    .arg(&fresh[..])
                    .arg(wire::key_kind_bytes())
                    .arg(expires_at.saturating_mul(1000))
                    .arg(if reset { "reset" } else { "learn" });
                for id in owners.iter() {
                    invocation.arg(id.index());
                }
                invocation.invoke_async(&mut conn).await
            })
            .await;
        if done.is_none() {
            self.mark_dirty(fp);
        }
        done.is_some()
    }

    async fn change_owner(&self, script: &redis::Script, fp: Fingerprint, node: NodeId) {
        let key = self.entry_key(fp);
        let (channel, origin) = (&self.inner.channel, &self.inner.origin);
        let done: Option<i64> = self
            .run(|mut conn| async move {
                script
                    .key(&key)
                    .arg(channel)
                    .arg(origin)
                    .arg(fp.to_string())
                    .arg(node.index())
                    .arg(wire::key_kind_bytes())
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        if done.is_none() {
            self.mark_dirty(fp);
        }
    }

    fn mark_dirty(&self, fp: Fingerprint) {
        let mut dirty = self.inner.dirty.lock();
        if dirty.len() < self.inner.table.stats().max_entries {
            dirty.insert(fp);
        }
    }

    /// Runs one operation on a connection, within the command timeout. `None` (counted) when Redis is
    /// unavailable or failed; a connection-level failure marks it unavailable and wakes the supervisor.
    async fn run<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        let conn = if inner.up.load(Ordering::Relaxed) {
            let conns = inner.conns.read();
            (!conns.is_empty())
                .then(|| conns[inner.next.fetch_add(1, Ordering::Relaxed) % conns.len()].clone())
        } else {
            None
        };
        let Some(conn) = conn else {
            inner.degraded_ops.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let failure = match tokio::time::timeout(inner.settings.command_timeout, op(conn)).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) if is_connection_error(&e) => StoreError::Unavailable(e),
            Ok(Err(e)) => {
                // Redis answered, with an error (a script bug, an OOM refusal): this operation is lost, the
                // connection is fine.
                tracing::warn!(error = %crate::logging::error_chain(&e), "Redis refused an operation; kept in this instance's table");
                inner.degraded_ops.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(_) => StoreError::Timeout(inner.settings.command_timeout),
        };
        inner.degraded_ops.fetch_add(1, Ordering::Relaxed);
        self.mark_down(&failure);
        None
    }
}
