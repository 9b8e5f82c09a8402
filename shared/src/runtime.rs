//! Process plumbing both binaries share: log set-up and OS signals.

use tokio::sync::watch;

/// Log output format, from `LOGFERRY_LOG_FORMAT` (`text`, the default, or `json`).
/// The filter comes from `LOGFERRY_LOG` (e.g. `info`, `logferry_agent=debug`), default
/// `info`. Logs go to standard error; standard output is left to the `stdout` sink.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOGFERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOGFERRY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    // A second initialisation (tests running binaries in-process) is harmless: keep the first.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// What a signal asks the process to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop reading, drain, exit 0.
    Shutdown,
    /// SIGHUP: reload the config.
    Reload,
}

/// Waits for the next SIGTERM, SIGINT or SIGHUP.
///
/// Registering the handlers can only fail if the OS refuses signal handling entirely; then
/// this waits forever (the process can still be killed), and the error is logged once.
pub async fn next_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let (term, int, hup) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    match (term, int, hup) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => {
            tokio::select! {
                _ = term.recv() => Signal::Shutdown,
                _ = int.recv() => Signal::Shutdown,
                _ = hup.recv() => Signal::Reload,
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; use SIGKILL to stop");
            std::future::pending().await
        }
    }
}

/// The process's SIGTERM, SIGINT and SIGHUP handlers, registered once, so no signal
/// is missed between two waits.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers (inside a tokio runtime).
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Shutdown,
            _ = self.int.recv() => Signal::Shutdown,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

/// Waits until SIGTERM or SIGINT. SIGHUP is logged and ignored: configuration reload is
/// not supported yet, so a restart applies changes.
pub async fn wait_for_shutdown() {
    loop {
        match next_signal().await {
            Signal::Shutdown => return,
            Signal::Reload => {
                tracing::warn!(
                    "SIGHUP: configuration reload is not supported yet; restart to apply changes"
                )
            }
        }
    }
}

/// A shutdown flag that every task can watch: `trigger` once, `wait` anywhere.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A flag not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }

    /// Asks every watcher to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves when triggered (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = rx.wait_for(|v| *v).await;
    }
}
