//! What [`super::run_flows`] does: target, counts, where OAuth parameters travel, the people who approve and
//! authorize, TLS trust, timeouts, a deadline, and an observer told as each step ends.

use std::sync::Arc;
use std::time::Duration;

use super::super::repository::{ADMIN_PASSWORD, ADMIN_USER, USER, USER_PASSWORD};
use super::super::signature::ParamLocation;
use super::report::{Failure, Step};
use super::resolve::Resolve;
#[cfg(doc)]
use super::run_flows;
use crate::secret::Secret;

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

/// What [`run_flows`] does.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Base URL of the provider or proxy (`http://host:port`, or `https://` with [`FlowOptions::ca_pem`]).
    pub target: String,
    /// Number of flows; `usize::MAX` with a [`FlowOptions::deadline`] runs flows until the deadline.
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
    /// Accept any server certificate (curl's `--insecure`); overrides [`FlowOptions::ca_pem`].
    pub insecure: bool,
    /// Dial these addresses for their hosts and ports (curl's `--resolve`).
    pub resolve: Vec<Resolve>,
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
pub struct StepObserver(pub(super) Arc<dyn Fn(&StepEvent<'_>) + Send + Sync>);

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
            insecure: false,
            resolve: Vec::new(),
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

    /// Accept any server certificate: encrypted but unauthenticated, for trying a deployment out.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Connect to `HOST:PORT` at `ADDR:PORT` for each entry; URLs, `Host` and TLS names stay `HOST`.
    pub fn resolve(mut self, entries: impl IntoIterator<Item = Resolve>) -> Self {
        self.resolve.extend(entries);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
