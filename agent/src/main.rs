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
    /// Inspect or purge the batches the aggregator refused for good (on a stopped agent's
    /// spool; a running agent lists them at its admin endpoint, `GET /dead-letter`).
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// One line per batch: seq, bytes, records, status, when and why it was refused.
    List,
    /// One batch: what was recorded about it, and its lines.
    Show {
        /// The batch's sequence number.
        seq: u64,
    },
    /// Delete every dead-lettered batch.
    Purge,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
        Command::DeadLetter { action } => dead_letter(&cfg, action),
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

fn dead_letter(cfg: &AgentConfig, action: DeadLetterAction) -> ExitCode {
    use logferry_agent::dead_letter;
    use logferry_agent::spool::{Spool, SpoolError};
    let spool = match Spool::open_existing(&cfg.data_dir.join("spool")) {
        Ok(s) => s,
        Err(e @ SpoolError::Locked(_)) => {
            eprintln!("{e}: stop it first, or see GET /dead-letter on its admin endpoint");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let done = match action {
        DeadLetterAction::List => dead_letter::list(&spool, &mut out),
        DeadLetterAction::Show { seq } => dead_letter::show(&spool, seq, &mut out),
        DeadLetterAction::Purge => dead_letter::purge(&spool, &mut out).map(drop),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<AgentConfig> {
    let path = path
        .ok_or_else(|| anyhow::anyhow!("no config: pass --config PATH or set LOGFERRY_CONFIG"))?;
    Ok(AgentConfig::load(&path)?)
}

/// glibc gives threads their own malloc arenas (up to 8 per core), each keeping freed
/// memory; two are plenty for the agent's few threads.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raises the soft limit on open files to the hard limit: the tailer holds up to
/// `tail.max_open_files` descriptors, and the usual soft limit (1024) is below the
/// default with the spool and sockets added.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass and nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("cannot raise the open-file limit");
            }
        }
    }
}

/// The agent's few tasks (shipping, the admin endpoint) share one runtime thread; the
/// tailer has its own thread and spool reads go to the blocking pool. Fewer threads also
/// means fewer malloc arenas, which keeps the resident set small on every node.
#[tokio::main(flavor = "current_thread")]
async fn run(cfg: AgentConfig, path: PathBuf) -> anyhow::Result<()> {
    raise_open_file_limit();
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
