//! Every metric name and label name tokenroute exports, in one place.
//!
//! Names follow Prometheus conventions: a `tokenroute_` prefix, base units (seconds), `_total` on counters
//! only. Label values come from closed vocabularies (status class, reason, trigger, result, outcome, kind) or
//! are node names from the configuration; none carries a credential, a client address or a request path.

/// Counter: responses sent to clients, by `class` (`1xx`..`5xx`) and `node` (`-` when the proxy answered
/// itself).
pub const REQUESTS_TOTAL: &str = "tokenroute_requests_total";
/// Histogram: time from sending a request to a node to receiving its response head, by `node`.
pub const UPSTREAM_LATENCY_SECONDS: &str = "tokenroute_upstream_latency_seconds";
/// Gauge: 1 when the node is healthy, 0 when down, by `node`.
pub const NODE_HEALTHY: &str = "tokenroute_node_healthy";
/// Gauge: 1 when an administrator drained the node, 0 otherwise, by `node`.
pub const NODE_DRAINING: &str = "tokenroute_node_draining";
/// Gauge: requests sent to the node and not yet finished, by `node`.
pub const NODE_INFLIGHT: &str = "tokenroute_node_inflight_requests";
/// Counter: active health checks, by `node` and `result` (`ok`, `connect_error`, `tls_error`, `timeout`,
/// `bad_status`, `error`).
pub const HEALTH_CHECKS_TOTAL: &str = "tokenroute_health_checks_total";
/// Gauge: learned consumer keys and client ids the node is an owner of, by `node`.
pub const NODE_OWNED_KEYS: &str = "tokenroute_node_owned_keys";
/// Gauge: entries in the learned table, by `kind`.
pub const TABLE_ENTRIES: &str = "tokenroute_table_entries";
/// Gauge: the bound on the learned table (`max_entries`).
pub const TABLE_MAX_ENTRIES: &str = "tokenroute_table_max_entries";
/// Counter: entries added to the learned table.
pub const TABLE_INSERTS_TOTAL: &str = "tokenroute_table_inserts_total";
/// Counter: live entries removed to make room.
pub const TABLE_EVICTIONS_TOTAL: &str = "tokenroute_table_evictions_total";
/// Counter: expired entries removed.
pub const TABLE_EXPIRIES_TOTAL: &str = "tokenroute_table_expiries_total";
/// Gauge: 1 while the shared store (Redis) is in use, 0 while the instance runs on its own table.
pub const STORE_UP: &str = "tokenroute_store_up";
/// Counter: table operations that ran on this instance's table only because the shared store was unavailable.
pub const STORE_DEGRADED_OPERATIONS_TOTAL: &str = "tokenroute_store_degraded_operations_total";
/// Counter: times the shared store became unavailable.
pub const STORE_OUTAGES_TOTAL: &str = "tokenroute_store_outages_total";
/// Counter: entries read through from the shared store on a local miss.
pub const STORE_READ_THROUGH_TOTAL: &str = "tokenroute_store_read_through_total";
/// Counter: changes made by other instances applied to this instance's table.
pub const STORE_CHANGES_APPLIED_TOTAL: &str = "tokenroute_store_changes_applied_total";
/// Counter: entries written back to the shared store after an outage.
pub const STORE_WRITTEN_BACK_TOTAL: &str = "tokenroute_store_written_back_total";
/// Counter: refreshes left to another instance holding the lease.
pub const STORE_LEASES_LOST_TOTAL: &str = "tokenroute_store_leases_lost_total";
/// Gauge: entries changed during an outage, waiting to be written back.
pub const STORE_PENDING_WRITE_BACK: &str = "tokenroute_store_pending_write_back";
/// Counter: routing decisions, by `reason` (`token`, `key`, `cookie`, `policy`, `owner_down`).
pub const ROUTE_DECISIONS_TOTAL: &str = "tokenroute_route_decisions_total";
/// Counter: node refreshes, by `trigger` and `result` (`ok`, `failed`).
pub const REFRESHES_TOTAL: &str = "tokenroute_refreshes_total";
/// Counter: replays of a request after a stale-credential answer, by `outcome`.
pub const REPLAYS_TOTAL: &str = "tokenroute_replays_total";
/// Counter: configuration reloads, by `result` (`ok`, `failed`).
pub const CONFIG_RELOADS_TOTAL: &str = "tokenroute_config_reloads_total";
/// Counter: requests refused because their body exceeded the buffering cap.
pub const REQUEST_BODY_TOO_LARGE_TOTAL: &str = "tokenroute_request_body_too_large_total";
/// Counter: backend responses relayed without learning from them because they exceeded the inspection cap.
pub const RESPONSES_NOT_LEARNED_TOTAL: &str = "tokenroute_responses_too_large_to_learn_total";

/// Gauge: always 1, by `version` (the crate version): which build is running.
pub const BUILD_INFO: &str = "tokenroute_build_info";
/// Histogram: time from a request's head arriving to its response head leaving, as the client sees it.
pub const REQUEST_DURATION_SECONDS: &str = "tokenroute_request_duration_seconds";
/// Counter: connections accepted, by `listener`.
pub const CONNECTIONS_ACCEPTED_TOTAL: &str = "tokenroute_connections_accepted_total";
/// Gauge: connections open now, by `listener`.
pub const CONNECTIONS_OPEN: &str = "tokenroute_connections_open";
/// Gauge: connections open now, by connection `worker` (1..=`runtime.worker_threads`): how evenly the workers
/// share the connections.
pub const WORKER_CONNECTIONS_OPEN: &str = "tokenroute_worker_connections_open";
/// Counter: TLS handshakes that failed or timed out, by `listener`.
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "tokenroute_tls_handshake_failures_total";
/// Gauge: when the certificate a TLS listener serves for a server name stops being valid (its `notAfter`), in
/// Unix seconds, by `listener` and `server_name` (`*`: the default certificate). A timestamp rather than the
/// seconds left, as Prometheus advises for times: the value changes only when a certificate does, and an alert
/// subtracts `time()`.
pub const LISTENER_CERTIFICATE_NOT_AFTER_SECONDS: &str =
    "tokenroute_listener_certificate_not_after_seconds";
/// The process metrics every Prometheus client library exports, under their standard names (dashboards and
/// alerts expect them unprefixed). Read from `/proc/self` at scrape time; absent where there is no `/proc`.
pub mod process {
    /// Counter: user and system CPU time.
    pub const CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
    /// Gauge: resident memory.
    pub const RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// Gauge: open file descriptors (sockets included).
    pub const OPEN_FDS: &str = "process_open_fds";
    /// Gauge: start time, Unix seconds.
    pub const START_TIME_SECONDS: &str = "process_start_time_seconds";
}

/// Label names.
pub mod label {
    /// A node's configured name, or `-`.
    pub const NODE: &str = "node";
    /// An HTTP status class, `1xx`..`5xx`.
    pub const CLASS: &str = "class";
    /// A credential kind (`consumer_key`, `request_token`, ...).
    pub const KIND: &str = "kind";
    /// A routing reason.
    pub const REASON: &str = "reason";
    /// What started a refresh.
    pub const TRIGGER: &str = "trigger";
    /// `ok` or `failed`.
    pub const RESULT: &str = "result";
    /// How a replay ended.
    pub const OUTCOME: &str = "outcome";
    /// A listener's configured name.
    pub const LISTENER: &str = "listener";
    /// A connection worker's number, from 1.
    pub const WORKER: &str = "worker";
    /// An SNI name a listener's certificate answers, or `*` for its default certificate.
    pub const SERVER_NAME: &str = "server_name";
    /// The crate version.
    pub const VERSION: &str = "version";
    /// A histogram bucket's upper bound.
    pub const LE: &str = "le";
}

/// The `node` label value of responses the proxy produced itself (no node answered).
pub const NO_NODE: &str = "-";
