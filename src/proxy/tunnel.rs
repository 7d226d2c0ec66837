//! Tunnel: after a node answered 101 to an upgrade request (a WebSocket handshake), the client's connection and
//! the node's are spliced byte for byte until either side closes, nothing moves for
//! `limits.tunnel_idle_timeout`, or the application shuts down. Before the 101 nothing is tunnelled: an upgrade
//! request the node answers otherwise is relayed as any answer and the connection stays HTTP.
//!
//! The splice runs on the application's task tracker under its cancellation tree (see `app`), so it has an
//! owner and ends on shutdown, after the proxy's listeners drained.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{headers, Proxy};
use crate::transport::body::ProxyBody;
use crate::upstream::client::NodeBody;
use crate::upstream::{InflightGuard, Node};

/// Where tunnels are spawned: the application's tracker and cancellation tree.
#[derive(Debug)]
pub(super) struct Tunnels {
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Tunnels {
    pub(super) fn new(tasks: TaskTracker, cancel: CancellationToken) -> Tunnels {
        Tunnels { tasks, cancel }
    }
}

impl Proxy {
    /// Answers the client with the node's 101 and splices the two upgraded connections in the background.
    pub(super) fn tunnel(
        &self,
        node: Arc<Node>,
        guard: InflightGuard,
        mut response: Response<NodeBody>,
        client: OnUpgrade,
        idle: Duration,
    ) -> Response<ProxyBody> {
        let upstream = hyper::upgrade::on(&mut response);
        let (mut head, _) = response.into_parts();
        let protocol = head.headers.get(UPGRADE).cloned();
        headers::strip_hop_by_hop(&mut head.headers);
        match protocol {
            Some(protocol) => headers::set_upgrade(&mut head.headers, protocol),
            None => {
                head.headers
                    .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }
        self.shared
            .metrics
            .observe_response(Some(node.id), StatusCode::SWITCHING_PROTOCOLS);
        let cancel = self.shared.tunnels.cancel.clone();
        self.shared.tunnels.tasks.spawn(async move {
            // Counted in flight on the node for as long as the tunnel is open.
            let _guard = guard;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(node = %node.spec.name, error = %e, "upgrade did not complete");
                    return;
                }
            };
            let end = splice(TokioIo::new(client), TokioIo::new(upstream), idle, &cancel).await;
            tracing::debug!(node = %node.spec.name, ?end, "tunnel closed");
        });
        Response::from_parts(head, Empty::new().map_err(|never| match never {}).boxed())
    }
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TunnelEnd {
    /// One side closed (or failed) and the other was shut down.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// The application is shutting down.
    Shutdown,
}

/// Copies bytes both ways between `a` and `b` until one side closes, `idle` passes without a byte, or
/// `cancel` fires.
pub(crate) async fn splice<A, B>(
    a: A,
    b: B,
    idle: Duration,
    cancel: &CancellationToken,
) -> TunnelEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Active {
        io: a,
        start,
        last: last.clone(),
    };
    let mut b = Active {
        io: b,
        start,
        last: last.clone(),
    };
    let watchdog = async {
        loop {
            let since_start = Duration::from_millis(last.load(Ordering::Relaxed));
            let until = start + since_start + idle;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => TunnelEnd::Closed,
        () = watchdog => TunnelEnd::Idle,
        () = cancel.cancelled() => TunnelEnd::Shutdown,
    }
}

/// An I/O object that records, in milliseconds since `start`, when a byte last moved through it.
struct Active<T> {
    io: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_carries_bytes_both_ways_and_closes_when_idle() {
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut node) = tokio::io::duplex(64);
        let cancel = CancellationToken::new();
        let idle = Duration::from_secs(10);
        let task = tokio::spawn(async move { splice(a, b, idle, &cancel).await });
        let mut buf = [0u8; 5];
        for _ in 0..3 {
            // Activity every 6 s keeps a 10 s idle timeout from firing.
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"hello").await.unwrap();
            node.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            node.write_all(b"world").await.unwrap();
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"world");
        }
        assert!(!task.is_finished());
        assert_eq!(task.await.unwrap(), TunnelEnd::Idle);
    }

    #[tokio::test]
    async fn a_tunnel_ends_on_cancellation() {
        let (_client, a) = tokio::io::duplex(64);
        let (b, _node) = tokio::io::duplex(64);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task =
            tokio::spawn(async move { splice(a, b, Duration::from_secs(3600), &stop).await });
        cancel.cancel();
        assert_eq!(task.await.unwrap(), TunnelEnd::Shutdown);
    }

    #[tokio::test]
    async fn a_tunnel_ends_when_one_side_closes() {
        let (client, a) = tokio::io::duplex(64);
        let (b, node) = tokio::io::duplex(64);
        let cancel = CancellationToken::new();
        let task =
            tokio::spawn(async move { splice(a, b, Duration::from_secs(3600), &cancel).await });
        drop(client);
        drop(node);
        assert_eq!(task.await.unwrap(), TunnelEnd::Closed);
    }
}
