//! `tokenroute demo`: the technote on one machine, in well under a minute.
//!
//! Starts three stand-in nodes and two proxies in front of them, both built from tokenroute's own core: a plain
//! round-robin balancer with sticky sessions (what most deployments have) and tokenroute with token-aware
//! routing. The same signed friendship flows run through each; the two reports are printed side by side.

use std::fmt::Write as _;
use std::path::Path;

use crate::app::App;
use crate::config;
use crate::sim::consumer::{run_flows, FlowOptions, FlowReport, ParamMode, Step};
use crate::sim::wire::{param, path, BASE, FORM};
use crate::sim::{Cluster, SimError};

/// Arguments of `tokenroute demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Friendship flows through each balancer.
    #[arg(long, default_value_t = 24)]
    pub flows: usize,
    /// Flows in parallel.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Where the consumer puts OAuth parameters.
    #[arg(long, value_enum, default_value_t = ParamMode::Mixed)]
    pub params: ParamMode,
    /// Approve keys only on the node holding them in memory (IBM's strict behaviour).
    #[arg(long)]
    pub strict_approval: bool,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The stand-in cluster or the consumer failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A proxy could not be configured or started.
    #[error("starting a proxy: {0}")]
    Proxy(String),
}

/// The outcome: both reports.
#[derive(Debug)]
pub struct DemoOutcome {
    /// Through the plain balancer.
    pub plain: FlowReport,
    /// Through tokenroute.
    pub tokenroute: FlowReport,
}

impl DemoOutcome {
    /// Whether the demo showed what it should: the plain balancer fails flows, tokenroute fails none.
    pub fn demonstrated(&self) -> bool {
        self.plain.failed() > 0 && self.tokenroute.failed() == 0
    }
}

/// A running proxy in front of the cluster, stopped when dropped.
struct Front {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn front(cluster: &Cluster, token_aware: bool) -> Result<Front, DemoError> {
    let mut text = String::from("[[listener]]\naddress = \"127.0.0.1:0\"\n");
    for (name, url) in cluster.node_names().iter().zip(cluster.node_urls()) {
        let _ = write!(
            text,
            "[[upstream.node]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        );
    }
    let _ = write!(
        text,
        "[health]\npath = \"{BASE}/{}\"\ninterval = \"1s\"\n[routing]\ntoken_aware = {token_aware}\nsession_affinity = true\n",
        path::HEALTH
    );
    if token_aware {
        // The technote's "log in on each server", done by the proxy with a stand-in user.
        let _ = write!(
            text,
            "[refresh]\n[[refresh.exchange]]\npath = \"{BASE}/{}\"\n\
             headers = {{ \"content-type\" = \"{FORM}\" }}\n\
             body = \"{}=${{DEMO_USER}}&{}=${{DEMO_PASSWORD}}\"\n",
            path::LOGIN,
            param::USERNAME,
            param::PASSWORD,
        );
    }
    let env = |name: &str| match name {
        "DEMO_USER" => Some(crate::sim::repository::USER.to_owned()),
        "DEMO_PASSWORD" => Some(crate::sim::repository::USER_PASSWORD.to_owned()),
        _ => None,
    };
    let config = config::parse_with_env(&text, Path::new("demo.toml"), Path::new("."), &env)
        .map_err(|e| DemoError::Proxy(e.to_string()))?;
    let app = App::bind(config, None)
        .await
        .map_err(|e| DemoError::Proxy(e.to_string()))?;
    let addr = app.listener_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Ok(Front {
        url: format!("http://{addr}"),
        _stop: stop,
    })
}

/// Runs the demo and returns both reports.
pub async fn run(args: &DemoArgs) -> Result<DemoOutcome, DemoError> {
    let cluster = Cluster::builder()
        .nodes(3)
        .strict_approval(args.strict_approval)
        .start()
        .await?;
    let plain = front(&cluster, false).await?;
    let smart = front(&cluster, true).await?;
    let options = |url: &str| {
        FlowOptions::new(url.to_owned())
            .flows(args.flows)
            .concurrency(args.concurrency)
            .params(args.params)
    };
    let plain_report = run_flows(options(&plain.url)).await?;
    let smart_report = run_flows(options(&smart.url)).await?;
    drop((plain, smart));
    cluster.shutdown().await;
    Ok(DemoOutcome {
        plain: plain_report,
        tokenroute: smart_report,
    })
}

/// The two reports side by side, step by step, then the failure reasons and a verdict.
pub fn render(outcome: &DemoOutcome) -> String {
    let mut out = String::new();
    let cell = |report: &FlowReport, step: Step| {
        let s = report.step(step);
        let nodes: Vec<String> = s.nodes.iter().map(|(n, c)| format!("{n}:{c}")).collect();
        let nodes = if nodes.is_empty() {
            "-".to_string()
        } else {
            nodes.join(" ")
        };
        (format!("{}/{}/{}", s.ok, s.failed, s.skipped), nodes)
    };
    let _ = writeln!(
        out,
        "{:<15} | {:<38} | {:<38}",
        "step", "plain round robin (ok/failed/skipped)", "tokenroute (ok/failed/skipped)"
    );
    let _ = writeln!(out, "{}", "-".repeat(97));
    for step in Step::ALL {
        let (p_counts, p_nodes) = cell(&outcome.plain, step);
        let (t_counts, t_nodes) = cell(&outcome.tokenroute, step);
        let _ = writeln!(
            out,
            "{:<15} | {:<9} {:<28} | {:<9} {:<28}",
            step.as_str(),
            p_counts,
            p_nodes,
            t_counts,
            t_nodes
        );
    }
    let _ = writeln!(out, "{}", "-".repeat(97));
    for (label, report) in [
        ("plain round robin", &outcome.plain),
        ("tokenroute", &outcome.tokenroute),
    ] {
        let reasons: Vec<String> = report
            .reasons()
            .iter()
            .map(|(r, n)| format!("{n} x {r}"))
            .collect();
        let reasons = if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join(", ")
        };
        let _ = writeln!(
            out,
            "{label:<18} {} passed, {} failed; failures: {reasons}",
            report.passed(),
            report.failed()
        );
    }
    let verdict = if outcome.demonstrated() {
        "The plain balancer breaks the OAuth friendship flow (the technote's 401 invalid_expired_token); \
         tokenroute completes every flow."
    } else {
        "Unexpected: the demo did not show the difference (see the tables above)."
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}
