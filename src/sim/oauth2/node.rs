//! One OAuth 2 / OpenID Connect authorization-server node whose clients, codes, tokens, device codes, pushed
//! requests and sessions live in its own [`Memory`]. Users come from the shared [`Repository`] (a
//! directory every node reads). A node that never heard of a client, code or token answers exactly as a
//! real server does: RFC 6749 §5.2 JSON errors, RFC 6750 §3.1 challenges, and — for revocation and
//! introspection — success (`200`, `{"active": false}`), which is why a proxy cannot judge those by the
//! answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, PRAGMA, SET_COOKIE,
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

    fn secret_matches(&self, stored: &Secret, presented: &str) -> bool {
        let keyed = || {
            HmacSha256::new_from_slice(&self.compare_key).expect("HMAC accepts keys of any length")
        };
        let expected = keyed()
            .chain_update(stored.expose().as_bytes())
            .finalize()
            .into_bytes();
        keyed()
            .chain_update(presented.as_bytes())
            .verify_slice(&expected)
            .is_ok()
    }

    /// RFC 6749 §2.3.1 client authentication, by the method the client registered. With `Authorization:
    /// Basic` a failure is 401 with a `Basic` challenge; with credentials in the body it is 400.
    fn authenticate(
        &self,
        mem: &Memory,
        parts: &Parts,
        form: &[(String, String)],
    ) -> Result<String, Reject> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
        if let Some(header) = header {
            let (id, secret) = basic::decode(header)
                .map_err(|_| Reject::ClientBasic("malformed Basic credentials"))?;
            if field(form, "client_secret").is_some() {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "more than one client authentication method",
                ));
            }
            if field(form, "client_id").is_some_and(|f| f != id) {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "client_id differs from the authenticated client",
                ));
            }
            let client = mem
                .clients
                .get(&id)
                .ok_or(Reject::ClientBasic("unknown client"))?;
            if !self.secret_matches(&client.secret, &secret) {
                return Err(Reject::ClientBasic("client authentication failed"));
            }
            if client.auth_method() != auth_method::BASIC {
                return Err(Reject::ClientBasic(
                    "client registered another authentication method",
                ));
            }
            return Ok(id);
        }
        let Some(id) = field(form, "client_id") else {
            return Err(Reject::ClientBasic("client authentication required"));
        };
        let invalid = |d| Reject::bad(error::INVALID_CLIENT, d);
        let client = mem.clients.get(id).ok_or(invalid("unknown client"))?;
        let secret = field(form, "client_secret").ok_or(invalid("client_secret required"))?;
        if !self.secret_matches(&client.secret, secret) {
            return Err(invalid("client authentication failed"));
        }
        if client.auth_method() != auth_method::POST {
            return Err(invalid("client registered another authentication method"));
        }
        Ok(id.to_string())
    }

    fn register(&self, parts: &Parts, body: &[u8]) -> Answer {
        let metadata = serde_json::from_slice::<ClientMetadata>(body).map_err(|_| {
            Reject::bad(
                error::INVALID_CLIENT_METADATA,
                "expected RFC 7591 JSON client metadata",
            )
        })?;
        let metadata = validated(metadata)?;
        let issuer = self.issuer(parts)?;
        let id = format!("{}{}", self.config.client_id_prefix, random_hex(12));
        let client = Client {
            secret: Secret::new(new_client_secret()),
            registration_token: Secret::new(random_hex(20)),
            issued_at: unix_now(),
            metadata,
        };
        let info = client_information(&issuer, &id, &client);
        lock(&self.memory).clients.insert(id, client);
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
        Ok(no_store(json(StatusCode::CREATED, &info)))
    }

    /// RFC 7592 read (`GET`), update (`PUT`) and delete (`DELETE`) with the registration access token.
    fn manage_client(&self, parts: &Parts, body: &[u8], id: &str) -> Answer {
        let issuer = self.issuer(parts)?;
        let presented = bearer(parts).ok_or(Reject::Bearer(None))?;
        let mut mem = lock(&self.memory);
        // RFC 7592 §2: a client unknown here and a wrong token get the same 401.
        let client = mem
            .clients
            .get(id)
            .filter(|c| self.secret_matches(&c.registration_token, presented))
            .ok_or(Reject::Bearer(Some("unknown registration access token")))?;
        match parts.method {
            Method::GET => Ok(no_store(json(
                StatusCode::OK,
                &client_information(&issuer, id, client),
            ))),
            Method::PUT => {
                let update = serde_json::from_slice::<serde_json::Value>(body)
                    .map_err(|_| Reject::bad(error::INVALID_CLIENT_METADATA, "expected JSON"))?;
                if update.get("client_id").and_then(|v| v.as_str()) != Some(id) {
                    return Err(Reject::bad(error::INVALID_REQUEST, "client_id must match"));
                }
                if let Some(secret) = update.get("client_secret").and_then(|v| v.as_str()) {
                    if !self.secret_matches(&client.secret, secret) {
                        return Err(Reject::bad(
                            error::INVALID_REQUEST,
                            "client_secret must match",
                        ));
                    }
                }
                let metadata = serde_json::from_value::<ClientMetadata>(update)
                    .map_err(|_| Reject::bad(error::INVALID_CLIENT_METADATA, "bad metadata"))?;
                let metadata = validated(metadata)?;
                let client = mem
                    .clients
                    .get_mut(id)
                    .ok_or(Reject::Bearer(Some("client deleted")))?;
                client.metadata = metadata;
                Ok(no_store(json(
                    StatusCode::OK,
                    &client_information(&issuer, id, client),
                )))
            }
            Method::DELETE => {
                mem.clients.remove(id);
                let mut r = text(StatusCode::NO_CONTENT, "");
                r.headers_mut().remove(CONTENT_TYPE);
                Ok(r)
            }
            _ => Err(Reject::Page(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )),
        }
    }

    /// The authorization endpoint. `GET` checks the request and shows the login page (or, with a live
    /// session here, answers at once); `POST` (same query, credentials in the form) logs the user in and
    /// redirects with a code.
    fn authorize(&self, parts: &Parts, login: Option<&[(String, String)]>) -> Answer {
        let query = query_of(parts);
        let client_id = field(&query, "client_id")
            .ok_or(Reject::bad(error::INVALID_REQUEST, "client_id required"))?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        // Client and redirect URI are checked before anything can be redirected (RFC 6749 §4.1.2.1).
        let client = mem
            .clients
            .get(client_id)
            .ok_or(Reject::bad(error::INVALID_CLIENT, "unknown client"))?;
        let request_uri = field(&query, "request_uri");
        let request = match request_uri {
            Some(uri) => mem
                .pushed
                .get(uri)
                .filter(|p| p.request.client_id == client_id && p.expires_at > now)
                .map(|p| p.request.clone())
                .ok_or(Reject::bad(
                    error::INVALID_REQUEST_URI,
                    "unknown or expired request_uri",
                ))?,
            None => authorization_request(&query, client_id),
        };
        if !client
            .metadata
            .redirect_uris
            .contains(&request.redirect_uri)
        {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "redirect_uri not registered",
            ));
        }
        if request.response_type != "code" {
            return Ok(redirect_error(&request, error::UNSUPPORTED_RESPONSE_TYPE));
        }
        if request.code_challenge.is_none()
            || request.code_challenge_method.as_deref() != Some("S256")
        {
            return Ok(redirect_error(&request, error::INVALID_REQUEST));
        }
        let session = cookie(parts, wire::SESSION_COOKIE)
            .filter(|sid| mem.sessions.contains_key(*sid))
            .map(str::to_string);
        let (sid, user, new_session) = match (login, session) {
            (None, Some(sid)) => {
                let user = mem.sessions[&sid].user.clone();
                (sid, user, false)
            }
            (None, None) => return Ok(login_page()),
            (Some(form), _) => {
                let user = field(form, "username")
                    .zip(field(form, "password"))
                    .and_then(|(u, p)| self.users.authenticate(u, p))
                    .ok_or(Reject::Page(StatusCode::UNAUTHORIZED, "login failed"))?;
                let sid = random_hex(16);
                mem.sessions.insert(
                    sid.clone(),
                    Session {
                        user: user.name.clone(),
                    },
                );
                (sid, user.name, true)
            }
        };
        if let Some(uri) = request_uri {
            mem.pushed.remove(uri);
        }
        let code = random_hex(16);
        let mut location = request.redirect_uri.clone();
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(&format!("code={}", encode(&code)));
        if let Some(state) = &request.state {
            location.push_str(&format!("&state={}", encode(state)));
        }
        if mem.codes.len() >= SWEEP_THRESHOLD {
            mem.codes.retain(|_, c| c.expires_at > now);
        }
        mem.codes.insert(
            code,
            CodeGrant {
                request,
                user,
                sid: sid.clone(),
                auth_time: unix_now(),
                expires_at: now + self.config.code_ttl,
                issued: None,
            },
        );
        let mut r = text(StatusCode::FOUND, "");
        insert(&mut r, LOCATION, &location);
        if new_session {
            insert(
                &mut r,
                SET_COOKIE,
                &format!("{}={sid}; Path=/; HttpOnly", wire::SESSION_COOKIE),
            );
        }
        Ok(r)
    }

    fn token(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let grant_type = field(&form, "grant_type")
            .ok_or(Reject::bad(error::INVALID_REQUEST, "grant_type required"))?;
        let issuer = self.issuer(parts)?;
        let now = Instant::now();
        let ttl = self.config.access_token_ttl;
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if ![
            grant::AUTHORIZATION_CODE,
            grant::REFRESH_TOKEN,
            grant::CLIENT_CREDENTIALS,
            grant::DEVICE_CODE,
        ]
        .contains(&grant_type)
        {
            return Err(Reject::bad(
                error::UNSUPPORTED_GRANT_TYPE,
                "unsupported grant_type",
            ));
        }
        let client = mem.clients[&client_id].clone();
        if !client.allows_grant(grant_type) {
            return Err(Reject::bad(
                error::UNAUTHORIZED_CLIENT,
                "grant type not registered for this client",
            ));
        }
        let with_refresh = client.allows_grant(grant::REFRESH_TOKEN);
        let invalid_grant = |d| Reject::bad(error::INVALID_GRANT, d);
        let id_token =
            |issued: &Issued, user: &str, nonce: Option<String>, sid: Option<String>, auth_time| {
                let claims = IdClaims {
                    iss: issuer.clone(),
                    sub: user.to_string(),
                    aud: client_id.clone(),
                    exp: unix_now() + ttl.as_secs(),
                    iat: unix_now(),
                    auth_time,
                    nonce,
                    sid,
                    at_hash: Some(jwt::at_hash(&issued.access_token)),
                };
                jwt::sign(&claims, client.secret.expose().as_bytes())
            };
        let response = match grant_type {
            grant::AUTHORIZATION_CODE => {
                let code = field(&form, "code")
                    .ok_or(Reject::bad(error::INVALID_REQUEST, "code required"))?;
                let entry = mem
                    .codes
                    .get(code)
                    .ok_or(invalid_grant("unknown code"))?
                    .clone();
                if entry.request.client_id != client_id {
                    return Err(invalid_grant("code issued to another client"));
                }
                if let Some((access, refresh)) = &entry.issued {
                    // A replayed code: refuse, and revoke what the first exchange issued (RFC 6749 §4.1.2).
                    mem.access.remove(access);
                    if let Some(r) = refresh {
                        mem.refresh.remove(r);
                    }
                    mem.codes.remove(code);
                    return Err(invalid_grant("code already used"));
                }
                if entry.expires_at <= now {
                    mem.codes.remove(code);
                    return Err(invalid_grant("code expired"));
                }
                if field(&form, "redirect_uri") != Some(entry.request.redirect_uri.as_str()) {
                    return Err(invalid_grant(
                        "redirect_uri differs from the authorization request",
                    ));
                }
                let challenge = entry.request.code_challenge.as_deref().unwrap_or_default();
                if !field(&form, "code_verifier").is_some_and(|v| pkce::verify(v, challenge)) {
                    return Err(invalid_grant("PKCE verification failed"));
                }
                let grant = Grant {
                    client_id: client_id.clone(),
                    user: Some(entry.user.clone()),
                    scope: entry.request.scope.clone(),
                };
                let issued = mem.issue(grant, ttl, with_refresh, now);
                if let Some(c) = mem.codes.get_mut(code) {
                    c.issued = Some((issued.access_token.clone(), issued.refresh_token.clone()));
                }
                let id = has_openid(&entry.request.scope).then(|| {
                    id_token(
                        &issued,
                        &entry.user,
                        entry.request.nonce.clone(),
                        Some(entry.sid.clone()),
                        entry.auth_time,
                    )
                });
                token_response(issued, &entry.request.scope, id)
            }
            grant::REFRESH_TOKEN => {
                let refresh = field(&form, "refresh_token").ok_or(Reject::bad(
                    error::INVALID_REQUEST,
                    "refresh_token required",
                ))?;
                let (grant, issued) = mem
                    .rotate(refresh, &client_id, ttl, now)
                    .ok_or(invalid_grant("unknown refresh token"))?;
                token_response(issued, &grant.scope, None)
            }
            grant::CLIENT_CREDENTIALS => {
                let scope = field(&form, "scope").unwrap_or("api").to_string();
                let grant = Grant {
                    client_id: client_id.clone(),
                    user: None,
                    scope: scope.clone(),
                };
                // No refresh token for client credentials (RFC 6749 §4.4.3).
                token_response(mem.issue(grant, ttl, false, now), &scope, None)
            }
            _ => {
                let code = field(&form, "device_code")
                    .ok_or(Reject::bad(error::INVALID_REQUEST, "device_code required"))?;
                let interval = self.config.device_poll_interval;
                let device = mem
                    .devices
                    .get_mut(code)
                    .ok_or(invalid_grant("unknown device_code"))?;
                if device.client_id != client_id {
                    return Err(invalid_grant("device_code issued to another client"));
                }
                if device.expires_at <= now {
                    mem.remove_device(code);
                    return Err(Reject::bad(error::EXPIRED_TOKEN, "device_code expired"));
                }
                let too_soon = device.last_poll.is_some_and(|t| now < t + interval);
                device.last_poll = Some(now);
                if too_soon {
                    return Err(Reject::bad(
                        error::SLOW_DOWN,
                        "polled faster than the interval",
                    ));
                }
                let (state, scope) = (device.state.clone(), device.scope.clone());
                match state {
                    DeviceState::Pending => {
                        return Err(Reject::bad(
                            error::AUTHORIZATION_PENDING,
                            "the user has not approved yet",
                        ))
                    }
                    DeviceState::Denied => {
                        mem.remove_device(code);
                        return Err(Reject::bad(
                            error::ACCESS_DENIED,
                            "the user denied the device",
                        ));
                    }
                    DeviceState::Approved(user) => {
                        mem.remove_device(code);
                        let grant = Grant {
                            client_id: client_id.clone(),
                            user: Some(user.clone()),
                            scope: scope.clone(),
                        };
                        let issued = mem.issue(grant, ttl, with_refresh, now);
                        let id = has_openid(&scope)
                            .then(|| id_token(&issued, &user, None, None, unix_now()));
                        token_response(issued, &scope, id)
                    }
                }
            }
        };
        Ok(no_store(json(StatusCode::OK, &response)))
    }

    /// RFC 7009: 200 whether or not the token was known here.
    fn revoke(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        let token =
            field(&form, "token").ok_or(Reject::bad(error::INVALID_REQUEST, "token required"))?;
        mem.revoke(token, field(&form, "token_type_hint"), &client_id);
        Ok(text(StatusCode::OK, ""))
    }

    /// RFC 7662: `{"active": false}` for a token this node never issued, or no longer honours.
    fn introspect(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        self.authenticate(&mem, parts, &form)?;
        let token =
            field(&form, "token").ok_or(Reject::bad(error::INVALID_REQUEST, "token required"))?;
        let describe = |g: &Grant, kind: &str, exp: Option<u64>| wire::Introspection {
            active: true,
            client_id: Some(g.client_id.clone()),
            scope: Some(g.scope.clone()),
            sub: Some(g.user.clone().unwrap_or_else(|| g.client_id.clone())),
            token_type: Some(kind.to_string()),
            exp,
        };
        let answer = match mem.active_access(token, now) {
            Some(a) => describe(&a.grant, "access_token", Some(a.exp_unix)),
            None => match mem.refresh.get(token) {
                Some(g) => describe(g, "refresh_token", None),
                None => wire::Introspection::default(),
            },
        };
        Ok(no_store(json(StatusCode::OK, &answer)))
    }

    fn device_authorization(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let issuer = self.issuer(parts)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if !mem.clients[&client_id].allows_grant(grant::DEVICE_CODE) {
            return Err(Reject::bad(
                error::UNAUTHORIZED_CLIENT,
                "device grant not registered for this client",
            ));
        }
        let scope = field(&form, "scope").unwrap_or("openid");
        let ttl = self.config.device_code_ttl;
        let (device_code, user_code) = mem.new_device(&client_id, scope, now + ttl);
        let verification_uri = format!("{issuer}{}", wire::DEVICE_VERIFICATION);
        let answer = wire::DeviceAuthorization {
            verification_uri_complete: format!(
                "{verification_uri}?user_code={}",
                encode(&user_code)
            ),
            verification_uri,
            device_code,
            user_code,
            expires_in: ttl.as_secs(),
            interval: self.config.device_poll_interval.as_secs(),
        };
        Ok(no_store(json(StatusCode::OK, &answer)))
    }

    /// The user types the user code and their credentials; `approve=no` denies.
    fn verify_device(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = form_of(parts, body);
        let user = field(&form, "username")
            .zip(field(&form, "password"))
            .and_then(|(u, p)| self.users.authenticate(u, p))
            .ok_or(Reject::Page(StatusCode::UNAUTHORIZED, "login failed"))?;
        let user_code = field(&form, "user_code").unwrap_or_default();
        let approve = field(&form, "approve") != Some("no");
        let decided = lock(&self.memory).decide_device(
            user_code,
            approve.then_some(user.name.as_str()),
            Instant::now(),
        );
        if decided {
            Ok(text(
                StatusCode::OK,
                if approve {
                    "device approved"
                } else {
                    "device denied"
                },
            ))
        } else {
            Err(Reject::Page(
                StatusCode::BAD_REQUEST,
                "unknown or expired user code",
            ))
        }
    }

    /// RFC 9126: the authorization request, authenticated, in exchange for a one-time `request_uri`.
    fn par(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if field(&form, "request_uri").is_some() {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "request_uri is not allowed in a pushed request",
            ));
        }
        let request = authorization_request(&form, &client_id);
        if !mem.clients[&client_id]
            .metadata
            .redirect_uris
            .contains(&request.redirect_uri)
        {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "redirect_uri not registered",
            ));
        }
        if mem.pushed.len() >= SWEEP_THRESHOLD {
            mem.pushed.retain(|_, p| p.expires_at > now);
        }
        let request_uri = format!("{}{}", wire::REQUEST_URI_PREFIX, random_hex(16));
        let ttl = self.config.par_ttl;
        mem.pushed.insert(
            request_uri.clone(),
            Pushed {
                request,
                expires_at: now + ttl,
            },
        );
        let answer = wire::ParResponse {
            request_uri,
            expires_in: ttl.as_secs(),
        };
        Ok(no_store(json(StatusCode::CREATED, &answer)))
    }

    fn userinfo(&self, parts: &Parts) -> Answer {
        let token = bearer(parts).ok_or(Reject::Bearer(None))?;
        let mut mem = lock(&self.memory);
        let access = mem
            .active_access(token, Instant::now())
            .ok_or(Reject::Bearer(Some("unknown or expired access token")))?;
        match &access.grant.user {
            Some(user) if has_openid(&access.grant.scope) => Ok(json(
                StatusCode::OK,
                &wire::UserInfo {
                    sub: user.clone(),
                    preferred_username: user.clone(),
                },
            )),
            _ => {
                let mut r = oauth_error(
                    StatusCode::FORBIDDEN,
                    error::INSUFFICIENT_SCOPE,
                    "openid scope with a user required",
                );
                insert(
                    &mut r,
                    WWW_AUTHENTICATE,
                    &format!(
                        "Bearer realm=\"{}\", error=\"{}\"",
                        wire::REALM,
                        error::INSUFFICIENT_SCOPE
                    ),
                );
                Ok(r)
            }
        }
    }

    /// RP-initiated logout: the id_token_hint names the client (its secret verifies the hint) and the
    /// session (`sid`), which ends here.
    fn end_session(&self, parts: &Parts) -> Answer {
        let query = query_of(parts);
        let hint = field(&query, "id_token_hint").ok_or(Reject::bad(
            error::INVALID_REQUEST,
            "id_token_hint required",
        ))?;
        let unverified = jwt::claims_unverified(hint)
            .map_err(|_| Reject::bad(error::INVALID_REQUEST, "malformed id_token_hint"))?;
        let mut mem = lock(&self.memory);
        let client = mem.clients.get(&unverified.aud).ok_or(Reject::bad(
            error::INVALID_REQUEST,
            "id_token_hint was not issued here",
        ))?;
        let claims = jwt::verify(hint, client.secret.expose().as_bytes())
            .map_err(|_| Reject::bad(error::INVALID_REQUEST, "id_token_hint does not verify"))?;
        let redirect = match field(&query, "post_logout_redirect_uri") {
            Some(uri)
                if client
                    .metadata
                    .post_logout_redirect_uris
                    .iter()
                    .any(|u| u == uri) =>
            {
                Some(uri)
            }
            Some(_) => {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "post_logout_redirect_uri not registered",
                ))
            }
            None => None,
        };
        if let Some(sid) = &claims.sid {
            mem.sessions.remove(sid);
        }
        let mut r = match redirect {
            Some(uri) => {
                let mut location = uri.to_string();
                if let Some(state) = field(&query, "state") {
                    location.push(if location.contains('?') { '&' } else { '?' });
                    location.push_str(&format!("state={}", encode(state)));
                }
                let mut r = text(StatusCode::FOUND, "");
                insert(&mut r, LOCATION, &location);
                r
            }
            None => text(StatusCode::OK, "logged out"),
        };
        insert(
            &mut r,
            SET_COOKIE,
            &format!("{}=; Path=/; Max-Age=0", wire::SESSION_COOKIE),
        );
        Ok(r)
    }
}

/// RFC 7591 §2 defaults and checks.
fn validated(mut m: ClientMetadata) -> Result<ClientMetadata, Reject> {
    let method = m
        .token_endpoint_auth_method
        .get_or_insert_with(|| auth_method::BASIC.to_string());
    if method != auth_method::BASIC && method != auth_method::POST {
        return Err(Reject::bad(
            error::INVALID_CLIENT_METADATA,
            "unsupported token_endpoint_auth_method",
        ));
    }
    if m.grant_types.is_empty() {
        m.grant_types.push(grant::AUTHORIZATION_CODE.to_string());
    }
    let known = [
        grant::AUTHORIZATION_CODE,
        grant::REFRESH_TOKEN,
        grant::CLIENT_CREDENTIALS,
        grant::DEVICE_CODE,
    ];
    if m.grant_types.iter().any(|g| !known.contains(&g.as_str())) {
        return Err(Reject::bad(
            error::INVALID_CLIENT_METADATA,
            "unsupported grant type",
        ));
    }
    if m.response_types.is_empty() {
        m.response_types.push("code".to_string());
    }
    let absolute = |u: &String| {
        u.parse::<http::Uri>().is_ok_and(|p| {
            matches!(p.scheme_str(), Some("http" | "https")) && p.authority().is_some()
        }) && !u.contains('#')
    };
    if !m
        .redirect_uris
        .iter()
        .chain(&m.post_logout_redirect_uris)
        .all(absolute)
    {
        return Err(Reject::bad(
            error::INVALID_REDIRECT_URI,
            "redirect URIs must be absolute, without fragment",
        ));
    }
    if m.grant_types.iter().any(|g| g == grant::AUTHORIZATION_CODE) && m.redirect_uris.is_empty() {
        return Err(Reject::bad(
            error::INVALID_REDIRECT_URI,
            "the code grant needs redirect_uris",
        ));
    }
    m.scope.get_or_insert_with(|| "openid profile".to_string());
    Ok(m)
}

fn client_information(issuer: &str, id: &str, c: &Client) -> ClientInformation {
    ClientInformation {
        client_id: id.to_string(),
        client_secret: c.secret.expose().to_string(),
        client_id_issued_at: c.issued_at,
        client_secret_expires_at: 0,
        registration_access_token: c.registration_token.expose().to_string(),
        registration_client_uri: format!("{issuer}{}/{}", wire::REGISTER, encode(id)),
        metadata: c.metadata.clone(),
    }
}

/// The client id of an RFC 7592 client configuration path `REGISTER/{id}` (percent-decoded once).
fn client_uri_id(path: &str) -> Option<String> {
    let encoded = path.strip_prefix(wire::REGISTER)?.strip_prefix('/')?;
    (!encoded.is_empty() && !encoded.contains('/'))
        .then(|| percent::decode(encoded).ok())
        .flatten()
}

/// Base64 of 25 random bytes, standard alphabet: every secret ends in `==` and most hold `+` or `/`, which
/// clients must form-encode in Basic credentials and bodies (RFC 6749 §2.3.1).
fn new_client_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 25] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn authorization_request(params: &[(String, String)], client_id: &str) -> AuthorizationRequest {
    let get = |n| field(params, n).map(str::to_string);
    AuthorizationRequest {
        client_id: client_id.to_string(),
        response_type: get("response_type").unwrap_or_default(),
        redirect_uri: get("redirect_uri").unwrap_or_default(),
        scope: get("scope").unwrap_or_else(|| "openid".to_string()),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
    }
}

fn has_openid(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "openid")
}

fn token_response(issued: Issued, scope: &str, id_token: Option<String>) -> wire::TokenResponse {
    wire::TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_string(),
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token,
        scope: Some(scope.to_string()),
        id_token,
    }
}

/// RFC 6749 §4.1.2.1: an error sent back to the client's redirect URI.
fn redirect_error(request: &AuthorizationRequest, code: &str) -> Resp {
    let mut location = request.redirect_uri.clone();
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str(&format!("error={code}"));
    if let Some(state) = &request.state {
        location.push_str(&format!("&state={}", encode(state)));
    }
    let mut r = text(StatusCode::FOUND, "");
    insert(&mut r, LOCATION, &location);
    r
}

fn login_page() -> Resp {
    // The form posts to the same URL (the query carries the authorization request).
    html(
        "<!doctype html><title>Sign in</title><form method=\"post\">\
         <input name=\"username\"><input name=\"password\" type=\"password\">\
         <button>Sign in</button></form>",
    )
}

fn device_page(parts: &Parts) -> Resp {
    let typed = field(&query_of(parts), "user_code")
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .unwrap_or_default();
    html(&format!(
        "<!doctype html><title>Connect a device</title><form method=\"post\">\
         <input name=\"user_code\" value=\"{typed}\"><input name=\"username\">\
         <input name=\"password\" type=\"password\"><button name=\"approve\" value=\"yes\">Allow</button>\
         <button name=\"approve\" value=\"no\">Deny</button></form>"
    ))
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

fn cookie<'a>(parts: &'a Parts, name: &'a str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v)
        })
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

/// The form body of an endpoint that takes only forms; anything else is `invalid_request`.
fn require_form(parts: &Parts, body: &[u8]) -> Result<Vec<(String, String)>, Reject> {
    if !is_form(parts) {
        return Err(Reject::bad(
            error::INVALID_REQUEST,
            "expected application/x-www-form-urlencoded",
        ));
    }
    let form = percent::parse_form(body)
        .map_err(|_| Reject::bad(error::INVALID_REQUEST, "malformed form body"))?;
    // RFC 6749 §3.1: parameters must not be repeated.
    let mut names: Vec<&str> = form.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Reject::bad(error::INVALID_REQUEST, "repeated parameter"));
    }
    Ok(form)
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

fn insert(r: &mut Resp, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &str) -> Resp {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

fn html(body: &str) -> Resp {
    with_type(StatusCode::OK, "text/html; charset=utf-8", body.to_string())
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    with_type(status, "application/json", body)
}

/// RFC 6749 §5.1: answers carrying credentials must not be cached.
fn no_store(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Resp {
    let body = wire::ErrorBody {
        error: code.to_string(),
        error_description: Some(description.to_string()),
    };
    no_store(json(status, &body))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_configuration_paths_yield_the_decoded_client_id() {
        assert_eq!(client_uri_id("/oauth2/register/abc"), Some("abc".into()));
        assert_eq!(
            client_uri_id("/oauth2/register/urn%3Ac%3A1"),
            Some("urn:c:1".into())
        );
        assert_eq!(client_uri_id("/oauth2/register/"), None);
        assert_eq!(client_uri_id("/oauth2/register/a/b"), None);
        assert_eq!(client_uri_id("/oauth2/registerx"), None);
    }

    #[test]
    fn registration_fills_defaults_and_refuses_bad_metadata() {
        let m = validated(ClientMetadata {
            redirect_uris: vec!["http://client.invalid/cb".into()],
            ..ClientMetadata::default()
        })
        .unwrap();
        assert_eq!(
            m.token_endpoint_auth_method.as_deref(),
            Some(auth_method::BASIC)
        );
        assert_eq!(m.grant_types, [grant::AUTHORIZATION_CODE]);
        let refused = |m: ClientMetadata| match validated(m) {
            Err(Reject::OAuth(_, code, _)) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(ClientMetadata::default()),
            error::INVALID_REDIRECT_URI
        );
        assert_eq!(
            refused(ClientMetadata {
                redirect_uris: vec!["/relative".into()],
                ..ClientMetadata::default()
            }),
            error::INVALID_REDIRECT_URI
        );
        assert_eq!(
            refused(ClientMetadata {
                grant_types: vec!["password".into()],
                ..ClientMetadata::default()
            }),
            error::INVALID_CLIENT_METADATA
        );
        assert_eq!(
            refused(ClientMetadata {
                token_endpoint_auth_method: Some("private_key_jwt".into()),
                ..ClientMetadata::default()
            }),
            error::INVALID_CLIENT_METADATA
        );
    }

    #[test]
    fn client_secrets_always_hold_characters_that_need_form_encoding() {
        assert!((0..20).all(|_| new_client_secret().ends_with("==")));
    }
}
