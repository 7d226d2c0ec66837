//! The scripted OAuth 2 / OpenID Connect client: each flow registers its own client (RFC 7591) and plays
//! one grant as a sequence of steps, checking every answer as a careful client would (state, nonce, PKCE,
//! id_token signature and `at_hash`, refresh-token rotation, introspection before and after revocation).
//!
//! Flow `n` plays `grants[n % grants.len()]` with `auth[(n / grants.len()) % auth.len()]`, so a run covers
//! every combination in a fixed order. Server-to-server calls share one keep-alive pool and carry no
//! cookies; each flow's user has a browser with its own pool and cookie jar. Redirect URIs are never
//! fetched: the client reads `Location` itself, so they name an address nobody listens on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, LOCATION};
use http::{HeaderName, Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use super::report::{Failure, FlowReport, FlowResult, Step, StepOutcome};
use super::wire::{self, auth_method, error, grant};
use super::{basic, jwt, pkce};
use crate::oauth::percent::encode;
use crate::secret::Secret;
use crate::sim::consumer::{tls_client_config, Browser, HttpClient, Reply};
use crate::sim::random_hex;
use crate::sim::repository::{USER, USER_PASSWORD};
use crate::sim::SimError;

/// Where the authorization server sends the browser back; never fetched.
pub const REDIRECT_URI: &str = "http://client.invalid/cb";
/// Where end-session sends the browser back; never fetched.
pub const LOGOUT_REDIRECT_URI: &str = "http://client.invalid/logged-out";

const FORM: &str = "application/x-www-form-urlencoded";

/// The grant a flow plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Grant {
    /// Authorization code with PKCE `S256` and OpenID Connect (nonce, id_token, userinfo, refresh).
    Code,
    /// Client credentials.
    ClientCredentials,
    /// RFC 8628 device authorization grant.
    Device,
}

/// How the client authenticates at the token, revocation, introspection, device and PAR endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum AuthMethod {
    /// `client_secret_basic`: `Authorization: Basic` with form-encoded parts (RFC 6749 §2.3.1).
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

impl AuthMethod {
    /// The RFC 7591 `token_endpoint_auth_method` name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Basic => auth_method::BASIC,
            AuthMethod::Post => auth_method::POST,
        }
    }
}

/// What [`run_flows`] does.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Base URL of a node or a proxy (`http://host:port`).
    pub target: String,
    /// Number of flows.
    pub flows: usize,
    /// Flows in flight at once.
    pub concurrency: usize,
    /// Grants, played in turn.
    pub grants: Vec<Grant>,
    /// Client authentication methods, played in turn (see the module doc).
    pub auth: Vec<AuthMethod>,
    /// RFC 7592: read the client configuration after registering.
    pub read_client: bool,
    /// RFC 9126: code flows push their authorization request first.
    pub par: bool,
    /// RFC 7662 / 7009: introspect, revoke, introspect again.
    pub introspection: bool,
    /// Code flows end with an OpenID Connect end-session.
    pub end_session: bool,
    /// The user who logs in.
    pub user: String,
    /// The user's password.
    pub password: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// No flow starts after this instant; `None` by default.
    pub deadline: Option<tokio::time::Instant>,
}

impl FlowOptions {
    /// Every grant, both authentication methods, every optional step, against `target`.
    pub fn new(target: impl Into<String>) -> Self {
        FlowOptions {
            target: target.into(),
            flows: 6,
            concurrency: 4,
            grants: vec![Grant::Code, Grant::ClientCredentials, Grant::Device],
            auth: vec![AuthMethod::Basic, AuthMethod::Post],
            read_client: true,
            par: false,
            introspection: true,
            end_session: true,
            user: USER.to_string(),
            password: Secret::new(USER_PASSWORD),
            timeout: Duration::from_secs(10),
            deadline: None,
        }
    }

    /// Number of flows.
    pub fn flows(mut self, n: usize) -> Self {
        self.flows = n;
        self
    }

    /// Flows in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Only these grants, in turn.
    pub fn grants(mut self, grants: &[Grant]) -> Self {
        self.grants = grants.to_vec();
        self
    }

    /// Only these authentication methods, in turn.
    pub fn auth(mut self, methods: &[AuthMethod]) -> Self {
        self.auth = methods.to_vec();
        self
    }

    /// Code flows use PAR.
    pub fn par(mut self, on: bool) -> Self {
        self.par = on;
        self
    }

    /// Only the steps of RFC 6749/6750/7591/7636 and OpenID Connect Core: no RFC 7592 read, no PAR, no
    /// introspection or revocation, no end-session.
    pub fn core_only(mut self) -> Self {
        self.read_client = false;
        self.par = false;
        self.introspection = false;
        self.end_session = false;
        self
    }

    /// Start no flow after `deadline`.
    pub fn deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The steps flow `grant` plays under these options, in order.
    pub fn plan(&self, grant: Grant) -> Vec<Step> {
        let mut steps = vec![Step::Discovery, Step::Register];
        if self.read_client {
            steps.push(Step::ReadClient);
        }
        match grant {
            Grant::Code => {
                if self.par {
                    steps.push(Step::Par);
                }
                steps.extend([Step::AuthorizeForm, Step::Authorize, Step::CodeExchange]);
                steps.extend([Step::Userinfo, Step::Refresh]);
            }
            Grant::ClientCredentials => steps.push(Step::ClientCredentials),
            Grant::Device => {
                steps.extend([
                    Step::DeviceAuthorization,
                    Step::DevicePending,
                    Step::DeviceApprove,
                    Step::DeviceToken,
                    Step::Userinfo,
                    Step::Refresh,
                ]);
            }
        }
        if self.introspection {
            steps.extend([Step::Introspect, Step::Revoke, Step::IntrospectRevoked]);
        }
        if self.end_session && grant == Grant::Code {
            steps.push(Step::EndSession);
        }
        steps
    }

    fn flow_kind(&self, flow: usize) -> (Grant, AuthMethod) {
        let grants = self.grants.len().max(1);
        let grant = self
            .grants
            .get(flow % grants)
            .copied()
            .unwrap_or(Grant::Code);
        let auth = self
            .auth
            .get((flow / grants) % self.auth.len().max(1))
            .copied()
            .unwrap_or(AuthMethod::Basic);
        (grant, auth)
    }
}

/// Runs `opts.flows` flows against `opts.target`, `opts.concurrency` at a time.
///
/// Errors only when the run cannot start (a bad target URL); every failure of the server is recorded in
/// the report instead.
pub async fn run_flows(opts: FlowOptions) -> Result<FlowReport, SimError> {
    let target = opts.target.trim_end_matches('/').to_string();
    let uri: http::Uri = target
        .parse()
        .map_err(|_| SimError::InvalidUrl(opts.target.clone()))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(SimError::InvalidUrl(opts.target.clone()));
    }
    let tls = tls_client_config(None)?;
    let ctx = Arc::new(Context {
        s2s: HttpClient::new(tls.clone(), opts.timeout),
        tls,
        target: target.clone(),
        opts,
    });
    let flows = ctx.opts.flows;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..ctx.opts.concurrency.clamp(1, flows.max(1)) {
        let (ctx, next) = (ctx.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let flow = next.fetch_add(1, Ordering::Relaxed);
                let late = ctx
                    .opts
                    .deadline
                    .is_some_and(|d| tokio::time::Instant::now() >= d);
                if flow >= flows || late {
                    break done;
                }
                done.push(run_flow(&ctx, flow).await);
            }
        });
    }
    let mut results = Vec::with_capacity(flows);
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(done) => results.extend(done),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    results.sort_by_key(|r| r.flow);
    Ok(FlowReport {
        target,
        flows: results,
    })
}

struct Context {
    opts: FlowOptions,
    target: String,
    tls: rustls::ClientConfig,
    s2s: HttpClient,
}

async fn run_flow(ctx: &Context, flow: usize) -> FlowResult {
    let (grant, auth) = ctx.opts.flow_kind(flow);
    let plan = ctx.opts.plan(grant);
    let mut f = Flow {
        ctx,
        flow,
        auth,
        browser: Browser::new(ctx.tls.clone(), ctx.opts.timeout),
        done: Vec::with_capacity(plan.len()),
    };
    let failure = f.play(grant, &plan).await.err();
    let mut steps = f.done;
    if let Some(failure) = failure {
        steps.push((plan[steps.len()], StepOutcome::Failed(failure)));
    }
    for step in plan.iter().skip(steps.len()) {
        steps.push((*step, StepOutcome::Skipped));
    }
    FlowResult {
        flow,
        grant,
        auth,
        steps,
    }
}

/// What the client holds after registering.
struct Registered {
    info: wire::ClientInformation,
}

/// The tokens the client holds.
struct Tokens {
    access: String,
    refresh: Option<String>,
    id_token: Option<String>,
}

/// One flow in progress: the steps done so far and the browser of its user.
struct Flow<'a> {
    ctx: &'a Context,
    flow: usize,
    auth: AuthMethod,
    browser: Browser,
    done: Vec<(Step, StepOutcome)>,
}

impl Flow<'_> {
    fn ok(&mut self, step: Step, reply: &Reply) {
        self.done.push((
            step,
            StepOutcome::Ok {
                served_by: reply.served_by(),
            },
        ));
    }

    async fn play(&mut self, grant: Grant, plan: &[Step]) -> Result<(), Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_cover_every_grant_with_every_auth_method_in_turn() {
        let opts = FlowOptions::new("http://127.0.0.1:1");
        let kinds: Vec<(Grant, AuthMethod)> = (0..6).map(|n| opts.flow_kind(n)).collect();
        assert_eq!(kinds[0], (Grant::Code, AuthMethod::Basic));
        assert_eq!(kinds[2], (Grant::Device, AuthMethod::Basic));
        assert_eq!(kinds[4], (Grant::ClientCredentials, AuthMethod::Post));
        let distinct: std::collections::HashSet<_> = kinds.into_iter().collect();
        assert_eq!(distinct.len(), 6);
    }

    #[test]
    fn core_only_plans_leave_out_the_extension_endpoints() {
        let opts = FlowOptions::new("http://x").core_only();
        assert_eq!(
            opts.plan(Grant::Code),
            [
                Step::Discovery,
                Step::Register,
                Step::AuthorizeForm,
                Step::Authorize,
                Step::CodeExchange,
                Step::Userinfo,
                Step::Refresh
            ]
        );
        let full = FlowOptions::new("http://x").par(true);
        let plan = full.plan(Grant::Code);
        assert!(
            plan.contains(&Step::Par)
                && plan.ends_with(&[Step::IntrospectRevoked, Step::EndSession])
        );
        assert!(!full
            .plan(Grant::ClientCredentials)
            .contains(&Step::EndSession));
    }
}
