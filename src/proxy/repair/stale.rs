//! Recognising a stale-credential answer (BRIEF 2.5), pure.
//!
//! A node that does not hold a credential answers 401 or 403 and names the problem in `WWW-Authenticate`
//! (`oauth_problem="consumer_key_unknown"`) or in the first bytes of its body (`invalid_expired_token`).

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

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
