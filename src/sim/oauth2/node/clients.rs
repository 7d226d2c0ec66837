//! Clients: dynamic registration (RFC 7591), client management with the registration access token (RFC 7592), and
//! client authentication at the token endpoint (`client_secret_basic`, `client_secret_post`).

use super::*;

impl NodeState {
    pub(super) fn secret_matches(&self, stored: &Secret, presented: &str) -> bool {
        let keyed = || {
            HmacSha256::new_from_slice(&self.compare_key).expect("HMAC accepts keys of any length")
        };
        let expected = keyed()
            .chain_update(stored.expose().as_bytes())
            .finalize()
            .into_bytes();
        keyed()
            .chain_update(presented.as_bytes())
            .verify_slice(&expected)
            .is_ok()
    }

    /// RFC 6749 §2.3.1 client authentication, by the method the client registered. With `Authorization:
    /// Basic` a failure is 401 with a `Basic` challenge; with credentials in the body it is 400.
    pub(super) fn authenticate(
        &self,
        mem: &Memory,
        parts: &Parts,
        form: &[(String, String)],
    ) -> Result<String, Reject> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
        if let Some(header) = header {
            let (id, secret) = basic::decode(header)
                .map_err(|_| Reject::ClientBasic("malformed Basic credentials"))?;
            if field(form, "client_secret").is_some() {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "more than one client authentication method",
                ));
            }
            if field(form, "client_id").is_some_and(|f| f != id) {
                return Err(Reject::bad(
                    error::INVALID_REQUEST,
                    "client_id differs from the authenticated client",
                ));
            }
            let client = mem
                .clients
                .get(&id)
                .ok_or(Reject::ClientBasic("unknown client"))?;
            if !self.secret_matches(&client.secret, &secret) {
                return Err(Reject::ClientBasic("client authentication failed"));
            }
            if client.auth_method() != auth_method::BASIC {
                return Err(Reject::ClientBasic(
                    "client registered another authentication method",
                ));
            }
            return Ok(id);
        }
        let Some(id) = field(form, "client_id") else {
            return Err(Reject::ClientBasic("client authentication required"));
        };
        let invalid = |d| Reject::bad(error::INVALID_CLIENT, d);
        let client = mem.clients.get(id).ok_or(invalid("unknown client"))?;
        let secret = field(form, "client_secret").ok_or(invalid("client_secret required"))?;
        if !self.secret_matches(&client.secret, secret) {
            return Err(invalid("client authentication failed"));
        }
        if client.auth_method() != auth_method::POST {
            return Err(invalid("client registered another authentication method"));
        }
        Ok(id.to_string())
    }

    pub(super) fn register(&self, parts: &Parts, body: &[u8]) -> Answer {
        let metadata = serde_json::from_slice::<ClientMetadata>(body).map_err(|_| {
            Reject::bad(
                error::INVALID_CLIENT_METADATA,
                "expected RFC 7591 JSON client metadata",
            )
        })?;
        let metadata = validated(metadata)?;
        let issuer = self.issuer(parts)?;
        let id = format!("{}{}", self.config.client_id_prefix, random_hex(12));
        let client = Client {
            secret: Secret::new(new_client_secret()),
            registration_token: Secret::new(random_hex(20)),
            issued_at: unix_now(),
            metadata,
        };
        let info = client_information(&issuer, &id, &client);
        lock(&self.memory).clients.insert(id, client);
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
        Ok(no_store(json(StatusCode::CREATED, &info)))
    }

    /// RFC 7592 read (`GET`), update (`PUT`) and delete (`DELETE`) with the registration access token.
    pub(super) fn manage_client(&self, parts: &Parts, body: &[u8], id: &str) -> Answer {
        let issuer = self.issuer(parts)?;
        let presented = bearer(parts).ok_or(Reject::Bearer(None))?;
        let mut mem = lock(&self.memory);
        // RFC 7592 §2: a client unknown here and a wrong token get the same 401.
        let client = mem
            .clients
            .get(id)
            .filter(|c| self.secret_matches(&c.registration_token, presented))
            .ok_or(Reject::Bearer(Some("unknown registration access token")))?;
        match parts.method {
            Method::GET => Ok(no_store(json(
                StatusCode::OK,
                &client_information(&issuer, id, client),
            ))),
            Method::PUT => {
                let update = serde_json::from_slice::<serde_json::Value>(body)
                    .map_err(|_| Reject::bad(error::INVALID_CLIENT_METADATA, "expected JSON"))?;
                if update.get("client_id").and_then(|v| v.as_str()) != Some(id) {
                    return Err(Reject::bad(error::INVALID_REQUEST, "client_id must match"));
                }
                if let Some(secret) = update.get("client_secret").and_then(|v| v.as_str()) {
                    if !self.secret_matches(&client.secret, secret) {
                        return Err(Reject::bad(
                            error::INVALID_REQUEST,
                            "client_secret must match",
                        ));
                    }
                }
                let metadata = serde_json::from_value::<ClientMetadata>(update)
                    .map_err(|_| Reject::bad(error::INVALID_CLIENT_METADATA, "bad metadata"))?;
                let metadata = validated(metadata)?;
                let client = mem
                    .clients
                    .get_mut(id)
                    .ok_or(Reject::Bearer(Some("client deleted")))?;
                client.metadata = metadata;
                Ok(no_store(json(
                    StatusCode::OK,
                    &client_information(&issuer, id, client),
                )))
            }
            Method::DELETE => {
                mem.clients.remove(id);
                let mut r = text(StatusCode::NO_CONTENT, "");
                r.headers_mut().remove(CONTENT_TYPE);
                Ok(r)
            }
            _ => Err(Reject::Page(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )),
        }
    }
}

/// RFC 7591 §2 defaults and checks.
pub(super) fn validated(mut m: ClientMetadata) -> Result<ClientMetadata, Reject> {
    let method = m
        .token_endpoint_auth_method
        .get_or_insert_with(|| auth_method::BASIC.to_string());
    if method != auth_method::BASIC && method != auth_method::POST {
        return Err(Reject::bad(
            error::INVALID_CLIENT_METADATA,
            "unsupported token_endpoint_auth_method",
        ));
    }
    if m.grant_types.is_empty() {
        m.grant_types.push(grant::AUTHORIZATION_CODE.to_string());
    }
    let known = [
        grant::AUTHORIZATION_CODE,
        grant::REFRESH_TOKEN,
        grant::CLIENT_CREDENTIALS,
        grant::DEVICE_CODE,
    ];
    if m.grant_types.iter().any(|g| !known.contains(&g.as_str())) {
        return Err(Reject::bad(
            error::INVALID_CLIENT_METADATA,
            "unsupported grant type",
        ));
    }
    if m.response_types.is_empty() {
        m.response_types.push("code".to_string());
    }
    let absolute = |u: &String| {
        u.parse::<http::Uri>().is_ok_and(|p| {
            matches!(p.scheme_str(), Some("http" | "https")) && p.authority().is_some()
        }) && !u.contains('#')
    };
    if !m
        .redirect_uris
        .iter()
        .chain(&m.post_logout_redirect_uris)
        .all(absolute)
    {
        return Err(Reject::bad(
            error::INVALID_REDIRECT_URI,
            "redirect URIs must be absolute, without fragment",
        ));
    }
    if m.grant_types.iter().any(|g| g == grant::AUTHORIZATION_CODE) && m.redirect_uris.is_empty() {
        return Err(Reject::bad(
            error::INVALID_REDIRECT_URI,
            "the code grant needs redirect_uris",
        ));
    }
    m.scope.get_or_insert_with(|| "openid profile".to_string());
    Ok(m)
}

pub(super) fn client_information(issuer: &str, id: &str, c: &Client) -> ClientInformation {
    ClientInformation {
        client_id: id.to_string(),
        client_secret: c.secret.expose().to_string(),
        client_id_issued_at: c.issued_at,
        client_secret_expires_at: 0,
        registration_access_token: c.registration_token.expose().to_string(),
        registration_client_uri: format!("{issuer}{}/{}", wire::REGISTER, encode(id)),
        metadata: c.metadata.clone(),
    }
}

/// The client id of an RFC 7592 client configuration path `REGISTER/{id}` (percent-decoded once).
pub(super) fn client_uri_id(path: &str) -> Option<String> {
    let encoded = path.strip_prefix(wire::REGISTER)?.strip_prefix('/')?;
    (!encoded.is_empty() && !encoded.contains('/'))
        .then(|| percent::decode(encoded).ok())
        .flatten()
}

/// Base64 of 25 random bytes, standard alphabet: every secret ends in `==` and most hold `+` or `/`, which
/// clients must form-encode in Basic credentials and bodies (RFC 6749 §2.3.1).
pub(super) fn new_client_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 25] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_configuration_paths_yield_the_decoded_client_id() {
        assert_eq!(client_uri_id("/oauth2/register/abc"), Some("abc".into()));
        assert_eq!(
            client_uri_id("/oauth2/register/urn%3Ac%3A1"),
            Some("urn:c:1".into())
        );
        assert_eq!(client_uri_id("/oauth2/register/"), None);
        assert_eq!(client_uri_id("/oauth2/register/a/b"), None);
        assert_eq!(client_uri_id("/oauth2/registerx"), None);
    }

    #[test]
    fn registration_fills_defaults_and_refuses_bad_metadata() {
        let m = validated(ClientMetadata {
            redirect_uris: vec!["http://client.invalid/cb".into()],
            ..ClientMetadata::default()
        })
        .unwrap();
        assert_eq!(
            m.token_endpoint_auth_method.as_deref(),
            Some(auth_method::BASIC)
        );
        assert_eq!(m.grant_types, [grant::AUTHORIZATION_CODE]);
        let refused = |m: ClientMetadata| match validated(m) {
            Err(Reject::OAuth(_, code, _)) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(ClientMetadata::default()),
            error::INVALID_REDIRECT_URI
        );
        assert_eq!(
            refused(ClientMetadata {
                redirect_uris: vec!["/relative".into()],
                ..ClientMetadata::default()
            }),
            error::INVALID_REDIRECT_URI
        );
        assert_eq!(
            refused(ClientMetadata {
                grant_types: vec!["password".into()],
                ..ClientMetadata::default()
            }),
            error::INVALID_CLIENT_METADATA
        );
        assert_eq!(
            refused(ClientMetadata {
                token_endpoint_auth_method: Some("private_key_jwt".into()),
                ..ClientMetadata::default()
            }),
            error::INVALID_CLIENT_METADATA
        );
    }

    #[test]
    fn client_secrets_always_hold_characters_that_need_form_encoding() {
        assert!((0..20).all(|_| new_client_secret().ends_with("==")));
    }
}
