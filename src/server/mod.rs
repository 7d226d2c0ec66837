//! Listeners, the PROXY protocol ([`proxy_protocol`]), TLS termination, connection caps and graceful drain.
//!
//! [`bind`] opens the configured sockets; [`run`] serves them until the shutdown future completes, then stops
//! accepting, lets in-flight requests finish up to `runtime.drain_timeout`, and returns. Listeners follow
//! reloads (a moved one is rebound). The rest of the application is assembled in `app`.

pub mod proxy_protocol;
pub mod reload;
mod workers;

pub use workers::Workers;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Limits};
use crate::proxy::{ConnectionInfo, Proxy};

/// A listener socket, bound and ready.
pub struct BoundListener {
    /// Name for logs.
    pub name: String,
    /// The address as configured (port 0 stays 0), to tell on reload whether it changed.
    pub configured: SocketAddr,
    /// The socket.
    pub listener: TcpListener,
    /// TLS termination, if any.
    pub tls: Option<TlsAcceptor>,
    /// Connection cap.
    pub max_connections: usize,
    /// Whether trusted peers' connections start with a PROXY protocol header (as bound; reloads apply to new
    /// connections).
    pub proxy_protocol: bool,
}

impl std::fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundListener")
            .field("name", &self.name)
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("proxy_protocol", &self.proxy_protocol)
            .finish()
    }
}

impl BoundListener {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Binds every configured listener; the error names the address that failed.
pub async fn bind(config: &Config) -> std::io::Result<Vec<BoundListener>> {
    let mut out = Vec::new();
    for l in &config.listeners {
        let listener = TcpListener::bind(l.address).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot bind listener {} on {}: {e}", l.name, l.address),
            )
        })?;
        out.push(BoundListener {
            name: l.name.clone(),
            configured: l.address,
            listener,
            tls: l.tls.clone().map(TlsAcceptor::from),
            max_connections: l.max_connections.get(),
            proxy_protocol: l.proxy_protocol,
        });
    }
    Ok(out)
}

/// Serves `listeners` with `proxy` until `shutdown` completes, then drains. The accept loops run on the calling
/// runtime; each accepted connection is served on one of `workers`.
pub async fn run(
    listeners: Vec<BoundListener>,
    proxy: Proxy,
    workers: Arc<Workers>,
    shutdown: impl Future<Output = ()>,
) {
    let generation = proxy.current();
    let limits = generation.config.limits.clone();
    let drain_timeout = generation.config.runtime.drain_timeout;
    drop(generation);

    let graceful = Arc::new(GracefulShutdown::new());
    let builder = Arc::new(http_builder(&limits));
    let start = |listener: BoundListener| {
        let address = listener.configured;
        let bound = listener.local_addr().ok();
        if let Some(addr) = bound {
            tracing::info!(listener = %listener.name, %addr, tls = listener.tls.is_some(), "listening");
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            proxy.clone(),
            workers.clone(),
            builder.clone(),
            limits.clone(),
            graceful.clone(),
            stopped,
        ));
        Running {
            address,
            bound,
            stop,
            task,
        }
    };
    let mut running: HashMap<String, Running> = HashMap::new();
    for listener in listeners {
        running.insert(listener.name.clone(), start(listener));
    }
    let mut retired = Vec::new();

    let mut reloads = proxy.subscribe_reloads();
    // A reload may have happened between binding and now: reconcile once at the start (idempotent).
    reloads.mark_changed();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            changed = reloads.changed() => {
                if changed.is_err() {
                    shutdown.as_mut().await;
                    break;
                }
                // Listeners follow the config: a changed address is rebound, a new one bound, a removed one
                // closed. Connections already accepted carry on either way.
                let wanted: Vec<_> = proxy.current().config.listeners.clone();
                for (name, old) in std::mem::take(&mut running) {
                    // Unchanged: the same configured address, or the one port 0 was given.
                    let same = |l: &crate::config::Listener| l.address == old.address || Some(l.address) == old.bound;
                    if wanted.iter().any(|l| l.name == name && same(l)) {
                        running.insert(name, old);
                    } else {
                        tracing::info!(listener = %name, address = %old.address, "listener closed by reload");
                        let _ = old.stop.send(true);
                        retired.push(old.task);
                    }
                }
                let missing: Vec<_> = wanted.iter().filter(|l| !running.contains_key(&l.name)).collect();
                for l in missing {
                    match TcpListener::bind(l.address).await {
                        Ok(socket) => {
                            let bound = BoundListener {
                                name: l.name.clone(),
                                configured: l.address,
                                listener: socket,
                                tls: l.tls.clone().map(TlsAcceptor::from),
                                max_connections: l.max_connections.get(),
                                proxy_protocol: l.proxy_protocol,
                            };
                            running.insert(l.name.clone(), start(bound));
                        }
                        Err(e) => tracing::error!(listener = %l.name, address = %l.address, error = %e, "cannot bind listener after reload"),
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        retired.push(r.task);
    }
    for task in retired {
        let _ = task.await;
    }
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        unreachable!("every accept loop has returned and dropped its handle");
    };
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(drain_timeout) => tracing::warn!(?drain_timeout, "drain deadline passed; closing remaining connections"),
    }
}

/// An accept loop in progress: the address it was configured with, and how to stop it.
#[derive(Debug)]
struct Running {
    address: SocketAddr,
    bound: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// hyper's own bound on a request's header fields, which it keeps without being told.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        // Told any bound, hyper fills two arrays of that many entries for every request it parses (about 1 700
        // instructions a request at 100, issue 12); left at its default, it parses into uninitialised arrays.
        builder.http1().max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn accept_loop(
    bound: BoundListener,
    proxy: Proxy,
    workers: Arc<Workers>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(bound.max_connections));
    let counters = proxy.metrics().listener(&bound.name);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = %bound.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let open = counters.accepted();
        let counters = counters.clone();
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        // Certificates come from the generation in force, so a reload serves new ones to new connections.
        let tls = if bound.tls.is_some() {
            proxy
                .current()
                .config
                .listeners
                .iter()
                .find(|l| l.name == bound.name)
                .and_then(|l| l.tls.clone())
                .map(TlsAcceptor::from)
                .or_else(|| bound.tls.clone())
        } else {
            None
        };
        // The PROXY setting and the trusted proxies of the generation in force, like the certificates.
        let expect_header = {
            let generation = proxy.current();
            let config = &generation.config;
            config
                .listeners
                .iter()
                .find(|l| l.name == bound.name)
                .map_or(bound.proxy_protocol, |l| l.proxy_protocol)
                .then(|| {
                    config
                        .forwarding
                        .trusted_proxies
                        .iter()
                        .any(|c| c.contains(peer.ip()))
                })
        };
        let handshake_timeout = limits.header_read_timeout;
        let handed = workers.spawn_connection(stream, move |mut stream| async move {
            let _permit = permit;
            let _open = open;
            // The PROXY header comes first, before any HTTP or TLS byte; the client it names is the peer from
            // then on (X-Forwarded-For, logs, trust).
            let peer = match expect_header {
                None => peer,
                Some(trusted) => {
                    let client = proxy_protocol::client_of(&mut stream, peer, trusted);
                    match tokio::time::timeout(handshake_timeout, client).await {
                        Ok(Ok(client)) => client,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "connection refused: PROXY protocol");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "PROXY protocol header timed out");
                            return;
                        }
                    }
                }
            };
            match tls {
                None => {
                    serve(
                        &builder,
                        watcher,
                        stream,
                        proxy,
                        ConnectionInfo { peer, tls: false },
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve(
                                &builder,
                                watcher,
                                stream,
                                proxy,
                                ConnectionInfo { peer, tls: true },
                            )
                            .await
                        }
                        Ok(Err(e)) => {
                            counters.tls_failed();
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            counters.tls_failed();
                            tracing::debug!(%peer, "TLS handshake timed out")
                        }
                    }
                }
            }
        });
        if let Err(e) = handed {
            tracing::warn!(listener = %bound.name, error = %e, "cannot hand a connection to a worker");
        }
    }
}

async fn serve<IO>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: IO,
    proxy: Proxy,
    info: ConnectionInfo,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        // Not boxed: since the request future shrank, boxing it costs more than the moves it saves
        // (bench/README.md, issue 12).
        async move { Ok::<_, Infallible>(proxy.handle(request, info).await) }
    });
    // With upgrades: a request the node answers 101 hands its connection over to a tunnel (`proxy::tunnel`).
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}
