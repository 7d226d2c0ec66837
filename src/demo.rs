//! `tokenroute demo`: the technote on one machine, in well under a minute.
//!
//! Starts three stand-in nodes and two proxies in front of them, both built from tokenroute's own core: a plain
//! round-robin balancer with sticky sessions (what most deployments have) and tokenroute with token-aware
//! routing. The same flows run through each; the two reports are printed side by side. `--protocol oauth1`
//! (the default) plays the technote's signed OAuth 1.0a friendship flows against ClearQuest-Web-like nodes;
//! `--protocol oauth2` plays every OAuth 2 / OpenID Connect grant against authorization servers that keep
//! clients, codes and tokens in their own memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::app::App;
use crate::config;
use crate::sim::consumer::{run_flows, FlowOptions, FlowReport, ParamMode, Step};
use crate::sim::oauth2;
use crate::sim::wire::{param, path, BASE, FORM};
use crate::sim::{Cluster, SimError};

/// Which stand-in and client the demo plays; it lives in [`crate::sim`], whose load tester plays both too.
pub use crate::sim::Protocol;

/// Arguments of `tokenroute demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The flows to play: the technote's OAuth 1.0a friendship, or OAuth 2 / OpenID Connect grants.
    #[arg(long, value_enum, default_value_t = Protocol::OAuth1)]
    pub protocol: Protocol,
    /// Flows through each balancer.
    #[arg(long, default_value_t = 24)]
    pub flows: usize,
    /// Flows in parallel.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Where the consumer puts OAuth parameters (OAuth 1).
    #[arg(long, value_enum, default_value_t = ParamMode::Mixed)]
    pub params: ParamMode,
    /// Approve keys only on the node holding them in memory (IBM's strict behaviour; OAuth 1).
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

/// One step's totals through one balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The step's name.
    pub step: &'static str,
    /// Succeeded.
    pub ok: usize,
    /// Failed.
    pub failed: usize,
    /// Never reached.
    pub skipped: usize,
    /// `X-Served-By` → answers from that node.
    pub nodes: BTreeMap<String, usize>,
}

/// What the flows through one balancer came to, whatever the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Every step some flow planned, in flow order.
    pub steps: Vec<StepRow>,
    /// Flows that completed.
    pub passed: usize,
    /// Flows that stopped at a failed step.
    pub failed: usize,
    /// Failure reason → flows.
    pub reasons: BTreeMap<String, usize>,
}

impl Side {
    fn oauth1(report: &FlowReport) -> Side {
        Side {
            steps: Step::ALL
                .iter()
                .map(|&step| {
                    let s = report.step(step);
                    StepRow {
                        step: step.as_str(),
                        ok: s.ok,
                        failed: s.failed,
                        skipped: s.skipped,
                        nodes: s.nodes,
                    }
                })
                .collect(),
            passed: report.passed(),
            failed: report.failed(),
            reasons: report.reasons(),
        }
    }

    fn oauth2(report: &oauth2::FlowReport) -> Side {
        Side {
            steps: report
                .steps()
                .into_iter()
                .map(|s| StepRow {
                    step: s.step.as_str(),
                    ok: s.ok,
                    failed: s.failed,
                    skipped: s.skipped,
                    nodes: s.nodes,
                })
                .collect(),
            passed: report.passed(),
            failed: report.failed(),
            reasons: report.reasons(),
        }
    }

    fn row(&self, step: &str) -> Option<&StepRow> {
        self.steps.iter().find(|r| r.step == step)
    }
}

/// The outcome: both sides.
#[derive(Debug)]
pub struct DemoOutcome {
    /// What was played.
    pub protocol: Protocol,
    /// Through the plain balancer.
    pub plain: Side,
    /// Through tokenroute.
    pub tokenroute: Side,
}

impl DemoOutcome {
    /// Whether the demo showed what it should: the plain balancer fails flows, tokenroute fails none.
    pub fn demonstrated(&self) -> bool {
        self.plain.failed > 0 && self.tokenroute.failed == 0
    }
}

/// A running proxy in front of the cluster, stopped when dropped.
struct Front {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
}

impl Front {
    /// Stops the proxy and waits until it has drained and stopped everything it started.
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.running.await;
    }
}

/// Config text for a proxy in front of `nodes` (name, URL), health-checked on `health`.
fn front_text(nodes: &[(String, String)], health: &str, token_aware: bool) -> String {
    // No admin API: its default address is a fixed port, which a running tokenroute (or the other proxy of
    // this demo) already holds.
    let mut text =
        String::from("[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\nenabled = false\n");
    for (name, url) in nodes {
        let _ = write!(
            text,
            "[[upstream.node]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        );
    }
    let _ = write!(
        text,
        "[health]\npath = \"{health}\"\ninterval = \"1s\"\n[routing]\ntoken_aware = {token_aware}\nsession_affinity = true\n",
    );
    text
}

async fn oauth1_front(cluster: &Cluster, token_aware: bool) -> Result<Front, DemoError> {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let mut text = front_text(&nodes, &format!("{BASE}/{}", path::HEALTH), token_aware);
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
    start_front(&text).await
}

/// A proxy in front of OAuth 2 nodes: the `oauth2` preset, with token-aware routing on or off.
async fn oauth2_front(cluster: &oauth2::Cluster, token_aware: bool) -> Result<Front, DemoError> {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let mut text = front_text(&nodes, oauth2::wire::HEALTH, token_aware);
    text.push_str("presets = [\"oauth2\"]\n");
    start_front(&text).await
}

async fn start_front(text: &str) -> Result<Front, DemoError> {
    let env = |name: &str| match name {
        "DEMO_USER" => Some(crate::sim::repository::USER.to_owned()),
        "DEMO_PASSWORD" => Some(crate::sim::repository::USER_PASSWORD.to_owned()),
        _ => None,
    };
    let config = config::parse_with_env(text, Path::new("demo.toml"), Path::new("."), &env)
        .map_err(|e| DemoError::Proxy(e.to_string()))?;
    let app = App::bind(config, None)
        .await
        .map_err(|e| DemoError::Proxy(e.to_string()))?;
    let addr = app.listener_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Ok(Front {
        url: format!("http://{addr}"),
        stop,
        running,
    })
}

/// Runs the demo and returns both sides.
pub async fn run(args: &DemoArgs) -> Result<DemoOutcome, DemoError> {
    match args.protocol {
        Protocol::OAuth1 => run_oauth1(args).await,
        Protocol::OAuth2 => run_oauth2(args).await,
    }
}

async fn run_oauth1(args: &DemoArgs) -> Result<DemoOutcome, DemoError> {
    let cluster = Cluster::builder()
        .nodes(3)
        .strict_approval(args.strict_approval)
        .start()
        .await?;
    let plain = oauth1_front(&cluster, false).await?;
    let smart = oauth1_front(&cluster, true).await?;
    let options = |url: &str| {
        FlowOptions::new(url.to_owned())
            .flows(args.flows)
            .concurrency(args.concurrency)
            .params(args.params)
    };
    let plain_report = run_flows(options(&plain.url)).await?;
    let smart_report = run_flows(options(&smart.url)).await?;
    plain.shutdown().await;
    smart.shutdown().await;
    cluster.shutdown().await;
    Ok(DemoOutcome {
        protocol: Protocol::OAuth1,
        plain: Side::oauth1(&plain_report),
        tokenroute: Side::oauth1(&smart_report),
    })
}

async fn run_oauth2(args: &DemoArgs) -> Result<DemoOutcome, DemoError> {
    let cluster = oauth2::Cluster::builder().nodes(3).start().await?;
    let plain = oauth2_front(&cluster, false).await?;
    let smart = oauth2_front(&cluster, true).await?;
    // Every grant with both client authentications, and every optional step (RFC 7592 read, introspection and
    // revocation, end-session).
    let options = |url: &str| {
        oauth2::FlowOptions::new(url.to_owned())
            .flows(args.flows)
            .concurrency(args.concurrency)
    };
    let plain_report = oauth2::run_flows(options(&plain.url)).await?;
    let smart_report = oauth2::run_flows(options(&smart.url)).await?;
    plain.shutdown().await;
    smart.shutdown().await;
    cluster.shutdown().await;
    Ok(DemoOutcome {
        protocol: Protocol::OAuth2,
        plain: Side::oauth2(&plain_report),
        tokenroute: Side::oauth2(&smart_report),
    })
}

/// The two sides step by step, then the failure reasons and a verdict.
pub fn render(outcome: &DemoOutcome) -> String {
    let mut out = String::new();
    let cell = |side: &Side, step: &str| {
        let Some(s) = side.row(step) else {
            return ("-".to_string(), "-".to_string());
        };
        let nodes: Vec<String> = s.nodes.iter().map(|(n, c)| format!("{n}:{c}")).collect();
        let nodes = if nodes.is_empty() {
            "-".to_string()
        } else {
            nodes.join(" ")
        };
        (format!("{}/{}/{}", s.ok, s.failed, s.skipped), nodes)
    };
    // Steps in flow order, those of either side (both play the same plan).
    let mut steps: Vec<&str> = outcome.plain.steps.iter().map(|r| r.step).collect();
    for r in &outcome.tokenroute.steps {
        if !steps.contains(&r.step) {
            steps.push(r.step);
        }
    }
    let name = steps.iter().map(|s| s.len()).max().unwrap_or(0).max(15);
    let _ = writeln!(
        out,
        "{:<name$} | {:<38} | {:<38}",
        "step", "plain round robin (ok/failed/skipped)", "tokenroute (ok/failed/skipped)"
    );
    let rule = "-".repeat(name + 82);
    let _ = writeln!(out, "{rule}");
    for step in steps {
        let (p_counts, p_nodes) = cell(&outcome.plain, step);
        let (t_counts, t_nodes) = cell(&outcome.tokenroute, step);
        let _ = writeln!(
            out,
            "{step:<name$} | {p_counts:<9} {p_nodes:<28} | {t_counts:<9} {t_nodes:<28}"
        );
    }
    let _ = writeln!(out, "{rule}");
    for (label, side) in [
        ("plain round robin", &outcome.plain),
        ("tokenroute", &outcome.tokenroute),
    ] {
        let reasons: Vec<String> = side
            .reasons
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
            side.passed, side.failed
        );
    }
    let verdict = match (outcome.demonstrated(), outcome.protocol) {
        (true, Protocol::OAuth1) => {
            "The plain balancer breaks the OAuth friendship flow (the technote's 401 invalid_expired_token); \
             tokenroute completes every flow."
        }
        (true, Protocol::OAuth2) => {
            "The plain balancer sends codes, tokens and clients to nodes that never issued them \
             (400 invalid_client / invalid_grant, 401 invalid_token); tokenroute completes every flow."
        }
        (false, _) => "Unexpected: the demo did not show the difference (see the tables above).",
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_defaults_to_oauth1_and_oauth2_is_accepted() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: DemoArgs,
        }
        let a = Cli::try_parse_from(["t"]).unwrap().args;
        assert_eq!(a.protocol, Protocol::OAuth1);
        let a = Cli::try_parse_from(["t", "--protocol", "oauth2"])
            .unwrap()
            .args;
        assert_eq!(a.protocol, Protocol::OAuth2);
        assert!(Cli::try_parse_from(["t", "--protocol", "saml"]).is_err());
    }
}
