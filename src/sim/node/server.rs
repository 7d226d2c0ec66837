//! The node as a server: binds (reusably, so a restart takes its port back), serves HTTP/1.1 and HTTP/2 with
//! or without TLS, names itself in `X-Served-By`, and stops by dropping every connection, like a node that
//! goes down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::super::wire::SERVED_BY;
use super::super::SimError;
use super::exchange::text;
use super::{NodeConfig, NodeState, NodeStats, Repository, Resp};
use crate::secret::Secret;

/// Largest request body a node reads.
const BODY_LIMIT: usize = 64 * 1024;

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
