//! The status page: one HTML page, its script and its style sheet, compiled into the binary (no build step,
//! no external asset) and served by the admin listener at `/`, `/status.js` and `/status.css`.
//!
//! The page holds no data: its script reads `/status` every two seconds, with the admin token when the
//! operator typed one (kept in the tab's memory only). So the three files are served without a token even
//! where every other endpoint needs one; what they fetch is guarded as usual. Script and style are separate
//! same-origin files so the Content-Security-Policy can forbid every inline script and style.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

const PAGE: &str = include_str!("page/status.html");
const SCRIPT: &str = include_str!("page/status.js");
const STYLE: &str = include_str!("page/status.css");

/// Same-origin script, style and fetches only; no inline code, no plugins, no framing, no form posts, no
/// `<base>` redirection.
pub(super) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One file of the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asset {
    Page,
    Script,
    Style,
}

impl Asset {
    /// The asset served at `path`, if any.
    pub(super) fn at(path: &str) -> Option<Asset> {
        match path {
            "/" => Some(Asset::Page),
            "/status.js" => Some(Asset::Script),
            "/status.css" => Some(Asset::Style),
            _ => None,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Asset::Page => PAGE,
            Asset::Script => SCRIPT,
            Asset::Style => STYLE,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Asset::Page => "text/html; charset=utf-8",
            Asset::Script => "text/javascript; charset=utf-8",
            Asset::Style => "text/css; charset=utf-8",
        }
    }

    /// The 200 response carrying the asset and the headers that lock the page down.
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from_static(self.body().as_bytes())));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // Revalidate every time: after an upgrade the page and its script must come from the same build.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_asset_has_its_path_and_type() {
        assert_eq!(Asset::at("/"), Some(Asset::Page));
        assert_eq!(Asset::at("/status.js"), Some(Asset::Script));
        assert_eq!(Asset::at("/status.css"), Some(Asset::Style));
        assert_eq!(Asset::at("/index.html"), None);
        assert_eq!(Asset::at("/status"), None);
        for asset in [Asset::Page, Asset::Script, Asset::Style] {
            let r = asset.response();
            assert_eq!(r.headers()[header::CONTENT_TYPE], asset.content_type());
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        let page = PAGE.to_ascii_lowercase();
        for forbidden in [
            "http://", "https://", "//cdn", "<style", " style=", " onclick", " onload",
        ] {
            assert!(!page.contains(forbidden), "the page contains {forbidden:?}");
        }
        // Every <script> has a same-origin src and no body.
        for tag in page.split("<script").skip(1) {
            assert!(
                tag.starts_with(" src=\"/"),
                "inline or foreign script: <script{tag}"
            );
            assert!(
                tag.split_once('>')
                    .is_some_and(|(_, rest)| rest.starts_with("</script>")),
                "a script with a body"
            );
        }
        for text in [SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn the_script_never_stores_the_token() {
        for storage in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "indexedDB",
            "location.hash",
        ] {
            assert!(!SCRIPT.contains(storage), "status.js uses {storage}");
        }
        assert!(
            !SCRIPT.contains("innerHTML"),
            "status.js writes HTML from data"
        );
    }
}
