//! Reading a request (Host, form body, query, cookies) and building answers (text, HTML, JSON, form, and OAuth
//! Problem Reporting), shared by every handler of the node.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::super::wire::{param, problem::INVALID_EXPIRED_TOKEN, problem::STALE, FORM, REALM};
use super::Resp;
use crate::oauth::percent::encode;
pub(super) use crate::sim::request::{cookies, field, form_of, is_form, query_of};

pub(super) fn host_of(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

pub(super) fn text(status: StatusCode, body: &str) -> Resp {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

pub(super) fn html(status: StatusCode, body: String) -> Resp {
    with_type(status, "text/html; charset=utf-8", body)
}

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    with_type(status, "application/json", body)
}

pub(super) fn form_response(pairs: &[(&str, &str)]) -> Resp {
    let body = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    with_type(StatusCode::OK, FORM, body)
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(super) fn problem(status: StatusCode, problem: &str) -> Resp {
    problem_with(status, problem, &[])
}

/// An OAuth Problem Reporting answer: the problem in `WWW-Authenticate` and in the body, and for problems
/// that mean "not known on this node" the product's own `invalid_expired_token` wording.
pub(super) fn problem_with(status: StatusCode, problem: &str, extra: &[(&str, &str)]) -> Resp {
    let name = param::OAUTH_PROBLEM;
    let mut challenge = format!("OAuth realm=\"{REALM}\", {name}=\"{problem}\"");
    let status_line = if STALE.contains(&problem) {
        INVALID_EXPIRED_TOKEN
    } else {
        problem
    };
    let mut body = format!("{}: {status_line}\n{name}={problem}\n", status.as_u16());
    for (n, v) in extra {
        challenge.push_str(&format!(", {n}=\"{}\"", encode(v)));
        body.push_str(&format!("{n}={}\n", encode(v)));
    }
    let mut resp = text(status, &body);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_problems_name_invalid_expired_token_and_others_do_not() {
        let body = |r: Resp| {
            let www = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_string();
            (www, format!("{:?}", r.into_body()))
        };
        let (www, b) = body(problem(StatusCode::UNAUTHORIZED, "consumer_key_unknown"));
        assert_eq!(
            www,
            "OAuth realm=\"cqweb\", oauth_problem=\"consumer_key_unknown\""
        );
        assert!(b.contains("401: invalid_expired_token"));
        let (_, b) = body(problem(StatusCode::UNAUTHORIZED, "nonce_used"));
        assert!(!b.contains("invalid_expired_token"));
    }
}
