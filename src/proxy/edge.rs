//! The check stage: what a request must satisfy before the proxy reads its credentials or a node sees it.
//!
//! hyper has already refused what its parser cannot frame (bare LF in the head, obs-fold, NUL, duplicate or
//! invalid `Content-Length`, a `Transfer-Encoding` whose last coding is not `chunked`); what is left to the
//! proxy is pure and here: the target's length, the scheme of an absolute-form target, the framing hyper
//! accepts but the proxy must not forward re-framed (see [`headers::check_framing`]), the `Host` rules, and
//! the number of header fields the node will receive.

use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH};
use http::uri::Scheme;

use super::error::ProxyError;
use super::headers;
use crate::config::Limits;

/// Checks a request as it arrived and returns the `Host` the node will see (see [`headers::request_host`]).
pub(super) fn check_request(
    parts: &http::request::Parts,
    limits: &Limits,
) -> Result<HeaderValue, ProxyError> {
    let uri = &parts.uri;
    // The target as the client wrote it: path and query, with the authority of an absolute-form target
    // (HTTP/2: `:path` and `:authority`). Measured before anything else reads it.
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > limits.max_request_target {
        return Err(ProxyError::TargetTooLong {
            limit: limits.max_request_target,
        });
    }
    // Origin-form or absolute-form with an http(s) scheme only: authority-form belongs to CONNECT (refused
    // before this), and another scheme is not a request this proxy can serve.
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    if authority_form
        || uri
            .scheme()
            .is_some_and(|s| *s != Scheme::HTTP && *s != Scheme::HTTPS)
    {
        return Err(ProxyError::BadTarget);
    }
    headers::check_framing(&parts.headers, parts.version)?;
    headers::request_host(
        &parts.headers,
        parts.version,
        uri.authority().map(|a| a.as_str()),
    )
}

/// Checks the fields the node will receive, the proxy's own included: `headers` as they will be sent, plus the
/// framing field the client adds to a body without `Content-Length` (`Transfer-Encoding` or `Content-Length`).
/// So `limits.max_headers` holds for the node, which typically enforces the same default of 100.
pub(super) fn check_sent(
    headers: &HeaderMap,
    has_body: bool,
    limits: &Limits,
) -> Result<(), ProxyError> {
    let framing = usize::from(has_body && !headers.contains_key(CONTENT_LENGTH));
    let sent = headers.len() + framing;
    if sent > limits.max_headers {
        return Err(ProxyError::TooManyHeaders {
            sent,
            limit: limits.max_headers,
        });
    }
    Ok(())
}
