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
//! Plain-HTTP requests without a body (nearly all of them) take a shorter path (`exchange.rs`): no driver task,
//! the request's own future writes the head and reads the answer, and the connection waits in an idle list of
//! its own. Before such a connection is reused it must be quiet: no close and no stray bytes from the node
//! since its last answer. If the node closes or resets a pooled connection as a request arrives (its
//! keep-alive ran out), before a byte of answer, an idempotent request goes out again on another connection;
//! any other request fails, as it would have with hyper.
//!
//! Longer than 600 lines: two ways to a node that share one response body type; 45% of it is tests against a
//! raw-socket node (reuse, close, HTTP/1.0, expiry, chunked answers, stray bytes).

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
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::exchange::Connection;
use super::pool::{IdleList, Pooled};
use super::wire::{Decoded, Decoder, WireError};
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
    /// The exchange on a directly driven connection failed (the request may have been partly sent).
    #[error("HTTP exchange failed")]
    Wire(#[source] WireError),
}

impl ClientError {
    /// Whether nothing of the request was sent because no connection could be opened (safe to retry elsewhere).
    pub(crate) fn is_connect(&self) -> bool {
        !matches!(self, ClientError::Http(_) | ClientError::Wire(_))
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
    /// Idle hyper connections per worker (index `transport::worker::current()`, 0 for other threads); on
    /// the per-request path (one take, one put), and each used by one thread only: uncontended.
    idle: Box<[IdleList<SendRequest<UpstreamBody>>]>,
    /// Idle directly driven connections per worker, likewise.
    wire_idle: Box<[IdleList<Connection>]>,
}

impl Pooled for SendRequest<UpstreamBody> {
    fn is_open(&self) -> bool {
        !self.is_closed()
    }
}

impl Pooled for Connection {
    fn is_open(&self) -> bool {
        self.is_open_and_quiet()
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
            wire_idle: (0..=settings.workers)
                .map(|_| IdleList::default())
                .collect(),
        }),
    }
}

/// A request for a node, its head borrowed: the proxy keeps the client's for a replay, and only hyper's
/// client needs a copy of its own.
pub(crate) struct Outgoing<'a> {
    pub method: &'a http::Method,
    /// In origin form.
    pub target: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: UpstreamBody,
}

impl NodeClient {
    /// Sends `request` (its URI reduced to origin form, in HTTP/1.1) on an idle connection, or a new one.
    pub(crate) async fn request(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<NodeBody>, ClientError> {
        let (mut parts, body) = request.into_parts();
        if parts.uri.scheme().is_some() {
            parts.uri = parts
                .uri
                .path_and_query()
                .cloned()
                .map_or_else(|| Uri::from_static("/"), Uri::from);
        }
        self.send(Outgoing {
            method: &parts.method,
            target: &parts.uri,
            headers: &parts.headers,
            body,
        })
        .await
    }

    /// Sends a request in HTTP/1.1 on an idle connection, or a new one.
    pub(crate) async fn send(
        &self,
        outgoing: Outgoing<'_>,
    ) -> Result<Response<NodeBody>, ClientError> {
        if self.inner.tls.is_none() && takes_the_wire_path(&outgoing) {
            let target = outgoing
                .target
                .path_and_query()
                .map_or("/", |pq| pq.as_str());
            return self
                .request_direct(outgoing.method, target, outgoing.headers)
                .await;
        }
        let mut request = Request::new(outgoing.body);
        *request.method_mut() = outgoing.method.clone();
        *request.uri_mut() = outgoing.target.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = outgoing.headers.clone();
        // Boxed: the rarer path keeps its state out of every request's future.
        Box::pin(self.request_on_hyper(request)).await
    }

    /// A bodiless plain-HTTP request on a directly driven connection (`exchange.rs`).
    async fn request_direct(
        &self,
        method: &http::Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<Response<NodeBody>, ClientError> {
        let close_requested = asks_to_close(headers);
        let list = crate::transport::worker::current() % self.inner.wire_idle.len();
        loop {
            let (mut connection, pooled) =
                match self.inner.wire_idle[list].take(self.inner.idle_timeout) {
                    Some(connection) => (connection, true),
                    // Boxed: a connect's state is large, and most requests take a pooled connection.
                    None => (Box::pin(self.inner.connect_direct()).await?, false),
                };
            if let Err(failed) = connection.send(method, target, headers).await {
                // Not written: the pooled connection was closing. Another one takes it.
                if failed.unsent && pooled {
                    continue;
                }
                return Err(ClientError::Wire(failed.error));
            }
            let head = match connection.read_head(method).await {
                Ok(head) => head,
                // A pooled connection the node closed as the request went out (its keep-alive ran out): an
                // idempotent request that got no byte of an answer goes out again on another connection.
                Err(e)
                    if pooled
                        && method.is_idempotent()
                        && connection.is_between_answers()
                        && closed(&e) =>
                {
                    tracing::debug!(node = %self.inner.address, "idle connection closed by the node as the request went out; sent again");
                    continue;
                }
                Err(e) => return Err(ClientError::Wire(e)),
            };
            let reusable =
                head.keep_alive && head.parts.version == Version::HTTP_11 && !close_requested;
            let mut body = NodeBody {
                source: Source::Direct(DirectBody {
                    connection: Some(connection),
                    decoder: Decoder::new(head.framing),
                    give_back: reusable.then(|| (self.inner.clone(), list)),
                }),
            };
            if body.is_end_stream() {
                body.release();
            }
            return Ok(Response::from_parts(head.parts, body));
        }
    }

    /// Any other request, on hyper's HTTP/1 client.
    async fn request_on_hyper(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<NodeBody>, ClientError> {
        let close_requested = asks_to_close(request.headers());
        loop {
            let list = crate::transport::worker::current() % self.inner.idle.len();
            let (mut sender, pooled) = match self.inner.idle[list].take(self.inner.idle_timeout) {
                Some(sender) => (sender, true),
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
                    let mut body = NodeBody {
                        source: Source::Hyper { inner, give_back },
                    };
                    if body.is_end_stream() {
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

/// Whether a read failed because the node closed or reset the connection.
fn closed(error: &WireError) -> bool {
    match error {
        WireError::ClosedBeforeHead => true,
        WireError::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

/// Whether a request goes out on a directly driven connection: one without a body, upgrade or length field,
/// in origin form (everything else keeps hyper's handling of bodies and upgrades).
fn takes_the_wire_path(outgoing: &Outgoing<'_>) -> bool {
    let headers = outgoing.headers;
    outgoing.body.is_end_stream()
        && *outgoing.method != http::Method::CONNECT
        && outgoing.target.authority().is_none()
        && !headers.contains_key(http::header::UPGRADE)
        && !headers.contains_key(http::header::CONTENT_LENGTH)
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
}

impl Inner {
    /// Idle connections kept, over every worker's lists.
    fn idle_count(&self) -> usize {
        self.idle.iter().map(IdleList::len).sum::<usize>()
            + self.wire_idle.iter().map(IdleList::len).sum::<usize>()
    }

    fn close_expired_idle(&self, now: Instant) -> usize {
        let timeout = self.idle_timeout;
        self.idle
            .iter()
            .map(|l| l.sweep(now, timeout))
            .sum::<usize>()
            + self
                .wire_idle
                .iter()
                .map(|l| l.sweep(now, timeout))
                .sum::<usize>()
    }

    /// Opens the TCP connection by `deadline`.
    async fn connect_tcp(&self, deadline: Instant) -> Result<TcpStream, ClientError> {
        let tcp = tokio::time::timeout_at(
            deadline,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| ClientError::ConnectTimeout {
            address: self.address.clone(),
            timeout: self.connect_timeout,
        })?
        .map_err(|source| ClientError::Connect {
            address: self.address.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Opens a connection for the direct path.
    async fn connect_direct(&self) -> Result<Connection, ClientError> {
        let tcp = self
            .connect_tcp(Instant::now() + self.connect_timeout)
            .await?;
        Ok(Connection::new(tcp))
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, ClientError> {
        let timeout = self.connect_timeout;
        let timed_out = || ClientError::ConnectTimeout {
            address: self.address.clone(),
            timeout,
        };
        let deadline = Instant::now() + timeout;
        let tcp = self.connect_tcp(deadline).await?;
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
    source: Source,
}

enum Source {
    /// From hyper's client.
    Hyper {
        inner: Incoming,
        /// The connection to give back when the body ends; `None` if it may not be reused (or already was).
        give_back: Option<GiveBack>,
    },
    /// From a directly driven connection.
    Direct(DirectBody),
}

/// A body read from its connection by whoever polls it.
struct DirectBody {
    /// `None` once the body ended or failed.
    connection: Option<Connection>,
    decoder: Decoder,
    /// The pool and idle list to give the connection back to when the body ends; `None` if it may not be
    /// reused.
    give_back: Option<(Arc<Inner>, usize)>,
}

impl std::fmt::Debug for NodeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reusable = match &self.source {
            Source::Hyper { give_back, .. } => give_back.is_some(),
            Source::Direct(direct) => direct.give_back.is_some(),
        };
        f.debug_struct("NodeBody")
            .field("reusable", &reusable)
            .finish()
    }
}

impl NodeBody {
    /// Gives the connection back if the node left it reusable; called when the body has ended.
    fn release(&mut self) {
        match &mut self.source {
            Source::Hyper { give_back, .. } => {
                if let Some(GiveBack { sender, pool, list }) = give_back.take() {
                    pool.idle[list].put(sender, pool.idle_timeout, pool.max_idle);
                }
            }
            Source::Direct(direct) => {
                let connection = direct.connection.take();
                if let (Some(connection), Some((pool, list))) =
                    (connection, direct.give_back.take())
                {
                    // Stray bytes after the answer: the connection is out of step with the node.
                    if connection.is_between_answers() {
                        pool.wire_idle[list].put(connection, pool.idle_timeout, pool.max_idle);
                    }
                }
            }
        }
    }
}

impl Body for NodeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.source {
            Source::Hyper { inner, give_back } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => self.release(),
                    // A broken body leaves the connection in an unknown state: never reused.
                    Poll::Ready(Some(Err(_))) => *give_back = None,
                    _ => {}
                }
                polled.map_err(BodyError::from)
            }
            Source::Direct(direct) => {
                let Some(connection) = direct.connection.as_mut() else {
                    return Poll::Ready(None);
                };
                let decoded = match connection.poll_body(&mut direct.decoder, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(decoded) => decoded,
                };
                let frame = match decoded {
                    Ok(Decoded::Data(data)) => Some(Ok(Frame::data(data))),
                    Ok(Decoded::Trailers(trailers)) => Some(Ok(Frame::trailers(trailers))),
                    Ok(Decoded::End | Decoded::NeedMore) => None,
                    Err(e) => {
                        // Never reused.
                        direct.connection = None;
                        direct.give_back = None;
                        return Poll::Ready(Some(Err(BodyError::Node(Box::new(e)))));
                    }
                };
                if direct.decoder.is_done() {
                    self.release();
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Hyper { inner, .. } => inner.is_end_stream(),
            Source::Direct(direct) => direct.connection.is_none() || direct.decoder.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Hyper { inner, .. } => inner.size_hint(),
            Source::Direct(direct) => direct
                .decoder
                .exact_remaining()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

impl Drop for NodeBody {
    /// A relayed body with a known length is dropped right after its last byte, without a final poll: it is
    /// whole, so its connection is reused. A body dropped before its end closes its connection.
    fn drop(&mut self) {
        if self.is_end_stream() {
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
        node_with(move |_, _| Reply::Answer { answer, close }).await
    }

    /// What a test node does with a request.
    enum Reply {
        /// Answers it, and closes the connection after it if `close`.
        Answer { answer: &'static str, close: bool },
        /// Closes the connection without a byte of answer.
        Close,
    }

    /// A node on 127.0.0.1:0 replying to the `n`th request on its `c`th connection (both from 0) with
    /// `reply(c, n)`; counts the connections it accepted.
    async fn node_with(
        reply: impl Fn(usize, usize) -> Reply + Send + Sync + 'static,
    ) -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let connection = counter.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    let mut request = 0;
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
                            let Reply::Answer { answer, close } = reply(connection, request) else {
                                return;
                            };
                            request += 1;
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
        get_body(client).await.0
    }

    /// A bodiless GET (the direct path); its status and whole body.
    async fn get_body(client: &NodeClient) -> (StatusCode, Bytes) {
        let request = Request::get("http://ignored.example/x")
            .header(http::header::HOST, "node")
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
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

    /// Sends `requests` bodiless GETs to a node answering `answer` (and closing after it if `close`), checks
    /// that each reads as a 200 with `body`, and returns how many connections the node accepted.
    async fn connections_used(
        answer: &'static str,
        close: bool,
        requests: usize,
        body: &str,
    ) -> usize {
        let (authority, accepted) = node(answer, close).await;
        let client = client(authority);
        for _ in 0..requests {
            assert_eq!(
                get_body(&client).await,
                (StatusCode::OK, Bytes::copy_from_slice(body.as_bytes()))
            );
        }
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole_and_its_connection_reused() {
        let answer =
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n1\r\n!\r\n0\r\n\r\n";
        assert_eq!(connections_used(answer, false, 3, "ok!").await, 1);
    }

    #[tokio::test]
    async fn an_answer_delimited_by_the_close_is_read_whole_and_never_reused() {
        let answer = "HTTP/1.1 200 OK\r\n\r\nall of it";
        assert_eq!(connections_used(answer, true, 2, "all of it").await, 2);
    }

    #[tokio::test]
    async fn bytes_after_an_answer_keep_its_connection_from_reuse() {
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokSTRAY";
        assert_eq!(
            connections_used(answer, false, 2, "ok").await,
            2,
            "out of step: a new connection"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_the_node_closed_is_dropped_not_reused() {
        // The node answers as if it kept the connection, and closes it when told to.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            close_rx.await.unwrap();
            drop(stream);
            closed_tx.send(()).unwrap();
            // The next connection gets its answer.
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nnew")
                .await
                .unwrap();
        });
        let client = client(authority);
        assert_eq!(get_body(&client).await.1, "ok");
        assert_eq!(client.inner.idle_count(), 1);
        close_tx.send(()).unwrap();
        closed_rx.await.unwrap();
        // Once the runtime has seen the close, the pooled connection reads as closed.
        let mut swept = 0;
        for _ in 0..1000 {
            swept = client.inner.close_expired_idle(Instant::now());
            if swept > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(swept, 1, "the closed connection is found and dropped");
        assert_eq!(get_body(&client).await.1, "new");
    }

    /// Whether a request with `method`, `headers` and `body` (none if `None`) takes the wire path.
    fn wire_path(
        method: http::Method,
        headers: &[(&'static str, &'static str)],
        body: Option<&'static str>,
    ) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let body = match body {
            None => Empty::new().map_err(|never| match never {}).boxed(),
            Some(b) => http_body_util::Full::new(Bytes::from(b))
                .map_err(|never| match never {})
                .boxed(),
        };
        takes_the_wire_path(&Outgoing {
            method: &method,
            target: &Uri::from_static("/x"),
            headers: &map,
            body,
        })
    }

    #[test]
    fn only_plain_bodiless_requests_take_the_wire_path() {
        use http::Method;
        assert!(wire_path(Method::GET, &[("host", "n")], None));
        assert!(wire_path(Method::DELETE, &[], None));
        assert!(!wire_path(Method::GET, &[("upgrade", "websocket")], None));
        assert!(!wire_path(Method::POST, &[("content-length", "0")], None));
        assert!(!wire_path(
            Method::POST,
            &[("transfer-encoding", "chunked")],
            None
        ));
        assert!(!wire_path(Method::CONNECT, &[], None));
        assert!(!wire_path(Method::POST, &[], Some("a=1")));
    }

    #[tokio::test]
    async fn an_idempotent_request_is_sent_again_when_the_node_closes_a_pooled_connection_unanswered(
    ) {
        // The first connection's second request finds it closed without a byte of answer (a keep-alive that
        // ran out as the request arrived); every other request is answered.
        let reply = |connection, request| match (connection, request) {
            (0, 1) => Reply::Close,
            _ => Reply::Answer {
                answer: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                close: false,
            },
        };
        let (authority, accepted) = node_with(reply).await;
        let gets = client(authority);
        assert_eq!(get_body(&gets).await.1, "ok");
        assert_eq!(
            get_body(&gets).await.1,
            "ok",
            "sent again on a new connection"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // Not so a request that is not idempotent: its failure is the caller's to judge.
        let (authority, _) = node_with(reply).await;
        let posts = client(authority);
        let post = || {
            Request::post("http://ignored.example/x")
                .header(http::header::HOST, "node")
                .body(Empty::new().map_err(|never| match never {}).boxed())
                .unwrap()
        };
        let answered = posts.request(post()).await.unwrap();
        answered.into_body().collect().await.unwrap();
        let error = posts.request(post()).await.unwrap_err();
        assert!(matches!(error, ClientError::Wire(_)), "{error:?}");
    }
}
