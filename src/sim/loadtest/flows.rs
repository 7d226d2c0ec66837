//! The flows a run plays, one driver per protocol: each builds its client's options from the arguments,
//! hooks the client's step observer to the [`Recorder`], and names the steps the summary has rows for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{LoadtestArgs, Recorder};
use crate::sim::{consumer, oauth2, Protocol, SimError};

/// A run ready to start: its flows, and the steps the summary has a row for, in flow order.
pub(super) struct Flows {
    pub(super) steps: Vec<&'static str>,
    pub(super) run: Pin<Box<dyn Future<Output = Result<(), SimError>> + Send>>,
}

/// Prepares `limit` flows (`None`: until the deadline) of `args.protocol`; errors when the arguments do not
/// let the run start (a CA file that cannot be read, an option the protocol's client does not have).
pub(super) async fn prepare(
    args: &LoadtestArgs,
    limit: Option<usize>,
    recorder: Arc<Recorder>,
) -> Result<Flows, SimError> {
    let flows = limit.unwrap_or(usize::MAX);
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    match args.protocol {
        Protocol::OAuth1 => oauth1(args, flows, deadline, recorder).await,
        Protocol::OAuth2 => oauth2(args, flows, deadline, recorder),
    }
}

async fn oauth1(
    args: &LoadtestArgs,
    flows: usize,
    deadline: Option<tokio::time::Instant>,
    recorder: Arc<Recorder>,
) -> Result<Flows, SimError> {
    use consumer::Step;
    let observer = consumer::StepObserver::new(move |e| {
        let last = e.failure.is_some() || e.step == Step::Read3;
        recorder.record(
            e.step.as_str(),
            e.latency,
            e.failure.map(|f| f.reason()),
            last,
        );
    });
    let mut opts = consumer::FlowOptions::new(args.target.clone())
        .flows(flows)
        .concurrency(args.concurrency)
        .params(args.params)
        .insecure(args.insecure)
        .resolve(args.resolve.iter().cloned())
        .observer(observer);
    if let Some(path) = &args.ca {
        opts = opts.ca_pem(consumer::read_ca_file(path).await?);
    }
    if let Some(deadline) = deadline {
        opts = opts.deadline(deadline);
    }
    Ok(Flows {
        steps: Step::ALL.iter().map(|s| s.as_str()).collect(),
        run: Box::pin(async move { consumer::run_flows(opts).await.map(drop) }),
    })
}

/// Every grant with both client authentication methods in turn, and every optional step but PAR: what
/// `demo --protocol oauth2` plays.
fn oauth2(
    args: &LoadtestArgs,
    flows: usize,
    deadline: Option<tokio::time::Instant>,
    recorder: Arc<Recorder>,
) -> Result<Flows, SimError> {
    // The OAuth 2 client speaks plain http to the target it is given: TLS options would be silently ignored.
    let tls_option = [
        (args.ca.is_some(), "--ca"),
        (!args.resolve.is_empty(), "--resolve"),
        (args.insecure, "--insecure"),
    ];
    if let Some((_, flag)) = tls_option.iter().find(|(given, _)| *given) {
        return Err(SimError::Unsupported {
            option: flag,
            protocol: "oauth2",
        });
    }
    let observer = oauth2::StepObserver::new(move |e| {
        recorder.record(
            e.step.as_str(),
            e.latency,
            e.failure.map(|f| f.reason()),
            e.last,
        );
    });
    let mut opts = oauth2::FlowOptions::new(args.target.clone())
        .flows(flows)
        .concurrency(args.concurrency)
        .observer(observer);
    if let Some(deadline) = deadline {
        opts = opts.deadline(deadline);
    }
    let steps = oauth2::Step::ALL
        .into_iter()
        .filter(|step| opts.grants.iter().any(|&g| opts.plan(g).contains(step)))
        .map(oauth2::Step::as_str)
        .collect();
    Ok(Flows {
        steps,
        run: Box::pin(async move { oauth2::run_flows(opts).await.map(drop) }),
    })
}
