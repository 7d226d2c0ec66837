//! Running flows: [`run_flows`] spreads them over workers sharing one server-to-server client, and each flow
//! plays its steps in order, reporting each end to the observer and stopping at the first failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use http::StatusCode;
use tokio::task::JoinSet;

use super::super::random_hex;
use super::super::signature::ClientCredentials;
use super::super::SimError;
use super::browser::Browser;
use super::callback::CallbackServer;
use super::client::{HttpClient, Served};
use super::options::{FlowOptions, StepEvent, StepObserver};
use super::report::{Failure, FlowReport, FlowResult, Step, StepOutcome};
use super::tls::{insecure_tls_client_config, tls_client_config};
use crate::secret::Secret;

struct FlowContext {
    opts: FlowOptions,
    target: String,
    tls: rustls::ClientConfig,
    s2s: HttpClient,
    callback: CallbackServer,
}

impl FlowContext {
    /// A fresh browser (its own pool and cookies) with the run's TLS trust and `--resolve` entries.
    fn browser(&self) -> Browser {
        Browser::with_client(HttpClient::with_resolve(
            self.tls.clone(),
            self.opts.timeout,
            &self.opts.resolve,
        ))
    }
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
    let tls = if opts.insecure {
        insecure_tls_client_config()?
    } else {
        tls_client_config(opts.ca_pem.as_deref())?
    };
    let ctx = Arc::new(FlowContext {
        s2s: HttpClient::with_resolve(tls.clone(), opts.timeout, &opts.resolve),
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
    // Not `with_capacity(flows)`: a run bounded by its deadline asks for `usize::MAX` flows.
    let mut results = Vec::new();
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
    let mut admin = ctx.browser();
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

    let mut browser = ctx.browser();
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
