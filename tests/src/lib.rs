//! End-to-end test harness for Logferry: runs the real `logferry-agent` and
//! `logferry-aggregator` binaries as child processes on 127.0.0.1 and looks at what they
//! do from the outside (HTTP answers, the file sink, exit codes, logs).
//!
//! - [`TestDir`]: a temporary directory with freshly generated development certificates;
//! - [`Aggregator`] / [`Agent`]: write a config, start the binary, wait for its
//!   `"listening"` log lines, stop it with SIGTERM (asserting exit 0) or SIGKILL; dropping
//!   one kills the process, so a failing test never leaks processes, and prints the tail
//!   of its log;
//! - [`sink`]: reads the aggregator's file sink;
//! - [`http`]: a blocking HTTP(S) client and Prometheus text helpers;
//! - [`frames`]: hand-made wire frames, valid and hostile;
//! - [`hook`]: a webhook receiver that records what notifiers POST;
//! - [`lines`]: lines with unique ids written by a background thread, and the accounting
//!   of what reached the sink;
//! - [`logrotate`]: the real logrotate and gzip;
//! - [`wait_until`]: polling with a deadline (tests never sleep to synchronise).
//!
//! The binaries are found next to the test executable (`target/debug/`), or in
//! `LOGFERRY_BIN_DIR`. `cargo test -p logferry-e2e` alone does not build them; run
//! `cargo build --bins` first (`cargo test --workspace` builds them).

pub mod agent;
pub mod aggregator;
pub mod collector;
pub mod frames;
pub mod hook;
pub mod http;
pub mod lines;
pub mod logrotate;
pub mod process;
pub mod sink;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

pub use agent::{Agent, AgentOptions, InputOptions};
pub use aggregator::{Aggregator, AggregatorOptions};

/// The token every test aggregator accepts unless told otherwise.
pub const TOKEN: &str = "secret-token";

/// Environment variable naming the directory that holds the binaries.
pub const BIN_DIR_ENV: &str = "LOGFERRY_BIN_DIR";

/// The directory holding `logferry-agent` and `logferry-aggregator`: `LOGFERRY_BIN_DIR`
/// if set, else the directory above the test executable's `deps/` (`target/debug`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no parent directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of the binary `name` (e.g. `logferry-aggregator`).
///
/// # Panics
///
/// When the binary is missing, with instructions: a missing build is a set-up mistake,
/// not a test result.
pub fn binary(name: &str) -> PathBuf {
    let dir = match bin_dir() {
        Ok(d) => d,
        Err(e) => panic!("cannot locate the Logferry binaries: {e:#}; set {BIN_DIR_ENV}"),
    };
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "{} not found: run `cargo build --bins` first (or `cargo test --workspace`), \
             or set {BIN_DIR_ENV} to the directory holding the binaries",
            path.display()
        );
    }
    if let Some(newer) = newer_source(name, &path) {
        // Shown with the output of a failing test: the binary may predate the change.
        eprintln!(
            "warning: {} is older than {}; run `cargo build --bins` to test the current code",
            path.display(),
            newer.display()
        );
    }
    path
}

/// A source file of the crate behind binary `name` (or of the shared crate) modified
/// after the binary was built, if any.
fn newer_source(name: &str, binary: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let krate = name.strip_prefix("logferry-")?;
    let mut dirs = vec![
        workspace.join(krate).join("src"),
        workspace.join("shared").join("src"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > built)
            {
                return Some(p);
            }
        }
    }
    None
}

/// Polls `cond` every 50 ms until it returns true or `timeout` passes; the error names
/// `what` was awaited.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory (removed on drop) holding development certificates in `certs/`:
/// `ca.pem`, `server.pem` (for `localhost` and `127.0.0.1`), `server-key.pem`,
/// `client.pem` and `client-key.pem`.
///
/// With `LOGFERRY_E2E_KEEP=1` in the environment the directory (configs, logs, sinks,
/// spools) is kept and its path printed, to look at after a run.
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

/// Environment variable that keeps test directories.
pub const KEEP_ENV: &str = "LOGFERRY_E2E_KEEP";

impl TestDir {
    /// Creates the directory and generates the certificates.
    pub fn new() -> anyhow::Result<TestDir> {
        let dir = tempfile::Builder::new()
            .prefix("logferry-e2e-")
            .tempdir()
            .context("creating the test directory")?;
        let certs = logferry_shared::tls::DevCerts::generate(
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            "logferry-e2e-agent",
        )
        .context("generating development certificates")?;
        certs
            .write_to(&dir.path().join("certs"))
            .context("writing development certificates")?;
        let path = dir.path().to_path_buf();
        Ok(TestDir {
            dir: Some(dir),
            path,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/rel`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// A certificate file by name, e.g. `ca.pem`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.path.join("certs").join(name)
    }

    /// Writes `text` to `path()/rel`, creating parent directories; returns the path.
    pub fn write(&self, rel: impl AsRef<Path>, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        if let Some(dir) = self.dir.take() {
            if keep {
                let path = dir.keep();
                eprintln!("{KEEP_ENV}: kept {}", path.display());
            } else if std::thread::panicking() {
                eprintln!(
                    "test directory {} removed; set {KEEP_ENV}=1 to keep it",
                    self.path.display()
                );
            }
        }
    }
}

/// A path as a TOML basic string, quotes included (JSON string escapes are valid TOML).
pub fn toml_str(s: impl AsRef<str>) -> String {
    serde_json::Value::String(s.as_ref().to_owned()).to_string()
}

/// [`toml_str`] for a path.
pub fn toml_path(p: &Path) -> String {
    toml_str(p.to_string_lossy())
}
