//! The `tokenroute` command: parse the CLI, set up tracing, load config, bind, and run ([`App`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenroute::app::{table_cli, App, Signals};
use tokenroute::config;
use tokenroute::logging::{self, LogSetup};
#[cfg(feature = "sim")]
use tokenroute::sim::cli::{FlowArgs, SimNodesArgs};
#[cfg(feature = "sim")]
use tokenroute::{demo, sim};

/// The process's allocator (see Cargo.toml); the library leaves the choice to the program that links it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Export or import the learned table (JSON lines of fingerprints, never credentials).
    #[command(subcommand)]
    Table(TableCommand),
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

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Write the table persisted at `affinity.snapshot_path` (snapshot and journal) to standard output.
    Export,
    /// Read an export from standard input into the Redis store of the configuration.
    Import,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The proxy sets its log up from `[log]` once the config is read; `check` logs nothing; the tools print
    // reports, so only warnings interleave with them.
    let tool_log = |level| {
        logging::init(&LogSetup {
            json: false,
            level,
            access: false,
        })
    };
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_proxy(&cli.config),
        Command::Check => {
            tool_log("info");
            check(&cli.config)
        }
        Command::Table(action) => {
            tool_log("warn");
            table(&cli.config, action)
        }
        #[cfg(feature = "sim")]
        Command::Demo(args) => tool_runtime().and_then(|rt| {
            tool_log("warn");
            let outcome = rt.block_on(demo::run(&args))?;
            println!("{}", demo::render(&outcome));
            Ok(exit(outcome.demonstrated()))
        }),
        #[cfg(feature = "sim")]
        Command::SimNodes(args) => tool_runtime().and_then(|rt| {
            tool_log("warn");
            rt.block_on(sim::cli::sim_nodes(args, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }),
        #[cfg(feature = "sim")]
        Command::Flow(args) => tool_runtime().and_then(|rt| {
            tool_log("warn");
            let report = rt.block_on(sim::cli::flow(args))?;
            Ok(exit(report.failed() == 0))
        }),
        #[cfg(feature = "sim")]
        Command::Loadtest(args) => tool_runtime().and_then(|rt| {
            tool_log("warn");
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

/// `table export|import`: the report goes to standard error, the lines to standard output.
fn table(path: &std::path::Path, action: TableCommand) -> anyhow::Result<ExitCode> {
    let config = config::check(path)?.config;
    match action {
        TableCommand::Export => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let report = table_cli::export(&config, &mut out)?;
            eprintln!(
                "exported {} entries ({} left out)",
                report.entries, report.skipped
            );
        }
        TableCommand::Import => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let input = std::io::stdin().lock();
            let report = runtime.block_on(table_cli::import(&config, input))?;
            eprintln!(
                "imported {} entries ({} left out)",
                report.entries, report.skipped
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the config, sets the log up from its `[log]` (before the runtime: a reload changes the access log at
/// once, format and level at the next start), binds, and runs until the signals say stop (`app::signals`).
fn run_proxy(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let loaded = config::check(path)?;
    let config = loaded.config;
    logging::init(&LogSetup {
        json: config.log.json,
        level: &config.log.level,
        access: config.log.access,
    });
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    // The control runtime: accept loops, admin API, health checks, reloads, table upkeep. Connections are
    // served on the workers `App` starts (`runtime.worker_threads`, each with its own runtime).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stopped = runtime.block_on(async {
        // Before binding: a signal that arrives during start-up must not take its default (fatal) action.
        let signals = Signals::install().context("cannot install signal handlers")?;
        let app = App::bind(config, Some(path.to_owned())).await?;
        anyhow::Ok(app.run_until_signalled(signals).await)
    })?;
    // Tasks a forced stop abandoned end with the runtime; nothing waits for them.
    runtime.shutdown_background();
    Ok(ExitCode::from(stopped.exit_code()))
}

#[cfg(feature = "sim")]
/// Completes on SIGINT or SIGTERM (the tools stop on the first).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
