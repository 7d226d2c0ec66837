//! One stand-in node: a ClearQuest-Web-like server whose OAuth state lives in its own memory.
//!
//! Per node: the consumer registry (a snapshot of the repository's keys, taken at start and on every
//! successful login here), request tokens with their verifiers, access tokens, sessions and used nonces. A
//! node never looks at another node's memory; it reads the shared [`Repository`] only on start, login,
//! consumer registration and approval. That is exactly what makes a plain balancer fail (the technote).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::repository::{lock, ConsumerRecord, Repository, User};
use super::signature::{self, RequestParams, HMAC_SHA1};
use super::SimError;
use crate::oauth::percent::{self, encode};
use crate::secret::Secret;

/// The realm every `WWW-Authenticate: OAuth` challenge names.
pub const REALM: &str = "cqweb";
/// The header naming the node that answered.
pub const SERVED_BY: &str = "x-served-by";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "JSESSIONID";
/// `oauth_problem` values a node answers with `invalid_expired_token` in the body: the credential may be
/// valid elsewhere in the cluster, which is the stale-node case the technote describes.
pub const STALE_PROBLEMS: [&str; 4] = [
    "consumer_key_unknown",
    "token_rejected",
    "token_expired",
    "token_not_authorized",
];

const BODY_LIMIT: usize = 64 * 1024;
const NONCE_PRUNE_THRESHOLD: usize = 4096;

/// How one node behaves. Kept across restarts of that node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name, sent in `X-Served-By` (e.g. `lbcq_1`).
    pub name: String,
    /// WebSphere-style clone id appended to session ids (`JSESSIONID=<id>:<clone id>`).
    pub clone_id: String,
    /// A provisional key can be approved only on a node whose registry holds it.
    pub strict_approval: bool,
    /// Lifetime of request tokens.
    pub request_token_ttl: Duration,
    /// Lifetime of access tokens; `None` means "until the node restarts", like the real product.
    pub access_token_ttl: Option<Duration>,
    /// Accepted distance between `oauth_timestamp` and the node's clock.
    pub timestamp_window: Duration,
}

impl NodeConfig {
    /// Defaults for a node called `name`: a random 8-hex-digit clone id, non-strict approval, request tokens
    /// valid 10 minutes, access tokens until restart, a ±600 s timestamp window.
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            clone_id: random_hex(4),
            strict_approval: false,
            request_token_ttl: Duration::from_secs(600),
            access_token_ttl: None,
            timestamp_window: Duration::from_secs(600),
        }
    }
}

/// Counters for tests and the demo; they outlive node restarts. Relaxed atomics, bumped per request.
#[derive(Debug, Default)]
pub struct NodeStats {
    logins: AtomicU64,
    requests: AtomicU64,
}

impl NodeStats {
    /// Successful logins (each refreshed the registry).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Requests received, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// The discovery document (a small rootservices-like catalogue). URLs are absolute, built from the request's
/// `Host` and scheme so that behind a proxy they point at the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// The node that answered.
    pub served_by: String,
    /// The repository (schema) name from the path.
    pub db: String,
    /// `POST` JSON `{"name", "secret"}` → `{"key"}`.
    pub oauth_request_consumer_key_url: String,
    /// `GET`/`POST ?key=K`, admin session.
    pub oauth_approval_module_url: String,
    /// Signed `POST` → temporary credentials.
    pub oauth_request_token_url: String,
    /// `GET ?oauth_token=T` form, `POST` credentials → 302 to the callback.
    pub oauth_user_authorization_url: String,
    /// Signed `POST` with the verifier → token credentials.
    pub oauth_access_token_url: String,
    /// Form login; refreshes the node's consumer registry.
    pub login_url: String,
    /// Protected resources: append an id.
    pub resource_url: String,
    /// Liveness.
    pub health_url: String,
}

struct RequestToken {
    secret: Secret,
    consumer_key: String,
    callback: String,
    /// Set when a user authorized the token: (user, verifier).
    authorized: Option<(String, Secret)>,
    expires_at: Instant,
}

struct AccessToken {
    secret: Secret,
    consumer_key: String,
    user: String,
    expires_at: Option<Instant>,
}

/// Everything a node keeps in memory; lost on restart.
#[derive(Default)]
struct Memory {
    registry: HashMap<String, ConsumerRecord>,
    request_tokens: HashMap<String, RequestToken>,
    access_tokens: HashMap<String, AccessToken>,
    sessions: HashMap<String, User>,
    /// (consumer key, nonce, timestamp) seen within the timestamp window.
    nonces: HashSet<(String, String, u64)>,
}

/// The state a running node serves from. One `std::sync::Mutex` over the node's memory: every handler is
/// synchronous between reading the body and building the response, so the lock is never held across
/// `.await`, and a single lock keeps check-then-consume (single-use request tokens, nonces) atomic.
struct NodeState {
    config: NodeConfig,
    scheme: &'static str,
    repository: Arc<Repository>,
    stats: Arc<NodeStats>,
    memory: Mutex<Memory>,
}

type Resp = Response<Full<Bytes>>;

/// Which token a signed request must carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenUse {
    None,
    Request,
    Access,
}

impl NodeState {
    fn new(
        config: NodeConfig,
        repository: Arc<Repository>,
        stats: Arc<NodeStats>,
        tls: bool,
    ) -> Self {
        let memory = Memory {
            registry: repository.consumers(),
            ..Memory::default()
        };
        NodeState {
            config,
            scheme: if tls { "https" } else { "http" },
            repository,
            stats,
            memory: Mutex::new(memory),
        }
    }

    fn register_key(&self, name: &str, secret: Secret) -> String {
        let key = random_hex(16);
        let record = self.repository.insert_consumer(&key, name, secret);
        lock(&self.memory).registry.insert(key.clone(), record);
        key
    }

    fn route(&self, parts: &Parts, body: &[u8]) -> Resp {
        let path = parts.uri.path();
        let Some(rest) = path.strip_prefix("/cqweb/") else {
            return text(StatusCode::NOT_FOUND, "not found");
        };
        let m = &parts.method;
        match rest {
            "health" if m == Method::GET => text(StatusCode::OK, "ok"),
            "login" if m == Method::POST => self.login(parts, body),
            "oauth-request-consumer" if m == Method::POST => self.request_consumer(body),
            "oauth-approve-consumer" if m == Method::GET || m == Method::POST => {
                self.approve(parts, body)
            }
            "oauth-request-token" if m == Method::POST => self.request_token(parts, body),
            "oauth-authorize" if m == Method::GET => self.authorize_form(parts),
            "oauth-authorize" if m == Method::POST => self.authorize(parts, body),
            "oauth-access-token" if m == Method::POST => self.access_token(parts, body),
            "health"
            | "login"
            | "oauth-request-consumer"
            | "oauth-approve-consumer"
            | "oauth-request-token"
            | "oauth-authorize"
            | "oauth-access-token" => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => match oslc_route(rest) {
                Some(Oslc::Discovery(db)) if m == Method::GET => self.discovery(parts, db),
                Some(Oslc::Resource(db, id)) if m == Method::GET || m == Method::POST => {
                    self.resource(parts, body, db, id)
                }
                Some(_) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                None => text(StatusCode::NOT_FOUND, "not found"),
            },
        }
    }

    /// The scheme the client used: `X-Forwarded-Proto` when a proxy says so, else this node's own.
    fn public_scheme<'a>(&'a self, parts: &'a Parts) -> &'a str {
        parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| v.eq_ignore_ascii_case("http") || v.eq_ignore_ascii_case("https"))
            .unwrap_or(self.scheme)
    }

    fn discovery(&self, parts: &Parts, db: &str) -> Resp {
        let Some(host) = host_of(parts) else {
            return text(StatusCode::BAD_REQUEST, "missing Host");
        };
        let base = format!(
            "{}://{}/cqweb",
            self.public_scheme(parts).to_ascii_lowercase(),
            host
        );
        let doc = Discovery {
            served_by: self.config.name.clone(),
            db: db.to_string(),
            oauth_request_consumer_key_url: format!("{base}/oauth-request-consumer"),
            oauth_approval_module_url: format!("{base}/oauth-approve-consumer"),
            oauth_request_token_url: format!("{base}/oauth-request-token"),
            oauth_user_authorization_url: format!("{base}/oauth-authorize"),
            oauth_access_token_url: format!("{base}/oauth-access-token"),
            login_url: format!("{base}/login"),
            resource_url: format!("{base}/oslc/repo/{db}/resource/"),
            health_url: format!("{base}/health"),
        };
        json(StatusCode::OK, &doc)
    }

    fn login(&self, parts: &Parts, body: &[u8]) -> Resp {
        let form = form_of(parts, body);
        let (Some(user), Some(pass)) = (field(&form, "username"), field(&form, "password")) else {
            return text(StatusCode::BAD_REQUEST, "username and password required");
        };
        let Some(user) = self.repository.authenticate(user, pass) else {
            return text(StatusCode::UNAUTHORIZED, "login failed");
        };
        let snapshot = self.repository.consumers();
        let session = format!("{}:{}", random_hex(12), self.config.clone_id);
        let name = user.name.clone();
        {
            let mut mem = lock(&self.memory);
            mem.registry = snapshot;
            mem.sessions.insert(session.clone(), user);
        }
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        let mut resp = text(StatusCode::OK, &format!("logged in as {name}"));
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={session}; Path=/cqweb; HttpOnly"
        )) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        resp
    }

    fn request_consumer(&self, body: &[u8]) -> Resp {
        #[derive(Deserialize)]
        struct Registration {
            name: String,
            secret: String,
        }
        let Ok(reg) = serde_json::from_slice::<Registration>(body) else {
            return text(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"name\", \"secret\"}",
            );
        };
        let key = self.register_key(&reg.name, Secret::new(reg.secret));
        json(StatusCode::OK, &serde_json::json!({ "key": key }))
    }

    fn session_user(&self, parts: &Parts) -> Option<User> {
        let mem = lock(&self.memory);
        cookies(parts, SESSION_COOKIE).find_map(|v| mem.sessions.get(v).cloned())
    }

    /// The approval prompt (GET) and the approval itself (POST). Like CQ Web, the POST is authorized either by
    /// an administrator's session or by administrator credentials typed into the prompt; the latter is not a
    /// login, so it does not refresh this node's registry.
    fn approve(&self, parts: &Parts, body: &[u8]) -> Resp {
        let query = query_of(parts);
        let form = form_of(parts, body);
        if parts.method == Method::POST {
            let typed = field(&form, "username")
                .zip(field(&form, "password"))
                .and_then(|(name, password)| self.repository.authenticate(name, password));
            let Some(user) = self.session_user(parts).or(typed) else {
                return text(StatusCode::UNAUTHORIZED, "login required");
            };
            if !user.admin {
                return text(StatusCode::FORBIDDEN, "administrator rights required");
            }
        }
        let Some(key) = field(&query, "key").or_else(|| field(&form, "key")) else {
            return text(StatusCode::BAD_REQUEST, "key required");
        };
        let in_registry = lock(&self.memory).registry.get(key).cloned();
        let record = match in_registry {
            Some(r) => r,
            None if self.config.strict_approval => {
                return problem(StatusCode::UNAUTHORIZED, "consumer_key_unknown")
            }
            None => match self.repository.consumer(key) {
                Some(r) => r,
                None => return problem(StatusCode::UNAUTHORIZED, "consumer_key_unknown"),
            },
        };
        if parts.method == Method::GET {
            let page = format!(
                "<!doctype html><title>Approve consumer</title>\
                 <form method=\"post\" action=\"/cqweb/oauth-approve-consumer?key={}\">\
                 <p>Grant access to {}?</p><input name=\"username\"><input name=\"password\" type=\"password\">\
                 <button name=\"approve\" value=\"yes\">Approve</button></form>",
                html_escape(&encode(key)),
                html_escape(&record.name)
            );
            return html(StatusCode::OK, page);
        }
        self.repository.approve(key);
        if let Some(r) = lock(&self.memory).registry.get_mut(key) {
            r.approved = true;
        }
        text(StatusCode::OK, "approved")
    }

    fn request_token(&self, parts: &Parts, body: &[u8]) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.verify(
            &mut mem,
            parts,
            &params,
            TokenUse::None,
            &["oauth_callback"],
        ) {
            Ok(k) => k,
            Err(reject) => return reject.into_response(),
        };
        let callback = params.oauth("oauth_callback").unwrap_or("oob").to_string();
        let token = random_hex(16);
        let secret = random_hex(16);
        mem.request_tokens.insert(
            token.clone(),
            RequestToken {
                secret: Secret::new(secret.clone()),
                consumer_key,
                callback,
                authorized: None,
                expires_at: Instant::now() + self.config.request_token_ttl,
            },
        );
        form_response(&[
            ("oauth_token", &token),
            ("oauth_token_secret", &secret),
            ("oauth_callback_confirmed", "true"),
        ])
    }

    /// Looks up a request token for the user-facing authorize pages.
    fn live_request_token<'m>(
        &self,
        mem: &'m mut Memory,
        token: &str,
    ) -> Result<&'m mut RequestToken, Reject> {
        match mem.request_tokens.get(token) {
            None => return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_rejected")),
            Some(t) if Instant::now() >= t.expires_at => {
                mem.request_tokens.remove(token);
                return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_expired"));
            }
            Some(t) if !mem.registry.contains_key(&t.consumer_key) => {
                return Err(Reject::problem(
                    StatusCode::UNAUTHORIZED,
                    "consumer_key_unknown",
                ));
            }
            Some(_) => {}
        }
        Ok(mem.request_tokens.get_mut(token).expect("checked above"))
    }

    fn authorize_form(&self, parts: &Parts) -> Resp {
        let query = query_of(parts);
        let Some(token) = field(&query, "oauth_token") else {
            return problem(StatusCode::BAD_REQUEST, "parameter_absent");
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.live_request_token(&mut mem, token) {
            Ok(t) => t.consumer_key.clone(),
            Err(reject) => return reject.into_response(),
        };
        let consumer = mem
            .registry
            .get(&consumer_key)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let page = format!(
            "<!doctype html><title>Authorize access</title>\
             <form method=\"post\" action=\"/cqweb/oauth-authorize\">\
             <p>{} requests access to your data.</p>\
             <input type=\"hidden\" name=\"oauth_token\" value=\"{}\">\
             <input name=\"username\"><input type=\"password\" name=\"password\">\
             <button>Allow</button></form>",
            html_escape(&consumer),
            html_escape(token)
        );
        html(StatusCode::OK, page)
    }

    fn authorize(&self, parts: &Parts, body: &[u8]) -> Resp {
        let form = form_of(parts, body);
        let (Some(token), Some(user), Some(pass)) = (
            field(&form, "oauth_token"),
            field(&form, "username"),
            field(&form, "password"),
        ) else {
            return text(
                StatusCode::BAD_REQUEST,
                "oauth_token, username and password required",
            );
        };
        let Some(user) = self.repository.authenticate(user, pass) else {
            return text(StatusCode::UNAUTHORIZED, "login failed");
        };
        let verifier = random_hex(12);
        let mut mem = lock(&self.memory);
        let callback = match self.live_request_token(&mut mem, token) {
            Ok(t) => {
                t.authorized = Some((user.name, Secret::new(verifier.clone())));
                t.callback.clone()
            }
            Err(reject) => return reject.into_response(),
        };
        drop(mem);
        if callback == "oob" {
            return text(StatusCode::OK, &format!("oauth_verifier={verifier}"));
        }
        let sep = if callback.contains('?') { '&' } else { '?' };
        let location = format!(
            "{callback}{sep}oauth_token={}&oauth_verifier={}",
            encode(token),
            encode(&verifier)
        );
        let mut resp = text(StatusCode::FOUND, "redirecting");
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                resp.headers_mut().insert(LOCATION, v);
                resp
            }
            Err(_) => text(
                StatusCode::BAD_REQUEST,
                "callback is not a valid header value",
            ),
        }
    }

    fn access_token(&self, parts: &Parts, body: &[u8]) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.verify(
            &mut mem,
            parts,
            &params,
            TokenUse::Request,
            &["oauth_verifier"],
        ) {
            Ok(k) => k,
            Err(reject) => return reject.into_response(),
        };
        let token = params.oauth("oauth_token").unwrap_or_default();
        let verifier = params.oauth("oauth_verifier").unwrap_or_default();
        let Some(request_token) = mem.request_tokens.get(token) else {
            return problem(StatusCode::UNAUTHORIZED, "token_rejected");
        };
        let user = match &request_token.authorized {
            None => return problem(StatusCode::FORBIDDEN, "token_not_authorized"),
            Some((user, expected)) if expected.expose() == verifier => user.clone(),
            Some(_) => return problem(StatusCode::UNAUTHORIZED, "verifier_invalid"),
        };
        mem.request_tokens.remove(token);
        let access = random_hex(16);
        let secret = random_hex(16);
        mem.access_tokens.insert(
            access.clone(),
            AccessToken {
                secret: Secret::new(secret.clone()),
                consumer_key,
                user,
                expires_at: self.config.access_token_ttl.map(|ttl| Instant::now() + ttl),
            },
        );
        form_response(&[("oauth_token", &access), ("oauth_token_secret", &secret)])
    }

    fn resource(&self, parts: &Parts, body: &[u8], db: &str, id: &str) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        if let Err(reject) = self.verify(&mut mem, parts, &params, TokenUse::Access, &[]) {
            return reject.into_response();
        }
        let token = params.oauth("oauth_token").unwrap_or_default();
        let user = mem
            .access_tokens
            .get(token)
            .map(|t| t.user.clone())
            .unwrap_or_default();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id,
                "db": db,
                "servedBy": self.config.name,
                "user": user,
            }),
        )
    }

    /// Verifies a signed request against this node's memory and returns its consumer key.
    ///
    /// Checks run in the order that keeps each answer honest: parameters, method, timestamp, consumer key,
    /// token, signature, and the nonce last, so that an unsigned request cannot fill the nonce store.
    fn verify(
        &self,
        mem: &mut Memory,
        parts: &Parts,
        params: &RequestParams,
        token_use: TokenUse,
        extra: &[&str],
    ) -> Result<String, Reject> {
        let mut required = vec![
            "oauth_consumer_key",
            "oauth_signature_method",
            "oauth_signature",
            "oauth_timestamp",
            "oauth_nonce",
        ];
        if token_use != TokenUse::None {
            required.push("oauth_token");
        }
        required.extend_from_slice(extra);
        let absent: Vec<&str> = required
            .into_iter()
            .filter(|name| params.oauth(name).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(Reject::problem_with(
                StatusCode::BAD_REQUEST,
                "parameter_absent",
                &[("oauth_parameters_absent", &absent.join("&"))],
            ));
        }
        let get = |name: &str| params.oauth(name).unwrap_or_default();
        if get("oauth_signature_method") != HMAC_SHA1 {
            return Err(Reject::problem(
                StatusCode::BAD_REQUEST,
                "signature_method_rejected",
            ));
        }
        if params.oauth("oauth_version").is_some_and(|v| v != "1.0") {
            return Err(Reject::problem(StatusCode::BAD_REQUEST, "version_rejected"));
        }
        let Ok(timestamp) = get("oauth_timestamp").parse::<u64>() else {
            return Err(Reject::problem(
                StatusCode::BAD_REQUEST,
                "parameter_rejected",
            ));
        };
        let now = unix_now();
        let window = self.config.timestamp_window.as_secs();
        if timestamp.abs_diff(now) > window {
            let range = format!("{}-{}", now.saturating_sub(window), now + window);
            return Err(Reject::problem_with(
                StatusCode::UNAUTHORIZED,
                "timestamp_refused",
                &[("oauth_acceptable_timestamps", &range)],
            ));
        }
        let consumer_key = get("oauth_consumer_key");
        let Some(consumer) = mem.registry.get(consumer_key) else {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                "consumer_key_unknown",
            ));
        };
        if !consumer.approved {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                "consumer_key_rejected",
            ));
        }
        let consumer_secret = consumer.secret.clone();
        let token = get("oauth_token");
        let now_instant = Instant::now();
        let token_secret = match token_use {
            TokenUse::None => Secret::new(""),
            TokenUse::Request => match mem.request_tokens.get(token) {
                Some(t) if t.consumer_key != consumer_key => {
                    return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_rejected"))
                }
                Some(t) if now_instant >= t.expires_at => {
                    mem.request_tokens.remove(token);
                    return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_expired"));
                }
                Some(t) => t.secret.clone(),
                None => return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_rejected")),
            },
            TokenUse::Access => match mem.access_tokens.get(token) {
                Some(t) if t.consumer_key != consumer_key => {
                    return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_rejected"))
                }
                Some(t) if t.expires_at.is_some_and(|at| now_instant >= at) => {
                    mem.access_tokens.remove(token);
                    return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_expired"));
                }
                Some(t) => t.secret.clone(),
                None => return Err(Reject::problem(StatusCode::UNAUTHORIZED, "token_rejected")),
            },
        };
        let Some(host) = host_of(parts) else {
            return Err(Reject::Plain(StatusCode::BAD_REQUEST, "missing Host"));
        };
        let base = signature::base_string(
            parts.method.as_str(),
            &signature::base_string_uri(self.public_scheme(parts), host, parts.uri.path()),
            &params.all,
        );
        if !signature::verify_hmac_sha1(
            &base,
            consumer_secret.expose(),
            token_secret.expose(),
            get("oauth_signature"),
        ) {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                "signature_invalid",
            ));
        }
        if mem.nonces.len() >= NONCE_PRUNE_THRESHOLD {
            let oldest = now.saturating_sub(window);
            mem.nonces.retain(|(_, _, ts)| *ts >= oldest);
        }
        let nonce = (
            consumer_key.to_string(),
            get("oauth_nonce").to_string(),
            timestamp,
        );
        if !mem.nonces.insert(nonce) {
            return Err(Reject::problem(StatusCode::UNAUTHORIZED, "nonce_used"));
        }
        Ok(consumer_key.to_string())
    }
}

/// Why a request is refused, kept as data until the edge turns it into a response.
enum Reject {
    /// An OAuth Problem Reporting answer (see [`problem_with`]).
    Problem {
        status: StatusCode,
        problem: &'static str,
        extra: Option<(&'static str, String)>,
    },
    /// A plain-text answer without `oauth_problem`.
    Plain(StatusCode, &'static str),
}

impl Reject {
    fn problem(status: StatusCode, problem: &'static str) -> Self {
        Reject::Problem {
            status,
            problem,
            extra: None,
        }
    }

    fn problem_with(
        status: StatusCode,
        problem: &'static str,
        extra: &[(&'static str, &str)],
    ) -> Self {
        Reject::Problem {
            status,
            problem,
            extra: extra.first().map(|(n, v)| (*n, v.to_string())),
        }
    }

    fn into_response(self) -> Resp {
        match self {
            Reject::Problem {
                status,
                problem,
                extra: None,
            } => problem_with(status, problem, &[]),
            Reject::Problem {
                status,
                problem,
                extra: Some((name, value)),
            } => problem_with(status, problem, &[(name, &value)]),
            Reject::Plain(status, body) => text(status, body),
        }
    }
}

enum Oslc<'a> {
    Discovery(&'a str),
    Resource(&'a str, &'a str),
}

/// `oslc/repo/{db}/discovery` and `oslc/repo/{db}/resource/{id}` (after `/cqweb/`).
fn oslc_route(rest: &str) -> Option<Oslc<'_>> {
    let rest = rest.strip_prefix("oslc/repo/")?;
    let (db, tail) = rest.split_once('/')?;
    if db.is_empty() {
        return None;
    }
    if tail == "discovery" {
        return Some(Oslc::Discovery(db));
    }
    let id = tail.strip_prefix("resource/")?;
    (!id.is_empty() && !id.contains('/')).then_some(Oslc::Resource(db, id))
}

fn host_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn form_of(parts: &Parts, body: &[u8]) -> Vec<(String, String)> {
    if is_form(parts) {
        percent::parse_form(body).unwrap_or_default()
    } else {
        Vec::new()
    }
}

fn query_of(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .and_then(|q| percent::parse_form(q.as_bytes()).ok())
        .unwrap_or_default()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn cookies<'a>(parts: &'a Parts, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v)
        })
}

fn oauth_params(parts: &Parts, body: &[u8]) -> Result<RequestParams, Reject> {
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let form = is_form(parts).then_some(body);
    signature::collect_params(parts.uri.query(), authorization, form).map_err(|e| match e {
        signature::ParamError::Duplicate(_) => {
            Reject::problem(StatusCode::BAD_REQUEST, "parameter_rejected")
        }
        _ => Reject::Plain(StatusCode::BAD_REQUEST, "malformed OAuth parameters"),
    })
}

fn text(status: StatusCode, body: &str) -> Resp {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

fn html(status: StatusCode, body: String) -> Resp {
    with_type(status, "text/html; charset=utf-8", body)
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    with_type(status, "application/json", body)
}

fn form_response(pairs: &[(&str, &str)]) -> Resp {
    let body = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    with_type(StatusCode::OK, "application/x-www-form-urlencoded", body)
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn problem(status: StatusCode, problem: &str) -> Resp {
    problem_with(status, problem, &[])
}

/// An OAuth Problem Reporting answer: the problem in `WWW-Authenticate` and in the body, and for problems
/// that mean "not known on this node" the product's own `invalid_expired_token` wording.
fn problem_with(status: StatusCode, problem: &str, extra: &[(&str, &str)]) -> Resp {
    let mut challenge = format!("OAuth realm=\"{REALM}\", oauth_problem=\"{problem}\"");
    let mut body = if STALE_PROBLEMS.contains(&problem) {
        format!(
            "{}: invalid_expired_token\noauth_problem={problem}\n",
            status.as_u16()
        )
    } else {
        format!("{}: {problem}\noauth_problem={problem}\n", status.as_u16())
    };
    for (n, v) in extra {
        challenge.push_str(&format!(", {n}=\"{}\"", encode(v)));
        body.push_str(&format!("{n}={}\n", encode(v)));
    }
    let mut resp = text(status, &body);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn handle(state: Arc<NodeState>, req: Request<Incoming>) -> Resp {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let mut resp = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => state.route(&parts, &collected.to_bytes()),
        Err(_) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large or unreadable",
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&state.config.name) {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    resp
}

/// A running node: its listener, its connections and its memory. Dropping it aborts everything.
#[derive(Debug)]
pub struct NodeServer {
    name: String,
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<NodeState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Memory holds secrets; show only what identifies the node.
        f.debug_struct("NodeState")
            .field("name", &self.config.name)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl NodeServer {
    /// Binds `addr` (port 0 for an ephemeral port; `SO_REUSEADDR` so a restart can take the same port back)
    /// and serves HTTP/1.1 and HTTP/2, over TLS when `tls` is given. The registry is loaded from `repository`.
    pub async fn start(
        config: NodeConfig,
        repository: Arc<Repository>,
        stats: Arc<NodeStats>,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<NodeServer, SimError> {
        let listener = bind(addr).map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let name = config.name.clone();
        let state = Arc::new(NodeState::new(config, repository, stats, tls.is_some()));
        let scheme = state.scheme;
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            listener,
            tls.map(TlsAcceptor::from),
            state.clone(),
            stop_rx,
        ));
        Ok(NodeServer {
            name,
            addr,
            scheme,
            state,
            stop: Some(stop_tx),
            task,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Registers a consumer key directly on this node (repository + this node's registry), as
    /// `POST /cqweb/oauth-request-consumer` would, and returns the key.
    pub fn register_key(&self, name: &str, secret: Secret) -> String {
        self.state.register_key(name, secret)
    }

    /// Closes the listener and every open connection, and waits until they are gone.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts until told to stop; connections live in a `JoinSet` so that stopping (or aborting this task)
/// drops them all, like a node that goes down.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<NodeState>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    tracing::warn!(node = %state.config.name, "accept failed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(TokioIo::new(stream), state).await;
                            }
                        }
                        None => serve_connection(TokioIo::new(stream), state).await,
                    }
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection<I>(io: I, state: Arc<NodeState>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslc_paths_are_recognised_exactly() {
        assert!(matches!(
            oslc_route("oslc/repo/cqschema/discovery"),
            Some(Oslc::Discovery("cqschema"))
        ));
        assert!(matches!(
            oslc_route("oslc/repo/cqschema/resource/42"),
            Some(Oslc::Resource("cqschema", "42"))
        ));
        assert!(oslc_route("oslc/repo//discovery").is_none());
        assert!(oslc_route("oslc/repo/db/resource/").is_none());
        assert!(oslc_route("oslc/repo/db/resource/a/b").is_none());
        assert!(oslc_route("oslc/other").is_none());
    }

    #[test]
    fn stale_problems_name_invalid_expired_token_and_others_do_not() {
        let body = |r: Resp| {
            let www = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_string();
            (www, format!("{:?}", r.into_body()))
        };
        let (www, b) = body(problem(StatusCode::UNAUTHORIZED, "consumer_key_unknown"));
        assert_eq!(
            www,
            "OAuth realm=\"cqweb\", oauth_problem=\"consumer_key_unknown\""
        );
        assert!(b.contains("401: invalid_expired_token"));
        let (_, b) = body(problem(StatusCode::UNAUTHORIZED, "nonce_used"));
        assert!(!b.contains("invalid_expired_token"));
    }
}
