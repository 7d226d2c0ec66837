//! The runtime layer: file structs → validated, typed values, with cross-field checks.
//!
//! Validation collects every error instead of stopping at the first, so `tokenroute check` shows an
//! administrator the whole list in one go. Each error names the key path and the value it refused.
//!
//! Longer than 600 lines: one validating function per section, in file order, sharing one error collector;
//! each is short, and reading them in sequence is how an operator's file is read.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use thiserror::Error;

use super::cidr::Cidr;
use super::file::{
    AffinityFile, FileConfig, HealthFile, LimitsFile, ListenerFile, NodeFile, RedisFile,
    RefreshFile, RoutingFile, UpstreamFile,
};
use super::units::{parse_duration, parse_size};
use crate::affinity::journal::Fsync;
use crate::affinity::{RedisSettings, MAX_NODES};
use crate::oauth::{CredentialKind, EndpointRole, EndpointRule, Preset, Rules};
use crate::refresh::{Exchange, RefreshSettings, Strategy};
use crate::secret::Secret;
use crate::transport::tls::CertificateSource;
use crate::upstream::balance::Policy;
use crate::upstream::{HealthSettings, NodeSpec, PoolSettings};

/// One refused value: which key, what it held, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key} = {value}: {message}")]
pub struct ConfigError {
    /// Dotted key path, with array indices: `upstream.node[1].url`.
    pub key: String,
    /// The value as written (quoted for strings).
    pub value: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Process-wide settings.
    pub runtime: Runtime,
    /// Listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Client-side limits and timeouts.
    pub limits: Limits,
    /// Forwarding headers.
    pub forwarding: Forwarding,
    /// The pool.
    pub upstream: PoolSettings,
    /// Active health checks; `None` when disabled.
    pub health: Option<HealthSettings>,
    /// Token-aware routing.
    pub routing: Routing,
    /// The learned table.
    pub affinity: Affinity,
    /// Refreshing nodes.
    pub refresh: RefreshSettings,
    /// Replaying after stale answers.
    pub repair: Repair,
    /// The admin API; `None` when disabled.
    pub admin: Option<crate::admin::AdminSettings>,
    /// Logging. `format` and `level` apply at start (the log is set up before anything else); `access`
    /// applies on reload too.
    pub log: LogSettings,
}

/// `[log]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// The tracing filter used when `RUST_LOG` is unset.
    pub level: String,
    /// Write the access log (one line per request).
    pub access: bool,
}

/// `[repair]`, validated.
#[derive(Debug, Clone)]
pub struct Repair {
    /// Replay after a stale-credential answer.
    pub enabled: bool,
    /// Problem names that make a 401/403 stale.
    pub stale_problems: Vec<String>,
    /// OAuth 2 `error` values that make a 400/401 a candidate for repair.
    pub oauth2_errors: Vec<String>,
}

/// `[routing]`, validated.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Learn and route on OAuth credentials.
    pub token_aware: bool,
    /// Learn and route on session cookies.
    pub session_affinity: bool,
    /// Where credentials are, how long they live, the body cap.
    pub rules: Arc<Rules>,
}

/// `[affinity]`, validated.
#[derive(Debug, Clone)]
pub struct Affinity {
    /// Table bound.
    pub max_entries: NonZeroUsize,
    /// Snapshot file (its fingerprint key sits beside it as `<file>.key`).
    pub snapshot_path: Option<PathBuf>,
    /// Snapshot period.
    pub snapshot_interval: Duration,
    /// Sweep period.
    pub sweep_interval: Duration,
    /// When the journal beside the snapshot is flushed to disk.
    pub journal_fsync: Fsync,
    /// The fingerprint key file, when configured (else `<snapshot_path>.key`, or a fresh key).
    pub fingerprint_key_file: Option<PathBuf>,
    /// `store = "redis"`: the shared store's settings; `None`: the table lives in this process only.
    pub redis: Option<RedisSettings>,
}

/// `[runtime]`, validated.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `None`: one per core.
    pub worker_threads: Option<NonZeroUsize>,
    /// Graceful shutdown deadline.
    pub drain_timeout: Duration,
}

impl Runtime {
    /// How many connection workers run: `worker_threads`, or one per core the process may use.
    pub fn workers(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            NonZeroUsize::get,
        )
    }
}

/// One `[[listener]]`, validated, TLS material loaded.
#[derive(Debug, Clone)]
pub struct Listener {
    /// For logs and metrics.
    pub name: String,
    /// Bind address.
    pub address: SocketAddr,
    /// Connection cap.
    pub max_connections: NonZeroUsize,
    /// TLS termination, ready to use.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// When the certificates `tls` serves stop being valid, one row per server name (empty without TLS).
    /// Read from the same bytes `tls` was built from, so a reload that swaps certificates updates both.
    pub certificate_expiry: Vec<CertificateExpiry>,
    /// Connections from trusted proxies start with a PROXY protocol header naming the real client.
    pub proxy_protocol: bool,
}

/// When the certificate a TLS listener serves for one server name stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// A configured SNI name (lower case), or `*` for the default certificate.
    pub server_name: String,
    /// The leaf certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// `[limits]`, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Most header fields, counted as sent to the node.
    pub max_headers: usize,
    /// Longest request target in bytes.
    pub max_request_target: usize,
    /// Longest pause inside a body.
    pub body_idle_timeout: Duration,
    /// Longest wait for a node's response head.
    pub response_header_timeout: Duration,
    /// Longest silence on an upgraded connection.
    pub tunnel_idle_timeout: Duration,
}

/// `[forwarding]`, validated.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Peers whose forwarding headers are kept.
    pub trusted_proxies: Vec<Cidr>,
    /// Send `$WSSC` / `$WSIS`.
    pub websphere_private_headers: bool,
    /// Send an RFC 7239 `Forwarded` element for this hop.
    pub forwarded: bool,
    /// Further names removed from untrusted peers' requests: lower case, `_` read as `-`.
    pub strip_from_untrusted: Vec<String>,
}

/// The listener's certificate entries as the TLS layer reads them.
fn certificate_sources(files: &[super::file::CertificateFile]) -> Vec<CertificateSource<'_>> {
    files
        .iter()
        .map(|c| CertificateSource {
            cert: &c.cert,
            key: &c.key,
            server_names: &c.server_names,
        })
        .collect()
}

/// Collects errors while validating.
#[derive(Debug, Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(
        &mut self,
        key: impl Into<String>,
        value: impl std::fmt::Display,
        message: impl Into<String>,
    ) {
        self.0.push(ConfigError {
            key: key.into(),
            value: value.to_string(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|m| {
            self.push(key, format!("{text:?}"), m);
            Duration::ZERO
        })
    }

    fn positive_duration(&mut self, key: &str, text: &str) -> Duration {
        let d = self.duration(key, text);
        if d.is_zero() && parse_duration(text).is_ok() {
            self.push(key, format!("{text:?}"), "must be greater than zero");
        }
        d
    }

    fn size(&mut self, key: &str, text: &str) -> u64 {
        parse_size(text).unwrap_or_else(|m| {
            self.push(key, format!("{text:?}"), m);
            0
        })
    }
}

/// Validates a parsed file. `base_dir` resolves relative paths (certificates, CA bundles): it is the
/// directory of the config file, so a config works wherever the proxy is started from.
pub fn validate(
    file: &FileConfig,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Errors::default();

    let runtime = Runtime {
        worker_threads: NonZeroUsize::new(file.runtime.worker_threads),
        drain_timeout: errors.duration("runtime.drain_timeout", &file.runtime.drain_timeout),
    };
    let listeners = listeners(&file.listeners, base_dir, &mut errors);
    let limits = limits(&file.limits, &mut errors);
    let forwarding = Forwarding {
        trusted_proxies: file
            .forwarding
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                text.parse::<Cidr>()
                    .map_err(|m| {
                        errors.push(
                            format!("forwarding.trusted_proxies[{i}]"),
                            format!("{text:?}"),
                            m,
                        )
                    })
                    .ok()
            })
            .collect(),
        websphere_private_headers: file.forwarding.websphere_private_headers,
        forwarded: file.forwarding.forwarded,
        strip_from_untrusted: file
            .forwarding
            .strip_from_untrusted
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let normal = name.to_ascii_lowercase().replace('_', "-");
                if http::HeaderName::from_bytes(normal.as_bytes()).is_err() {
                    errors.push(
                        format!("forwarding.strip_from_untrusted[{i}]"),
                        format!("{name:?}"),
                        "not a header name",
                    );
                    return None;
                }
                Some(normal)
            })
            .collect(),
    };
    // The header is accepted only from trusted proxies: with none, `proxy_protocol` could never apply.
    if forwarding.trusted_proxies.is_empty() {
        for (i, l) in file.listeners.iter().enumerate() {
            if l.proxy_protocol {
                errors.push(
                    format!("listener[{i}].proxy_protocol"),
                    true,
                    "needs forwarding.trusted_proxies: the PROXY header is accepted only from them",
                );
            }
        }
    }
    let upstream = upstream(&file.upstream, runtime.workers(), base_dir, &mut errors);
    let health = health(&file.health, &mut errors);
    let routing = routing(&file.routing, &mut errors);
    let affinity = affinity(&file.affinity, base_dir, env, &mut errors);
    let refresh = refresh(&file.refresh, env, &mut errors);
    let admin = admin(&file.admin, env, &mut errors);
    let log = log(&file.log, &mut errors);
    let repair = Repair {
        enabled: file.repair.enabled,
        stale_problems: file.repair.stale_problems.clone(),
        oauth2_errors: file.repair.oauth2_errors.clone(),
    };
    if file.repair.stale_problems.iter().any(|p| p.is_empty()) {
        errors.push(
            "repair.stale_problems",
            "\"\"",
            "problem names must not be empty",
        );
    }
    for (i, name) in file.repair.oauth2_errors.iter().enumerate() {
        if !crate::oauth::problems::is_error_name(name) {
            errors.push(
                format!("repair.oauth2_errors[{i}]"),
                format!("{name:?}"),
                "not an RFC 6749 error name (printable ASCII without '\"' or '\\', not empty)",
            );
        }
    }

    if errors.0.is_empty() {
        Ok(Config {
            runtime,
            listeners,
            limits,
            forwarding,
            upstream,
            health,
            routing,
            affinity,
            refresh,
            repair,
            admin,
            log,
        })
    } else {
        Err(errors.0)
    }
}

fn listeners(files: &[ListenerFile], base_dir: &Path, errors: &mut Errors) -> Vec<Listener> {
    if files.is_empty() {
        errors.push("listener", "[]", "at least one [[listener]] is required");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in files.iter().enumerate() {
        let key = format!("listener[{i}]");
        let address = match l.address.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errors.push(
                    format!("{key}.address"),
                    format!("{:?}", l.address),
                    "expected IP:PORT, e.g. \"0.0.0.0:8443\" or \"[::]:8080\"",
                );
                continue;
            }
        };
        if address.port() != 0 && !seen.insert(address) {
            errors.push(
                format!("{key}.address"),
                format!("{:?}", l.address),
                "another listener binds this address",
            );
        }
        let Some(max_connections) = NonZeroUsize::new(l.max_connections) else {
            errors.push(format!("{key}.max_connections"), 0, "must be at least 1");
            continue;
        };
        let (tls, certificate_expiry) = match &l.tls {
            None => (None, Vec::new()),
            Some(tls) => match crate::transport::tls::server_config(
                &certificate_sources(&tls.certificates),
                base_dir,
            ) {
                Ok(loaded) => {
                    let entries: Vec<(&[String], Option<i64>)> = tls
                        .certificates
                        .iter()
                        .zip(&loaded.leaves)
                        .map(|(c, leaf)| {
                            (c.server_names.as_slice(), super::expiry::not_after(leaf))
                        })
                        .collect();
                    (Some(loaded.config), super::expiry::by_server_name(&entries))
                }
                Err(e) => {
                    errors.push(
                        format!("{key}.tls.certificate[{}]", e.index),
                        e.value,
                        e.message,
                    );
                    (None, Vec::new())
                }
            },
        };
        out.push(Listener {
            name: l.name.clone().unwrap_or_else(|| format!("listener{i}")),
            address,
            max_connections,
            tls,
            certificate_expiry,
            proxy_protocol: l.proxy_protocol,
        });
    }
    out
}

fn limits(file: &LimitsFile, errors: &mut Errors) -> Limits {
    let max_header_bytes = errors.size("limits.max_header_bytes", &file.max_header_bytes);
    // hyper's HTTP/1.1 read buffer cannot be smaller than 8 KiB.
    if max_header_bytes != 0 && !(8192..=16 << 20).contains(&max_header_bytes) {
        errors.push(
            "limits.max_header_bytes",
            format!("{:?}", file.max_header_bytes),
            "must be between 8KiB and 16MiB",
        );
    }
    if file.max_headers == 0 {
        errors.push("limits.max_headers", 0, "must be at least 1");
    }
    let max_request_target = errors.size("limits.max_request_target", &file.max_request_target);
    // Below 1 KiB ordinary OAuth redirects (a callback URL, a token, a verifier) no longer fit; the HTTP/1.1
    // request line must also fit the head buffer.
    if max_request_target != 0 && !(1024..=max_header_bytes.max(1024)).contains(&max_request_target)
    {
        errors.push(
            "limits.max_request_target",
            format!("{:?}", file.max_request_target),
            "must be between 1KiB and limits.max_header_bytes",
        );
    }
    Limits {
        header_read_timeout: errors
            .positive_duration("limits.header_read_timeout", &file.header_read_timeout),
        max_header_bytes: max_header_bytes as usize,
        max_headers: file.max_headers,
        max_request_target: max_request_target as usize,
        body_idle_timeout: errors
            .positive_duration("limits.body_idle_timeout", &file.body_idle_timeout),
        response_header_timeout: errors.positive_duration(
            "limits.response_header_timeout",
            &file.response_header_timeout,
        ),
        tunnel_idle_timeout: errors
            .positive_duration("limits.tunnel_idle_timeout", &file.tunnel_idle_timeout),
    }
}

fn upstream(
    file: &UpstreamFile,
    workers: usize,
    base_dir: &Path,
    errors: &mut Errors,
) -> PoolSettings {
    let policy = match file.policy.parse::<Policy>() {
        Ok(p) => p,
        Err(m) => {
            errors.push("upstream.policy", format!("{:?}", file.policy), m);
            Policy::RoundRobin
        }
    };
    if file.nodes.is_empty() {
        errors.push(
            "upstream.node",
            "[]",
            "at least one [[upstream.node]] is required",
        );
    }
    if file.nodes.len() > MAX_NODES {
        errors.push(
            "upstream.node",
            file.nodes.len(),
            format!("at most {MAX_NODES} nodes are supported"),
        );
    }
    let mut names = HashSet::new();
    let nodes: Vec<NodeSpec> = file
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            if !names.insert(n.name.as_str()) {
                errors.push(
                    format!("upstream.node[{i}].name"),
                    format!("{:?}", n.name),
                    "another node has this name",
                );
            }
            node(n, &format!("upstream.node[{i}]"), errors)
        })
        .collect();
    let mut clone_ids = HashSet::new();
    for (i, n) in file.nodes.iter().enumerate() {
        if let Some(id) = &n.clone_id {
            if !clone_ids.insert(id.as_str()) {
                errors.push(
                    format!("upstream.node[{i}].clone_id"),
                    format!("{id:?}"),
                    "another node has this clone id",
                );
            }
        }
    }
    let ca_path = file.ca_file.as_ref().map(|p| base_dir.join(p));
    if ca_path.is_none() && nodes.iter().any(|n| n.scheme == Scheme::HTTPS) {
        errors.push(
            "upstream.ca_file",
            "(unset)",
            "https nodes need a CA bundle to verify them",
        );
    }
    let tls = match crate::transport::tls::client_config(ca_path.as_deref()) {
        Ok(c) => c,
        Err(m) => {
            errors.push(
                "upstream.ca_file",
                format!("{:?}", file.ca_file.as_deref().unwrap_or("")),
                m,
            );
            crate::transport::tls::client_config(None).expect("an empty root store always builds")
        }
    };
    PoolSettings {
        policy,
        connect_timeout: errors
            .positive_duration("upstream.connect_timeout", &file.connect_timeout),
        pool_idle_timeout: errors
            .positive_duration("upstream.pool_idle_timeout", &file.pool_idle_timeout),
        pool_max_idle_per_node: file.pool_max_idle_per_node,
        workers,
        tls,
        nodes,
    }
}

fn node(file: &NodeFile, key: &str, errors: &mut Errors) -> Option<NodeSpec> {
    if file.name.is_empty()
        || !file
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        errors.push(
            format!("{key}.name"),
            format!("{:?}", file.name),
            "use letters, digits, '-', '_' or '.'",
        );
    }
    let weight = NonZeroU32::new(file.weight)
        .filter(|w| w.get() <= crate::upstream::balance::MAX_WEIGHT)
        .or_else(|| {
            errors.push(
                format!("{key}.weight"),
                file.weight,
                format!(
                    "must be between 1 and {}",
                    crate::upstream::balance::MAX_WEIGHT
                ),
            );
            None
        });
    let uri: http::Uri = match file.url.parse() {
        Ok(u) => u,
        Err(_) => {
            errors.push(
                format!("{key}.url"),
                format!("{:?}", file.url),
                "not a URL; expected http://host:port",
            );
            return None;
        }
    };
    let bad = |errors: &mut Errors, m: &str| {
        errors.push(format!("{key}.url"), format!("{:?}", file.url), m)
    };
    let scheme = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
        _ => {
            bad(errors, "scheme must be http or https");
            return None;
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        bad(errors, "missing host");
        return None;
    };
    if authority.as_str().contains('@') {
        bad(errors, "credentials in node URLs are not supported");
        return None;
    }
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        bad(
            errors,
            "a node URL has no path or query; requests keep their own path",
        );
        return None;
    }
    Some(NodeSpec {
        name: file.name.clone(),
        scheme,
        authority,
        weight: weight?,
        sni: file.sni.clone(),
        clone_id: clone_id(file, key, errors),
    })
}

/// A clone id is what follows a `:` in a session cookie, so it is a non-empty run of cookie-value characters
/// without `:`; WebSphere's own are short alphanumerics.
fn clone_id(file: &NodeFile, key: &str, errors: &mut Errors) -> Option<String> {
    let id = file.clone_id.as_ref()?;
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        errors.push(
            format!("{key}.clone_id"),
            format!("{id:?}"),
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        );
        return None;
    }
    Some(id.clone())
}

fn health(file: &HealthFile, errors: &mut Errors) -> Option<HealthSettings> {
    if !file.path.starts_with('/') {
        errors.push(
            "health.path",
            format!("{:?}", file.path),
            "must start with '/'",
        );
    }
    let expect_status = http::StatusCode::from_u16(file.expect_status).unwrap_or_else(|_| {
        errors.push(
            "health.expect_status",
            file.expect_status,
            "not an HTTP status code",
        );
        http::StatusCode::OK
    });
    let interval = errors.positive_duration("health.interval", &file.interval);
    let timeout = errors.positive_duration("health.timeout", &file.timeout);
    let rise = NonZeroU32::new(file.rise);
    if rise.is_none() {
        errors.push("health.rise", 0, "must be at least 1");
    }
    let fall = NonZeroU32::new(file.fall);
    if fall.is_none() {
        errors.push("health.fall", 0, "must be at least 1");
    }
    Some(HealthSettings {
        path: file.path.clone(),
        expect_status,
        interval,
        timeout,
        rise: rise?,
        fall: fall?,
    })
    .filter(|_| file.enabled)
}

fn routing(file: &RoutingFile, errors: &mut Errors) -> Routing {
    let mut presets = Vec::new();
    for (i, name) in file.presets.iter().enumerate() {
        match name.as_str() {
            "oslc" => presets.push(Preset::Oslc),
            "oauth2" => presets.push(Preset::OAuth2),
            _ => errors.push(
                format!("routing.presets[{i}]"),
                format!("{name:?}"),
                "expected \"oslc\" or \"oauth2\"",
            ),
        }
    }
    let mut rules = Rules::from_presets(&presets);
    for (i, e) in file.endpoints.iter().enumerate() {
        let key = format!("routing.endpoint[{i}]");
        let role =
            match serde_json::from_value::<EndpointRole>(serde_json::Value::String(e.role.clone()))
            {
                Ok(r) => r,
                Err(_) => {
                    errors.push(
                        format!("{key}.role"),
                        format!("{:?}", e.role),
                        format!(
                            "expected one of {}",
                            EndpointRole::ALL.map(EndpointRole::as_str).join(", ")
                        ),
                    );
                    continue;
                }
            };
        let rule = EndpointRule {
            path_suffix: e.path_suffix.clone(),
            role,
        };
        if let Err(m) = rules.add_endpoint(rule) {
            errors.push(
                format!("{key}.path_suffix"),
                format!("{:?}", e.path_suffix),
                m.to_string(),
            );
        }
    }
    if let Err(m) = rules.set_cookie_names(file.session_cookies.iter().cloned()) {
        errors.push(
            "routing.session_cookies",
            format!("{:?}", file.session_cookies),
            m.to_string(),
        );
    }
    let max_body = errors.size("routing.max_body", &file.max_body);
    if max_body != 0 && max_body > 16 << 20 {
        errors.push(
            "routing.max_body",
            format!("{:?}", file.max_body),
            "at most 16MiB",
        );
    }
    rules.set_max_body(max_body as usize);
    rules.set_all_form_bodies(file.all_form_bodies);
    for (name, text) in &file.ttl {
        let key = format!("routing.ttl.{name}");
        match CredentialKind::ALL.iter().find(|k| k.as_str() == name) {
            Some(&kind) => {
                let ttl = errors.positive_duration(&key, text);
                rules.set_ttl(kind, ttl);
            }
            None => errors.push(
                key,
                format!("{text:?}"),
                format!(
                    "unknown credential kind; expected one of {}",
                    CredentialKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            ),
        }
    }
    Routing {
        token_aware: file.token_aware,
        session_affinity: file.session_affinity,
        rules: Arc::new(rules),
    }
}

fn affinity(
    file: &AffinityFile,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> Affinity {
    let max_entries = NonZeroUsize::new(file.max_entries).unwrap_or_else(|| {
        errors.push("affinity.max_entries", 0, "must be at least 1");
        NonZeroUsize::MIN
    });
    let fingerprint_key_file = file.fingerprint_key_file.as_ref().map(|p| base_dir.join(p));
    let redis = match file.store.as_str() {
        "memory" => None,
        "redis" => {
            if fingerprint_key_file.is_none() {
                errors.push(
                    "affinity.fingerprint_key_file",
                    "(unset)",
                    "required with store = \"redis\": every instance must fingerprint with the same key",
                );
            }
            Some(redis(&file.redis, base_dir, env, errors))
        }
        other => {
            errors.push(
                "affinity.store",
                format!("{other:?}"),
                "expected \"memory\" or \"redis\"",
            );
            None
        }
    };
    Affinity {
        max_entries,
        snapshot_path: file.snapshot_path.as_ref().map(|p| base_dir.join(p)),
        snapshot_interval: errors
            .positive_duration("affinity.snapshot_interval", &file.snapshot_interval),
        sweep_interval: errors.positive_duration("affinity.sweep_interval", &file.sweep_interval),
        journal_fsync: journal_fsync(file, errors),
        fingerprint_key_file,
        redis,
    }
}

fn journal_fsync(file: &AffinityFile, errors: &mut Errors) -> Fsync {
    let interval = errors.positive_duration(
        "affinity.journal_fsync_interval",
        &file.journal_fsync_interval,
    );
    match file.journal_fsync.as_str() {
        "never" => Fsync::Never,
        "always" => Fsync::Always,
        "interval" => Fsync::Every(interval),
        other => {
            errors.push(
                "affinity.journal_fsync",
                format!("{other:?}"),
                "must be \"never\", \"always\" or \"interval\"",
            );
            Fsync::DEFAULT
        }
    }
}

fn redis(
    file: &RedisFile,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> RedisSettings {
    if let Err(m) = RedisSettings::check_url(&file.url) {
        errors.push("affinity.redis.url", format!("{:?}", file.url), m);
    }
    let ca_file = file.ca_file.as_ref().map(|p| base_dir.join(p));
    if let Some(path) = &ca_file {
        if let Err(e) = std::fs::read(path) {
            errors.push(
                "affinity.redis.ca_file",
                format!("{:?}", file.ca_file.as_deref().unwrap_or("")),
                format!("cannot read it: {e}"),
            );
        }
    }
    let password = file.password_env.as_ref().and_then(|name| {
        let value = env(name);
        if value.is_none() {
            errors.push(
                "affinity.redis.password_env",
                format!("{name:?}"),
                format!("environment variable {name} is not set"),
            );
        }
        value.map(Secret::new)
    });
    if file.key_prefix.is_empty() {
        errors.push(
            "affinity.redis.key_prefix",
            "\"\"",
            "must not be empty: it keeps tokenroute's keys apart from others in the database",
        );
    }
    let pool_size = NonZeroUsize::new(file.pool_size).unwrap_or_else(|| {
        errors.push("affinity.redis.pool_size", 0, "must be at least 1");
        NonZeroUsize::MIN
    });
    RedisSettings {
        url: file.url.clone(),
        ca_file,
        password,
        key_prefix: file.key_prefix.clone(),
        connect_timeout: errors
            .positive_duration("affinity.redis.connect_timeout", &file.connect_timeout),
        command_timeout: errors
            .positive_duration("affinity.redis.command_timeout", &file.command_timeout),
        pool_size,
    }
}

fn refresh(
    file: &RefreshFile,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> RefreshSettings {
    let strategy = file.strategy.parse::<Strategy>().unwrap_or_else(|m| {
        errors.push("refresh.strategy", format!("{:?}", file.strategy), m);
        Strategy::PinRefresh
    });
    let interval = errors.duration("refresh.interval", &file.interval);
    let mut exchanges = Vec::new();
    for (i, e) in file.exchanges.iter().enumerate() {
        let key = format!("refresh.exchange[{i}]");
        let method = http::Method::from_bytes(e.method.as_bytes()).unwrap_or_else(|_| {
            errors.push(
                format!("{key}.method"),
                format!("{:?}", e.method),
                "not an HTTP method",
            );
            http::Method::POST
        });
        if !e.path.starts_with('/') || e.path.parse::<http::uri::PathAndQuery>().is_err() {
            errors.push(
                format!("{key}.path"),
                format!("{:?}", e.path),
                "expected a path such as \"/cqweb/login\"",
            );
        }
        let mut headers = Vec::new();
        for (name, template) in &e.headers {
            let Ok(header) = http::header::HeaderName::from_bytes(name.as_bytes()) else {
                errors.push(
                    format!("{key}.headers"),
                    format!("{name:?}"),
                    "not a header name",
                );
                continue;
            };
            // The template is shown (it names variables, not their values); the value never is.
            match interpolate_checked(template, env) {
                Ok(value) => headers.push((header, Secret::new(value))),
                Err(m) => errors.push(format!("{key}.headers.{name}"), format!("{template:?}"), m),
            }
        }
        let body = match interpolate_checked(&e.body, env) {
            Ok(b) => Secret::new(b),
            Err(m) => {
                errors.push(format!("{key}.body"), format!("{:?}", e.body), m);
                Secret::new("")
            }
        };
        let expect: Vec<http::StatusCode> = e
            .expect_status
            .iter()
            .filter_map(|&code| {
                http::StatusCode::from_u16(code)
                    .map_err(|_| {
                        errors.push(
                            format!("{key}.expect_status"),
                            code,
                            "not an HTTP status code",
                        )
                    })
                    .ok()
            })
            .collect();
        if expect.is_empty() {
            errors.push(
                format!("{key}.expect_status"),
                "[]",
                "at least one status is required",
            );
        }
        exchanges.push(Exchange {
            method,
            path: e.path.clone(),
            headers,
            body,
            expect,
        });
    }
    RefreshSettings {
        strategy,
        exchanges,
        timeout: errors.positive_duration("refresh.timeout", &file.timeout),
        fanout_deadline: errors.positive_duration("refresh.fanout_deadline", &file.fanout_deadline),
        retries: file.retries,
        backoff: errors.duration("refresh.backoff", &file.backoff),
        interval: (!interval.is_zero()).then_some(interval),
    }
}

/// Interpolates and refuses control characters (a header or form value must stay one line).
fn interpolate_checked(
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let value = crate::refresh::interpolate(template, env)?;
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err("an interpolated value contains a line break".into());
    }
    Ok(value)
}

fn log(file: &super::file::LogFile, errors: &mut Errors) -> LogSettings {
    let json = match file.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            errors.push(
                "log.format",
                format!("{other:?}"),
                "expected \"text\" or \"json\"",
            );
            false
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&file.level) {
        errors.push(
            "log.level",
            format!("{:?}", file.level),
            format!(
                "not a log filter ({e}); e.g. \"info\", \"debug\" or \"info,tokenroute=debug\""
            ),
        );
    }
    LogSettings {
        json,
        level: file.level.clone(),
        access: file.access,
    }
}

fn admin(
    file: &super::file::AdminFile,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> Option<crate::admin::AdminSettings> {
    if !file.enabled {
        return None;
    }
    let Ok(address) = file.address.parse::<SocketAddr>() else {
        errors.push(
            "admin.address",
            format!("{:?}", file.address),
            "expected IP:PORT, e.g. \"127.0.0.1:9901\"",
        );
        return None;
    };
    let settings = crate::admin::AdminSettings {
        address,
        token: env(&file.token_env).map(Secret::new),
    };
    if let Err(m) = crate::admin::check_settings(&settings) {
        errors.push(
            "admin.address",
            format!("{:?}", file.address),
            format!("{m} (in ${})", file.token_env),
        );
        return None;
    }
    Some(settings)
}
