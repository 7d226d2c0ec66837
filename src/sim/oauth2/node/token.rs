//! The token endpoint (every grant, refresh rotation), revocation (RFC 7009) and introspection (RFC 7662).

use super::*;

impl NodeState {
    pub(super) fn token(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let grant_type = field(&form, "grant_type")
            .ok_or(Reject::bad(error::INVALID_REQUEST, "grant_type required"))?;
        let issuer = self.issuer(parts)?;
        let now = Instant::now();
        let ttl = self.config.access_token_ttl;
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if ![
            grant::AUTHORIZATION_CODE,
            grant::REFRESH_TOKEN,
            grant::CLIENT_CREDENTIALS,
            grant::DEVICE_CODE,
        ]
        .contains(&grant_type)
        {
            return Err(Reject::bad(
                error::UNSUPPORTED_GRANT_TYPE,
                "unsupported grant_type",
            ));
        }
        let client = mem.clients[&client_id].clone();
        if !client.allows_grant(grant_type) {
            return Err(Reject::bad(
                error::UNAUTHORIZED_CLIENT,
                "grant type not registered for this client",
            ));
        }
        let with_refresh = client.allows_grant(grant::REFRESH_TOKEN);
        let invalid_grant = |d| Reject::bad(error::INVALID_GRANT, d);
        let id_token =
            |issued: &Issued, user: &str, nonce: Option<String>, sid: Option<String>, auth_time| {
                let claims = IdClaims {
                    iss: issuer.clone(),
                    sub: user.to_string(),
                    aud: client_id.clone(),
                    exp: unix_now() + ttl.as_secs(),
                    iat: unix_now(),
                    auth_time,
                    nonce,
                    sid,
                    at_hash: Some(jwt::at_hash(&issued.access_token)),
                };
                jwt::sign(&claims, client.secret.expose().as_bytes())
            };
        let response = match grant_type {
            grant::AUTHORIZATION_CODE => {
                let code = field(&form, "code")
                    .ok_or(Reject::bad(error::INVALID_REQUEST, "code required"))?;
                let entry = mem
                    .codes
                    .get(code)
                    .ok_or(invalid_grant("unknown code"))?
                    .clone();
                if entry.request.client_id != client_id {
                    return Err(invalid_grant("code issued to another client"));
                }
                if let Some((access, refresh)) = &entry.issued {
                    // A replayed code: refuse, and revoke what the first exchange issued (RFC 6749 §4.1.2).
                    mem.access.remove(access);
                    if let Some(r) = refresh {
                        mem.refresh.remove(r);
                    }
                    mem.codes.remove(code);
                    return Err(invalid_grant("code already used"));
                }
                if entry.expires_at <= now {
                    mem.codes.remove(code);
                    return Err(invalid_grant("code expired"));
                }
                if field(&form, "redirect_uri") != Some(entry.request.redirect_uri.as_str()) {
                    return Err(invalid_grant(
                        "redirect_uri differs from the authorization request",
                    ));
                }
                let challenge = entry.request.code_challenge.as_deref().unwrap_or_default();
                if !field(&form, "code_verifier").is_some_and(|v| pkce::verify(v, challenge)) {
                    return Err(invalid_grant("PKCE verification failed"));
                }
                let grant = Grant {
                    client_id: client_id.clone(),
                    user: Some(entry.user.clone()),
                    scope: entry.request.scope.clone(),
                };
                let issued = mem.issue(grant, ttl, with_refresh, now);
                if let Some(c) = mem.codes.get_mut(code) {
                    c.issued = Some((issued.access_token.clone(), issued.refresh_token.clone()));
                }
                let id = has_openid(&entry.request.scope).then(|| {
                    id_token(
                        &issued,
                        &entry.user,
                        entry.request.nonce.clone(),
                        Some(entry.sid.clone()),
                        entry.auth_time,
                    )
                });
                token_response(issued, &entry.request.scope, id)
            }
            grant::REFRESH_TOKEN => {
                let refresh = field(&form, "refresh_token").ok_or(Reject::bad(
                    error::INVALID_REQUEST,
                    "refresh_token required",
                ))?;
                let (grant, issued) = mem
                    .rotate(refresh, &client_id, ttl, now)
                    .ok_or(invalid_grant("unknown refresh token"))?;
                token_response(issued, &grant.scope, None)
            }
            grant::CLIENT_CREDENTIALS => {
                let scope = field(&form, "scope").unwrap_or("api").to_string();
                let grant = Grant {
                    client_id: client_id.clone(),
                    user: None,
                    scope: scope.clone(),
                };
                // No refresh token for client credentials (RFC 6749 §4.4.3).
                token_response(mem.issue(grant, ttl, false, now), &scope, None)
            }
            _ => {
                let code = field(&form, "device_code")
                    .ok_or(Reject::bad(error::INVALID_REQUEST, "device_code required"))?;
                let interval = self.config.device_poll_interval;
                let device = mem
                    .devices
                    .get_mut(code)
                    .ok_or(invalid_grant("unknown device_code"))?;
                if device.client_id != client_id {
                    return Err(invalid_grant("device_code issued to another client"));
                }
                if device.expires_at <= now {
                    mem.remove_device(code);
                    return Err(Reject::bad(error::EXPIRED_TOKEN, "device_code expired"));
                }
                let too_soon = device.last_poll.is_some_and(|t| now < t + interval);
                device.last_poll = Some(now);
                if too_soon {
                    return Err(Reject::bad(
                        error::SLOW_DOWN,
                        "polled faster than the interval",
                    ));
                }
                let (state, scope) = (device.state.clone(), device.scope.clone());
                match state {
                    DeviceState::Pending => {
                        return Err(Reject::bad(
                            error::AUTHORIZATION_PENDING,
                            "the user has not approved yet",
                        ))
                    }
                    DeviceState::Denied => {
                        mem.remove_device(code);
                        return Err(Reject::bad(
                            error::ACCESS_DENIED,
                            "the user denied the device",
                        ));
                    }
                    DeviceState::Approved(user) => {
                        mem.remove_device(code);
                        let grant = Grant {
                            client_id: client_id.clone(),
                            user: Some(user.clone()),
                            scope: scope.clone(),
                        };
                        let issued = mem.issue(grant, ttl, with_refresh, now);
                        let id = has_openid(&scope)
                            .then(|| id_token(&issued, &user, None, None, unix_now()));
                        token_response(issued, &scope, id)
                    }
                }
            }
        };
        Ok(no_store(json(StatusCode::OK, &response)))
    }

    /// RFC 7009: 200 whether or not the token was known here.
    pub(super) fn revoke(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        let token =
            field(&form, "token").ok_or(Reject::bad(error::INVALID_REQUEST, "token required"))?;
        mem.revoke(token, field(&form, "token_type_hint"), &client_id);
        Ok(text(StatusCode::OK, ""))
    }

    /// RFC 7662: `{"active": false}` for a token this node never issued, or no longer honours.
    pub(super) fn introspect(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        self.authenticate(&mem, parts, &form)?;
        let token =
            field(&form, "token").ok_or(Reject::bad(error::INVALID_REQUEST, "token required"))?;
        let describe = |g: &Grant, kind: &str, exp: Option<u64>| wire::Introspection {
            active: true,
            client_id: Some(g.client_id.clone()),
            scope: Some(g.scope.clone()),
            sub: Some(g.user.clone().unwrap_or_else(|| g.client_id.clone())),
            token_type: Some(kind.to_string()),
            exp,
        };
        let answer = match mem.active_access(token, now) {
            Some(a) => describe(&a.grant, "access_token", Some(a.exp_unix)),
            None => match mem.refresh.get(token) {
                Some(g) => describe(g, "refresh_token", None),
                None => wire::Introspection::default(),
            },
        };
        Ok(no_store(json(StatusCode::OK, &answer)))
    }
}

pub(super) fn token_response(
    issued: Issued,
    scope: &str,
    id_token: Option<String>,
) -> wire::TokenResponse {
    wire::TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_string(),
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token,
        scope: Some(scope.to_string()),
        id_token,
    }
}
