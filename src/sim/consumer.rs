//! The scripted OSLC consumer (what Rational Team Concert does when it befriends a ClearQuest database).
//!
//! One flow: discovery → register a consumer key (server to server) → an administrator's browser logs in,
//! opens and submits the approval page → request token (server to server) → the user's browser opens and
//! submits the authorize page and follows the redirect to a callback this consumer serves itself → access
//! token (server to server) → three protected reads (server to server).
//!
//! Server-to-server calls carry no cookies and share **one** keep-alive connection pool across all flows, so
//! a balancer that picks a node per connection rather than per request is caught. Each browser has its own
//! client and its own cookies.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::node::{Discovery, SERVED_BY};
use super::repository::{lock, ADMIN_PASSWORD, ADMIN_USER, USER, USER_PASSWORD};
use super::signature::{
    form_encode, ClientCredentials, OAuthRequest, ParamLocation, SignedRequest,
};
use super::SimError;
use super::{random_hex, unix_now};
use crate::oauth::percent::{self, encode};
use crate::secret::Secret;

const FORM: &str = "application/x-www-form-urlencoded";

/// Where the consumer puts OAuth parameters in signed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ParamMode {
    /// Always the `Authorization` header.
    Header,
    /// Always the form body.
    Body,
    /// Always the query string.
    Query,
    /// Each signed request picks one, varied across steps and flows.
    #[default]
    Mixed,
}

impl ParamMode {
    /// The location for `step` of flow number `flow`.
    pub fn location(self, flow: usize, step: Step) -> ParamLocation {
        const ROTATION: [ParamLocation; 3] = [
            ParamLocation::Header,
            ParamLocation::Body,
            ParamLocation::Query,
        ];
        match self {
            ParamMode::Header => ParamLocation::Header,
            ParamMode::Body => ParamLocation::Body,
            ParamMode::Query => ParamLocation::Query,
            ParamMode::Mixed => ROTATION[(flow + step as usize) % ROTATION.len()],
        }
    }

    /// A lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamMode::Header => "header",
            ParamMode::Body => "body",
            ParamMode::Query => "query",
            ParamMode::Mixed => "mixed",
        }
    }
}

/// The steps of one flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `GET .../discovery` (server to server).
    Discovery,
    /// `POST oauth-request-consumer` (server to server).
    Register,
    /// Admin browser: `GET oauth-approve-consumer?key=K`.
    ApproveForm,
    /// Admin browser: `POST oauth-approve-consumer?key=K`.
    Approve,
    /// Signed `POST oauth-request-token` (server to server).
    RequestToken,
    /// User browser: `GET oauth-authorize?oauth_token=T`.
    AuthorizeForm,
    /// User browser: `POST oauth-authorize` → 302.
    Authorize,
    /// User browser follows the 302 to the consumer's own callback.
    Callback,
    /// Signed `POST oauth-access-token` (server to server).
    AccessToken,
    /// First signed protected read.
    Read1,
    /// Second signed protected read.
    Read2,
    /// Third signed protected read.
    Read3,
}

impl Step {
    /// Every step, in flow order.
    pub const ALL: [Step; 12] = [
        Step::Discovery,
        Step::Register,
        Step::ApproveForm,
        Step::Approve,
        Step::RequestToken,
        Step::AuthorizeForm,
        Step::Authorize,
        Step::Callback,
        Step::AccessToken,
        Step::Read1,
        Step::Read2,
        Step::Read3,
    ];

    /// The name shown in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discovery => "discovery",
            Step::Register => "register",
            Step::ApproveForm => "approve form",
            Step::Approve => "approve",
            Step::RequestToken => "request token",
            Step::AuthorizeForm => "authorize form",
            Step::Authorize => "authorize",
            Step::Callback => "callback",
            Step::AccessToken => "access token",
            Step::Read1 => "read 1",
            Step::Read2 => "read 2",
            Step::Read3 => "read 3",
        }
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// `oauth_problem` from `WWW-Authenticate` (or the body), if any.
    pub oauth_problem: Option<String>,
    /// Whether the body names `invalid_expired_token`, the technote's symptom.
    pub invalid_expired_token: bool,
    /// `X-Served-By` of the failing response.
    pub served_by: Option<String>,
    /// A short human description (first line of the body, or the transport error).
    pub detail: String,
}

impl Failure {
    fn local(detail: impl Into<String>) -> Self {
        Failure {
            status: None,
            oauth_problem: None,
            invalid_expired_token: false,
            served_by: None,
            detail: detail.into(),
        }
    }

    /// The reason as the report groups it: `401 consumer_key_unknown`, `401 login required`, or the error.
    pub fn reason(&self) -> String {
        match (self.status, &self.oauth_problem) {
            (Some(status), Some(problem)) => format!("{status} {problem}"),
            (Some(status), None) => format!("{status} {}", self.detail),
            (None, _) => self.detail.clone(),
        }
    }
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let _ = write!(detail, ": {s}");
            source = s.source();
        }
        Failure::local(detail)
    }
}

/// What happened to one step of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done; the node that answered (`None` for the consumer's own callback).
    Ok {
        /// `X-Served-By` of the response.
        served_by: Option<String>,
    },
    /// Failed; the flow stopped here.
    Failed(Failure),
    /// Not attempted because an earlier step failed.
    Skipped,
}

/// One flow's outcome, one entry per [`Step`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResult {
    /// Flow number, from 0.
    pub flow: usize,
    /// Every step with its outcome.
    pub steps: Vec<(Step, StepOutcome)>,
}

impl FlowResult {
    /// Whether every step succeeded.
    pub fn passed(&self) -> bool {
        self.steps
            .iter()
            .all(|(_, o)| matches!(o, StepOutcome::Ok { .. }))
    }

    /// The outcome of `step`.
    pub fn outcome(&self, step: Step) -> Option<&StepOutcome> {
        self.steps.iter().find(|(s, _)| *s == step).map(|(_, o)| o)
    }

    /// The node that answered `step` (`X-Served-By`), when it was reached.
    pub fn served_by(&self, step: Step) -> Option<&str> {
        match self.outcome(step)? {
            StepOutcome::Ok { served_by } => served_by.as_deref(),
            StepOutcome::Failed(f) => f.served_by.as_deref(),
            StepOutcome::Skipped => None,
        }
    }

    /// The failing step and why, if the flow failed.
    pub fn failure(&self) -> Option<(Step, &Failure)> {
        self.steps.iter().find_map(|(s, o)| match o {
            StepOutcome::Failed(f) => Some((*s, f)),
            _ => None,
        })
    }
}

/// Totals for one step across flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    /// The step.
    pub step: Step,
    /// Flows where it succeeded.
    pub ok: usize,
    /// Flows where it failed.
    pub failed: usize,
    /// Flows that never reached it.
    pub skipped: usize,
    /// `X-Served-By` → responses (successful or not) from that node.
    pub nodes: BTreeMap<String, usize>,
    /// Failure reason → count.
    pub reasons: BTreeMap<String, usize>,
}

/// The outcome of [`run_flows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowReport {
    /// The base URL the flows ran against.
    pub target: String,
    /// Where OAuth parameters travelled.
    pub params: ParamMode,
    /// One entry per flow, by flow number.
    pub flows: Vec<FlowResult>,
}

impl FlowReport {
    /// Flows where every step succeeded.
    pub fn passed(&self) -> usize {
        self.flows.iter().filter(|f| f.passed()).count()
    }

    /// Flows with a failed step.
    pub fn failed(&self) -> usize {
        self.flows.len() - self.passed()
    }

    /// Totals for one step.
    pub fn step(&self, step: Step) -> StepSummary {
        let mut s = StepSummary {
            step,
            ok: 0,
            failed: 0,
            skipped: 0,
            nodes: BTreeMap::new(),
            reasons: BTreeMap::new(),
        };
        for outcome in self.flows.iter().filter_map(|f| f.outcome(step)) {
            match outcome {
                StepOutcome::Ok { served_by } => {
                    s.ok += 1;
                    if let Some(node) = served_by {
                        *s.nodes.entry(node.clone()).or_default() += 1;
                    }
                }
                StepOutcome::Failed(f) => {
                    s.failed += 1;
                    if let Some(node) = &f.served_by {
                        *s.nodes.entry(node.clone()).or_default() += 1;
                    }
                    *s.reasons.entry(f.reason()).or_default() += 1;
                }
                StepOutcome::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Totals for every step, in flow order.
    pub fn steps(&self) -> Vec<StepSummary> {
        Step::ALL.iter().map(|s| self.step(*s)).collect()
    }

    /// Failure reason → count, over all steps.
    pub fn reasons(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (_, f) in self.flows.iter().filter_map(FlowResult::failure) {
            *out.entry(f.reason()).or_default() += 1;
        }
        out
    }

    /// An aligned text table (step, ok, failed, skipped, nodes used, top failure reasons) ending with the
    /// line `N passed, M failed`.
    pub fn render_table(&self) -> String {
        let header = ["step", "ok", "failed", "skipped", "nodes", "failures"];
        let mut rows: Vec<[String; 6]> = Vec::new();
        for s in self.steps() {
            let nodes = if s.nodes.is_empty() {
                "-".to_string()
            } else {
                s.nodes
                    .iter()
                    .map(|(n, c)| format!("{n}:{c}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut reasons: Vec<(&String, &usize)> = s.reasons.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let failures = reasons
                .iter()
                .take(3)
                .map(|(r, c)| format!("{r} ({c})"))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push([
                s.step.as_str().to_string(),
                s.ok.to_string(),
                s.failed.to_string(),
                s.skipped.to_string(),
                nodes,
                failures,
            ]);
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "{} flows against {} (params: {})\n",
            self.flows.len(),
            self.target,
            self.params.as_str()
        );
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Text columns left-aligned, counts right-aligned.
                let _ = match i {
                    1..=3 => write!(l, "{cell:>w$}  "),
                    _ => write!(l, "{cell:<w$}  "),
                };
            }
            l.trim_end().to_string() + "\n"
        };
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
        let _ = write!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }
}

/// What [`run_flows`] does.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Base URL of the provider or proxy (`http://host:port`, or `https://` with [`FlowOptions::ca_pem`]).
    pub target: String,
    /// Number of flows.
    pub flows: usize,
    /// Flows in flight at once.
    pub concurrency: usize,
    /// Where OAuth parameters travel.
    pub params: ParamMode,
    /// Repository (schema) name in the discovery URL.
    pub db: String,
    /// The administrator who approves keys.
    pub admin_user: String,
    /// The administrator's password.
    pub admin_password: Secret,
    /// The user who authorizes tokens.
    pub user: String,
    /// The user's password.
    pub user_password: Secret,
    /// PEM of CA certificates trusted for `https` targets.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Called as each step ends (for live progress and latency figures); `None` by default.
    pub observer: Option<StepObserver>,
    /// No flow starts after this instant (flows already running finish); `None` by default.
    pub deadline: Option<tokio::time::Instant>,
}

/// One step that just ended, as a [`StepObserver`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// Flow number.
    pub flow: usize,
    /// The step.
    pub step: Step,
    /// From the end of the previous step of this flow (or the flow's start) to the end of this one: the
    /// request and the consumer's own preparation for it (signing, a browser's client).
    pub latency: Duration,
    /// Why it failed; `None` when it succeeded. A failed step ends its flow, and so does [`Step::Read3`].
    pub failure: Option<&'a Failure>,
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

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            target: String::new(),
            flows: 10,
            concurrency: 4,
            params: ParamMode::Mixed,
            db: "cqschema".to_string(),
            admin_user: ADMIN_USER.to_string(),
            admin_password: Secret::new(ADMIN_PASSWORD),
            user: USER.to_string(),
            user_password: Secret::new(USER_PASSWORD),
            ca_pem: None,
            timeout: Duration::from_secs(10),
            observer: None,
            deadline: None,
        }
    }
}

impl FlowOptions {
    /// Defaults against `target`.
    pub fn new(target: impl Into<String>) -> Self {
        FlowOptions {
            target: target.into(),
            ..FlowOptions::default()
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

    /// Where OAuth parameters travel.
    pub fn params(mut self, mode: ParamMode) -> Self {
        self.params = mode;
        self
    }

    /// Trust these CA certificates (PEM) for `https` targets.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Report each step to `observer` as it ends.
    pub fn observer(mut self, observer: StepObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Start no flow after `deadline`.
    pub fn deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// `X-Served-By`.
    pub fn served_by(&self) -> Option<String> {
        header_string(&self.headers, SERVED_BY)
    }

    /// `oauth_problem` from `WWW-Authenticate: OAuth ...`, else from an `oauth_problem=` body line.
    pub fn oauth_problem(&self) -> Option<String> {
        let from_header = self
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| super::signature::parse_authorization(v).ok().flatten())
            .find_map(|h| {
                h.params
                    .into_iter()
                    .find(|(n, _)| n == "oauth_problem")
                    .map(|(_, v)| v)
            });
        from_header.or_else(|| {
            self.text()
                .lines()
                .find_map(|l| l.trim().strip_prefix("oauth_problem="))
                .and_then(|v| percent::decode(v).ok())
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// This reply as a step failure.
    pub fn failure(&self) -> Failure {
        let text = self.text();
        let mut detail: String = text
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(60)
            .collect();
        if detail.is_empty() {
            detail = self
                .status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string();
        }
        Failure {
            status: Some(self.status.as_u16()),
            oauth_problem: self.oauth_problem(),
            invalid_expired_token: text.contains("invalid_expired_token"),
            served_by: self.served_by(),
            detail,
        }
    }

    fn expect(self, status: StatusCode) -> Result<Reply, Failure> {
        if self.status == status {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A value from a step and the node that served it.
#[derive(Debug, Clone)]
pub struct Served<T> {
    /// The value.
    pub value: T,
    /// `X-Served-By`.
    pub served_by: Option<String>,
}

/// A token and its secret, as a node hands them out.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// `oauth_token`.
    pub token: String,
    /// `oauth_token_secret`.
    pub secret: Secret,
}

/// Builds the rustls client configuration, trusting the CA certificates in `ca_pem` (none: `https` fails).
pub fn tls_client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SimError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(SimError::CaPem)?)
                .map_err(SimError::Tls)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SimError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP/1.1 client with its own keep-alive pool (`http` and `https`). Clones share the pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client with a fresh pool.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
        body: Option<(&str, String)>,
    ) -> Result<Reply, SimError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body)?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| SimError::Request {
                        url: url.to_string(),
                        source,
                    })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|source| SimError::Body {
                    url: url.to_string(),
                    source,
                })?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SimError::Timeout {
                url: url.to_string(),
            })?
    }

    /// Sends a signed request as signed (URL, `Authorization`, form body).
    pub async fn send_signed(&self, signed: &SignedRequest) -> Result<Reply, SimError> {
        let method = Method::from_bytes(signed.method.as_bytes())
            .map_err(|e| SimError::BuildRequest(e.into()))?;
        let headers: Vec<(http::HeaderName, String)> = signed
            .authorization
            .iter()
            .map(|a| (AUTHORIZATION, a.clone()))
            .collect();
        let body = signed.body.clone().map(|b| (FORM, b));
        self.send(method, &signed.url, &headers, body).await
    }

    /// `GET {target}/cqweb/oslc/repo/{db}/discovery`.
    pub async fn discover(&self, target: &str, db: &str) -> Result<Served<Discovery>, Failure> {
        let url = format!(
            "{}/cqweb/oslc/repo/{}/discovery",
            target.trim_end_matches('/'),
            encode(db)
        );
        let reply = self
            .send(Method::GET, &url, &[], None)
            .await?
            .expect(StatusCode::OK)?;
        let value = serde_json::from_slice(&reply.body)
            .map_err(|e| Failure::local(format!("bad discovery document: {e}")))?;
        Ok(Served {
            value,
            served_by: reply.served_by(),
        })
    }

    /// `POST` JSON `{"name", "secret"}` to the registration URL; returns the provisional key.
    pub async fn register_consumer(
        &self,
        url: &str,
        name: &str,
        secret: &Secret,
    ) -> Result<Served<String>, Failure> {
        let body = serde_json::json!({ "name": name, "secret": secret.expose() }).to_string();
        let reply = self
            .send(Method::POST, url, &[], Some(("application/json", body)))
            .await?
            .expect(StatusCode::OK)?;
        let key = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("key")?.as_str().map(str::to_string))
            .ok_or_else(|| Failure::local("registration answer has no key"))?;
        Ok(Served {
            value: key,
            served_by: reply.served_by(),
        })
    }

    /// Signed `POST` to the request-token URL with `oauth_callback`.
    pub async fn request_token(
        &self,
        url: &str,
        creds: &ClientCredentials,
        callback: &str,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let req = OAuthRequest::new("POST", url).oauth_param("oauth_callback", callback);
        self.token_exchange(req, creds, location).await
    }

    /// Signed `POST` to the access-token URL with the request token and `oauth_verifier`.
    pub async fn access_token(
        &self,
        url: &str,
        creds: &ClientCredentials,
        verifier: &str,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let req = OAuthRequest::new("POST", url).oauth_param("oauth_verifier", verifier);
        self.token_exchange(req, creds, location).await
    }

    async fn token_exchange(
        &self,
        req: OAuthRequest,
        creds: &ClientCredentials,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let signed = sign_now(&req, creds, location)?;
        let reply = self.send_signed(&signed).await?.expect(StatusCode::OK)?;
        let pairs = percent::parse_form(&reply.body)
            .map_err(|e| Failure::local(format!("bad token answer: {e}")))?;
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let (Some(token), Some(secret)) = (get("oauth_token"), get("oauth_token_secret")) else {
            return Err(Failure::local(
                "token answer lacks oauth_token or oauth_token_secret",
            ));
        };
        Ok(Served {
            value: TokenPair {
                token,
                secret: Secret::new(secret),
            },
            served_by: reply.served_by(),
        })
    }

    /// A signed read of a protected resource (`GET`, or `POST` when the parameters travel in the body).
    pub async fn read_resource(
        &self,
        url: &str,
        creds: &ClientCredentials,
        location: ParamLocation,
    ) -> Result<Served<serde_json::Value>, Failure> {
        let method = if location == ParamLocation::Body {
            "POST"
        } else {
            "GET"
        };
        let signed = sign_now(&OAuthRequest::new(method, url), creds, location)?;
        let reply = self.send_signed(&signed).await?.expect(StatusCode::OK)?;
        let value = serde_json::from_slice(&reply.body)
            .map_err(|e| Failure::local(format!("bad resource document: {e}")))?;
        Ok(Served {
            value,
            served_by: reply.served_by(),
        })
    }
}

/// Signs with a fresh nonce and the current time.
pub fn sign_now(
    req: &OAuthRequest,
    creds: &ClientCredentials,
    location: ParamLocation,
) -> Result<SignedRequest, SimError> {
    Ok(req
        .clone()
        .realm(super::node::REALM)
        .sign(creds, location, &random_hex(12), unix_now())?)
}

/// A browser: its own connection pool and its own cookie jar (cookies are kept by name, for every host:
/// the consumer talks to one provider).
#[derive(Debug)]
pub struct Browser {
    http: HttpClient,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        Browser {
            http: HttpClient::new(tls, timeout),
            cookies: BTreeMap::new(),
        }
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<(&str, String)>,
    ) -> Result<Reply, SimError> {
        let mut headers = Vec::new();
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push((COOKIE, jar));
        }
        let reply = self.http.send(method, url, &headers, body).await?;
        for value in reply.headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or("");
            if let Some((n, v)) = pair.trim().split_once('=') {
                self.cookies.insert(n.to_string(), v.to_string());
            }
        }
        Ok(reply)
    }

    /// `GET url`.
    pub async fn get(&mut self, url: &str) -> Result<Reply, SimError> {
        self.send(Method::GET, url, None).await
    }

    /// `POST url` with a form body.
    pub async fn post_form(
        &mut self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<Reply, SimError> {
        self.send(Method::POST, url, Some((FORM, form_encode(form))))
            .await
    }

    /// Form login; keeps the session cookie.
    pub async fn login(
        &mut self,
        url: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<()>, Failure> {
        let form = [
            ("username".to_string(), user.to_string()),
            ("password".to_string(), password.expose().to_string()),
        ];
        let reply = self.post_form(url, &form).await?.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `POST` on the approval URL for `key` with administrator credentials typed into the prompt.
    pub async fn approve_with_credentials(
        &mut self,
        url: &str,
        key: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<()>, Failure> {
        let url = with_query(url, &[("key", key)]);
        let form = [
            ("username".to_string(), user.to_string()),
            ("password".to_string(), password.expose().to_string()),
            ("approve".to_string(), "yes".to_string()),
        ];
        let reply = self.post_form(&url, &form).await?.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `GET` (form) or `POST` (approve) on the approval URL for `key`.
    pub async fn approve(
        &mut self,
        url: &str,
        key: &str,
        submit: bool,
    ) -> Result<Served<()>, Failure> {
        let url = with_query(url, &[("key", key)]);
        let reply = if submit {
            self.post_form(&url, &[("approve".into(), "yes".into())])
                .await?
        } else {
            self.get(&url).await?
        };
        let reply = reply.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `GET` the authorize page for a request token.
    pub async fn authorize_form(&mut self, url: &str, token: &str) -> Result<Served<()>, Failure> {
        let reply = self
            .get(&with_query(url, &[("oauth_token", token)]))
            .await?
            .expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `POST` the authorize page with the user's credentials; returns the redirect `Location`.
    pub async fn authorize(
        &mut self,
        url: &str,
        token: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<String>, Failure> {
        let form = [
            ("oauth_token".to_string(), token.to_string()),
            ("username".to_string(), user.to_string()),
            ("password".to_string(), password.expose().to_string()),
        ];
        let reply = self
            .post_form(url, &form)
            .await?
            .expect(StatusCode::FOUND)?;
        let location = header_string(&reply.headers, LOCATION.as_str())
            .ok_or_else(|| Failure::local("302 without Location"))?;
        Ok(Served {
            value: location,
            served_by: reply.served_by(),
        })
    }
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let query = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{url}{sep}{query}")
}

/// The consumer's own callback endpoint on `127.0.0.1:0`: records `oauth_token` → `oauth_verifier`.
#[derive(Debug)]
pub struct CallbackServer {
    url: String,
    verifiers: Arc<Mutex<HashMap<String, String>>>,
    task: JoinHandle<()>,
}

impl CallbackServer {
    /// Binds `127.0.0.1:0` and serves `GET /callback?...&oauth_token=T&oauth_verifier=V`.
    pub async fn start() -> Result<CallbackServer, SimError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let verifiers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let task = tokio::spawn(callback_loop(listener, verifiers.clone()));
        Ok(CallbackServer {
            url: format!("http://{local}/callback"),
            verifiers,
            task,
        })
    }

    /// The callback URL (without query).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes the verifier delivered for `token`, if the browser got there.
    pub fn take_verifier(&self, token: &str) -> Option<String> {
        lock(&self.verifiers).remove(token)
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn callback_loop(listener: TcpListener, verifiers: Arc<Mutex<HashMap<String, String>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let verifiers = verifiers.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let verifiers = verifiers.clone();
                        async move { Ok::<_, Infallible>(callback(&verifiers, req.uri())) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn callback(verifiers: &Mutex<HashMap<String, String>>, uri: &http::Uri) -> Response<Full<Bytes>> {
    let pairs = uri
        .query()
        .and_then(|q| percent::parse_form(q.as_bytes()).ok())
        .unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (status, body) = match (uri.path(), get("oauth_token"), get("oauth_verifier")) {
        ("/callback", Some(token), Some(verifier)) => {
            lock(verifiers).insert(token, verifier);
            (StatusCode::OK, "linked")
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "missing oauth_token or oauth_verifier",
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

struct FlowContext {
    opts: FlowOptions,
    target: String,
    tls: rustls::ClientConfig,
    s2s: HttpClient,
    callback: CallbackServer,
}

/// Reads a PEM CA bundle for [`FlowOptions::ca_pem`]; the error names the file.
pub async fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, SimError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| SimError::CaFile {
            path: path.display().to_string(),
            source,
        })
}

/// Runs `opts.flows` friendship flows against `opts.target`, `opts.concurrency` at a time.
///
/// Errors only when the run cannot start (bad target URL, CA PEM, callback listener); every failure of the
/// provider is recorded in the report instead.
pub async fn run_flows(opts: FlowOptions) -> Result<FlowReport, SimError> {
    let target = opts.target.trim_end_matches('/').to_string();
    let uri: http::Uri = target
        .parse()
        .map_err(|_| SimError::InvalidUrl(opts.target.clone()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(SimError::InvalidUrl(opts.target.clone()));
    }
    let tls = tls_client_config(opts.ca_pem.as_deref())?;
    let ctx = Arc::new(FlowContext {
        s2s: HttpClient::new(tls.clone(), opts.timeout),
        callback: CallbackServer::start().await?,
        target: target.clone(),
        tls,
        opts,
    });
    let flows = ctx.opts.flows;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..ctx.opts.concurrency.clamp(1, flows.max(1)) {
        let ctx = ctx.clone();
        let next = next.clone();
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
    results.sort_by_key(|r: &FlowResult| r.flow);
    Ok(FlowReport {
        target,
        params: ctx.opts.params,
        flows: results,
    })
}

async fn run_flow(ctx: &FlowContext, flow: usize) -> FlowResult {
    let mut record = StepRecord {
        steps: Vec::with_capacity(Step::ALL.len()),
        flow,
        observer: ctx.opts.observer.as_ref(),
        since: Instant::now(),
    };
    let outcome = flow_steps(ctx, flow, &mut record).await;
    let mut steps = record.steps;
    if let Err((step, failure)) = outcome {
        steps.push((step, StepOutcome::Failed(failure)));
    }
    for step in Step::ALL.iter().skip(steps.len()) {
        steps.push((*step, StepOutcome::Skipped));
    }
    FlowResult { flow, steps }
}

/// The successful steps of one flow so far, and the clock and observer each step's end is reported to.
struct StepRecord<'a> {
    steps: Vec<(Step, StepOutcome)>,
    flow: usize,
    observer: Option<&'a StepObserver>,
    since: Instant,
}

/// Runs the steps in order, recording each success; the first failure is returned with its step.
async fn flow_steps(
    ctx: &FlowContext,
    flow: usize,
    steps: &mut StepRecord<'_>,
) -> Result<(), (Step, Failure)> {
    fn done<T>(
        record: &mut StepRecord<'_>,
        step: Step,
        result: Result<Served<T>, Failure>,
    ) -> Result<T, (Step, Failure)> {
        if let Some(observer) = record.observer {
            let now = Instant::now();
            (observer.0)(&StepEvent {
                flow: record.flow,
                step,
                latency: now - record.since,
                failure: result.as_ref().err(),
            });
            record.since = now;
        }
        match result {
            Ok(served) => {
                record.steps.push((
                    step,
                    StepOutcome::Ok {
                        served_by: served.served_by,
                    },
                ));
                Ok(served.value)
            }
            Err(f) => Err((step, f)),
        }
    }
    let opts = &ctx.opts;
    let s2s = &ctx.s2s;
    let loc = |step| opts.params.location(flow, step);

    let discovery = done(
        steps,
        Step::Discovery,
        s2s.discover(&ctx.target, &opts.db).await,
    )?;
    let secret = Secret::new(random_hex(16));
    let name = format!("rtc-flow-{flow}");
    let key = done(
        steps,
        Step::Register,
        s2s.register_consumer(&discovery.oauth_request_consumer_key_url, &name, &secret)
            .await,
    )?;

    // The technote's step 2: the administrator follows the "grant access" link and types credentials into
    // the prompt (no prior login, so no session pins the browser to a node).
    let mut admin = Browser::new(ctx.tls.clone(), opts.timeout);
    let approval = &discovery.oauth_approval_module_url;
    let r = admin.approve(approval, &key, false).await;
    done(steps, Step::ApproveForm, r)?;
    let r = admin
        .approve_with_credentials(approval, &key, &opts.admin_user, &opts.admin_password)
        .await;
    done(steps, Step::Approve, r)?;

    let creds = ClientCredentials::consumer(key, secret);
    let callback = format!("{}?flow={flow}", ctx.callback.url());
    let request = done(
        steps,
        Step::RequestToken,
        s2s.request_token(
            &discovery.oauth_request_token_url,
            &creds,
            &callback,
            loc(Step::RequestToken),
        )
        .await,
    )?;

    let mut browser = Browser::new(ctx.tls.clone(), opts.timeout);
    let authorize = &discovery.oauth_user_authorization_url;
    let r = browser.authorize_form(authorize, &request.token).await;
    done(steps, Step::AuthorizeForm, r)?;
    let r = browser
        .authorize(authorize, &request.token, &opts.user, &opts.user_password)
        .await;
    let location = done(steps, Step::Authorize, r)?;
    let r = async {
        browser.get(&location).await?.expect(StatusCode::OK)?;
        let verifier = ctx
            .callback
            .take_verifier(&request.token)
            .ok_or_else(|| Failure::local("callback did not deliver a verifier for the token"))?;
        Ok(Served {
            value: verifier,
            served_by: None,
        })
    }
    .await;
    let verifier = done(steps, Step::Callback, r)?;

    let creds_request = creds.with_token(&request.token, request.secret);
    let access = done(
        steps,
        Step::AccessToken,
        s2s.access_token(
            &discovery.oauth_access_token_url,
            &creds_request,
            &verifier,
            loc(Step::AccessToken),
        )
        .await,
    )?;

    let creds_access = creds.with_token(access.token, access.secret);
    for (n, step) in [Step::Read1, Step::Read2, Step::Read3]
        .into_iter()
        .enumerate()
    {
        let url = format!("{}flow-{flow}-{}", discovery.resource_url, n + 1);
        let r = s2s.read_resource(&url, &creds_access, loc(step)).await;
        done(steps, step, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> FlowReport {
        let ok = |node: &str| StepOutcome::Ok {
            served_by: Some(node.to_string()),
        };
        let passed = FlowResult {
            flow: 0,
            steps: Step::ALL.iter().map(|s| (*s, ok("lbcq_1"))).collect(),
        };
        let mut steps: Vec<(Step, StepOutcome)> =
            Step::ALL[..5].iter().map(|s| (*s, ok("lbcq_2"))).collect();
        steps.push((
            Step::AuthorizeForm,
            StepOutcome::Failed(Failure {
                status: Some(401),
                oauth_problem: Some("token_rejected".into()),
                invalid_expired_token: true,
                served_by: Some("lbcq_3".into()),
                detail: "401: invalid_expired_token".into(),
            }),
        ));
        steps.extend(Step::ALL[6..].iter().map(|s| (*s, StepOutcome::Skipped)));
        FlowReport {
            target: "http://127.0.0.1:1".into(),
            params: ParamMode::Mixed,
            flows: vec![passed, FlowResult { flow: 1, steps }],
        }
    }

    #[test]
    fn report_counts_steps_nodes_and_reasons() {
        let r = report();
        assert_eq!((r.passed(), r.failed()), (1, 1));
        let s = r.step(Step::AuthorizeForm);
        assert_eq!((s.ok, s.failed, s.skipped), (1, 1, 0));
        assert_eq!(s.nodes.get("lbcq_3"), Some(&1));
        assert_eq!(s.reasons.get("401 token_rejected"), Some(&1));
        assert_eq!(r.step(Step::Read3).skipped, 1);
        assert_eq!(r.reasons().get("401 token_rejected"), Some(&1));
    }

    #[test]
    fn table_is_aligned_and_ends_with_the_totals_line() {
        let table = report().render_table();
        assert!(table.ends_with("\n1 passed, 1 failed"), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("step"));
        let failures_col = lines[1].find("failures").unwrap();
        let row = lines
            .iter()
            .find(|l| l.starts_with("authorize form"))
            .unwrap();
        assert_eq!(row.find("401 token_rejected (1)"), Some(failures_col));
        assert!(row.contains("lbcq_2:1 lbcq_3:1") || row.contains("lbcq_1:1 lbcq_3:1"));
    }

    #[test]
    fn mixed_mode_varies_location_across_steps_and_flows() {
        let m = ParamMode::Mixed;
        assert_ne!(
            m.location(0, Step::RequestToken),
            m.location(0, Step::Read1)
        );
        assert_ne!(
            m.location(0, Step::RequestToken),
            m.location(1, Step::RequestToken)
        );
        assert_eq!(
            ParamMode::Body.location(5, Step::Read2),
            ParamLocation::Body
        );
    }

    #[test]
    fn reply_reads_the_problem_from_www_authenticate() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("OAuth realm=\"cqweb\", oauth_problem=\"nonce_used\""),
        );
        let reply = Reply {
            status: StatusCode::UNAUTHORIZED,
            headers,
            body: Bytes::from_static(b"401: nonce_used\n"),
        };
        assert_eq!(reply.failure().reason(), "401 nonce_used");
    }
}
