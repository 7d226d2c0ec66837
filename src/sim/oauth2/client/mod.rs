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

mod flow;

use flow::Flow;

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
    /// Called as each step ends (for the load tester's progress and latency figures); `None` by default.
    pub observer: Option<StepObserver>,
}

/// One step that just ended, as a [`StepObserver`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// Flow number.
    pub flow: usize,
    /// The step.
    pub step: Step,
    /// From the end of the previous step of this flow (or the flow's start) to the end of this one: the
    /// request and the client's checks of its answer.
    pub latency: Duration,
    /// Why it failed; `None` when it succeeded.
    pub failure: Option<&'a Failure>,
    /// Whether the flow ends here: a failure, or the last step its grant plans.
    pub last: bool,
}

/// A callback [`run_flows`] calls from its worker tasks as each step ends; it should be quick.
#[derive(Clone)]
pub struct StepObserver(Arc<dyn Fn(&StepEvent<'_>) + Send + Sync>);

impl StepObserver {
    /// An observer calling `f`.
    pub fn new(f: impl Fn(&StepEvent<'_>) + Send + Sync + 'static) -> Self {
        StepObserver(Arc::new(f))
    }
}

impl std::fmt::Debug for StepObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepObserver(..)")
    }
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
            observer: None,
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

    /// Report each step's end to `observer`.
    pub fn observer(mut self, observer: StepObserver) -> Self {
        self.observer = Some(observer);
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
    // `flows` is `usize::MAX` when only the deadline bounds the run.
    let mut results = Vec::with_capacity(flows.min(4_096));
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
        planned: plan.len(),
        since: tokio::time::Instant::now(),
    };
    let failure = f.play(grant, &plan).await.err();
    if let Some(failure) = &failure {
        f.observe(plan[f.done.len()], Some(failure), true);
    }
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
