//! Which handler answers a request: `/cqweb/<endpoint>` by path and method, and the OSLC paths
//! (`oslc/repo/{db}/discovery`, `oslc/repo/{db}/resource/{id}`). The discovery document is built here.

use http::request::Parts;
use http::{Method, StatusCode};

use super::super::wire::{path, Discovery, BASE, FORWARDED_PROTO};
use super::exchange::{host_of, json, text};
use super::{NodeState, Resp};

impl NodeState {
    pub(super) fn route(&self, parts: &Parts, body: &[u8]) -> Resp {
        let Some(rest) = parts
            .uri
            .path()
            .strip_prefix(BASE)
            .and_then(|p| p.strip_prefix('/'))
        else {
            return text(StatusCode::NOT_FOUND, "not found");
        };
        let m = &parts.method;
        match rest {
            path::HEALTH if m == Method::GET => text(StatusCode::OK, "ok"),
            path::LOGIN if m == Method::POST => self.login(parts, body),
            path::REQUEST_CONSUMER if m == Method::POST => self.request_consumer(body),
            path::APPROVE_CONSUMER if m == Method::GET || m == Method::POST => {
                self.approve(parts, body)
            }
            path::REQUEST_TOKEN if m == Method::POST => self.request_token(parts, body),
            path::AUTHORIZE if m == Method::GET => self.authorize_form(parts),
            path::AUTHORIZE if m == Method::POST => self.authorize(parts, body),
            path::ACCESS_TOKEN if m == Method::POST => self.access_token(parts, body),
            path::HEALTH
            | path::LOGIN
            | path::REQUEST_CONSUMER
            | path::APPROVE_CONSUMER
            | path::REQUEST_TOKEN
            | path::AUTHORIZE
            | path::ACCESS_TOKEN => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => match oslc_route(rest) {
                Some(Oslc::Discovery(db)) if m == Method::GET => self.discovery(parts, db),
                Some(Oslc::Resource(db, id)) if m == Method::GET || m == Method::POST => {
                    self.resource(parts, body, db, id)
                }
                Some(_) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                None => text(StatusCode::NOT_FOUND, "not found"),
            },
        }
    }

    /// The scheme the client used: `X-Forwarded-Proto` when a proxy says so, else this node's own.
    pub(super) fn public_scheme<'a>(&'a self, parts: &'a Parts) -> &'a str {
        parts
            .headers
            .get(FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| v.eq_ignore_ascii_case("http") || v.eq_ignore_ascii_case("https"))
            .unwrap_or(self.scheme)
    }

    fn discovery(&self, parts: &Parts, db: &str) -> Resp {
        let Some(host) = host_of(parts) else {
            return text(StatusCode::BAD_REQUEST, "missing Host");
        };
        let scheme = self.public_scheme(parts).to_ascii_lowercase();
        let doc = Discovery::new(&self.config.name, db, &format!("{scheme}://{host}{BASE}"));
        json(StatusCode::OK, &doc)
    }
}

enum Oslc<'a> {
    Discovery(&'a str),
    Resource(&'a str, &'a str),
}

/// `oslc/repo/{db}/discovery` and `oslc/repo/{db}/resource/{id}` (after `/cqweb/`).
fn oslc_route(rest: &str) -> Option<Oslc<'_>> {
    let rest = rest.strip_prefix(path::OSLC_REPO)?;
    let (db, tail) = rest.split_once('/')?;
    if db.is_empty() {
        return None;
    }
    if tail == path::DISCOVERY {
        return Some(Oslc::Discovery(db));
    }
    let id = tail.strip_prefix(path::RESOURCE)?;
    (!id.is_empty() && !id.contains('/')).then_some(Oslc::Resource(db, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslc_paths_are_recognised_exactly() {
        assert!(matches!(
            oslc_route("oslc/repo/cqschema/discovery"),
            Some(Oslc::Discovery("cqschema"))
        ));
        assert!(matches!(
            oslc_route("oslc/repo/cqschema/resource/42"),
            Some(Oslc::Resource("cqschema", "42"))
        ));
        assert!(oslc_route("oslc/repo//discovery").is_none());
        assert!(oslc_route("oslc/repo/db/resource/").is_none());
        assert!(oslc_route("oslc/repo/db/resource/a/b").is_none());
        assert!(oslc_route("oslc/other").is_none());
    }
}
