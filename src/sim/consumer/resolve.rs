//! `--resolve HOST:PORT:ADDR`, as curl has it: connections to `HOST:PORT` go to `ADDR:PORT` while the URL,
//! the `Host` header and the TLS server name (SNI and certificate check) keep `HOST`. It lets the tools reach
//! a listener whose certificate names a host that DNS does not know (yet), or one instance behind a name.
//!
//! [`ResolvingConnector`] does it below TLS: it rewrites the address it dials and nothing else, so a signed
//! OAuth request (whose signature covers the host) is sent exactly as signed.

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One `HOST:PORT:ADDR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// Host name as in URLs, lower-cased, without IPv6 brackets.
    pub host: String,
    /// The port it applies to.
    pub port: u16,
    /// Where to connect instead.
    pub addr: IpAddr,
}

impl FromStr for Resolve {
    type Err = String;

    /// `HOST:PORT:ADDR`; an IPv6 `ADDR` (or `HOST`) may be written in brackets: `h:443:[::1]`.
    fn from_str(text: &str) -> Result<Resolve, String> {
        let usage =
            || format!("expected HOST:PORT:ADDR (e.g. proxy.test:8443:127.0.0.1), found {text:?}");
        let (host, rest) = match text.strip_prefix('[') {
            Some(bracketed) => {
                let (host, rest) = bracketed.split_once(']').ok_or_else(usage)?;
                (host, rest.strip_prefix(':').ok_or_else(usage)?)
            }
            None => text.split_once(':').ok_or_else(usage)?,
        };
        let (port, addr) = rest.split_once(':').ok_or_else(usage)?;
        if host.is_empty() {
            return Err(usage());
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port {port:?} in {text:?}"))?;
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr: IpAddr = bare
            .parse()
            .map_err(|_| format!("invalid IP address {addr:?} in {text:?}"))?;
        Ok(Resolve {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

/// Where a connection to `uri` should go instead, if an entry covers its host and port.
pub(super) fn redirect(entries: &[Resolve], uri: &Uri) -> Option<Uri> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = uri.port_u16().or_else(|| match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    let entry = entries
        .iter()
        .find(|e| e.port == port && e.host.eq_ignore_ascii_case(host))?;
    let authority = match entry.addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(authority.parse().ok()?);
    Uri::from_parts(parts).ok()
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// A TCP connector that dials the `--resolve` address of a URL's host and port when one is given, and the
/// URL's own host otherwise. The TLS layer above it still sees the original URL.
#[derive(Debug, Clone)]
pub struct ResolvingConnector {
    inner: HttpConnector,
    entries: Arc<[Resolve]>,
}

impl ResolvingConnector {
    /// A connector applying `entries` (none: a plain [`HttpConnector`]).
    pub fn new(entries: &[Resolve]) -> ResolvingConnector {
        let mut inner = HttpConnector::new();
        // `https` URLs reach this connector too: TLS is layered on top by the caller.
        inner.enforce_http(false);
        ResolvingConnector {
            inner,
            entries: entries.into(),
        }
    }
}

impl tower_service::Service<Uri> for ResolvingConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = redirect(&self.entries, &uri).unwrap_or(uri);
        let connecting = self.inner.call(target);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Resolve {
        text.parse().unwrap()
    }

    #[test]
    fn entries_parse_like_curls() {
        assert_eq!(
            entry("Proxy.Test:8443:127.0.0.1"),
            Resolve {
                host: "proxy.test".into(),
                port: 8443,
                addr: "127.0.0.1".parse().unwrap()
            }
        );
        assert_eq!(entry("h:443:[::1]").addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(entry("h:443:::1").addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(entry("[fe80::1]:443:10.0.0.1").host, "fe80::1");
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (text, says) in [
            ("h", "HOST:PORT:ADDR"),
            ("h:443", "HOST:PORT:ADDR"),
            (":443:127.0.0.1", "HOST:PORT:ADDR"),
            ("h:0:127.0.0.1", "invalid port"),
            ("h:https:127.0.0.1", "invalid port"),
            ("h:443:localhost", "invalid IP address"),
            ("h:443:", "invalid IP address"),
        ] {
            let err = text.parse::<Resolve>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn only_the_named_host_and_port_are_redirected() {
        let entries = [entry("proxy.test:8443:127.0.0.2"), entry("v6.test:443:::1")];
        let go = |url: &str| redirect(&entries, &url.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            go("https://PROXY.test:8443/a?b=c").as_deref(),
            Some("https://127.0.0.2:8443/a?b=c")
        );
        assert_eq!(go("https://proxy.test:9443/"), None);
        assert_eq!(go("https://proxy.test/"), None);
        assert_eq!(go("http://other.test:8443/"), None);
        assert_eq!(
            go("https://v6.test/").as_deref(),
            Some("https://[::1]:443/")
        );
    }
}
