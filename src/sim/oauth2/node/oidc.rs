//! OpenID Connect: the userinfo endpoint and RP-initiated logout with `id_token_hint`.

use super::*;

impl NodeState {
    pub(super) fn userinfo(&self, parts: &Parts) -> Answer {
        let token = bearer(parts).ok_or(Reject::Bearer(None))?;
        let mut mem = lock(&self.memory);
        let access = mem
            .active_access(token, Instant::now())
            .ok_or(Reject::Bearer(Some("unknown or expired access token")))?;
        match &access.grant.user {
            Some(user) if has_openid(&access.grant.scope) => Ok(json(
                StatusCode::OK,
                &wire::UserInfo {
                    sub: user.clone(),
                    preferred_username: user.clone(),
                },
            )),
            _ => {
                let mut r = oauth_error(
                    StatusCode::FORBIDDEN,
                    error::INSUFFICIENT_SCOPE,
                    "openid scope with a user required",
                );
                insert(
                    &mut r,
                    WWW_AUTHENTICATE,
                    &format!(
                        "Bearer realm=\"{}\", error=\"{}\"",
                        wire::REALM,
                        error::INSUFFICIENT_SCOPE
                    ),
                );
                Ok(r)
            }
        }
    }

    /// RP-initiated logout: the id_token_hint names the client (its secret verifies the hint) and the
    /// session (`sid`), which ends here.
    pub(super) fn end_session(&self, parts: &Parts) -> Answer {
        let query = query_of(parts);
        let hint = field(&query, "id_token_hint").ok_or(Reject::bad(
            error::INVALID_REQUEST,
            "id_token_hint required",
        ))?;
        let unverified = jwt::claims_unverified(hint)
            .map_err(|_| Reject::bad(error::INVALID_REQUEST, "malformed id_token_hint"))?;
        let mut mem = lock(&self.memory);
        let client = mem.clients.get(&unverified.aud).ok_or(Reject::bad(
            error::INVALID_REQUEST,
            "id_token_hint was not issued here",
        ))?;
        let claims = jwt::verify(hint, client.secret.expose().as_bytes())
            .map_err(|_| Reject::bad(error::INVALID_REQUEST, "id_token_hint does not verify"))?;
        let redirect = match field(&query, "post_logout_redirect_uri") {
            Some(uri)
                if client
                    .metadata
                    .post_logout_redirect_uris
                    .iter()
                    .any(|u| u == uri) =>
            {
                Some(uri)
            }
            Some(_) => {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "post_logout_redirect_uri not registered",
                ))
            }
            None => None,
        };
        if let Some(sid) = &claims.sid {
            mem.sessions.remove(sid);
        }
        let mut r = match redirect {
            Some(uri) => {
                let mut location = uri.to_string();
                if let Some(state) = field(&query, "state") {
                    location.push(if location.contains('?') { '&' } else { '?' });
                    location.push_str(&format!("state={}", encode(state)));
                }
                let mut r = text(StatusCode::FOUND, "");
                insert(&mut r, LOCATION, &location);
                r
            }
            None => text(StatusCode::OK, "logged out"),
        };
        insert(
            &mut r,
            SET_COOKIE,
            &format!("{}=; Path=/; Max-Age=0", wire::SESSION_COOKIE),
        );
        Ok(r)
    }
}
