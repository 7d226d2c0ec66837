//! Header hygiene: the `Host` rules, framing checks, hop-by-hop removal on both legs, and forwarding headers
//! (`X-Forwarded-*`, `Forwarded`, client-address headers and their `_` look-alikes, WebSphere's `$WS*`).
//!
//! Everything here is pure over a `HeaderMap`, so each rule has a table-driven test.
//!
//! Longer than 600 lines: more than half of it is the table of header cases its tests run.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

use super::error::ProxyError;
use crate::config::Forwarding;

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

/// The `Host` the node will see.
///
/// With an authority in the request target (HTTP/1.1 absolute-form, or HTTP/2 `:authority`) the node sees
/// that authority (RFC 9112 §3.2.2, RFC 9113 §8.3.1); otherwise the client's one `Host` field, byte for byte
/// (OAuth 1 signatures cover it). An HTTP/1.1 request needs exactly one `Host` either way, and every host must
/// be a valid `uri-host [":" port]` (RFC 9112 §3.2: 400 otherwise).
pub(super) fn request_host(
    headers: &HeaderMap,
    version: Version,
    authority: Option<&str>,
) -> Result<HeaderValue, ProxyError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(ProxyError::DuplicateHost),
        (Some(host), None) if host.is_empty() => return Err(ProxyError::MissingHost),
        (Some(host), None) if !valid_host(host.as_bytes()) => return Err(ProxyError::InvalidHost),
        (host, _) => host,
    };
    match (authority, host) {
        (Some(authority), _) if !valid_host(authority.as_bytes()) => Err(ProxyError::InvalidHost),
        (Some(_), None) if version == Version::HTTP_11 => Err(ProxyError::MissingHost),
        (Some(authority), _) => {
            HeaderValue::from_str(authority).map_err(|_| ProxyError::InvalidHost)
        }
        (None, Some(host)) => Ok(host.clone()),
        (None, None) => Err(ProxyError::MissingHost),
    }
}

/// Whether `value` is `uri-host [":" port]` (RFC 3986 §3.2.2-3.2.3): a bracketed IP literal or a reg-name
/// (unreserved, percent-encoded or sub-delims characters, which covers IPv4), then an optional decimal port.
/// Whitespace, userinfo (`@`), a path, a quote or a control character make it invalid.
pub(super) fn valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let port = match &rest[end + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        };
        (ip_literal(&rest[..end]), port)
    } else {
        let (host, port) = match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        (!host.is_empty() && reg_name(host), port)
    };
    // `port = *DIGIT`; more than five digits cannot be a port.
    host_ok && port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

fn sub_delim_or_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

fn reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                if !host
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            b if sub_delim_or_unreserved(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// `IPv6address / IPvFuture` inside the brackets (no zone identifier: RFC 6874 allows none in `Host`).
fn ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = literal {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b == b':' || sub_delim_or_unreserved(b));
    }
    std::str::from_utf8(literal).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The request's framing, as far as hyper leaves it to the proxy: only `chunked` is implemented, so any other
/// transfer coding is refused with 501 rather than forwarded re-framed without it (RFC 9112 §6.1); `chunked`
/// twice, a transfer coding in HTTP/1.0, or `Transfer-Encoding` with `Content-Length` are framing faults
/// (RFC 9112 §6.1, §6.3: 400), refused instead of guessed at.
pub(super) fn check_framing(headers: &HeaderMap, version: Version) -> Result<(), ProxyError> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_none() {
        return Ok(());
    }
    if version == Version::HTTP_10 || headers.contains_key(header::CONTENT_LENGTH) {
        return Err(ProxyError::InvalidFraming);
    }
    let mut chunked = 0;
    for value in codings {
        let text = value
            .to_str()
            .map_err(|_| ProxyError::UnsupportedTransferCoding)?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Err(ProxyError::UnsupportedTransferCoding);
            }
            chunked += 1;
        }
    }
    if chunked == 1 {
        Ok(())
    } else {
        Err(ProxyError::InvalidFraming)
    }
}

/// Removes hop-by-hop headers, every header named in `Connection`, and a `Content-Length` that came with a
/// `Transfer-Encoding` (the length is stale: the framing was chunked).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names says what is there: most requests carry no hop-by-hop field, and nine hashed
    // removals per request cost more than the scan (issue 12).
    let (mut connection, mut transfer_encoding, mut any) = (false, false, false);
    for name in headers.keys() {
        if HOP_BY_HOP.contains(name) {
            any = true;
            connection |= name == header::CONNECTION;
            transfer_encoding |= name == header::TRANSFER_ENCODING;
        }
    }
    if !any {
        return;
    }
    if connection {
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
    if transfer_encoding {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The `Upgrade` value of a request the proxy tunnels after a 101: an HTTP/1.1 `GET` without a body whose
/// `Connection` names `upgrade` (RFC 9110 §7.8). `h2c` is never tunnelled: after the switch the node would
/// read HTTP/2 requests the proxy never sees, routes or learns from (it is removed like any hop-by-hop field).
/// `None`: the request is forwarded as any other, its `Upgrade` removed.
pub(super) fn upgrade_request(
    method: &http::Method,
    version: Version,
    headers: &HeaderMap,
    has_body: bool,
) -> Option<HeaderValue> {
    if method != http::Method::GET || version != Version::HTTP_11 || has_body {
        return None;
    }
    let names_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut values = headers.get_all(header::UPGRADE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let h2c = value.to_str().map_or(true, |v| {
        v.split(',').any(|p| {
            let name = p.trim().split('/').next().unwrap_or_default();
            name.eq_ignore_ascii_case("h2c") || name.is_empty()
        })
    });
    (names_upgrade && !h2c).then(|| value.clone())
}

/// Puts back the two fields an upgrade travels in, after [`strip_hop_by_hop`] removed them.
pub(super) fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
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

/// Sets `X-Forwarded-For/-Proto/-Host` (plus, when configured, an RFC 7239 `Forwarded` element and WebSphere's
/// `$WSSC`/`$WSIS`) for the node, after removing what a client could use to pose as someone else.
///
/// From an untrusted peer every forwarding header is removed or replaced: `X-Forwarded-*` (any suffix),
/// `Forwarded`, `$WS*`, and the names in `forwarding.strip_from_untrusted` (`X-Real-IP`, ...). From anyone,
/// a name that equals one of those once `_` is read as `-` (`X_Forwarded_For`) is removed: CGI, WSGI and
/// servlet stacks map both to the same variable, and a trusted proxy in front may have passed it on as is.
pub(super) fn set_forwarding(
    headers: &mut HeaderMap,
    client: ClientSide,
    host: &HeaderValue,
    settings: &Forwarding,
) {
    remove_spoofable(headers, client.trusted, &settings.strip_from_untrusted);
    let scheme = if client.tls { "https" } else { "http" };
    let peer = ip_text(client.peer);
    // RFC 7239 §6: an IPv6 node is quoted and bracketed; `host` holds ':' so it is a quoted-string (a valid Host
    // contains neither a quote nor a backslash). Written from `peer` before `X-Forwarded-For` takes it.
    let forwarded = settings.forwarded.then(|| {
        let host = String::from_utf8_lossy(host.as_bytes());
        match client.peer {
            IpAddr::V4(_) => format!("for={peer};host=\"{host}\";proto={scheme}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\";host=\"{host}\";proto={scheme}"),
        }
    });
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
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
    } else {
        // The peer's text becomes the value without a second copy; the scheme is static.
        if let Ok(v) = HeaderValue::try_from(peer) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    if let Some(Ok(element)) = forwarded.map(HeaderValue::try_from) {
        headers.append(header::FORWARDED, element);
    }
    if settings.websphere_private_headers {
        set(headers, &WS_SCHEME, scheme);
        set(
            headers,
            &WS_IS_SECURE,
            if client.tls { "true" } else { "false" },
        );
    }
}

/// Whether `name` (lower case, `-` separated) is a forwarding header tokenroute owns.
fn is_forwarding(name: &str, extra: &[String]) -> bool {
    name == "forwarded"
        || name.starts_with("x-forwarded-")
        || name.starts_with("$ws")
        || extra.iter().any(|e| e == name)
}

/// Removes forwarding headers an untrusted peer sent, and `_` look-alikes of them from anyone.
fn remove_spoofable(headers: &mut HeaderMap, trusted: bool, extra: &[String]) {
    // Most requests carry none: no allocation then (an empty `Vec` does not allocate).
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            if name.contains('_') {
                is_forwarding(&name.replace('_', "-"), extra)
            } else {
                !trusted && is_forwarding(name, extra)
            }
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// An address as `Display` writes it; IPv4 (every request's `X-Forwarded-For`) without the formatter, which
/// cost a request about 1 300 instructions (issue 12).
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_writes_what_display_writes() {
        let octets = [0u8, 1, 9, 10, 42, 99, 100, 127, 199, 200, 250, 255];
        for a in octets {
            for b in octets {
                let v4 = IpAddr::from([a, b, 255 - a, 9u8.wrapping_add(b)]);
                assert_eq!(ip_text(v4), v4.to_string());
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

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

    fn request_host11(
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<HeaderValue, ProxyError> {
        request_host(headers, Version::HTTP_11, authority)
    }

    fn settings(websphere: bool) -> Forwarding {
        Forwarding {
            trusted_proxies: Vec::new(),
            websphere_private_headers: websphere,
            forwarded: false,
            strip_from_untrusted: vec!["x-real-ip".into(), "true-client-ip".into()],
        }
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
        assert_eq!(
            request_host11(&map(&[("host", "a:1")]), None).unwrap(),
            "a:1"
        );
        assert!(matches!(
            request_host11(&map(&[]), None),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host11(&map(&[("host", "")]), None),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host11(&map(&[("host", "a"), ("host", "b")]), None),
            Err(ProxyError::DuplicateHost)
        ));
    }

    #[test]
    fn http2_authority_stands_in_for_a_missing_host() {
        assert_eq!(
            request_host(&map(&[]), Version::HTTP_2, Some("lbcq:8443")).unwrap(),
            "lbcq:8443"
        );
    }

    #[test]
    fn a_target_authority_replaces_the_host_field() {
        // RFC 9112 §3.2.2 (absolute-form) and RFC 9113 §8.3.1 (`:authority`).
        assert_eq!(
            request_host11(&map(&[("host", "h")]), Some("LBCQ:8080")).unwrap(),
            "LBCQ:8080"
        );
        assert_eq!(
            request_host(&map(&[("host", "h")]), Version::HTTP_2, Some("lbcq")).unwrap(),
            "lbcq"
        );
        // HTTP/1.1 still needs its one Host, and the authority must be a valid host too.
        assert!(matches!(
            request_host11(&map(&[]), Some("lbcq")),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host11(&map(&[("host", "h")]), Some("user@lbcq")),
            Err(ProxyError::InvalidHost)
        ));
    }

    #[test]
    fn host_is_forwarded_byte_for_byte() {
        for host in [
            "LBCQ.Example:8080",
            "lbcq",
            "10.0.0.1:9443",
            "[::1]:8080",
            "a%2Db",
        ] {
            assert_eq!(request_host11(&map(&[("host", host)]), None).unwrap(), host);
        }
    }

    #[test]
    fn hosts_outside_the_uri_host_grammar_are_invalid() {
        let valid = [
            "lbcq",
            "lbcq:",
            "lbcq:9443",
            "LBCQ.example.com",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:8443",
            "[v1.fe80::a+en1]",
            "a-b_c~d!$&'()*+,;=",
            "x%41y",
        ];
        let invalid = [
            "",
            ":80",
            "lbcq :80",
            " lbcq",
            "lbcq\t",
            "user@lbcq",
            "user:pw@lbcq:80",
            "lbcq/path",
            "lbcq?q",
            "lbcq#f",
            "lb\"cq",
            "lbcq:80:81",
            "lbcq:8o",
            "lbcq:123456",
            "[::1",
            "[::1]x",
            "[zz::1]",
            "[fe80::1%25eth0]",
            "x%4",
            "x%GG",
            "lbcq\\x",
            "lb<cq>",
        ];
        for host in valid {
            assert!(valid_host(host.as_bytes()), "{host:?} should be valid");
        }
        for host in invalid {
            assert!(!valid_host(host.as_bytes()), "{host:?} should be invalid");
        }
        assert!(!valid_host(b"lb\x00cq"));
        assert!(!valid_host("lbcq\u{e9}".as_bytes()));
    }

    #[test]
    fn only_a_single_chunked_coding_is_forwarded() {
        let ok = |pairs: &[(&str, &str)]| check_framing(&map(pairs), Version::HTTP_11);
        assert!(ok(&[]).is_ok());
        assert!(ok(&[("transfer-encoding", "chunked")]).is_ok());
        assert!(ok(&[("transfer-encoding", "Chunked")]).is_ok());
        for unsupported in [
            "gzip, chunked",
            "deflate,chunked",
            "x-custom, chunked",
            "identity, chunked",
        ] {
            assert!(
                matches!(
                    ok(&[("transfer-encoding", unsupported)]),
                    Err(ProxyError::UnsupportedTransferCoding)
                ),
                "{unsupported}"
            );
        }
        assert!(matches!(
            ok(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ]),
            Err(ProxyError::UnsupportedTransferCoding)
        ));
        for faulty in [
            vec![("transfer-encoding", "chunked, chunked")],
            vec![("transfer-encoding", "chunked"), ("content-length", "5")],
        ] {
            assert!(
                matches!(ok(&faulty), Err(ProxyError::InvalidFraming)),
                "{faulty:?}"
            );
        }
        assert!(matches!(
            check_framing(&map(&[("transfer-encoding", "chunked")]), Version::HTTP_10),
            Err(ProxyError::InvalidFraming)
        ));
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
            &settings(false),
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
            &settings(false),
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
            &settings(true),
        );
        assert_eq!(h.get("$wssc").unwrap(), "https");
        assert_eq!(h.get("$wsis").unwrap(), "true");
    }

    #[test]
    fn untrusted_peers_cannot_send_any_forwarding_header() {
        let mut h = map(&[
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("$wsra", "6.6.6.6"),
            ("$wssc", "https"),
            ("x-kept", "yes"),
        ]);
        set_forwarding(
            &mut h,
            client(false, false),
            &HeaderValue::from_static("lbcq"),
            &settings(false),
        );
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-kept"
            ]
        );
    }

    #[test]
    fn underscore_look_alikes_are_removed_even_from_trusted_peers() {
        for trusted in [false, true] {
            let mut h = map(&[
                ("x_forwarded_for", "6.6.6.6"),
                ("x-forwarded_host", "evil"),
                ("X_Real_IP", "6.6.6.6"),
                ("forwarded_", "x"),
                ("x_kept_header", "yes"),
            ]);
            set_forwarding(
                &mut h,
                client(trusted, false),
                &HeaderValue::from_static("lbcq"),
                &settings(false),
            );
            for gone in ["x_forwarded_for", "x-forwarded_host", "x_real_ip"] {
                assert!(h.get(gone).is_none(), "{gone} kept (trusted: {trusted})");
            }
            assert_eq!(h.get("x_kept_header").unwrap(), "yes");
        }
    }

    #[test]
    fn trusted_peers_keep_their_forwarded_and_client_address_headers() {
        let mut h = map(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-real-ip", "198.51.100.1"),
        ]);
        let mut with_forwarded = settings(false);
        with_forwarded.forwarded = true;
        set_forwarding(
            &mut h,
            client(true, true),
            &HeaderValue::from_static("lbcq:8443"),
            &with_forwarded,
        );
        let forwarded: Vec<_> = h.get_all("forwarded").iter().collect();
        assert_eq!(
            forwarded,
            vec![
                "for=198.51.100.1",
                "for=192.0.2.7;host=\"lbcq:8443\";proto=https"
            ]
        );
        assert_eq!(h.get("x-real-ip").unwrap(), "198.51.100.1");
    }

    #[test]
    fn an_ipv6_peer_is_quoted_in_forwarded() {
        let mut h = HeaderMap::new();
        let mut with_forwarded = settings(false);
        with_forwarded.forwarded = true;
        let peer = ClientSide {
            peer: "2001:db8::7".parse().unwrap(),
            trusted: false,
            tls: false,
        };
        set_forwarding(
            &mut h,
            peer,
            &HeaderValue::from_static("lbcq"),
            &with_forwarded,
        );
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=\"[2001:db8::7]\";host=\"lbcq\";proto=http"
        );
    }

    #[test]
    fn only_an_http11_get_naming_upgrade_in_connection_is_tunnelled_and_never_h2c() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        let get = http::Method::GET;
        // Name, method, version, fields, whether it has a body, the protocol tunnelled.
        type Case<'a> = (
            &'a str,
            &'a http::Method,
            Version,
            &'a [(&'a str, &'a str)],
            bool,
            Option<&'a str>,
        );
        let cases: &[Case<'_>] = &[
            (
                "websocket",
                &get,
                Version::HTTP_11,
                &ws,
                false,
                Some("websocket"),
            ),
            (
                "post",
                &http::Method::POST,
                Version::HTTP_11,
                &ws,
                false,
                None,
            ),
            ("with a body", &get, Version::HTTP_11, &ws, true, None),
            ("http/1.0", &get, Version::HTTP_10, &ws, false, None),
            ("http/2", &get, Version::HTTP_2, &ws, false, None),
            (
                "connection without upgrade",
                &get,
                Version::HTTP_11,
                &[("connection", "close"), ("upgrade", "websocket")],
                false,
                None,
            ),
            (
                "upgrade without connection",
                &get,
                Version::HTTP_11,
                &[("upgrade", "websocket")],
                false,
                None,
            ),
            (
                "h2c",
                &get,
                Version::HTTP_11,
                &[("connection", "upgrade"), ("upgrade", "h2c")],
                false,
                None,
            ),
            (
                "h2c among others",
                &get,
                Version::HTTP_11,
                &[("connection", "upgrade"), ("upgrade", "websocket, H2C")],
                false,
                None,
            ),
            (
                "empty protocol",
                &get,
                Version::HTTP_11,
                &[("connection", "upgrade"), ("upgrade", "websocket, ")],
                false,
                None,
            ),
            (
                "two upgrade fields",
                &get,
                Version::HTTP_11,
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("upgrade", "foo"),
                ],
                false,
                None,
            ),
        ];
        for (name, method, version, pairs, body, want) in cases {
            let got = upgrade_request(method, *version, &map(pairs), *body);
            assert_eq!(got.as_ref().map(|v| v.to_str().unwrap()), *want, "{name}");
        }
    }
}
