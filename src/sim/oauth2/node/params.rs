//! Reading a request: bearer tokens, cookies, form bodies and query parameters.

use super::*;
pub(super) use crate::sim::request::{field, form_of, is_form, query_of};

/// The first value of the cookie `name`.
pub(super) fn cookie<'a>(parts: &'a Parts, name: &'a str) -> Option<&'a str> {
    crate::sim::request::cookies(parts, name).next()
}

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
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
