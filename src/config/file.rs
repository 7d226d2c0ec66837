//! The file layer: `config.toml` as serde structs, exactly as written by the administrator.
//!
//! Every struct denies unknown fields (a typo is an error, not a silently ignored key) and every default is a
//! named function, so `config.toml` at the repository root can document the same values. Nothing here is
//! validated: [`super::validate`] turns these into runtime types and names the key of each bad value.
//!
//! Longer than 600 lines: one serde struct per section of `config.toml`, with its named defaults, in file order;
//! splitting it would separate a key from its default.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Process-wide settings.
    #[serde(default)]
    pub runtime: RuntimeFile,
    /// Where clients connect.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerFile>,
    /// Protocol limits and timeouts on the client side.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Forwarding headers.
    #[serde(default)]
    pub forwarding: ForwardingFile,
    /// The backend pool.
    #[serde(default)]
    pub upstream: UpstreamFile,
    /// Active health checks.
    #[serde(default)]
    pub health: HealthFile,
    /// Token-aware routing: what to learn and where to look.
    #[serde(default)]
    pub routing: RoutingFile,
    /// The learned table: size, persistence.
    #[serde(default)]
    pub affinity: AffinityFile,
    /// Refreshing nodes (a login on each) and the consumer-key strategy.
    #[serde(default)]
    pub refresh: RefreshFile,
    /// Replaying a request that met a stale-credential answer.
    #[serde(default)]
    pub repair: RepairFile,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminFile,
    /// Logging: format, level, access log.
    #[serde(default)]
    pub log: LogFile,
}

/// `[runtime]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    /// Connection workers (one thread and event loop each); 0 means one per core.
    #[serde(default)]
    pub worker_threads: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: String,
}

impl Default for RuntimeFile {
    fn default() -> Self {
        RuntimeFile {
            worker_threads: 0,
            drain_timeout: default_drain_timeout(),
        }
    }
}

fn default_drain_timeout() -> String {
    "30s".into()
}

/// `[[listener]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// A name for logs and metrics.
    pub name: Option<String>,
    /// `IP:PORT` to bind.
    pub address: String,
    /// Open connections accepted at once; further ones wait in the kernel backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TLS termination; absent means plain HTTP.
    pub tls: Option<TlsFile>,
    /// Expect a PROXY protocol (v1 or v2) header from peers in `forwarding.trusted_proxies`.
    #[serde(default)]
    pub proxy_protocol: bool,
}

fn default_max_connections() -> usize {
    10_000
}

/// `[listener.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// Certificates; the first one is served when SNI matches none (or is absent).
    #[serde(rename = "certificate")]
    pub certificates: Vec<CertificateFile>,
}

/// `[[listener.tls.certificate]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// SNI names this certificate answers for; empty means "default only".
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Time a client has to send a request head; on HTTP/1.1 this is also how long an idle keep-alive
    /// connection waits for the next request.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: String,
    /// Most header fields in one request, counted as the node receives it (with the fields the proxy adds).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Longest request target (the URI in the request line, or HTTP/2 `:path`); longer gets 414.
    #[serde(default = "default_max_request_target")]
    pub max_request_target: String,
    /// Longest pause between two chunks of a body, in either direction.
    #[serde(default = "default_body_idle_timeout")]
    pub body_idle_timeout: String,
    /// Longest wait for a node's response head.
    #[serde(default = "default_response_header_timeout")]
    pub response_header_timeout: String,
    /// Longest silence in both directions of an upgraded connection (a WebSocket) before it is closed.
    #[serde(default = "default_tunnel_idle_timeout")]
    pub tunnel_idle_timeout: String,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            header_read_timeout: default_header_read_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_request_target: default_max_request_target(),
            body_idle_timeout: default_body_idle_timeout(),
            response_header_timeout: default_response_header_timeout(),
            tunnel_idle_timeout: default_tunnel_idle_timeout(),
        }
    }
}

fn default_header_read_timeout() -> String {
    "10s".into()
}
fn default_max_header_bytes() -> String {
    "64KiB".into()
}
fn default_max_headers() -> usize {
    100
}
fn default_max_request_target() -> String {
    "8KiB".into()
}
fn default_body_idle_timeout() -> String {
    "30s".into()
}
fn default_response_header_timeout() -> String {
    "60s".into()
}
fn default_tunnel_idle_timeout() -> String {
    "5m".into()
}

/// `[forwarding]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingFile {
    /// CIDRs whose forwarding headers are kept and extended instead of replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Send WebSphere's private `$WSSC` / `$WSIS` headers with the public scheme.
    #[serde(default)]
    pub websphere_private_headers: bool,
    /// Send an RFC 7239 `Forwarded` element for this hop (a client's own is removed either way).
    #[serde(default)]
    pub forwarded: bool,
    /// More header names that carry a client address, removed from untrusted peers' requests.
    #[serde(default = "default_strip_from_untrusted")]
    pub strip_from_untrusted: Vec<String>,
}

impl Default for ForwardingFile {
    fn default() -> Self {
        ForwardingFile {
            trusted_proxies: Vec::new(),
            websphere_private_headers: false,
            forwarded: false,
            strip_from_untrusted: default_strip_from_untrusted(),
        }
    }
}

fn default_strip_from_untrusted() -> Vec<String> {
    [
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "x-cluster-client-ip",
    ]
    .map(String::from)
    .to_vec()
}

/// `[upstream]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// `round_robin` (honours weights) or `least_requests` (power of two choices).
    #[serde(default = "default_policy")]
    pub policy: String,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// Idle pooled connections are closed after this long.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: String,
    /// Idle pooled connections kept per node.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_node: usize,
    /// PEM bundle of CAs trusted for `https://` nodes.
    pub ca_file: Option<String>,
    /// The nodes.
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeFile>,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        UpstreamFile {
            policy: default_policy(),
            connect_timeout: default_connect_timeout(),
            pool_idle_timeout: default_pool_idle_timeout(),
            pool_max_idle_per_node: default_pool_max_idle(),
            ca_file: None,
            nodes: Vec::new(),
        }
    }
}

fn default_policy() -> String {
    "round_robin".into()
}
fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_pool_idle_timeout() -> String {
    "60s".into()
}
fn default_pool_max_idle() -> usize {
    64
}

/// `[[upstream.node]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Stable name: learned ownership and health follow it across reloads.
    pub name: String,
    /// `http://host:port` or `https://host:port`, no path.
    pub url: String,
    /// Relative share of new requests.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// TLS server name to send and verify, when it differs from the URL's host.
    pub sni: Option<String>,
    /// WebSphere clone id of this node: a session cookie ending in `:<clone_id>` routes here.
    pub clone_id: Option<String>,
}

fn default_weight() -> u32 {
    1
}

/// `[health]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    /// Run active checks at all; without them passive ejection is off too (nothing would bring a node back).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Path requested with GET on each node.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Status that means healthy.
    #[serde(default = "default_expect_status")]
    pub expect_status: u16,
    /// Time between checks of one node.
    #[serde(default = "default_health_interval")]
    pub interval: String,
    /// A check slower than this fails.
    #[serde(default = "default_health_timeout")]
    pub timeout: String,
    /// Consecutive successes that bring a node back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures (checks, connect errors, timeouts) that take a node out.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

impl Default for HealthFile {
    fn default() -> Self {
        HealthFile {
            enabled: true,
            path: default_health_path(),
            expect_status: default_expect_status(),
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_health_path() -> String {
    "/".into()
}
fn default_expect_status() -> u16 {
    200
}
fn default_health_interval() -> String {
    "2s".into()
}
fn default_health_timeout() -> String {
    "1s".into()
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// `[routing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// Learn OAuth credentials from responses and route requests carrying them (off: a plain balancer).
    #[serde(default = "default_true")]
    pub token_aware: bool,
    /// Learn session cookies and route them to their node (sticky sessions).
    #[serde(default = "default_true")]
    pub session_affinity: bool,
    /// Endpoint rule sets: "oslc" (Jazz / ClearQuest Web), "oauth2".
    #[serde(default = "default_presets")]
    pub presets: Vec<String>,
    /// Session cookie names.
    #[serde(default = "default_session_cookies")]
    pub session_cookies: Vec<String>,
    /// Cap on a buffered OAuth request or response body.
    #[serde(default = "default_max_body")]
    pub max_body: String,
    /// Read every form body for OAuth parameters, not only those of configured endpoints.
    #[serde(default = "default_true")]
    pub all_form_bodies: bool,
    /// Extra endpoint rules.
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointFile>,
    /// Time to live of learned credentials, by kind (e.g. `request_token = "1h"`).
    #[serde(default)]
    pub ttl: std::collections::BTreeMap<String, String>,
}

impl Default for RoutingFile {
    fn default() -> Self {
        RoutingFile {
            token_aware: true,
            session_affinity: true,
            presets: default_presets(),
            session_cookies: default_session_cookies(),
            max_body: default_max_body(),
            all_form_bodies: true,
            endpoints: Vec::new(),
            ttl: Default::default(),
        }
    }
}

fn default_presets() -> Vec<String> {
    vec!["oslc".into()]
}
fn default_session_cookies() -> Vec<String> {
    vec!["JSESSIONID".into()]
}
fn default_max_body() -> String {
    "64KiB".into()
}

/// `[[routing.endpoint]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    /// Matched against the end of the request path.
    pub path_suffix: String,
    /// What the endpoint does (e.g. "request_token", "oauth2_token").
    pub role: String,
}

/// `[affinity]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityFile {
    /// Most learned credentials kept; past it the soonest-expiring are evicted.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Snapshot file, written periodically and on shutdown, read at start; unset: no persistence.
    pub snapshot_path: Option<String>,
    /// Time between two snapshots.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval: String,
    /// Time between two sweeps of expired entries.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval: String,
    /// When the journal beside the snapshot is flushed to disk: "never", "always" or "interval".
    #[serde(default = "default_journal_fsync")]
    pub journal_fsync: String,
    /// The period of `journal_fsync = "interval"`.
    #[serde(default = "default_journal_fsync_interval")]
    pub journal_fsync_interval: String,
    /// Where the table is shared: "memory" (this process only) or "redis" (`[affinity.redis]`).
    #[serde(default = "default_store")]
    pub store: String,
    /// The fingerprint key file (created if absent, mode 0600); unset: `<snapshot_path>.key`, or a fresh key
    /// each start without a snapshot.
    pub fingerprint_key_file: Option<String>,
    /// `[affinity.redis]`, read only with `store = "redis"`.
    #[serde(default)]
    pub redis: RedisFile,
}

impl Default for AffinityFile {
    fn default() -> Self {
        AffinityFile {
            max_entries: default_max_entries(),
            snapshot_path: None,
            snapshot_interval: default_snapshot_interval(),
            sweep_interval: default_sweep_interval(),
            journal_fsync: default_journal_fsync(),
            journal_fsync_interval: default_journal_fsync_interval(),
            store: default_store(),
            fingerprint_key_file: None,
            redis: RedisFile::default(),
        }
    }
}

/// `[affinity.redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://host:port/db` or `rediss://host:port/db`; no password in it.
    #[serde(default = "default_redis_url")]
    pub url: String,
    /// CA bundle (PEM) that verifies a `rediss://` server; unset: the system's roots.
    pub ca_file: Option<String>,
    /// Environment variable holding the password; unset: no AUTH.
    pub password_env: Option<String>,
    /// Prefix of every Redis key tokenroute writes.
    #[serde(default = "default_redis_key_prefix")]
    pub key_prefix: String,
    /// Limit for connecting (and reconnecting).
    #[serde(default = "default_redis_connect_timeout")]
    pub connect_timeout: String,
    /// Limit for one command; past it the store counts as unavailable.
    #[serde(default = "default_redis_command_timeout")]
    pub command_timeout: String,
    /// Multiplexed connections, used in turn.
    #[serde(default = "default_redis_pool_size")]
    pub pool_size: usize,
}

impl Default for RedisFile {
    fn default() -> Self {
        RedisFile {
            url: default_redis_url(),
            ca_file: None,
            password_env: None,
            key_prefix: default_redis_key_prefix(),
            connect_timeout: default_redis_connect_timeout(),
            command_timeout: default_redis_command_timeout(),
            pool_size: default_redis_pool_size(),
        }
    }
}

fn default_store() -> String {
    "memory".into()
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379/0".into()
}
fn default_redis_key_prefix() -> String {
    "tokenroute:".into()
}
fn default_redis_connect_timeout() -> String {
    "1s".into()
}
fn default_redis_command_timeout() -> String {
    "500ms".into()
}
fn default_redis_pool_size() -> usize {
    2
}

fn default_max_entries() -> usize {
    1_000_000
}
fn default_snapshot_interval() -> String {
    "60s".into()
}
fn default_sweep_interval() -> String {
    "30s".into()
}
fn default_journal_fsync() -> String {
    "interval".into()
}
fn default_journal_fsync_interval() -> String {
    "1s".into()
}

/// `[refresh]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshFile {
    /// "pin", "refresh" or "pin+refresh".
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Limit for one refresh of one node.
    #[serde(default = "default_refresh_timeout")]
    pub timeout: String,
    /// Limit for a whole fan-out after a key event.
    #[serde(default = "default_fanout_deadline")]
    pub fanout_deadline: String,
    /// Retries of a failed refresh within a fan-out.
    #[serde(default = "default_refresh_retries")]
    pub retries: u32,
    /// Wait before the first retry (doubling), and before a background trigger retries a failed node.
    #[serde(default = "default_refresh_backoff")]
    pub backoff: String,
    /// Refresh every node this often ("0s": never).
    #[serde(default = "default_refresh_interval")]
    pub interval: String,
    /// The exchanges of one refresh, sent in order to one node.
    #[serde(default, rename = "exchange")]
    pub exchanges: Vec<ExchangeFile>,
}

impl Default for RefreshFile {
    fn default() -> Self {
        RefreshFile {
            strategy: default_strategy(),
            timeout: default_refresh_timeout(),
            fanout_deadline: default_fanout_deadline(),
            retries: default_refresh_retries(),
            backoff: default_refresh_backoff(),
            interval: default_refresh_interval(),
            exchanges: Vec::new(),
        }
    }
}

fn default_strategy() -> String {
    "pin+refresh".into()
}
fn default_refresh_timeout() -> String {
    "5s".into()
}
fn default_fanout_deadline() -> String {
    "15s".into()
}
fn default_refresh_retries() -> u32 {
    2
}
fn default_refresh_backoff() -> String {
    "500ms".into()
}
fn default_refresh_interval() -> String {
    "0s".into()
}

/// `[[refresh.exchange]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeFile {
    /// HTTP method.
    #[serde(default = "default_exchange_method")]
    pub method: String,
    /// Path and query on the node.
    pub path: String,
    /// Headers; `${VAR}` is replaced from the environment.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Body; `${VAR}` is replaced from the environment.
    #[serde(default)]
    pub body: String,
    /// Statuses that mean success.
    #[serde(default = "default_exchange_expect")]
    pub expect_status: Vec<u16>,
}

fn default_exchange_method() -> String {
    "POST".into()
}
fn default_exchange_expect() -> Vec<u16> {
    vec![200]
}

/// `[repair]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairFile {
    /// Replay a request that met a stale-credential answer on a node that can answer.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Problem names that make a 401/403 a stale-credential answer.
    #[serde(default = "default_stale_problems")]
    pub stale_problems: Vec<String>,
    /// OAuth 2 `error` values (RFC 6749 §5.2, RFC 6750 §3.1) that make a 400/401 a candidate for repair.
    #[serde(default = "default_oauth2_errors")]
    pub oauth2_errors: Vec<String>,
}

impl Default for RepairFile {
    fn default() -> Self {
        RepairFile {
            enabled: true,
            stale_problems: default_stale_problems(),
            oauth2_errors: default_oauth2_errors(),
        }
    }
}

fn default_stale_problems() -> Vec<String> {
    crate::oauth::problems::DEFAULT_STALE_PROBLEMS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_oauth2_errors() -> Vec<String> {
    crate::oauth::problems::DEFAULT_OAUTH2_ERRORS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Serve the admin API.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Its own listener.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// Name of the environment variable holding the bearer token.
    #[serde(default = "default_admin_token_env")]
    pub token_env: String,
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile {
            enabled: true,
            address: default_admin_address(),
            token_env: default_admin_token_env(),
        }
    }
}

fn default_admin_address() -> String {
    "127.0.0.1:9901".into()
}
fn default_admin_token_env() -> String {
    "TOKENROUTE_ADMIN_TOKEN".into()
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// `text` (one human-readable line per event) or `json` (one JSON object per line).
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter: `info`, `debug`, `tokenroute=debug,hyper=warn`. `RUST_LOG`, when set, wins.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// One line per request (target `tokenroute::access`), whatever `level` says.
    #[serde(default = "default_true")]
    pub access: bool,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            format: default_log_format(),
            level: default_log_level(),
            access: true,
        }
    }
}

fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}
