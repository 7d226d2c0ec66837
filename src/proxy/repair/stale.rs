//! Recognising a stale-credential answer (BRIEF 2.5), pure.
//!
//! An OAuth 1 node that does not hold a credential answers 401 or 403 and names the problem in
//! `WWW-Authenticate` (`oauth_problem="consumer_key_unknown"`) or in the first bytes of its body
//! (`invalid_expired_token`). An OAuth 2 server answers 400 or 401 with an RFC 6749 §5.2 JSON body
//! (`{"error": "invalid_client"}`) or an RFC 6750 §3.1 challenge (`Bearer error="invalid_token"`); its error
//! names are matched exactly, since they also mean other things ([`super::plan_replay`] sorts that out).

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

pub(crate) use crate::oauth::problems::KEY_PROBLEMS;

/// How many body bytes are scanned for a problem name.
pub(crate) const SCAN_BYTES: usize = 1024;

/// The problem a stale-credential answer names (the `WWW-Authenticate` header first, then the body head).
pub(crate) fn stale_problem<'p>(
    status: StatusCode,
    headers: &HeaderMap,
    body_head: &[u8],
    problems: &'p [String],
) -> Option<&'p str> {
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return None;
    }
    let named = |text: &[u8]| {
        problems
            .iter()
            .find(|p| contains(text, p.as_bytes()))
            .map(String::as_str)
    };
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .find_map(|v| named(v.as_bytes()))
        .or_else(|| named(&body_head[..body_head.len().min(SCAN_BYTES)]))
}

/// A refusal that may come from a node lacking a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stale<'p> {
    /// OAuth 1: a 401/403 naming this configured problem.
    OAuth1(&'p str),
    /// OAuth 2: a 400/401 whose `error` is this configured name.
    OAuth2(&'p str),
}

/// Recognises a stale answer: an OAuth 2 error first (an exact, structured name), then an OAuth 1 problem.
pub(crate) fn stale_answer<'p>(
    status: StatusCode,
    headers: &HeaderMap,
    body_head: &[u8],
    problems: &'p [String],
    oauth2_errors: &'p [String],
) -> Option<Stale<'p>> {
    oauth2_error(status, headers, body_head, oauth2_errors)
        .map(Stale::OAuth2)
        .or_else(|| stale_problem(status, headers, body_head, problems).map(Stale::OAuth1))
}

/// The configured OAuth 2 error a 400/401 names: `Bearer error=".."` in `WWW-Authenticate` (RFC 6750 §3.1),
/// else the `error` member of a JSON body (RFC 6749 §5.2) that fits in the scanned head.
pub(crate) fn oauth2_error<'p>(
    status: StatusCode,
    headers: &HeaderMap,
    body_head: &[u8],
    names: &'p [String],
) -> Option<&'p str> {
    if status != StatusCode::BAD_REQUEST && status != StatusCode::UNAUTHORIZED {
        return None;
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let configured = |error: &str| names.iter().find(|n| *n == error).map(String::as_str);
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .find_map(|v| bearer_error(v.as_bytes()).and_then(configured))
        .or_else(|| {
            let head = &body_head[..body_head.len().min(SCAN_BYTES)];
            serde_json::from_slice::<ErrorBody>(head)
                .ok()
                .and_then(|b| configured(&b.error))
        })
}

/// The `error` parameter of a `Bearer` challenge in one `WWW-Authenticate` value (RFC 7235 §4.1: challenges
/// separated by commas, each a scheme then `name=value` parameters, values a token or a quoted string).
fn bearer_error(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    let bytes = text.as_bytes();
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b);
    let mut at = 0;
    let mut in_bearer = false;
    while at < bytes.len() {
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b',') {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && is_tchar(bytes[at]) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let name = &text[start..at];
        let mut after = at;
        while after < bytes.len() && matches!(bytes[after], b' ' | b'\t') {
            after += 1;
        }
        if bytes.get(after) != Some(&b'=') {
            // A new challenge's scheme.
            in_bearer = name.eq_ignore_ascii_case("bearer");
            continue;
        }
        at = after + 1;
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\t') {
            at += 1;
        }
        let value = if bytes.get(at) == Some(&b'"') {
            let open = at + 1;
            let mut close = open;
            while close < bytes.len() && bytes[close] != b'"' {
                close += if bytes[close] == b'\\' { 2 } else { 1 };
            }
            at = close + 1;
            text.get(open..close.min(bytes.len()))?
        } else {
            let open = at;
            while at < bytes.len() && !matches!(bytes[at], b',' | b' ' | b'\t') {
                at += 1;
            }
            &text[open..at]
        };
        if in_bearer && name.eq_ignore_ascii_case("error") {
            return Some(value);
        }
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::problems::DEFAULT_STALE_PROBLEMS;

    /// Whether a response is a stale-credential answer: 401/403 naming one of `problems` in `WWW-Authenticate`
    /// or in the first [`SCAN_BYTES`] of `body_head`.
    fn is_stale_answer(
        status: StatusCode,
        headers: &HeaderMap,
        body_head: &[u8],
        problems: &[String],
    ) -> bool {
        stale_problem(status, headers, body_head, problems).is_some()
    }
    use http::HeaderValue;

    fn problems() -> Vec<String> {
        DEFAULT_STALE_PROBLEMS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn headers(www: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_str(www).unwrap());
        h
    }

    #[test]
    fn a_401_naming_a_stale_problem_in_www_authenticate_is_stale() {
        let h = headers("OAuth realm=\"cqweb\", oauth_problem=\"consumer_key_unknown\"");
        assert!(is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &h,
            b"",
            &problems()
        ));
    }

    #[test]
    fn a_body_naming_invalid_expired_token_is_stale() {
        let body = b"401: invalid_expired_token";
        assert!(is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body,
            &problems()
        ));
        assert!(is_stale_answer(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            body,
            &problems()
        ));
    }

    #[test]
    fn other_refusals_are_not_stale() {
        let h = headers("OAuth oauth_problem=\"signature_invalid\"");
        assert!(!is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &h,
            b"",
            &problems()
        ));
        assert!(!is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &h,
            b"nonce_used",
            &problems()
        ));
        assert!(!is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            b"login required",
            &problems()
        ));
    }

    #[test]
    fn only_401_and_403_can_be_stale() {
        let body = b"invalid_expired_token";
        for status in [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert!(!is_stale_answer(
                status,
                &HeaderMap::new(),
                body,
                &problems()
            ));
        }
    }

    #[test]
    fn the_header_problem_is_preferred_over_the_body() {
        let h = headers("OAuth oauth_problem=\"consumer_key_unknown\"");
        let p = problems();
        let got = stale_problem(
            StatusCode::UNAUTHORIZED,
            &h,
            b"401: invalid_expired_token",
            &p,
        );
        assert_eq!(got, Some("consumer_key_unknown"));
    }

    fn oauth2(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<String> {
        let names: Vec<String> = crate::oauth::problems::DEFAULT_OAUTH2_ERRORS
            .iter()
            .map(|s| s.to_string())
            .collect();
        stale_answer(status, headers, body, &problems(), &names).map(|s| match s {
            Stale::OAuth2(e) => format!("oauth2 {e}"),
            Stale::OAuth1(p) => format!("oauth1 {p}"),
        })
    }

    #[test]
    fn oauth2_errors_are_read_from_json_bodies_and_bearer_challenges() {
        let none = HeaderMap::new();
        let bad = StatusCode::BAD_REQUEST;
        let unauthorized = StatusCode::UNAUTHORIZED;
        let cases: [(StatusCode, &HeaderMap, &[u8], Option<&str>); 11] = [
            (
                bad,
                &none,
                br#"{"error":"invalid_client","error_description":"unknown client"}"#,
                Some("oauth2 invalid_client"),
            ),
            (
                bad,
                &none,
                br#"{"error_description":"x", "error": "invalid_grant"}"#,
                Some("oauth2 invalid_grant"),
            ),
            (
                unauthorized,
                &headers(r#"Bearer realm="r", error="invalid_token", error_description="gone""#),
                b"{}",
                Some("oauth2 invalid_token"),
            ),
            (
                unauthorized,
                &headers("Basic realm=\"r\""),
                br#"{"error":"invalid_client"}"#,
                Some("oauth2 invalid_client"),
            ),
            // An error that is not configured, or not an error of the RFCs' shape: not stale.
            (bad, &none, br#"{"error":"authorization_pending"}"#, None),
            (bad, &none, br#"{"error":["invalid_grant"]}"#, None),
            (bad, &none, b"invalid_grant", None),
            // Another status: a 403 insufficient_scope, a success that mentions an error.
            (
                StatusCode::FORBIDDEN,
                &none,
                br#"{"error":"invalid_token"}"#,
                None,
            ),
            (StatusCode::OK, &none, br#"{"error":"invalid_token"}"#, None),
            // `error` of another scheme's challenge, or a parameter that only ends in `error`.
            (
                unauthorized,
                &headers(r#"Basic error="invalid_token""#),
                b"",
                None,
            ),
            (
                unauthorized,
                &headers(r#"Bearer realm="r", my_error="invalid_token""#),
                b"",
                None,
            ),
        ];
        for (status, headers, body, expected) in cases {
            assert_eq!(
                oauth2(status, headers, body).as_deref(),
                expected,
                "{status} {headers:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_bearer_challenge_after_another_scheme_is_found() {
        let h = headers(r#"Basic realm="a", Bearer realm="b", error="invalid_token""#);
        assert_eq!(
            oauth2(StatusCode::UNAUTHORIZED, &h, b"").as_deref(),
            Some("oauth2 invalid_token")
        );
        let h = headers("bearer error=invalid_token");
        assert_eq!(
            oauth2(StatusCode::UNAUTHORIZED, &h, b"").as_deref(),
            Some("oauth2 invalid_token")
        );
    }

    #[test]
    fn oauth1_problems_are_still_recognised_beside_oauth2_errors() {
        let h = headers("OAuth oauth_problem=\"consumer_key_unknown\"");
        assert_eq!(
            oauth2(StatusCode::UNAUTHORIZED, &h, b"").as_deref(),
            Some("oauth1 consumer_key_unknown")
        );
    }

    #[test]
    fn only_the_head_of_the_body_is_scanned() {
        let mut body = vec![b' '; SCAN_BYTES];
        body.extend_from_slice(b"invalid_expired_token");
        assert!(!is_stale_answer(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            &body,
            &problems()
        ));
    }
}
