//! Logging in: a form login checks the repository's users, opens a session (a WebSphere-style id ending in the
//! node's clone id) and **reloads this node's consumer registry from the repository**: the technote's "log in
//! to each server" that makes a key registered elsewhere known here.

use std::sync::atomic::Ordering;

use http::header::SET_COOKIE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use super::super::random_hex;
use super::super::repository::{lock, User};
use super::super::wire::{param, BASE, SESSION_COOKIE};
use super::exchange::{cookies, field, form_of, text};
use super::{NodeState, Resp};

impl NodeState {
    pub(super) fn login(&self, parts: &Parts, body: &[u8]) -> Resp {
        let form = form_of(parts, body);
        let (Some(user), Some(pass)) =
            (field(&form, param::USERNAME), field(&form, param::PASSWORD))
        else {
            return text(StatusCode::BAD_REQUEST, "username and password required");
        };
        let Some(user) = self.repository.authenticate(user, pass) else {
            return text(StatusCode::UNAUTHORIZED, "login failed");
        };
        let session = format!("{}:{}", random_hex(12), self.config.clone_id);
        let name = user.name.clone();
        {
            // The repository is read with the node's memory locked, so a registration or approval made on
            // this node meanwhile (which holds the same lock across its repository write) is never undone by
            // a copy read before it.
            let mut mem = lock(&self.memory);
            mem.registry = self.repository.consumers();
            mem.sessions.insert(session.clone(), user);
        }
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        let mut resp = text(StatusCode::OK, &format!("logged in as {name}"));
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={session}; Path={BASE}; HttpOnly"
        )) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        resp
    }

    pub(super) fn session_user(&self, parts: &Parts) -> Option<User> {
        let mem = lock(&self.memory);
        cookies(parts, SESSION_COOKIE).find_map(|v| mem.sessions.get(v).cloned())
    }
}
