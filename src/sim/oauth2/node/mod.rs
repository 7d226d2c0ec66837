//! One OAuth 2 / OpenID Connect authorization-server node whose clients, codes, tokens, device codes, pushed
//! requests and sessions live in its own [`Memory`]. Users come from the shared [`Repository`] (a
//! directory every node reads). A node that never heard of a client, code or token answers exactly as a
//! real server does: RFC 6749 §5.2 JSON errors, RFC 6750 §3.1 challenges, and — for revocation and
//! introspection — success (`200`, `{"active": false}`), which is why a proxy cannot judge those by the
//! answer.
//!
//! This file holds the node's state, routing and server; each endpoint family has its own file: `clients`
//! (RFC 7591/7592, client authentication), `authorize` (code + PKCE, PAR), `token` (grants, revocation,
//! introspection), `device` (RFC 8628), `oidc` (userinfo, end-session); `params` and `reply` read requests
//! and build answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, PRAGMA, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use sha2::Sha256;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::jwt::{self, IdClaims};
use super::memory::{
    AuthorizationRequest, Client, CodeGrant, DeviceState, Grant, Issued, Memory, Pushed, Session,
};
use super::wire::{self, auth_method, error, grant, ClientInformation, ClientMetadata};
use super::{basic, pkce};
use crate::oauth::percent::{self, encode};
use crate::secret::Secret;
use crate::sim::repository::{lock, Repository};
use crate::sim::SimError;
use crate::sim::{random_hex, unix_now};

mod authorize;
mod clients;
mod device;
mod oidc;
mod params;
mod reply;
mod token;

use authorize::*;
use clients::*;
use device::*;
use params::*;
use reply::*;

const BODY_LIMIT: usize = 64 * 1024;
/// Used codes and expired pushed requests are swept when a map grows past this.
const SWEEP_THRESHOLD: usize = 4096;

type Resp = Response<Full<Bytes>>;
type HmacSha256 = Hmac<Sha256>;

/// How one node behaves.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Sent in `X-Served-By` (e.g. `as_1`).
    pub name: String,
    /// Lifetime of access tokens (`expires_in`).
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Lifetime of device and user codes.
    pub device_code_ttl: Duration,
    /// Minimum time between two polls of one device code; a faster poll gets `slow_down`.
    pub device_poll_interval: Duration,
    /// Lifetime of PAR request URIs.
    pub par_ttl: Duration,
    /// Prepended to every issued client id (e.g. `urn:client:` to exercise RFC 6749 §2.3.1 encoding).
    pub client_id_prefix: String,
}

impl NodeConfig {
    /// Defaults: access tokens 1 hour, codes 1 minute, device codes 10 minutes polled at most every
    /// 0 s (tests poll at once; the interval is still advertised and enforced), PAR 1 minute, no prefix.
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            access_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            device_code_ttl: Duration::from_secs(600),
            device_poll_interval: Duration::ZERO,
            par_ttl: Duration::from_secs(60),
            client_id_prefix: String::new(),
        }
    }
}

/// Counters for tests and the demo. Relaxed atomics, bumped per request.
#[derive(Debug, Default)]
pub struct NodeStats {
    requests: AtomicU64,
    registrations: AtomicU64,
}

impl NodeStats {
    /// Requests received, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Clients registered here.
    pub fn registrations(&self) -> u64 {
        self.registrations.load(Ordering::Relaxed)
    }
}

/// The state a running node serves from. One `std::sync::Mutex` over the memory: handlers are synchronous
/// between reading the body and building the answer, so the lock is never held across `.await`, and
/// check-then-consume (single-use codes, rotation, request URIs) stays atomic.
struct NodeState {
    config: NodeConfig,
    users: Arc<Repository>,
    stats: Arc<NodeStats>,
    memory: Mutex<Memory>,
    /// Per-node HMAC key: secrets are compared as HMACs with `verify_slice` (constant time).
    compare_key: [u8; 32],
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// A failed request, kept as data until [`Reject::into_response`].
#[derive(Debug)]
enum Reject {
    /// RFC 6749 §5.2 JSON with this status.
    OAuth(StatusCode, &'static str, &'static str),
    /// `invalid_client` with 401 and `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    ClientBasic(&'static str),
    /// RFC 6750 §3.1: 401 `Bearer` challenge, with `invalid_token` when a token was presented.
    Bearer(Option<&'static str>),
    /// A page for the user's browser.
    Page(StatusCode, &'static str),
}

impl Reject {
    fn bad(code: &'static str, description: &'static str) -> Reject {
        Reject::OAuth(StatusCode::BAD_REQUEST, code, description)
    }

    fn into_response(self) -> Resp {
        match self {
            Reject::OAuth(status, code, description) => oauth_error(status, code, description),
            Reject::ClientBasic(description) => {
                let mut r =
                    oauth_error(StatusCode::UNAUTHORIZED, error::INVALID_CLIENT, description);
                insert(
                    &mut r,
                    WWW_AUTHENTICATE,
                    &format!("Basic realm=\"{}\"", wire::REALM),
                );
                r
            }
            Reject::Bearer(description) => {
                let (body, challenge) = match description {
                    Some(d) => (
                        serde_json::json!({"error": error::INVALID_TOKEN, "error_description": d}),
                        format!(
                            "Bearer realm=\"{}\", error=\"{}\", error_description=\"{d}\"",
                            wire::REALM,
                            error::INVALID_TOKEN
                        ),
                    ),
                    None => (
                        serde_json::json!({}),
                        format!("Bearer realm=\"{}\"", wire::REALM),
                    ),
                };
                let mut r = json(StatusCode::UNAUTHORIZED, &body);
                insert(&mut r, WWW_AUTHENTICATE, &challenge);
                r
            }
            Reject::Page(status, message) => text(status, message),
        }
    }
}

type Answer = Result<Resp, Reject>;

impl NodeState {
    fn route(&self, parts: &Parts, body: &[u8]) -> Resp {
        let path = parts.uri.path();
        let m = &parts.method;
        let answer = match path {
            wire::HEALTH if m == Method::GET => Ok(text(StatusCode::OK, "ok")),
            wire::DISCOVERY if m == Method::GET => self.discovery(parts),
            wire::JWKS if m == Method::GET => {
                Ok(json(StatusCode::OK, &serde_json::json!({"keys": []})))
            }
            wire::REGISTER if m == Method::POST => self.register(parts, body),
            wire::AUTHORIZE if m == Method::GET => self.authorize(parts, None),
            wire::AUTHORIZE if m == Method::POST => {
                self.authorize(parts, Some(&form_of(parts, body)))
            }
            wire::TOKEN if m == Method::POST => self.token(parts, body),
            wire::REVOKE if m == Method::POST => self.revoke(parts, body),
            wire::INTROSPECT if m == Method::POST => self.introspect(parts, body),
            wire::DEVICE_AUTHORIZATION if m == Method::POST => {
                self.device_authorization(parts, body)
            }
            wire::DEVICE_VERIFICATION if m == Method::GET => Ok(device_page(parts)),
            wire::DEVICE_VERIFICATION if m == Method::POST => self.verify_device(parts, body),
            wire::PAR if m == Method::POST => self.par(parts, body),
            wire::USERINFO if m == Method::GET || m == Method::POST => self.userinfo(parts),
            wire::END_SESSION if m == Method::GET => self.end_session(parts),
            wire::HEALTH
            | wire::DISCOVERY
            | wire::JWKS
            | wire::REGISTER
            | wire::AUTHORIZE
            | wire::TOKEN
            | wire::REVOKE
            | wire::INTROSPECT
            | wire::DEVICE_AUTHORIZATION
            | wire::DEVICE_VERIFICATION
            | wire::PAR
            | wire::USERINFO
            | wire::END_SESSION => Err(Reject::Page(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )),
            _ => match client_uri_id(path) {
                Some(id) => self.manage_client(parts, body, &id),
                None => Err(Reject::Page(StatusCode::NOT_FOUND, "not found")),
            },
        };
        answer.unwrap_or_else(Reject::into_response)
    }

    /// `{scheme}://{host}` as the client sees it (`X-Forwarded-Proto` honoured), so that behind a proxy every
    /// URL the node hands out points at the proxy.
    fn issuer(&self, parts: &Parts) -> Result<String, Reject> {
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .ok_or(Reject::bad(error::INVALID_REQUEST, "missing Host"))?;
        let scheme = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| v.eq_ignore_ascii_case("https"))
            .map_or("http", |_| "https");
        Ok(format!("{scheme}://{host}"))
    }

    fn discovery(&self, parts: &Parts) -> Answer {
        Ok(json(
            StatusCode::OK,
            &wire::Discovery::for_issuer(&self.issuer(parts)?),
        ))
    }
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
        resp.headers_mut().insert(wire::SERVED_BY, v);
    }
    resp
}

/// A running node. Dropping it aborts its listener and connections; [`Node::stop`] waits for them.
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
    state: Arc<NodeState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Node {
    /// Binds `addr` (port 0 for an ephemeral one) and serves HTTP/1.1 and HTTP/2 with empty memory; users
    /// are authenticated against `users`.
    pub async fn start(
        config: NodeConfig,
        users: Arc<Repository>,
        stats: Arc<NodeStats>,
        addr: SocketAddr,
    ) -> Result<Node, SimError> {
        let listener = bind(addr).map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let state = Arc::new(NodeState {
            config,
            users,
            stats,
            memory: Mutex::new(Memory::default()),
            compare_key: rand::random(),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, state.clone(), stop_rx));
        Ok(Node {
            addr,
            state,
            stop: Some(stop_tx),
            task,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.state.config.name
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Clients registered here and still held in memory.
    pub fn clients(&self) -> usize {
        lock(&self.state.memory).clients.len()
    }

    /// Closes the listener and every connection, and waits until they are gone.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Node {
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

async fn accept_loop(
    listener: TcpListener,
    state: Arc<NodeState>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}
