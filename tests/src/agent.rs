//! Running `logferry-agent` under test.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::process::{CliOutput, ManagedProcess, CLI_TIMEOUT, START_TIMEOUT};
use crate::{binary, http, toml_path, toml_str, TestDir, TOKEN};

/// How to configure an agent. Its files in the [`TestDir`] are named after
/// [`AgentOptions::name`], so a restart with the same name keeps its spool.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Label and file-name stem; default `agent`.
    pub name: String,
    /// `output.url`, e.g. `https://127.0.0.1:PORT`.
    pub url: String,
    /// `output.token`; default `Some(TOKEN)`.
    pub token: Option<String>,
    /// `inputs[0].include`.
    pub include: Vec<String>,
    /// `host`; default `test-node`.
    pub host: String,
    /// `output.batch_timeout`; default `100ms`.
    pub batch_timeout: String,
    /// `output.retry_max`, when set (keeps reconnects quick after an outage).
    pub retry_max: Option<String>,
    /// `tail.scan_interval`; default `200ms`.
    pub scan_interval: String,
    /// Present the test client certificate (`output.tls.cert` / `key`).
    pub mtls: bool,
    /// `inputs[0].format` (`auto`, `raw`, `cri`, `docker`), when set.
    pub format: Option<String>,
    /// `inputs[0].multiline`, as TOML (e.g. `{ preset = "java" }`), when set.
    pub multiline: Option<String>,
    /// `inputs[0].compression` (`none`, `gzip`, `auto`), when set.
    pub compression: Option<String>,
    /// `tail.gzip_incomplete_timeout`, when set.
    pub gzip_incomplete_timeout: Option<String>,
    /// `tail.partial_line_timeout`, when set.
    pub partial_line_timeout: Option<String>,
    /// More `[[inputs]]` after the first.
    pub extra_inputs: Vec<InputOptions>,
    /// `output.batch_max_bytes`, when set.
    pub batch_max_bytes: Option<usize>,
    /// `spool.max_bytes`, when set.
    pub spool_max_bytes: Option<u64>,
    /// `spool.when_full` (`block` or `drop_oldest`), when set.
    pub when_full: Option<String>,
    /// `tail.max_line_bytes`, when set.
    pub max_line_bytes: Option<usize>,
    /// The limit on open files (`RLIMIT_NOFILE`, soft and hard) the process starts with, when set.
    pub open_files_limit: Option<u64>,
}

/// One more `[[inputs]]` entry of an agent.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// `include`.
    pub include: Vec<String>,
    /// `format`, when set.
    pub format: Option<String>,
    /// `multiline`, as TOML (e.g. `{ preset = "python" }`), when set.
    pub multiline: Option<String>,
    /// `compression`, when set.
    pub compression: Option<String>,
}

impl InputOptions {
    /// An input tailing `include`.
    pub fn new(include: &[String]) -> InputOptions {
        InputOptions {
            include: include.to_vec(),
            ..InputOptions::default()
        }
    }

    /// Sets `format`.
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_owned());
        self
    }

    /// Sets `multiline` (TOML text).
    pub fn multiline(mut self, toml: &str) -> Self {
        self.multiline = Some(toml.to_owned());
        self
    }

    /// Sets `compression`.
    pub fn compression(mut self, compression: &str) -> Self {
        self.compression = Some(compression.to_owned());
        self
    }

    /// The `[[inputs]]` table.
    fn toml(&self) -> String {
        let include: Vec<String> = self.include.iter().map(toml_str).collect();
        let mut t = format!("\n[[inputs]]\ninclude = [{}]\n", include.join(", "));
        if let Some(f) = &self.format {
            t += &format!("format = {}\n", toml_str(f));
        }
        if let Some(m) = &self.multiline {
            t += &format!("multiline = {m}\n");
        }
        if let Some(c) = &self.compression {
            t += &format!("compression = {}\n", toml_str(c));
        }
        t
    }
}

impl AgentOptions {
    /// Defaults for an agent sending to `url` and tailing `include`.
    pub fn new(url: impl Into<String>, include: &[String]) -> AgentOptions {
        AgentOptions {
            name: "agent".to_owned(),
            url: url.into(),
            token: Some(TOKEN.to_owned()),
            include: include.to_vec(),
            host: "test-node".to_owned(),
            batch_timeout: "100ms".to_owned(),
            retry_max: None,
            scan_interval: "200ms".to_owned(),
            mtls: false,
            format: None,
            multiline: None,
            compression: None,
            gzip_incomplete_timeout: None,
            partial_line_timeout: None,
            extra_inputs: Vec::new(),
            batch_max_bytes: None,
            spool_max_bytes: None,
            when_full: None,
            max_line_bytes: None,
            open_files_limit: None,
        }
    }

    /// Sets `output.retry_max`.
    pub fn retry_max(mut self, d: &str) -> Self {
        self.retry_max = Some(d.to_owned());
        self
    }

    /// Sets `inputs[0].format`.
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.to_owned());
        self
    }

    /// Sets `inputs[0].multiline` (TOML text, e.g. `{ preset = "java" }`).
    pub fn multiline(mut self, toml: &str) -> Self {
        self.multiline = Some(toml.to_owned());
        self
    }

    /// Sets `inputs[0].compression` (`none`, `gzip`, `auto`).
    pub fn compression(mut self, compression: &str) -> Self {
        self.compression = Some(compression.to_owned());
        self
    }

    /// Sets `tail.gzip_incomplete_timeout`.
    pub fn gzip_incomplete_timeout(mut self, d: &str) -> Self {
        self.gzip_incomplete_timeout = Some(d.to_owned());
        self
    }

    /// Sets `tail.partial_line_timeout`.
    pub fn partial_line_timeout(mut self, d: &str) -> Self {
        self.partial_line_timeout = Some(d.to_owned());
        self
    }

    /// Adds an `[[inputs]]` entry.
    pub fn input(mut self, input: InputOptions) -> Self {
        self.extra_inputs.push(input);
        self
    }

    /// Sets `output.batch_max_bytes`.
    pub fn batch_max_bytes(mut self, n: usize) -> Self {
        self.batch_max_bytes = Some(n);
        self
    }

    /// Sets `spool.max_bytes` and `spool.when_full`.
    pub fn spool(mut self, max_bytes: u64, when_full: &str) -> Self {
        self.spool_max_bytes = Some(max_bytes);
        self.when_full = Some(when_full.to_owned());
        self
    }

    /// Sets `tail.max_line_bytes`.
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = Some(n);
        self
    }

    /// Starts the process with at most `n` open files (`RLIMIT_NOFILE`, soft and hard).
    pub fn open_files_limit(mut self, n: u64) -> Self {
        self.open_files_limit = Some(n);
        self
    }

    /// The spool directory for this name.
    pub fn data_dir(&self, dir: &TestDir) -> PathBuf {
        dir.join(format!("{}-data", self.name))
    }

    /// The config file text.
    pub fn config_text(&self, dir: &TestDir) -> String {
        let mut t = format!("data_dir = {}\n", toml_path(&self.data_dir(dir)));
        t += &format!("host = {}\n", toml_str(&self.host));
        let first = InputOptions {
            include: self.include.clone(),
            format: self.format.clone(),
            multiline: self.multiline.clone(),
            compression: self.compression.clone(),
        };
        for input in std::iter::once(&first).chain(&self.extra_inputs) {
            t += &input.toml();
        }
        t += &format!("\n[output]\nurl = {}\n", toml_str(&self.url));
        if let Some(token) = &self.token {
            t += &format!("token = {}\n", toml_str(token));
        }
        t += &format!("batch_timeout = {}\n", toml_str(&self.batch_timeout));
        if let Some(r) = &self.retry_max {
            t += &format!("retry_max = {}\n", toml_str(r));
        }
        if let Some(n) = self.batch_max_bytes {
            t += &format!("batch_max_bytes = {n}\n");
        }
        t += &format!("\n[output.tls]\nca = {}\n", toml_path(&dir.cert("ca.pem")));
        if self.mtls {
            t += &format!("cert = {}\n", toml_path(&dir.cert("client.pem")));
            t += &format!("key = {}\n", toml_path(&dir.cert("client-key.pem")));
        }
        t += "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        t += &format!(
            "\n[tail]\nscan_interval = {}\n",
            toml_str(&self.scan_interval)
        );
        if let Some(n) = self.max_line_bytes {
            t += &format!("max_line_bytes = {n}\n");
        }
        if let Some(d) = &self.gzip_incomplete_timeout {
            t += &format!("gzip_incomplete_timeout = {}\n", toml_str(d));
        }
        if let Some(d) = &self.partial_line_timeout {
            t += &format!("partial_line_timeout = {}\n", toml_str(d));
        }
        if self.spool_max_bytes.is_some() || self.when_full.is_some() {
            t += "\n[spool]\n";
            if let Some(n) = self.spool_max_bytes {
                t += &format!("max_bytes = {n}\n");
            }
            if let Some(w) = &self.when_full {
                t += &format!("when_full = {}\n", toml_str(w));
            }
        }
        t
    }
}

/// A running agent process.
#[derive(Debug)]
pub struct Agent {
    /// The process.
    pub process: ManagedProcess,
    /// Its admin endpoint.
    pub admin_addr: SocketAddr,
    /// The config file it was started with.
    pub config_path: PathBuf,
    options: AgentOptions,
}

impl Agent {
    /// Writes the config, starts `logferry-agent --config … run` and waits for its admin
    /// listener.
    pub fn start(dir: &TestDir, options: AgentOptions) -> anyhow::Result<Agent> {
        let config_path = dir.write(format!("{}.toml", options.name), &options.config_text(dir))?;
        let args: Vec<OsString> = vec!["--config".into(), config_path.clone().into(), "run".into()];
        let log = dir.join(format!("{}.log", options.name));
        let mut process = ManagedProcess::spawn_limited(
            &options.name,
            &binary("logferry-agent"),
            &args,
            &log,
            &[],
            options.open_files_limit,
        )?;
        let addrs = process.wait_listening(&["admin"], START_TIMEOUT)?;
        Ok(Agent {
            process,
            admin_addr: addrs
                .get("admin")
                .copied()
                .context("listening address missing")?,
            config_path,
            options,
        })
    }

    /// The options it was started with.
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// GET on the admin endpoint: (status, body).
    pub fn admin_get(
        &self,
        client: &reqwest::blocking::Client,
        path: &str,
    ) -> anyhow::Result<(u16, String)> {
        http::get(client, &self.admin_url(path))
    }

    /// GET /metrics: the Prometheus text (an error unless 200).
    pub fn metrics(&self, client: &reqwest::blocking::Client) -> anyhow::Result<String> {
        let (status, body) = self.admin_get(client, "/metrics")?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}: {body}");
        Ok(body)
    }

    /// One series of [`Agent::metrics`], e.g. `logferry_agent_spool_batches`; an error
    /// when the endpoint fails or the series is absent.
    pub fn metric(&self, client: &reqwest::blocking::Client, series: &str) -> anyhow::Result<f64> {
        let text = self.metrics(client)?;
        http::metric(&text, series)
            .with_context(|| format!("{series} is not among the agent's metrics:\n{text}"))
    }

    /// SIGTERM; an error unless it exits 0 in time.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill9().map(|_| ())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// Runs `logferry-agent ARGS…` to completion (a CLI check, not a daemon).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<CliOutput> {
    crate::process::run_to_completion(&binary("logferry-agent"), args, envs, CLI_TIMEOUT)
}
