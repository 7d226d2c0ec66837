//! The access log: one line per request, written when the response body has been relayed (or abandoned), so
//! it can say how many bytes went each way and how long the whole exchange took.
//!
//! The stages note what they decided in [`Notes`]; [`Proxy::handle`](super::Proxy::handle) wraps the request
//! and response bodies in byte counters and [`Logged`] writes the line when it is dropped. Only the path is
//! logged, never the query (OAuth 1 puts `oauth_token` and signatures there, OAuth 2 `code`), and no header:
//! nothing a credential travels in reaches the line.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::logging::ACCESS_TARGET;
use crate::metrics::RouteReason;
use crate::transport::body::{BodyError, ProxyBody};
use crate::upstream::Node;

/// What the stages decided about one request, for its access-log line.
#[derive(Debug, Default)]
pub(super) struct Notes {
    /// The rule that chose the node.
    pub route: Option<RouteReason>,
    /// The node whose answer was relayed.
    pub node: Option<Arc<Node>>,
    /// From sending to the first node asked to its response head.
    pub upstream: Option<Duration>,
    /// The answer came from a replay on another node after a stale-credential answer.
    pub replayed: bool,
    /// A refresh this request caused: `first` (it waited for one), `first_failed`, or `background`.
    pub refresh: Option<&'static str>,
}

/// The request side of a line: who asked what, and when.
#[derive(Debug)]
pub(super) struct Line {
    pub started: Instant,
    pub peer: SocketAddr,
    pub method: http::Method,
    /// The path only: the query is never logged.
    pub path: String,
    /// The id the node is sent as `X-Request-Id` too ([`request_id`]): always plain ASCII.
    pub request_id: http::HeaderValue,
    pub bytes_in: Arc<AtomicU64>,
}

/// The request id, logged and forwarded to the node as `X-Request-Id` so one request can be followed across
/// the proxy's and the node's logs: the client's own when it is short and plain (letters, digits, `-_.:`), else
/// a fresh random one. Never longer than 64 characters, never a character that needs quoting in a log line.
pub(super) fn request_id(headers: &http::HeaderMap) -> http::HeaderValue {
    let given = headers.get(X_REQUEST_ID).filter(|v| {
        !v.is_empty()
            && v.len() <= 64
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    match given {
        // A clone shares the client's bytes: no copy on the common path.
        Some(id) => id.clone(),
        None => fresh_request_id(next_id()),
    }
}

thread_local! {
    /// This thread's request-id state: a random start, stepped by a constant per id.
    static ID_STATE: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
}

/// The next id of this thread: SplitMix64 (a bijective mix of a state stepped by the golden-ratio constant), so
/// a thread repeats no id in 2^64 requests and threads, starting at random points, are unlikely to meet. Ids
/// need to be distinct, not secret; `rand::random()` cost a request about 200 instructions (issue 12).
fn next_id() -> u64 {
    let state = ID_STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        next
    });
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` as 16 lower-case hex digits (what `format!("{n:016x}")` writes, without the formatter).
fn fresh_request_id(n: u64) -> http::HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[usize::try_from((n >> (60 - 4 * i)) & 0xf).unwrap_or(0)];
    }
    http::HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

/// The header the request id travels in, both ways it is read and written (a constant name: no parse per use).
pub(super) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Counts the bytes of a body as they pass.
#[derive(Debug)]
pub(super) struct Counted {
    inner: ProxyBody,
    count: Arc<AtomicU64>,
}

impl Counted {
    pub(super) fn new(inner: ProxyBody, count: Arc<AtomicU64>) -> Counted {
        Counted { inner, count }
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Relaxed);
            }
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

/// The response body, relayed as is; writes the access-log line when dropped.
#[derive(Debug)]
pub(super) struct Logged {
    inner: ProxyBody,
    line: Line,
    notes: Notes,
    status: StatusCode,
    bytes_out: u64,
    finished: bool,
}

impl Logged {
    pub(super) fn new(inner: ProxyBody, line: Line, notes: Notes, status: StatusCode) -> Logged {
        Logged {
            finished: inner.is_end_stream(),
            inner,
            line,
            notes,
            status,
            bytes_out: 0,
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
                // hyper stops polling a body that says it has ended, so `None` may never come.
                if self.inner.is_end_stream() {
                    self.finished = true;
                }
            }
            Poll::Ready(None) => self.finished = true,
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

impl Drop for Logged {
    fn drop(&mut self) {
        let line = &self.line;
        let notes = &self.notes;
        let millis = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            target: ACCESS_TARGET,
            client = %line.peer,
            method = %line.method,
            path = %line.path,
            status = self.status.as_u16(),
            node = notes.node.as_ref().map_or("-", |n| n.spec.name.as_str()),
            route = notes.route.map_or("-", RouteReason::as_str),
            replayed = notes.replayed,
            refresh = notes.refresh.unwrap_or("-"),
            upstream_ms = notes.upstream.map_or(-1.0, millis),
            total_ms = millis(line.started.elapsed()),
            bytes_in = line.bytes_in.load(Relaxed),
            bytes_out = self.bytes_out,
            complete = self.finished,
            // Plain ASCII by construction (`request_id`), so `to_str` cannot fail.
            request_id = line.request_id.to_str().unwrap_or("-"),
            "access"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_request_id_is_the_number_in_sixteen_hex_digits() {
        for n in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, rand::random()] {
            assert_eq!(fresh_request_id(n).to_str().unwrap(), format!("{n:016x}"));
        }
    }

    #[test]
    fn a_thread_hands_out_distinct_request_ids() {
        let ids: std::collections::HashSet<u64> = (0..100_000).map(|_| next_id()).collect();
        assert_eq!(ids.len(), 100_000);
        // Another thread starts elsewhere in the sequence.
        let other = std::thread::spawn(|| (0..1_000).map(|_| next_id()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert!(other.iter().all(|id| !ids.contains(id)));
    }
}
