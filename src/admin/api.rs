//! The admin HTTP/1.1 server: routing, bearer-token checks, body limits, and the one place a refusal becomes
//! a response.
//!
//! Each request goes route (404/405) → authenticate (401) → read the body if the endpoint takes one (413) →
//! call the [`AdminBackend`]. Authentication comes before the body so an unauthenticated client cannot make
//! the server buffer anything.
//!
//! Longer than 600 lines: a quarter of it is tests; the rest is one server whose routing, authentication and
//! refusals must be read together.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::page::Asset;
use super::{AdminBackend, AdminError, AdminSettings};
use crate::oauth::percent;
use crate::secret::Secret;

/// The largest request body the admin API reads (a credential to look up is far smaller).
const BODY_LIMIT: usize = 64 * 1024;
/// How long a client may take to send its request head, then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;
/// How long in-flight admin requests (a reload, a refresh) may run on after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type HmacSha256 = Hmac<Sha256>;

/// Serves the admin API on `listener` until `shutdown` completes, then lets in-flight requests finish for a
/// few seconds and returns.
///
/// Settings that [`check_settings`](super::check_settings) refuses are served closed: every request that
/// would need a token is answered 401.
pub async fn serve(
    listener: TcpListener,
    settings: AdminSettings,
    backend: Arc<dyn AdminBackend>,
    shutdown: impl Future<Output = ()>,
) {
    if let Err(problem) = super::check_settings(&settings) {
        tracing::error!(%problem, "unsafe admin settings: refusing every request that needs a token");
    }
    // Loopback only if both the configured and the bound address say so: fail closed on any doubt.
    let bound = listener.local_addr().ok();
    let loopback =
        settings.address.ip().is_loopback() && bound.is_some_and(|a| a.ip().is_loopback());
    if let Some(addr) = bound {
        tracing::info!(%addr, token = settings.token.is_some(), "admin API listening");
    }
    let state = Arc::new(State {
        guard: Guard::new(settings.token.as_ref(), !loopback),
        backend,
    });

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(state.handle(request, peer).await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(?DRAIN_TIMEOUT, "admin requests still running at shutdown were cut");
        }
    }
}

/// What every admin connection shares.
struct State {
    guard: Guard,
    backend: Arc<dyn AdminBackend>,
}

impl State {
    async fn handle<B>(&self, request: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        match self.respond(request, peer).await {
            Ok(response) => response,
            Err(reject) => reject.into_response(),
        }
    }

    async fn respond<B>(
        &self,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Reject>
    where
        B: http_body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let endpoint = route(request.method(), request.uri().path())?;
        if !self.guard.admits(&endpoint, request.headers()) {
            tracing::warn!(%peer, endpoint = endpoint.label(), "admin request refused: missing or wrong token");
            return Err(Reject::Unauthorized);
        }
        if endpoint.writes() {
            // Names only: never the token, never a credential.
            tracing::info!(%peer, endpoint = endpoint.label(), node = endpoint.node(), "admin request");
        }
        let backend = &*self.backend;
        Ok(match endpoint {
            Endpoint::Page(asset) => asset.response(),
            Endpoint::Healthz => text(StatusCode::OK, "ok\n"),
            Endpoint::Ready => match backend.ready() {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(why) => response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n"),
                ),
            },
            Endpoint::Status => json_response(StatusCode::OK, &backend.status()),
            Endpoint::Metrics => response(StatusCode::OK, METRICS_CONTENT_TYPE, backend.metrics()),
            Endpoint::Reload => {
                let answer = backend.reload().await?;
                json_response(StatusCode::OK, &answer)
            }
            Endpoint::Refresh(name) => {
                json_response(StatusCode::OK, &backend.refresh_node(&name).await?)
            }
            Endpoint::Drain(name) => set_draining(backend, name, true)?,
            Endpoint::Enable(name) => set_draining(backend, name, false)?,
            Endpoint::Lookup => {
                let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
                let body = read_body(request.into_body()).await?;
                let credential = parse_credential(&body, content_type.as_ref())?;
                let answer = backend
                    .lookup(credential.expose())
                    .ok_or(Reject::UnknownCredential)?;
                if mentions(&answer, credential.expose()) {
                    tracing::error!("the lookup answer contains the credential; withheld");
                    return Err(AdminError::Failed("lookup answer withheld".to_owned()).into());
                }
                json_response(StatusCode::OK, &answer)
            }
            Endpoint::Forget => {
                let node = node_parameter(request.uri().query())?;
                let changed = backend.forget_node(&node)?;
                json_response(
                    StatusCode::OK,
                    &json!({ "node": node, "entries_changed": changed }),
                )
            }
        })
    }
}

fn set_draining(
    backend: &dyn AdminBackend,
    name: String,
    draining: bool,
) -> Result<Response<Full<Bytes>>, Reject> {
    backend.set_draining(&name, draining)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "node": name, "draining": draining }),
    ))
}

/// One admin endpoint, with what its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A file of the status page.
    Page(Asset),
    Healthz,
    Ready,
    Status,
    Metrics,
    Reload,
    Refresh(String),
    Drain(String),
    Enable(String),
    Lookup,
    /// `DELETE /affinity?node=NAME`; the name is read from the query.
    Forget,
}

impl Endpoint {
    /// Whether the endpoint changes state or reveals table contents (and so needs the token).
    fn writes(&self) -> bool {
        !matches!(
            self,
            Endpoint::Page(_)
                | Endpoint::Healthz
                | Endpoint::Ready
                | Endpoint::Status
                | Endpoint::Metrics
        )
    }

    /// Whether anyone who reaches the listener may have it: the status page's files, which carry no data.
    fn public(&self) -> bool {
        matches!(self, Endpoint::Page(_))
    }

    /// A fixed name for logs.
    fn label(&self) -> &'static str {
        match self {
            Endpoint::Page(_) => "page",
            Endpoint::Healthz => "healthz",
            Endpoint::Ready => "ready",
            Endpoint::Status => "status",
            Endpoint::Metrics => "metrics",
            Endpoint::Reload => "reload",
            Endpoint::Refresh(_) => "refresh",
            Endpoint::Drain(_) => "drain",
            Endpoint::Enable(_) => "enable",
            Endpoint::Lookup => "lookup",
            Endpoint::Forget => "forget",
        }
    }

    /// The node named in the path, if any.
    fn node(&self) -> Option<&str> {
        match self {
            Endpoint::Refresh(n) | Endpoint::Drain(n) | Endpoint::Enable(n) => Some(n),
            _ => None,
        }
    }
}

/// The method an endpoint accepts.
#[derive(Debug, Clone, Copy)]
enum Verb {
    /// `GET`, and `HEAD` (hyper leaves the body out).
    Get,
    Post,
    Delete,
}

impl Verb {
    fn accepts(self, method: &Method) -> bool {
        match self {
            Verb::Get => method == Method::GET || method == Method::HEAD,
            Verb::Post => method == Method::POST,
            Verb::Delete => method == Method::DELETE,
        }
    }

    /// The `Allow` header of a 405.
    fn allow(self) -> &'static str {
        match self {
            Verb::Get => "GET, HEAD",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }
}

/// Maps a request line to its endpoint: 404 for an unknown path, 405 for a known path with another method.
fn route(method: &Method, path: &str) -> Result<Endpoint, Reject> {
    if let Some(asset) = Asset::at(path) {
        return if Verb::Get.accepts(method) {
            Ok(Endpoint::Page(asset))
        } else {
            Err(Reject::MethodNotAllowed(Verb::Get.allow()))
        };
    }
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(Reject::NotFound),
    };
    let node = |name: &str| name.to_owned();
    let (endpoint, verb) = match segments.as_slice() {
        ["healthz"] => (Endpoint::Healthz, Verb::Get),
        ["ready"] => (Endpoint::Ready, Verb::Get),
        ["status"] => (Endpoint::Status, Verb::Get),
        ["metrics"] => (Endpoint::Metrics, Verb::Get),
        ["reload"] => (Endpoint::Reload, Verb::Post),
        ["nodes", name, "refresh"] if !name.is_empty() => {
            (Endpoint::Refresh(node(name)), Verb::Post)
        }
        ["nodes", name, "drain"] if !name.is_empty() => (Endpoint::Drain(node(name)), Verb::Post),
        ["nodes", name, "enable"] if !name.is_empty() => (Endpoint::Enable(node(name)), Verb::Post),
        ["affinity", "lookup"] => (Endpoint::Lookup, Verb::Post),
        ["affinity"] => (Endpoint::Forget, Verb::Delete),
        _ => return Err(Reject::NotFound),
    };
    if verb.accepts(method) {
        Ok(endpoint)
    } else {
        Err(Reject::MethodNotAllowed(verb.allow()))
    }
}

/// Decides whether a request may reach its endpoint.
///
/// The configured token is never kept in the clear: the guard holds its HMAC-SHA256 under a random
/// per-process key, and checks a presented token by computing its HMAC and comparing with
/// [`Mac::verify_slice`] (constant time, and fixed length whatever the lengths of the tokens).
struct Guard {
    key: [u8; 32],
    /// HMAC of the configured token, if one is configured.
    expected: Option<[u8; 32]>,
    /// Whether read endpoints need the token too (a non-loopback listener).
    everything: bool,
}

impl Guard {
    fn new(token: Option<&Secret>, everything: bool) -> Guard {
        let key: [u8; 32] = rand::random();
        let expected = token.map(|t| {
            let mut tag = [0u8; 32];
            if let Some(mac) = keyed(&key) {
                tag.copy_from_slice(
                    &mac.chain_update(t.expose().as_bytes())
                        .finalize()
                        .into_bytes(),
                );
            }
            tag
        });
        Guard {
            key,
            expected,
            everything,
        }
    }

    fn admits(&self, endpoint: &Endpoint, headers: &HeaderMap) -> bool {
        if endpoint.public() || (!endpoint.writes() && !self.everything) {
            return true;
        }
        let Some(expected) = &self.expected else {
            // No token configured: nothing that needs one is admitted (write endpoints are off, and a
            // non-loopback listener refuses everything).
            return false;
        };
        let (Some(presented), Some(mac)) = (bearer(headers), keyed(&self.key)) else {
            return false;
        };
        mac.chain_update(presented).verify_slice(expected).is_ok()
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.expected.map(|_| "***"))
            .field("everything", &self.everything)
            .finish_non_exhaustive()
    }
}

fn keyed(key: &[u8; 32]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails.
    HmacSha256::new_from_slice(key).ok()
}

/// The token of the request's single `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let bytes = value.as_bytes();
    let space = bytes.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = bytes.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    let token = rest[start..].trim_ascii_end();
    (!token.is_empty()).then_some(token)
}

/// Whether `token` can be sent as a bearer token: non-empty, visible ASCII only.
pub(super) fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a request body of at most [`BODY_LIMIT`] bytes within [`READ_TIMEOUT`].
async fn read_body<B>(body: B) -> Result<Bytes, Reject>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > BODY_LIMIT as u64)
    {
        return Err(Reject::BodyTooLarge);
    }
    match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, BODY_LIMIT).collect()).await {
        Err(_) => Err(Reject::BodyTimeout),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Reject::BodyTooLarge),
        Ok(Err(_)) => Err(Reject::BadRequest("the request body could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The JSON form of a lookup request. No `Debug`: it holds a credential.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupRequest {
    credential: String,
}

/// The credential of a lookup body: JSON `{"credential": ".."}` (by `Content-Type`, or by a leading `{`
/// unless the type says plain text), otherwise the raw text with surrounding whitespace trimmed.
fn parse_credential(body: &[u8], content_type: Option<&HeaderValue>) -> Result<Secret, Reject> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Reject::BadRequest("the credential must be UTF-8"))?
        .trim();
    let media = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let json = match media.as_deref() {
        Some("application/json") => true,
        Some("text/plain") => false,
        _ => text.starts_with('{'),
    };
    let credential = if json {
        serde_json::from_str::<LookupRequest>(text)
            .map_err(|_| Reject::BadRequest("expected {\"credential\": \"...\"}"))?
            .credential
    } else {
        text.to_owned()
    };
    if credential.is_empty() {
        return Err(Reject::BadRequest("no credential given"));
    }
    Ok(Secret::new(credential))
}

/// Whether any string (or key) in `answer` contains `credential`. Credentials shorter than 8 bytes are not
/// checked: they would match ordinary words of the answer (a kind, a node name).
fn mentions(answer: &Value, credential: &str) -> bool {
    if credential.len() < 8 {
        return false;
    }
    match answer {
        Value::String(s) => s.contains(credential),
        Value::Array(items) => items.iter().any(|v| mentions(v, credential)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(credential) || mentions(v, credential)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The single `node` parameter of a query string.
fn node_parameter(query: Option<&str>) -> Result<String, Reject> {
    const MISSING: Reject = Reject::BadRequest("expected exactly one non-empty ?node=NAME");
    let pairs = percent::parse_form(query.unwrap_or("").as_bytes()).map_err(|_| MISSING)?;
    let mut nodes = pairs
        .into_iter()
        .filter(|(k, _)| k == "node")
        .map(|(_, v)| v);
    match (nodes.next(), nodes.next()) {
        (Some(node), None) if !node.is_empty() => Ok(node),
        _ => Err(MISSING),
    }
}

/// Why a request was not served. [`Reject::into_response`] is the one place these (and [`AdminError`]s)
/// become HTTP statuses.
#[derive(Debug)]
enum Reject {
    NotFound,
    MethodNotAllowed(&'static str),
    Unauthorized,
    BadRequest(&'static str),
    BodyTooLarge,
    BodyTimeout,
    UnknownCredential,
    Backend(AdminError),
}

impl From<AdminError> for Reject {
    fn from(e: AdminError) -> Reject {
        Reject::Backend(e)
    }
}

impl Reject {
    fn into_response(self) -> Response<Full<Bytes>> {
        let (status, body) = match &self {
            Reject::NotFound => (StatusCode::NOT_FOUND, json!({ "error": "not found" })),
            Reject::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "error": "method not allowed" }),
            ),
            Reject::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "a valid bearer token is required" }),
            ),
            Reject::BadRequest(why) => (StatusCode::BAD_REQUEST, json!({ "error": why })),
            Reject::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the request body exceeds {BODY_LIMIT} bytes") }),
            ),
            Reject::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                json!({ "error": "the request body was not received in time" }),
            ),
            Reject::UnknownCredential => (
                StatusCode::NOT_FOUND,
                json!({ "error": "unknown credential" }),
            ),
            Reject::Backend(e) => {
                // The caller is an authenticated operator: the message (e.g. the config errors of a failed
                // reload, which name keys and values but never secrets) is what they need to act.
                tracing::warn!(error = %e, "admin operation failed");
                (e.status(), json!({ "error": e.to_string() }))
            }
        };
        let mut response = json_response(status, &body);
        let headers = response.headers_mut();
        match self {
            Reject::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Reject::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tokenroute-admin\""),
                );
            }
            _ => {}
        }
        response
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    response(status, "application/json", text)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Status and table answers go stale at once; no intermediary should keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    fn headers(auth: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn every_endpoint_is_routed_with_its_method() {
        let cases = [
            (Method::GET, "/", Endpoint::Page(Asset::Page)),
            (Method::HEAD, "/", Endpoint::Page(Asset::Page)),
            (Method::GET, "/status.js", Endpoint::Page(Asset::Script)),
            (Method::GET, "/status.css", Endpoint::Page(Asset::Style)),
            (Method::GET, "/healthz", Endpoint::Healthz),
            (Method::HEAD, "/healthz", Endpoint::Healthz),
            (Method::GET, "/ready", Endpoint::Ready),
            (Method::GET, "/status", Endpoint::Status),
            (Method::GET, "/metrics", Endpoint::Metrics),
            (Method::POST, "/reload", Endpoint::Reload),
            (
                Method::POST,
                "/nodes/lbcq_1/refresh",
                Endpoint::Refresh("lbcq_1".into()),
            ),
            (
                Method::POST,
                "/nodes/lbcq_1/drain",
                Endpoint::Drain("lbcq_1".into()),
            ),
            (
                Method::POST,
                "/nodes/lbcq_1/enable",
                Endpoint::Enable("lbcq_1".into()),
            ),
            (Method::POST, "/affinity/lookup", Endpoint::Lookup),
            (Method::DELETE, "/affinity", Endpoint::Forget),
        ];
        for (method, path, endpoint) in cases {
            assert_eq!(route(&method, path).unwrap(), endpoint, "{method} {path}");
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "",
            "//",
            "/status/",
            "/nodes//refresh",
            "/nodes/a/b",
            "/affinity/x",
            "/x",
        ] {
            assert!(
                matches!(route(&Method::GET, path), Err(Reject::NotFound)),
                "{path}"
            );
        }
    }

    #[test]
    fn a_known_path_with_another_method_is_not_allowed() {
        let cases = [
            (Method::POST, "/status", "GET, HEAD"),
            (Method::POST, "/", "GET, HEAD"),
            (Method::GET, "/reload", "POST"),
            (Method::PUT, "/nodes/a/drain", "POST"),
            (Method::GET, "/affinity", "DELETE"),
        ];
        for (method, path, allow) in cases {
            match route(&method, path) {
                Err(Reject::MethodNotAllowed(a)) => assert_eq!(a, allow),
                other => panic!("{method} {path}: {other:?}"),
            }
        }
    }

    #[test]
    fn bearer_token_is_read_from_a_single_authorization_header() {
        assert_eq!(bearer(&headers(&["Bearer abc"])), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers(&["bearer   abc  "])), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers(&["Basic abc"])), None);
        assert_eq!(bearer(&headers(&["Bearer"])), None);
        assert_eq!(bearer(&headers(&["Bearer "])), None);
        assert_eq!(bearer(&headers(&["Bearer abc", "Bearer abc"])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }

    #[test]
    fn with_a_token_writes_need_it_and_reads_do_not_on_loopback() {
        let guard = Guard::new(Some(&Secret::new("s3cret")), false);
        assert!(guard.admits(&Endpoint::Status, &headers(&[])));
        assert!(guard.admits(&Endpoint::Reload, &headers(&["Bearer s3cret"])));
        for wrong in [
            &[][..],
            &["Bearer s3cre"],
            &["Bearer s3cret2"],
            &["Bearer S3CRET"],
            &["Basic s3cret"],
        ] {
            assert!(
                !guard.admits(&Endpoint::Reload, &headers(wrong)),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn off_loopback_every_endpoint_needs_the_token() {
        let guard = Guard::new(Some(&Secret::new("s3cret")), true);
        assert!(!guard.admits(&Endpoint::Healthz, &headers(&[])));
        assert!(!guard.admits(&Endpoint::Status, &headers(&[])));
        assert!(guard.admits(&Endpoint::Healthz, &headers(&["Bearer s3cret"])));
    }

    #[test]
    fn the_status_page_files_are_public_everywhere() {
        for guard in [
            Guard::new(Some(&Secret::new("s3cret")), true),
            Guard::new(None, true),
        ] {
            for asset in [Asset::Page, Asset::Script, Asset::Style] {
                assert!(guard.admits(&Endpoint::Page(asset), &headers(&[])));
            }
        }
    }

    #[test]
    fn without_a_token_loopback_reads_are_open_and_writes_are_closed() {
        let loopback = Guard::new(None, false);
        assert!(loopback.admits(&Endpoint::Healthz, &headers(&[])));
        assert!(!loopback.admits(&Endpoint::Reload, &headers(&[])));
        assert!(!loopback.admits(&Endpoint::Reload, &headers(&["Bearer anything"])));
        let closed = Guard::new(None, true);
        assert!(!closed.admits(&Endpoint::Healthz, &headers(&[])));
        assert!(!closed.admits(&Endpoint::Reload, &headers(&["Bearer anything"])));
    }

    #[test]
    fn guard_debug_never_shows_the_token() {
        let guard = Guard::new(Some(&Secret::new("s3cret-canary")), false);
        let debug = format!("{guard:?}");
        assert!(!debug.contains("s3cret-canary"), "{debug}");
    }

    fn credential(body: &str, content_type: Option<&str>) -> Result<String, Reject> {
        let ct = content_type.map(|c| HeaderValue::from_str(c).unwrap());
        parse_credential(body.as_bytes(), ct.as_ref()).map(|s| s.expose().to_owned())
    }

    #[test]
    fn credential_is_read_as_raw_text_or_json() {
        assert_eq!(credential(" tok-1\n", None).unwrap(), "tok-1");
        assert_eq!(
            credential(r#"{"credential": "tok-2"}"#, None).unwrap(),
            "tok-2"
        );
        let json = Some("application/json; charset=utf-8");
        assert_eq!(
            credential(r#"{"credential":"tok-3"}"#, json).unwrap(),
            "tok-3"
        );
        assert_eq!(credential("{raw", Some("text/plain")).unwrap(), "{raw");
    }

    #[test]
    fn unusable_credential_bodies_are_bad_requests() {
        for (body, ct) in [
            ("", None),
            ("  \n", None),
            (r#"{"credential": ""}"#, None),
            (r#"{"token": "x"}"#, None),
            ("tok", Some("application/json")),
        ] {
            assert!(
                matches!(credential(body, ct), Err(Reject::BadRequest(_))),
                "{body:?}"
            );
        }
        assert!(matches!(
            parse_credential(&[0xff, 0xfe], None),
            Err(Reject::BadRequest(_))
        ));
    }

    #[test]
    fn an_answer_mentioning_the_credential_is_caught() {
        let cred = "tok-abcdefgh";
        assert!(mentions(&json!({"a": [{"b": "x tok-abcdefgh y"}]}), cred));
        assert!(mentions(&json!({"tok-abcdefgh": 1}), cred));
        assert!(!mentions(
            &json!({"kind": "access_token", "owners": ["lbcq_1"]}),
            cred
        ));
        assert!(
            !mentions(&json!({"kind": "code"}), "code"),
            "short values are not checked"
        );
    }

    #[test]
    fn node_parameter_must_be_given_exactly_once() {
        assert_eq!(node_parameter(Some("node=lbcq_1")).unwrap(), "lbcq_1");
        assert_eq!(node_parameter(Some("x=1&node=a%2Eb")).unwrap(), "a.b");
        for q in [
            None,
            Some(""),
            Some("node="),
            Some("node=a&node=b"),
            Some("nodes=a"),
        ] {
            assert!(
                matches!(node_parameter(q), Err(Reject::BadRequest(_))),
                "{q:?}"
            );
        }
    }

    /// A body that arrives in chunks of unknown total length.
    struct Chunked(Vec<Bytes>);

    impl http_body::Body for Chunked {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(http_body::Frame::data(self.0.remove(0)))))
        }
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        let big = Full::new(Bytes::from(vec![b'a'; BODY_LIMIT + 1]));
        assert!(matches!(read_body(big).await, Err(Reject::BodyTooLarge)));
        let chunk = Bytes::from(vec![b'a'; BODY_LIMIT / 2]);
        let chunks = Chunked(vec![chunk.clone(), chunk.clone(), Bytes::from_static(b"a")]);
        assert!(matches!(read_body(chunks).await, Err(Reject::BodyTooLarge)));
        let at_cap = Chunked(vec![chunk.clone(), chunk]);
        assert_eq!(read_body(at_cap).await.unwrap().len(), BODY_LIMIT);
    }

    #[test]
    fn refusals_carry_their_headers() {
        let r = Reject::Unauthorized.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let r = Reject::MethodNotAllowed("POST").into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        let r = Reject::from(AdminError::UnknownNode("x".into())).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
