//! `logferry-agent`: tails log files and ships them to a Logferry aggregator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logferry_agent::{app, config::AgentConfig};
use logferry_shared::runtime;

#[derive(Parser)]
#[command(
    name = "logferry-agent",
    version,
    about = "Tails log files and ships them to a Logferry aggregator"
)]
struct Cli {
    /// Config file (TOML).
    #[arg(long, env = "LOGFERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check the config and exit: 0 if valid, otherwise print the key and the reason.
    Validate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load(cli.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Validate => {
            println!("config is valid");
            ExitCode::SUCCESS
        }
        Command::Run => {
            runtime::init_logging();
            match run(cfg, cli.config.unwrap_or_default()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<AgentConfig> {
    let path = path
        .ok_or_else(|| anyhow::anyhow!("no config: pass --config PATH or set LOGFERRY_CONFIG"))?;
    Ok(AgentConfig::load(&path)?)
}

#[tokio::main]
async fn run(cfg: AgentConfig, path: PathBuf) -> anyhow::Result<()> {
    let mut signals = runtime::Signals::new()?;
    let mut running = app::start(cfg).await?;
    // SIGHUP reloads the config file; a config that does not load is refused as a
    // whole, logged, and the running one kept.
    while signals.recv().await == runtime::Signal::Reload {
        match AgentConfig::load(&path) {
            Ok(cfg) => {
                if let Err(e) = running.reload(cfg) {
                    tracing::error!("reload refused, keeping the running config: {e:#}");
                }
            }
            Err(e) => tracing::error!("reload refused, keeping the running config: {e}"),
        }
    }
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}
