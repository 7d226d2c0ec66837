//! Reading a stand-in node's request, the same for the OAuth 1 and the OAuth 2 nodes: form bodies, query
//! parameters, cookies.

use http::header::{CONTENT_TYPE, COOKIE};
use http::request::Parts;

use crate::oauth::percent;

pub(crate) fn is_form(parts: &Parts) -> bool {
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

pub(crate) fn form_of(parts: &Parts, body: &[u8]) -> Vec<(String, String)> {
    if is_form(parts) {
        percent::parse_form(body).unwrap_or_default()
    } else {
        Vec::new()
    }
}

pub(crate) fn query_of(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .and_then(|q| percent::parse_form(q.as_bytes()).ok())
        .unwrap_or_default()
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn cookies<'a>(parts: &'a Parts, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v)
        })
}
