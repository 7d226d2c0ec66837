//! Reading a request: bearer tokens, cookies, form bodies and query parameters.

use super::*;

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

pub(super) fn cookie<'a>(parts: &'a Parts, name: &'a str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v)
        })
}

pub(super) fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

pub(super) fn form_of(parts: &Parts, body: &[u8]) -> Vec<(String, String)> {
    if is_form(parts) {
        percent::parse_form(body).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// The form body of an endpoint that takes only forms; anything else is `invalid_request`.
pub(super) fn require_form(parts: &Parts, body: &[u8]) -> Result<Vec<(String, String)>, Reject> {
    if !is_form(parts) {
        return Err(Reject::bad(
            error::INVALID_REQUEST,
            "expected application/x-www-form-urlencoded",
        ));
    }
    let form = percent::parse_form(body)
        .map_err(|_| Reject::bad(error::INVALID_REQUEST, "malformed form body"))?;
    // RFC 6749 §3.1: parameters must not be repeated.
    let mut names: Vec<&str> = form.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Reject::bad(error::INVALID_REQUEST, "repeated parameter"));
    }
    Ok(form)
}

pub(super) fn query_of(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .and_then(|q| percent::parse_form(q.as_bytes()).ok())
        .unwrap_or_default()
}

pub(super) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
