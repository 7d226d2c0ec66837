//! One flow's steps, played against the server: registration, the grant itself, and the checks a careful
//! client makes on every answer.

use super::*;

/// What the client holds after registering.
pub(super) struct Registered {
    info: wire::ClientInformation,
}

/// The tokens the client holds.
pub(super) struct Tokens {
    access: String,
    refresh: Option<String>,
    id_token: Option<String>,
}

/// One flow in progress: the steps done so far and the browser of its user.
pub(super) struct Flow<'a> {
    pub(super) ctx: &'a Context,
    pub(super) flow: usize,
    pub(super) auth: AuthMethod,
    pub(super) browser: Browser,
    pub(super) done: Vec<(Step, StepOutcome)>,
    /// How many steps the flow's plan has: the one that fills it ends the flow.
    pub(super) planned: usize,
    /// When the previous step ended (or the flow started), for the observer's latency.
    pub(super) since: tokio::time::Instant,
}

impl Flow<'_> {
    fn ok(&mut self, step: Step, reply: &Reply) {
        self.done.push((
            step,
            StepOutcome::Ok {
                served_by: reply.served_by(),
            },
        ));
        let last = self.done.len() == self.planned;
        self.observe(step, None, last);
    }

    /// Reports the end of `step` to the observer, if there is one.
    pub(super) fn observe(&mut self, step: Step, failure: Option<&Failure>, last: bool) {
        if let Some(observer) = &self.ctx.opts.observer {
            let now = tokio::time::Instant::now();
            (observer.0)(&StepEvent {
                flow: self.flow,
                step,
                latency: now - self.since,
                failure,
                last,
            });
            self.since = now;
        }
    }

    pub(super) async fn play(&mut self, grant: Grant, plan: &[Step]) -> Result<(), Failure> {
        let ctx = self.ctx;
        let opts = &ctx.opts;
        let has = |s| plan.contains(&s);
        let discovery: wire::Discovery = {
            let url = format!("{}{}", self.ctx.target, wire::DISCOVERY);
            let reply = expect(
                self.ctx.s2s.send(Method::GET, &url, &[], None).await?,
                StatusCode::OK,
            )?;
            let doc = parse(&reply)?;
            self.ok(Step::Discovery, &reply);
            doc
        };
        let client = self.register(&discovery, grant).await?;
        if has(Step::ReadClient) {
            self.read_client(&client).await?;
        }
        let mut tokens = match grant {
            Grant::Code => self.code(&discovery, &client).await?,
            Grant::ClientCredentials => {
                let reply = self
                    .token(
                        &discovery,
                        &client,
                        &[("grant_type", grant::CLIENT_CREDENTIALS), ("scope", "api")],
                    )
                    .await?;
                let t: wire::TokenResponse = parse(&reply)?;
                if t.refresh_token.is_some() {
                    return Err(Failure::wrong(
                        &reply,
                        "client credentials answered a refresh token",
                    ));
                }
                self.ok(Step::ClientCredentials, &reply);
                Tokens {
                    access: t.access_token,
                    refresh: None,
                    id_token: None,
                }
            }
            Grant::Device => self.device(&discovery, &client).await?,
        };
        if has(Step::Userinfo) {
            let headers = [(AUTHORIZATION, format!("Bearer {}", tokens.access))];
            let reply = self
                .ctx
                .s2s
                .send(Method::GET, &discovery.userinfo_endpoint, &headers, None)
                .await?;
            let info: wire::UserInfo = parse(&expect(reply.clone(), StatusCode::OK)?)?;
            if info.sub != opts.user {
                return Err(Failure::wrong(&reply, "userinfo names another user"));
            }
            self.ok(Step::Userinfo, &reply);
        }
        if has(Step::Refresh) {
            let old = tokens
                .refresh
                .clone()
                .ok_or_else(|| Failure::local("no refresh token to use"))?;
            let reply = self
                .token(
                    &discovery,
                    &client,
                    &[
                        ("grant_type", grant::REFRESH_TOKEN),
                        ("refresh_token", &old),
                    ],
                )
                .await?;
            let t: wire::TokenResponse = parse(&reply)?;
            if t.refresh_token.as_deref().is_none_or(|new| new == old) {
                return Err(Failure::wrong(&reply, "refresh token not rotated"));
            }
            self.ok(Step::Refresh, &reply);
            tokens.access = t.access_token;
            tokens.refresh = t.refresh_token;
        }
        if has(Step::Introspect) {
            self.introspect(&discovery, &client, &tokens.access, true, Step::Introspect)
                .await?;
            let reply = self
                .authed(
                    &discovery.revocation_endpoint,
                    &client,
                    &[
                        ("token", &tokens.access),
                        ("token_type_hint", "access_token"),
                    ],
                )
                .await?;
            self.ok(Step::Revoke, &expect(reply, StatusCode::OK)?);
            self.introspect(
                &discovery,
                &client,
                &tokens.access,
                false,
                Step::IntrospectRevoked,
            )
            .await?;
        }
        if has(Step::EndSession) {
            let id_token = tokens
                .id_token
                .take()
                .ok_or_else(|| Failure::local("no id_token"))?;
            self.end_session(&discovery, &id_token).await?;
        }
        Ok(())
    }

    async fn register(
        &mut self,
        discovery: &wire::Discovery,
        grant: Grant,
    ) -> Result<Registered, Failure> {
        let mut grant_types = vec![grant::REFRESH_TOKEN];
        grant_types.push(match grant {
            Grant::Code => grant::AUTHORIZATION_CODE,
            Grant::ClientCredentials => grant::CLIENT_CREDENTIALS,
            Grant::Device => grant::DEVICE_CODE,
        });
        let metadata = wire::ClientMetadata {
            redirect_uris: vec![REDIRECT_URI.to_string()],
            token_endpoint_auth_method: Some(self.auth.as_str().to_string()),
            grant_types: grant_types.into_iter().map(str::to_string).collect(),
            response_types: vec!["code".to_string()],
            client_name: Some(format!("tokenroute-sim-flow-{}", self.flow)),
            scope: Some("openid profile api".to_string()),
            post_logout_redirect_uris: vec![LOGOUT_REDIRECT_URI.to_string()],
        };
        let body = serde_json::to_string(&metadata).unwrap_or_default();
        let reply = self
            .ctx
            .s2s
            .send(
                Method::POST,
                &discovery.registration_endpoint,
                &[],
                Some(("application/json", body)),
            )
            .await?;
        let info: wire::ClientInformation = parse(&expect(reply.clone(), StatusCode::CREATED)?)?;
        self.ok(Step::Register, &reply);
        Ok(Registered { info })
    }

    async fn read_client(&mut self, client: &Registered) -> Result<(), Failure> {
        let headers = [(
            AUTHORIZATION,
            format!("Bearer {}", client.info.registration_access_token),
        )];
        let reply = self
            .ctx
            .s2s
            .send(
                Method::GET,
                &client.info.registration_client_uri,
                &headers,
                None,
            )
            .await?;
        let read: wire::ClientInformation = parse(&expect(reply.clone(), StatusCode::OK)?)?;
        if read.client_id != client.info.client_id {
            return Err(Failure::wrong(
                &reply,
                "client configuration names another client",
            ));
        }
        self.ok(Step::ReadClient, &reply);
        Ok(())
    }

    /// `POST url` with the client's authentication (Basic header or body) and `params`.
    async fn authed(
        &self,
        url: &str,
        client: &Registered,
        params: &[(&str, &str)],
    ) -> Result<Reply, Failure> {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        let mut headers: Vec<(HeaderName, String)> = Vec::new();
        let (id, secret) = (&client.info.client_id, &client.info.client_secret);
        match self.auth {
            AuthMethod::Basic => headers.push((AUTHORIZATION, basic::encode(id, secret))),
            AuthMethod::Post => {
                // A pushed authorization request already names the client; a parameter must not repeat.
                if !pairs.iter().any(|(n, _)| *n == "client_id") {
                    pairs.push(("client_id", id));
                }
                pairs.push(("client_secret", secret));
            }
        }
        Ok(self
            .ctx
            .s2s
            .send(Method::POST, url, &headers, Some((FORM, form_body(&pairs))))
            .await?)
    }

    /// A token request that must succeed.
    async fn token(
        &self,
        d: &wire::Discovery,
        client: &Registered,
        params: &[(&str, &str)],
    ) -> Result<Reply, Failure> {
        expect(
            self.authed(&d.token_endpoint, client, params).await?,
            StatusCode::OK,
        )
    }

    async fn code(&mut self, d: &wire::Discovery, client: &Registered) -> Result<Tokens, Failure> {
        let verifier = pkce::new_verifier();
        let challenge = pkce::challenge(&verifier);
        let state = format!("flow-{}-{}", self.flow, random_hex(6));
        let nonce = random_hex(12);
        let id = client.info.client_id.as_str();
        let request = [
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile"),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let query = if self.ctx.opts.par {
            let reply = self
                .authed(&d.pushed_authorization_request_endpoint, client, &request)
                .await?;
            let pushed: wire::ParResponse = parse(&expect(reply.clone(), StatusCode::CREATED)?)?;
            self.ok(Step::Par, &reply);
            form_body(&[("client_id", id), ("request_uri", &pushed.request_uri)])
        } else {
            form_body(&request)
        };
        let url = format!("{}?{query}", d.authorization_endpoint);
        let reply = expect(self.browser.get(&url).await?, StatusCode::OK)?;
        self.ok(Step::AuthorizeForm, &reply);
        let login = [
            ("username".to_string(), self.ctx.opts.user.clone()),
            (
                "password".to_string(),
                self.ctx.opts.password.expose().to_string(),
            ),
        ];
        let reply = expect(
            self.browser.post_form(&url, &login).await?,
            StatusCode::FOUND,
        )?;
        let location = reply
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let callback = location
            .strip_prefix(REDIRECT_URI)
            .and_then(|rest| rest.strip_prefix('?'))
            .and_then(|q| crate::oauth::percent::parse_form(q.as_bytes()).ok())
            .ok_or_else(|| Failure::wrong(&reply, "redirect is not to the redirect URI"))?;
        let get = |n: &str| {
            callback
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        if let Some(e) = get("error") {
            return Err(Failure {
                error: Some(e),
                ..Failure::wrong(&reply, "authorization refused")
            });
        }
        if get("state").as_deref() != Some(state.as_str()) {
            return Err(Failure::wrong(&reply, "state does not match"));
        }
        let code = get("code").ok_or_else(|| Failure::wrong(&reply, "redirect without code"))?;
        self.ok(Step::Authorize, &reply);

        let reply = self
            .token(
                d,
                client,
                &[
                    ("grant_type", grant::AUTHORIZATION_CODE),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ],
            )
            .await?;
        let t: wire::TokenResponse = parse(&reply)?;
        check_id_token(&reply, &t, d, client, Some(&nonce))?;
        self.ok(Step::CodeExchange, &reply);
        Ok(Tokens {
            access: t.access_token,
            refresh: t.refresh_token,
            id_token: t.id_token,
        })
    }

    async fn device(
        &mut self,
        d: &wire::Discovery,
        client: &Registered,
    ) -> Result<Tokens, Failure> {
        let reply = self
            .authed(
                &d.device_authorization_endpoint,
                client,
                &[("scope", "openid profile")],
            )
            .await?;
        let device: wire::DeviceAuthorization = parse(&expect(reply.clone(), StatusCode::OK)?)?;
        self.ok(Step::DeviceAuthorization, &reply);
        let poll = [
            ("grant_type", grant::DEVICE_CODE),
            ("device_code", device.device_code.as_str()),
        ];

        let reply = self.authed(&d.token_endpoint, client, &poll).await?;
        let pending = reply.status == StatusCode::BAD_REQUEST
            && serde_json::from_slice::<wire::ErrorBody>(&reply.body)
                .is_ok_and(|e| e.error == error::AUTHORIZATION_PENDING);
        if !pending {
            return Err(Failure::from_reply(&reply));
        }
        self.ok(Step::DevicePending, &reply);

        let approve = [
            ("user_code".to_string(), device.user_code.clone()),
            ("username".to_string(), self.ctx.opts.user.clone()),
            (
                "password".to_string(),
                self.ctx.opts.password.expose().to_string(),
            ),
            ("approve".to_string(), "yes".to_string()),
        ];
        let reply = expect(
            self.browser
                .post_form(&device.verification_uri, &approve)
                .await?,
            StatusCode::OK,
        )?;
        self.ok(Step::DeviceApprove, &reply);

        // RFC 8628 §3.5: wait `interval` seconds between polls (0 on the stand-in unless configured).
        tokio::time::sleep(Duration::from_secs(device.interval).min(self.ctx.opts.timeout)).await;
        let reply = self.token(d, client, &poll).await?;
        let t: wire::TokenResponse = parse(&reply)?;
        check_id_token(&reply, &t, d, client, None)?;
        self.ok(Step::DeviceToken, &reply);
        Ok(Tokens {
            access: t.access_token,
            refresh: t.refresh_token,
            id_token: t.id_token,
        })
    }

    async fn introspect(
        &mut self,
        d: &wire::Discovery,
        client: &Registered,
        token: &str,
        active: bool,
        step: Step,
    ) -> Result<(), Failure> {
        let reply = self
            .authed(
                &d.introspection_endpoint,
                client,
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await?;
        let answer: wire::Introspection = parse(&expect(reply.clone(), StatusCode::OK)?)?;
        if answer.active != active {
            return Err(Failure::wrong(
                &reply,
                format!("introspection: active is {}", answer.active),
            ));
        }
        if active && answer.client_id.as_deref() != Some(client.info.client_id.as_str()) {
            return Err(Failure::wrong(&reply, "introspection names another client"));
        }
        self.ok(step, &reply);
        Ok(())
    }

    async fn end_session(&mut self, d: &wire::Discovery, id_token: &str) -> Result<(), Failure> {
        let state = random_hex(6);
        let query = form_body(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", LOGOUT_REDIRECT_URI),
            ("state", &state),
        ]);
        let url = format!("{}?{query}", d.end_session_endpoint);
        let reply = expect(self.browser.get(&url).await?, StatusCode::FOUND)?;
        let expected = format!("{LOGOUT_REDIRECT_URI}?state={state}");
        if reply.headers.get(LOCATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Err(Failure::wrong(
                &reply,
                "end-session did not return to the logout redirect",
            ));
        }
        self.ok(Step::EndSession, &reply);
        Ok(())
    }
}

/// Verifies an id_token as OpenID Connect Core §3.1.3.7 asks (the parts that apply to `HS256`): signature
/// under the client secret, issuer, audience, nonce and `at_hash`. Absent when `openid` was not granted.
fn check_id_token(
    reply: &Reply,
    t: &wire::TokenResponse,
    d: &wire::Discovery,
    client: &Registered,
    nonce: Option<&str>,
) -> Result<(), Failure> {
    let token = t
        .id_token
        .as_deref()
        .ok_or_else(|| Failure::wrong(reply, "no id_token"))?;
    let claims = jwt::verify(token, client.info.client_secret.as_bytes())
        .map_err(|e| Failure::wrong(reply, format!("id_token: {e}")))?;
    let wrong = |what: &str| Err(Failure::wrong(reply, format!("id_token: wrong {what}")));
    if claims.iss != d.issuer {
        return wrong("iss");
    }
    if claims.aud != client.info.client_id {
        return wrong("aud");
    }
    if claims.nonce.as_deref() != nonce {
        return wrong("nonce");
    }
    if claims.at_hash.as_deref() != Some(jwt::at_hash(&t.access_token).as_str()) {
        return wrong("at_hash");
    }
    Ok(())
}

fn expect(reply: Reply, status: StatusCode) -> Result<Reply, Failure> {
    if reply.status == status {
        Ok(reply)
    } else {
        Err(Failure::from_reply(&reply))
    }
}

fn parse<T: DeserializeOwned>(reply: &Reply) -> Result<T, Failure> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        Failure::wrong(
            reply, // Position only: serde's message can quote a value, and values here are credentials.
            format!("unexpected JSON at line {} column {}", e.line(), e.column()),
        )
    })
}

/// `application/x-www-form-urlencoded` pairs (also a valid query string).
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
