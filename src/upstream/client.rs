//! The HTTP(S) client used to reach nodes: HTTP/1.1 connections (`hyper::client::conn::http1`, TLS by
//! tokio-rustls) kept in a small LIFO pool of idle ones per node.
//!
//! Why not hyper-util's legacy client (what this replaced, issue 12): it spawns a task per request to put a
//! connection back in its pool, and its pool, connector stack and boxed executor showed in the profile
//! (`bench/README.md`). Here the only task is a connection's driver; a connection goes back to the pool from
//! inside its response body, as the body ends.
//!
//! A connection goes back only when the node left it open for reuse: an HTTP/1.1 answer without
//! `Connection: close`, to a request that did not ask to close either, whose body was read to its end. Before
//! reuse its driver must still run (`is_closed`: the node closed the socket, or it failed) and it must not have
//! idled longer than `pool_idle_timeout`; the newest idle connection is taken first (LIFO: warm, and the least
//! likely to be closed by the node), at most `pool_max_idle_per_node` are kept. A pooled connection that turns
//! out closed before the request was written hands the request back, and it goes out on another connection.
//!
//! The idle connections are kept per connection worker (`server::Workers`): a connection's driver task runs on
//! the worker that opened it, so it is only reused there, and a request never wakes another thread. Each
//! worker has its own `pool_max_idle_per_node`; threads that are no worker (health checks, refreshes from the
//! control runtime) share one more list.
//!
//! Longer than 600 lines: a third of it is tests against a raw-socket node (reuse, close, HTTP/1.0, expiry).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::CONNECTION;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::transport::body::BodyError;

/// The request body type sent to nodes.
pub(crate) type UpstreamBody = BoxBody<Bytes, BodyError>;

/// Why an exchange with a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {address}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Opening the TCP connection (and TLS handshake) took longer than `upstream.connect_timeout`.
    #[error("connecting to {address} took longer than {timeout:?}")]
    ConnectTimeout {
        /// `host:port`.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {address} failed")]
    Tls {
        /// `host:port`.
        address: String,
        /// The handshake error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/1 exchange failed (the request may have been partly sent).
    #[error("HTTP exchange failed")]
    Http(#[source] hyper::Error),
}

impl ClientError {
    /// Whether nothing of the request was sent because no connection could be opened (safe to retry elsewhere).
    pub(crate) fn is_connect(&self) -> bool {
        !matches!(self, ClientError::Http(_))
    }
}

/// Settings for one node's client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// TLS trust.
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS name to present and verify instead of the URL host.
    pub sni: Option<String>,
    /// TCP connect (and TLS handshake) timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are not reused after this.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept (per worker).
    pub pool_max_idle: usize,
    /// Connection workers that use this client (one idle list each, plus one for other threads).
    pub workers: usize,
}

/// One node's client: how to open a connection, and the idle ones.
#[derive(Clone)]
pub struct NodeClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// Host (brackets removed from an IPv6 literal) and port to connect to.
    host: String,
    port: u16,
    /// `host:port`, for errors.
    address: String,
    /// TLS connector and the name verified, for `https` nodes.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Idle connections per worker (index `transport::worker::current()`, 0 for other threads), oldest at the
    /// front; a mutex held for a push or pop, never across `.await`. On the per-request path (one pop, one
    /// push), and each taken by one thread only: uncontended.
    idle: Box<[IdleList]>,
}

/// One worker's idle connections, on a cache line of its own (workers do not share lines).
#[repr(align(64))]
#[derive(Default)]
struct IdleList(Mutex<VecDeque<IdleConnection>>);

struct IdleConnection {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

impl IdleConnection {
    /// Idle for no longer than `timeout` at `now`.
    fn fresh(&self, now: Instant, timeout: Duration) -> bool {
        now.duration_since(self.since) <= timeout
    }

    /// Fresh, and still open (the node has not closed it).
    fn reusable(&self, now: Instant, timeout: Duration) -> bool {
        self.fresh(now, timeout) && !self.sender.is_closed()
    }
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("address", &self.inner.address)
            .field("tls", &self.inner.tls.is_some())
            .field("idle", &self.inner.idle_count())
            .finish()
    }
}

/// Builds a node's client (nodes are spoken to in HTTP/1.1 whatever the client used).
pub(crate) fn build(settings: &ClientSettings) -> NodeClient {
    let https = settings.scheme == Scheme::HTTPS;
    let port = settings
        .authority
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });
    let host = settings.authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tls = https.then(|| {
        let mut config = (*settings.tls).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = settings.sni.as_deref().unwrap_or(bare).to_owned();
        let name = ServerName::try_from(name)
            .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("a valid DNS name"));
        (TlsConnector::from(Arc::new(config)), name)
    });
    NodeClient {
        inner: Arc::new(Inner {
            host: bare.to_owned(),
            port,
            address: format!("{host}:{port}"),
            tls,
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.pool_idle_timeout,
            max_idle: settings.pool_max_idle,
            idle: (0..=settings.workers)
                .map(|_| IdleList::default())
                .collect(),
        }),
    }
}

impl NodeClient {
    /// Sends `request` (its URI reduced to origin form) on an idle connection, or a new one.
    pub(crate) async fn request(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<NodeBody>, ClientError> {
        if request.uri().scheme().is_some() {
            let origin_form = request
                .uri()
                .path_and_query()
                .cloned()
                .map_or_else(|| Uri::from_static("/"), Uri::from);
            *request.uri_mut() = origin_form;
        }
        let close_requested = asks_to_close(request.headers());
        loop {
            let list = crate::transport::worker::current() % self.inner.idle.len();
            let (mut sender, pooled) = match self.inner.take_idle(list) {
                Some(sender) => (sender, true),
                // Boxed: a connect (and TLS handshake) state is large, and most requests take a pooled connection.
                None => (Box::pin(self.inner.connect()).await?, false),
            };
            // Right after a body ended the driver may not have turned the connection round yet.
            if sender.ready().await.is_err() {
                if pooled {
                    continue;
                }
                // A fresh connection that closed before taking a request: the node refused it.
                return Err(ClientError::Connect {
                    address: self.inner.address.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                });
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let reusable = !close_requested && keeps_alive(&response);
                    let (parts, inner) = response.into_parts();
                    let give_back = reusable.then(|| GiveBack {
                        sender,
                        pool: self.inner.clone(),
                        list,
                    });
                    let mut body = NodeBody { inner, give_back };
                    if body.inner.is_end_stream() {
                        body.release();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut failed) => match failed.take_message() {
                    // Not written: the pooled connection was closing. Another one takes it.
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(ClientError::Http(failed.into_error())),
                },
            }
        }
    }

    /// Closes every worker's idle connections that idled longer than `pool_idle_timeout` or that the node
    /// closed; returns how many. Taking and returning a connection drop such ones on the way, but a worker whose
    /// traffic to this node stopped takes none, so a periodic sweep (`app`) closes them.
    pub(crate) fn close_expired_idle(&self) -> usize {
        self.inner.close_expired_idle(Instant::now())
    }
}

impl Inner {
    /// Idle connections kept, over every worker's list.
    fn idle_count(&self) -> usize {
        self.idle.iter().map(|l| l.0.lock().len()).sum()
    }

    fn close_expired_idle(&self, now: Instant) -> usize {
        let mut closed = 0;
        for list in self.idle.iter() {
            let mut idle = list.0.lock();
            let before = idle.len();
            idle.retain(|c| c.reusable(now, self.idle_timeout));
            closed += before - idle.len();
        }
        closed
    }

    /// The newest idle connection still open and not idle for too long; older or closed ones met on the way
    /// are dropped.
    fn take_idle(&self, list: usize) -> Option<SendRequest<UpstreamBody>> {
        let now = Instant::now();
        let mut idle = self.idle[list].0.lock();
        while let Some(connection) = idle.pop_back() {
            if connection.reusable(now, self.idle_timeout) {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Puts a connection back, dropping connections idle for too long and the oldest one over the cap.
    fn put_idle(&self, list: usize, sender: SendRequest<UpstreamBody>) {
        if self.max_idle == 0 || sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle[list].0.lock();
        while idle
            .front()
            .is_some_and(|c| !c.fresh(now, self.idle_timeout))
        {
            idle.pop_front();
        }
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(IdleConnection { sender, since: now });
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, ClientError> {
        let timeout = self.connect_timeout;
        let timed_out = || ClientError::ConnectTimeout {
            address: self.address.clone(),
            timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let tcp = tokio::time::timeout_at(
            deadline,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ClientError::Connect {
            address: self.address.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.handshake(tcp).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout_at(deadline, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| ClientError::Tls {
                        address: self.address.clone(),
                        source,
                    })?;
                self.handshake(tls).await
            }
        }
    }

    async fn handshake<IO>(&self, io: IO) -> Result<SendRequest<UpstreamBody>, ClientError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(ClientError::Http)?;
        // The connection's driver: one task per connection, not per request. It ends by itself when the
        // connection closes, which it does once no `SendRequest` (pool entry or response body) holds it and
        // no exchange is in flight, so it needs no owner to stop it.
        let address = self.address.clone();
        tokio::spawn(async move {
            // With upgrades: after a 101 the connection is handed to the tunnel instead of closed.
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(node = %address, error = %crate::logging::error_chain(&e), "node connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Whether a request's `Connection` header asks to close after it.
fn asks_to_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Whether a response leaves its connection open for another request: HTTP/1.1 without `Connection: close`.
/// HTTP/1.0 answers are never reused, even with `keep-alive` (rare from a node, and a closing 1.0 server is
/// the classic way to lose a request), and a 101 hands the connection over to the protocol it switched to.
fn keeps_alive<B>(response: &Response<B>) -> bool {
    response.version() == Version::HTTP_11
        && response.status() != http::StatusCode::SWITCHING_PROTOCOLS
        && !asks_to_close(response.headers())
}

/// Puts a connection back in its node's pool.
struct GiveBack {
    sender: SendRequest<UpstreamBody>,
    pool: Arc<Inner>,
    /// The idle list it was taken for (its worker's).
    list: usize,
}

/// A node's response body; when it has been read to its end, its connection goes back to the pool.
pub(crate) struct NodeBody {
    inner: Incoming,
    /// The connection to give back when the body ends; `None` if it may not be reused (or already was).
    give_back: Option<GiveBack>,
}

impl std::fmt::Debug for NodeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBody")
            .field("reusable", &self.give_back.is_some())
            .finish()
    }
}

impl NodeBody {
    fn release(&mut self) {
        if let Some(GiveBack { sender, pool, list }) = self.give_back.take() {
            pool.put_idle(list, sender);
        }
    }
}

impl Body for NodeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            // A broken body leaves the connection in an unknown state: never reused.
            Poll::Ready(Some(Err(_))) => self.give_back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for NodeBody {
    /// A relayed body with a known length is dropped right after its last byte, without a final poll: it is
    /// whole, so its connection is reused. A body dropped before its end closes its connection.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::StatusCode;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A node on 127.0.0.1:0 answering every request with `answer`, closing after it when `close`; counts
    /// the connections it accepted.
    async fn node(answer: &'static str, close: bool) -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if stream.write_all(answer.as_bytes()).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (authority, accepted)
    }

    fn client(authority: Authority) -> NodeClient {
        build(&ClientSettings {
            scheme: Scheme::HTTP,
            authority,
            tls: crate::transport::tls::client_config(None).unwrap(),
            sni: None,
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle: 4,
            workers: 1,
        })
    }

    async fn get(client: &NodeClient) -> StatusCode {
        let request = Request::get("http://ignored.example/x")
            .header(http::header::HOST, "node")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    }

    #[tokio::test]
    async fn a_keep_alive_connection_is_reused_for_the_next_request() {
        let (authority, accepted) =
            node("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
        let client = client(authority);
        for _ in 0..3 {
            assert_eq!(get(&client).await, StatusCode::OK);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_idle_connection_past_the_idle_timeout_is_closed_by_the_sweep() {
        let (authority, accepted) =
            node("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
        let client = client(authority);
        assert_eq!(get(&client).await, StatusCode::OK);
        assert_eq!(client.inner.idle_count(), 1);
        // Within the timeout the sweep keeps it; past it, closes it.
        assert_eq!(client.inner.close_expired_idle(Instant::now()), 0);
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(client.inner.close_expired_idle(later), 1);
        assert_eq!(client.inner.idle_count(), 0);
        assert_eq!(get(&client).await, StatusCode::OK);
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
    }

    #[tokio::test]
    async fn a_connection_the_node_closes_is_never_reused() {
        let (authority, accepted) = node(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            true,
        )
        .await;
        let client = client(authority);
        for _ in 0..3 {
            assert_eq!(get(&client).await, StatusCode::OK);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_http10_answer_is_never_reused() {
        let (authority, accepted) =
            node("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
        let client = client(authority);
        for _ in 0..2 {
            assert_eq!(get(&client).await, StatusCode::OK);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let request = Request::get("/")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let error = client(authority).request(request).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
    }

    fn response(version: Version, connection: Option<&str>) -> Response<()> {
        let mut r = Response::new(());
        *r.version_mut() = version;
        if let Some(c) = connection {
            r.headers_mut().insert(CONNECTION, c.parse().unwrap());
        }
        r
    }

    #[test]
    fn only_http11_answers_without_close_leave_the_connection_reusable() {
        let cases = [
            (Version::HTTP_11, None, true),
            (Version::HTTP_11, Some("keep-alive"), true),
            (Version::HTTP_11, Some("close"), false),
            (Version::HTTP_11, Some("Upgrade, Close"), false),
            (Version::HTTP_10, None, false),
            (Version::HTTP_10, Some("keep-alive"), false),
        ];
        for (version, connection, reusable) in cases {
            assert_eq!(
                keeps_alive(&response(version, connection)),
                reusable,
                "{version:?} {connection:?}"
            );
        }
    }
}
