//! The `tokenroute` command: parse the CLI, set up tracing, load config, bind, and run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenroute::{config, proxy::Proxy, server};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_proxy(&cli.config),
        Command::Check => check(&cli.config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokenroute: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match config::load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} listener(s), {} node(s))",
                path.display(),
                c.listeners.len(),
                c.upstream.nodes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
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
        let listeners = server::bind(&config).await?;
        let proxy = Proxy::new(config);
        server::run(listeners, proxy, shutdown_signal()).await;
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
