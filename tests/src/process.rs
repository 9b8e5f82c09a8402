//! A child process under test: started with its log on a file, watched, stopped with a
//! signal, and killed on drop so that no test leaks a process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a process may take to log that it listens.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process may take to exit after SIGTERM (the aggregator drains for up to 10 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines shown when a test fails or a process misbehaves.
const TAIL_LINES: usize = 40;

/// Environment variables that would change a child's config behind the test's back.
const SCRUBBED_PREFIXES: [&str; 3] = [
    "LOGFERRY_AGENT__",
    "LOGFERRY_AGGREGATOR__",
    "LOGFERRY_CONFIG",
];

/// A running (or exited) child process with its standard error in a log file.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    exit: Option<ExitStatus>,
    log_path: PathBuf,
    /// Where this run's output starts in the (appended) log file.
    log_start: u64,
}

impl ManagedProcess {
    /// Starts `binary args…` with `LOGFERRY_LOG_FORMAT=json`, standard error appended to
    /// `log_path` and standard output to `log_path` + `.stdout`, standard input closed.
    /// `name` labels the process in messages.
    pub fn spawn(
        name: &str,
        binary: &Path,
        args: &[OsString],
        log_path: &Path,
        envs: &[(String, String)],
    ) -> anyhow::Result<ManagedProcess> {
        Self::spawn_limited(name, binary, args, log_path, envs, None)
    }

    /// [`ManagedProcess::spawn`], with the soft limit on open files (`RLIMIT_NOFILE`) set
    /// to `open_files` in the child (capped at the hard limit), as a service manager would.
    pub fn spawn_limited(
        name: &str,
        binary: &Path,
        args: &[OsString],
        log_path: &Path,
        envs: &[(String, String)],
        open_files: Option<u64>,
    ) -> anyhow::Result<ManagedProcess> {
        let open = |p: &Path| -> anyhow::Result<File> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))
        };
        let stderr = open(log_path)?;
        let log_start = stderr.metadata().map(|m| m.len()).unwrap_or(0);
        let mut stdout_path = log_path.as_os_str().to_owned();
        stdout_path.push(".stdout");
        let stdout = open(Path::new(&stdout_path))?;
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env("LOGFERRY_LOG_FORMAT", "json");
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str() {
                if SCRUBBED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                    cmd.env_remove(k);
                }
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some(limit) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the forked child before exec and only calls
            // getrlimit/setrlimit, which are async-signal-safe; it allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    let mut rl = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // Soft and hard, so the process cannot raise it.
                    rl.rlim_cur = (limit as libc::rlim_t).min(rl.rlim_max);
                    rl.rlim_max = rl.rlim_cur;
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", binary.display()))?;
        Ok(ManagedProcess {
            name: name.to_owned(),
            child,
            exit: None,
            log_path: log_path.to_owned(),
            log_start,
        })
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file (shared by every run with the same path; see [`Self::log_text`]).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// What this run has logged so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            if f.seek(SeekFrom::Start(self.log_start)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    /// This run's log lines that are JSON objects.
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// The last lines of this run's log, labelled, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        let mut out = format!(
            "---- last {} log lines of {} (pid {}, {}) ----\n",
            lines.len() - from,
            self.name,
            self.pid(),
            self.log_path.display()
        );
        for l in &lines[from..] {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("---- end of log ----");
        out
    }

    /// True while the process has not exited (reaps it if it has).
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            // Cannot tell; assume it runs so Drop still tries to kill it.
            Err(_) => true,
        }
    }

    /// The exit status, once the process has exited and was reaped.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.exit
    }

    /// Waits (polling, with a deadline) until the process has logged
    /// `"message":"listening"` for every component in `components`, and returns each
    /// component's `addr`. Fails early, with the log, if the process exits.
    pub fn wait_listening(
        &mut self,
        components: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<HashMap<String, SocketAddr>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut found = HashMap::new();
            for v in self.log_json() {
                if v.get("message").and_then(|m| m.as_str()) != Some("listening") {
                    continue;
                }
                let component = v.get("component").and_then(|c| c.as_str());
                let addr = v.get("addr").and_then(|a| a.as_str());
                if let (Some(c), Some(a)) = (component, addr) {
                    let addr: SocketAddr = a.parse().with_context(|| {
                        format!("{}: bad listening address {a:?} for {c}", self.name)
                    })?;
                    found.insert(c.to_owned(), addr);
                }
            }
            if components.iter().all(|c| found.contains_key(*c)) {
                return Ok(found);
            }
            if !self.is_running() {
                anyhow::bail!(
                    "{} exited ({:?}) before logging that it listens ({components:?})\n{}",
                    self.name,
                    self.exit,
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} did not log \"listening\" for {components:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) if the process still runs.
    pub fn signal(&mut self, signal: libc::c_int) -> anyhow::Result<()> {
        if !self.is_running() {
            anyhow::bail!(
                "{} already exited ({:?})\n{}",
                self.name,
                self.exit,
                self.log_tail()
            );
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory effects; the child is not reaped yet (checked
        // above), so its pid cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("kill({pid}, {signal})"));
        }
        Ok(())
    }

    /// Waits (polling, with a deadline) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                if let Some(status) = self.exit {
                    return Ok(status);
                }
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for the exit; an error unless it exits 0.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGTERM)?;
        let status = self.wait_exit(STOP_TIMEOUT)?;
        if !status.success() {
            anyhow::bail!(
                "{} exited with {status} after SIGTERM, not 0\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        if self.is_running() {
            self.child
                .kill()
                .with_context(|| format!("killing {}", self.name))?;
        }
        let status = self
            .child
            .wait()
            .with_context(|| format!("reaping {}", self.name))?;
        self.exit = Some(status);
        Ok(status)
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        let was_running = self.is_running();
        if was_running {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "{} ({}):\n{}",
                self.name,
                if was_running {
                    "killed by the harness"
                } else {
                    "had exited"
                },
                self.log_tail()
            );
        }
    }
}

/// How long a one-shot CLI invocation (`--version`, `validate`, `certs`) may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a one-shot invocation produced.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit code; `None` if killed by a signal (or by the timeout).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output followed by standard error.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `binary args…` with standard input closed and waits, with a deadline, for it to
/// exit; a process still running at the deadline is killed and reported as an error.
pub fn run_to_completion(
    binary: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<CliOutput> {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if SCRUBBED_PREFIXES.iter().any(|p| k.starts_with(p)) || k == "LOGFERRY_LOG_FORMAT" {
                cmd.env_remove(k);
            }
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            anyhow::bail!(
                "{} {args:?} still running after {timeout:?}; killed it. stderr:\n{stderr}",
                binary.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(CliOutput {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
