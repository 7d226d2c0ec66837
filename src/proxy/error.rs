//! Proxy errors and the one place they become HTTP status codes.
//!
//! Clients get a short generic body; the cause (with its `#[source]` chain) goes to the log.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use thiserror::Error;

use crate::logging::error_chain;
use crate::transport::body::{BodyError, ProxyBody};
use crate::upstream::ClientError;

/// Which side caused an error: decides log level and whether the node's health is blamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The client sent something unacceptable.
    Client,
    /// A node failed or is missing.
    Upstream,
}

/// Why a request could not be proxied.
#[derive(Debug, Error)]
pub(super) enum ProxyError {
    /// No `Host` header (and no HTTP/2 authority).
    #[error("request has no Host header")]
    MissingHost,
    /// More than one `Host` header.
    #[error("request has more than one Host header")]
    DuplicateHost,
    /// A request target that cannot be forwarded (e.g. authority-form outside CONNECT).
    #[error("request target cannot be forwarded")]
    BadTarget,
    /// A `Host` (or absolute-form authority) that is not `host[:port]` (RFC 9112 §3.2, RFC 3986 §3.2):
    /// whitespace, userinfo, characters outside the grammar.
    #[error("invalid Host header or target authority")]
    InvalidHost,
    /// The request target is longer than `limits.max_request_target`.
    #[error("request target longer than {limit} bytes")]
    TargetTooLong {
        /// The cap.
        limit: usize,
    },
    /// A transfer coding other than `chunked` (RFC 9112 §6.1): the proxy would have to decode it to frame
    /// the message and must not forward it rewritten.
    #[error("transfer coding not implemented")]
    UnsupportedTransferCoding,
    /// Framing the proxy will not guess at: `Transfer-Encoding` with `Content-Length`, in HTTP/1.0, or
    /// `chunked` applied twice (RFC 9112 §6.1, §6.3).
    #[error("ambiguous or invalid message framing")]
    InvalidFraming,
    /// The request, with the fields the proxy adds, would reach the node with more than `limits.max_headers`.
    #[error("{sent} header fields would be sent to the node; the limit is {limit}")]
    TooManyHeaders {
        /// Fields that would have been sent.
        sent: usize,
        /// The cap.
        limit: usize,
    },
    /// The request body exceeded the buffering cap.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The client's body failed or stalled.
    #[error("reading the request body failed")]
    ClientBody(#[source] BodyError),
    /// The client's request body failed (stalled or broke) while it was being streamed to a node: the
    /// client's fault, never the node's. 408 when it stalled, 400 otherwise.
    #[error("the request body failed while it was being forwarded")]
    ClientBodyInFlight(#[source] ClientError),
    /// Every node that could serve the request is down.
    #[error("no healthy node")]
    NoHealthyNode,
    /// The node could not be reached (nothing was sent).
    #[error("cannot connect to node {node}")]
    Connect {
        /// Node name.
        node: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The node accepted the request but sent no response head in time.
    #[error("node {node} sent no response within {timeout:?}")]
    UpstreamTimeout {
        /// Node name.
        node: String,
        /// The limit.
        timeout: Duration,
    },
    /// The node's response body failed while the proxy read it to learn from it.
    #[error("reading the response body of node {node} failed")]
    UpstreamBody {
        /// Node name.
        node: String,
        /// The body error.
        #[source]
        source: BodyError,
    },
    /// The exchange with the node failed after the request was (maybe partly) sent.
    #[error("exchange with node {node} failed")]
    Upstream {
        /// Node name.
        node: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
}

impl ProxyError {
    /// The status the client receives.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost
            | ProxyError::DuplicateHost
            | ProxyError::BadTarget
            | ProxyError::InvalidHost
            | ProxyError::InvalidFraming => StatusCode::BAD_REQUEST,
            ProxyError::TargetTooLong { .. } => StatusCode::URI_TOO_LONG,
            ProxyError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ProxyError::TooManyHeaders { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody(BodyError::IdleTimeout(_)) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::ClientBodyInFlight(source) if stalled(source) => {
                StatusCode::REQUEST_TIMEOUT
            }
            ProxyError::ClientBodyInFlight(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoHealthyNode => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamBody { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Who is to blame.
    pub(super) fn side(&self) -> Side {
        match self {
            ProxyError::MissingHost
            | ProxyError::DuplicateHost
            | ProxyError::BadTarget
            | ProxyError::InvalidHost
            | ProxyError::InvalidFraming
            | ProxyError::TargetTooLong { .. }
            | ProxyError::UnsupportedTransferCoding
            | ProxyError::TooManyHeaders { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientBody(_)
            | ProxyError::ClientBodyInFlight(_) => Side::Client,
            _ => Side::Upstream,
        }
    }

    /// A short generic body for the client; never the cause's details.
    fn public_message(&self) -> &'static str {
        match self {
            ProxyError::MissingHost => "missing Host header",
            ProxyError::DuplicateHost => "more than one Host header",
            ProxyError::BadTarget => "request target not supported",
            ProxyError::InvalidHost => "invalid Host header",
            ProxyError::InvalidFraming => "invalid message framing",
            ProxyError::TargetTooLong { .. } => "request target too long",
            ProxyError::UnsupportedTransferCoding => "transfer coding not implemented",
            ProxyError::TooManyHeaders { .. } => "too many header fields",
            ProxyError::BodyTooLarge { .. } => "request body too large",
            ProxyError::ClientBody(_) | ProxyError::ClientBodyInFlight(_) => {
                "request body could not be read"
            }
            ProxyError::NoHealthyNode => "no healthy backend node",
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamBody { .. } => "backend node unavailable",
            ProxyError::UpstreamTimeout { .. } => "backend node timed out",
        }
    }

    /// Logs the error with its cause chain and turns it into the client's response.
    pub(super) fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        match self.side() {
            Side::Client => {
                tracing::debug!(error = %error_chain(&self), %status, "rejected request")
            }
            Side::Upstream => tracing::warn!(error = %error_chain(&self), %status, "proxy error"),
        }
        let body = format!(
            "{} {}: {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.public_message()
        );
        let mut response = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        if self.side() == Side::Client {
            // A refused request may have left body bytes unread or framing in doubt: never read the next
            // request from the same connection (hyper closes it after this response).
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// Whether an error's cause chain holds a body error (only the request body the proxy hands the client can
/// produce one: a failure reading the client, not the node).
pub(super) fn client_body_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a BodyError> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(body) = cause.downcast_ref::<BodyError>() {
            return Some(body);
        }
        source = cause.source();
    }
    None
}

fn stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(client_body_cause(error), Some(BodyError::IdleTimeout(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_map_to_4xx_and_node_failures_to_5xx() {
        let cases = [
            (ProxyError::MissingHost, 400, Side::Client),
            (ProxyError::DuplicateHost, 400, Side::Client),
            (ProxyError::BodyTooLarge { limit: 1 }, 413, Side::Client),
            (
                ProxyError::ClientBody(BodyError::IdleTimeout(Duration::ZERO)),
                408,
                Side::Client,
            ),
            (ProxyError::InvalidHost, 400, Side::Client),
            (ProxyError::InvalidFraming, 400, Side::Client),
            (ProxyError::TargetTooLong { limit: 1 }, 414, Side::Client),
            (ProxyError::UnsupportedTransferCoding, 501, Side::Client),
            (
                ProxyError::TooManyHeaders { sent: 2, limit: 1 },
                431,
                Side::Client,
            ),
            (ProxyError::NoHealthyNode, 503, Side::Upstream),
            (
                ProxyError::UpstreamTimeout {
                    node: "a".into(),
                    timeout: Duration::ZERO,
                },
                504,
                Side::Upstream,
            ),
        ];
        for (error, status, side) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.side(), side, "{error}");
        }
    }

    #[test]
    fn a_refused_request_closes_its_connection_and_a_node_failure_does_not() {
        let refused = ProxyError::UnsupportedTransferCoding.into_response();
        assert_eq!(refused.headers().get("connection").unwrap(), "close");
        let failed = ProxyError::NoHealthyNode.into_response();
        assert!(failed.headers().get("connection").is_none());
    }

    #[test]
    fn no_healthy_node_says_so() {
        let response = ProxyError::NoHealthyNode.into_response();
        assert_eq!(response.status(), 503);
    }
}
