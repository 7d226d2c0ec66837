//! The authorization endpoint (code + PKCE, a login page for the user's browser) and pushed authorization
//! requests (RFC 9126).

use super::*;

impl NodeState {
    /// The authorization endpoint. `GET` checks the request and shows the login page (or, with a live
    /// session here, answers at once); `POST` (same query, credentials in the form) logs the user in and
    /// redirects with a code.
    pub(super) fn authorize(&self, parts: &Parts, login: Option<&[(String, String)]>) -> Answer {
        let query = query_of(parts);
        let client_id = field(&query, "client_id")
            .ok_or(Reject::bad(error::INVALID_REQUEST, "client_id required"))?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        // Client and redirect URI are checked before anything can be redirected (RFC 6749 §4.1.2.1).
        let client = mem
            .clients
            .get(client_id)
            .ok_or(Reject::bad(error::INVALID_CLIENT, "unknown client"))?;
        let request_uri = field(&query, "request_uri");
        let request = match request_uri {
            Some(uri) => mem
                .pushed
                .get(uri)
                .filter(|p| p.request.client_id == client_id && p.expires_at > now)
                .map(|p| p.request.clone())
                .ok_or(Reject::bad(
                    error::INVALID_REQUEST_URI,
                    "unknown or expired request_uri",
                ))?,
            None => authorization_request(&query, client_id),
        };
        if !client
            .metadata
            .redirect_uris
            .contains(&request.redirect_uri)
        {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "redirect_uri not registered",
            ));
        }
        if request.response_type != "code" {
            return Ok(redirect_error(&request, error::UNSUPPORTED_RESPONSE_TYPE));
        }
        if request.code_challenge.is_none()
            || request.code_challenge_method.as_deref() != Some("S256")
        {
            return Ok(redirect_error(&request, error::INVALID_REQUEST));
        }
        let session = cookie(parts, wire::SESSION_COOKIE)
            .filter(|sid| mem.sessions.contains_key(*sid))
            .map(str::to_string);
        let (sid, user, new_session) = match (login, session) {
            (None, Some(sid)) => {
                let user = mem.sessions[&sid].user.clone();
                (sid, user, false)
            }
            (None, None) => return Ok(login_page()),
            (Some(form), _) => {
                let user = field(form, "username")
                    .zip(field(form, "password"))
                    .and_then(|(u, p)| self.users.authenticate(u, p))
                    .ok_or(Reject::Page(StatusCode::UNAUTHORIZED, "login failed"))?;
                let sid = random_hex(16);
                mem.sessions.insert(
                    sid.clone(),
                    Session {
                        user: user.name.clone(),
                    },
                );
                (sid, user.name, true)
            }
        };
        if let Some(uri) = request_uri {
            mem.pushed.remove(uri);
        }
        let code = random_hex(16);
        let mut location = request.redirect_uri.clone();
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(&format!("code={}", encode(&code)));
        if let Some(state) = &request.state {
            location.push_str(&format!("&state={}", encode(state)));
        }
        if mem.codes.len() >= SWEEP_THRESHOLD {
            mem.codes.retain(|_, c| c.expires_at > now);
        }
        mem.codes.insert(
            code,
            CodeGrant {
                request,
                user,
                sid: sid.clone(),
                auth_time: unix_now(),
                expires_at: now + self.config.code_ttl,
                issued: None,
            },
        );
        let mut r = text(StatusCode::FOUND, "");
        insert(&mut r, LOCATION, &location);
        if new_session {
            insert(
                &mut r,
                SET_COOKIE,
                &format!("{}={sid}; Path=/; HttpOnly", wire::SESSION_COOKIE),
            );
        }
        Ok(r)
    }

    /// RFC 9126: the authorization request, authenticated, in exchange for a one-time `request_uri`.
    pub(super) fn par(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if field(&form, "request_uri").is_some() {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "request_uri is not allowed in a pushed request",
            ));
        }
        let request = authorization_request(&form, &client_id);
        if !mem.clients[&client_id]
            .metadata
            .redirect_uris
            .contains(&request.redirect_uri)
        {
            return Err(Reject::bad(
                error::INVALID_REQUEST,
                "redirect_uri not registered",
            ));
        }
        if mem.pushed.len() >= SWEEP_THRESHOLD {
            mem.pushed.retain(|_, p| p.expires_at > now);
        }
        let request_uri = format!("{}{}", wire::REQUEST_URI_PREFIX, random_hex(16));
        let ttl = self.config.par_ttl;
        mem.pushed.insert(
            request_uri.clone(),
            Pushed {
                request,
                expires_at: now + ttl,
            },
        );
        let answer = wire::ParResponse {
            request_uri,
            expires_in: ttl.as_secs(),
        };
        Ok(no_store(json(StatusCode::CREATED, &answer)))
    }
}

pub(super) fn authorization_request(
    params: &[(String, String)],
    client_id: &str,
) -> AuthorizationRequest {
    let get = |n| field(params, n).map(str::to_string);
    AuthorizationRequest {
        client_id: client_id.to_string(),
        response_type: get("response_type").unwrap_or_default(),
        redirect_uri: get("redirect_uri").unwrap_or_default(),
        scope: get("scope").unwrap_or_else(|| "openid".to_string()),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
    }
}

pub(super) fn has_openid(scope: &str) -> bool {
    scope.split(' ').any(|s| s == "openid")
}

/// RFC 6749 §4.1.2.1: an error sent back to the client's redirect URI.
pub(super) fn redirect_error(request: &AuthorizationRequest, code: &str) -> Resp {
    let mut location = request.redirect_uri.clone();
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str(&format!("error={code}"));
    if let Some(state) = &request.state {
        location.push_str(&format!("&state={}", encode(state)));
    }
    let mut r = text(StatusCode::FOUND, "");
    insert(&mut r, LOCATION, &location);
    r
}

pub(super) fn login_page() -> Resp {
    // The form posts to the same URL (the query carries the authorization request).
    html(
        "<!doctype html><title>Sign in</title><form method=\"post\">\
         <input name=\"username\"><input name=\"password\" type=\"password\">\
         <button>Sign in</button></form>",
    )
}
