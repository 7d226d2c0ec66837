//! Header hygiene: the `Host` check, hop-by-hop removal on both legs, and `X-Forwarded-*`.
//!
//! Everything here is pure over a `HeaderMap`, so each rule has a table-driven test.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::error::ProxyError;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1 and common practice), as parsed
/// names so removal does not re-parse them on every request.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// WebSphere's private header carrying the public scheme.
static WS_SCHEME: HeaderName = HeaderName::from_static("$wssc");
/// WebSphere's private header saying whether the public connection is secure.
static WS_IS_SECURE: HeaderName = HeaderName::from_static("$wsis");

/// The request's `Host`: exactly one `Host` header, or for HTTP/2 the `:authority` when there is none.
pub(super) fn request_host(
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Result<HeaderValue, ProxyError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::DuplicateHost),
        (Some(host), None) if !host.is_empty() => Ok(host.clone()),
        (Some(_), None) => Err(ProxyError::MissingHost),
        (None, _) => authority
            .and_then(|a| HeaderValue::from_str(a).ok())
            .ok_or(ProxyError::MissingHost),
    }
}

/// Removes hop-by-hop headers, every header named in `Connection`, and a `Content-Length` that came with a
/// `Transfer-Encoding` (the length is stale: the framing was chunked).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry no `Connection` header (HTTP/1.1 keep-alive is the default): no allocation then.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the proxy knows about the client connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientSide {
    /// The peer address.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy (its forwarding headers are kept and extended).
    pub trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Sets `X-Forwarded-For/-Proto/-Host` (and WebSphere's `$WSSC`/`$WSIS` when asked) for the node.
pub(super) fn set_forwarding(
    headers: &mut HeaderMap,
    client: ClientSide,
    host: &HeaderValue,
    websphere: bool,
) {
    let scheme = if client.tls { "https" } else { "http" };
    let peer = client.peer.to_string();
    if client.trusted {
        let prior: Vec<String> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let chain = if prior.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prior.join(", "))
        };
        set(headers, &X_FORWARDED_FOR, &chain);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            set(headers, &X_FORWARDED_PROTO, scheme);
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
    } else {
        set(headers, &X_FORWARDED_FOR, &peer);
        set(headers, &X_FORWARDED_PROTO, scheme);
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    // A client must never be able to claim a secure connection to WebSphere.
    if !client.trusted {
        headers.remove(&WS_SCHEME);
        headers.remove(&WS_IS_SECURE);
    }
    if websphere {
        set(headers, &WS_SCHEME, scheme);
        set(
            headers,
            &WS_IS_SECURE,
            if client.tls { "true" } else { "false" },
        );
    }
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn client(trusted: bool, tls: bool) -> ClientSide {
        ClientSide {
            peer: "192.0.2.7".parse().unwrap(),
            trusted,
            tls,
        }
    }

    #[test]
    fn host_must_appear_exactly_once() {
        assert_eq!(request_host(&map(&[("host", "a:1")]), None).unwrap(), "a:1");
        assert!(matches!(
            request_host(&map(&[]), None),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host(&map(&[("host", "")]), None),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host(&map(&[("host", "a"), ("host", "b")]), None),
            Err(ProxyError::DuplicateHost)
        ));
    }

    #[test]
    fn http2_authority_stands_in_for_a_missing_host() {
        assert_eq!(
            request_host(&map(&[]), Some("lbcq:8443")).unwrap(),
            "lbcq:8443"
        );
        assert_eq!(
            request_host(&map(&[("host", "h")]), Some("lbcq")).unwrap(),
            "h"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "close, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("authorization", "OAuth oauth_token=\"t\""),
            ("cookie", "JSESSIONID=x"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, vec!["authorization", "cookie"]);
    }

    #[test]
    fn content_length_without_transfer_encoding_is_kept() {
        let mut h = map(&[("content-length", "10")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("content-length").unwrap(), "10");
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("$wsis", "true"),
        ]);
        set_forwarding(
            &mut h,
            client(false, false),
            &HeaderValue::from_static("lbcq"),
            false,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "lbcq");
        assert!(h.get("$wsis").is_none());
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarding(
            &mut h,
            client(true, false),
            &HeaderValue::from_static("lbcq"),
            false,
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "198.51.100.1, 192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn websphere_headers_carry_the_public_scheme() {
        let mut h = HeaderMap::new();
        set_forwarding(
            &mut h,
            client(false, true),
            &HeaderValue::from_static("lbcq"),
            true,
        );
        assert_eq!(h.get("$wssc").unwrap(), "https");
        assert_eq!(h.get("$wsis").unwrap(), "true");
    }
}
