//! Body wrappers: idle timeouts in both directions, in-flight accounting, and a request body that can be
//! taken back when a connect failed before a byte of it was sent (so the request can go to another node).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use thiserror::Error;
use tokio::time::{Instant, Sleep};

/// A body could not be relayed.
#[derive(Debug, Error)]
pub enum BodyError {
    /// No data for longer than `limits.body_idle_timeout`.
    #[error("body idle for longer than {0:?}")]
    IdleTimeout(Duration),
    /// The peer's connection failed mid-body.
    #[error("body stream failed")]
    Stream(#[source] hyper::Error),
    /// A node's body, read from a directly driven connection, broke its framing or its connection.
    #[error("body stream failed")]
    Node(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stream taken back for a retry was polled again after it had been consumed (a bug, never expected).
    #[error("request body already consumed")]
    Consumed,
}

impl From<hyper::Error> for BodyError {
    fn from(e: hyper::Error) -> Self {
        BodyError::Stream(e)
    }
}

/// The body type the proxy relays in both directions.
pub(crate) type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BodyError>;

/// Wraps a body with an idle timeout and an optional guard (e.g. an upstream node's in-flight count) dropped
/// as soon as the body ends or fails, not when the response value is finally dropped.
///
/// The timer is armed only when the inner body first has nothing to give (most small bodies are whole on the
/// first poll and never touch the timer wheel), then re-armed once per wait after progress, not per frame:
/// one allocation at most per body, and no timer work per frame.
#[derive(Debug)]
pub(crate) struct Relay<B, G = ()> {
    inner: B,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    /// A frame came since the deadline was last armed.
    progressed: bool,
    guard: Option<G>,
}

impl<B> Relay<B> {
    /// Relays `inner`, failing it after `idle` without a frame.
    pub(crate) fn new(inner: B, idle: Duration) -> Self {
        Relay::with_guard(inner, idle, None)
    }
}

impl<B, G> Relay<B, G> {
    /// Relays `inner` like [`Relay::new`], holding `guard` until the body ends.
    pub(crate) fn with_guard(inner: B, idle: Duration, guard: Option<G>) -> Self {
        Relay {
            inner,
            idle,
            deadline: None,
            progressed: false,
            guard,
        }
    }
}

impl<B, G: Unpin> Body for Relay<B, G>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progressed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let armed = this.deadline.is_some();
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if std::mem::take(&mut this.progressed) && armed {
                    deadline.as_mut().reset(Instant::now() + idle);
                }
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.guard = None;
                        Poll::Ready(Some(Err(BodyError::IdleTimeout(idle))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug)]
struct Slot<B> {
    body: Option<B>,
    polled: bool,
}

/// A request body that can be reclaimed if the client never polled it (connect failed: nothing was sent).
///
/// The mutex is uncontended (one poller at a time) and never held across an `.await`.
#[derive(Debug)]
pub(crate) struct Reclaimable<B> {
    slot: Arc<Mutex<Slot<B>>>,
    end_stream: bool,
    hint: SizeHint,
}

/// The handle that takes the body back.
#[derive(Debug)]
pub(crate) struct Reclaim<B>(Arc<Mutex<Slot<B>>>);

impl<B: Body> Reclaimable<B> {
    /// Wraps `body`; the handle can take it back while it has not been polled.
    pub(crate) fn new(body: B) -> (Self, Reclaim<B>) {
        let end_stream = body.is_end_stream();
        let hint = body.size_hint();
        let slot = Arc::new(Mutex::new(Slot {
            body: Some(body),
            polled: false,
        }));
        (
            Reclaimable {
                slot: slot.clone(),
                end_stream,
                hint,
            },
            Reclaim(slot),
        )
    }
}

impl<B> Reclaim<B> {
    /// The body, if no frame of it was ever requested.
    pub(crate) fn take(self) -> Option<B> {
        let mut slot = self.0.lock();
        if slot.polled {
            None
        } else {
            slot.body.take()
        }
    }
}

impl<B> Body for Reclaimable<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut slot = self.slot.lock();
        slot.polled = true;
        match slot.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(Some(Err(BodyError::Consumed))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_stream
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Which side a request body being sent to a node waits on, so that the wait for the node's answer is blamed
/// on the right side: a client trickling its body is not a slow node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// The next frame is the client's to send (it is guarded by the body's idle timeout).
    Client,
    /// A frame was handed on and the node has not taken it yet (its socket is full).
    Node,
}

/// A request body that reports where it stands on a watch channel; the channel closes when the body has been
/// sent whole (or failed, or was dropped), which is when the wait for the response head starts.
#[derive(Debug)]
pub(crate) struct Watched<B> {
    inner: B,
    /// `None` once the body ended: dropping the sender is the "sent" signal.
    phase: Option<tokio::sync::watch::Sender<Sending>>,
}

impl<B: Body> Watched<B> {
    /// Wraps `inner`; the receiver sees [`Sending`] changes and closes when the body is done.
    pub(crate) fn new(inner: B) -> (Self, tokio::sync::watch::Receiver<Sending>) {
        let (tx, rx) = tokio::sync::watch::channel(Sending::Client);
        let phase = (!inner.is_end_stream()).then_some(tx);
        (Watched { inner, phase }, rx)
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let now = match &polled {
            Poll::Pending => Some(Sending::Client),
            Poll::Ready(Some(Ok(_))) if !this.inner.is_end_stream() => Some(Sending::Node),
            Poll::Ready(_) => None,
        };
        match (now, &this.phase) {
            (Some(now), Some(tx)) => {
                tx.send_if_modified(|phase| std::mem::replace(phase, now) != now);
            }
            (None, _) => this.phase = None,
            (Some(_), None) => {}
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

/// The result of [`read_prefix`].
#[derive(Debug)]
pub(crate) enum Prefix<B> {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// The body is larger than the limit: what was read, and the unread rest.
    TooLarge {
        /// Bytes read so far (a little over the limit).
        head: Bytes,
        /// The rest of the body.
        rest: B,
    },
}

/// Reads a body up to `limit` bytes; a larger body comes back as its head and the unread rest, so it can still
/// be relayed intact (see [`Prefixed`]). Trailers of a body read whole are dropped.
pub(crate) async fn read_prefix<B>(mut body: B, limit: usize) -> Result<Prefix<B>, BodyError>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Prefix::TooLarge {
                    head: buf.freeze(),
                    rest: body,
                });
            }
        }
    }
    Ok(Prefix::Complete(buf.freeze()))
}

/// A body made of bytes already read followed by the rest of the original body.
#[derive(Debug)]
pub(crate) struct Prefixed<B> {
    head: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    /// `head` then `rest`.
    pub(crate) fn new(head: Bytes, rest: B) -> Self {
        Prefixed {
            head: Some(head),
            rest,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn full(data: &'static str) -> ProxyBody {
        Full::new(Bytes::from_static(data.as_bytes()))
            .map_err(|never| match never {})
            .boxed()
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let Prefix::Complete(whole) = read_prefix(full("0123456789"), 10).await.unwrap() else {
            panic!("a 10-byte body fits a 10-byte cap");
        };
        assert_eq!(whole, "0123456789");
        assert!(matches!(
            read_prefix(full("0123456789"), 9).await.unwrap(),
            Prefix::TooLarge { .. }
        ));
    }

    #[tokio::test]
    async fn an_oversized_body_is_relayed_intact_from_its_prefix() {
        let big: &'static str = "abcdefghijklmnopqrstuvwxyz";
        let Prefix::TooLarge { head, rest } = read_prefix(full(big), 4).await.unwrap() else {
            panic!("expected too large");
        };
        let whole = Prefixed::new(head, rest)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(whole, big);
    }

    #[tokio::test]
    async fn unpolled_body_can_be_reclaimed_intact() {
        let (body, reclaim) = Reclaimable::new(full("payload"));
        drop(body);
        let back = reclaim.take().expect("never polled");
        assert_eq!(back.collect().await.unwrap().to_bytes(), "payload");
    }

    #[tokio::test]
    async fn polled_body_cannot_be_reclaimed() {
        let (body, reclaim) = Reclaimable::new(full("payload"));
        let _ = body.collect().await;
        assert!(reclaim.take().is_none());
    }

    /// A body that never yields a frame.
    #[derive(Debug)]
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = BodyError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_timeout() {
        let relay = Relay::new(Stalled, Duration::from_secs(5));
        let err = relay.collect().await.unwrap_err();
        assert!(matches!(err, BodyError::IdleTimeout(_)), "{err:?}");
    }
}
