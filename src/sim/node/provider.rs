//! The OAuth 1.0a provider endpoints: temporary credentials, the user's authorization (page and submission,
//! redirecting to the consumer's callback with the verifier), token credentials, and signed protected reads.
//! Every token lives in this node's memory only.

use http::header::LOCATION;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use tokio::time::Instant;

use super::super::random_hex;
use super::super::repository::lock;
use super::super::wire::{param, path, problem, BASE};
use super::exchange::{
    field, form_of, form_response, html, html_escape, json, problem, query_of, text,
};
use super::verify::{oauth_params, Reject, TokenUse};
use super::{AccessToken, Memory, NodeState, RequestToken, Resp};
use crate::oauth::percent::encode;
use crate::secret::Secret;

impl NodeState {
    pub(super) fn request_token(&self, parts: &Parts, body: &[u8]) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.verify(
            &mut mem,
            parts,
            &params,
            TokenUse::None,
            &[param::OAUTH_CALLBACK],
        ) {
            Ok(k) => k,
            Err(reject) => return reject.into_response(),
        };
        let callback = params
            .oauth(param::OAUTH_CALLBACK)
            .unwrap_or("oob")
            .to_string();
        let token = random_hex(16);
        let secret = random_hex(16);
        mem.request_tokens.insert(
            token.clone(),
            RequestToken {
                secret: Secret::new(secret.clone()),
                consumer_key,
                callback,
                authorized: None,
                expires_at: Instant::now() + self.config.request_token_ttl,
            },
        );
        form_response(&[
            (param::OAUTH_TOKEN, &token),
            (param::OAUTH_TOKEN_SECRET, &secret),
            (param::OAUTH_CALLBACK_CONFIRMED, "true"),
        ])
    }

    /// Looks up a request token for the user-facing authorize pages.
    fn live_request_token<'m>(
        &self,
        mem: &'m mut Memory,
        token: &str,
    ) -> Result<&'m mut RequestToken, Reject> {
        match mem.request_tokens.get(token) {
            None => {
                return Err(Reject::problem(
                    StatusCode::UNAUTHORIZED,
                    problem::TOKEN_REJECTED,
                ))
            }
            Some(t) if Instant::now() >= t.expires_at => {
                mem.request_tokens.remove(token);
                return Err(Reject::problem(
                    StatusCode::UNAUTHORIZED,
                    problem::TOKEN_EXPIRED,
                ));
            }
            Some(t) if !mem.registry.contains_key(&t.consumer_key) => {
                return Err(Reject::problem(
                    StatusCode::UNAUTHORIZED,
                    problem::CONSUMER_KEY_UNKNOWN,
                ));
            }
            Some(_) => {}
        }
        Ok(mem.request_tokens.get_mut(token).expect("checked above"))
    }

    pub(super) fn authorize_form(&self, parts: &Parts) -> Resp {
        let query = query_of(parts);
        let Some(token) = field(&query, param::OAUTH_TOKEN) else {
            return problem(StatusCode::BAD_REQUEST, problem::PARAMETER_ABSENT);
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.live_request_token(&mut mem, token) {
            Ok(t) => t.consumer_key.clone(),
            Err(reject) => return reject.into_response(),
        };
        let consumer = mem
            .registry
            .get(&consumer_key)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let page = format!(
            "<!doctype html><title>Authorize access</title>\
             <form method=\"post\" action=\"{BASE}/{}\">\
             <p>{} requests access to your data.</p>\
             <input type=\"hidden\" name=\"{}\" value=\"{}\">\
             <input name=\"{}\"><input type=\"password\" name=\"{}\">\
             <button>Allow</button></form>",
            path::AUTHORIZE,
            html_escape(&consumer),
            param::OAUTH_TOKEN,
            html_escape(token),
            param::USERNAME,
            param::PASSWORD,
        );
        html(StatusCode::OK, page)
    }

    pub(super) fn authorize(&self, parts: &Parts, body: &[u8]) -> Resp {
        let form = form_of(parts, body);
        let (Some(token), Some(user), Some(pass)) = (
            field(&form, param::OAUTH_TOKEN),
            field(&form, param::USERNAME),
            field(&form, param::PASSWORD),
        ) else {
            return text(
                StatusCode::BAD_REQUEST,
                "oauth_token, username and password required",
            );
        };
        let Some(user) = self.repository.authenticate(user, pass) else {
            return text(StatusCode::UNAUTHORIZED, "login failed");
        };
        let verifier = random_hex(12);
        let mut mem = lock(&self.memory);
        let callback = match self.live_request_token(&mut mem, token) {
            Ok(t) => {
                t.authorized = Some((user.name, Secret::new(verifier.clone())));
                t.callback.clone()
            }
            Err(reject) => return reject.into_response(),
        };
        drop(mem);
        if callback == "oob" {
            return text(
                StatusCode::OK,
                &format!("{}={verifier}", param::OAUTH_VERIFIER),
            );
        }
        let sep = if callback.contains('?') { '&' } else { '?' };
        let location = format!(
            "{callback}{sep}{}={}&{}={}",
            param::OAUTH_TOKEN,
            encode(token),
            param::OAUTH_VERIFIER,
            encode(&verifier)
        );
        let mut resp = text(StatusCode::FOUND, "redirecting");
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                resp.headers_mut().insert(LOCATION, v);
                resp
            }
            Err(_) => text(
                StatusCode::BAD_REQUEST,
                "callback is not a valid header value",
            ),
        }
    }

    pub(super) fn access_token(&self, parts: &Parts, body: &[u8]) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        let consumer_key = match self.verify(
            &mut mem,
            parts,
            &params,
            TokenUse::Request,
            &[param::OAUTH_VERIFIER],
        ) {
            Ok(k) => k,
            Err(reject) => return reject.into_response(),
        };
        let token = params.oauth(param::OAUTH_TOKEN).unwrap_or_default();
        let verifier = params.oauth(param::OAUTH_VERIFIER).unwrap_or_default();
        let Some(request_token) = mem.request_tokens.get(token) else {
            return problem(StatusCode::UNAUTHORIZED, problem::TOKEN_REJECTED);
        };
        let user = match &request_token.authorized {
            None => return problem(StatusCode::FORBIDDEN, problem::TOKEN_NOT_AUTHORIZED),
            Some((user, expected)) if expected.expose() == verifier => user.clone(),
            Some(_) => return problem(StatusCode::UNAUTHORIZED, problem::VERIFIER_INVALID),
        };
        mem.request_tokens.remove(token);
        let access = random_hex(16);
        let secret = random_hex(16);
        mem.access_tokens.insert(
            access.clone(),
            AccessToken {
                secret: Secret::new(secret.clone()),
                consumer_key,
                user,
                expires_at: self.config.access_token_ttl.map(|ttl| Instant::now() + ttl),
            },
        );
        form_response(&[
            (param::OAUTH_TOKEN, &access),
            (param::OAUTH_TOKEN_SECRET, &secret),
        ])
    }

    pub(super) fn resource(&self, parts: &Parts, body: &[u8], db: &str, id: &str) -> Resp {
        let params = match oauth_params(parts, body) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let mut mem = lock(&self.memory);
        if let Err(reject) = self.verify(&mut mem, parts, &params, TokenUse::Access, &[]) {
            return reject.into_response();
        }
        let token = params.oauth(param::OAUTH_TOKEN).unwrap_or_default();
        let user = mem
            .access_tokens
            .get(token)
            .map(|t| t.user.clone())
            .unwrap_or_default();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id,
                "db": db,
                "servedBy": self.config.name,
                "user": user,
            }),
        )
    }
}
