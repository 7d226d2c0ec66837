//! The `tokenroute` command: parse the CLI, set up tracing, load config, bind, and run ([`App`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenroute::app::App;
use tokenroute::config;
#[cfg(feature = "sim")]
use tokenroute::sim::cli::{FlowArgs, SimNodesArgs};
#[cfg(feature = "sim")]
use tokenroute::{demo, sim};

/// A reverse proxy and load balancer that routes OAuth flows to the node that can honour them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration file and print every error found.
    Check,
    #[cfg(feature = "sim")]
    /// Reproduce the technote: signed OAuth flows through a plain balancer and through tokenroute.
    Demo(demo::DemoArgs),
    #[cfg(feature = "sim")]
    /// Run stand-in ClearQuest-Web-like nodes sharing one repository (for trying tokenroute by hand).
    SimNodes(SimNodesArgs),
    #[cfg(feature = "sim")]
    /// Play signed OAuth 1.0a friendship flows against a target and print a per-step report.
    Flow(FlowArgs),
    #[cfg(feature = "sim")]
    /// Load-test a deployment with many concurrent signed flows; prints latency percentiles, writes an SVG.
    Loadtest(sim::loadtest::LoadtestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The proxy logs at info by default; the tools print reports, so only warnings interleave with them.
    let default_level = match cli.command {
        None | Some(Command::Run) | Some(Command::Check) => "info",
        #[cfg(feature = "sim")]
        Some(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_proxy(&cli.config),
        Command::Check => check(&cli.config),
        #[cfg(feature = "sim")]
        Command::Demo(args) => tool_runtime().and_then(|rt| {
            let outcome = rt.block_on(demo::run(&args))?;
            println!("{}", demo::render(&outcome));
            Ok(exit(outcome.demonstrated()))
        }),
        #[cfg(feature = "sim")]
        Command::SimNodes(args) => tool_runtime().and_then(|rt| {
            rt.block_on(sim::cli::sim_nodes(args, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }),
        #[cfg(feature = "sim")]
        Command::Flow(args) => tool_runtime().and_then(|rt| {
            let report = rt.block_on(sim::cli::flow(args))?;
            Ok(exit(report.failed() == 0))
        }),
        #[cfg(feature = "sim")]
        Command::Loadtest(args) => tool_runtime().and_then(|rt| {
            let report = rt.block_on(sim::loadtest::loadtest(args))?;
            Ok(exit(report.failed == 0))
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokenroute: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "sim")]
fn exit(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(feature = "sim")]
/// The runtime for the tools (demo, stand-in nodes, consumer): default size, not configurable.
fn tool_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// Exit 0: usable (warnings printed); 1: refused (every finding printed); 2 is clap's, for usage errors.
fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match config::check(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            println!(
                "{}: ok ({} listener(s), {} node(s), {} warning(s))",
                path.display(),
                loaded.config.listeners.len(),
                loaded.config.upstream.nodes.len(),
                loaded.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", e.report());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn run_proxy(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = config::load(path)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = config.runtime.worker_threads {
        runtime.worker_threads(n.get());
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = App::bind(config, Some(path.to_owned())).await?;
        app.run(shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
