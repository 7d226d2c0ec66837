//! The `sim-nodes` and `flow` subcommands: their arguments and bodies. `main.rs` parses and calls them.

use std::future::Future;
use std::path::PathBuf;

use super::cluster::Cluster;
use super::consumer::{read_ca_file, run_flows, FlowOptions, FlowReport, ParamMode, Resolve};
use super::SimError;

/// `tokenroute sim-nodes`: run stand-in nodes until shutdown.
#[derive(Debug, Clone, clap::Args)]
pub struct SimNodesArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Node i listens on base-port + i (0: every node on an ephemeral port).
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    /// Approve a provisional key only on a node that holds it in memory.
    #[arg(long)]
    pub strict_approval: bool,
}

/// Starts the nodes, prints one line per node (`name url clone-id`), and runs until `shutdown` completes.
pub async fn sim_nodes(
    args: SimNodesArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let cluster = Cluster::builder()
        .nodes(args.nodes)
        .base_port(args.base_port)
        .strict_approval(args.strict_approval)
        .start()
        .await?;
    for ((name, url), clone_id) in cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .zip(cluster.clone_ids())
    {
        println!("{name} {url} clone-id={clone_id}");
    }
    shutdown.await;
    cluster.shutdown().await;
    Ok(())
}

/// `tokenroute flow`: play the friendship flow against a target and print the per-step table.
#[derive(Debug, Clone, clap::Args)]
pub struct FlowArgs {
    /// Base URL of the provider or proxy, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub target: String,
    /// Number of flows.
    #[arg(long, default_value_t = 10)]
    pub flows: usize,
    /// Flows in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Where OAuth parameters travel.
    #[arg(long, value_enum, default_value_t = ParamMode::Mixed)]
    pub params: ParamMode,
    /// PEM file of CA certificates to trust for an https target.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Connect to HOST:PORT at ADDR instead, keeping HOST in URLs, `Host` and the TLS name (curl's --resolve);
    /// repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<Resolve>,
    /// Accept any server certificate: encrypted but not authenticated (curl's --insecure); overrides --ca.
    #[arg(long, short = 'k')]
    pub insecure: bool,
}

/// Runs the flows, prints the table, and returns the report (the caller exits non-zero when
/// [`FlowReport::failed`] is not 0).
pub async fn flow(args: FlowArgs) -> Result<FlowReport, SimError> {
    let mut opts = FlowOptions::new(args.target)
        .flows(args.flows)
        .concurrency(args.concurrency)
        .params(args.params)
        .insecure(args.insecure)
        .resolve(args.resolve);
    if let Some(path) = args.ca {
        opts = opts.ca_pem(read_ca_file(&path).await?);
    }
    let report = run_flows(opts).await?;
    println!("{}", report.render_table());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        SimNodes(SimNodesArgs),
        Flow(FlowArgs),
    }

    #[test]
    fn arguments_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["t", "sim-nodes"]).unwrap();
        let Cmd::SimNodes(a) = cli.cmd else { panic!() };
        assert_eq!((a.nodes, a.base_port, a.strict_approval), (3, 0, false));
        let cli = Cli::try_parse_from(["t", "flow", "--target", "http://x:1", "--params", "query"])
            .unwrap();
        let Cmd::Flow(f) = cli.cmd else { panic!() };
        assert_eq!(
            (f.flows, f.concurrency, f.params),
            (10, 4, ParamMode::Query)
        );
        assert!(Cli::try_parse_from(["t", "flow", "--target", "x", "--params", "cookie"]).is_err());
        assert!(!f.insecure && f.resolve.is_empty());
    }

    #[test]
    fn resolve_repeats_and_insecure_is_a_switch() {
        let cli = Cli::try_parse_from([
            "t",
            "flow",
            "--target",
            "https://a.test:8443",
            "--resolve",
            "a.test:8443:127.0.0.1",
            "--resolve",
            "b.test:443:[::1]",
            "-k",
        ])
        .unwrap();
        let Cmd::Flow(f) = cli.cmd else { panic!() };
        assert!(f.insecure);
        assert_eq!(f.resolve.len(), 2);
        assert_eq!(f.resolve[1].host, "b.test");
        let err = Cli::try_parse_from(["t", "flow", "--target", "x", "--resolve", "a.test:443"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HOST:PORT:ADDR"), "{err}");
    }
}
