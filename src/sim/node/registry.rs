//! The consumer registry's write side: registering a consumer key (into the shared repository and this node's
//! memory only) and approving a provisional key (by an administrator, on a node that knows the key).

use http::request::Parts;
use http::{Method, StatusCode};

use super::super::random_hex;
use super::super::repository::lock;
use super::super::wire::{param, path, problem, ConsumerRegistration, RegisteredKey, BASE};
use super::exchange::{field, form_of, html, html_escape, json, problem, query_of, text};
use super::{NodeState, Resp};
use crate::oauth::percent::encode;
use crate::secret::Secret;

impl NodeState {
    pub(super) fn register_key(&self, name: &str, secret: Secret) -> String {
        let key = random_hex(16);
        // The node's memory is locked across the repository write, as in `login`: a login reloading the
        // registry meanwhile must not overwrite the new key with a copy read before it existed.
        let mut mem = lock(&self.memory);
        let record = self.repository.insert_consumer(&key, name, secret);
        mem.registry.insert(key.clone(), record);
        key
    }

    pub(super) fn request_consumer(&self, body: &[u8]) -> Resp {
        let Ok(reg) = serde_json::from_slice::<ConsumerRegistration>(body) else {
            return text(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"name\", \"secret\"}",
            );
        };
        let key = self.register_key(&reg.name, Secret::new(reg.secret));
        json(StatusCode::OK, &RegisteredKey { key })
    }

    /// The approval prompt (GET) and the approval itself (POST). Like CQ Web, the POST is authorized either by
    /// an administrator's session or by administrator credentials typed into the prompt; the latter is not a
    /// login, so it does not refresh this node's registry.
    pub(super) fn approve(&self, parts: &Parts, body: &[u8]) -> Resp {
        let query = query_of(parts);
        let form = form_of(parts, body);
        if parts.method == Method::POST {
            let typed = field(&form, param::USERNAME)
                .zip(field(&form, param::PASSWORD))
                .and_then(|(name, password)| self.repository.authenticate(name, password));
            let Some(user) = self.session_user(parts).or(typed) else {
                return text(StatusCode::UNAUTHORIZED, "login required");
            };
            if !user.admin {
                return text(StatusCode::FORBIDDEN, "administrator rights required");
            }
        }
        let Some(key) = field(&query, param::KEY).or_else(|| field(&form, param::KEY)) else {
            return text(StatusCode::BAD_REQUEST, "key required");
        };
        let in_registry = lock(&self.memory).registry.get(key).cloned();
        let record = match in_registry {
            Some(r) => r,
            None if self.config.strict_approval => {
                return problem(StatusCode::UNAUTHORIZED, problem::CONSUMER_KEY_UNKNOWN)
            }
            None => match self.repository.consumer(key) {
                Some(r) => r,
                None => return problem(StatusCode::UNAUTHORIZED, problem::CONSUMER_KEY_UNKNOWN),
            },
        };
        if parts.method == Method::GET {
            let page = format!(
                "<!doctype html><title>Approve consumer</title>\
                 <form method=\"post\" action=\"{BASE}/{}?{}={}\">\
                 <p>Grant access to {}?</p><input name=\"{}\"><input name=\"{}\" type=\"password\">\
                 <button name=\"{}\" value=\"yes\">Approve</button></form>",
                path::APPROVE_CONSUMER,
                param::KEY,
                html_escape(&encode(key)),
                html_escape(&record.name),
                param::USERNAME,
                param::PASSWORD,
                param::APPROVE,
            );
            return html(StatusCode::OK, page);
        }
        // Memory locked across the repository write (see `register_key`).
        let mut mem = lock(&self.memory);
        self.repository.approve(key);
        if let Some(r) = mem.registry.get_mut(key) {
            r.approved = true;
        }
        drop(mem);
        text(StatusCode::OK, "approved")
    }
}
