//! `logferry-aggregator`: receives batches from agents and writes them to sinks.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logferry_aggregator::{app, cli, config::AggregatorConfig};
use logferry_shared::runtime;
use logferry_shared::tls::DevCerts;

#[derive(Parser)]
#[command(
    name = "logferry-aggregator",
    version,
    about = "Receives log batches from Logferry agents and forwards them to sinks"
)]
struct Cli {
    /// Config file (TOML).
    #[arg(long, env = "LOGFERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the aggregator (the default).
    Run,
    /// Check the config and exit: 0 if valid, otherwise print the key and the reason.
    Validate,
    /// Manage rules through a running aggregator's admin API (`list`, `add`, `delete`),
    /// or try rules on a file of log lines offline (`test`).
    Rules {
        #[command(subcommand)]
        cmd: cli::RulesCommand,
        /// Admin endpoint, e.g. `http://127.0.0.1:7401` (default: `[admin] listen` of
        /// --config, else that).
        #[arg(long)]
        admin: Option<String>,
        /// Admin API token.
        #[arg(long, env = "LOGFERRY_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// For an HTTPS admin endpoint: the CA certificate (PEM) that signed its
        /// certificate (default: the system's trusted CAs).
        #[arg(long, env = "LOGFERRY_ADMIN_CA")]
        ca: Option<PathBuf>,
        /// Client certificate (PEM), for an admin endpoint that asks for one
        /// (`[admin.tls] client_ca`).
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// The client certificate's private key (PEM).
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
    },
    /// Generate a development CA, server certificate and client certificate.
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Subject alternative names for the server certificate (DNS names or IPs).
        #[arg(long = "san", default_values = ["localhost", "127.0.0.1"])]
        sans: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Certs { out, sans } => {
            match DevCerts::generate(&sans, "logferry-agent").and_then(|c| {
                c.write_to(&out).map_err(|e| {
                    logferry_shared::tls::TlsError::Generate(format!("{}: {e}", out.display()))
                })
            }) {
                Ok(()) => {
                    println!("wrote ca.pem, server.pem, server-key.pem, client.pem, client-key.pem to {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Rules {
            cmd,
            admin,
            token,
            ca,
            client_cert,
            client_key,
        } => {
            let cfg = match cli.config.clone().map(|p| load(Some(p))).transpose() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            let tls = cli::AdminClientTls {
                ca,
                identity: client_cert.zip(client_key),
            };
            let target = cli::AdminTarget::resolve(admin, cfg.as_ref(), token, tls);
            match cli::run(cmd, &target, cfg.as_ref()) {
                Ok(out) => {
                    println!("{}", out.trim_end());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate => match load(cli.config) {
            Ok(_) => {
                println!("config is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid config: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run => {
            let cfg = match load(cli.config.clone()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            runtime::init_logging();
            match run(cfg, cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<AggregatorConfig> {
    let path = path
        .ok_or_else(|| anyhow::anyhow!("no config: pass --config PATH or set LOGFERRY_CONFIG"))?;
    Ok(AggregatorConfig::load(&path)?)
}

#[tokio::main]
async fn run(cfg: AggregatorConfig, path: Option<PathBuf>) -> anyhow::Result<()> {
    let mut signals = runtime::Signals::new()?;
    let mut current = cfg.clone();
    let mut running = app::start(cfg).await?;
    while signals.recv().await == runtime::Signal::Reload {
        tracing::info!("SIGHUP: reloading the config");
        match load(path.clone()) {
            Ok(new) => match running.reload(&new, &current).await {
                Ok(()) => current = new,
                Err(e) => tracing::error!("config not reloaded: {e:#}"),
            },
            Err(e) => tracing::error!("config not reloaded: {e:#}"),
        }
    }
    tracing::info!("shutting down");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}
